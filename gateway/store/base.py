"""The store's interface and rows. Backends (SQLite, PostgreSQL) implement :class:`TranscriptStore` so the
gateway's search API and the ingest consumer never know which one is behind them."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from callscribe.errors import CallscribeError

from .query import Term, highlight, parse_query


class StoreError(CallscribeError):
    """The store cannot be opened: an unsupported URL, a bad DSN, a server that is down or refuses the login.
    The message names the URL (password masked) and what went wrong."""


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***`` (in ``user:pw@``, ``password=pw`` or ``?password=pw``),
    so error messages and logs can name the store without leaking the credential."""
    url = re.sub(r"(://[^:/@\s]*:)\S*@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", r"\1***", url, flags=re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Utterance:
    """One final as stored (already redacted upstream: the pipeline stores redacted text)."""

    call_id: str
    segment_id: str
    channel: str
    start_ms: int
    end_ms: int
    text: str
    at_ms: int  # wall time of the call start + start_ms: what date filters use


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call as search shows it: started / ended / analysed (each update fills in more)."""

    call_id: str
    started_at_ms: int = 0
    duration_ms: int = 0
    ended: bool = False
    agent_id: str = ""
    queue: str = ""
    caller: str = ""
    language: str = ""
    intent: str = ""
    intent_score: float = 0.0
    unresolved: bool = False
    alerts: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    quotes: tuple[str, ...] = ()
    """The final unresolved flag's quotes (what was left pending), each a compact JSON object
    ``{"channel", "text", "start_ms", "end_ms"}`` (text redacted by the analyzer): caller history shows them."""


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """A submitted ticket as stored (from a ``ticket`` event; ``caller`` as the call has it, masked at exits).
    ``status`` starts ``open``; the ticketing system reports later ones (``ticket_status`` events,
    :meth:`TranscriptStore.set_ticket_status`) with a note and its own id for the ticket."""

    ticket_id: str
    call_id: str
    type: str
    priority: str
    status: str = "open"
    title: str = ""
    subtype: str = ""
    intent: str = ""
    summary: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)
    caller: str = ""
    agent_id: str = ""
    created_by: str = ""
    created_at_ms: int = 0
    status_note: str = ""
    """The note that came with the latest status (the CRM's words: "engineer booked for Tuesday")."""
    external_id: str = ""
    """The ticket's id in the ticketing system (kept once reported, until a later report names another)."""
    status_at_ms: int = 0
    """When the latest reported status changed in the ticketing system; 0 until it reports one."""

    def to_dict(self) -> dict[str, Any]:
        return {"ticket_id": self.ticket_id, "call_id": self.call_id, "type": self.type, "priority": self.priority,
                "status": self.status, "title": self.title, "subtype": self.subtype, "intent": self.intent,
                "summary": list(self.summary), "fields": dict(self.fields), "caller": self.caller,
                "agent_id": self.agent_id, "created_by": self.created_by, "created_at_ms": self.created_at_ms,
                "status_note": self.status_note, "external_id": self.external_id, "status_at_ms": self.status_at_ms}


def ticket_record(e: Any) -> TicketRecord:
    """The stored form of a ``ticket`` event (callscribe.events.Ticket)."""
    return TicketRecord(e.ticket_id, e.call_id, e.ticket_type, e.priority, status=e.status, title=e.title,
                        subtype=e.subtype, intent=e.intent, summary=tuple(e.summary), fields=dict(e.fields),
                        caller=e.caller, agent_id=e.agent_id, created_by=e.by, created_at_ms=e.emitted_at_ms)


TICKET_COLS = ["ticket_id", "call_id", "type", "priority", "status", "title", "subtype", "intent", "summary", "fields",
               "caller", "agent_id", "created_by", "created_at_ms", "status_note", "external_id", "status_at_ms"]


def ticket_from_row(row: Sequence[Any]) -> TicketRecord:
    d = dict(zip(TICKET_COLS, row))
    d["summary"] = tuple(json.loads(d["summary"] or "[]"))
    d["fields"] = dict(json.loads(d["fields"] or "{}"))
    return TicketRecord(**d)


def ticket_row(t: TicketRecord) -> list[Any]:
    return [t.ticket_id, t.call_id, t.type, t.priority, t.status, t.title, t.subtype, t.intent,
            json.dumps(list(t.summary), ensure_ascii=False), json.dumps(dict(t.fields), ensure_ascii=False),
            t.caller, t.agent_id, t.created_by, t.created_at_ms, t.status_note, t.external_id, t.status_at_ms]


@dataclass(frozen=True, slots=True)
class AssistEvent:
    """One thing the agent desk did with an assist card (telemetry). One row per call, card and action: a card
    shown twice in a call counts once."""

    call_id: str
    card_kind: str
    card_id: str
    action: str  # shown | clicked | used | dismissed
    agent_id: str = ""
    at_ms: int = 0


ASSIST_ACTIONS = ("shown", "clicked", "used", "dismissed")


def adoption_report(counts: Sequence[tuple[str, str, str, str, int]]) -> dict[str, Any]:
    """Adoption per card and per agent from ``(card_kind, card_id, agent_id, action, n)`` rows: how often each
    action happened, ``adoption`` = used / shown and ``click_rate`` = clicked / shown (None when never shown)."""

    def blank() -> dict[str, int]:
        return {a: 0 for a in ASSIST_ACTIONS}

    cards: dict[tuple[str, str], dict[str, int]] = {}
    agents: dict[str, dict[str, int]] = {}
    total = blank()
    for kind, card, agent, action, n in counts:
        if action not in total:
            continue
        cards.setdefault((kind, card), blank())[action] += n
        agents.setdefault(agent, blank())[action] += n
        total[action] += n

    def rates(c: dict[str, int]) -> dict[str, Any]:
        shown = c["shown"]
        return {**c, "adoption": round(min(1.0, c["used"] / shown), 4) if shown else None,
                "click_rate": round(min(1.0, c["clicked"] / shown), 4) if shown else None}

    return {
        "cards": [{"card_kind": k, "card_id": i, **rates(c)} for (k, i), c in sorted(cards.items())],
        "agents": [{"agent_id": a, **rates(c)} for a, c in sorted(agents.items())],
        "total": rates(total),
    }


def fields_set_by(call: CallRecord) -> list[str]:
    """The columns an update with ``call`` writes (both backends merge by this rule): the fields it sets
    (non-default), and a call summary's verdict (unresolved, alerts, reasons) even when false or empty."""
    defaults = CallRecord(call.call_id)
    names = [f for f in CallRecord.__dataclass_fields__ if f != "call_id" and getattr(call, f) != getattr(defaults, f)]
    if call.intent:
        names += [f for f in ("unresolved", "alerts", "reasons") if f not in names]
    return names


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str = ""
    """Query: words / 词 (AND), ``OR``, ``"a phrase"``, ``-excluded``. Empty = filters only."""
    since_ms: int | None = None
    until_ms: int | None = None
    agent_id: str | None = None
    queue: str | None = None
    intent: str | None = None
    unresolved: bool | None = None
    alert: str | None = None  # an alert category the call has
    channel: str | None = None
    score_min: float | None = None  # QA scorecards (scores.py): the call's score in force, 0-100
    score_max: float | None = None
    answer_no: str | None = None  # a question of the call's scorecard answered no
    failed_critical: bool | None = None  # the call failed a critical question (False: scored, none failed)
    limit: int = 20
    offset: int = 0


def filter_clauses(q: SearchQuery, ph: str) -> tuple[list[str], list[object]]:
    """WHERE clauses and arguments of the filters both backends share (``u`` = utterances, ``c`` = calls;
    ``ph`` is the driver's placeholder). Text match and the alert filter are each backend's own."""
    where: list[str] = []
    args: list[object] = []
    for column, value in (("c.agent_id", q.agent_id), ("c.queue", q.queue), ("c.intent", q.intent), ("u.channel", q.channel)):
        if value:
            where.append(f"{column} = {ph}")
            args.append(value)
    for clause, value in (("u.at_ms >= ", q.since_ms), ("u.at_ms < ", q.until_ms), ("c.unresolved = ", q.unresolved)):
        if value is not None:
            where.append(clause + ph)
            args.append(value)
    return where, args


@dataclass(frozen=True, slots=True)
class Hit:
    utterance: Utterance
    call: CallRecord
    highlighted: str  # the text with <mark>...</mark> around what matched (HTML-escaped otherwise)


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: tuple[Hit, ...]
    total: int
    offset: int
    limit: int
    took_ms: float = 0.0
    terms: tuple[str, ...] = field(default_factory=tuple)


def query_terms(q: SearchQuery) -> list[Term]:
    """The parsed query (:class:`~.query.QueryError` if it cannot run); no terms for a filters-only search."""
    return parse_query(q.text) if q.text.strip() else []


def page_bounds(q: SearchQuery) -> tuple[int, int]:
    """(limit, offset) as both backends serve them: 1..200 hits a page."""
    return max(1, min(q.limit, 200)), max(0, q.offset)


def search_page(rows: Sequence[Sequence[Any]], total: int, terms: list[Term], q: SearchQuery, started: float,
                call_from_row: Callable[[Sequence[Any]], CallRecord]) -> SearchPage:
    """The answer of a search: ``rows`` are the 7 utterance columns then the call's (backend-decoded by
    ``call_from_row``); ``started`` is the ``time.perf_counter()`` the search began at."""
    hits = []
    for r in rows:
        u = Utterance(*r[:7])
        hits.append(Hit(u, call_from_row(r[7:]), highlight(u.text, terms)))
    limit, offset = page_bounds(q)
    return SearchPage(tuple(hits), total, offset, limit, round((time.perf_counter() - started) * 1000, 2),
                      tuple(t.text for t in terms if not t.negated))


class TranscriptStore(Protocol):
    scores: Any
    """The QA scorecard tables (:class:`~.scores.ScoreTables`): scorecards, overrides, appeals and their reports."""

    def add_utterances(self, rows: Sequence[Utterance]) -> int:
        """Insert finals (a segment already stored is ignored); returns how many were new."""

    def upsert_call(self, call: CallRecord) -> None:
        """Create or update a call (non-empty fields of ``call`` win)."""

    def search(self, query: SearchQuery) -> SearchPage: ...

    def call(self, call_id: str) -> tuple[CallRecord, list[Utterance]] | None:
        """A call and its whole transcript in time order; None when unknown."""

    def add_ticket(self, ticket: TicketRecord) -> bool:
        """Store a submitted ticket (one already stored under its id is left as it is); True when new."""

    def tickets(self, call_ids: Sequence[str]) -> list[TicketRecord]:
        """The tickets of these calls, oldest first."""

    def ticket(self, ticket_id: str) -> TicketRecord | None:
        """One ticket by its id; None when not stored."""

    def set_ticket_status(self, ticket_id: str, status: str, note: str, external_id: str, at_ms: int) -> bool:
        """The ticketing system's latest status of a stored ticket: written unless the stored one changed later
        (``status_at_ms`` > ``at_ms``: a late retry of an older change). An empty ``external_id`` keeps the stored
        one. True when written (False: no such ticket, or a newer status is stored)."""

    def caller_calls(self, caller: str, since_ms: int, until_ms: int, limit: int = 50) -> list[CallRecord]:
        """The calls of the same number (compared by ``keyword.repeat.caller_key``) that started in
        [since_ms, until_ms), newest first."""

    def add_assist_events(self, rows: Sequence[AssistEvent]) -> int:
        """Store telemetry rows (a (call, card kind, card id, action) already stored is ignored); how many were new."""

    def assist_counts(self, since_ms: int | None = None, until_ms: int | None = None) -> list[tuple[str, str, str, str, int]]:
        """``(card_kind, card_id, agent_id, action, n)`` of the telemetry in the window (:func:`adoption_report`)."""

    reports: Any
    """The report tables (:class:`callscribe.reports.tables.ReportTables`): per-call facts and hourly aggregates,
    refreshed by the ingest as calls end (docs/reports.md)."""

    def close(self) -> None: ...
