"""Answering an evaluation form from a call's facts: every call scored, each answer with its evidence.

QA teams sample 1-2% of calls by hand; this answers every question of the form (form.py) for every call,
with the quote and time that decided it and a confidence, so a reviewer checks the evidence instead of
listening to the call. ``None`` is "not applicable" (nothing on the account was touched, nobody was put on
hold, the customer was never upset) and counts for neither side of the score.

Each evaluator is a small pure function over :class:`~keyword.qa.facts.QaFacts` (what the analyzer decided
turn by turn); the words it looks for are the bundled ones plus the question's own ``phrases``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..normalize import fold
from ..redact import redact
from .facts import QaFacts, TurnFact
from .form import Form, Question

__all__ = ["Answer", "Scorecard", "evaluate", "score_of"]

HOLD_MIN_MS = 10_000
"""A gap this long inside a call, between an agent turn and the next, is a hold (music, dead air)."""
CLOSING_LAST_AGENT_TURNS = 3
"""The closing question counts in the agent's last few turns: asked at the start, it is not a closing."""
UPSET_SCORE = -0.45
"""A customer utterance scoring this low (keyword/sentiment.py) is upset, as is a threat or an insult."""

_EMPATHY = {
    "zh": r"抱歉|对不起|不好意思|理解您|理解你|体谅|给您添麻烦|给您带来|让您久等|辛苦您|非常理解|您别着急|别着急|请您放心|您放心|感谢您的耐心|感谢您的理解|很遗憾",
    "en": r"\bsorry\b|apologi[sz]e|\bi understand\b|i can understand|i completely understand|i totally understand"
          r"|frustrat|inconvenien|i hear you|that must be|i appreciate your patience|thanks for your patience"
          r"|i get that|i know how|that's not good enough|you're right to",
}
_HOLD_ANNOUNCE = {
    "zh": r"稍等|稍候|请您等|请等|等一下|等一会|别挂机|不要挂机|请勿挂机|帮您查|给您查|查一下|我查询|为您查询|帮您看一下|我看一下",
    "en": r"\bhold\b|one moment|a moment|just a moment|bear with me|one sec|a sec\b|a second|just a minute|a minute while|let me check|let me look|let me pull|let me see|give me a",
}
_HOLD_THANKS = {
    "zh": r"久等|耐心等待|感谢您的等待|谢谢您的等待|感谢等待|谢谢等待|感谢您的耐心|让您等",
    "en": r"thanks? (?:you )?for (?:holding|waiting|your patience|bearing with)|sorry (?:about|for) the wait|sorry to keep you|appreciate (?:you )?(?:holding|waiting|your patience)|thanks for hanging on",
}
_CLOSING = {
    "zh": r"还有(?:什么|其他|其它|别的)(?:问题|需要|业务|事|可以|能|要)|还有别的|其他还有|还需要(?:什么|其他|办理|别的)|还有没有(?:其他|别的|什么)|其他(?:问题|需要)(?:吗|呢)",
    "en": r"anything else|any other (?:questions?|issues?|problems?|way)|something else i can|else i can (?:help|do|assist)|else today|is that everything|is that all (?:for today|today)|help (?:you )?with anything",
}
_PRICE = {
    "zh": r"[0-9零〇一二两三四五六七八九十百千]+(?:\.[0-9]+)?\s*(?:元|块|毛)|免费|不收费|不要钱|资费|月租|费用是|收费",
    "en": r"[$£€₹]\s*[0-9]|\b[0-9]+(?:\.[0-9]+)?\s*(?:dollars|bucks|pounds|quid|rupees|euros)\b|\bfree\b|no charge|no extra cost|no cost|a month|per month|monthly (?:fee|charge|cost)|(?:fee|charge|cost|price) (?:is|of|will be)|\b(?:five|ten|fifteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))? (?:dollars|bucks|pounds|quid|a month)",
}
CHANGE_INTENTS = frozenset({"package_change", "data_plan", "roaming"})
"""Calls where the agent changes a plan or adds a service: the price must be stated."""


@dataclass(frozen=True, slots=True)
class Answer:
    answer: bool | None
    confidence: float
    evidence: TurnFact | None = None
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        ev = self.evidence
        return {
            "answer": self.answer, "confidence": round(self.confidence, 2), "why": self.why,
            "evidence": {"channel": ev.channel, "quote": redact(ev.text), "start_ms": ev.start_ms, "end_ms": ev.end_ms}
            if ev else None,
        }


@dataclass(frozen=True, slots=True)
class Scorecard:
    form: str  # id@version
    score: float | None  # 0-100, None when no question applied
    raw_score: float | None  # the same without critical failures zeroing it
    failed_critical: tuple[str, ...]
    answers: dict[str, Answer]

    def to_json(self) -> dict[str, Any]:
        return {
            "form": self.form, "score": self.score, "raw_score": self.raw_score,
            "failed_critical": list(self.failed_critical),
            "answers": {qid: a.to_json() for qid, a in self.answers.items()},
        }


def _rx(table: dict[str, str], q: Question, language: str) -> re.Pattern[str]:
    lang = "zh" if language == "zh" else "en"
    extra = q.phrases.zh if lang == "zh" else q.phrases.en
    parts = [table[lang], *(re.escape(fold(p)) for p in extra)]
    if lang == "zh":  # a mixed call: the other language's words too
        parts.append(table["en"])
    return re.compile("|".join(f"(?:{p})" for p in parts))


def _lang(f: QaFacts, t: TurnFact | None = None) -> str:
    if t is not None and any("\u4e00" <= c <= "\u9fff" for c in t.text):
        return "zh"
    return f.language or "en"


def _greeting(f: QaFacts, q: Question) -> Answer:
    agent = f.agent_turns
    if not agent:
        return Answer(None, 0.9, None, "the agent never spoke")
    first = agent[0]
    if "greeting" in first.signals:
        return Answer(True, 0.9, first, "the first agent line greets")
    return Answer(False, 0.8, first, "the first agent line has no greeting")


def _verification(f: QaFacts, q: Question) -> Answer:
    access = next((t for t in f.turns if t.channel == "agent" and t.accesses), None)
    verify = next((t for t in f.turns if t.channel == "agent" and t.verifies), None)
    if access is not None and not access.verified_before:
        return Answer(False, 0.85, access, "account data read out or changed before identity was verified")
    if access is not None:
        return Answer(True, 0.85, verify or access, "identity verified before the account was touched")
    if verify is not None:
        # agents ask for identity because they are about to open the account; what they read out afterwards
        # is often in words no rule names, so a verified call is answered yes with less confidence
        return Answer(True, 0.6, verify, "identity verified; no account read-out recognised after it")
    return Answer(None, 0.7, None, "no account data read out or changed")


def _empathy(f: QaFacts, q: Question) -> Answer:
    upset_at = next((i for i, t in enumerate(f.turns) if t.channel == "customer" and (
        t.categories & {"escalation", "abuse"} or t.score <= UPSET_SCORE)), None)
    if upset_at is None:
        return Answer(None, 0.7, None, "the customer was not upset")
    upset = f.turns[upset_at]
    for t in f.turns[upset_at + 1:]:
        if t.channel == "agent" and _rx(_EMPATHY, q, _lang(f, t)).search(fold(t.text)):
            return Answer(True, 0.8, t, "the agent acknowledged the customer's feelings")
    return Answer(False, 0.7, upset, "the customer was upset and the agent never apologised or acknowledged it")


def _hold(f: QaFacts, q: Question) -> Answer:
    turns = f.turns
    for i in range(len(turns) - 1):
        gap = turns[i + 1].start_ms - turns[i].end_ms
        if gap < HOLD_MIN_MS:
            continue
        before = next((t for t in reversed(turns[: i + 1]) if t.channel == "agent"), None)
        after = next((t for t in turns[i + 1:] if t.channel == "agent"), None)
        announced = before is not None and bool(_rx(_HOLD_ANNOUNCE, q, _lang(f, before)).search(fold(before.text)))
        thanked = after is not None and bool(_rx(_HOLD_THANKS, q, _lang(f, after)).search(fold(after.text)))
        if announced and thanked:
            return Answer(True, 0.8, after, f"a {gap / 1000:.0f} s hold announced and thanked")
        what = "not announced" if not announced else "not thanked"
        return Answer(False, 0.7, after if announced else before, f"a {gap / 1000:.0f} s hold {what}")
    return Answer(None, 0.8, None, "no hold")


def _no_rule(kind: str) -> Callable[[QaFacts, Question], Answer]:
    def evaluate_rule(f: QaFacts, q: Question) -> Answer:
        hit = next((t for t in f.turns if any(r.endswith(kind) for r in t.rules)), None)
        if hit is not None:
            return Answer(False, 0.9, hit, f"{kind.replace('_', ' ')} alert")
        return Answer(True, 0.8, None, f"no {kind.replace('_', ' ')}")
    return evaluate_rule


def _no_abuse(f: QaFacts, q: Question) -> Answer:
    hit = next((t for t in f.turns if t.channel == "agent" and "abuse" in t.categories), None)
    if hit is not None:
        return Answer(False, 0.9, hit, "the agent insulted or talked down to the customer")
    return Answer(True, 0.8, None, "no abuse from the agent")


_CHANGE = re.compile(
    r"\b(?:added|switched|changed|upgraded|downgraded|activated|moved you|put you on|signed you up)\b"
    r"|开通|办理好|办好了|变更|改成|换成|加上了|订购|升级")


def _changes(t: TurnFact) -> bool:
    return t.channel == "agent" and ("resolved" in t.signals or t.accesses) and bool(_CHANGE.search(fold(t.text)))


def _fee_disclosed(f: QaFacts, q: Question) -> Answer:
    change = next((t for t in f.turns if _changes(t)), None)
    if f.intent not in CHANGE_INTENTS or change is None:
        return Answer(None, 0.6, None, "no plan or service changed")
    for t in f.turns:
        if t.channel == "agent" and _rx(_PRICE, q, _lang(f, t)).search(fold(t.text)):
            return Answer(True, 0.7, t, "the agent stated the price")
    return Answer(False, 0.6, change, "a plan or service was changed without a price stated")


def _closing(f: QaFacts, q: Question) -> Answer:
    agent = f.agent_turns
    if not agent:
        return Answer(None, 0.9, None, "the agent never spoke")
    for t in reversed(agent[-CLOSING_LAST_AGENT_TURNS:]):
        if _rx(_CLOSING, q, _lang(f, t)).search(fold(t.text)):
            return Answer(True, 0.85, t, "the agent asked whether anything else was needed")
    return Answer(False, 0.75, agent[-1], "the call closed without asking whether anything else was needed")


def _resolved(f: QaFacts, q: Question) -> Answer:
    if f.unresolved is None:
        return Answer(None, 0.5, None, "the call has not ended")
    return Answer(not f.unresolved, 0.75, None, "unresolved flag" if f.unresolved else "no unresolved flag")


EVALUATORS: dict[str, Callable[[QaFacts, Question], Answer]] = {
    "greeting": _greeting, "verification": _verification, "empathy": _empathy, "hold": _hold,
    "no_forbidden_promise": _no_rule("forbidden_promise"), "no_dismissive": _no_rule("dismissive"),
    "no_abuse": _no_abuse, "fee_disclosed": _fee_disclosed, "closing": _closing, "resolved": _resolved,
}


def score_of(answers: Iterable[tuple[str, bool | None, float, bool]]) -> tuple[float | None, float | None, tuple[str, ...]]:
    """``(score, raw_score, failed_critical)`` of ``(question, answer, weight, critical)`` rows in form order: the
    weight answered yes over the weight answered at all (0-100, one decimal; None when nothing applied), and 0 when a
    critical question is answered no (``raw_score`` keeps the weighted score). The one score rule: ``evaluate``
    and the store (rescoring after a reviewer's override, gateway/store/scores.py) both use it."""
    rows = list(answers)
    applied = sum(w for _, a, w, _ in rows if a is not None)
    earned = sum(w for _, a, w, _ in rows if a)
    raw = round(100.0 * earned / applied, 1) if applied else None
    failed = tuple(q for q, a, _, critical in rows if critical and a is False)
    return (0.0 if failed and raw is not None else raw), raw, failed


def evaluate(form: Form, facts: QaFacts) -> Scorecard:
    """Answer every question of ``form`` and score the answers (:func:`score_of`)."""
    answers = {q.id: EVALUATORS[q.auto](facts, q) for q in form.questions}
    score, raw, failed = score_of((q.id, answers[q.id].answer, q.weight, q.critical) for q in form.questions)
    return Scorecard(form.ref, score, raw, failed, answers)
