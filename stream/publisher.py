"""Ordered, idempotent, outage-proof writes of call events to Redis Streams.

One FIFO queue, one writer task: events land in the order ``publish`` was called. Each write is a Lua
script that sets a write-once marker for (segment_id, revision) and only then XADDs, atomically, so a batch
retried after a connection error never duplicates an entry. While Redis is unreachable the writer retries
with backoff; finals (and call start/end) wait in the queue, bounded by ``final_buffer_max`` (past that
``publish`` waits: backpressure, never a drop); partials are dropped instead, they are stale by the time
Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from callscribe.config import Config
from callscribe.events import CallEnded, CallStarted, Event, Transcript, to_fields

from . import keys

log = logging.getLogger(__name__)
BATCH = 128
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError, asyncio.TimeoutError)

# KEYS: dedup marker, per-call stream[, global stream]
# ARGV: marker ttl, call maxlen, global maxlen, call ttl, field, value, ...
_WRITE_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[4])
if #KEYS == 3 then redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(fields)) end
return 1
"""


@dataclass(slots=True)
class PublisherStats:
    published: int = 0
    duplicates_skipped: int = 0
    partials_dropped: int = 0
    rejected: int = 0
    retries: int = 0
    outages: int = 0
    redis_up: bool = True
    buffered: int = 0


def is_durable(event: Event) -> bool:
    """Everything but partials must reach Redis."""
    return not (isinstance(event, Transcript) and not event.is_final)


class RedisPublisher:
    def __init__(self, cfg: Config, url: str) -> None:
        self.cfg = cfg
        self.url = url
        self.stats = PublisherStats()
        self._redis = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10)
        self._script = self._redis.register_script(_WRITE_ONCE)
        self._queue: deque[Event] = deque()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._inflight = 0

    @property
    def client(self) -> aioredis.Redis:
        return self._redis

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._writer(), name="redis-publisher")

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Write what is queued (up to ``drain_timeout_s``), then close."""
        await self.flush(drain_timeout_s)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._queue:
            log.error("stopping with %d events not written to Redis", len(self._queue))
        await self._redis.aclose()

    async def publish(self, event: Event) -> None:
        async with self._changed:
            if not is_durable(event):
                if not self.stats.redis_up or len(self._queue) >= self.cfg.final_buffer_max:
                    self.stats.partials_dropped += 1
                    return
            else:
                await self._changed.wait_for(lambda: len(self._queue) < self.cfg.final_buffer_max)
            self._queue.append(event)
            self.stats.buffered = len(self._queue)
            self._changed.notify_all()

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is written. False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                async with self._changed:
                    await self._changed.wait_for(lambda: not self._queue and not self._inflight)
            return True
        except TimeoutError:
            return False

    # --- writer ------------------------------------------------------------------------------------
    async def _writer(self) -> None:
        backoff = 0.1
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._queue))
                batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
                self._inflight = len(batch)
            try:
                results = await self._write(batch)
            except _TRANSIENT as exc:
                await self._on_outage(exc)
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
                continue
            finally:
                self._inflight = 0
            backoff = 0.1
            if not self.stats.redis_up:
                log.warning("Redis is back at %s; writing %d buffered events", self.url, len(self._queue))
                self.stats.redis_up = True
            async with self._changed:
                for _ in batch:
                    self._queue.popleft()
                self.stats.buffered = len(self._queue)
                self._changed.notify_all()
            for event, res in zip(batch, results):
                if isinstance(res, Exception):
                    self.stats.rejected += 1
                    log.error("Redis rejected %s of call %s: %s", event.TYPE, event.call_id, res)
                elif res == 1:
                    self.stats.published += 1
                else:
                    self.stats.duplicates_skipped += 1

    async def _write(self, batch: list[Event]) -> list:
        pipe = self._redis.pipeline(transaction=False)
        for event in batch:
            k, a = self._args(event)
            await self._script(keys=k, args=a, client=pipe)
        results = await pipe.execute(raise_on_error=False)
        for res in results:  # a transient error inside the pipeline fails the whole batch: retry it
            if isinstance(res, _TRANSIENT) or (isinstance(res, ResponseError) and str(res).startswith(("LOADING", "BUSY"))):
                raise RedisConnectionError(str(res))
        return results

    def _args(self, event: Event) -> tuple[list[str], list[str]]:
        cfg = self.cfg
        if isinstance(event, Transcript):
            marker = keys.dedup_key(cfg, event.segment_id, event.revision)
        elif isinstance(event, CallStarted):
            marker = keys.dedup_key(cfg, f"{event.call_id}/call", "started")
        elif isinstance(event, CallEnded):
            marker = keys.dedup_key(cfg, f"{event.call_id}/call", "ended")
        else:  # pragma: no cover - the Event union is closed
            raise TypeError(f"not an event: {event!r}")
        k = [marker, keys.call_stream(cfg, event.call_id)]
        if is_durable(event):
            k.append(keys.finals_stream(cfg))
        a: list[str] = [str(cfg.call_stream_ttl_s), str(cfg.call_stream_maxlen), str(cfg.global_stream_maxlen), str(cfg.call_stream_ttl_s)]
        for name, value in to_fields(event).items():
            a += [name, value]
        return k, a

    async def _on_outage(self, exc: BaseException) -> None:
        self.stats.retries += 1
        if self.stats.redis_up:
            self.stats.redis_up = False
            self.stats.outages += 1
            log.warning("Redis unreachable at %s (%s); holding %d events, retrying", self.url, exc, len(self._queue))
        async with self._changed:  # partials are stale by the time Redis is back: let them go
            kept = deque(e for e in self._queue if is_durable(e))
            self.stats.partials_dropped += len(self._queue) - len(kept)
            self._queue = kept
            self.stats.buffered = len(kept)
            self._changed.notify_all()


