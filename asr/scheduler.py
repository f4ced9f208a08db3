"""Cross-call batch scheduler: every live channel's work, decoded together on one model.

Finals (endpointed segments) and partials (the growing segment, re-decoded every ``partial_interval_s``)
from all calls meet here. Each round decodes the waiting finals, FIFO, up to ``max_batch_size``; only when
no final waits does it decode the oldest partial requests, as many as fit ``partial_batch_budget_s`` at the
measured cost per segment, so a final never waits long behind partials. A partial request is
only a *ticket*: its audio is snapshotted when the batch is formed, so it decodes the freshest audio, and a
ticket whose segment has ended by then is skipped (counted). Each channel has at most one partial ticket;
a newer request replaces it. Under overload finals keep their order and are never dropped; partials stretch
(tickets wait longer) and then get skipped.

Decoding runs in one dedicated thread (CTranslate2 releases the GIL), so the event loop keeps ingesting
audio, running VAD and writing to Redis while the model works.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Hashable, Protocol

from .engine import DecodeRequest, DecodeResult

log = logging.getLogger(__name__)


class Engine(Protocol):
    def decode(self, requests: list[DecodeRequest]) -> list[DecodeResult]: ...


@dataclass(slots=True)
class PartialTicket:
    """``snapshot`` returns the request to decode now, or None when the ticket went stale.
    ``deliver`` receives the result (on the event loop)."""

    snapshot: Callable[[], DecodeRequest | None]
    deliver: Callable[[DecodeResult], None]
    requested_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class PendingContext:
    """A final's acoustic context that needs the channel's previous final decoded first (asr/engine.py,
    ``DecodeRequest.context_audio``). ``previous`` resolves to that final's result; ``apply(result)`` fills in
    the request's context (or leaves none). A final never waits for anything but its own channel's last one, so
    finals of the same channel decode one after another while all channels still batch together."""

    previous: asyncio.Future
    apply: Callable[[DecodeResult], None]

    def ready(self) -> bool:
        return self.previous.done()

    def resolve(self) -> None:
        """Fill the request's context from the previous result (none if that final failed)."""
        fut = self.previous
        if fut.cancelled() or fut.exception() is not None:
            return
        try:
            self.apply(fut.result())
        except Exception:  # context is an aid: never lose the final over it
            log.exception("final context failed")


def resolve_context(req: DecodeRequest) -> None:
    pending = req.pending_context
    if pending is not None:
        req.pending_context = None
        pending.resolve()  # type: ignore[attr-defined]


@dataclass(slots=True)
class SchedulerStats:
    batches: int = 0
    finals_decoded: int = 0
    partials_decoded: int = 0
    partials_skipped: int = 0
    partials_replaced: int = 0
    fallbacks_skipped: int = 0
    decode_s: float = 0.0
    batch_sizes: dict[int, int] = field(default_factory=dict)
    pending_finals: int = 0
    pending_partials: int = 0
    last_batch_at: float = 0.0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


class BatchScheduler:
    def __init__(self, engine: Engine, max_batch_size: int = 16, max_pending_finals: int = 256,
                 partial_batch_budget_s: float = 0.15) -> None:
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.partial_batch_budget_s = partial_batch_budget_s
        self._item_s = 0.0  # smoothed decode seconds per segment
        self.stats = SchedulerStats()
        self._finals: deque[tuple[DecodeRequest, asyncio.Future[DecodeResult]]] = deque()
        self._final_slots = asyncio.Semaphore(max_pending_finals)
        self._partials: dict[Hashable, PartialTicket] = {}
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="asr-scheduler")

    async def stop(self) -> None:
        """Finish every queued final, then stop. Pending partials are dropped."""
        self._closed = True
        self._partials.clear()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    # --- producers ---------------------------------------------------------------------------------
    async def submit_final(self, request: DecodeRequest) -> asyncio.Future[DecodeResult]:
        """Queue a final; waits while ``max_pending_finals`` are queued (backpressure, never a drop).
        Returns a future for the result; await it where ordering is kept (one per call)."""
        if self._closed:
            raise RuntimeError("scheduler is stopped")
        await self._final_slots.acquire()
        fut: asyncio.Future[DecodeResult] = asyncio.get_running_loop().create_future()
        self._finals.append((request, fut))
        self.stats.pending_finals = len(self._finals)
        self._wake.set()
        return fut

    def request_partial(self, key: Hashable, ticket: PartialTicket) -> None:
        """Ask for a partial of channel ``key``; replaces that channel's waiting ticket, if any."""
        if self._closed:
            return
        old = self._partials.pop(key, None)
        if old is not None:
            self.stats.partials_replaced += 1
            ticket.requested_at = old.requested_at  # keep its place in line: cadence, not starvation
        self._partials[key] = ticket
        self.stats.pending_partials = len(self._partials)
        self._wake.set()

    def cancel_partial(self, key: Hashable) -> None:
        self._partials.pop(key, None)

    # --- the loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._finals and not self._partials:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            finals = self._take_finals()
            if self._ready_finals():  # more finals waiting: no slow retries in this batch (overload policy)
                for req, _ in finals:
                    if req.fallback:
                        req.fallback = False
                        self.stats.fallbacks_skipped += 1
            partials: list[tuple[DecodeRequest, PartialTicket]] = []
            if not finals and self._partials:
                # Partials only when no final waits, and only as many as fit the time budget: a final that
                # arrives meanwhile waits at most ~partial_batch_budget_s (finals first, deadline-aware).
                limit = self._partial_limit()
                for key, ticket in sorted(self._partials.items(), key=lambda kv: kv[1].requested_at):
                    if len(partials) >= limit:
                        break
                    del self._partials[key]
                    req = ticket.snapshot()
                    if req is None:
                        self.stats.partials_skipped += 1
                        continue
                    partials.append((req, ticket))
            self.stats.pending_finals = len(self._finals)
            self.stats.pending_partials = len(self._partials)
            if not finals and not partials:
                continue
            requests = [r for r, _ in finals] + [r for r, _ in partials]
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.engine.decode, requests)
            except Exception as exc:  # a model error must not kill the service: fail this batch's finals
                log.exception("batch of %d failed", len(requests))
                for _, fut in finals:
                    if not fut.done():
                        fut.set_exception(exc)
                    self._final_slots.release()
                continue
            self._account(len(requests), len(finals), len(partials), time.perf_counter() - t0)
            for (_, fut), res in zip(finals, results):
                if not fut.done():
                    fut.set_result(res)
                self._final_slots.release()
            for (_, ticket), res in zip(partials, results[len(finals):]):
                try:
                    ticket.deliver(res)
                except Exception:
                    log.exception("partial delivery failed")

    def _take_finals(self) -> list[tuple[DecodeRequest, asyncio.Future[DecodeResult]]]:
        """Up to max_batch_size waiting finals, oldest first; one whose context waits for its channel's previous
        final (still queued or decoding) stays in line for a later batch."""
        taken: list[tuple[DecodeRequest, asyncio.Future[DecodeResult]]] = []
        waiting: list[tuple[DecodeRequest, asyncio.Future[DecodeResult]]] = []
        while self._finals and len(taken) < self.max_batch_size:
            req, fut = self._finals.popleft()
            pending = req.pending_context
            if pending is not None and not pending.ready():  # type: ignore[attr-defined]
                waiting.append((req, fut))
                continue
            resolve_context(req)
            taken.append((req, fut))
        if not taken and waiting:  # cannot happen (a final's previous one is queued ahead of it or done): never stall
            req, fut = waiting.pop(0)
            req.pending_context = None
            taken.append((req, fut))
        self._finals.extendleft(reversed(waiting))
        return taken

    def _ready_finals(self) -> bool:
        """Does a final wait that could have gone in this batch (not one waiting for its channel's last)?"""
        return any(req.pending_context is None or req.pending_context.ready() for req, _ in self._finals)  # type: ignore[attr-defined]

    def _partial_limit(self) -> int:
        if self._item_s <= 0:
            return self.max_batch_size
        return max(1, min(self.max_batch_size, int(self.partial_batch_budget_s / self._item_s)))

    def _account(self, n: int, n_finals: int, n_partials: int, seconds: float) -> None:
        # per-item cost, smoothed: the partial batch limit adapts to the hardware and the model
        per_item = seconds / max(1, n)
        self._item_s = per_item if self._item_s <= 0 else 0.8 * self._item_s + 0.2 * per_item
        s = self.stats
        s.batches += 1
        s.finals_decoded += n_finals
        s.partials_decoded += n_partials
        s.decode_s += seconds
        s.batch_sizes[n] = s.batch_sizes.get(n, 0) + 1
        s.last_batch_at = time.monotonic()
