"""Ordered, idempotent, outage-proof writes of call events to Redis Streams.

Contract of :class:`RedisPublisher`:

* **Where.** Every event goes to its call's stream (``keys.call_stream``; MAXLEN ~ ``call_stream_maxlen``,
  expiry refreshed to ``call_stream_ttl_s`` on each write). Finals, call_started and call_ended also go to the
  global stream (``keys.finals_stream``; MAXLEN ~ ``global_stream_maxlen``). Partials never do.
* **Exactly once.** Each event is written by one Lua script that checks and sets a write-once marker
  (``keys.event_dedup_key``: segment_id + revision, or the call's start/end) and XADDs, atomically. A batch
  retried after a lost reply or a reconnect therefore never duplicates an entry, and neither does publishing
  the same revision twice.
* **Ordered.** One FIFO queue, one writer task: entries land in the order ``publish`` was called (producers
  blocked on a full queue are admitted first come, first served). Up to ``BATCH`` events go in one pipelined
  round trip; a failed batch stays at the head of the queue and is retried whole.
* **Bounded.** The queue holds at most ``cfg.final_buffer_max`` events. A durable event (final, start, end)
  that finds it full makes ``publish`` wait (backpressure): durable events are never dropped. A partial is
  never waited for: it is dropped (``stats.partials_dropped``) when the queue is full, a producer is waiting,
  or Redis is down; partials already queued are discarded when an outage starts (stale by the time Redis is
  back).
* **Outages.** Whatever Redis answers is an outage unless it says this entry can never be written
  (``is_permanent``: WRONGTYPE, bad arguments, an event that cannot be encoded): connection refused/reset,
  timeouts, MISCONF (a full disk under the AOF), OOM, READONLY, LOADING, NOAUTH ... The batch is retried with
  backoff 0.1 s .. 2 s, logged once per outage at WARNING with the number of buffered events, and the
  recovery is logged too. ``publish`` never raises for Redis errors. A permanent refusal is logged with its
  call id and counted in ``stats.rejected``; it never holds up the events behind it.
* **Told, not hidden.** ``add_listener`` callbacks hear when an outage starts and when every event buffered
  during it is written (the ingest tells its clients, docs/protocol.md ``storage``); ``degraded`` and
  ``pending(call_id)`` say the same on demand.
* **Survives a stop.** Durable events still unwritten at ``stop`` are saved to ``spool_dir`` (JSON lines,
  fsynced, 0600) and queued first at the next ``start``; a spool file is deleted once its events are in Redis.
* **Live calls and call ids.** The same write-once script keeps ``keys.live_calls`` (a call's start adds it
  under this publisher's ``node_id``, its end removes it) for the reaper (stream/liveness.py), and
  ``claim_call`` takes a call id once for the life of its data (reused ids are refused by the pipeline).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from callscribe.config import Config
from callscribe.errors import CallscribeError
from callscribe.events import CallEnded, CallStarted, Event, Transcript, from_fields, to_fields

from . import keys
from .server import safe_url

log = logging.getLogger(__name__)

BATCH = 100
"""Events per pipelined round trip."""
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0

# KEYS: marker, live-calls hash, per-call stream[, global stream]
# ARGV: ttl_s (marker and per-call stream), call maxlen, global maxlen, live op ('' | 'add' | 'del'), call id,
#       live value, field, value, ...
# Returns 1 when written, 0 when the marker says it already was.
# Both stream keys are type-checked before the first write, so a write either happens whole or not at all
# (the first XADD is also where the OOM / MISCONF check of a script happens); the marker is set last. A call's
# start adds it to the live-calls hash, its end removes it, in the same atomic step (stream/liveness.py).
WRITE_ONCE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 3, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= 'stream' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. t .. ', not a stream')
  end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 7))
redis.call('EXPIRE', KEYS[3], ARGV[1])
if #KEYS == 4 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 7))
end
if ARGV[4] == 'add' then
  redis.call('HSET', KEYS[2], ARGV[5], ARGV[6])
elseif ARGV[4] == 'del' then
  redis.call('HDEL', KEYS[2], ARGV[5])
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""

# KEYS: claim, the call's start marker. ARGV: node id, ttl_s. 1 = the id is ours now, 0 = it names another call.
CLAIM_LUA = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
return 0
"""

# An outage is an outage whatever Redis answers: a disk that is full (MISCONF), memory (OOM), a replica
# (READONLY), a server still loading its AOF (LOADING), a lost password (NOAUTH / NOPERM) ... all mean "not
# now", and the batch is retried. Only replies that say *this entry* can never be written are permanent.
_RETRYABLE_REPLIES = (BusyLoadingError, OutOfMemoryError, ReadOnlyError, TryAgainError, ClusterDownError, MasterDownError)
_PERMANENT_PREFIXES = ("WRONGTYPE",)
_PERMANENT_PHRASES = ("wrong number of arguments", "syntax error", "value is not", "invalid expire", "not an integer")


def is_permanent(reply: BaseException) -> bool:
    """True when Redis refused an entry for good (retrying cannot help); everything else is an outage."""
    if isinstance(reply, UnencodableEvent):
        return True
    if isinstance(reply, _RETRYABLE_REPLIES) or not isinstance(reply, ResponseError):
        return False
    text = str(reply)
    return text.startswith(_PERMANENT_PREFIXES) or any(p in text for p in _PERMANENT_PHRASES)


class UnencodableEvent(ResponseError):
    """An event whose fields cannot be sent at all: refused for good, logged with its call id."""


class _RetryBatch(Exception):
    """A reply inside the pipeline asked for a retry of the batch."""


@dataclass(slots=True)
class PublisherStats:
    """Counters of one publisher. Plain attributes: read them any time from the event loop."""

    published: int = 0
    """Entries written (each counts once, whatever the number of streams it went to)."""
    duplicates_skipped: int = 0
    """Writes the marker found already done (re-published revisions, retried batches)."""
    partials_dropped: int = 0
    rejected: int = 0
    """Events Redis refused for good, or published after ``stop``; logged with their call id."""
    retries: int = 0
    """Failed batch attempts (each one is retried)."""
    outages: int = 0
    redis_up: bool = True
    buffered: int = 0
    """Events queued now (the batch being written included)."""


def default_node_id() -> str:
    """A name for this process that no other process, here or on another host, shares."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def is_durable(event: Event) -> bool:
    """Everything but partials must reach Redis (and the global stream)."""
    return not (isinstance(event, Transcript) and not event.is_final)


class RedisPublisher:
    """Writes events to Redis Streams from one writer task. See the module docstring for the contract."""

    def __init__(self, cfg: Config, url: str, batch_size: int = BATCH, node_id: str = "",
                 spool_dir: str | os.PathLike[str] | None = None) -> None:
        self.cfg = cfg
        self.url = url
        self._safe_url = safe_url(url)  # for logs: no password
        self.batch_size = max(1, batch_size)
        self.node_id = node_id or default_node_id()
        """This process in the live-calls hash and the heartbeat (stream/liveness.py)."""
        self.spool_dir = Path(spool_dir) if spool_dir else None
        """Where durable events still unwritten at ``stop`` are saved, and re-queued from at ``start``."""
        self.stats = PublisherStats()
        self._listeners: list[Callable[[bool, int], None]] = []
        self._spooled: list[tuple[Path, Event]] = []  # spool files re-queued, with their last event
        # no retries inside redis-py: the writer owns retrying (and counting, and logging) failures
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10, retry=Retry(NoBackoff(), 0)
        )
        self._script = self._redis.register_script(WRITE_ONCE_LUA)  # only for its sha
        self._queue: deque[Event] = deque()
        self._changed = asyncio.Condition()  # queue grew or shrank
        self._admit = asyncio.Lock()  # FIFO among producers of durable events
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._down_since = 0.0
        self._catching_up = False  # Redis is back, events buffered during the outage not all written yet
        self.on_written: Callable[[Event], None] | None = None
        """Called for each event once Redis has acknowledged it (benchmarks measure latency with it)."""

    @property
    def client(self) -> aioredis.Redis:
        """The publisher's Redis client (tests and tools may read through it)."""
        return self._redis

    # --- life cycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None and not self._stopped:
            self._load_spool()
            self._task = asyncio.create_task(self._writer(), name="redis-publisher")

    def add_listener(self, callback: Callable[[bool, int], None]) -> None:
        """``callback(durable, buffered)`` when an outage starts (False) and when it is over and every
        buffered event is written (True). Called on the event loop; must not block."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[bool, int], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _notify(self, durable: bool) -> None:
        for cb in list(self._listeners):
            try:
                cb(durable, len(self._queue))
            except Exception:  # a listener's bug must not stop the writer
                log.exception("publisher listener failed")

    @property
    def degraded(self) -> bool:
        """Redis is not taking writes, or is back but the events buffered meanwhile are not all written."""
        return not self.stats.redis_up or self._catching_up

    def pending(self, call_id: str) -> int:
        """Durable events of ``call_id`` not yet acknowledged by Redis."""
        return sum(1 for e in self._queue if e.call_id == call_id and is_durable(e))

    async def claim_call(self, call_id: str, timeout_s: float = 2.0) -> bool:
        """Take ``call_id`` for a new call: False when it already names a call (live, or ended and still
        kept). Redis unreachable: True (logged), since refusing every call during an outage loses more."""
        claim = keys.call_claim(self.cfg, call_id)
        marker = keys.dedup_key(self.cfg, f"{call_id}/call", "started")
        try:
            async with asyncio.timeout(timeout_s):
                res = await self._redis.eval(CLAIM_LUA, 2, claim, marker, self.node_id, str(self.cfg.call_stream_ttl_s))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("call %s: could not check its call id with Redis (%s); accepting it", call_id, exc)
            return True
        return int(res) == 1

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Write what is queued (for up to ``drain_timeout_s``), then stop the writer and close the client."""
        if self._stopped:
            return
        if self._task is not None:
            await self.flush(drain_timeout_s)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._stopped = True
        if self._queue:
            durable = [e for e in self._queue if is_durable(e)]
            if durable and self.spool_dir is not None and self._spool(durable):
                log.warning("Redis at %s unavailable at stop: %d durable events saved to %s; they are written at the "
                            "next start", self._safe_url, len(durable), self.spool_dir)
            elif durable:
                log.error("Redis publisher stopping with %d durable events not written to %s", len(durable), self._safe_url)
        await self._redis.aclose()

    # --- spool: durable events that outlive the process -------------------------------------------------
    def _spool(self, events: list[Event]) -> bool:
        """Write ``events`` to a new spool file (JSON lines, fsynced, mode 0600). False if that failed."""
        assert self.spool_dir is not None
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.spool_dir / f"{time.time_ns():020d}-{os.getpid()}.jsonl"
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for e in events:
                    f.write(json.dumps(to_fields(e), ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return True
        except OSError as exc:
            log.error("could not save %d unwritten events to %s: %s", len(events), self.spool_dir, exc)
            return False

    def _load_spool(self) -> None:
        """Queue the events of earlier spool files first (oldest file first); a file is deleted once its
        events are in Redis (write-once markers make a second replay harmless)."""
        if self.spool_dir is None or not self.spool_dir.is_dir():
            return
        for path in sorted(self.spool_dir.glob("*.jsonl")):
            events: list[Event] = []
            try:
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        events.append(from_fields(json.loads(line)))
            except (OSError, ValueError, CallscribeError) as exc:
                log.error("spool file %s unreadable (%s); left in place", path, exc)
                continue
            if not events:
                path.unlink(missing_ok=True)
                continue
            self._queue.extend(events)
            self._spooled.append((path, events[-1]))
            log.warning("re-queued %d events saved in %s at an earlier stop", len(events), path)
        self.stats.buffered = len(self._queue)

    # --- producers -------------------------------------------------------------------------------------
    async def publish(self, event: Event) -> None:
        """Queue ``event`` for writing. Waits only for a durable event and a full queue; never raises for Redis."""
        if self._stopped:
            self.stats.rejected += 1
            log.error("publish after stop: %s of call %s not written", event.TYPE, event.call_id)
            return
        limit = self.cfg.final_buffer_max
        if not is_durable(event):
            if not self.stats.redis_up or self._admit.locked() or len(self._queue) >= limit:
                self.stats.partials_dropped += 1
                return
            await self._append(event)
            return
        waited = False
        try:
            async with self._admit:
                async with self._changed:
                    if len(self._queue) >= limit:
                        waited = True
                        await self._changed.wait_for(lambda: len(self._queue) < limit)
                    self._queue.append(event)
                    self.stats.buffered = len(self._queue)
                    self._changed.notify_all()
        finally:
            if waited:  # the admission lock is free now: a flush may be waiting for exactly that
                async with self._changed:
                    self._changed.notify_all()

    async def _append(self, event: Event) -> None:
        async with self._changed:
            self._queue.append(event)
            self.stats.buffered = len(self._queue)
            self._changed.notify_all()

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every event published so far is written (queue empty, no producer waiting).

        Returns False if that did not happen within ``timeout_s`` (Redis down, or no writer running).
        """
        try:
            async with asyncio.timeout(timeout_s):
                async with self._changed:
                    await self._changed.wait_for(lambda: not self._queue and not self._admit.locked())
            return True
        except TimeoutError:
            return False

    # --- writer ----------------------------------------------------------------------------------------
    async def _writer(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._queue))
                batch = list(itertools.islice(self._queue, self.batch_size))
            try:
                results = await self._write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble, retryable reply, or a bug: keep the batch, retry
                await self._on_failure(exc)
                await asyncio.sleep(backoff)
                backoff = min(BACKOFF_MAX_S, backoff * 2)
                continue
            backoff = BACKOFF_MIN_S
            async with self._changed:
                for _ in batch:  # only the writer removes from the head, and only partials behind it
                    self._queue.popleft()
                self.stats.buffered = len(self._queue)
                self._changed.notify_all()
            while self._spooled and any(e is self._spooled[0][1] for e in batch):
                self._spooled.pop(0)[0].unlink(missing_ok=True)
            if not self.stats.redis_up:
                self.stats.redis_up = True
                self._catching_up = True
                log.warning(
                    "Redis at %s is back after %.1f s; writing %d buffered events",
                    self._safe_url, time.monotonic() - self._down_since, len(self._queue),
                )
            if self._catching_up and not any(is_durable(e) for e in self._queue):
                self._catching_up = False
                self._notify(True)
            for event, res in zip(batch, results):
                if isinstance(res, Exception):
                    self.stats.rejected += 1
                    log.error("Redis rejected %s of call %s: %s", event.TYPE, event.call_id, res)
                elif int(res) == 1:
                    self.stats.published += 1
                    if self.on_written is not None:
                        self.on_written(event)
                else:
                    self.stats.duplicates_skipped += 1

    async def _write(self, batch: list[Event]) -> list[Any]:
        """Write one batch in one round trip: per event 1 (written), 0 (already there) or a permanent error.

        Raises on connection errors and retryable replies (the caller retries the whole batch: idempotent).
        """
        # An event that cannot even be encoded (a lone surrogate in its text, a bug) is refused for good on
        # its own: retrying it would stall every call's events behind it.
        results: list[Any] = [None] * len(batch)
        calls: list[tuple[list[bytes], list[bytes]]] = []
        index: list[int] = []
        for i, event in enumerate(batch):
            try:
                k, a = self._args(event)
                # encoded here once: the client passes bytes through (it would encode every argument again)
                kb, ab = [x.encode("utf-8") for x in k], [x.encode("utf-8") for x in a]
            except Exception as exc:  # noqa: BLE001 - whatever it is, it is this event's alone
                results[i] = UnencodableEvent(f"{type(exc).__name__}: {exc}"[:200])
                continue
            calls.append((kb, ab))
            index.append(i)
        if calls:
            sent = await self._run(calls, by_sha=True)
            first = next((j for j, r in enumerate(sent) if isinstance(r, NoScriptError)), None)
            if first is not None:  # a restarted or flushed server: EVAL sends (and caches) the script
                sent[first:] = await self._run(calls[first:], by_sha=False)
            for res in sent:
                if isinstance(res, Exception) and not is_permanent(res):
                    raise _RetryBatch(str(res))
            for i, res in zip(index, sent):
                results[i] = res
        return results

    async def _run(self, calls: list[tuple[list[bytes], list[bytes]]], by_sha: bool) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for k, a in calls:
            if by_sha:
                pipe.evalsha(self._script.sha, len(k), *k, *a)
            else:
                pipe.eval(WRITE_ONCE_LUA, len(k), *k, *a)
        return await pipe.execute(raise_on_error=False)

    def _args(self, event: Event) -> tuple[list[str], list[str]]:
        cfg = self.cfg
        k = [keys.event_dedup_key(cfg, event), keys.live_calls(cfg), keys.call_stream(cfg, event.call_id)]
        if is_durable(event):
            k.append(keys.finals_stream(cfg))
        a = [str(cfg.call_stream_ttl_s), str(cfg.call_stream_maxlen), str(cfg.global_stream_maxlen)]
        if isinstance(event, CallStarted):
            a += ["add", event.call_id, f"{self.node_id}|{event.started_at_ms}"]
        elif isinstance(event, CallEnded):
            a += ["del", event.call_id, ""]
        else:
            a += ["", event.call_id, ""]
        for name, value in to_fields(event).items():
            a += [name, value]
        return k, a

    async def _on_failure(self, exc: BaseException) -> None:
        self.stats.retries += 1
        if self.stats.redis_up:
            self.stats.redis_up = False
            self.stats.outages += 1
            self._down_since = time.monotonic()
            self._notify(False)
            log.warning(
                "Redis at %s unavailable (%s: %s); holding %d buffered events, retrying",
                self._safe_url, type(exc).__name__, exc, len(self._queue),
                exc_info=not isinstance(exc, (RedisError, OSError, asyncio.TimeoutError, _RetryBatch)),  # a bug: show where
            )
        else:
            log.debug("Redis at %s still unavailable: %s", self._safe_url, exc)
        async with self._changed:  # partials are stale by the time Redis is back: let them go
            kept = deque(e for e in self._queue if is_durable(e))
            self.stats.partials_dropped += len(self._queue) - len(kept)
            self._queue = kept
            self.stats.buffered = len(kept)
            self._changed.notify_all()


__all__ = ["RedisPublisher", "PublisherStats", "is_durable", "is_permanent", "default_node_id", "BATCH", "WRITE_ONCE_LUA", "CLAIM_LUA"]
