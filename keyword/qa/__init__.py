"""QA scorecards (keyword/qa/): every call answered against the center's evaluation form, with evidence.

Pure core, no I/O (STYLE.md section 9): form.py (the YAML form), facts.py (what the call analyzer records per
turn), evaluate.py (auto answers and the score). The analyzer keeps a call's :class:`QaFacts`
(``CallAnalyzer.qa``); ``evaluate(form, call.qa)`` after the call ends gives the :class:`Scorecard`.
"""

from __future__ import annotations

from .evaluate import Answer, Scorecard, evaluate
from .facts import QaFacts, TurnFact
from .form import AUTO_RULES, Form, FormError, Question, Section, bundled_form_path, load_form

__all__ = [
    "AUTO_RULES", "Answer", "Form", "FormError", "QaFacts", "Question", "Scorecard", "Section", "TurnFact",
    "bundled_form_path", "evaluate", "load_form",
]
