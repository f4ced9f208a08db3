"""Scorecards, reviews and QA reports as the API answers them, for one role: evidence quotes, reasons and comments
as that role reads text (callscribe/pii.py ``text_for``); the route passes the result through ``Api.view`` as every
exit does (numbers masked, ``quote`` / ``text`` keys per role)."""

from __future__ import annotations

from typing import Any, Iterable

from callscribe.events import ScoreAppeal, ScoreOverride
from callscribe.gateway.store.scores import AppealRecord, OverrideRecord, ScoreRecord
from callscribe.pii import text_for

__all__ = ["appeal_json", "override_json", "scorecard_json", "scorecard_row"]


def scorecard_row(card: ScoreRecord) -> dict[str, Any]:
    """One scorecard in a list (no answers)."""
    return {"call_id": card.call_id, "form": card.form, "score": card.score, "raw_score": card.raw_score,
            "failed_critical": list(card.failed_critical), "auto_score": card.auto_score,
            "auto_raw_score": card.auto_raw_score, "agent_id": card.agent_id, "language": card.language,
            "started_at_ms": card.started_at_ms, "scored_at_ms": card.scored_at_ms, "overrides": card.overrides}


def override_json(o: OverrideRecord | ScoreOverride, role: str, stored_redacted: bool = True) -> dict[str, Any]:
    at = o.at_ms if isinstance(o, OverrideRecord) else o.emitted_at_ms
    return {"override_id": o.override_id, "call_id": o.call_id, "question": o.question, "old_answer": o.old_answer,
            "new_answer": o.new_answer, "reason": text_for(role, o.reason, stored_redacted), "by": o.by, "role": o.role,
            "appeal_id": o.appeal_id, "at_ms": at}


def appeal_json(a: AppealRecord | ScoreAppeal, role: str, stored_redacted: bool = True) -> dict[str, Any]:
    if isinstance(a, ScoreAppeal):  # as the store has it after filing the event
        created, resolved_by, resolved_at = (a.emitted_at_ms, "", 0) if a.status == "open" else (0, a.by, a.emitted_at_ms)
        a = AppealRecord(a.appeal_id, a.call_id, a.question, a.agent_id, a.comment, a.wanted, a.status, created,
                         resolved_by, a.reason, resolved_at)
    return {"appeal_id": a.appeal_id, "call_id": a.call_id, "question": a.question, "agent_id": a.agent_id,
            "comment": text_for(role, a.comment, stored_redacted), "wanted": a.wanted, "status": a.status,
            "created_at_ms": a.created_at_ms, "resolved_by": a.resolved_by,
            "reason": text_for(role, a.reason, stored_redacted), "resolved_at_ms": a.resolved_at_ms}


def scorecard_json(card: ScoreRecord, overrides: Iterable[OverrideRecord], appeals: Iterable[AppealRecord], role: str,
                   stored_redacted: bool = True) -> dict[str, Any]:
    """A call's scorecard: each answer (in force, and the automatic one) with its evidence, the override audit trail
    (oldest first) and the call's appeals; ``open_appeal`` on an answer names its open appeal."""
    appeals = list(appeals)
    open_by_question = {a.question: a.appeal_id for a in appeals if a.status == "open"}
    answers = []
    for a in card.answers:
        ev = a.evidence
        answers.append({
            "question": a.question, "section": a.section, "label": dict(a.label), "weight": a.weight,
            "critical": a.critical, "answer": a.answer, "auto": a.auto, "overridden": a.overridden,
            "confidence": a.confidence, "why": a.why,
            "evidence": {**ev, "quote": text_for(role, ev["quote"], stored_redacted)} if ev else None,
            "open_appeal": open_by_question.get(a.question),
        })
    return {**scorecard_row(card), "answers": answers,
            "audit": [override_json(o, role, stored_redacted) for o in overrides],
            "appeals": [appeal_json(a, role, stored_redacted) for a in appeals]}
