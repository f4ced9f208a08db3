"""Accuracy scoring shared by tests and benchmarks: CER for Chinese, WER for English.

Normalisation follows shared/audio/README.md: Traditional folded to Simplified, width folded, punctuation
and spaces removed for Chinese (scored per character); lower case and punctuation removed for English.
Needs ``jiwer`` (the ``test`` and ``bench`` extras).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def _say(n: int) -> str:
    """0-999 in English words (larger numbers are read digit by digit, as phone numbers are)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + _say(n % 100))


def _number_words(match: re.Match) -> str:
    digits, suffix = match.group(1), match.group(2)
    words = _say(int(digits)) if len(digits) <= 3 else " ".join(_ONES[int(d)] for d in digits)
    if suffix:  # ordinal: 20th -> twentieth, 1st -> first
        head, _, last = words.rpartition(" ")
        last = _ORD.get(last, (last[:-1] + "ieth") if last.endswith("y") else last + "th")
        words = (head + " " + last).strip()
    return " " + words + " "


def normalize(text: str, language: str) -> str:
    text = unicodedata.normalize("NFKC", _t2s().convert(text)).lower()
    if language == "zh":
        return re.sub(r"[\W_]+", "", text)
    text = re.sub(r"(\d+)(st|nd|rd|th)?\b", _number_words, text)  # "10" and "ten" are the same word
    text = re.sub(r"[^\w' ]+", " ", text)
    return " ".join(text.split())


def error_rate(reference: str, hypothesis: str, language: str) -> float:
    """CER (zh) or WER (other languages) after normalisation."""
    import jiwer

    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    if not ref:
        return 0.0 if not hyp else 1.0
    if language == "zh":
        return float(jiwer.cer(ref, hyp))
    return float(jiwer.wer(ref, hyp))
