"""The caller's history at call start (服务无缝衔接): the same number's calls in the ``assist_history_days`` (30 by
default) before the call, from the store, each with its intent, whether it was resolved, its alert categories and
its tickets with their status (as the ticketing system last reported it: gateway/assist/status.py), and what was
left pending last time (the last call's unresolved reasons, the quotes of its final flag, its open tickets). With
the repeat-caller alert (the board's ``repeat_of``) it is the data of the agent desk's repeat-caller banner. Pure
over the store; numbers are masked at the exit (``Api.view``)."""

from __future__ import annotations

import json
from typing import Any, Sequence

from callscribe.config import Config
from callscribe.gateway.store.base import TranscriptStore

__all__ = ["HISTORY_DAYS", "HISTORY_CALLS", "caller_history"]

HISTORY_DAYS: int = Config.model_fields["assist_history_days"].default
"""The window when none is given: the setting's default (the gateway passes ``cfg.assist_history_days``)."""
HISTORY_CALLS = 20
"""At most this many earlier calls (newest first)."""


def caller_history(store: TranscriptStore, call_id: str, caller: str, started_at_ms: int,
                   repeat_of: Sequence[str] = (), days: int = HISTORY_DAYS) -> dict[str, Any]:
    """The history message body for the call ``call_id`` of ``caller`` that started at ``started_at_ms``."""
    calls = [c for c in store.caller_calls(caller, started_at_ms - days * 86_400_000, started_at_ms, HISTORY_CALLS + 1)
             if c.call_id != call_id][:HISTORY_CALLS] if caller else []
    tickets: dict[str, list[dict[str, Any]]] = {}
    for t in store.tickets([c.call_id for c in calls]):
        tickets.setdefault(t.call_id, []).append(
            {"ticket_id": t.ticket_id, "type": t.type, "priority": t.priority, "status": t.status, "title": t.title,
             "created_at_ms": t.created_at_ms, "status_note": t.status_note, "external_id": t.external_id,
             "status_at_ms": t.status_at_ms})
    rows = [{"call_id": c.call_id, "started_at_ms": c.started_at_ms, "duration_ms": c.duration_ms, "agent_id": c.agent_id,
             "intent": c.intent, "resolved": None if not c.ended and not c.intent else not c.unresolved,
             "alerts": list(c.alerts), "tickets": tickets.get(c.call_id, [])} for c in calls]
    last = None
    if calls:
        c = calls[0]
        quotes = []
        for q in c.quotes:
            try:
                quotes.append(json.loads(q))
            except ValueError:
                continue
        last = {"call_id": c.call_id, "started_at_ms": c.started_at_ms, "intent": c.intent,
                "unresolved": c.unresolved, "reasons": list(c.reasons) if c.unresolved else [],
                "quotes": quotes if c.unresolved else [],
                "open_tickets": [t for t in tickets.get(c.call_id, []) if t["status"] not in ("closed", "resolved", "done")]}
    return {
        "call_id": call_id, "caller": caller, "window_days": days, "calls": rows, "last": last,
        "banner": {"repeat_caller": bool(repeat_of), "repeat_of": list(repeat_of), "previous_calls": len(rows),
                   "unresolved_calls": sum(1 for r in rows if r["resolved"] is False),
                   "last_unresolved": bool(last and last["unresolved"]),
                   "open_tickets": sum(len(r["tickets"]) for r in rows
                                       if any(t["status"] not in ("closed", "resolved", "done") for t in r["tickets"]))},
    }
