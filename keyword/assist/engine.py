"""Scenario packs compiled for per-final use: one Aho-Corasick automaton per scenario, regexes compiled once,
and a TF-IDF index of the answer cards' similar questions per language.

Cost matters (the agent desk wants the card within a fraction of a second of the final, on a worker that also
runs the analyzer for hundreds of calls), so everything text-shaped is built here once per pack generation and
a final costs one automaton pass over the current scenario plus its few patterns, and (customer questions
only) one sparse dot product with the cards' questions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import ahocorasick

from ..intent import features
from ..normalize import fold
from .packs import FieldLabels, LoadedPack, field_labels
from .schema import AnswerCard, OfferSpec, ScenarioSpec, StepSpec, TicketTemplate

__all__ = ["CompiledScenario", "CompiledPacks", "KnowledgeIndex", "KnowledgeHit", "is_question"]


def _ascii_word_ok(folded: str, start: int, end: int) -> bool:
    """English phrases match whole words only ("fee" is not in "feel")."""
    before = folded[start - 1] if start > 0 else " "
    after = folded[end] if end < len(folded) else " "
    if folded[start].isascii() and folded[start].isalnum() and before.isascii() and before.isalnum():
        return False
    if folded[end - 1].isascii() and folded[end - 1].isalnum() and after.isascii() and after.isalnum():
        return False
    return True


class PhraseSet:
    """Folded phrases -> keys, matched in one Aho-Corasick pass (whole words for ASCII phrases)."""

    def __init__(self, entries: Iterable[tuple[str, tuple]]) -> None:
        table: dict[str, list[tuple]] = {}
        for phrase, key in entries:
            p = fold(phrase.strip())
            if p:
                table.setdefault(p, []).append(key)
        self.size = len(table)
        self._a = None
        if table:
            a = ahocorasick.Automaton()
            for p, keys in table.items():
                a.add_word(p, (len(p), tuple(keys)))
            a.make_automaton()
            self._a = a

    def find(self, folded: str) -> set[tuple]:
        out: set[tuple] = set()
        if self._a is None or not folded:
            return out
        for end, (n, keys) in self._a.iter(folded):
            if _ascii_word_ok(folded, end + 1 - n, end + 1):
                out.update(keys)
        return out


@dataclass(frozen=True, slots=True)
class CompiledStep:
    spec: StepSpec
    index: int
    patterns: tuple[re.Pattern[str], ...]

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(slots=True)
class CompiledScenario:
    spec: ScenarioSpec
    language: str
    steps: tuple[CompiledStep, ...]
    phrases: PhraseSet  # keys: ("step", id) / ("offer", id) / ("closing",) / ("field", name, label)
    field_patterns: dict[str, re.Pattern[str]]

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def intent(self) -> str:
        return self.spec.intent

    @property
    def ticket(self) -> TicketTemplate:
        return self.spec.ticket

    @property
    def offers(self) -> tuple[OfferSpec, ...]:
        return self.spec.offers

    def step(self, step_id: str) -> CompiledStep | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def hits(self, text: str) -> tuple[str, set[tuple]]:
        folded = fold(text)
        return folded, self.phrases.find(folded)


def compile_scenario(spec: ScenarioSpec, language: str, closing: tuple[str, ...]) -> CompiledScenario:
    entries: list[tuple[str, tuple]] = []
    steps = []
    for i, s in enumerate(spec.steps):
        entries += [(p, ("step", s.id)) for p in s.done_when.phrases]
        steps.append(CompiledStep(s, i, tuple(re.compile(fold(p)) for p in s.done_when.patterns)))
    for o in spec.offers:
        entries += [(p, ("offer", o.id)) for p in o.customer_said]
    entries += [(p, ("closing",)) for p in closing]
    field_patterns: dict[str, re.Pattern[str]] = {}
    for f in spec.ticket.fields:
        if f.source == "match":
            for label, phrases in f.match.items():
                entries += [(p, ("field", f.name, label)) for p in phrases]
        elif f.source == "regex":
            field_patterns[f.name] = re.compile(f.pattern, re.IGNORECASE)
    return CompiledScenario(spec, language, tuple(steps), PhraseSet(entries), field_patterns)


# --- knowledge answers ------------------------------------------------------------------------------
_ZH_QUESTION = re.compile(r"[?？]|吗|呢|怎么|什么|为什么|为啥|多少|多久|哪|几|能不能|可不可以|是不是|有没有|会不会|要不要|咋")
_EN_QUESTION = re.compile(
    r"\?|^\s*(?:so\s+|and\s+|but\s+|um,?\s+|uh,?\s+|okay,?\s+|right,?\s+)*(?:how|what|when|why|where|which|who|can|could|"
    r"do|does|did|is|are|will|would|should|may|am)\b|\b(?:i (?:want|need|would like) to know|wondering|how (?:long|much|do))\b",
    re.IGNORECASE,
)


def is_question(text: str, language: str) -> bool:
    """A customer turn that asks something (where a knowledge card can answer)."""
    return bool((_ZH_QUESTION if language == "zh" else _EN_QUESTION).search(text))


@dataclass(frozen=True, slots=True)
class KnowledgeHit:
    card: AnswerCard
    scenario: str
    score: float
    question: str  # the similar question that matched best
    threshold: float


@dataclass(slots=True)
class KnowledgeIndex:
    """TF-IDF vectors (the intent classifier's n-grams) of every card's similar questions, as postings."""

    idf: Mapping[str, float]
    default_idf: float
    postings: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    questions: list[tuple[int, str]] = field(default_factory=list)  # question -> (card index, text)
    cards: list[tuple[AnswerCard, str, float]] = field(default_factory=list)  # card, scenario id, threshold

    @classmethod
    def build(cls, cards: Iterable[tuple[AnswerCard, str, float]], idf: Mapping[str, float] | None = None) -> "KnowledgeIndex":
        cards = list(cards)
        docs = [(c, q, features(q)) for c, (card, _, _) in enumerate(cards) for q in card.questions]
        if idf is None:
            df: dict[str, int] = {}
            for _, _, f in docs:
                for t in f:
                    df[t] = df.get(t, 0) + 1
            n = len(docs)
            idf = {t: math.log((1 + n) / (1 + k)) + 1.0 for t, k in df.items()}
            default = math.log(1 + n) + 1.0
        else:
            default = max(idf.values(), default=1.0)
        index = cls(idf, default, cards=cards)
        for qi, (c, q, f) in enumerate(docs):
            vec = {t: (1 + math.log(k)) * idf.get(t, default) for t, k in f.items()}
            norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
            for t, v in vec.items():
                index.postings.setdefault(t, []).append((qi, v / norm))
            index.questions.append((c, q))
        return index

    def best(self, text: str, exclude: set[str] = frozenset()) -> KnowledgeHit | None:
        """The best card for ``text`` (not in ``exclude``), with its score, or None when nothing overlaps."""
        f = features(text)
        if not f or not self.questions:
            return None
        dots: dict[int, float] = {}
        sq = 0.0
        for t, k in f.items():
            w = (1 + math.log(k)) * self.idf.get(t, self.default_idf)
            sq += w * w
            for qi, v in self.postings.get(t, ()):
                dots[qi] = dots.get(qi, 0.0) + w * v
        if not dots:
            return None
        norm = math.sqrt(sq) or 1.0
        best: tuple[float, int] | None = None
        for qi, d in dots.items():
            card = self.cards[self.questions[qi][0]][0]
            if card.id in exclude:
                continue
            if best is None or d > best[0]:
                best = (d, qi)
        if best is None:
            return None
        c, q = self.questions[best[1]]
        card, scenario, threshold = self.cards[c]
        return KnowledgeHit(card, scenario, round(best[0] / norm, 4), q, threshold)


class CompiledPacks:
    """Everything of one pack generation, compiled: scenarios by (language, intent), knowledge per language,
    and the ticket field labels by ticket type (packs.field_labels: drafts carry them)."""

    def __init__(self, packs: Iterable[LoadedPack], idf: Mapping[str, float] | None = None) -> None:
        packs = list(packs)
        self.field_labels: FieldLabels = field_labels(packs)
        self.scenarios: dict[tuple[str, str], CompiledScenario] = {}
        self.knowledge: dict[str, KnowledgeIndex] = {}
        self.max_offers: dict[str, int] = {}
        cards: dict[str, list[tuple[AnswerCard, str, float]]] = {}
        for lp in packs:
            pack = lp.pack
            self.max_offers[pack.language] = pack.max_offers_per_call
            for s in pack.scenarios:
                self.scenarios[(pack.language, s.intent)] = compile_scenario(s, pack.language, pack.closing)
                for card in s.answers:
                    cards.setdefault(pack.language, []).append(
                        (card, s.id, card.threshold if card.threshold is not None else pack.knowledge_threshold))
        for lang, cs in cards.items():
            self.knowledge[lang] = KnowledgeIndex.build(cs, idf)

    def scenario(self, language: str, intent: str) -> CompiledScenario | None:
        lang = "zh" if language.startswith("zh") else "en"
        return self.scenarios.get((lang, intent))
