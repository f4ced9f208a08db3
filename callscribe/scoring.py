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


def normalize(text: str, language: str) -> str:
    text = unicodedata.normalize("NFKC", _t2s().convert(text)).lower()
    if language == "zh":
        return re.sub(r"[\W_]+", "", text)
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
