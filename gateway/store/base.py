"""The store's interface and rows. Backends (SQLite, PostgreSQL) implement :class:`TranscriptStore` so the
gateway's search API and the ingest consumer never know which one is behind them."""

from __future__ import annotations

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
    def add_utterances(self, rows: Sequence[Utterance]) -> int:
        """Insert finals (a segment already stored is ignored); returns how many were new."""

    def upsert_call(self, call: CallRecord) -> None:
        """Create or update a call (non-empty fields of ``call`` win)."""

    def search(self, query: SearchQuery) -> SearchPage: ...

    def call(self, call_id: str) -> tuple[CallRecord, list[Utterance]] | None:
        """A call and its whole transcript in time order; None when unknown."""

    def close(self) -> None: ...
