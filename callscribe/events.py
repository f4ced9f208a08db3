"""The events that flow through callscribe, and their one wire form (Redis stream entry fields / JSON).

Every producer and consumer imports these classes; nothing builds event dicts by hand. Each entry carries
``type`` and ``v`` (schema version). Readers accept versions <= SCHEMA_VERSION (older ones are upgraded in
``_upgrade``) and reject newer ones with SchemaError, so a rolling upgrade never misreads data.

Field encoding in Redis: every value is a string; ints in decimal, floats with repr, ``words`` and
``metadata`` as compact JSON. ``to_json`` / ``from_json`` give the same content as a JSON object (used by the
WebSocket protocol and ``callscribe transcribe --json``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal, Mapping, Union

from .errors import SchemaError

SCHEMA_VERSION = 1

Channel = Literal["customer", "agent", "mixed"]
CHANNELS: tuple[str, ...] = ("customer", "agent", "mixed")


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds (the unit of every *_at_ms field)."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Word:
    """One word (or, in Chinese, one token of characters) with its time in the call, in ms."""

    text: str
    start_ms: int
    end_ms: int
    probability: float


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A call's audio started arriving. ``metadata`` holds caller/called number, agent id, queue, ..."""

    TYPE: ClassVar[str] = "call_started"
    call_id: str
    channels: tuple[str, ...]
    language: str = "auto"
    sample_rate_hz: int = 16000
    encoding: str = "pcm16"
    metadata: Mapping[str, str] = field(default_factory=dict)
    started_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class Transcript:
    """Text of one utterance (segment) on one channel.

    ``segment_id`` is stable across the partial revisions of one utterance; ``revision`` counts them from 0,
    and the final has the highest revision. ``start_ms``/``end_ms`` are offsets from the start of the call's
    audio. ``speech_end_at_ms`` (finals) is the wall-clock time the endpoint was detected, so
    ``emitted_at_ms - speech_end_at_ms`` is the decode latency a consumer sees.
    """

    TYPE: ClassVar[str] = "transcript"
    call_id: str
    channel: str
    segment_id: str
    revision: int
    is_final: bool
    text: str
    start_ms: int
    end_ms: int
    language: str
    confidence: float
    words: tuple[Word, ...] = ()
    emitted_at_ms: int = field(default_factory=now_ms)
    speech_end_at_ms: int = 0

    @property
    def kind(self) -> str:
        return "final" if self.is_final else "partial"


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A call's audio stopped; every final of the call was emitted before this event."""

    TYPE: ClassVar[str] = "call_ended"
    call_id: str
    duration_ms: int
    reason: str  # "hangup" | "client_end" | "disconnect" | "timeout" | "error" | "eof" | "shutdown"
    finals: int = 0
    ended_at_ms: int = field(default_factory=now_ms)
    recording: str = ""
    """Where the call's recording is in the recording store (its prefix, ``2026/12/08/<call id>``, holding
    ``manifest.json``: callscribe/recording); "" when the call was not recorded. Added within schema v1, last
    and with a default: older entries read as not recorded, and an older reader ignores the key."""


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A key the caller (or agent) pressed, from RFC 4733 telephone-events on the RTP stream.

    Digits never reach the ASR (they are not speech) but matter to analytics: IVR choices, verification.
    ``seq`` counts the call's DTMF events from 0 (their write-once identity); ``at_ms`` is the offset in the
    call's audio timeline of that channel."""

    TYPE: ClassVar[str] = "dtmf"
    call_id: str
    channel: str
    digit: str
    seq: int
    at_ms: int
    emitted_at_ms: int = field(default_factory=now_ms)


# --- analytics (keyword/): what the consumers of the transcript streams publish ---------------------
@dataclass(frozen=True, slots=True)
class Quote:
    """A piece of a call that explains an alert or flag: who said what, when (text already redacted)."""

    channel: str
    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class Alert:
    """A supervisor alert. ``alert_id`` (``{call_id}/alert/{rule}``) is its identity: one per call and rule.

    ``category``: ``escalation``, ``abuse``, ``compliance``, ``silence``, ``overtalk`` or ``repeat_caller``.
    ``trigger_at_ms`` is when the final that triggered it was emitted (0 for timers), so
    ``emitted_at_ms - trigger_at_ms`` is the alerting latency. ``details`` holds extra facts (the matched
    words, the earlier calls of a repeat caller, ...)."""

    TYPE: ClassVar[str] = "alert"
    call_id: str
    alert_id: str
    rule: str
    category: str
    severity: str
    channel: str
    quote: str
    start_ms: int
    end_ms: int
    segment_id: str = ""
    details: Mapping[str, str] = field(default_factory=dict)
    trigger_at_ms: int = 0
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class IntentUpdate:
    """The call's current top intent, re-published when it changes (``seq`` counts updates from 0)."""

    TYPE: ClassVar[str] = "intent"
    call_id: str
    seq: int
    intent: str
    name: str
    score: float
    runner_up: str
    runner_up_score: float
    finals: int
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class CallFlag:
    """The unresolved-issue flag of a call: provisional while it runs (``final`` false), decided at its end.

    A final flag with ``unresolved`` true also goes to the callback queue stream for the senior team."""

    TYPE: ClassVar[str] = "call_flag"
    call_id: str
    seq: int
    unresolved: bool
    final: bool
    reasons: tuple[str, ...] = ()
    quotes: tuple[Quote, ...] = ()
    intent: str = ""
    caller: str = ""
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class CallSummary:
    """What analytics concluded about a finished call: the row search and QA pages show."""

    TYPE: ClassVar[str] = "call_summary"
    call_id: str
    intent: str
    intent_score: float
    alerts: tuple[str, ...]
    unresolved: bool
    reasons: tuple[str, ...]
    caller: str = ""
    agent_id: str = ""
    language: str = ""
    started_at_ms: int = 0
    duration_ms: int = 0
    finals: int = 0
    repeat_of: tuple[str, ...] = ()
    emitted_at_ms: int = field(default_factory=now_ms)
    sentiment: str = ""
    """The customer's sentiment at the end of the call: negative | neutral | positive ("" when not known;
    added within schema v1 with a default, so older entries still read)."""
    sentiment_score: float = 0.0


@dataclass(frozen=True, slots=True)
class SentimentUpdate:
    """The customer's running sentiment changed label (keyword/sentiment.py): for the agent desk and the
    wallboard while the call goes on. ``score`` in [-1, 1] weighs the latest customer turns most; ``trend``
    is how much it moved over the call (negative: getting worse)."""

    TYPE: ClassVar[str] = "sentiment"
    call_id: str
    seq: int
    label: str
    score: float
    trend: float = 0.0
    customer_turns: int = 0
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class Surge:
    """Many calls on one topic (an intent, or an alert rule) in the last window, against the baseline."""

    TYPE: ClassVar[str] = "surge"
    surge_id: str
    topic_kind: str  # "intent" | "rule"
    topic: str
    window_s: int
    count: int
    baseline: float
    ratio: float
    call_ids: tuple[str, ...] = ()
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class CallbackDone:
    """A supervisor took a call off the callback queue (web gateway). Written to the callbacks stream so
    every gateway's wallboard drops it, and kept there as the audit trail of who handled it."""

    TYPE: ClassVar[str] = "callback_done"
    call_id: str
    by: str
    note: str = ""
    emitted_at_ms: int = field(default_factory=now_ms)


# --- agent assist (keyword/assist/): cards for the agent desk while the call goes on -------------------
# Added within schema v1: new types only, every field has a meaning at its default, so an older reader that
# meets one rejects it as an unknown type (SchemaError) and never misreads it. ``trigger_at_ms`` is the
# emit time of the final that caused the card, so ``emitted_at_ms - trigger_at_ms`` is final-to-card latency.
@dataclass(frozen=True, slots=True)
class ScenarioCard:
    """The call's intent is settled: the scenario (流程导引) the agent follows, with its steps and lines.
    ``seq`` counts the call's scenario cards from 0 (a later one replaces the earlier when the intent moves)."""

    TYPE: ClassVar[str] = "assist_scenario"
    call_id: str
    seq: int
    scenario: str
    intent: str
    title: str
    language: str = ""
    steps: tuple[str, ...] = ()
    """Step ids in their order."""
    required: tuple[str, ...] = ()
    lines: Mapping[str, str] = field(default_factory=dict)
    """Step id -> the line to say (话术)."""
    score: float = 0.0
    finals: int = 0
    trigger_at_ms: int = 0
    emitted_at_ms: int = field(default_factory=now_ms)
    titles: Mapping[str, str] = field(default_factory=dict)
    """Step id -> its title (核实身份, "Verify the account holder"), so a reader of the stream can show the guide
    without the pack. Added within schema v1, last and with a default: an entry written before it reads with no
    titles (show the step id or its line), and an older reader skips the key."""


@dataclass(frozen=True, slots=True)
class StepDone:
    """A guided step is recognised as done from the transcript (or the analyzer's state: ``by`` says which)."""

    TYPE: ClassVar[str] = "assist_step_done"
    call_id: str
    scenario: str
    step: str
    title: str = ""
    by: str = ""
    """``phrase``, ``pattern`` or ``signal:<name>`` (the analyzer's verification / resolved / pending)."""
    quote: str = ""
    start_ms: int = 0
    end_ms: int = 0
    segment_id: str = ""
    trigger_at_ms: int = 0
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class StepPrompt:
    """A required step is missing: ``reason`` says why now (``before:<step>`` an order violation such as an
    account change before verification, ``account_access`` details read out unverified, ``closing``)."""

    TYPE: ClassVar[str] = "assist_step_prompt"
    call_id: str
    scenario: str
    step: str
    reason: str
    title: str = ""
    line: str = ""
    segment_id: str = ""
    trigger_at_ms: int = 0
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class KnowledgeCard:
    """An answer card for the customer's latest question, shown at or above its threshold, with the score."""

    TYPE: ClassVar[str] = "assist_knowledge"
    call_id: str
    card: str
    title: str
    answer: str
    source: str
    score: float
    threshold: float = 0.0
    scenario: str = ""
    question: str = ""
    """The customer's words (redacted)."""
    matched: str = ""
    """The card's similar question that matched best."""
    segment_id: str = ""
    trigger_at_ms: int = 0
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class Offer:
    """A scenario's offer (场景化营销) at its moment: ``status`` ``made`` (shown to the agent) or ``suppressed``
    with ``reason`` (``escalation``, ``negative_sentiment``, ``not_resolved``, ``open_complaint``, ...)."""

    TYPE: ClassVar[str] = "assist_offer"
    call_id: str
    offer: str
    scenario: str
    status: str
    reason: str = ""
    title: str = ""
    line: str = ""
    moment: str = ""
    segment_id: str = ""
    trigger_at_ms: int = 0
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class TicketDraft:
    """A one-click ticket (智能化快捷派单) drafted for the agent: at call end when unresolved, or on a click.

    ``summary`` is extractive: the customer's key utterances verbatim (redacted), never generated text."""

    TYPE: ClassVar[str] = "assist_ticket"
    call_id: str
    ticket_type: str
    """The template's type (``type`` in the ticket JSON; the entry's own ``type`` is the event type)."""
    priority: str
    intent: str
    title: str = ""
    subtype: str = ""
    trigger: str = "unresolved"
    """``unresolved`` (call end) or ``agent`` (the agent asked for it)."""
    summary: tuple[str, ...] = ()
    quotes: tuple[Quote, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    """Required fields the call did not fill: the agent completes them."""
    reasons: tuple[str, ...] = ()
    caller: str = ""
    """Masked (138****8000)."""
    previous_calls: tuple[str, ...] = ()
    steps_done: tuple[str, ...] = ()
    emitted_at_ms: int = field(default_factory=now_ms)
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Field name -> {language: label} (``{"install_address": {"zh": "装机地址", "en": "Installation address"}}``)
    from the scenario packs, so the desk shows each field in the viewer's language (the call's language may
    differ) without the pack; a field without a label in that language is shown by its name. Added within schema
    v1 like ``ScenarioCard.titles``."""


# --- tickets and assist telemetry (gateway: the agent desk's submissions) ------------------------------------
# Added within schema v1 as new types (an older reader rejects them as unknown, never misreads them).
@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket the agent (or a supervisor) submitted from the call, usually an edited :class:`TicketDraft`.

    ``ticket_id`` is its identity (client-supplied, or ``{call_id}:{ticket_type}``): submitting it again is a
    no-op. Goes to the tickets stream, the store, the supervisor's callback queue and out by webhook.
    ``caller`` is the call's number as stored; every exit masks it per role (callscribe/pii.py)."""

    TYPE: ClassVar[str] = "ticket"
    ticket_id: str
    call_id: str
    ticket_type: str
    """The ticket's type (``type`` in the API body; the entry's own ``type`` is the event type)."""
    priority: str
    summary: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)
    title: str = ""
    subtype: str = ""
    intent: str = ""
    status: str = "open"
    caller: str = ""
    agent_id: str = ""
    """The agent of the call."""
    by: str = ""
    """Who submitted it (the token's subject)."""
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class TicketStatus:
    """The ticketing system (CRM) reports where a submitted ticket stands (gateway/assist/status.py, the inbound
    ``POST /api/v1/tickets/{ticket_id}/status``): ``status`` open | in_progress | resolved | closed, with its
    optional ``note`` and the ticket's id in that system (``external_id``). ``changed_at_ms`` is when it changed
    there (the receive time when the CRM does not say), so a late retry of an older change never overwrites a newer
    one; ``by`` says who reported it (``signature`` for a request signed with webhook_secret, else
    ``<role>:<subject>`` of the token). A new type within schema v1 (an older reader rejects it as unknown)."""

    TYPE: ClassVar[str] = "ticket_status"
    ticket_id: str
    call_id: str
    status: str
    note: str = ""
    external_id: str = ""
    by: str = ""
    changed_at_ms: int = 0
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class AssistTelemetry:
    """The agent desk reports what it did with an assist card: ``action`` shown | clicked | used | dismissed.
    ``card_kind`` is the card event's type without ``assist_`` (scenario, step_prompt, knowledge, offer,
    ticket, step_done) and ``card_id`` its id (scenario / step / card / offer / ticket_type field)."""

    TYPE: ClassVar[str] = "assist_telemetry"
    call_id: str
    card_kind: str
    card_id: str
    action: str
    agent_id: str = ""
    emitted_at_ms: int = field(default_factory=now_ms)


# --- QA scorecards (keyword/qa/): every finished call scored against the evaluation form, and people's reviews ----
# Added within schema v1 as new types (an older reader rejects them as unknown, never misreads them).
@dataclass(frozen=True, slots=True)
class ScoreAnswer:
    """One question of a :class:`Scorecard`: ``answer`` True (yes), False (no) or None (not applicable), with what
    scoring and showing it needs without the form: the question's ``weight``, whether it is ``critical``, its
    ``section`` and ``label`` per language ({"zh", "en"}); the evaluator's ``confidence`` and ``why``, and the
    ``evidence`` (who said what when, text redacted) that decided it, when there is one."""

    question: str
    answer: bool | None
    confidence: float
    weight: float
    critical: bool = False
    section: str = ""
    label: Mapping[str, str] = field(default_factory=dict)
    why: str = ""
    evidence: Quote | None = None


@dataclass(frozen=True, slots=True)
class Scorecard:
    """A finished call answered against the evaluation form (keyword/qa/evaluate.py), written once per call by the
    analytics worker (``{call_id}/scorecard``) to the scores stream and the call's own stream. ``form`` is
    ``id@version``; ``score`` 0-100 (0 when a critical question is answered no), ``raw_score`` the same without that
    rule, both None when no question applied; ``failed_critical`` the critical questions answered no."""

    TYPE: ClassVar[str] = "scorecard"
    call_id: str
    form: str
    score: float | None
    raw_score: float | None
    failed_critical: tuple[str, ...] = ()
    answers: tuple[ScoreAnswer, ...] = ()
    agent_id: str = ""
    language: str = ""
    started_at_ms: int = 0
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class ScoreOverride:
    """A reviewer (role qa, supervisor or admin: ``by`` their subject) changed one answer of a call's scorecard
    from ``old_answer`` to ``new_answer`` for ``reason`` (redacted); ``appeal_id`` when it accepts an agent's appeal.
    ``override_id`` is its identity: the store files each once, and the latest override of a question wins."""

    TYPE: ClassVar[str] = "score_override"
    override_id: str
    call_id: str
    question: str
    old_answer: bool | None
    new_answer: bool | None
    reason: str
    by: str
    role: str = ""
    appeal_id: str = ""
    emitted_at_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class ScoreAppeal:
    """An agent appeals one answer of their call's scorecard (``status`` open, ``comment`` theirs, ``wanted`` the
    answer they ask for), and later a reviewer's decision on it (the same ``appeal_id`` with ``status`` accepted or
    rejected, ``by`` the reviewer, ``reason`` theirs). Text redacted."""

    TYPE: ClassVar[str] = "score_appeal"
    appeal_id: str
    call_id: str
    question: str
    status: str
    agent_id: str = ""
    comment: str = ""
    wanted: bool | None = None
    by: str = ""
    reason: str = ""
    emitted_at_ms: int = field(default_factory=now_ms)


Event = Union[CallStarted, Transcript, CallEnded, Dtmf, Alert, IntentUpdate, CallFlag, CallSummary, SentimentUpdate, Surge,
              CallbackDone, ScenarioCard, StepDone, StepPrompt, KnowledgeCard, Offer, TicketDraft,
              Ticket, TicketStatus, AssistTelemetry, Scorecard, ScoreOverride, ScoreAppeal]
_TYPES: dict[str, type] = {
    c.TYPE: c for c in (CallStarted, Transcript, CallEnded, Dtmf, Alert, IntentUpdate, CallFlag, CallSummary, SentimentUpdate,
                        Surge, CallbackDone, ScenarioCard, StepDone, StepPrompt, KnowledgeCard, Offer, TicketDraft, Ticket,
                        TicketStatus, AssistTelemetry, Scorecard, ScoreOverride, ScoreAppeal)
}
_TRANSCRIPT_FIELDS = tuple(f.name for f in fields(Transcript))
_GENERIC = (Alert, IntentUpdate, CallFlag, CallSummary, SentimentUpdate, Surge, CallbackDone, ScenarioCard, StepDone,
            StepPrompt, KnowledgeCard, Offer, TicketDraft, Ticket, TicketStatus, AssistTelemetry, Scorecard, ScoreOverride,
            ScoreAppeal)


# ---------------------------------------------------------------------------------------------------
def to_dict(event: Event) -> dict[str, Any]:
    """JSON-ready dict: ``type``, ``v`` and the dataclass fields (words as objects)."""
    if type(event) is Transcript:  # the hot path (every partial and final): what asdict gives, without its deep copies
        d = {name: getattr(event, name) for name in _TRANSCRIPT_FIELDS}
        d["words"] = tuple({"text": w.text, "start_ms": w.start_ms, "end_ms": w.end_ms, "probability": w.probability}
                           for w in event.words)
        d["kind"] = event.kind
        return {"type": event.TYPE, "v": SCHEMA_VERSION, **d}
    d = asdict(event)
    if isinstance(event, Transcript):
        d["kind"] = event.kind
    if isinstance(event, CallStarted):
        d["channels"] = list(event.channels)
        d["metadata"] = dict(event.metadata)
    if isinstance(event, _GENERIC):
        for f in fields(event):
            value = d[f.name]
            if isinstance(value, tuple):
                d[f.name] = list(value)
            elif f.name == "details":
                d[f.name] = dict(value)
    return {"type": event.TYPE, "v": SCHEMA_VERSION, **d}


def to_json(event: Event) -> str:
    return json.dumps(to_dict(event), ensure_ascii=False, separators=(",", ":"))


def to_fields(event: Event) -> dict[str, str]:
    """Flat string fields for a Redis stream entry."""
    out: dict[str, str] = {}
    for key, value in to_dict(event).items():
        if isinstance(value, bool):
            out[key] = "1" if value else "0"
        elif value is None:  # an optional field (a score, an answer): "" reads back as None
            out[key] = ""
        elif isinstance(value, (list, dict, tuple)):
            out[key] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            out[key] = str(value)
    return out


def from_fields(fields: Mapping[bytes | str, bytes | str]) -> Event:
    """Parse a Redis stream entry (bytes or str keys/values) into its event."""
    d: dict[str, Any] = {}
    try:
        for k, v in fields.items():
            key = k.decode() if isinstance(k, bytes) else k
            d[key] = v.decode() if isinstance(v, bytes) else v
    except UnicodeDecodeError as exc:
        raise SchemaError(f"event field is not UTF-8: {exc}") from exc
    return from_dict(d, strings=True)


def from_json(text: str | bytes) -> Event:
    try:
        d = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise SchemaError(f"not JSON: {exc}") from exc
    if not isinstance(d, dict):
        raise SchemaError("event must be a JSON object")
    return from_dict(d, strings=False)


def from_dict(d: Mapping[str, Any], strings: bool = False) -> Event:
    """Build an event from a dict; ``strings`` when every value is a string (Redis fields)."""
    try:
        version = int(d.get("v", 1))
        kind = d["type"]
        if not isinstance(kind, str):
            raise TypeError(f"type must be a string, not {type(kind).__name__}")
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        raise SchemaError(f"event without a valid type/v: {exc!r}") from exc
    if version > SCHEMA_VERSION:
        raise SchemaError(f"event schema v{version} is newer than this reader (v{SCHEMA_VERSION}); upgrade callscribe")
    cls = _TYPES.get(kind)
    if cls is None:
        raise SchemaError(f"unknown event type {kind!r}")
    d = _upgrade(dict(d), version)
    if cls in _GENERIC:
        return _generic(cls, kind, d)
    try:
        if cls is Transcript:
            words = d.get("words") or []
            if isinstance(words, str):
                words = json.loads(words)
            return Transcript(
                call_id=str(d["call_id"]),
                channel=str(d["channel"]),
                segment_id=str(d["segment_id"]),
                revision=int(d["revision"]),
                is_final=_bool(d["is_final"]),
                text=str(d["text"]),
                start_ms=int(d["start_ms"]),
                end_ms=int(d["end_ms"]),
                language=str(d["language"]),
                confidence=float(d["confidence"]),
                words=tuple(Word(str(w["text"]), int(w["start_ms"]), int(w["end_ms"]), float(w["probability"])) for w in words),
                emitted_at_ms=int(d.get("emitted_at_ms", 0)),
                speech_end_at_ms=int(d.get("speech_end_at_ms", 0)),
            )
        if cls is CallStarted:
            channels = d["channels"]
            metadata = d.get("metadata") or {}
            if isinstance(channels, str):
                channels = json.loads(channels)
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            if not isinstance(channels, list) or not isinstance(metadata, dict):
                raise TypeError("channels must be a list and metadata an object")
            return CallStarted(
                call_id=str(d["call_id"]),
                channels=tuple(str(c) for c in channels),
                language=str(d.get("language", "auto")),
                sample_rate_hz=int(d.get("sample_rate_hz", 16000)),
                encoding=str(d.get("encoding", "pcm16")),
                metadata={str(k): str(v) for k, v in dict(metadata).items()},
                started_at_ms=int(d.get("started_at_ms", 0)),
            )
        if cls is Dtmf:
            return Dtmf(
                call_id=str(d["call_id"]),
                channel=str(d["channel"]),
                digit=str(d["digit"]),
                seq=int(d["seq"]),
                at_ms=int(d["at_ms"]),
                emitted_at_ms=int(d.get("emitted_at_ms", 0)),
            )
        return CallEnded(
            call_id=str(d["call_id"]),
            duration_ms=int(d["duration_ms"]),
            reason=str(d["reason"]),
            finals=int(d.get("finals", 0)),
            ended_at_ms=int(d.get("ended_at_ms", 0)),
            recording=str(d.get("recording", "")),
        )
    except (KeyError, ValueError, TypeError, OverflowError, RecursionError) as exc:  # Overflow: int(1e400)
        raise SchemaError(f"bad {kind} event: {exc!r}") from exc


def _generic(cls: type, kind: str, d: Mapping[str, Any]) -> Event:
    """Build one of the analytics events from its fields, coercing by the declared field type."""
    values: dict[str, Any] = {}
    try:
        for f in fields(cls):
            if f.name not in d:
                continue  # a default applies (or the constructor names the missing field)
            raw = d[f.name]
            kind_name = str(f.type)
            if kind_name.startswith(("tuple", "Mapping")) and isinstance(raw, str):
                raw = json.loads(raw)
            if kind_name == "int":
                values[f.name] = int(raw)
            elif kind_name == "float":
                values[f.name] = float(raw)
            elif kind_name == "bool":
                values[f.name] = _bool(raw)
            elif kind_name in ("float | None", "bool | None"):  # "" in Redis fields, null in JSON
                values[f.name] = None if raw is None or raw == "" else (float(raw) if kind_name[0] == "f" else _bool(raw))
            elif kind_name == "tuple[ScoreAnswer, ...]":
                if not isinstance(raw, list):
                    raise TypeError(f"{f.name} must be a list")
                values[f.name] = tuple(_score_answer(a) for a in raw)
            elif kind_name == "tuple[Quote, ...]":
                values[f.name] = tuple(
                    Quote(str(q["channel"]), str(q["text"]), int(q["start_ms"]), int(q["end_ms"])) for q in raw
                )
            elif kind_name.startswith("tuple"):
                if not isinstance(raw, list):
                    raise TypeError(f"{f.name} must be a list")
                values[f.name] = tuple(str(x) for x in raw)
            elif kind_name == "Mapping[str, Mapping[str, str]]":  # TicketDraft.labels: name -> {language: label}
                if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
                    raise TypeError(f"{f.name} must be an object of objects")
                values[f.name] = {str(k): {str(a): str(b) for a, b in v.items()} for k, v in raw.items()}
            elif kind_name.startswith("Mapping"):
                if not isinstance(raw, dict):
                    raise TypeError(f"{f.name} must be an object")
                values[f.name] = {str(k): str(v) for k, v in raw.items()}
            else:
                values[f.name] = str(raw)
        return cls(**values)
    except (KeyError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise SchemaError(f"bad {kind} event: {exc!r}") from exc


def _quote(q: Mapping[str, Any]) -> Quote:
    return Quote(str(q["channel"]), str(q["text"]), int(q["start_ms"]), int(q["end_ms"]))


def _score_answer(a: Any) -> ScoreAnswer:
    if not isinstance(a, dict) or not isinstance(a.get("label", {}), dict):
        raise TypeError("a scorecard answer must be an object (label an object)")
    ev = a.get("evidence")
    return ScoreAnswer(
        question=str(a["question"]), answer=None if a.get("answer") is None else _bool(a["answer"]),
        confidence=float(a.get("confidence", 0.0)), weight=float(a["weight"]), critical=_bool(a.get("critical", False)),
        section=str(a.get("section", "")), label={str(k): str(v) for k, v in a.get("label", {}).items()},
        why=str(a.get("why", "")), evidence=_quote(ev) if ev else None,
    )


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    return str(v).lower() in ("1", "true")


def _upgrade(d: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring an older entry up to SCHEMA_VERSION. v1 is the first version: nothing to do yet."""
    return d


__all__ = [
    "SCHEMA_VERSION", "Channel", "CHANNELS", "Word", "CallStarted", "Transcript", "CallEnded", "Dtmf", "Event",
    "Quote", "Alert", "IntentUpdate", "CallFlag", "CallSummary", "SentimentUpdate", "Surge", "CallbackDone",
    "ScenarioCard", "StepDone", "StepPrompt", "KnowledgeCard", "Offer", "TicketDraft", "Ticket", "TicketStatus",
    "AssistTelemetry", "ScoreAnswer", "Scorecard", "ScoreOverride", "ScoreAppeal",
    "to_dict", "to_json", "to_fields", "from_fields", "from_json", "from_dict", "now_ms",
]
