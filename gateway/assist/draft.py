"""A ticket draft on the agent's click, for a live or an ended call.

The worker's analyzer state lives in the worker's memory, so the gateway re-derives it: the call's finals from its
stream through a fresh CallAnalyzer and AssistSession, fed exactly as keyword/worker.py feeds them (same order,
the repeat-caller alert after an intent, the caller's earlier calls from the repeat-caller index). Replay is
deterministic, so the draft is the one the worker's session would make now. A live call is concluded as if it
ended at its last final (``reason`` ``draft``), on the throwaway analyzer only.
"""

from __future__ import annotations

import asyncio
from typing import Any

from callscribe.config import Config
from callscribe.errors import SchemaError
from callscribe.events import CallEnded, CallStarted, IntentUpdate, TicketDraft, Transcript, from_fields
from callscribe.keyword.assist import Assist
from callscribe.keyword.assist.bridge import outcome_of, state_of
from callscribe.keyword.worker import prior_calls
from callscribe.pii import mask_number
from callscribe.stream import keys

__all__ = ["draft_now", "draft_from_events"]


async def draft_now(redis: Any, cfg: Config, analytics: Any, assist: Assist, call_id: str) -> TicketDraft | None:
    """The ticket draft of ``call_id`` now (None when its stream is gone or no template applies)."""
    entries = await redis.xrange(keys.call_stream(cfg, call_id), count=cfg.call_stream_maxlen)
    started: CallStarted | None = None
    finals: list[Transcript] = []
    seen: set[str] = set()
    ended: CallEnded | None = None
    for _, fields in entries:
        try:
            e = from_fields(fields)
        except SchemaError:
            continue
        if isinstance(e, CallStarted) and started is None:
            started = e
        elif isinstance(e, Transcript) and e.is_final and e.segment_id not in seen:
            seen.add(e.segment_id)
            finals.append(e)
        elif isinstance(e, CallEnded):
            ended = e
    if started is None and not finals:
        return None
    started = started or CallStarted(call_id, ("customer", "agent"))
    history = await prior_calls(redis, cfg, started)
    return await asyncio.to_thread(draft_from_events, analytics, assist, started, finals, ended, history)


def draft_from_events(analytics: Any, assist: Assist, started: CallStarted, finals: list[Transcript],
                      ended: CallEnded | None, history: list) -> TicketDraft | None:
    """Pure: the call's events through a fresh analyzer and session, then the agent's draft."""
    call = analytics.call(started, history)
    caller = started.metadata.get("caller", "")
    masked = mask_number(caller) if caller else ""
    session = assist.session(started.call_id, started.language, masked)
    events: list[Any] = []
    for t in finals:
        new = call.on_final(t)
        if any(isinstance(o, IntentUpdate) and o.intent != "other" for o in new):
            new += call.repeat_alert()
        events += new
        session.on_final(t, state_of(call, new, t.channel))
    end = ended or CallEnded(started.call_id, max((t.end_ms for t in finals), default=0), "draft", len(finals))
    events += call.on_end(end)
    return session.ticket(outcome_of(call, events, masked), trigger="agent")
