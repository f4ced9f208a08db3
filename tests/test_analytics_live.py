"""The live analytics worker against a real Redis server: consumer-group delivery across restarts and
crashes (no event skipped, no output twice), and alert latency through the real pipeline (real speech,
whisper-base, real Redis)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from callscribe.config import Config
from callscribe.events import Alert, CallFlag, CallSummary, IntentUpdate, SentimentUpdate, Surge, Transcript, from_fields
from callscribe.gateway.client import IngestClient
from callscribe.keyword.dialogue import read_dialogue, to_events
from callscribe.keyword.packs import bundled_pack_paths
from callscribe.keyword.worker import AnalyticsWorker
from callscribe.service import Service
from callscribe.stream import RedisPublisher, keys

from .conftest import AUDIO_DIR, load_manifest

pytestmark = pytest.mark.integration
DIALOGUES = Path(__file__).parent / "data" / "dialogues"


def _config(url: str, prefix: str, **kw) -> Config:
    # surges depend on wall-clock arrival; they are tested in test_analytics_logic, not compared here
    return Config(redis_url=url, key_prefix=prefix, surge_min_calls=10_000, **kw)


async def _publish_calls(cfg: Config, names: list[str]) -> int:
    """Publish dialogue calls as a live system would, interleaved: starts, finals round-robin, ends."""
    pub = RedisPublisher(cfg, cfg.redis_url)
    await pub.start()
    calls = [to_events(read_dialogue(DIALOGUES / f"{n}.txt"), started_at_ms=1_767_225_600_000 + i * 1000) for i, n in enumerate(names)]
    n = 0
    for started, _, _ in calls:
        await pub.publish(started)
        n += 1
    longest = max(len(f) for _, f, _ in calls)
    for k in range(longest):
        for _, finals, _ in calls:
            if k < len(finals):
                await pub.publish(finals[k])
                n += 1
    for _, _, ended in calls:
        await pub.publish(ended)
        n += 1
    assert await pub.flush(10)
    await pub.stop()
    return n


async def _outputs(url: str, cfg: Config) -> list[tuple[str, str]]:
    """(stream, identity) of every analytics output entry, duplicates included."""
    r = aioredis.from_url(url, decode_responses=True)
    out = []
    for stream in (keys.alerts_stream(cfg), keys.insights_stream(cfg), keys.callbacks_stream(cfg)):
        for _, fields in await r.xrange(stream):
            e = from_fields(fields)
            if isinstance(e, Alert):
                ident = e.alert_id
            elif isinstance(e, IntentUpdate):
                ident = f"{e.call_id}/intent/{e.seq}:{e.intent}"
            elif isinstance(e, CallFlag):
                ident = f"{e.call_id}/flag/{e.seq}:{e.unresolved}:{e.final}"
            elif isinstance(e, CallSummary):
                ident = f"{e.call_id}/summary:{e.intent}:{e.unresolved}:{','.join(sorted(e.alerts))}:{e.sentiment}"
            elif isinstance(e, SentimentUpdate):
                ident = f"{e.call_id}/sentiment/{e.seq}:{e.label}"
            else:
                assert isinstance(e, Surge)
                continue
            out.append((stream.rsplit(":", 1)[1], ident))
    await r.aclose()
    return out


async def _run_until_drained(worker: AnalyticsWorker, timeout_s: float = 60.0) -> None:
    await worker.start()
    assert await worker.drain(timeout_s)
    await worker.stop()


class Crash(BaseException):
    """Stands for the process dying: nothing in the worker catches it."""


NAMES = ["zh_001", "zh_002", "zh_008", "zh_022", "zh_028", "en_002", "en_008", "en_018", "en_023", "en_030", "zh_013", "en_011"]


@pytest.fixture
async def reference(redis_server):
    """The outputs of one uninterrupted worker over the calls."""
    cfg = _config(redis_server.url, "ref")
    await _publish_calls(cfg, NAMES)
    await _run_until_drained(AnalyticsWorker(cfg, redis_server.url, consumer="ref-1"))
    out = await _outputs(redis_server.url, cfg)
    assert len(out) == len(set(out))
    # the analytics really ran: alerts, a callback queue entry, a summary per call
    assert sum(1 for s, _ in out if s == "alerts") >= 10
    assert sum(1 for s, i in out if s == "insights" and "/summary:" in i) == len(NAMES)
    assert any(s == "callbacks" for s, _ in out)
    return out


@pytest.mark.parametrize("same_name", [True, False])
async def test_restart_mid_stream_skips_nothing_and_writes_nothing_twice(redis_server, reference, same_name):
    cfg = _config(redis_server.url, "rst")
    total = await _publish_calls(cfg, NAMES)
    first = AnalyticsWorker(cfg, redis_server.url, consumer="w-1")
    first.BATCH = 10
    real_xack = first.redis.xack

    async def die_before_ack(*args, **kwargs):
        if first.stats.entries >= total // 2:
            raise Crash  # the process dies after writing a batch's outputs, before acknowledging it
        return await real_xack(*args, **kwargs)

    first.redis.xack = die_before_ack
    await first.start()
    done, _ = await asyncio.wait({first._task}, timeout=30)
    assert done and isinstance(first._task.exception(), Crash)
    await first.stop()
    assert first.stats.entries < total
    second = AnalyticsWorker(cfg, redis_server.url, consumer="w-1" if same_name else "w-2", claim_idle_s=0.2)
    if not same_name:
        await asyncio.sleep(0.3)  # w-1 is "dead": its pending entries are idle long enough to be claimed
    await _run_until_drained(second)
    out = await _outputs(redis_server.url, cfg)
    assert Counter(out) == Counter(reference)  # every output, each exactly once
    r = aioredis.from_url(redis_server.url, decode_responses=True)
    pending = await r.xpending(keys.finals_stream(cfg), cfg.analytics_group)
    await r.aclose()
    assert pending["pending"] == 0


async def test_failed_ack_is_redone_without_duplicates(redis_server, reference, monkeypatch):
    """Outputs written, then the ack fails (Redis connection lost): the entry is processed again and the
    write-once markers keep its outputs single."""
    cfg = _config(redis_server.url, "ack")
    total = await _publish_calls(cfg, NAMES)
    worker = AnalyticsWorker(cfg, redis_server.url, consumer="w-1")
    worker.BATCH = 10  # several batches, so acks fail at the start, the middle and twice in a row
    real_xack = worker.redis.xack
    calls = {"n": 0}

    async def flaky_xack(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] in (1, 3, 4):
            raise RedisConnectionError("connection reset (test)")
        return await real_xack(*args, **kwargs)

    monkeypatch.setattr(worker.redis, "xack", flaky_xack)
    await _run_until_drained(worker)
    assert worker.stats.redis_errors == 3 and worker.stats.entries > total  # unacknowledged batches came again
    assert Counter(await _outputs(redis_server.url, cfg)) == Counter(reference)


async def test_bad_entries_are_logged_and_skipped(redis_server, caplog):
    cfg = _config(redis_server.url, "bad")
    r = aioredis.from_url(redis_server.url, decode_responses=True)
    await r.xadd(keys.finals_stream(cfg), {"type": "transcript", "v": "99"})
    await r.xadd(keys.finals_stream(cfg), {"garbage": "\x00"})
    await r.aclose()
    await _publish_calls(cfg, ["zh_022"])
    worker = AnalyticsWorker(cfg, redis_server.url, consumer="w")
    await _run_until_drained(worker)
    assert worker.stats.bad_entries == 2 and worker.stats.alerts >= 2
    assert "skipping entry" in caplog.text


# --- through the real pipeline ---------------------------------------------------------------------
async def test_alert_reaches_its_stream_within_one_second_of_the_final(redis_server, engine, asr_config, tmp_path):
    row = next(r for r in load_manifest() if "1995-1837-0001" in r["file"])  # "... the first great sorrow of his life ..."
    pack = tmp_path / "ops.yaml"
    pack.write_text(
        "version: 1\nlanguage: en\nrules:\n"
        "  - {id: ops.sorrow, category: escalation, severity: high, channel: customer, phrases: [sorrow, cotton]}\n",
        encoding="utf-8",
    )
    cfg = asr_config.replace(
        redis_url=redis_server.url, port=0, data_dir=str(tmp_path), analytics=True, key_prefix="live",
        rule_packs=(str(pack), *(str(p) for p in bundled_pack_paths())),
    )
    service = Service(cfg, engine=engine)
    await service.start()
    try:
        import soundfile as sf

        audio, _ = sf.read(AUDIO_DIR / row["file"], dtype="float32")
        silence = np.zeros(16000, np.float32)
        customer = np.concatenate([silence, audio, silence])
        agent = np.zeros_like(customer)
        client = IngestClient(service.ingest.url)
        result = await client.stream([customer, agent], ("customer", "agent"), call_id="live-1", speed=None,
                                     language="en", metadata={"caller": "13800138000"})
        assert not result.errors
        r = aioredis.from_url(service.redis_url, decode_responses=True)
        alert_entries = []
        for _ in range(100):
            alert_entries = await r.xrange(keys.alerts_stream(cfg))
            if alert_entries:
                break
            await asyncio.sleep(0.05)
        assert alert_entries, "no alert"
        alert_id, fields = alert_entries[0]
        alert = from_fields(fields)
        assert isinstance(alert, Alert) and alert.rule == "ops.sorrow" and alert.call_id == "live-1"
        trigger = None
        for entry_id, f in await r.xrange(keys.finals_stream(cfg)):
            e = from_fields(f)
            if isinstance(e, Transcript) and e.segment_id == alert.segment_id:
                trigger = (entry_id, e)
        assert trigger is not None and "sorrow" in trigger[1].text.lower()
        # both entry ids carry the Redis server's clock: final appended -> alert appended
        latency_ms = int(alert_id.split("-")[0]) - int(trigger[0].split("-")[0])
        assert 0 <= latency_ms < 1000, latency_ms
        assert alert.emitted_at_ms - alert.trigger_at_ms < 1000
        # the call's own stream carries its insights next to the captions
        await service.analytics.drain(10)
        per_call = [from_fields(f) for _, f in await r.xrange(keys.call_stream(cfg, "live-1"))]
        assert any(isinstance(e, Alert) for e in per_call) and any(isinstance(e, CallSummary) for e in per_call)
        summary = next(e for e in per_call if isinstance(e, CallSummary))
        assert summary.caller == "13800138000" and "escalation" in summary.alerts
        await r.aclose()
        print(f"alert latency after the final: {latency_ms} ms")
    finally:
        await service.stop()
