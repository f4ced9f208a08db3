"""From a CallAnalyzer (keyword/analyzer.py) to what the assist session needs: the one place that reads the
analyzer's state, so the assist core never reaches into it and the live worker and ``callscribe analyze`` feed
the session the same way."""

from __future__ import annotations

from typing import Iterable

from callscribe.events import Alert, CallFlag, CallSummary

from ..analyzer import CallAnalyzer
from .session import CallState
from .ticket import CallOutcome

__all__ = ["outcome_of", "state_of"]


def state_of(call: CallAnalyzer, events: Iterable[object], channel: str = "") -> CallState:
    """The analyzer's view right after one final; ``events`` are what its ``on_final`` returned."""
    best = call.intent.best()
    score = 0.0
    if channel != "agent":
        customer = call.sentiment.customer
        score = customer[-1].score if customer else 0.0
    return CallState(
        intent=best.intent, intent_score=best.score, customer_turns=call.intent.customer_turns,
        issue=call.issue.state, unresolved=bool(call.flag_shown), verified=call.verified,
        sentiment=call.sentiment_shown or "neutral", last_customer_score=score,
        alerts=tuple(e for e in events if isinstance(e, Alert)),
    )


def outcome_of(call: CallAnalyzer, events: Iterable[object], caller_masked: str = "") -> CallOutcome:
    """The analyzer's conclusion at the end; ``events`` are all the call's events (alerts of the whole call,
    the final flag and the summary)."""
    events = list(events)
    flag = next(e for e in reversed(events) if isinstance(e, CallFlag) and e.final)
    summary = next(e for e in reversed(events) if isinstance(e, CallSummary))
    previous = tuple(summary.repeat_of)
    last = max((p for p in call.history if p.call_id in previous), key=lambda p: p.started_at_ms, default=None)
    return CallOutcome(
        intent=summary.intent, unresolved=flag.unresolved, reasons=tuple(flag.reasons), quotes=tuple(flag.quotes),
        sentiment=summary.sentiment, alerts=tuple(e for e in events if isinstance(e, Alert)),
        previous_calls=previous, last_unresolved=bool(last and last.unresolved), caller=caller_masked,
    )
