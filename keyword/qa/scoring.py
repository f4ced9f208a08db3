"""The score rule on its own, and a scorecard as the event the analytics worker publishes.

:func:`score_of` (defined in evaluate.py, re-exported here) is the score rule of :func:`~keyword.qa.evaluate.evaluate`, taking the weights and
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
from .evaluate import Scorecard, score_of
from .form import Form

__all__ = ["score_of", "to_event"]


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

