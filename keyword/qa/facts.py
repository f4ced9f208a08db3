"""What a call's evaluation form is answered from: one record per final, kept by the call analyzer.

The analyzer (keyword/analyzer.py) already decides, turn by turn, what a QA reviewer looks for: whether the
agent greeted, asked for identity, read out or changed account data, whether the customer was upset (rules
and sentiment), which alerts fired. It appends one :class:`TurnFact` per final here, so the scorecard core
(evaluate.py) answers the form from the same judgements the live alerts use, without a second pass over the
rules, and a dialogue file, a recording and a live call are scored alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["QaFacts", "TurnFact"]


@dataclass(frozen=True, slots=True)
class TurnFact:
    channel: str
    text: str  # redacted as shown to QA
    start_ms: int
    end_ms: int
    signals: frozenset[str] = frozenset()  # analyzer signals on this turn (greeting, verification, pending ...)
    rules: frozenset[str] = frozenset()  # alert rules that fired on this turn
    categories: frozenset[str] = frozenset()  # their categories
    verifies: bool = False  # the agent asked for or confirmed identity here
    accesses: bool = False  # the agent read out or changed the caller's account data here
    verified_before: bool = False  # identity had been asked for before this turn
    score: float = 0.0  # the utterance's sentiment score (-1 .. 1)


@dataclass(slots=True)
class QaFacts:
    turns: list[TurnFact] = field(default_factory=list)
    language: str = ""
    unresolved: bool | None = None  # set at call end
    intent: str = ""

    def add(self, fact: TurnFact) -> None:
        self.turns.append(fact)

    @property
    def agent_turns(self) -> list[TurnFact]:
        return [t for t in self.turns if t.channel == "agent"]
