"""Text folding shared by every matcher in ``callscribe.keyword``: one spelling for what ASR writes in many.

Whisper writes the same word in several forms: Traditional or Simplified characters, full-width or ASCII
digits and letters, upper or lower case, and (Mandarin) near-homophones for a syllable it misheard
(头诉 for 投诉, 工新部 for 工信部, 零导 for 领导). Rules are written once, in Simplified Chinese and lower
case; :func:`fold` brings an utterance to that form and :func:`pinyin_keys` gives a toneless syllable per
Han character so a rule can also match by sound.

Both keep exactly one output item per input character, so a position found in the folded text (or in the
syllable list) is the position in the original utterance: quotes and redaction spans stay exact.
"""

from __future__ import annotations

import unicodedata
from functools import cache, lru_cache

__all__ = ["fold", "pinyin_keys", "is_han", "CLAUSE_BREAKS"]

CLAUSE_BREAKS = frozenset("，。！？；：,.!?;:…\n")
"""Characters that end a clause: negation and context windows never reach across them."""


class _FoldTable(dict[int, str]):
    """``str.translate`` table computed on demand: NFKC (full-width to ASCII, circled digits ...),
    dash variants to ``-``, then lower case, kept only where the result is exactly one character."""

    _MAX_ENTRIES = 65536  # bound memory on adversarial input; misses are just recomputed

    def __missing__(self, code: int) -> str:
        char = chr(code)
        folded = unicodedata.normalize("NFKC", char)
        if len(folded) != 1:
            folded = char
        if folded in "‐‑‒–—―−⁃":
            folded = "-"
        if folded in "’‘`´":
            folded = "'"
        lower = folded.lower()
        folded = lower if len(lower) == 1 else folded
        if len(self) < self._MAX_ENTRIES:
            self[code] = folded
        return folded


_FOLD_TABLE = _FoldTable()


@cache
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def fold(text: str) -> str:
    """Simplified, half-width, lower-case copy of ``text`` with ``len(result) == len(text)``."""
    if text.isascii():
        return text.lower()
    try:
        simplified = _t2s().convert(text)
    except UnicodeError:  # lone surrogates from a bad upstream decode: skip the Traditional fold
        simplified = text
    if len(simplified) != len(text):  # a phrase rule changed length: fall back to one char at a time
        simplified = "".join(_t2s_char(c) for c in text)
    return simplified.translate(_FOLD_TABLE)


def _t2s_char(char: str) -> str:
    converted = _t2s().convert(char)
    return converted if len(converted) == 1 else char


def is_han(char: str) -> bool:
    """A CJK unified ideograph (the characters pinyin exists for)."""
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf"


@lru_cache(maxsize=32768)
def _syllable(char: str) -> str:
    from pypinyin import Style, lazy_pinyin

    out = lazy_pinyin(char, style=Style.NORMAL, errors="ignore")
    return out[0] if out else ""


def pinyin_keys(folded: str) -> list[str]:
    """One toneless pinyin syllable per character of ``folded`` ("" for non-Han characters).

    Heteronyms take pypinyin's most common reading, which is what a rule phrase gets too, so both sides
    agree. Cached per character: an utterance costs a dict lookup per character."""
    return [_syllable(c) if is_han(c) else "" for c in folded]
