"""The score rule on its own, and a scorecard as the event the analytics worker publishes.

:func:`score_of` is what :func:`~keyword.qa.evaluate.evaluate` computes from its answers, taking the weights and
critical flags with the answers, so a store can score a call again after a reviewer overrides an answer without
the form at hand (the form may have changed since: the event carries what the score was computed with).
:func:`to_event` turns a :class:`~keyword.qa.evaluate.Scorecard` into the typed, versioned
:class:`callscribe.events.Scorecard`.
"""

from __future__ import annotations

from typing import Iterable

from callscribe.events import Quote, ScoreAnswer
from callscribe.events import Scorecard as ScorecardEvent

from ..redact import redact
from .evaluate import Scorecard
from .form import Form

__all__ = ["score_of", "to_event"]


def score_of(answers: Iterable[tuple[str, bool | None, float, bool]]) -> tuple[float | None, float | None, tuple[str, ...]]:
    """``(score, raw_score, failed_critical)`` of ``(question, answer, weight, critical)`` rows in form order: the
    weight answered yes over the weight answered at all (0-100, one decimal; None when nothing applied), and 0 when a
    critical question is answered no (``raw_score`` keeps the weighted score). The rule of ``evaluate``."""
    rows = list(answers)
    applied = sum(w for _, a, w, _ in rows if a is not None)
    earned = sum(w for _, a, w, _ in rows if a)
    raw = round(100.0 * earned / applied, 1) if applied else None
    failed = tuple(q for q, a, _, critical in rows if critical and a is False)
    return (0.0 if failed and raw is not None else raw), raw, failed


def to_event(card: Scorecard, form: Form, call_id: str, agent_id: str = "", language: str = "",
             started_at_ms: int = 0) -> ScorecardEvent:
    """The scorecard event of a call: each answer with its question's weight, critical flag, section and text (so
    the stream's readers need no form), its evidence quote redacted."""
    section_of = {q.id: s.id for s in form.sections for q in s.questions}
    answers = []
    for q in form.questions:
        a = card.answers.get(q.id)
        if a is None:
            continue
        ev = a.evidence
        answers.append(ScoreAnswer(
            question=q.id, answer=a.answer, confidence=round(a.confidence, 2), weight=q.weight, critical=q.critical,
            section=section_of[q.id], label={"zh": q.text.zh, "en": q.text.en}, why=a.why,
            evidence=Quote(ev.channel, redact(ev.text), ev.start_ms, ev.end_ms) if ev is not None else None,
        ))
    return ScorecardEvent(call_id, card.form, card.score, card.raw_score, tuple(card.failed_critical), tuple(answers),
                          agent_id=agent_id, language=language, started_at_ms=started_at_ms)

