"""The pure core of the reports: one call's facts, what it adds to the aggregates, and first-contact resolution.

No database and no Redis here: :mod:`.tables` reads the store, calls these functions and writes what they say.

* :class:`CallFact` is one finished call as the reports see it (one row of ``report_calls``): its dimensions
  (hour, queue, agent, intent), its measures (handle time, talk / silence / overtalk from the finals' time
  spans, the verdict, alerts, sentiment, QA score, tickets) and its two repeat links.
* :func:`contribution` is what a fact adds to its aggregate row (``report_agg``: per hour, queue and intent) and
  to the tag rows (alert categories, unresolved reasons). Every change to a fact is applied to the aggregates as
  ``contribution(new) - contribution(old)``, so a correction (a repeat call arriving days later, a ticket, a QA
  override) moves exactly what it changes and the aggregates never need a recount.
* **First-contact resolution.** Calls are chained per caller (``caller_key``: the number's digits) and intent, in
  ``(started_at_ms, call_id)`` order. A call *repeats* its predecessor in the chain when it started at most
  ``window_ms`` after it (``repeat_of``); the predecessor is then *repeated* (``repeated_by``). A call is resolved
  first time (``fcr``) when it is not flagged unresolved and nobody repeated it. Calls without a caller number or
  without an intent are never linked. :func:`relink` says how the links of a call and its two neighbours change
  when a call joins (or leaves) a chain; the bulk rebuild computes the same with LAG / LEAD in SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

__all__ = ["CallFact", "Contribution", "MEASURES", "TAG_KINDS", "Span", "Link", "contribution", "talk_stats", "relink",
           "links_after_insert", "links_after_remove", "same_chain", "hour_of"]

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

MEASURES = (
    "calls", "unresolved", "fcr", "repeats", "repeated", "handle_ms", "timed_calls", "timed_ms", "talk_customer_ms",
    "talk_agent_ms", "talk_ms", "overtalk_ms", "silence_ms", "sentiment_n", "sentiment_sum", "negative", "neutral",
    "positive", "qa_n", "qa_sum", "tickets", "ticket_calls", "alert_calls",
)
"""The additive columns of ``report_agg`` (every rate of a report is a ratio of two of them)."""
TAG_KINDS = ("alert", "reason")


def hour_of(at_ms: int) -> int:
    """The start of the UTC hour holding ``at_ms`` (aggregate rows are hourly: any whole-hour zone cuts days on them)."""
    return (int(at_ms) // HOUR_MS) * HOUR_MS


@dataclass(frozen=True, slots=True)
class Span:
    channel: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class CallFact:
    call_id: str
    started_at_ms: int
    queue: str = ""
    agent_id: str = ""
    intent: str = ""
    caller_key: str = ""
    language: str = ""
    handle_ms: int = 0
    """Call duration (ring to hang-up as the ingest saw it: CallEnded / the summary's ``duration_ms``)."""
    timed: bool = False
    """The call has finals with times, so talk / silence / overtalk are known."""
    talk_customer_ms: int = 0
    talk_agent_ms: int = 0
    talk_ms: int = 0
    """Time anybody spoke (union of every channel's speech spans)."""
    overtalk_ms: int = 0
    """Time both the customer and the agent spoke at once."""
    silence_ms: int = 0
    """``handle_ms - talk_ms``: holds, dead air, typing."""
    unresolved: bool = False
    reasons: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()
    sentiment: str = ""
    sentiment_score: float = 0.0
    qa_score: float | None = None
    tickets: int = 0
    repeat_of: str = ""
    """The earlier call of the same caller about the same intent this one repeats ('' if none within the window)."""
    repeat_gap_ms: int = 0
    repeated_by: str = ""
    """The later call that repeated this one ('' if none (yet) within the window)."""

    @property
    def hour_ms(self) -> int:
        return hour_of(self.started_at_ms)

    @property
    def fcr(self) -> bool:
        """Resolved on first contact: not flagged unresolved and no repeat within the window (provisional while
        the window is still open)."""
        return not self.unresolved and not self.repeated_by

    @property
    def linkable(self) -> bool:
        return bool(self.caller_key) and bool(self.intent)

    def order(self) -> tuple[int, str]:
        return (self.started_at_ms, self.call_id)

    def chain(self) -> tuple[str, str]:
        return (self.caller_key, self.intent)


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one fact adds: ``key`` (hour_ms, queue, intent), the measures, and the (kind, tag) rows."""

    key: tuple[int, str, str]
    measures: dict[str, float]
    tags: tuple[tuple[str, str], ...]


def contribution(f: CallFact) -> Contribution:
    m = dict.fromkeys(MEASURES, 0)
    m["calls"] = 1
    m["unresolved"] = int(f.unresolved)
    m["fcr"] = int(f.fcr)
    m["repeats"] = int(bool(f.repeat_of))
    m["repeated"] = int(bool(f.repeated_by))
    m["handle_ms"] = int(f.handle_ms)
    if f.timed:
        m["timed_calls"] = 1
        m["timed_ms"] = int(f.handle_ms)
        m["talk_customer_ms"] = int(f.talk_customer_ms)
        m["talk_agent_ms"] = int(f.talk_agent_ms)
        m["talk_ms"] = int(f.talk_ms)
        m["overtalk_ms"] = int(f.overtalk_ms)
        m["silence_ms"] = int(f.silence_ms)
    if f.sentiment in ("negative", "neutral", "positive"):
        m["sentiment_n"] = 1
        m["sentiment_sum"] = float(f.sentiment_score)
        m[f.sentiment] = 1
    if f.qa_score is not None:
        m["qa_n"] = 1
        m["qa_sum"] = float(f.qa_score)
    m["tickets"] = int(f.tickets)
    m["ticket_calls"] = int(f.tickets > 0)
    m["alert_calls"] = int(bool(f.alerts))
    tags = tuple(sorted({("alert", a) for a in f.alerts if a} | {("reason", r) for r in f.reasons if r}))
    return Contribution((f.hour_ms, f.queue, f.intent), m, tags)


def _union(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _length(spans: Sequence[tuple[int, int]]) -> int:
    return sum(e - s for s, e in spans)


def _intersection(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> int:
    total, i, j = 0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def talk_stats(spans: Iterable[Span], duration_ms: int) -> dict[str, int]:
    """Talk, overtalk and silence of a call from its finals' spans (call-relative ms), clipped to the call:
    ``talk_customer_ms`` / ``talk_agent_ms`` (each channel's union; a ``mixed`` channel counts only in ``talk_ms``),
    ``talk_ms`` (anybody), ``overtalk_ms`` (customer and agent at once), ``silence_ms`` (nobody)."""
    end = max(0, int(duration_ms))
    by: dict[str, list[tuple[int, int]]] = {}
    for sp in spans:
        s, e = max(0, int(sp.start_ms)), int(sp.end_ms)
        if end:
            e = min(e, end)
        by.setdefault(sp.channel, []).append((s, e))
    customer = _union(by.get("customer", ()))
    agent = _union(by.get("agent", ()))
    anybody = _union([x for v in by.values() for x in v])
    talk = _length(anybody)
    span_end = max((e for _, e in anybody), default=0)
    handle = end or span_end
    return {"talk_customer_ms": _length(customer), "talk_agent_ms": _length(agent), "talk_ms": talk,
            "overtalk_ms": _intersection(customer, agent), "silence_ms": max(0, handle - talk)}


# --- first-contact resolution: the chain of a caller and intent --------------------------------------------------
@dataclass(frozen=True, slots=True)
class Link:
    """New link values of one call: ``repeat_of`` / ``repeat_gap_ms`` and ``repeated_by``; None = unchanged."""

    call_id: str
    repeat_of: str | None = None
    repeat_gap_ms: int | None = None
    repeated_by: str | None = None

    def apply(self, f: CallFact) -> CallFact:
        changes = {}
        if self.repeat_of is not None:
            changes["repeat_of"] = self.repeat_of
            changes["repeat_gap_ms"] = self.repeat_gap_ms or 0
        if self.repeated_by is not None:
            changes["repeated_by"] = self.repeated_by
        return replace(f, **changes) if changes else f


def same_chain(a: CallFact, b: CallFact) -> bool:
    return a.linkable and b.linkable and a.chain() == b.chain()


def _pair(earlier: CallFact, later: CallFact, window_ms: int) -> tuple[Link, Link]:
    """The links between two neighbours of a chain: linked when ``later`` started within the window."""
    gap = later.started_at_ms - earlier.started_at_ms
    if gap <= window_ms:
        return Link(earlier.call_id, repeated_by=later.call_id), Link(later.call_id, repeat_of=earlier.call_id, repeat_gap_ms=gap)
    return Link(earlier.call_id, repeated_by=""), Link(later.call_id, repeat_of="", repeat_gap_ms=0)


def links_after_insert(x: CallFact, before: CallFact | None, after: CallFact | None, window_ms: int) -> list[Link]:
    """``x`` joins its chain between ``before`` (its predecessor, or None) and ``after`` (its successor): the new
    links of the three calls. Whatever linked ``before`` to ``after`` is replaced."""
    mine_of, mine_by = Link(x.call_id, repeat_of="", repeat_gap_ms=0), Link(x.call_id, repeated_by="")
    out: list[Link] = []
    if before is not None:
        b, mine_of = _pair(before, x, window_ms)
        out.append(b)
    if after is not None:
        mine_by, a = _pair(x, after, window_ms)
        out.append(a)
    out.append(Link(x.call_id, repeat_of=mine_of.repeat_of, repeat_gap_ms=mine_of.repeat_gap_ms,
                    repeated_by=mine_by.repeated_by))
    return out


def links_after_remove(before: CallFact | None, after: CallFact | None, window_ms: int) -> list[Link]:
    """A call leaves its chain (its caller or intent changed): its two neighbours become neighbours."""
    if before is not None and after is not None:
        return list(_pair(before, after, window_ms))
    out = []
    if before is not None:
        out.append(Link(before.call_id, repeated_by=""))
    if after is not None:
        out.append(Link(after.call_id, repeat_of="", repeat_gap_ms=0))
    return out


def relink(facts: Sequence[CallFact], window_ms: int) -> dict[str, tuple[str, int, str]]:
    """Every call's ``(repeat_of, repeat_gap_ms, repeated_by)`` from scratch (the reference the incremental path
    and the SQL rebuild are tested against)."""
    out = {f.call_id: ("", 0, "") for f in facts}
    chains: dict[tuple[str, str], list[CallFact]] = {}
    for f in facts:
        if f.linkable:
            chains.setdefault(f.chain(), []).append(f)
    for chain in chains.values():
        chain.sort(key=CallFact.order)
        for a, b in zip(chain, chain[1:]):
            gap = b.started_at_ms - a.started_at_ms
            if gap <= window_ms:
                ra, ga, _ = out[a.call_id]
                out[a.call_id] = (ra, ga, b.call_id)
                _, _, bb = out[b.call_id]
                out[b.call_id] = (a.call_id, gap, bb)
    return out


def dumps(values: Iterable[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))


def loads(text: str | None) -> tuple[str, ...]:
    return tuple(str(x) for x in json.loads(text or "[]"))
