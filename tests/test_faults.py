"""Fault injection with real processes: nothing lost, nobody told a lie (docs/faults.md).

Each test streams real speech through the real service, injects one fault mid-call (a full disk under Redis
and the store, kill -9 of the embedded Redis, SIGTERM of ``callscribe serve``, kill -9 of a serving node,
the store's disk full), and then checks the promise: every final of every call is in Redis and in the search
store exactly once and in order, no call stays live for ever, and the client was told when its finals were
not durable yet. Disk-full tests mount a small tmpfs (root; CI runs as root) and are skipped where mounting
is not allowed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from callscribe.config import Config
from callscribe.events import CallEnded, CallStarted, Transcript
from callscribe.filerun import load_call_audio
from callscribe.gateway.client import IngestClient
from callscribe.gateway.web.auth import TokenAuthority
from callscribe.service import Service
from callscribe.stream import EmbeddedRedis, RedisPublisher, keys, read_call
from callscribe.stream.liveness import Liveness

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[1] / "callscribe" / "data"
SECRET = "f" * 64


# --- helpers -------------------------------------------------------------------------------------------
class Tmpfs:
    """A small tmpfs mounted for one test (a disk that can be filled and freed)."""

    def __init__(self, path: Path, size: str = "4m") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (CI runs as root)")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        self.filler = path / "filler"

    def fill(self) -> None:
        """Take every free byte."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for block in (1 << 16, 512, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * block)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


async def finals_in_redis(url: str, cfg: Config, call_id: str) -> list[Transcript]:
    r = aioredis.from_url(url)
    try:
        events = await read_call(r, cfg, call_id)
    finally:
        await r.aclose()
    return [e for e in events if isinstance(e, Transcript) and e.is_final and e.text]


async def call_events(url: str, cfg: Config, call_id: str):
    r = aioredis.from_url(url)
    try:
        return await read_call(r, cfg, call_id)
    finally:
        await r.aclose()


def assert_exactly_once_in_order(stored: list[Transcript], sent: list[Transcript]) -> None:
    """Redis holds each final the client got, once, in the order the client got them."""
    ids = [t.segment_id for t in stored]
    assert len(ids) == len(set(ids)), f"duplicated finals: {ids}"
    assert ids == [t.segment_id for t in sent], (ids, [t.segment_id for t in sent])
    assert [t.text for t in stored] == [t.text for t in sent]


def assert_store_has(store, call_id: str, sent: list[Transcript]) -> None:
    found = store.call(call_id)
    assert found is not None, f"call {call_id} not in the search store"
    _, rows = found
    ids = [u.segment_id for u in rows]
    assert len(ids) == len(set(ids)), ids
    assert set(ids) == {t.segment_id for t in sent}


async def until(predicate, timeout_s: float, what: str, step_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await predicate() if asyncio.iscoroutinefunction(predicate) else predicate()
        if value:
            return value
        await asyncio.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def service_config(asr_config: Config, data_dir: Path, **kw) -> Config:
    return asr_config.replace(redis_url="", data_dir=str(data_dir), port=0, web=True, web_port=0, partials=True,
                              ingest_auth=True, auth_secret=SECRET, **kw)


async def live_calls(url: str, cfg: Config) -> dict:
    r = aioredis.from_url(url, decode_responses=True)
    try:
        return await r.hgetall(keys.live_calls(cfg))
    finally:
        await r.aclose()


# --- kill -9 of the embedded Redis ------------------------------------------------------------------------
async def test_kill9_of_embedded_redis_mid_call_loses_nothing(engine, asr_config, tmp_path):
    cfg = service_config(asr_config, tmp_path / "data")
    svc = Service(cfg, engine=engine)
    await svc.start()
    try:
        client = IngestClient(svc.ingest.url, token=svc.ingest.mint_token("faults"))
        channels, names = load_call_audio(DATA / "demo_call_en.wav", Config())
        old_pid = svc._embedded.pid

        async def crash() -> None:
            await asyncio.sleep(5)
            os.kill(old_pid, signal.SIGKILL)

        result, _ = await asyncio.gather(
            client.stream(channels, names, call_id="f-kill", speed=3.0, metadata={"agent_id": "a1", "caller": "13800001234"}),
            crash(),
        )
        assert result.ended is not None and result.ended.reason == "client_end"
        await until(lambda: svc._embedded.restarts >= 1 and svc._embedded.pid not in (None, old_pid), 20, "Redis restarted")
        assert await svc.publisher.flush(20)
        sent = result.finals
        assert len(sent) >= 3
        assert_exactly_once_in_order(await finals_in_redis(svc.redis_url, cfg, "f-kill"), sent)
        assert await svc.web.ingest.drain(20)
        assert_store_has(svc.web.store, "f-kill", sent)
        assert await live_calls(svc.redis_url, cfg) == {}  # ended: no ghost
        async with httpx.AsyncClient(base_url=svc.web.url) as http:
            async def ready() -> bool:
                return (await http.get("/ready")).status_code == 200

            await until(ready, 20, "/ready after the restart")
    finally:
        await svc.stop()


# --- disk full under Redis and the store ----------------------------------------------------------------------
async def test_disk_full_mid_call_holds_finals_tells_the_client_and_writes_them_once_freed(engine, asr_config, tmp_path):
    disk = Tmpfs(tmp_path / "disk", "4m")
    try:
        cfg = service_config(asr_config, disk.path)
        svc = Service(cfg, engine=engine)
        await svc.start()
        try:
            client = IngestClient(svc.ingest.url, token=svc.ingest.mint_token("faults"))
            channels, names = load_call_audio(DATA / "demo_call_zh.wav", Config())
            seen_down = asyncio.Event()
            ready_while_down: list[int] = []

            async def fault() -> None:
                await asyncio.sleep(3)
                disk.fill()
                await until(lambda: not svc.publisher.stats.redis_up, 15, "the publisher to see the full disk")
                seen_down.set()
                async with httpx.AsyncClient(base_url=svc.web.url) as http:
                    ready_while_down.append((await http.get("/ready")).status_code)
                await asyncio.sleep(4)
                disk.free()

            result, _ = await asyncio.gather(
                client.stream(channels, names, call_id="f-disk", speed=2.0, metadata={"agent_id": "a2"}), fault())
            assert seen_down.is_set() and ready_while_down == [503]
            # the client was told, and told again when its finals were stored
            assert any(m["durable"] is False for m in result.storage), result.storage
            assert result.durable, result.storage
            assert await svc.publisher.flush(30)
            sent = result.finals
            assert len(sent) >= 3
            assert_exactly_once_in_order(await finals_in_redis(svc.redis_url, cfg, "f-disk"), sent)
            assert await svc.web.ingest.drain(30)
            assert_store_has(svc.web.store, "f-disk", sent)
            assert svc.publisher.stats.rejected == 0
            assert await live_calls(svc.redis_url, cfg) == {}
        finally:
            disk.free()
            await svc.stop()
    finally:
        disk.unmount()


# --- the store's disk full, Redis fine ------------------------------------------------------------------------
async def test_store_disk_full_is_not_ready_and_nothing_is_acknowledged_unwritten(redis_server, asr_config, tmp_path):
    from callscribe.gateway.web import WebGateway

    disk = Tmpfs(tmp_path / "store", "4m")
    try:
        cfg = asr_config.replace(redis_url=redis_server.url, data_dir=str(tmp_path / "data"), web_port=0, auth_secret=SECRET,
                                 store_url=str(disk.path / "t.sqlite3"))
        async with WebGateway(cfg, redis_server.url) as gw:
            disk.fill()
            publisher = RedisPublisher(cfg, redis_server.url)
            await publisher.start()
            text = "我想查一下这个月的话费为什么多扣了三十块钱，" * 20
            sent = [Transcript("f-store", "customer", f"f-store/customer/{i}", 1, True, f"{i}:{text}", i * 1000, i * 1000 + 900, "zh", -0.2)
                    for i in range(40)]
            await publisher.publish(CallStarted("f-store", ("customer", "agent"), "zh", 8000, "pcm16", {"caller": "13800001111"}))
            for t in sent:
                await publisher.publish(t)
            await publisher.publish(CallEnded("f-store", 40_000, "hangup", finals=40))
            assert await publisher.flush(10)
            await publisher.stop()
            await until(lambda: not gw.ingest.healthy, 20, "the store ingest to fail on the full disk")
            assert "store" in gw.ingest.last_error
            async with httpx.AsyncClient(base_url=gw.url) as http:
                down = await http.get("/ready")
                assert down.status_code == 503 and "store" in down.json()["detail"]
                disk.free()
                assert await gw.ingest.drain(30)
                await until(lambda: gw.ingest.healthy, 10, "the store ingest to recover")
                assert (await http.get("/ready")).status_code == 200
            assert_store_has(gw.store, "f-store", sent)
    finally:
        disk.free()
        disk.unmount()


# --- durable events still unwritten at stop ---------------------------------------------------------------------
async def test_events_unwritten_at_stop_are_spooled_and_written_at_next_start(redis_server, tmp_path):
    cfg = Config(data_dir=str(tmp_path))
    spool = tmp_path / "spool"
    dead = RedisPublisher(cfg, "redis://127.0.0.1:1/0", spool_dir=spool)  # nothing listens on port 1
    await dead.start()
    finals = [Transcript("f-spool", "customer", f"f-spool/customer/{i}", 1, True, f"第{i}句", i * 1000, i * 1000 + 500, "zh", -0.2)
              for i in range(5)]
    await dead.publish(CallStarted("f-spool", ("customer",), "zh", 8000, "pcm16", {}))
    for t in finals:
        await dead.publish(t)
    await dead.publish(CallEnded("f-spool", 5000, "hangup", finals=5))
    await dead.stop(drain_timeout_s=0.5)
    files = list(spool.glob("*.jsonl"))
    assert len(files) == 1 and (files[0].stat().st_mode & 0o777) == 0o600
    for _ in range(2):  # a second start finds nothing left (and would write nothing twice anyway)
        pub = RedisPublisher(cfg, redis_server.url, spool_dir=spool)
        await pub.start()
        assert await pub.flush(10)
        await pub.stop()
    assert not list(spool.glob("*.jsonl"))
    assert_exactly_once_in_order(await finals_in_redis(redis_server.url, cfg, "f-spool"), finals)
    ends = [e for e in await call_events(redis_server.url, cfg, "f-spool") if isinstance(e, CallEnded)]
    assert len(ends) == 1


# --- real processes: SIGTERM and kill -9 of callscribe serve ------------------------------------------------------
def _serve(data_dir: Path, port: int, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "CALLSCRIBE_DATA_DIR": str(data_dir), "CALLSCRIBE_PORT": str(port), "CALLSCRIBE_WEB": "false",
           "CALLSCRIBE_SIP": "false", "CALLSCRIBE_ANALYTICS": "false", "CALLSCRIBE_AUTH_SECRET": SECRET,
           "CALLSCRIBE_CPU_THREADS": "2", **(env_extra or {})}
    env.pop("REDIS_URL", None)
    env.update({k: v for k, v in (env_extra or {}).items()})
    log = open(data_dir.parent / f"serve-{port}.log", "w")  # a file, not a pipe nobody drains (it would block)
    return subprocess.Popen([sys.executable, "-m", "callscribe", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True)


async def _wait_serving(proc: subprocess.Popen, port: int, timeout_s: float = 120) -> None:
    async def up() -> bool:
        if proc.poll() is not None:
            logs = sorted(Path(tempfile.gettempdir()).glob("**/serve-*.log"))
            raise AssertionError(f"serve exited {proc.returncode}: {logs[-1].read_text()[-2000:] if logs else ''}")
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200
        except httpx.HTTPError:
            return False

    await until(up, timeout_s, "callscribe serve to listen", step_s=0.3)


def _token() -> str:
    return TokenAuthority(SECRET.encode()).mint("ingest", "faults")[0]


async def test_sigterm_mid_call_ends_it_as_shutdown_with_every_final_written(tmp_path):
    from callscribe.stream.server import free_port

    port = free_port()
    data = tmp_path / "data"
    proc = _serve(data, port, {"CALLSCRIBE_WEB": "true", "CALLSCRIBE_WEB_PORT": str(free_port())})
    try:
        await _wait_serving(proc, port)
        client = IngestClient(f"ws://127.0.0.1:{port}/v1/ingest", token=_token())
        channels, names = load_call_audio(DATA / "demo_call_zh.wav", Config())

        async def terminate() -> None:
            await asyncio.sleep(8)
            proc.send_signal(signal.SIGTERM)

        result, _ = await asyncio.gather(client.stream(channels, names, call_id="f-term", speed=1.5), terminate())
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # the client heard the shutdown (not a silent cut) and had every final before the close
    assert result.ended is not None and result.ended.reason == "shutdown"
    assert result.close_code == 1001
    sent = result.finals
    assert len(sent) >= 2
    with EmbeddedRedis(data) as server:  # the same data dir, password and AOF
        cfg = Config(data_dir=str(data))
        assert_exactly_once_in_order(await finals_in_redis(server.url, cfg, "f-term"), sent)
        ends = [e for e in await call_events(server.url, cfg, "f-term") if isinstance(e, CallEnded)]
        assert [e.reason for e in ends] == ["shutdown"]
        assert await live_calls(server.url, cfg) == {}
        assert (data / "redis").stat().st_mode & 0o777 == 0o700
    from callscribe.gateway.store.sqlite import SqliteStore

    store = SqliteStore(data / "transcripts.sqlite3")  # the gateway drained its store ingest before exiting
    try:
        assert_store_has(store, "f-term", sent)
    finally:
        store.close()
    private = [f for f in (data / "redis").rglob("*") if f.is_file()] + list(data.glob("transcripts.sqlite3*"))
    for f in private:  # the AOF, the password, the logs and the store hold call data: this user only
        assert f.stat().st_mode & 0o077 == 0, f"{f} is readable by others"


async def test_kill9_of_a_serving_node_its_call_is_ended_as_lost(redis_server, tmp_path):
    from callscribe.stream.server import free_port

    port = free_port()
    proc = _serve(tmp_path / "data", port, {"REDIS_URL": redis_server.url})
    cfg = Config(data_dir=str(tmp_path))
    try:
        await _wait_serving(proc, port)
        client = IngestClient(f"ws://127.0.0.1:{port}/v1/ingest", token=_token())
        channels, names = load_call_audio(DATA / "demo_call_en.wav", Config())
        got_final = asyncio.Event()

        def on_event(e) -> None:
            if isinstance(e, Transcript) and e.is_final and e.text:
                got_final.set()

        stream = asyncio.create_task(client.stream(channels, names, call_id="f-lost", speed=1.0, on_event=on_event))
        await asyncio.wait_for(got_final.wait(), 60)
        assert "f-lost" in await live_calls(redis_server.url, cfg)
        proc.kill()
        proc.wait(10)
        await asyncio.wait_for(stream, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    publisher = RedisPublisher(cfg, redis_server.url)
    await publisher.start()
    reaper = Liveness(cfg, redis_server.url, "reaper", publisher.publish, is_local=lambda call_id: False)
    try:
        async def reaped() -> bool:
            await reaper.scan()
            return await live_calls(redis_server.url, cfg) == {}

        await until(reaped, 40, "the reaper to end the dead node's call", step_s=1.0)
        assert await publisher.flush(10)
    finally:
        await reaper.stop()
        await publisher.stop()
    ends = [e for e in await call_events(redis_server.url, cfg, "f-lost") if isinstance(e, CallEnded)]
    assert [e.reason for e in ends] == ["lost"] and ends[0].duration_ms > 0


async def test_an_unencodable_event_is_refused_alone_and_others_still_land(redis_server, tmp_path):
    """A lone surrogate (a bug upstream) must not jam the one writer every call shares."""
    cfg = Config(data_dir=str(tmp_path))
    pub = RedisPublisher(cfg, redis_server.url)
    await pub.start()
    bad = Transcript("f-bad", "customer", "f-bad/customer/0", 1, True, "bad \ud800 text", 0, 500, "zh", -0.2)
    good = Transcript("f-good", "customer", "f-good/customer/0", 1, True, "好的", 0, 500, "zh", -0.2)
    await pub.publish(bad)
    await pub.publish(good)
    assert await pub.flush(5) and not pub.degraded
    assert pub.stats.rejected == 1 and pub.stats.published == 1
    await pub.stop()
    assert_exactly_once_in_order(await finals_in_redis(redis_server.url, cfg, "f-good"), [good])
