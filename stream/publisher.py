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
* **Outages.** Connection refused/reset/timeouts and retryable replies (LOADING, BUSY, OOM, READONLY, ...)
  are retried with backoff 0.1 s .. 2 s, logged once per outage at WARNING with the number of buffered
  events, and the recovery is logged too. ``publish`` never raises for Redis errors. An entry Redis rejects
  for good (e.g. a key of the wrong type) is logged with its call id and counted in ``stats.rejected``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass
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
from callscribe.events import Event, Transcript, to_fields

from . import keys

log = logging.getLogger(__name__)

BATCH = 100
"""Events per pipelined round trip."""
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0

# KEYS: marker, per-call stream[, global stream]
# ARGV: ttl_s (marker and per-call stream), call maxlen, global maxlen, field, value, ...
# Returns 1 when written, 0 when the marker says it already was.
# Both stream keys are type-checked before the first write, so a write either happens whole or not at all
# (the first XADD is also where the OOM check of a script happens); the marker is set last.
WRITE_ONCE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= 'stream' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. t .. ', not a stream')
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[2], ARGV[1])
if #KEYS == 3 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""

# Replies that mean "not now" rather than "never": the batch is retried.
_RETRYABLE_REPLIES = (BusyLoadingError, OutOfMemoryError, ReadOnlyError, TryAgainError, ClusterDownError, MasterDownError)
_RETRYABLE_PREFIXES = ("LOADING", "BUSY", "OOM", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS")


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


def is_durable(event: Event) -> bool:
    """Everything but partials must reach Redis (and the global stream)."""
    return not (isinstance(event, Transcript) and not event.is_final)


class RedisPublisher:
    """Writes events to Redis Streams from one writer task. See the module docstring for the contract."""

    def __init__(self, cfg: Config, url: str, batch_size: int = BATCH) -> None:
        self.cfg = cfg
        self.url = url
        self.batch_size = max(1, batch_size)
        self.stats = PublisherStats()
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
        self.on_written: Callable[[Event], None] | None = None
        """Called for each event once Redis has acknowledged it (benchmarks measure latency with it)."""

    @property
    def client(self) -> aioredis.Redis:
        """The publisher's Redis client (tests and tools may read through it)."""
        return self._redis

    # --- life cycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None and not self._stopped:
            self._task = asyncio.create_task(self._writer(), name="redis-publisher")

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
            durable = sum(1 for e in self._queue if is_durable(e))
            log.error("Redis publisher stopping with %d events (%d durable) not written to %s", len(self._queue), durable, self.url)
        await self._redis.aclose()

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
            if not self.stats.redis_up:
                self.stats.redis_up = True
                log.warning(
                    "Redis at %s is back after %.1f s; writing %d buffered events",
                    self.url, time.monotonic() - self._down_since, len(self._queue),
                )
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
        calls = [self._args(event) for event in batch]
        results = await self._run(calls, by_sha=True)
        first = next((i for i, r in enumerate(results) if isinstance(r, NoScriptError)), None)
        if first is not None:  # a restarted or flushed server: EVAL sends (and caches) the script
            results[first:] = await self._run(calls[first:], by_sha=False)
        for res in results:
            if isinstance(res, _RETRYABLE_REPLIES) or (isinstance(res, ResponseError) and str(res).startswith(_RETRYABLE_PREFIXES)):
                raise _RetryBatch(str(res))
        return results

    async def _run(self, calls: list[tuple[list[str], list[str]]], by_sha: bool) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for k, a in calls:
            if by_sha:
                pipe.evalsha(self._script.sha, len(k), *k, *a)
            else:
                pipe.eval(WRITE_ONCE_LUA, len(k), *k, *a)
        return await pipe.execute(raise_on_error=False)

    def _args(self, event: Event) -> tuple[list[str], list[str]]:
        cfg = self.cfg
        k = [keys.event_dedup_key(cfg, event), keys.call_stream(cfg, event.call_id)]
        if is_durable(event):
            k.append(keys.finals_stream(cfg))
        a = [str(cfg.call_stream_ttl_s), str(cfg.call_stream_maxlen), str(cfg.global_stream_maxlen)]
        for name, value in to_fields(event).items():
            a += [name, value]
        return k, a

    async def _on_failure(self, exc: BaseException) -> None:
        self.stats.retries += 1
        if self.stats.redis_up:
            self.stats.redis_up = False
            self.stats.outages += 1
            self._down_since = time.monotonic()
            log.warning(
                "Redis at %s unavailable (%s: %s); holding %d buffered events, retrying",
                self.url, type(exc).__name__, exc, len(self._queue),
                exc_info=not isinstance(exc, (RedisError, OSError, asyncio.TimeoutError, _RetryBatch)),  # a bug: show where
            )
        else:
            log.debug("Redis at %s still unavailable: %s", self.url, exc)
        async with self._changed:  # partials are stale by the time Redis is back: let them go
            kept = deque(e for e in self._queue if is_durable(e))
            self.stats.partials_dropped += len(self._queue) - len(kept)
            self._queue = kept
            self.stats.buffered = len(kept)
            self._changed.notify_all()


__all__ = ["RedisPublisher", "PublisherStats", "is_durable", "BATCH", "WRITE_ONCE_LUA"]
