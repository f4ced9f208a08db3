"""Scale-out: decode on ASR worker processes (any number, any machine) through Redis Streams.

The ingest node keeps everything that is per call (VAD, ordering, partial policy, publishing) and swaps the
in-process :class:`~callscribe.asr.scheduler.BatchScheduler` for :class:`RemoteScheduler`, which has the same
interface: each final or partial becomes a :class:`~.jobs.SegmentJob` on ``{prefix}:asr:jobs``, read by the
workers' consumer group; each answer comes back on this node's results stream and resolves the waiting
future, so the call's emitter orders and publishes results exactly as with a local model.

Failure model: a worker that dies mid-batch leaves its jobs pending in the group; another worker claims them
(XAUTOCLAIM) after ``claim_idle_s`` and decodes them again. A job answered twice (the dead worker had
answered but not acknowledged) resolves its future once; the second answer is ignored. So no final is lost
or duplicated. A partial is sent only when the channel has none in flight, so under load the cadence
stretches instead of the queue growing; workers skip partials older than ``partial_max_age_s``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Hashable

import redis.asyncio as aioredis

from callscribe.config import Config
from callscribe.errors import SchemaError
from callscribe.stream.groups import ensure_group as ensure_stream_group

from .engine import DecodeRequest, DecodeResult
from .jobs import GROUP, SegmentJob, SegmentResult, jobs_stream, results_stream
from .scheduler import PartialTicket, SchedulerStats, resolve_context

log = logging.getLogger(__name__)


READ_GATHER_S = 0.005
"""After a read that brought results, wait this long before the next: under load one read then brings many
(each read is a round trip of Python client work); a final waits at most this much longer."""
TRIM_EVERY_S = 0.5


def node_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[DecodeResult] | None = None
    ticket: PartialTicket | None = None
    key: Hashable | None = None
    sent_at: float = field(default_factory=time.monotonic)


class RemoteScheduler:
    """Drop-in for BatchScheduler that decodes on remote workers (see module docstring)."""

    def __init__(self, cfg: Config, redis_url: str, node: str | None = None) -> None:
        self.cfg = cfg
        self.node = node or node_name()
        self.stats = SchedulerStats()
        self._redis = aioredis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=2)
        self._reply_to = results_stream(cfg, self.node)
        self._pending: dict[str, _Pending] = {}
        self._partial_inflight: dict[Hashable, str] = {}
        self._final_slots = asyncio.Semaphore(cfg.max_pending_finals)
        self._context_waits: set[asyncio.Task[None]] = set()
        self._outbox: list[SegmentJob] = []  # partial jobs, sent together (one round trip per tick, not per job)
        self._outbox_ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_results(), name="asr-results")
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_partials(), name="asr-partials")

    async def stop(self) -> None:
        """Wait (up to 60 s) for outstanding finals, then stop reading results."""
        self._closed = True
        if self._sender is not None:
            self._outbox_ready.set()  # it sees _closed and ends (never cancelled inside a Redis call)
            await asyncio.wait([self._sender], timeout=5.0)
            self._sender = None
        deadline = time.monotonic() + 60
        while any(p.future is not None and not p.future.done() for p in self._pending.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._reader is not None:
            # the reader sees _closed within one XREAD block (1 s). Cancelling a blocked XREAD can leave the task
            # cancelling forever (redis-py 8.2: seen as load benchmark ingest processes that never exited), so
            # cancel only if it has not finished by then, and never wait on it without a bound.
            done, _ = await asyncio.wait([self._reader], timeout=3.0)
            if not done:
                self._reader.cancel()
                await asyncio.wait([self._reader], timeout=2.0)
            self._reader = None
        await self._redis.delete(self._reply_to)
        await self._redis.aclose()

    async def submit_final(self, request: DecodeRequest) -> asyncio.Future[DecodeResult]:
        await self._final_slots.acquire()
        fut: asyncio.Future[DecodeResult] = asyncio.get_running_loop().create_future()
        job_id = uuid.uuid4().hex
        self._pending[job_id] = _Pending(future=fut)
        self.stats.pending_finals += 1
        pending = request.pending_context
        if pending is not None and not pending.ready():  # type: ignore[attr-defined]
            # its context is the channel's previous final, still on a worker: send this one when that is back
            task = asyncio.ensure_future(self._send_after(pending, job_id, request))
            self._context_waits.add(task)
            task.add_done_callback(self._context_waits.discard)
            return fut
        resolve_context(request)
        await self._send(SegmentJob.from_request(job_id, self._reply_to, request, int(time.time() * 1000)))
        return fut

    async def _send_after(self, pending, job_id: str, request: DecodeRequest) -> None:
        try:
            await asyncio.wait([pending.previous])
        except Exception:
            pass
        resolve_context(request)
        await self._send(SegmentJob.from_request(job_id, self._reply_to, request, int(time.time() * 1000)))

    def request_partial(self, key: Hashable, ticket: PartialTicket) -> None:
        if self._closed or key in self._partial_inflight:
            self.stats.partials_replaced += 1  # one in flight per channel: the cadence stretches
            return
        req = ticket.snapshot()
        if req is None:
            self.stats.partials_skipped += 1
            return
        job_id = uuid.uuid4().hex
        self._pending[job_id] = _Pending(ticket=ticket, key=key)
        self._partial_inflight[key] = job_id
        self._outbox.append(SegmentJob.from_request(job_id, self._reply_to, req, int(time.time() * 1000)))
        self._outbox_ready.set()

    def cancel_partial(self, key: Hashable) -> None:
        job_id = self._partial_inflight.pop(key, None)
        if job_id is not None:
            self._pending.pop(job_id, None)

    # --- internals ---------------------------------------------------------------------------------
    async def _send(self, job: SegmentJob) -> None:
        """XADD with retries: a final must reach the queue even across a Redis blip."""
        delay = 0.1
        while True:
            try:
                await self._redis.xadd(jobs_stream(self.cfg), job.to_fields(), maxlen=1_000_000, approximate=True)
                return
            except (ConnectionError, OSError, aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                if not job.is_final:
                    raise
                log.warning("queueing job %s failed (%s); retrying", job.job_id, exc)
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)

    async def _send_partials(self) -> None:
        """Partial jobs go out in batches: every request of one event-loop tick in one pipelined round trip.
        A failed send drops them (partials are best-effort; the channel asks again)."""
        while not self._closed:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            await asyncio.sleep(0)  # the rest of this tick's requests join
            jobs, self._outbox = self._outbox, []
            if not jobs or self._closed:
                continue
            pipe = self._redis.pipeline(transaction=False)
            for job in jobs:
                pipe.xadd(jobs_stream(self.cfg), job.to_fields(), maxlen=1_000_000, approximate=True)
            try:
                await pipe.execute()
            except Exception as exc:
                log.warning("sending %d partial jobs failed (%s); dropped", len(jobs), exc)
                for job in jobs:
                    self._forget(job.job_id)

    def _forget(self, job_id: str) -> None:
        p = self._pending.pop(job_id, None)
        if p is not None and p.key is not None:
            self._partial_inflight.pop(p.key, None)

    async def _read_results(self) -> None:
        """Results as they come, in reads that gather what arrived meanwhile; read entries are deleted in one
        XDEL at most every TRIM_EVERY_S (an entry read twice after a restart resolves nothing: its job is gone)."""
        last = "0-0"
        read: list = []
        trimmed_at = time.monotonic()
        while not (self._closed and not any(p.future is not None and not p.future.done() for p in self._pending.values())):
            if read and (time.monotonic() - trimmed_at >= TRIM_EVERY_S or len(read) >= 1000):
                try:
                    await self._redis.xdel(self._reply_to, *read)
                    read, trimmed_at = [], time.monotonic()
                except Exception as exc:
                    log.warning("trimming ASR results failed (%s); retrying later", exc)
            try:
                resp = await self._redis.xread({self._reply_to: last}, count=256, block=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading ASR results failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            got = 0
            for _, entries in resp or []:
                for entry_id, fields in entries:
                    last = entry_id
                    read.append(entry_id)
                    got += 1
                    try:
                        self._deliver(SegmentResult.from_fields(fields))
                    except SchemaError as exc:
                        log.warning("dropping bad ASR result %s: %s", entry_id, exc)
            if got:  # let more results gather before the next read: one read per few ms, not one per result
                await asyncio.sleep(READ_GATHER_S)

    def _deliver(self, res: SegmentResult) -> None:
        p = self._pending.pop(res.job_id, None)
        if p is None:
            return  # answered twice (a reclaimed job) or a cancelled partial
        if p.future is not None:
            self._final_slots.release()
            self.stats.pending_finals -= 1
            self.stats.finals_decoded += 1
            if not p.future.done():
                if res.result is None:
                    p.future.set_exception(RuntimeError(f"worker {res.worker} skipped final {res.job_id}"))
                else:
                    p.future.set_result(res.result)
            return
        self._partial_inflight.pop(p.key, None)
        if res.result is None:
            self.stats.partials_skipped += 1
            return
        self.stats.partials_decoded += 1
        try:
            p.ticket.deliver(res.result)  # type: ignore[union-attr]
        except Exception:
            log.exception("partial delivery failed")


async def ensure_group(client: aioredis.Redis, cfg: Config) -> None:
    await ensure_stream_group(client, jobs_stream(cfg), GROUP)
