"""Recording through the real service: a WebSocket call, a SIPREC call from sipp, kill -9 of `callscribe serve`
mid-call, redacted audio of real speech, retention in the running service (docs/recording.md).

Real things only: the embedded Redis, whisper-base, the WebSocket ingest, sipp (root, like tests/test_sip.py),
a `callscribe serve` process killed with SIGKILL. The speech with a card number and a phone number is cut from
the synthesized hold-out calls (tests/data/holdout_audio: hold_zh_004 reads a card number, hold_en_011 a phone
number, both on the customer leg).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis
import soundfile as sf

from callscribe.audio import resample
from callscribe.events import CallEnded, Transcript
from callscribe.gateway.client import IngestClient
from callscribe.recording import LocalStore, find_recording, pii_spans, read_manifest, recover_interrupted, rendition_for
from callscribe.recording.codec import decode
from callscribe.service import Service
from callscribe.stream import read_call

from .test_recording import rms

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
HOLDOUT = ROOT / "tests" / "data" / "holdout_audio"
RATE = 16000


def holdout_cut(name: str, start_s: float, end_s: float) -> list[np.ndarray]:
    """Both legs of a hold-out call between two times, at 16 kHz."""
    audio, rate = sf.read(HOLDOUT / f"{name}.ogg", dtype="float32")
    cut = audio[int(start_s * rate):int(end_s * rate)]
    return [resample(cut[:, i], rate, RATE) for i in range(cut.shape[1])]


def dbfs(x: np.ndarray) -> float:
    return 20 * np.log10(max(rms(x), 1e-9))


async def until(predicate, timeout_s: float, what: str, step_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


# --- a WebSocket call through the service: recorded, redacted, and retention at start ------------------------
async def test_websocket_call_is_recorded_redacted_and_old_recordings_are_swept(engine, asr_config, tmp_path):
    data = tmp_path / "data"
    old = data / "recordings" / "2020" / "01" / "02" / "old-call"
    old.mkdir(parents=True)
    (old / "original.opus").write_bytes(b"x")
    long_ago = time.time() - 200 * 86400
    os.utime(old / "original.opus", (long_ago, long_ago))
    cfg = asr_config.replace(redis_url="", data_dir=str(data), port=0, recording_retention_days=30)
    svc = Service(cfg, engine=engine)
    await svc.start()
    try:
        await until(lambda: not old.exists(), 10, "retention to delete the 200-day-old recording")
        # a card number read out (zh) then a phone number (en), both on the customer leg
        zh, en = holdout_cut("hold_zh_004", 74.5, 81.0), holdout_cut("hold_en_011", 23.2, 28.5)
        legs = [np.concatenate([zh[i], en[i]]) for i in range(2)]
        client = IngestClient(svc.ingest.url)
        result = await client.stream(legs, ("customer", "agent"), call_id="rec.ws:1", speed=None,
                                     metadata={"queue": "billing", "agent_id": "a1"})
        assert result.ended is not None and result.ended.reason == "client_end"
        assert await svc.recorder.drain(30)
        r = aioredis.from_url(svc.redis_url)
        try:
            events = await read_call(r, cfg, "rec.ws:1")
        finally:
            await r.aclose()
        ended = [e for e in events if isinstance(e, CallEnded)][0]
        assert ended.recording  # the gateway finds the recording from the call's stream ...
        store = svc.recorder.store
        m = read_manifest(store, ended.recording)
        assert m == find_recording(store, "rec.ws:1", events[0].started_at_ms)  # ... or from id + start time
        assert m.state == "complete" and m.channels == ("customer", "agent") and m.format == "opus"
        # recorded length = the call's length = what was sent
        sent_ms = len(legs[0]) * 1000 // RATE
        assert abs(m.duration_ms - sent_ms) <= 20 and abs(ended.duration_ms - sent_ms) <= 40
        orig, _ = decode(str(store.path(m.original)), RATE)
        assert abs(len(orig) - len(legs[0])) <= RATE // 50
        assert abs(dbfs(orig[:, 0]) - dbfs(legs[0])) < 1.0 and abs(dbfs(orig[:, 1]) - dbfs(legs[1])) < 1.0
        for f in store.root.rglob("*"):
            assert f.stat().st_mode & 0o777 == (0o700 if f.is_dir() else 0o600), f
        # redacted audio: every span whose words redaction masks is silent, the rest is the original
        finals = [e for e in result.events if isinstance(e, Transcript) and e.is_final and e.text]
        spans = [s for f in finals for s in pii_spans(f)]
        assert {s.kind for s in spans} >= {"phone"} and len(spans) >= 2, [f.text for f in finals]
        assert m.redacted.endswith("redacted.opus") and len(m.redacted_spans) >= 2
        red, _ = decode(str(store.path(m.redacted)), RATE)
        assert red.shape == orig.shape
        for s in spans:
            ch = m.channel_index(s.channel)
            a = m.time_map.to_recording_ms(ch, s.start_ms) * RATE // 1000
            b = m.time_map.to_recording_ms(ch, s.end_ms) * RATE // 1000
            assert dbfs(orig[a:b, ch]) > -40, (s, dbfs(orig[a:b, ch]))  # the number is spoken there ...
            assert dbfs(red[a:b]) < -60, (s, dbfs(red[a:b]))  # ... and silent in the redacted rendition
        t = np.arange(len(orig)) / RATE
        rest = np.ones(len(t), bool)
        for s in m.redacted_spans:
            rest &= ~((t >= s.start_ms / 1000 - 0.03) & (t < s.end_ms / 1000 + 0.25))
        # the clips are mostly the numbers; a span may start up to the segment's pre-roll (400 ms) early, where the
        # alignment puts the first word's start: silence redacted, never speech left
        assert rest.mean() > 0.2, m.redacted_spans
        assert np.abs(red[rest] - orig[rest]).max() < 1e-4
        assert rendition_for(m, "qa") == rendition_for(m, "admin") == m.redacted  # text stored redacted: all roles
    finally:
        await svc.stop()


# --- SIPREC from sipp, the agent leg starting late ---------------------------------------------------------
SIPP = shutil.which("sipp")


@pytest.mark.skipif(SIPP is None, reason="sipp not installed (apt-get install sip-tester; .ci/run does)")
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() != 0, reason="sipp's pcap replay needs a raw socket (root)")
async def test_siprec_call_from_sipp_is_recorded_with_a_late_leg_in_its_place(redis_server, engine, asr_config, tmp_path):
    from callscribe.gateway.rtp.pcap import Leg, duration_s, schedule, two_leg_call, write_pcap

    from .conftest import load_clip
    from .test_sip import run_sipp

    low = 32000 + (os.getpid() % 50) * 100
    cfg = asr_config.replace(redis_url=redis_server.url, port=0, data_dir=str(tmp_path), sip=True, sip_port=0,
                             sip_transports=("udp",), rtp_port_min=low, rtp_port_max=low + 99)
    tracks = two_leg_call([load_clip("en/en_pocketsphinx_cards_003.wav"), load_clip("en/en_cmu_arctic_axb_a0005.wav")],
                          [load_clip("en/en_pocketsphinx_cards_001.wav"), load_clip("en/en_cmu_arctic_aew_a0003.wav")])
    late_s = 2.0  # the agent's stream sends its first packet 2 s into the call (bridged in late)
    packets = [p for p in schedule([Leg(tracks["customer"], 0, 0x1A2B3C4D), Leg(tracks["agent"], 2, 0x5E6F7A8B)])
               if p[1] == 0 or p[0] >= late_s]
    pcap = tmp_path / "siprec-late.pcap"
    write_pcap(pcap, packets)
    secs = duration_s(packets)
    svc = Service(cfg, engine=engine)
    await svc.start()
    try:
        rc, log = await run_sipp("siprec_uac.xml", svc.sip.port, pcap, secs + 1.0, tmp_path)
        assert rc == 0, log
        await until(lambda: svc.recorder.opened and not svc.pipeline.calls, 30, "the SIPREC call to end")
        assert await svc.recorder.drain(30)
        prefixes = list(svc.recorder.store.recent_prefixes(1))
        assert len(prefixes) == 1
        m = read_manifest(svc.recorder.store, prefixes[0])
    finally:
        await svc.stop()
    assert m.state == "complete" and m.channels == ("customer", "agent")
    assert abs(m.duration_ms / 1000 - secs) < 0.5, (m.duration_ms, secs)  # recorded length = the call's audio
    shift = m.time_map.to_recording_ms(1, 0)
    assert abs(shift - late_s * 1000) < 250, shift  # the agent's first audio sits where it was said
    audio, _ = decode(str(LocalStore(tmp_path / "recordings").path(m.original)), RATE)
    # the agent's speech lines up with the track that was sent (G.711 at 8 kHz: compare 20 ms envelopes)
    def env(x: np.ndarray) -> np.ndarray:
        n = len(x) // 320
        return np.sqrt(np.mean(x[: n * 320].reshape(n, 320) ** 2, axis=1))

    sent, got = env(tracks["agent"]), env(audio[:, 1])
    n = min(len(sent), len(got))
    lags = range(-25, 26)
    best = max(lags, key=lambda k: float(np.dot(sent[max(0, -k):n - max(0, k)], got[max(0, k):n - max(0, -k)])))
    assert abs(best) <= 8, best * 20  # within 160 ms (jitter buffer, media ticks)


# --- kill -9 of `callscribe serve` mid-call -----------------------------------------------------------------
async def test_kill9_of_serve_mid_call_leaves_a_playable_recording_up_to_the_cut(redis_server, tmp_path):
    from callscribe.gateway.web.auth import TokenAuthority
    from callscribe.stream.server import free_port

    from .test_faults import SECRET, _serve, _wait_serving

    port = free_port()
    data = tmp_path / "data"
    # --remote-asr: no model to load (nothing decodes the call: this test is about its audio); an external Redis
    # (the fixture's), so the killed process leaves no embedded Redis running behind it
    proc = _serve(data, port, {"CALLSCRIBE_REMOTE_ASR": "true", "REDIS_URL": redis_server.url})
    try:
        await _wait_serving(proc, port, timeout_s=60)
        client = IngestClient(f"ws://127.0.0.1:{port}/v1/ingest", token=TokenAuthority(SECRET.encode()).mint("ingest", "rec")[0])
        legs = holdout_cut("hold_en_001", 0.0, 20.0)
        t0 = time.monotonic()
        stream = asyncio.create_task(client.stream(legs, ("customer", "agent"), call_id="rec-kill", speed=1.0))
        await asyncio.sleep(7.0)
        proc.send_signal(signal.SIGKILL)
        sent_s = time.monotonic() - t0
        proc.wait(10)
        await asyncio.wait_for(stream, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = LocalStore(data / "recordings")
    [prefix] = list(store.recent_prefixes(1))
    m = read_manifest(store, prefix)
    assert m.state == "recording"  # as the killed process left it
    audio, _ = decode(str(store.path(m.original)), RATE)
    got_s = len(audio) / RATE
    assert sent_s - 2.0 <= got_s <= sent_s + 0.2, (sent_s, got_s)  # up to about a second before the cut
    n = len(audio)
    for ch in range(2):  # it is the call's audio, both legs in place (the customer is still silent here)
        if dbfs(legs[ch][:n]) < -90:
            assert dbfs(audio[:, ch]) < -60
        else:
            assert abs(dbfs(audio[:, ch]) - dbfs(legs[ch][:n])) < 1.5
    # the next start closes it as interrupted, with the duration read from the file
    assert recover_interrupted(store, data / "recordings-open") == ["rec-kill"]
    m = read_manifest(store, prefix)
    assert m.state == "interrupted" and abs(m.duration_ms / 1000 - got_s) < 0.1
