"""The contact center's own words, for a Whisper prompt: taken from the intent catalog and the scenario packs.

Mandarin: jieba's words of the catalog's example utterances and of the packs' phrases, ranked by how much more
often the catalog uses them than general Chinese does (jieba's dictionary frequencies), so 宽带, 套餐, 流量包,
携号转网 come before 手机 or 时候. English: the catalog's and packs' words that are not common English.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

PACKS = Path(__file__).resolve().parents[1] / "keyword" / "packs"
MAX_TERMS = 40

_EN_COMMON = frozenset("""
a about after again all also am an and any are as ask at back be because been before being but by call can
could day did do does done dont down each even every for from get gets getting go going got had has have he her
here him his how i if im in into is it its ive just know last like look make me month months more my need new no
not now of off on one only or other our out over please really right said same say see she should so some still
sure than thank thanks that thats the their them then there these they thing this those through time to today told
too two up us use very want was way we well were what when where which while who why will with would yeah yes you
your youre okay ok um uh hi hello hey just got gonna let lets thats didnt doesnt isnt cant wont been also much
many first next week weeks year years again never always already actually something anything nothing someone
""".split())


@lru_cache(maxsize=4)
def terms(language: str, limit: int = MAX_TERMS) -> tuple[str, ...]:
    """The ``limit`` most characteristic words of the catalog and packs in ``language`` ("zh" or "en")."""
    texts = _texts(language)
    if language == "zh":
        return _zh_terms(texts, limit)
    return _en_terms(texts, limit)


def prompt(language: str, limit: int = MAX_TERMS) -> str:
    """The words as a prompt in the style of the transcripts (Simplified Chinese, comma-separated)."""
    words = terms(language, limit)
    return "、".join(words) + "。" if language == "zh" else ", ".join(words) + "."


def _texts(language: str) -> list[str]:
    import yaml

    out: list[str] = []
    catalog = yaml.safe_load((PACKS / "intents.yaml").read_text(encoding="utf-8"))
    for intent in catalog.get("intents", []):
        out.append(str(intent.get("name", {}).get(language, "")))
        out += [str(x) for x in intent.get("examples", {}).get(language, [])]
    pack = PACKS / f"assist-{language}.yaml"
    if pack.exists():
        out += [str(x) for x in _strings(yaml.safe_load(pack.read_text(encoding="utf-8")))]
    return [t for t in out if t]


def _strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() if k in ("title", "phrases", "examples", "name", "say", "question") for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


_ZH_FLAGS = frozenset(("n", "nz", "vn", "j", "nt"))  # nouns, noun-like verbs, abbreviations, organisations


def _zh_terms(texts: list[str], limit: int) -> tuple[str, ...]:
    import jieba
    import jieba.posseg

    dt = jieba.dt
    dt.check_initialized()
    counts: Counter[str] = Counter()
    for text in texts:
        seen = {w for w, flag in jieba.posseg.cut(text) if len(w) >= 2 and flag in _ZH_FLAGS and re.fullmatch(r"[\u4e00-\u9fff]+", w)}
        counts.update(seen)
    total = dt.total
    score = {w: c * math.log(total / (dt.FREQ.get(w, 0) + 10)) ** 2 for w, c in counts.items() if c >= 3}
    return tuple(w for w, _ in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])


def _en_terms(texts: list[str], limit: int) -> tuple[str, ...]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update({w for w in re.findall(r"[a-z][a-z'-]+", text.lower()) if len(w) >= 4 and w not in _EN_COMMON and "'" not in w})
    return tuple(w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= 3)[:limit]
