"""One-click ticket drafts (智能化快捷派单): a scenario's ticket template filled from the call, pure.

Nothing in a draft is invented: the summary is the customer's key utterances verbatim (redacted), the quotes
are the analyzer's (already redacted) with their times, the fields come from the call (a regex or phrase over
the customer's words, the caller, the intent, the unresolved reasons, the steps done, earlier calls). A
required field the call did not fill is listed in ``missing`` for the agent to complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from callscribe.events import Alert, Quote, TicketDraft, Transcript

from ..redact import redact
from .engine import CompiledScenario
from .schema import PRIORITIES

__all__ = ["CallOutcome", "draft_ticket", "key_utterances", "subtype_of", "ticket_json"]

SUMMARY_LINES = 3
QUOTES_MAX = 4

# The analyzer's unresolved reasons (keyword/analyzer.py) -> the follow-up a ticket asks for
_SUBTYPES = (
    ("ends on an escalation", "escalation"),
    ("hung up angry", "escalation"),
    ("transferred", "transfer_loop"),
    ("could not solve", "unsolved"),
    ("not solved", "reopened"),
    ("did not accept", "rejected_answer"),
    ("not confirmed", "verify_fix"),
    ("left pending", "follow_up"),
    ("ends unhappy", "dissatisfied"),
)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What the analyzer concluded at the call's end (keyword/assist/bridge.py builds it)."""

    intent: str
    unresolved: bool
    reasons: tuple[str, ...] = ()
    quotes: tuple[Quote, ...] = ()
    sentiment: str = ""
    alerts: tuple[Alert, ...] = ()
    previous_calls: tuple[str, ...] = ()
    """Earlier calls of this caller about the same problem (the repeat-caller index)."""
    last_unresolved: bool = False
    caller: str = ""
    """Masked."""


def subtype_of(reasons: Iterable[str]) -> str:
    """The follow-up the first matching unresolved reason asks for (``""`` when none, e.g. an agent's click)."""
    for reason in reasons:
        for needle, subtype in _SUBTYPES:
            if needle in reason:
                return subtype
    return ""


def _substantive(text: str, language: str) -> bool:
    if language == "zh":
        return sum(1 for c in text if "\u4e00" <= c <= "\u9fff") >= 6
    return len(re.findall(r"[A-Za-z']+", text)) >= 5


_PLEASANTRY = re.compile(
    r"^(?:[\s,.!，。！…]*(?:好的?|嗯|哦|对|是的?|行|可以|谢谢(?:你|您)?|再见|拜拜|没了|没有了?|ok(?:ay)?|yes|yeah|yep|no|"
    r"thanks?(?: you)?|cheers|bye|great|lovely|perfect|right|sure|fine)[\s,.!，。！…]*)+$",
    re.IGNORECASE,
)


def key_utterances(
    customer: Sequence[Transcript], language: str, relevance: Callable[[str], float] | None = None,
    quoted_ms: Iterable[int] = (), limit: int = SUMMARY_LINES,
) -> list[Transcript]:
    """The customer's key utterances, in call order: the first substantive one (why they called), those the
    unresolved reasons quote, then the most on-topic (``relevance``: similarity to the call's intent)."""
    quoted = set(quoted_ms)
    scored: list[tuple[float, int, Transcript]] = []
    first = True
    for i, t in enumerate(customer):
        if _PLEASANTRY.match(t.text) or not _substantive(t.text, language):
            continue
        s = 0.0
        if first:
            s += 1.0
            first = False
        if t.start_ms in quoted:
            s += 0.6
        if relevance is not None:
            s += relevance(t.text)
        s += min(len(t.text), 200) / 2000  # a longer statement tells more, a little
        scored.append((s, i, t))
    if not scored:  # nothing substantive: the longest turns are all there is
        scored = [(len(t.text) / 2000, i, t) for i, t in enumerate(customer) if t.text.strip()]
    top = sorted(scored, key=lambda x: (-x[0], x[1]))[:limit]
    return [t for _, _, t in sorted(top, key=lambda x: x[1])]


def _priority(base: str, outcome: CallOutcome) -> str:
    rank = PRIORITIES.index(base)
    escalated = [a for a in outcome.alerts if a.category in ("escalation", "abuse")]
    if escalated or subtype_of(outcome.reasons) == "escalation":
        rank = max(rank, PRIORITIES.index("high"))
        if any(a.severity == "critical" and a.category == "escalation" for a in escalated):
            rank = PRIORITIES.index("urgent")  # a regulator, the press, a lawyer
    if outcome.sentiment == "negative":
        rank += 1
    if outcome.previous_calls and outcome.last_unresolved:
        rank += 1  # called before about this and it was not fixed then either
    return PRIORITIES[min(rank, len(PRIORITIES) - 1)]


def draft_ticket(
    call_id: str, scenario: CompiledScenario, outcome: CallOutcome, customer: Sequence[Transcript],
    steps_done: Sequence[str], trigger: str = "unresolved", relevance: Callable[[str], float] | None = None,
    labels: Mapping[str, Mapping[str, str]] | None = None,
) -> TicketDraft:
    """The scenario's ticket template filled from the call (see the module docstring). ``labels``: the template
    type's field labels (packs.field_labels), carried for the template's fields so the desk needs no pack."""
    template = scenario.ticket
    key = key_utterances(customer, scenario.language, relevance, (q.start_ms for q in outcome.quotes))
    summary = tuple(redact(t.text) for t in key)
    quotes: list[Quote] = []
    seen: set[int] = set()
    for q in (*outcome.quotes, *(Quote(a.channel, a.quote, a.start_ms, a.end_ms) for a in outcome.alerts
                                 if a.category in ("escalation", "abuse", "compliance"))):
        if q.start_ms in seen or not q.text or q.channel == "both":
            continue
        seen.add(q.start_ms)
        quotes.append(q)
    quotes = sorted(quotes[:QUOTES_MAX], key=lambda q: q.start_ms)
    customer_text = [redact(t.text) for t in customer]
    filled: dict[str, str] = {}
    for f in template.fields:
        value = ""
        if f.source == "caller":
            value = outcome.caller
        elif f.source == "intent":
            value = outcome.intent
        elif f.source == "reasons":
            value = "; ".join(outcome.reasons)
        elif f.source == "summary":
            value = " / ".join(summary)
        elif f.source == "steps":
            value = ", ".join(steps_done)
        elif f.source == "previous_calls":
            value = ", ".join(outcome.previous_calls)
        elif f.source == "sentiment":
            value = outcome.sentiment
        elif f.source == "value":
            value = f.value
        elif f.source == "regex":
            pattern = scenario.field_patterns[f.name]
            for text in customer_text:
                m = pattern.search(text)
                if m:
                    value = (m.group(1) if m.groups() else m.group(0)).strip()
                    break
        elif f.source == "match":
            for t in customer:
                _, hits = scenario.hits(t.text)
                label = next((k[2] for k in sorted(hits) if k[0] == "field" and k[1] == f.name), "")
                if label:
                    value = label
                    break
        if value:
            filled[f.name] = value
    missing = tuple(f.name for f in template.fields if f.required and f.name not in filled)
    labels = labels or {}
    return TicketDraft(
        call_id=call_id, ticket_type=template.type, priority=_priority(template.priority, outcome),
        intent=scenario.intent, title=template.title, subtype=subtype_of(outcome.reasons), trigger=trigger,
        summary=summary, quotes=tuple(quotes), fields=filled, missing=missing, reasons=outcome.reasons,
        caller=outcome.caller, previous_calls=outcome.previous_calls, steps_done=tuple(steps_done),
        labels={f.name: dict(labels[f.name]) for f in template.fields if f.name in labels},
    )


def ticket_json(t: TicketDraft) -> dict[str, Any]:
    """The ticket as ``callscribe analyze`` writes it."""
    return {
        "type": t.ticket_type, "subtype": t.subtype, "intent": t.intent, "title": t.title, "priority": t.priority,
        "trigger": t.trigger, "fields": dict(t.fields), "missing": list(t.missing), "summary": list(t.summary),
        "quotes": [{"channel": q.channel, "text": q.text, "start_ms": q.start_ms, "end_ms": q.end_ms} for q in t.quotes],
        "reasons": list(t.reasons), "caller": t.caller, "previous_calls": list(t.previous_calls),
        "steps_done": list(t.steps_done), "labels": {k: dict(v) for k, v in t.labels.items()},
    }
