"""The live board: what a wallboard and an agent desktop show, kept in memory from the Redis streams.

One reader per gateway follows the finals stream (call start/end), the insights stream (intent updates,
flags, summaries), the alerts stream (alerts, surges), the callbacks stream (unresolved calls, and
``callback_done`` when a supervisor handles one) and the tickets stream (tickets submitted from the agent desk
join their call's callback entry, or queue the call; the status the ticketing system reports updates the ticket
there), with plain XREAD: every gateway needs every event, so
this is fan-out, not a consumer group. On start it replays ``board_replay_s`` of history, so a restarted
gateway shows the same board. Changes go to subscribers (WebSocket handlers) through bounded queues; a
subscriber that falls behind is marked ``overflowed`` and its handler closes it (the page reconnects to a
fresh snapshot) instead of the board buffering without limit or blocking other viewers.

:class:`BoardState` is the pure part (events in, messages out) and is unit-tested without Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from callscribe.config import Config
from callscribe.pii import mask_number
from callscribe.errors import SchemaError
from callscribe.events import (
    Alert, CallbackDone, CallEnded, CallFlag, CallStarted, CallSummary, Event, IntentUpdate, SentimentUpdate, Surge,
    Ticket, TicketStatus, Transcript,
    from_fields, to_dict,
)
from callscribe.gateway.store.base import ticket_record
from callscribe.stream import keys

log = logging.getLogger(__name__)

__all__ = ["CallInfo", "BoardState", "Board", "Subscription", "mask_caller"]

RECENT_ENDED_S = 600  # ended calls stay on the wallboard this long
STALE_LIVE_S = 6 * 3600  # a "live" call with no event for this long lost its call_ended: drop it
CHART_KEEP_S = 24 * 3600
ALERTS_KEPT = 500
SURGES_KEPT = 50
# Handled callbacks are remembered so that a final flag read after its "done" (the two come from different
# streams, so a replay can apply them in either order) does not put the call back in the queue. A flag
# never comes a day after its call, so a day bounds the memory; the count bound holds on any floor.
DONE_KEEP_S = 24 * 3600
DONE_KEPT = 100_000


mask_caller = mask_number  # the one PII policy's masking (callscribe/pii.py)


@dataclass(slots=True)
class CallInfo:
    call_id: str
    agent_id: str = ""
    queue: str = ""
    caller: str = ""
    language: str = ""
    channels: list[str] = field(default_factory=list)
    state: str = "live"
    started_at_ms: int = 0
    ended_at_ms: int = 0
    duration_ms: int = 0
    intent: str = ""
    intent_name: dict[str, str] = field(default_factory=dict)
    intent_score: float = 0.0
    unresolved: bool | None = None
    flag_reasons: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    alert_count: int = 0
    repeat_of: list[str] = field(default_factory=list)
    last_activity_ms: int = 0
    sentiment: str = ""
    sentiment_score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BoardState:
    """Pure board logic: :meth:`apply` takes one stream entry's event and returns the messages it causes."""

    def __init__(self, intent_names: dict[str, dict[str, str]] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.intent_names = intent_names or {}
        self.clock = clock
        self.calls: dict[str, CallInfo] = {}
        self.agent_calls: dict[str, str] = {}  # agent_id -> their current (latest started) call
        self.alerts: deque[dict[str, Any]] = deque(maxlen=ALERTS_KEPT)
        self.surges: deque[dict[str, Any]] = deque(maxlen=SURGES_KEPT)
        self.callbacks: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.callbacks_done: OrderedDict[str, int] = OrderedDict()  # call_id -> when handled (ms), oldest first
        self.chart: dict[str, tuple[int, str]] = {}  # call_id -> (started_at_ms, intent)
        self.alert_counts: dict[str, int] = {}
        # Latency observers (the gateway's Prometheus histograms); seconds from speech end to final, and
        # from the triggering final to its alert, both measured by the stages' own timestamps.
        self.observe_final_latency: Callable[[float], None] = lambda s: None
        self.observe_alert_latency: Callable[[float], None] = lambda s: None
        self.chart_version = 0

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- events in -------------------------------------------------------------------------------------
    def apply(self, entry_id: str, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, CallStarted):
            return self._started(event)
        if isinstance(event, Transcript):
            call = self.calls.get(event.call_id)
            if call is not None:
                call.last_activity_ms = max(call.last_activity_ms, event.emitted_at_ms)
            if event.is_final and event.speech_end_at_ms:
                self.observe_final_latency(max(0.0, (event.emitted_at_ms - event.speech_end_at_ms) / 1000))
            return []
        if isinstance(event, CallEnded):
            return self._ended(event)
        if isinstance(event, IntentUpdate):
            return self._intent(event.call_id, event.intent, event.score)
        if isinstance(event, CallFlag):
            return self._flag(entry_id, event)
        if isinstance(event, CallSummary):
            return self._summary(event)
        if isinstance(event, SentimentUpdate):
            call = self._call(event.call_id)
            call.sentiment, call.sentiment_score = event.label, round(event.score, 3)
            return self._changed(call)
        if isinstance(event, Alert):
            return self._alert(entry_id, event)
        if isinstance(event, Surge):
            surge = {"id": entry_id, **to_dict(event)}
            self.surges.appendleft(surge)
            return [{"type": "surge", "surge": surge}]
        if isinstance(event, Ticket):
            return self._ticket(entry_id, event)
        if isinstance(event, TicketStatus):
            return self._ticket_status(event)
        if isinstance(event, CallbackDone):
            self.callbacks_done.pop(event.call_id, None)
            self.callbacks_done[event.call_id] = self.now_ms()
            while len(self.callbacks_done) > DONE_KEPT:
                self.callbacks_done.popitem(last=False)
            if self.callbacks.pop(event.call_id, None) is not None:
                return [{"type": "callback_done", "call_id": event.call_id}]
            return []
        return []

    def _call(self, call_id: str) -> CallInfo:
        call = self.calls.get(call_id)
        if call is None:  # an event of a call started before the replay window: show what we know
            call = self.calls[call_id] = CallInfo(call_id, last_activity_ms=self.now_ms())
        return call

    def _changed(self, call: CallInfo) -> list[dict[str, Any]]:
        return [{"type": "call", "call": call.to_dict()}]

    def _started(self, e: CallStarted) -> list[dict[str, Any]]:
        md = e.metadata
        call = self._call(e.call_id)
        call.agent_id = md.get("agent_id", "") or call.agent_id
        call.queue = md.get("queue", "") or call.queue
        call.caller = md.get("caller", "") or call.caller  # raw here; every exit masks it per role (pii.py)
        call.language = e.language if e.language != "auto" else call.language
        call.channels = list(e.channels)
        call.started_at_ms = e.started_at_ms
        call.last_activity_ms = max(call.last_activity_ms, e.started_at_ms)
        if call.agent_id:
            current = self.calls.get(self.agent_calls.get(call.agent_id, ""))
            if current is None or current.started_at_ms <= e.started_at_ms:
                self.agent_calls[call.agent_id] = call.call_id
        self.chart[call.call_id] = (e.started_at_ms, call.intent)
        self.chart_version += 1
        return self._changed(call)

    def _ended(self, e: CallEnded) -> list[dict[str, Any]]:
        call = self._call(e.call_id)
        call.state = "ended"
        call.ended_at_ms = e.ended_at_ms
        call.duration_ms = e.duration_ms
        call.last_activity_ms = max(call.last_activity_ms, e.ended_at_ms)
        return self._changed(call)

    def _intent(self, call_id: str, intent: str, score: float) -> list[dict[str, Any]]:
        call = self._call(call_id)
        if not intent or (call.intent == intent and abs(call.intent_score - score) < 1e-9):
            return []
        call.intent = intent
        call.intent_name = self.intent_names.get(intent, {"zh": intent, "en": intent})
        call.intent_score = round(score, 3)
        started = self.chart.get(call_id, (call.started_at_ms or self.now_ms(), ""))[0]
        self.chart[call_id] = (started, intent)
        self.chart_version += 1
        return self._changed(call)

    def _flag(self, entry_id: str, e: CallFlag) -> list[dict[str, Any]]:
        call = self._call(e.call_id)
        call.unresolved = e.unresolved
        call.flag_reasons = list(e.reasons)
        out = self._changed(call)
        queued = self.callbacks.get(e.call_id)
        tickets = queued.get("tickets", []) if queued else []
        if e.final and e.unresolved and e.call_id not in self.callbacks_done:
            callback = {"id": entry_id, **to_dict(e), "agent_id": call.agent_id, "tickets": tickets}
            self.callbacks[e.call_id] = callback
            out.append({"type": "callback", "callback": callback})
        elif e.final and not e.unresolved and queued is not None and not tickets:  # a ticket keeps it queued
            del self.callbacks[e.call_id]
            out.append({"type": "callback_done", "call_id": e.call_id})
        return out

    def _ticket(self, entry_id: str, e: Ticket) -> list[dict[str, Any]]:
        """A submitted ticket joins its call's callback entry (the supervisor follows it up there), or queues
        the call when it is not queued (a ticket on a call the analyzer thought resolved, or before its final
        flag). A call already handled (callback_done) is not queued again by a ticket."""
        if e.call_id in self.callbacks_done:
            return []
        ticket = {"id": entry_id, **ticket_record(e).to_dict()}
        callback = self.callbacks.get(e.call_id)
        if callback is None:
            info = self.calls.get(e.call_id)
            callback = self.callbacks[e.call_id] = {
                "id": entry_id, "type": "ticket", "call_id": e.call_id, "unresolved": bool(info and info.unresolved),
                "final": False, "reasons": list(info.flag_reasons) if info else [], "quotes": [],
                "intent": e.intent or (info.intent if info else ""), "caller": e.caller or (info.caller if info else ""),
                "emitted_at_ms": e.emitted_at_ms, "agent_id": e.agent_id or (info.agent_id if info else ""), "tickets": [],
            }
        if any(t["ticket_id"] == e.ticket_id for t in callback.get("tickets", [])):
            return []
        callback["tickets"] = [*callback.get("tickets", []), ticket]
        return [{"type": "callback", "callback": callback}]

    def _ticket_status(self, e: TicketStatus) -> list[dict[str, Any]]:
        """The ticketing system's status of a ticket in a callback entry (the gateway accepted it only if it was
        the latest, so applying it in stream order is right). The entry stays queued: a supervisor closes it."""
        callback = self.callbacks.get(e.call_id)
        tickets = callback.get("tickets", []) if callback else []
        if not any(t["ticket_id"] == e.ticket_id for t in tickets):
            return []
        callback["tickets"] = [
            {**t, "status": e.status, "status_note": e.note, "external_id": e.external_id or t.get("external_id", ""),
             "status_at_ms": e.changed_at_ms} if t["ticket_id"] == e.ticket_id else t for t in tickets]
        return [{"type": "callback", "callback": callback}]

    def _summary(self, e: CallSummary) -> list[dict[str, Any]]:
        call = self._call(e.call_id)
        self._intent(e.call_id, e.intent, e.intent_score)  # its message is covered by the one below
        call.unresolved = e.unresolved
        call.flag_reasons = list(e.reasons)
        call.alerts = sorted(set(call.alerts) | set(e.alerts))
        call.repeat_of = list(e.repeat_of)
        if e.sentiment:
            call.sentiment, call.sentiment_score = e.sentiment, round(e.sentiment_score, 3)
        return self._changed(call)

    def _alert(self, entry_id: str, e: Alert) -> list[dict[str, Any]]:
        call = self._call(e.call_id)
        msg = {"id": entry_id, **to_dict(e), "agent_id": call.agent_id}
        self.alerts.appendleft(msg)
        if e.category not in call.alerts:
            call.alerts.append(e.category)
        call.alert_count += 1
        if e.category == "repeat_caller" and not call.repeat_of:
            call.repeat_of = [c for c in e.details.get("previous_calls", "").split(",") if c]
        self.alert_counts[e.category] = self.alert_counts.get(e.category, 0) + 1
        if e.trigger_at_ms:
            self.observe_alert_latency(max(0.0, (e.emitted_at_ms - e.trigger_at_ms) / 1000))
        return [{"type": "alert", "alert": msg}, *self._changed(call)]

    # --- time passing ------------------------------------------------------------------------------------
    def prune(self) -> list[dict[str, Any]]:
        """Drop calls that ended more than 10 minutes ago (or went silent for hours) and old chart points."""
        now = self.now_ms()
        out = []
        for call_id, call in list(self.calls.items()):
            ended_long_ago = call.state == "ended" and now - call.ended_at_ms > RECENT_ENDED_S * 1000
            stale = call.state == "live" and now - call.last_activity_ms > STALE_LIVE_S * 1000
            if ended_long_ago or stale:
                del self.calls[call_id]
                if self.agent_calls.get(call.agent_id) == call_id:
                    del self.agent_calls[call.agent_id]
                out.append({"type": "call_removed", "call_id": call_id})
        for call_id, (started, _) in list(self.chart.items()):
            if now - started > CHART_KEEP_S * 1000:
                del self.chart[call_id]
        while self.callbacks_done and now - next(iter(self.callbacks_done.values())) > DONE_KEEP_S * 1000:
            self.callbacks_done.popitem(last=False)
        return out

    # --- views ---------------------------------------------------------------------------------------------
    def live_calls(self) -> list[dict[str, Any]]:
        calls = sorted(self.calls.values(), key=lambda c: (c.state != "live", -c.started_at_ms))
        return [c.to_dict() for c in calls]

    def agent_call(self, agent_id: str) -> dict[str, Any] | None:
        call = self.calls.get(self.agent_calls.get(agent_id, ""))
        return call.to_dict() if call is not None else None

    def callback_list(self) -> list[dict[str, Any]]:
        return list(self.callbacks.values())

    def intent_series(self, window_s: int = 3600, bucket_s: int = 300) -> dict[str, Any]:
        bucket_ms = max(60, bucket_s) * 1000
        now = self.now_ms()
        first = (now - window_s * 1000) // bucket_ms * bucket_ms
        buckets: dict[int, dict[str, int]] = {t: {} for t in range(first, now + 1, bucket_ms)}
        for started, intent in self.chart.values():
            t = started // bucket_ms * bucket_ms
            if t in buckets:
                key = intent or "unknown"
                buckets[t][key] = buckets[t].get(key, 0) + 1
        return {"bucket_s": bucket_ms // 1000, "buckets": [{"t_ms": t, "counts": c} for t, c in sorted(buckets.items())]}

    def snapshot(self) -> dict[str, Any]:
        return {
            "type": "snapshot", "calls": self.live_calls(), "alerts": list(self.alerts)[:200],
            "surges": list(self.surges), "callbacks": self.callback_list(), "intent_series": self.intent_series(),
        }


class Subscription:
    """One viewer's bounded queue of board messages; ``accept`` keeps out what this viewer never shows
    (an agent desk needs its own agent's calls, not every call in the building)."""

    def __init__(self, maxsize: int = 1000, accept: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self.accept = accept
        self.overflowed = False

    def offer(self, msg: dict[str, Any]) -> bool:
        """Queue ``msg`` if this viewer wants it; True when this message was one too many (it just overflowed)."""
        if self.overflowed or (self.accept is not None and not self.accept(msg)):
            return False
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.overflowed = True  # its handler sees this on its next message and closes with 1013
            return True
        return False


class Board:
    """Runs :class:`BoardState` on the live streams and fans its messages out to subscribers."""

    BLOCK_MS = 1000
    COUNT = 1000

    def __init__(self, cfg: Config, redis_url: str, intent_names: dict[str, dict[str, str]] | None = None) -> None:
        self.cfg = cfg
        self.state = BoardState(intent_names)
        self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
        self.streams = [keys.finals_stream(cfg), keys.insights_stream(cfg), keys.alerts_stream(cfg), keys.callbacks_stream(cfg),
                        keys.tickets_stream(cfg)]
        self.last_ids: dict[str, str] = {}
        self.subscribers: set[Subscription] = set()
        self.ready = asyncio.Event()
        self.entries = 0
        self.dropped_viewers = 0
        self._task: asyncio.Task | None = None
        self._sent_chart_version = -1
        self._observers: tuple[Callable[[float], None], Callable[[float], None]] | None = None

    def observers(self, final_latency: Callable[[float], None], alert_latency: Callable[[float], None]) -> None:
        """Latency histograms to feed once the replay is done (replayed history is not new latency)."""
        self._observers = (final_latency, alert_latency)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="board")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping; errors were logged
                pass
            self._task = None
        await self.redis.aclose()

    def subscribe(self, maxsize: int = 1000, accept: Callable[[dict[str, Any]], bool] | None = None) -> Subscription:
        sub = Subscription(maxsize, accept)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def _publish(self, messages: Iterable[dict[str, Any]]) -> None:
        for msg in messages:
            for sub in list(self.subscribers):
                if sub.offer(msg):
                    self.dropped_viewers += 1

    async def _replay(self) -> None:
        start = max(0, self.state.now_ms() - int(self.cfg.board_replay_s * 1000))
        for stream in self.streams:
            cursor = f"{start}-0"
            last = "0-0"
            while True:
                batch = await self.redis.xrange(stream, min=cursor, max="+", count=self.COUNT)
                for entry_id, fields in batch:
                    self._apply(entry_id, fields)
                    last = entry_id
                if len(batch) < self.COUNT:
                    break
                cursor = "(" + last
            if last == "0-0":  # nothing in the window: follow from the stream's end, not its start
                info = await self.redis.xinfo_stream(stream) if await self.redis.exists(stream) else None
                last = info["last-generated-id"] if info else "0-0"
            self.last_ids[stream] = last
        self.state.prune()

    def _apply(self, entry_id: str, fields: dict[str, str]) -> list[dict[str, Any]]:
        self.entries += 1
        try:
            event = from_fields(fields)
        except SchemaError as exc:
            log.warning("board: skipping entry %s: %s", entry_id, exc)
            return []
        return self.state.apply(entry_id, event)

    async def _run(self) -> None:
        while True:
            try:
                await self._replay()
                break
            except (RedisError, OSError) as exc:
                log.warning("board: Redis unavailable, retrying replay: %s", exc)
                # start over on a clean state: a replay cut short must not count its alerts twice
                self.state = BoardState(self.state.intent_names, self.state.clock)
                await asyncio.sleep(1.0)
        if self._observers is not None:
            self.state.observe_final_latency, self.state.observe_alert_latency = self._observers
        self.ready.set()
        last_prune = time.monotonic()
        down = False
        while True:
            try:
                reply = await self.redis.xread(self.last_ids, count=self.COUNT, block=self.BLOCK_MS)
                for stream, batch in reply or []:
                    for entry_id, fields in batch:
                        self.last_ids[stream] = entry_id
                        self._publish(self._apply(entry_id, fields))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if not down:  # once per outage, not every half second
                    log.warning("board: Redis error, retrying every 0.5 s: %s", exc)
                down = True
                await asyncio.sleep(0.5)
                continue
            if down:
                log.warning("board: Redis is back")
                down = False
            if time.monotonic() - last_prune >= 5.0:
                last_prune = time.monotonic()
                self._publish(self.state.prune())
                if self.state.chart_version != self._sent_chart_version:
                    self._sent_chart_version = self.state.chart_version
                    self._publish([{"type": "intent_series", **self.state.intent_series()}])
