"""Guards against Whisper's known failure modes, as pure text functions (unit-tested, no model needed).

Whisper was trained on subtitles, so on silence, noise or music it can emit credits ("Thank you for
watching", "字幕由Amara.org社区提供", "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目"), and on hard audio it can
loop ("好的好的好的好的..."). Segments reach the model only after VAD, but a short cough or a breath still does;
these functions drop the credits and collapse the loops.
"""

from __future__ import annotations

import re
import unicodedata
import zlib

# Phrases Whisper produces on non-speech. Compared after normalisation (lower case, no punctuation/space).
HALLUCINATIONS: tuple[str, ...] = (
    "thank you for watching",
    "thanks for watching",
    "thank you for watching and see you next time",
    "please subscribe",
    "like and subscribe",
    "subtitles by the amara.org community",
    "transcribed by",
    "subscribe to my channel",
    "see you in the next video",
    "thank you",
    "you",
    "字幕由amara.org社区提供",
    "字幕由amara.org社群提供",
    "小编字幕由amara.org社区提供",
    "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
    "请不吝点赞订阅转发打赏支持明镜与点点栏目",
    "明镜与点点栏目",
    "点赞订阅转发打赏",
    "谢谢观看",
    "感谢观看",
    "谢谢大家观看",
    "字幕志愿者",
    "中文字幕志愿者",
    "优优独播剧场——yoyo television series exclusive",
    "本字幕由",
    "字幕",
)
# Substrings that mark a credit line wherever they appear; the sentence holding them is removed.
HALLUCINATION_MARKERS: tuple[str, ...] = (
    "amara.org",
    "字幕由",
    "请不吝点赞",
    "明镜与点点",
    "点赞订阅",
    "订阅转发",
    "打赏支持",
    "thank you for watching",
    "thanks for watching",
    "please subscribe",
    "yoyo television",
    "字幕志愿者",
)
# Exact phrases that are only hallucinations when the audio is short/weak (they are also real speech).
WEAK_ONLY: frozenset[str] = frozenset({"thank you", "you", "谢谢观看", "字幕"})

_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


def normalize(text: str) -> str:
    """Lower case, width-folded, punctuation and spaces removed: the form hallucinations are compared in."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _PUNCT.sub("", text)


_HALLU_NORM = {normalize(h): h for h in HALLUCINATIONS}
_MARKERS_NORM = tuple(normalize(m) for m in HALLUCINATION_MARKERS)
_SENTENCE = re.compile(r".*?(?:[。！？!?]+|\.(?=\s|$)|$)\s*", re.S)


def is_hallucination(text: str, weak: bool = False) -> bool:
    """True when the whole text is a known non-speech phrase (``weak``: the decode had little evidence)."""
    n = normalize(text)
    if not n:
        return True
    if n in _HALLU_NORM:
        return weak or normalize(_HALLU_NORM[n]) not in {normalize(w) for w in WEAK_ONLY}
    return False


def strip_credits(text: str) -> str:
    """Remove sentences that carry a credit/subscribe marker, keep the rest."""
    parts = [p for p in _SENTENCE.findall(text) if p]
    kept = [p for p in parts if not any(m in normalize(p) for m in _MARKERS_NORM)]
    return "".join(kept).strip() if len(kept) != len(parts) else text


def compression_ratio(text: str) -> float:
    """gzip ratio of the UTF-8 text; Whisper's own loop detector (> 2.4 means repetitive)."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


def collapse_repetitions(text: str, max_repeats: int = 2) -> str:
    """Collapse a unit repeated more than ``max_repeats`` times in a row to ``max_repeats`` copies.

    Works on characters for CJK and on words otherwise, for units of 1-15 characters/words:
    "好的好的好的好的好的" -> "好的好的", "no no no no no no" -> "no no". Numbers are left alone unless the run is
    absurdly long: "验证码是888888" and "card ending 1 1 1 1" are what the caller said, not a decoding loop.
    """
    if not text:
        return text
    cjk = _is_mostly_cjk(text)
    tokens: list[str] = list(text) if cjk else text.split(" ")
    changed = True
    while changed:
        changed = False
        for size in range(1, min(15, len(tokens) // (max_repeats + 1)) + 1):
            i = 0
            out: list[str] = []
            while i < len(tokens):
                unit = tokens[i : i + size]
                reps = 1
                while tokens[i + reps * size : i + (reps + 1) * size] == unit and len(unit) == size:
                    reps += 1
                limit = _MAX_NUMBER_REPEATS if _is_number(unit) else max_repeats
                if reps > limit and "".join(unit).strip():
                    out.extend(unit * max_repeats)
                    i += reps * size
                    changed = True
                else:
                    out.append(tokens[i])
                    i += 1
            tokens = out
    return ("" if cjk else " ").join(tokens)


# A digit (group) repeated up to this many times is kept: codes, card and phone numbers, amounts.
_MAX_NUMBER_REPEATS = 20
_NUMERALS = frozenset("0123456789０１２３４５６７８９零〇一二三四五六七八九两幺")


def _is_number(unit: list[str]) -> bool:
    chars = "".join(unit).replace(" ", "")
    return bool(chars) and all(c in _NUMERALS for c in chars)


def _is_mostly_cjk(text: str) -> bool:
    cjk = sum(1 for c in text if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    return cjk * 2 >= len(text.replace(" ", ""))


def clean(text: str, weak: bool) -> str:
    """The whole guard: credits stripped, loops collapsed, known non-speech phrases dropped (returns "")."""
    text = text.strip()
    text = strip_credits(text)
    text = collapse_repetitions(text)
    if is_hallucination(text, weak=weak):
        return ""
    return text.strip()
