"""Compiled matching of rule packs against one utterance: every rule in one pass, ASR-tolerant.

Cost matters (every final of every call goes through here, goal >= 2,000 finals/s per core), so all
literal phrases of all packs go into one Aho-Corasick automaton (``pyahocorasick``) over the folded text,
and the pinyin keys of sound-matched Chinese phrases into a second one over the utterance's syllables;
only the few ``patterns`` are regular expressions. A hit then passes three checks:

* word boundaries for English phrases ("hell" is not in "hello"; patterns say their own);
* negation: the pack's prefixes followed by nothing but fillers up to the hit, within the clause
  (我不是要投诉, "I'm not going to complain"), or a suffix right after it (投诉就算了);
* ``unless``: a context phrase anywhere in the hit's clause cancels it (上次投诉过 ... 已经解决);
* ``word`` (Chinese): the hit must be whole words of the clause as jieba segments it (滚 is not in
  滚动条), and a phrase ending in 的 that is followed by a noun is a possessive, not a curse (我妈的手机);
* ``threat``: the hit must be the speaker's own intention toward the company, so the pack's
  ``not_a_threat`` frames (a profession or employer, a third party's or a past complaint, reporting a
  spam number, a question about procedure) cancel a hit they overlap.

A sound (pinyin) hit must also share characters with its phrase (头诉 shares 诉 with 投诉), so that a
different word that merely sounds the same is not taken for it.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import ahocorasick

from .normalize import CLAUSE_BREAKS, fold, is_han, pinyin_keys
from .packs import Negation, Pack, Rule

__all__ = ["Hit", "Matcher"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One rule found in one utterance; ``start``/``end`` index the original utterance text."""

    rule: Rule
    start: int
    end: int
    text: str
    by_sound: bool = False


@lru_cache(maxsize=4096)
def _words(clause: str) -> tuple[tuple[int, int, str], ...]:
    """jieba's words of a Chinese clause with their offsets and part-of-speech flags."""
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    out = []
    pos = 0
    for pair in jieba.posseg.cut(clause, HMM=True):
        word = pair.word
        at = clause.find(word, pos)
        if at < 0:  # jieba normalised something: give up on offsets past here
            break
        out.append((at, at + len(word), pair.flag))
        pos = at + len(word)
    return tuple(out)


def _whole_words(clause: str, start: int, end: int) -> bool:
    """The span ``clause[start:end]`` starts and ends on jieba word boundaries, and is not a possessive
    的 phrase (a span ending in 的 followed by a noun: 我妈的手机, 你妈的号码)."""
    words = _words(clause)
    starts = {a for a, _, _ in words}
    ends = {b for _, b, _ in words}
    if start not in starts or end not in ends:
        return False
    if clause[end - 1:end] == "的":
        following = next((flag for a, _, flag in words if a == end), "")
        if following[:1] == "n":
            return False
        # 我妈的，一三六…… / 俺妈的呢 / 咱妈的意思: a first-person possessor makes it "my mum's", whatever follows
        if _FIRST_PERSON.search(clause[:start]):
            return False
    return True


_FIRST_PERSON = re.compile(r"(?:我|俺|咱|我们|咱们|我家|俺家|自己)$")


def _clause_bounds(folded: str, start: int, end: int) -> tuple[int, int]:
    lo = start
    while lo > 0 and folded[lo - 1] not in CLAUSE_BREAKS:
        lo -= 1
    hi = end
    while hi < len(folded) and folded[hi] not in CLAUSE_BREAKS:
        hi += 1
    return lo, hi


class _NegationGrammar:
    """Prefix regex (anchored at the end of the text before a hit) and suffix list for one language."""

    def __init__(self, neg: Negation, language: str) -> None:
        self.suffixes = neg.suffixes
        if not neg.prefixes:
            self.prefix_re = None
            return
        alt = lambda words: "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))  # noqa: E731
        if language == "en":
            filler = rf"(?:\s+(?:{alt(neg.fillers)}))" if neg.fillers else "(?!)"
            self.prefix_re = re.compile(rf"(?:^|\W)(?:{alt(neg.prefixes)}){filler}{{0,{neg.max_fillers}}}\s*$")
        else:
            filler = rf"(?:{alt(neg.fillers)})" if neg.fillers else "(?!)"
            self.prefix_re = re.compile(rf"(?:{alt(neg.prefixes)})\s*(?:{filler}\s*){{0,{neg.max_fillers}}}$")

    def negated(self, before: str, after: str) -> bool:
        if self.prefix_re is not None and self.prefix_re.search(before):
            return True
        after = after.lstrip()
        return any(after.startswith(s) for s in self.suffixes)


class Matcher:
    """All rules of a set of packs, compiled; :meth:`match` finds the hits in one utterance."""

    def __init__(self, packs: Iterable[Pack]) -> None:
        self.rules: list[Rule] = []
        self._grammar: dict[str, _NegationGrammar] = {}
        self._frames: dict[str, list[re.Pattern[str]]] = {}
        self._patterns: list[tuple[Rule, re.Pattern[str]]] = []
        literal: dict[str, list[tuple[Rule, str]]] = {}
        sound: dict[str, list[tuple[Rule, str]]] = {}
        for pack in packs:
            self._grammar.setdefault(pack.language, _NegationGrammar(pack.negation, pack.language))
            self._frames.setdefault(pack.language, []).extend(pack.not_a_threat)
            for rule in pack.rules:
                self.rules.append(rule)
                for phrase in rule.phrases:
                    literal.setdefault(phrase, []).append((rule, phrase))
                    if rule.sound and len(phrase) >= 2 and all(is_han(c) for c in phrase):
                        key = "|" + "|".join(pinyin_keys(phrase)) + "|"
                        sound.setdefault(key, []).append((rule, phrase))
                for pattern in rule.patterns:
                    self._patterns.append((rule, pattern))
        self._literal = self._automaton(literal)
        self._sound = self._automaton(sound)

    @staticmethod
    def _automaton(table: dict[str, list[tuple[Rule, str]]]):
        if not table:
            return None
        auto = ahocorasick.Automaton()
        for key, value in table.items():
            auto.add_word(key, (len(key), tuple(value)))
        auto.make_automaton()
        return auto

    def match(self, text: str, channel: str = "any") -> list[Hit]:
        """Hits of every rule that applies to ``channel`` (``mixed``: customer and any rules), first per rule."""
        folded = fold(text)
        if not folded.strip():
            return []
        found: dict[str, Hit] = {}

        def consider(rule: Rule, start: int, end: int, by_sound: bool = False, literal: bool = True) -> None:
            if rule.id in found or not _channel_ok(rule.channel, channel):
                return
            if literal and rule.language == "en" and not _word_bounded(folded, start, end):
                return
            lo, hi = _clause_bounds(folded, start, end)
            if rule.negatable:
                grammar = self._grammar.get(rule.language)
                if grammar is not None and grammar.negated(folded[lo:start], folded[end:hi]):
                    return
            if rule.unless:
                clause = folded[lo:hi]
                if any(u in clause for u in rule.unless):
                    return
            if rule.word and not _whole_words(folded[lo:hi], start - lo, end - lo):
                return
            if rule.threat and self._benign_frame(rule.language, folded, start, end):
                return
            found[rule.id] = Hit(rule, start, end, text[start:end], by_sound)

        if self._literal is not None:
            for end_idx, (length, entries) in self._literal.iter(folded):
                start = end_idx + 1 - length
                for rule, _ in entries:
                    consider(rule, start, end_idx + 1)
        for rule, pattern in self._patterns:
            if rule.id in found:
                continue
            for m in pattern.finditer(folded):
                if m.end() > m.start():
                    consider(rule, m.start(), m.end(), literal=False)
                    if rule.id in found:
                        break
        if self._sound is not None and any(is_han(c) for c in folded):
            self._match_sound(folded, consider)
        return sorted(found.values(), key=lambda h: (h.start, h.rule.id))

    def _benign_frame(self, language: str, folded: str, start: int, end: int) -> bool:
        """A ``not_a_threat`` frame of the pack overlaps the hit (frames may reach across a comma: 那个推销的
        号码，我想举报一下)."""
        for frame in self._frames.get(language, ()):
            for m in frame.finditer(folded):
                if m.start() < end and start < m.end():
                    return True
        return False

    def _match_sound(self, folded: str, consider) -> None:
        syllables = pinyin_keys(folded)
        parts: list[str] = []
        offsets: list[int] = []  # offset in the key string of each character's token
        pos = 1
        for syl in syllables:
            token = syl or "#"
            offsets.append(pos)
            parts.append(token)
            pos += len(token) + 1
        key = "|" + "|".join(parts) + "|"
        for end_idx, (length, entries) in self._sound.iter(key):
            first = bisect_right(offsets, end_idx + 1 - length + 1) - 1  # token starting right after the '|'
            start, end = first, first + len(entries[0][1])  # one syllable per character
            if start < 0 or end > len(folded):
                continue
            for rule, phrase in entries:
                shared = sum(1 for a, b in zip(folded[start:end], phrase) if a == b)
                if shared == len(phrase):
                    continue  # a literal match; already considered
                if shared * 2 >= len(phrase) or (len(phrase) in (2, 3) and shared == 1):  # 公信不 = 工信部
                    consider(rule, start, end, by_sound=True)


def _channel_ok(rule_channel: str, channel: str) -> bool:
    if rule_channel == "any" or channel == "any":
        return True
    if channel == "mixed":
        return rule_channel == "customer"
    return rule_channel == channel


def _word_bounded(folded: str, start: int, end: int) -> bool:
    before = folded[start - 1] if start > 0 else " "
    after = folded[end] if end < len(folded) else " "
    if folded[start:start + 1].isalnum() and before.isalnum():
        return False
    return not (folded[end - 1:end].isalnum() and after.isalnum())
