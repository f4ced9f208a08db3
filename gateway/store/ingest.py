"""Fills a TranscriptStore from Redis: consumer group ``store`` on the finals stream (calls and their
finals, already redacted by the pipeline), the insights stream (call summaries: intent, flag, alerts; the
final unresolved flag's quotes), the tickets stream (submitted tickets and the status the ticketing system
reports for them), the assist telemetry stream
(what the agent desk did with each card) and the scores stream (QA scorecards, their overrides and appeals: scores.py).
Writes are idempotent (a final's segment id is unique; call rows are upserts), and a batch is
acknowledged only after it is in the store, so a restart redoes at most one batch and loses nothing.

Any failure, Redis's or the store's (a full disk: SQLite's "database or disk is full", PostgreSQL down, a
locked file), keeps the batch unacknowledged and retries it with backoff (0.5 s doubling to 10 s); the
outage is logged once when it starts and once when it ends, and ``healthy`` / ``last_error`` feed the
gateway's /ready and /metrics, so a store that stopped taking calls is seen at once, not at the next restart."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from callscribe.config import Config
from callscribe.errors import SchemaError
from callscribe.events import (AssistTelemetry, CallEnded, CallFlag, CallStarted, CallSummary, ScoreAppeal, Scorecard,
                               ScoreOverride, Ticket, TicketStatus, Transcript, from_fields)
from callscribe.stream import keys
from callscribe.stream.groups import ensure_group, group_drained, stop_loop

from .base import AssistEvent, CallRecord, TranscriptStore, Utterance, ticket_record

log = logging.getLogger(__name__)

__all__ = ["StoreIngest"]

REPORTED = frozenset({"call_started", "call_ended", "call_summary", "ticket", "scorecard", "score_override"})
"""Events after which a call's report row is refreshed (once it has a summary: callscribe/reports/tables.py)."""


def _expected_store_error(exc: BaseException) -> bool:
    """A backend's operational failure (disk full, connection lost, lock) rather than a bug: no traceback."""
    name = type(exc).__name__
    return name in ("OperationalError", "DatabaseError", "InterfaceError", "AdminShutdown") or isinstance(exc, OSError)


class StoreIngest:
    BATCH = 500
    BLOCK_MS = 200

    def __init__(self, cfg: Config, redis_url: str, store: TranscriptStore, group: str = "store", consumer: str | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.streams = [keys.finals_stream(cfg), keys.insights_stream(cfg), keys.tickets_stream(cfg),
                        keys.assist_telemetry_stream(cfg), keys.scores_stream(cfg)]
        self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
        self._started: dict[str, int] = {}  # call_id -> started_at_ms, for utterance times
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.entries = 0
        self.healthy = True
        self.last_error = ""
        self.failures = 0

    async def start(self) -> None:
        for stream in self.streams:
            await ensure_group(self.redis, stream, self.group)
        self._task = asyncio.create_task(self._run(), name="store-ingest")

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Finish the batch in hand and stop (reads block <= 200 ms); see ``stream.groups.stop_loop``."""
        self._stopping = True
        if self._task is not None:
            await stop_loop(self._task, timeout_s, "store ingest")
            self._task = None
        await self.redis.aclose()

    async def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every stream is read and acknowledged by the group (tests, shutdown)."""
        return await group_drained(self.redis, self.streams, self.group, timeout_s)

    async def _run(self) -> None:
        backlog = True
        backoff = 0.5
        while not self._stopping:
            try:
                ids = {s: "0" if backlog else ">" for s in self.streams}
                reply = await self.redis.xreadgroup(self.group, self.consumer, ids, count=self.BATCH,
                                                    block=None if backlog else self.BLOCK_MS)
                entries = [(s, e) for s, batch in (reply or []) for e in batch]
                if backlog and not entries:
                    backlog = False
                    continue
                if entries:
                    await asyncio.to_thread(self._apply, [e for _, e in entries])
                    for stream in self.streams:
                        done = [eid for s, (eid, _) in entries if s == stream]
                        if done:
                            await self.redis.xack(stream, self.group, *done)
                if not self.healthy:
                    log.warning("store ingest: working again after %d failed attempts", self.failures)
                    self.healthy, self.last_error, self.failures = True, "", 0
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis, the store backend, the disk: retry; never ack what was not written
                where = "Redis" if isinstance(exc, (RedisError, OSError)) else "store"
                self.failures += 1
                self.last_error = f"{where}: {type(exc).__name__}: {exc}"[:300]
                if self.healthy:
                    log.error("store ingest: %s; the batch stays unacknowledged and is retried", self.last_error,
                              exc_info=where == "store" and not _expected_store_error(exc))
                self.healthy = False
                backlog = True
                await asyncio.sleep(backoff)
                backoff = min(10.0, backoff * 2)

    def _apply(self, entries: list[tuple[str, Any]]) -> None:
        utterances: list[Utterance] = []
        telemetry: list[AssistEvent] = []
        touched: dict[str, Any] = {}  # call id -> its summary (or None): report rows to refresh
        for entry_id, fields in entries:
            self.entries += 1
            if fields is None:
                continue
            try:
                e = from_fields(fields)
            except SchemaError as exc:
                log.warning("store ingest: skipping %s: %s", entry_id, exc)
                continue
            if e.TYPE in REPORTED:  # the call's report row (callscribe/reports) is refreshed after the batch
                touched[e.call_id] = e if isinstance(e, CallSummary) else touched.get(e.call_id)
            if isinstance(e, CallStarted):
                self._started[e.call_id] = e.started_at_ms
                md = e.metadata
                self.store.upsert_call(CallRecord(
                    e.call_id, started_at_ms=e.started_at_ms, agent_id=md.get("agent_id", ""), queue=md.get("queue", ""),
                    caller=md.get("caller", ""), language=e.language if e.language != "auto" else "",
                ))
            elif isinstance(e, Transcript) and e.is_final and e.text:
                base = self._started.get(e.call_id) or e.emitted_at_ms - e.end_ms
                utterances.append(Utterance(e.call_id, e.segment_id, e.channel, e.start_ms, e.end_ms, e.text, base + e.start_ms))
            elif isinstance(e, CallEnded):
                self.store.add_utterances(utterances)
                utterances = []
                self.store.upsert_call(CallRecord(e.call_id, duration_ms=e.duration_ms, ended=True))
                self._started.pop(e.call_id, None)
            elif isinstance(e, CallSummary):
                self.store.add_utterances(utterances)
                utterances = []
                self.store.upsert_call(CallRecord(
                    e.call_id, intent=e.intent, intent_score=e.intent_score, unresolved=e.unresolved,
                    alerts=e.alerts, reasons=e.reasons, language=e.language,
                ))
            elif isinstance(e, CallFlag) and e.final and e.unresolved and e.quotes:
                self.store.upsert_call(CallRecord(e.call_id, quotes=tuple(
                    json.dumps({"channel": q.channel, "text": q.text, "start_ms": q.start_ms, "end_ms": q.end_ms},
                               ensure_ascii=False, separators=(",", ":")) for q in e.quotes)))
            elif isinstance(e, Ticket):
                self.store.add_ticket(ticket_record(e))
            elif isinstance(e, TicketStatus):  # after its ticket: both are on the tickets stream, in order
                self.store.set_ticket_status(e.ticket_id, e.status, e.note, e.external_id, e.changed_at_ms)
            elif isinstance(e, AssistTelemetry):
                telemetry.append(AssistEvent(e.call_id, e.card_kind, e.card_id, e.action, e.agent_id, e.emitted_at_ms))
            elif isinstance(e, Scorecard):  # QA (scores.py): the scorecard, then reviews, in the scores stream's order
                self.store.scores.add_scorecard(e)
            elif isinstance(e, ScoreOverride):
                self.store.scores.add_override(e)
            elif isinstance(e, ScoreAppeal):
                self.store.scores.add_appeal(e)
        self.store.add_utterances(utterances)
        self.store.add_assist_events(telemetry)
        reports = getattr(self.store, "reports", None)
        if reports is not None:  # after the batch: the call row, its finals, tickets and scorecard are all in
            for call_id, summary in touched.items():
                reports.refresh(call_id, self.cfg.fcr_window_days, summary)

