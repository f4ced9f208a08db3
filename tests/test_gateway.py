"""WebSocket ingest end to end: real server, real Redis, real model, real speech streamed in real time."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from callscribe.events import CallEnded, CallStarted, Transcript
from callscribe.filerun import load_call_audio
from callscribe.gateway.client import IngestClient
from callscribe.service import Service
from callscribe.stream import read_call, read_finals


pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[1] / "callscribe" / "data"


@pytest.fixture
async def service(redis_server, engine, asr_config, tmp_path):
    cfg = asr_config.replace(redis_url=redis_server.url, partials=True, port=0, data_dir=str(tmp_path), idle_timeout_s=5.0)
    svc = Service(cfg, engine=engine)
    await svc.start()
    yield svc
    await svc.stop()


async def stream_with_times(client: IngestClient, path, call_id: str):
    channels, names = load_call_audio(path, client_cfg())
    arrivals: list[tuple[float, Transcript]] = []

    def on_event(e) -> None:
        if isinstance(e, Transcript):
            arrivals.append((time.monotonic(), e))

    t0 = time.monotonic()
    result = await client.stream(channels, names, call_id=call_id, speed=1.0, on_event=on_event, metadata={"agent_id": "a-7"})
    return result, arrivals, t0


def client_cfg():
    from callscribe.config import Config

    return Config()


async def test_two_concurrent_calls_in_real_time(service):
    client = IngestClient(service.ingest.url)
    (res_zh, arr_zh, t0_zh), (res_en, arr_en, t0_en) = await asyncio.gather(
        stream_with_times(client, DEMO / "demo_call_zh.wav", "ws-zh"),
        stream_with_times(client, DEMO / "demo_call_en.wav", "ws-en"),
    )
    r = aioredis.from_url(service.redis_url)
    await service.publisher.flush(10)
    for res, arrivals, t0, turns_file in ((res_zh, arr_zh, t0_zh, "demo_call_zh.json"), (res_en, arr_en, t0_en, "demo_call_en.json")):
        turns = json.loads((DEMO / turns_file).read_text())
        assert res.close_code == 1000 and not res.errors
        assert isinstance(res.events[0], CallStarted) and res.events[0].metadata["agent_id"] == "a-7"
        assert isinstance(res.events[-1], CallEnded) and res.events[-1].reason == "client_end"
        finals = res.finals
        assert len(finals) >= len(turns) - 1
        assert [f.channel for f in finals][:3] == [t["channel"] for t in turns][:3]
        # partial cadence during speech: for each turn of >= 3 s, partials arrive about every second
        gaps, first_delays = [], []
        for turn in turns:
            if turn["end_s"] - turn["start_s"] < 3.0:
                continue
            early = 0.3 + service.cfg.vad_pre_roll_ms / 1000  # a segment starts its pre-roll before the words
            times = [t - t0 for t, e in arrivals if not e.is_final and turn["start_s"] - early <= e.start_ms / 1000 <= turn["end_s"]]
            assert times, f"no partial during the {turn['end_s'] - turn['start_s']:.1f} s turn at {turn['start_s']} s"
            first_delays.append(times[0] - turn["start_s"])
            gaps += list(np.diff(times))
        print(f"{res.call_id}: partial gaps median {np.median(gaps):.2f} s max {max(gaps):.2f} s; first partial after {np.median(first_delays):.2f} s")
        assert np.median(gaps) <= 1.5
        assert np.median(first_delays) <= 2.0
        # every final in Redis, per call and global, in order, exactly as sent to the client
        in_call = [e for e in await read_call(r, service.cfg, res.call_id) if isinstance(e, Transcript) and e.is_final and e.text]
        assert in_call == finals
        in_global = [e for e in await read_finals(r, service.cfg, res.call_id) if isinstance(e, Transcript) and e.text]
        assert in_global == finals
        assert [f.start_ms for f in finals] == sorted(f.start_ms for f in finals)
    await r.aclose()


async def _bad(url: str, *messages, wait_s: float = 5.0) -> tuple[int | None, str, list[dict]]:
    got = []
    async with connect(url) as ws:
        for m in messages:
            await ws.send(m)
        try:
            async with asyncio.timeout(wait_s):
                async for msg in ws:
                    got.append(json.loads(msg))
        except Exception:
            pass
        return ws.close_code, ws.close_reason or "", got


def start_msg(call_id: str, **kw) -> str:
    return json.dumps({"type": "start", "call_id": call_id, "channels": ["customer", "agent"], **kw})


async def test_bad_inputs_close_cleanly_and_spare_the_other_call(service):
    url = service.ingest.url
    client = IngestClient(url)
    good = asyncio.create_task(stream_with_times(client, DEMO / "demo_call_en.wav", "good-call"))
    await asyncio.sleep(2.0)
    speech = load_call_audio(DEMO / "demo_call_en.wav", client_cfg())[0]
    stereo = np.stack([speech[0][: 16000 * 4], speech[1][: 16000 * 4]], 1)
    audio = (stereo * 32767).astype("<i2").tobytes()
    cases = {
        "bad_json": (1007, "bad JSON", ["{not json"]),
        "unknown_encoding": (1003, "unknown encoding", [start_msg("bad-enc", encoding="opus")]),
        "bad_rate": (1003, "sample_rate", [start_msg("bad-rate", sample_rate=44100)]),
        "audio_first": (1003, "start message", [b"\x00\x01" * 100]),
        "odd_size": (1007, "whole number", [start_msg("bad-size"), b"\x00\x01\x02"]),
        "too_big": (1009, "", [start_msg("bad-big"), b"\x00" * (service.cfg.max_frame_bytes + 4)]),
        "second_start": (1008, "twice", [start_msg("bad-twice"), start_msg("bad-twice")]),
        "bad_call_id": (1007, "call_id", [json.dumps({"type": "start", "call_id": "../../etc"})]),
    }
    results = await asyncio.gather(*(_bad(url, *msgs) for _, _, msgs in cases.values()))
    for (name, (code, reason, _)), (got_code, got_reason, got) in zip(cases.items(), results):
        assert got_code == code, (name, got_code, got_reason)
        assert reason.lower() in got_reason.lower(), (name, got_reason)
    # abrupt disconnect mid-call: the audio received so far is still transcribed and ended cleanly
    async with connect(url) as ws:
        await ws.send(start_msg("vanishing", language="en"))
        for i in range(0, len(audio), 6400):
            await ws.send(audio[i : i + 6400])
        ws.transport.abort()
    res, _, _ = await good
    assert res.close_code == 1000 and res.ended is not None and res.ended.reason == "client_end"
    assert len(res.finals) >= 6
    await asyncio.sleep(1.0)
    await service.publisher.flush(10)
    r = aioredis.from_url(service.redis_url)
    vanished = await read_call(r, service.cfg, "vanishing")
    assert isinstance(vanished[-1], CallEnded) and vanished[-1].reason == "disconnect"
    assert any(isinstance(e, Transcript) and e.is_final and e.text for e in vanished)
    good_finals = [e for e in await read_call(r, service.cfg, "good-call") if isinstance(e, Transcript) and e.is_final and e.text]
    assert good_finals == res.finals
    await r.aclose()


async def test_capacity_refusal(service):
    service.pipeline.cfg = service.cfg.replace(max_calls=1)
    url = service.ingest.url
    async with connect(url) as first:
        await first.send(start_msg("cap-1"))
        await asyncio.sleep(0.3)
        code, reason, got = await _bad(url, start_msg("cap-2"))
        assert code == 1013 and "capacity" in reason
        await first.send(json.dumps({"type": "end"}))
        async for _ in first:  # drain until the server closes normally
            pass
        assert first.close_code == 1000


async def test_redis_killed_and_restarted_mid_call(service, redis_server):
    """Through the whole service: every final of the call ends up in Redis exactly once, in order."""
    client = IngestClient(service.ingest.url)
    call = asyncio.create_task(stream_with_times(client, DEMO / "demo_call_en.wav", "redis-outage"))
    await asyncio.sleep(8.0)
    redis_server.kill()
    await asyncio.sleep(10.0)  # finals decoded meanwhile wait in the publisher's buffer
    assert not service.publisher.stats.redis_up
    redis_server.start()
    res, _, _ = await call
    assert await service.publisher.flush(15)
    r = aioredis.from_url(service.redis_url)
    events = await read_call(r, service.cfg, "redis-outage")
    finals = [e for e in events if isinstance(e, Transcript) and e.is_final]
    assert [f for f in finals if f.text] == res.finals and len(res.finals) >= 6
    assert len({(f.segment_id, f.revision) for f in finals}) == len(finals)  # no duplicates
    assert isinstance(events[0], CallStarted) and isinstance(events[-1], CallEnded)
    global_finals = [e for e in await read_finals(r, service.cfg, "redis-outage") if isinstance(e, Transcript)]
    assert global_finals == finals
    await r.aclose()


async def test_stream_cli_plays_a_file_into_the_server(service):
    """`callscribe stream FILE --url ...` as a user runs it, G.711 mu-law at 8 kHz on the wire."""
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callscribe.cli", "stream", str(DEMO / "demo_call_en.wav"), "--url", service.ingest.url,
        "--speed", "4", "--encoding", "mulaw", "--sample-rate", "8000", "--call-id", "cli-call", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert events[0]["type"] == "call_started" and events[0]["encoding"] == "mulaw" and events[0]["sample_rate_hz"] == 8000
    finals = [e for e in events if e["type"] == "transcript" and e["is_final"] and e["text"]]
    assert len(finals) >= 6 and events[-1]["type"] == "call_ended"
    assert "clubs" in " ".join(f["text"] for f in finals).lower()


async def test_health_and_prometheus_metrics(service):
    import urllib.request

    base = f"http://127.0.0.1:{service.ingest.port}"
    client = IngestClient(service.ingest.url)
    await client.stream_file(DEMO / "demo_call_en.wav", call_id="metrics-call", speed=None)
    await service.publisher.flush(10)  # publishing is asynchronous: the counters below once the queue is out
    health = await asyncio.to_thread(lambda: urllib.request.urlopen(base + "/health", timeout=5).read())
    assert health == b"ok\n"
    from urllib.error import HTTPError

    from callscribe.gateway.web.auth import TokenAuthority

    with pytest.raises(HTTPError) as refused:  # the ingest port's metrics are behind the gateway's auth
        await asyncio.to_thread(lambda: urllib.request.urlopen(base + "/metrics", timeout=5).read())
    assert refused.value.code == 401
    admin = TokenAuthority.from_config(service.cfg).mint("admin", "ops")[0]
    request = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {admin}"})
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=5).read().decode())
    values = {line.split()[0]: float(line.split()[1]) for line in body.splitlines() if line and not line.startswith("#")}
    assert values["callscribe_asr_finals_decoded_total"] >= 6
    assert values["callscribe_redis_published_total"] >= 8
    assert values["callscribe_calls_live"] == 0 and values["callscribe_redis_up"] == 1
    assert values['callscribe_asr_batch_size_bucket{le="+Inf"}'] == values["callscribe_asr_batches_total"]
    assert "callscribe_calls_refused_total" in values
