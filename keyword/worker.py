"""The live analytics worker: a Redis consumer group on the finals stream, CallAnalyzers per call, outputs
to the alerts / insights / callbacks streams (and each call's own stream).

Delivery contract ("no event skipped, none processed twice in the outputs"):

* Input: ``XREADGROUP`` in group ``Config.analytics_group`` on ``{prefix}:finals`` (created at id 0, so a
  new group starts from the oldest retained entry). On start a worker first re-reads its own pending
  entries (delivered before a crash, never acknowledged), then new ones. An entry is acknowledged only
  after every output it caused is written, so a crash at any point leaves it pending and it is processed
  again after the restart; entries a dead consumer left pending for ``claim_idle_s`` are taken over
  (``XAUTOCLAIM``).
* Outputs are write-once: each has an identity (``alert_id``, ``{call_id}/intent/{seq}``,
  ``{call_id}/flag/{seq}``, ``{call_id}/summary``, ``{call_id}/scorecard``, ``surge_id``, ``{call_id}/assist/{kind}/{seq}``) and one Lua
  script sets its marker and appends it atomically, so processing an entry again never appends an output twice.
* QA scorecards (keyword/qa/): when a call ends, its facts are answered against the evaluation form
  (``Analytics.form``) and the ``scorecard`` event goes to the scores stream and the call's own stream, write-once
  as ``{call_id}/scorecard`` like the summary it comes with.
* Agent assist (keyword/assist/): beside each call's CallAnalyzer an AssistSession gets the same finals and the
  analyzer's state after each (keyword/assist/bridge.py); its cards (scenario, step done, step prompt,
  knowledge, offer) and, at the end of an unresolved call, the ticket draft go to the assist stream and the
  call's own stream, where the agent desk reads them. ``kind`` is the card's type without ``assist_`` and
  ``seq`` counts that kind in the call from 0: replay re-derives the same cards in the same order, so the
  markers drop the ones already written. A failing assist session is logged and dropped; analytics go on.
* State: a call's analyzer lives in memory. A worker that meets a call it has no state for (it restarted,
  or another consumer had the call's earlier entries) replays the call's earlier finals from the per-call
  stream first. Replay is deterministic, so the outputs it re-derives have the same identities and are
  dropped by their markers, while any the crashed worker never wrote are written now.

Live timers (silence while a call is still up) run every ``tick_s``; calls without a call_ended (a lost
ingest node) are forgotten after ``stale_call_s`` of inactivity, with their final flag and summary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from callscribe.config import Config
from callscribe.errors import SchemaError
from callscribe.events import (
    Alert,
    CallEnded,
    CallFlag,
    CallStarted,
    CallSummary,
    Event,
    IntentUpdate,
    Scorecard,
    SentimentUpdate,
    Surge,
    Transcript,
    from_fields,
    now_ms,
    to_fields,
)
from callscribe.pii import mask_number
from callscribe.stream import keys
from callscribe.stream.groups import ensure_group, group_drained, stop_loop

from .analyzer import Analytics, AnalyticsSettings, CallAnalyzer, PriorCall
from .assist import AssistSession, assist_for
from .assist.bridge import outcome_of, state_of
from .qa import evaluate
from .qa.scoring import to_event as scorecard_event
from .repeat import caller_key
from .surge import SurgeDetector

log = logging.getLogger(__name__)

__all__ = ["AnalyticsWorker", "AssistOutput", "WorkerStats", "analytics_from_config", "prior_calls"]

# KEYS: marker, stream 1[, stream 2 ...]; ARGV: ttl_s, maxlen, field, value, ...
WRITE_ONCE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #KEYS do
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""


def analytics_from_config(cfg: Config) -> Analytics:
    settings = AnalyticsSettings(
        silence_alert_s=cfg.silence_alert_s,
        overtalk_alert_count=cfg.overtalk_alert_count,
        repeat_window_s=cfg.repeat_window_h * 3600.0,
        sentiment_alert=cfg.sentiment_alert,
        disclosure_threshold=cfg.disclosure_threshold,
        end_sentiment_model=cfg.end_sentiment_model,
        unresolved_model=cfg.unresolved_model,
    )
    analytics = Analytics(settings, cfg.rule_packs, cfg.intent_catalog or None, cfg.scorecard_form or None)
    if cfg.assist_packs:  # agent assist's scenario packs (keyword/assist/); default: the bundled ones
        assist_for(analytics, cfg.assist_packs)
    return analytics


async def prior_calls(redis: Any, cfg: Config, started: CallStarted) -> list[PriorCall]:
    """The caller's earlier calls within ``repeat_window_h`` from the repeat-caller index (a sorted set the
    worker fills with each call's summary): what a CallAnalyzer is opened with. Also used by the gateway when
    it replays a call for a ticket draft."""
    number = caller_key(started.metadata.get("caller", ""))
    if not number:
        return []
    window_ms = int(cfg.repeat_window_h * 3600 * 1000)
    at = started.started_at_ms or now_ms()
    members = await redis.zrangebyscore(keys.caller_history(cfg, number), at - window_ms, at - 1)
    out = []
    for m in members:
        try:
            d = json.loads(m)
            if d["call_id"] != started.call_id:
                out.append(PriorCall(str(d["call_id"]), int(d["started_at_ms"]), str(d["intent"]), bool(d["unresolved"])))
        except (ValueError, KeyError, TypeError):
            continue
    return out


@dataclass(frozen=True, slots=True)
class AssistOutput:
    """An assist card with its write-once identity ``{call_id}/assist/{kind}/{seq}`` (the cards carry no seq
    of their own, so the worker numbers them per call and kind as they come)."""

    identity: str
    event: Any

    @property
    def call_id(self) -> str:
        return self.event.call_id


@dataclass(slots=True)
class _AssistCall:
    """One call's assist session, the alerts of the call so far (its end's outcome needs them all) and how
    many cards of each kind it has emitted (their identities)."""

    session: AssistSession
    alerts: list[Alert] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class WorkerStats:
    entries: int = 0
    outputs_written: int = 0
    outputs_deduped: int = 0
    alerts: int = 0
    replays: int = 0
    bad_entries: int = 0
    redis_errors: int = 0
    assist_cards: int = 0
    assist_errors: int = 0
    scorecards: int = 0
    scorecard_errors: int = 0


class AnalyticsWorker:
    """One consumer of the analytics group. ``start()`` spawns the loop; ``stop()`` cancels it cleanly."""

    BATCH = 100
    BLOCK_MS = 200

    def __init__(
        self, cfg: Config, redis_url: str, analytics: Analytics | None = None, consumer: str | None = None,
        tick_s: float = 1.0, stale_call_s: float = 4 * 3600.0, claim_idle_s: float = 30.0,
    ) -> None:
        self.cfg = cfg
        self.analytics = analytics or analytics_from_config(cfg)
        self.consumer = consumer or cfg.analytics_consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.group = cfg.analytics_group
        self.stream = keys.finals_stream(cfg)
        self.tick_s = tick_s
        self.stale_call_s = stale_call_s
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
        self._sha = ""
        self.calls: dict[str, CallAnalyzer] = {}
        self._seen: dict[str, set[str]] = {}  # call_id -> segment ids analysed (replay bookkeeping)
        self.assist = assist_for(self.analytics)
        self.sessions: dict[str, _AssistCall] = {}  # call_id -> its assist session, beside self.calls
        self.surge = SurgeDetector(cfg.surge_window_s, cfg.surge_baseline_s, cfg.surge_min_calls, cfg.surge_ratio)
        self.stats = WorkerStats()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._ttl_s = cfg.call_stream_ttl_s

    # ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self._ensure_group()
        self._task = asyncio.create_task(self.run(), name=f"analytics-{self.consumer}")

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Finish the batch in hand and stop (reads block <= 200 ms); see ``stream.groups.stop_loop``."""
        self._stopping = True
        if self._task is not None:
            await stop_loop(self._task, timeout_s, f"analytics {self.consumer}")
            self._task = None
        await self.redis.aclose()

    async def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until the group has nothing undelivered or unacknowledged (shutdown, tests); True if so."""
        return await group_drained(self.redis, [self.stream], self.group, timeout_s)

    async def _ensure_group(self) -> None:
        await ensure_group(self.redis, self.stream, self.group)

    async def run(self) -> None:
        """Pending entries first, then new ones; timers in between. Redis outages are waited out."""
        backlog = True  # our own pending entries (from before a restart) come first
        last_tick = 0.0
        last_claim = 0.0
        backoff = 0.1
        while not self._stopping:
            try:
                if backlog:
                    reply = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=self.BATCH)
                    entries = reply[0][1] if reply else []
                    if not entries:
                        backlog = False
                        continue
                else:
                    reply = await self.redis.xreadgroup(
                        self.group, self.consumer, {self.stream: ">"}, count=self.BATCH, block=self.BLOCK_MS
                    )
                    entries = reply[0][1] if reply else []
                if entries:
                    await self._handle_batch(entries)
                now = time.monotonic()
                if now - last_tick >= self.tick_s:
                    last_tick = now
                    await self._tick()
                if now - last_claim >= max(self.claim_idle_ms / 1000 / 2, 1.0):
                    last_claim = now
                    if await self._claim_abandoned():
                        backlog = True
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.stats.redis_errors += 1
                if "NOGROUP" in str(exc):
                    await self._ensure_group()
                    continue
                if backoff <= 0.1:  # the first error of an outage; the rest at debug level
                    log.warning("analytics worker %s: Redis error, retrying: %s", self.consumer, exc)
                else:
                    log.debug("analytics worker %s: Redis still unavailable: %s", self.consumer, exc)
                backlog = True  # an entry whose outputs or ack failed is still pending: redo it first
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _claim_abandoned(self) -> bool:
        """Take over entries another (dead) consumer left unacknowledged for claim_idle_s."""
        try:
            reply = await self.redis.xautoclaim(
                self.stream, self.group, self.consumer, min_idle_time=self.claim_idle_ms, start_id="0-0", count=self.BATCH
            )
        except ResponseError:
            return False
        claimed = reply[1] if reply else []
        return bool(claimed)

    # ---------------------------------------------------------------------------------------------
    async def _handle_batch(self, entries: list[tuple[str, dict[str, str] | None]]) -> None:
        """Analyse a batch, write all its outputs in one round trip, then acknowledge it in one more.

        Acknowledging only after the outputs are written is what makes a crash safe (see the module
        docstring); batching is what makes the worker keep up (one pipeline, not two round trips an entry)."""
        outputs: list[Any] = []
        for entry_id, fields in entries:
            self.stats.entries += 1
            if fields is None:  # trimmed away while pending: nothing left to analyse
                continue
            try:
                event = from_fields(fields)
            except SchemaError as exc:
                self.stats.bad_entries += 1
                log.warning("analytics: skipping entry %s: %s", entry_id, exc)
                continue
            outputs += await self.process(event)
        await self._write(outputs)
        await self.redis.xack(self.stream, self.group, *[entry_id for entry_id, _ in entries])

    async def process(self, event: Event) -> list[Any]:
        """The outputs one input event causes (after catching up on the call if we lack its state)."""
        if isinstance(event, CallStarted):
            if event.call_id in self.calls:
                return []
            self._open(event, await self._history(event))
            return []
        if not isinstance(event, (Transcript, CallEnded)):
            return []  # dtmf and the like: nothing to analyse yet
        if isinstance(event, Transcript) and not event.is_final:
            return []
        call = self.calls.get(event.call_id)
        outputs: list[Any] = []
        if call is None or (isinstance(event, Transcript) and self._missed_before(event)):
            outputs += await self._replay(event)
            call = self.calls.get(event.call_id)
        if call is None:  # no call_started anywhere (expired per-call stream): start from what we have
            started = CallStarted(event.call_id, ("customer", "agent"), started_at_ms=now_ms())
            call = self._open(started, [])
        outputs += self._feed(call, event)
        return outputs

    def _open(self, started: CallStarted, history: list[PriorCall]) -> CallAnalyzer:
        """A call's analyzer and, beside it, its assist session."""
        call = self.calls[started.call_id] = self.analytics.call(started, history)
        self._seen[started.call_id] = set()
        caller = started.metadata.get("caller", "")
        try:
            session = self.assist.session(started.call_id, started.language, mask_number(caller) if caller else "")
            self.sessions[started.call_id] = _AssistCall(session)
        except Exception:  # noqa: BLE001 - assist must never stop analytics
            self.stats.assist_errors += 1
            log.exception("assist: cannot open a session for call %s; the call goes on without cards", started.call_id)
        return call

    def _feed(self, call: CallAnalyzer, event: Transcript | CallEnded) -> list[Any]:
        if isinstance(event, Transcript):
            seen = self._seen.setdefault(event.call_id, set())
            if event.segment_id in seen:
                return []
            seen.add(event.segment_id)
            outputs = call.on_final(event)
            for o in list(outputs):
                if isinstance(o, IntentUpdate) and o.intent != "other":
                    outputs += self._surge("intent", o.intent, o.call_id)
                    outputs += call.repeat_alert()
                elif isinstance(o, Alert) and o.category in ("escalation", "abuse"):
                    outputs += self._surge("rule", o.rule, o.call_id)
            return outputs + self._assist(call, event, outputs)
        outputs = call.on_end(event)
        outputs += self._assist(call, event, outputs)
        outputs += self._scorecard(call, outputs)
        self.calls.pop(event.call_id, None)
        self._seen.pop(event.call_id, None)
        self.sessions.pop(event.call_id, None)
        return outputs

    def _assist(self, call: CallAnalyzer, event: Transcript | CallEnded, outputs: list[Any]) -> list[AssistOutput]:
        """The assist session's cards for one final (or the call's end), numbered for their identities."""
        live = self.sessions.get(event.call_id)
        if live is None:
            return []
        try:
            alerts = [o for o in outputs if isinstance(o, Alert)]
            live.alerts += alerts
            if isinstance(event, Transcript):
                cards = live.session.on_final(event, state_of(call, outputs, event.channel))
            else:
                cards = live.session.on_end(event, outcome_of(call, [*live.alerts, *outputs], live.session.caller))
        except Exception:  # noqa: BLE001 - a pack or assist bug must not stall the call's analytics
            self.stats.assist_errors += 1
            self.sessions.pop(event.call_id, None)
            log.exception("assist: session of call %s failed; no more cards for it", event.call_id)
            return []
        out = []
        for card in cards:
            kind = card.TYPE.removeprefix("assist_")
            seq = live.counts.get(kind, 0)
            live.counts[kind] = seq + 1
            out.append(AssistOutput(f"{card.call_id}/assist/{kind}/{seq}", card))
        return out

    def _scorecard(self, call: CallAnalyzer, outputs: list[Any]) -> list[Scorecard]:
        """The finished call answered against the evaluation form (keyword/qa/), once its final flag and summary
        are in ``outputs`` (a call that had ended already yields none). A failing evaluator is logged and the call
        goes unscored; its analytics go on."""
        if not any(isinstance(o, CallSummary) for o in outputs):
            return []
        try:
            card = evaluate(self.analytics.form, call.qa)
            md = call.started.metadata
            return [scorecard_event(card, self.analytics.form, call.call_id, md.get("agent_id", ""), call.language,
                                    call.started.started_at_ms)]
        except Exception:  # noqa: BLE001 - a scorecard bug must not stall the call's analytics
            self.stats.scorecard_errors += 1
            log.exception("qa: scoring call %s failed; it goes unscored", call.call_id)
            return []

    def _surge(self, kind: str, topic: str, call_id: str) -> list[Surge]:
        surge = self.surge.observe(kind, topic, call_id, now_ms())
        return [surge] if surge else []

    def _missed_before(self, t: Transcript) -> bool:
        """The previous segment of this channel is unseen: another consumer had it. Checking the one
        before is enough: when that one arrived, its own predecessor was checked (or replayed)."""
        prefix, _, last = t.segment_id.rpartition("/")
        try:
            seq = int(last)
        except ValueError:
            return False
        return seq > 0 and f"{prefix}/{seq - 1}" not in self._seen.get(t.call_id, ())

    async def _replay(self, upto: Transcript | CallEnded) -> list[Any]:
        """Feed the call's earlier events from its per-call stream (state after a restart / hand-over)."""
        self.stats.replays += 1
        outputs: list[Any] = []
        entries = await self.redis.xrange(keys.call_stream(self.cfg, upto.call_id), count=self.cfg.call_stream_maxlen)
        for _, fields in entries:
            try:
                event = from_fields(fields)
            except SchemaError:
                continue
            if isinstance(event, CallStarted):
                if event.call_id not in self.calls:
                    self._open(event, await self._history(event))
                continue
            if isinstance(upto, Transcript) and isinstance(event, Transcript) and event.segment_id == upto.segment_id:
                break
            if isinstance(event, Transcript) and event.is_final and event.call_id in self.calls:
                outputs += self._feed(self.calls[event.call_id], event)
        return outputs

    async def _history(self, started: CallStarted) -> list[PriorCall]:
        return await prior_calls(self.redis, self.cfg, started)

    async def _tick(self) -> None:
        outputs: list[Any] = []
        now = now_ms()
        for call_id, call in list(self.calls.items()):
            outputs += call.tick(now)
            if now - call.last_activity_at_ms > self.stale_call_s * 1000:
                log.info("analytics: call %s silent for %.0f s with no call_ended; closing it", call_id, self.stale_call_s)
                outputs += self._feed(call, CallEnded(call_id, call.last_end_ms, "stale", call.finals))
        if outputs:
            await self._write(outputs)

    # ---------------------------------------------------------------------------------------------
    def _routes(self, out: Any) -> tuple[str, list[str]]:
        """(identity, destination streams) of one output."""
        cfg = self.cfg
        per_call = [keys.call_stream(cfg, out.call_id)] if hasattr(out, "call_id") else []
        if isinstance(out, Alert):
            return out.alert_id, [keys.alerts_stream(cfg), *per_call]
        if isinstance(out, Surge):
            return out.surge_id, [keys.alerts_stream(cfg)]
        if isinstance(out, IntentUpdate):
            return f"{out.call_id}/intent/{out.seq}", [keys.insights_stream(cfg), *per_call]
        if isinstance(out, CallFlag):
            extra = [keys.callbacks_stream(cfg)] if (out.final and out.unresolved) else []
            return f"{out.call_id}/flag/{out.seq}", [keys.insights_stream(cfg), *extra, *per_call]
        if isinstance(out, CallSummary):
            return f"{out.call_id}/summary", [keys.insights_stream(cfg), *per_call]
        if isinstance(out, SentimentUpdate):
            return f"{out.call_id}/sentiment/{out.seq}", [keys.insights_stream(cfg), *per_call]
        if isinstance(out, AssistOutput):
            return out.identity, [keys.assist_stream(cfg), *per_call]
        if isinstance(out, Scorecard):
            return f"{out.call_id}/scorecard", [keys.scores_stream(cfg), *per_call]
        raise TypeError(f"not an analytics output: {out!r}")

    async def _write(self, outputs: list[Any]) -> None:
        if not outputs:
            return
        calls = []
        for out in outputs:
            identity, streams = self._routes(out)
            argv: list[str] = [str(self._ttl_s), str(self.cfg.global_stream_maxlen)]
            for k, v in to_fields(out.event if isinstance(out, AssistOutput) else out).items():
                argv += [k, v]
            calls.append(([keys.output_marker(self.cfg, identity), *streams], argv))
        try:
            results = await self._run_scripts(calls)
        except NoScriptError:  # the server restarted (or SCRIPT FLUSH): load it again, once
            self._sha = ""
            results = await self._run_scripts(calls)
        for out, written in zip(outputs, results):
            if written:
                self.stats.outputs_written += 1
                if isinstance(out, AssistOutput):
                    self.stats.assist_cards += 1
                elif isinstance(out, Scorecard):
                    self.stats.scorecards += 1
                elif isinstance(out, Alert):
                    self.stats.alerts += 1
                    log.info("alert %s %s on call %s: %s", out.category, out.rule, out.call_id, out.quote[:80])
            else:
                self.stats.outputs_deduped += 1
        summaries = [o for o in outputs if isinstance(o, CallSummary)]
        for s in summaries:
            await self._record_caller(s)

    async def _run_scripts(self, calls: list[tuple[list[str], list[str]]]) -> list[Any]:
        if not self._sha:
            self._sha = await self.redis.script_load(WRITE_ONCE_LUA)
        async with self.redis.pipeline(transaction=False) as pipe:
            for k, a in calls:
                pipe.evalsha(self._sha, len(k), *k, *a)
            return await pipe.execute()

    async def _record_caller(self, s: CallSummary) -> None:
        number = caller_key(s.caller)
        if not number:
            return
        key = keys.caller_history(self.cfg, number)
        window_ms = int(self.cfg.repeat_window_h * 3600 * 1000)
        member = json.dumps({"call_id": s.call_id, "started_at_ms": s.started_at_ms, "intent": s.intent,
                             "unresolved": s.unresolved}, separators=(",", ":"))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {member: s.started_at_ms or now_ms()})
            pipe.zremrangebyscore(key, 0, now_ms() - window_ms)
            pipe.expire(key, int(self.cfg.repeat_window_h * 3600) + 3600)
            await pipe.execute()
