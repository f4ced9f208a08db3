"""Redis Streams layer against a real server: order, idempotency, outage and restart, backpressure."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from callscribe.config import Config
from callscribe.events import CallEnded, CallStarted, Transcript
from callscribe.stream import RedisPublisher, keys, read_call, read_finals

pytestmark = pytest.mark.integration


def tr(call: str, seq: int, rev: int, final: bool, text: str = "") -> Transcript:
    return Transcript(call, "customer", f"{call}/customer/{seq}", rev, final, text or f"utterance {seq} rev {rev}",
                      seq * 1000, seq * 1000 + 800, "en", 0.9)


async def test_order_and_split_between_streams(redis_server, tmp_path):
    cfg = Config(data_dir=str(tmp_path))
    pub = RedisPublisher(cfg, redis_server.url)
    await pub.start()
    sent = [CallStarted("c1", ("customer", "agent"), metadata={"agent_id": "a7"})]
    for seq in range(5):
        sent += [tr("c1", seq, 0, False), tr("c1", seq, 1, False), tr("c1", seq, 2, True)]
    sent.append(CallEnded("c1", 5000, "hangup", 5))
    for ev in sent:
        await pub.publish(ev)
    assert await pub.flush(5)
    r = aioredis.from_url(redis_server.url)
    assert await read_call(r, cfg, "c1") == sent
    durable = [e for e in sent if not (isinstance(e, Transcript) and not e.is_final)]
    assert await read_finals(r, cfg) == durable
    ttl = await r.ttl(keys.call_stream(cfg, "c1"))
    assert 0 < ttl <= cfg.call_stream_ttl_s
    await r.aclose()
    await pub.stop()


async def test_same_segment_revision_written_once(redis_server, tmp_path):
    cfg = Config(data_dir=str(tmp_path))
    pub = RedisPublisher(cfg, redis_server.url)
    await pub.start()
    final = tr("c2", 0, 3, True)
    for _ in range(3):
        await pub.publish(final)
    await pub.flush(5)
    r = aioredis.from_url(redis_server.url)
    assert await read_call(r, cfg, "c2") == [final]
    assert pub.stats.duplicates_skipped == 2
    await r.aclose()
    await pub.stop()


async def test_redis_killed_and_restarted_mid_call_keeps_every_final_once(redis_server, tmp_path):
    cfg = Config(data_dir=str(tmp_path))
    pub = RedisPublisher(cfg, redis_server.url)
    await pub.start()
    await pub.publish(CallStarted("c3", ("customer",)))
    finals = []
    for seq in range(40):
        if seq == 10:
            await pub.flush(5)
            redis_server.kill()  # a crash: AOF fsync'd every second, the flushed part survives
            await asyncio.sleep(1.2)
        if seq == 30:
            redis_server.start()
        await pub.publish(tr("c3", seq, 0, False))
        f = tr("c3", seq, 1, True)
        finals.append(f)
        await pub.publish(f)
        await asyncio.sleep(0.05)
    await pub.publish(CallEnded("c3", 40_000, "hangup", 40))
    assert await pub.flush(15)
    assert pub.stats.outages == 1
    r = aioredis.from_url(redis_server.url)
    got = [e for e in await read_call(r, cfg, "c3") if isinstance(e, Transcript) and e.is_final]
    assert got == finals  # every final, once, in order
    assert [e for e in await read_finals(r, cfg, "c3") if isinstance(e, Transcript)] == finals
    await r.aclose()
    await pub.stop()


async def test_retry_after_unacknowledged_write_does_not_duplicate(redis_server, tmp_path):
    """The case a lost reply creates: the script ran, the client retries the same batch."""
    cfg = Config(data_dir=str(tmp_path))
    pub = RedisPublisher(cfg, redis_server.url)
    batch = [tr("c4", 0, 1, True), tr("c4", 1, 1, True)]
    assert await pub._write(batch) == [1, 1]
    assert await pub._write(batch) == [0, 0]
    r = aioredis.from_url(redis_server.url)
    assert await read_call(r, cfg, "c4") == batch
    await r.aclose()
    await pub.stop(0.1)


async def test_backpressure_when_buffer_full_and_redis_down(redis_server, tmp_path):
    cfg = Config(data_dir=str(tmp_path), final_buffer_max=5)
    redis_server.kill()
    pub = RedisPublisher(cfg, redis_server.url)
    await pub.start()
    for seq in range(5):
        await pub.publish(tr("c5", seq, 0, True))
    await pub.publish(tr("c5", 99, 0, False))  # partial: returns at once, dropped
    assert pub.stats.partials_dropped == 1
    blocked = asyncio.create_task(pub.publish(tr("c5", 5, 0, True)))
    await asyncio.sleep(0.5)
    assert not blocked.done()  # waits for room, does not drop
    redis_server.start()
    await asyncio.wait_for(blocked, 10)
    assert await pub.flush(10)
    r = aioredis.from_url(redis_server.url)
    got = await read_call(r, cfg, "c5")
    assert [e.segment_id for e in got] == [f"c5/customer/{i}" for i in range(6)]
    await r.aclose()
    await pub.stop()


async def test_maxlen_bounds_call_stream(redis_server, tmp_path):
    cfg = Config(data_dir=str(tmp_path), call_stream_maxlen=100)
    pub = RedisPublisher(cfg, redis_server.url)
    await pub.start()
    for seq in range(1000):
        await pub.publish(tr("c6", seq, 0, True))
    await pub.flush(10)
    r = aioredis.from_url(redis_server.url)
    n = await r.xlen(keys.call_stream(cfg, "c6"))
    assert 100 <= n < 300  # MAXLEN ~ trims by whole nodes
    assert await r.xlen(keys.finals_stream(cfg)) == 1000
    await r.aclose()
    await pub.stop()
