"""Emerging topics (pure): frequent phrases of a period that the intent catalog does not cover, each with example calls.

Input is what customers said (one ``(call_id, language, text)`` per final) in this period and the one before.

* Mandarin: jieba words of two or more Han characters, and pairs of adjacent such words (``光猫`` + ``红灯`` ->
  ``光猫红灯``), stop words dropped.
* English: word 1- to 3-grams that neither start nor end with a stop word (``red light``, ``optical modem red light``
  is cut at three words: ``modem red light``).
* A phrase is *in the catalog* when it appears in the text of an example question of any intent (Mandarin: as a
  substring; English: as an n-gram of an example): those are what the catalog already recognises.

A phrase counts once per call. A topic is *emerging* when at least ``min_calls`` calls of this period mention it and
its share of calls grew at least ``min_growth`` times against the previous period (with add-one smoothing, so a phrase
new this period has a finite growth). With no calls at all in the previous period there is no baseline: every frequent
phrase outside the catalog is listed, ``growth`` None. Where a longer phrase covers nearly the same calls (80 %) as a shorter one it
contains, only the longer is kept. Each topic lists up to ``examples`` call ids, newest first, for the drill-down.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from typing import Iterable, Sequence

__all__ = ["emerging", "phrases", "catalog_phrases", "ZH_STOP", "EN_STOP"]

ZH_STOP = frozenset("""
我们 你们 他们 她们 这个 那个 这样 那样 什么 怎么 为什么 怎么样 一下 一个 一些 就是 还是 但是 因为 所以 如果 然后 现在 已经 可以 没有 不是
知道 觉得 时候 问题 谢谢 您好 你好 喂喂 好的 对的 是的 嗯嗯 那么 这么 还有 一直 可能 应该 需要 帮我 麻烦 请问 一样 不会 不能 不要 自己
我家 我的 你的 您的 他的 是不是 能不能 有没有 一点 这边 那边 上面 下面 今天 昨天 明天 刚才 马上 之前 以后 而且 或者 的话 吗 呢 吧 啊
""".split())
EN_STOP = frozenset("""
a an the and or but if then so of to in on at for from by with about as is are was were be been being am do does did
i me my we our you your he she it its they them their this that these those there here what which who whom how why
when where can could would should will shall may might must have has had not no yes ok okay um uh like just really very
please thanks thank hello hi hey well yeah right sure get got one also again still now today yesterday tomorrow
""".split())
_HAN = re.compile(r"^[\u4e00-\u9fff]{2,}$")
_EN_WORD = re.compile(r"[a-z][a-z0-9']*")


def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def phrases(language: str, text: str) -> set[str]:
    """The candidate phrases of one utterance (see the module docstring)."""
    out: set[str] = set()
    if language == "zh" or re.search(r"[\u4e00-\u9fff]", text):
        words = [w for w in _jieba().lcut(text) if _HAN.match(w) and w not in ZH_STOP]
        out.update(words)
        raw = _jieba().lcut(text)
        for a, b in zip(raw, raw[1:]):
            if _HAN.match(a) and _HAN.match(b) and a not in ZH_STOP and b not in ZH_STOP:
                out.add(a + b)
    else:
        words = _EN_WORD.findall(text.lower())
        for n in (1, 2, 3):
            for i in range(len(words) - n + 1):
                gram = words[i:i + n]
                if gram[0] in EN_STOP or gram[-1] in EN_STOP or (n == 1 and len(gram[0]) < 4):
                    continue
                out.add(" ".join(gram))
    return out


class Catalog:
    """What the intent catalog's examples already say (:func:`catalog_phrases`)."""

    def __init__(self, examples: Iterable[str]) -> None:
        examples = list(examples)
        self.zh_text = "\n".join(e for e in examples if re.search(r"[\u4e00-\u9fff]", e))
        self.en_grams: set[str] = set()
        for e in examples:
            words = _EN_WORD.findall(e.lower())
            for n in (1, 2, 3):
                self.en_grams.update(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))

    def covers(self, phrase: str) -> bool:
        if re.search(r"[\u4e00-\u9fff]", phrase):
            return phrase in self.zh_text
        return phrase in self.en_grams


def catalog_phrases(path: str | None = None) -> Catalog:
    """The catalog (``intent_catalog``, else the bundled one) as :class:`Catalog`."""
    from callscribe.keyword.intent import load_catalog

    return Catalog(e for intent in load_catalog(path or None) for e in intent.examples)


def _document_frequency(texts: Iterable[tuple[str, str, str]]) -> tuple[dict[str, set[str]], set[str]]:
    calls: dict[str, set[str]] = defaultdict(set)
    seen: set[str] = set()
    for call_id, language, text in texts:
        seen.add(call_id)
        for p in phrases(language, text):
            calls[p].add(call_id)
    return calls, seen


def emerging(current: Sequence[tuple[str, str, str]], previous: Sequence[tuple[str, str, str]], catalog: Catalog,
             min_calls: int = 3, min_growth: float = 1.5, top: int = 20, examples: int = 5,
             newest: Sequence[str] = ()) -> list[dict]:
    """Emerging phrases, most calls first: ``{"text" (the phrase: ``text`` so the one PII policy, callscribe/pii.py,
    treats it as transcript text), "language", "calls", "share", "previous_calls", "previous_share", "growth",
    "call_ids"}``. ``newest``: the period's call ids newest first (example order)."""
    cur, cur_calls = _document_frequency(current)
    prev, prev_calls = _document_frequency(previous)
    n1, n2 = max(1, len(cur_calls)), len(prev_calls)
    rank = {c: i for i, c in enumerate(newest)}
    found = []
    for p, ids in cur.items():
        if len(ids) < min_calls or catalog.covers(p):
            continue
        before = len(prev.get(p, ()))
        growth = (len(ids) / n1) / ((before + 1) / (n2 + 1)) if n2 else None
        if growth is not None and growth < min_growth:
            continue
        found.append((p, ids, before, growth))
    found.sort(key=lambda t: (-len(t[1]), -len(t[0]), t[0]))
    kept: list[tuple[str, set[str], int, float]] = []
    for p, ids, before, growth in found:  # a shorter phrase inside a kept longer one with nearly its calls: redundant
        if any(p in q and len(q_ids) >= 0.8 * len(ids) for q, q_ids, _, _ in kept if q != p):
            continue
        kept = [k for k in kept if not (k[0] in p and len(ids) >= 0.8 * len(k[1]))]
        kept.append((p, ids, before, growth))
    kept.sort(key=lambda t: (-len(t[1]), -(t[3] or 0), t[0]))
    out = []
    for p, ids, before, growth in kept[:top]:
        out.append({"text": p, "language": "zh" if re.search(r"[\u4e00-\u9fff]", p) else "en",
                    "calls": len(ids), "share": round(len(ids) / n1, 4), "previous_calls": before,
                    "previous_share": round(before / n2, 4) if n2 else None,
                    "growth": None if growth is None else round(growth, 2),
                    "call_ids": sorted(ids, key=lambda c: (rank.get(c, len(rank)), c))[:examples]})
    return out
