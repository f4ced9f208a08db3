"""Intent detection: which catalog intent a call is about, from what the customer says, live.

The method follows the "similar questions" practice of carrier service centers: each intent in the catalog
(``packs/intents.yaml``, or ``Config.intent_catalog``) lists example customer questions in Chinese and
English; an utterance is compared with them as TF-IDF vectors of character n-grams (Chinese: 1-3
characters, so no word segmenter is needed and ASR homophones still share most n-grams) and word n-grams
(English: 1-2 stemmed words). Each intent is the normalised centroid of its examples.

Why this and not an embedding model: it runs at tens of thousands of utterances per second per core with
no model download, it is explainable (the n-grams that scored), and adding a "similar question" to the YAML
fixes a miss at once. The benchmark (benchmarks/analytics.py) reports its cost.

Live use is incremental: a :class:`CallIntent` keeps the call's weighted feature sums and the running dot
products with every centroid, so a new final costs only its own n-grams, not the whole call again.
Earlier customer utterances weigh more (the reason for calling comes first; later turns drift into
verification and small talk), and agent turns count a little (agents restate the problem).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from callscribe.errors import CallscribeError

from .normalize import fold, is_han

__all__ = ["CallIntent", "Intent", "IntentCatalogError", "IntentClassifier", "IntentScore", "bundled_catalog_path", "load_catalog"]

CATALOG_VERSION = 1
FALLBACK = "other"


class IntentCatalogError(CallscribeError):
    """An intent catalog that cannot be used (unreadable, not YAML, failing validation)."""


@dataclass(frozen=True, slots=True)
class Intent:
    id: str
    name_zh: str
    name_en: str
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IntentScore:
    intent: str
    score: float
    runner_up: str
    runner_up_score: float


def bundled_catalog_path() -> Path:
    return Path(__file__).parent / "packs" / "intents.yaml"


_EN_WORD = re.compile(r"[a-z][a-z']*|[0-9]+")
_STOP_EN = frozenset(
    "a an the i i'm im me my you your we our us it its it's is are was were be been am to of in on for at by "
    "and or but so that this these those with from just um uh yeah yes ok okay oh hi hello please thanks thank "
    "can could would will do does did have has had there here what which how when why who".split()
)
_STOP_ZH = frozenset("的了吗呢吧啊呀嗯哦喂那个就是我你他她它们这么么也都还很在有和")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def features(text: str) -> Counter[str]:
    """The n-gram counts of one utterance (folded first)."""
    folded = fold(text)
    out: Counter[str] = Counter()
    run: list[str] = []

    def flush() -> None:
        n = len(run)
        for i in range(n):
            c = run[i]
            if c not in _STOP_ZH:
                out[c] += 1
            if i + 1 < n:
                out[c + run[i + 1]] += 1
            if i + 2 < n:
                out[c + run[i + 1] + run[i + 2]] += 1
        run.clear()

    for ch in folded:
        if is_han(ch):
            run.append(ch)
        else:
            if run:
                flush()
    if run:
        flush()
    words = [_stem(w) for w in _EN_WORD.findall(folded)]
    content = [w for w in words if w not in _STOP_EN]
    for w in content:
        out["w:" + w] += 1
    for a, b in zip(words, words[1:]):
        if a in _STOP_EN and b in _STOP_EN:
            continue
        out["b:" + a + " " + b] += 1
    return out


def load_catalog(path: str | os.PathLike[str] | None = None) -> list[Intent]:
    """The intents of a catalog (schema: version 1, intents: [{id, name: {zh, en}, examples: {zh: [...],
    en: [...]}}]), validated; no model is built (the web gateway only needs the names)."""
    import yaml

    where = str(path or bundled_catalog_path())
    try:
        with open(where, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeError, yaml.YAMLError) as exc:
        raise IntentCatalogError(f"intent catalog {where}: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != CATALOG_VERSION:
        raise IntentCatalogError(f"intent catalog {where}: needs version: {CATALOG_VERSION} at the top level")
    raw = data.get("intents")
    if not isinstance(raw, list) or not raw:
        raise IntentCatalogError(f"intent catalog {where}: intents must be a non-empty list")
    intents: list[Intent] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise IntentCatalogError(f"intent catalog {where}: intents[{i}] needs an id")
        iid = item["id"]
        if iid in seen:
            raise IntentCatalogError(f"intent catalog {where}: duplicate intent id {iid!r}")
        seen.add(iid)
        name = item.get("name") or {}
        examples = item.get("examples") or {}
        if isinstance(examples, list):
            examples = {"any": examples}
        if not isinstance(examples, dict) or not isinstance(name, dict):
            raise IntentCatalogError(f"intent catalog {where}: intent {iid}: name and examples must be mappings")
        texts = tuple(str(e) for lang in examples.values() for e in (lang or []) if str(e).strip())
        if not texts:
            raise IntentCatalogError(f"intent catalog {where}: intent {iid} has no examples")
        intents.append(Intent(iid, str(name.get("zh", iid)), str(name.get("en", iid)), texts))
    return intents


class IntentClassifier:
    """TF-IDF centroids of an intent catalog; :meth:`score` ranks intents for a text or a feature sum."""

    def __init__(self, intents: Iterable[Intent], other_threshold: float = 0.12, centroid_weight: float = 0.5) -> None:
        self.intents = tuple(intents)
        if not self.intents:
            raise IntentCatalogError("the intent catalog is empty")
        self.ids = tuple(i.id for i in self.intents)
        self.names = {i.id: (i.name_zh, i.name_en) for i in self.intents}
        self.other_threshold = other_threshold
        self.centroid_weight = centroid_weight
        # Classes: one centroid per (intent, language of the example): a Chinese call is compared with the
        # Chinese examples' centroid, not one diluted by English n-grams it can never share.
        docs: list[tuple[int, str, Counter[str]]] = []
        for k, intent in enumerate(self.intents):
            for ex in intent.examples:
                lang = "zh" if any(is_han(c) for c in ex) else "en"
                docs.append((k, lang, features(ex)))
        df: Counter[str] = Counter()
        for _, _, f in docs:
            df.update(f.keys())
        n = len(docs)
        self.idf = {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in df.items()}
        classes: dict[tuple[int, str], int] = {}
        centroids: list[dict[str, float]] = []
        example_postings: dict[str, list[tuple[int, float]]] = {}
        self.example_intent: list[int] = []
        for e, (k, lang, f) in enumerate(docs):
            vec = {t: (1 + math.log(c)) * self.idf[t] for t, c in f.items()}
            norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
            c = classes.setdefault((k, lang), len(classes))
            if c == len(centroids):
                centroids.append({})
            cen = centroids[c]
            for t, v in vec.items():
                cen[t] = cen.get(t, 0.0) + v / norm
                example_postings.setdefault(t, []).append((e, v / norm))
            self.example_intent.append(k)
        self.class_intent = [k for (k, _), _ in sorted(classes.items(), key=lambda kv: kv[1])]
        # feature -> ((class index, weight), ...): the inverted index that makes scoring cheap
        postings: dict[str, list[tuple[int, float]]] = {}
        for c, cen in enumerate(centroids):
            norm = math.sqrt(sum(v * v for v in cen.values())) or 1.0
            for t, v in cen.items():
                postings.setdefault(t, []).append((c, v / norm))
        self.postings = {t: tuple(p) for t, p in postings.items()}
        # example postings as index/weight arrays (one numpy update per n-gram), and each intent's
        # examples as one contiguous slice (docs were built intent by intent) for a vectorised max
        self.example_postings = {
            t: (np.fromiter((e for e, _ in p), np.intp, len(p)), np.fromiter((w for _, w in p), np.float64, len(p)))
            for t, p in example_postings.items()
        }
        self.example_intent_array = np.asarray(self.example_intent, np.intp)
        self._slice_starts = np.flatnonzero(np.r_[True, np.diff(self.example_intent_array) != 0])
        self._slice_intents = self.example_intent_array[self._slice_starts]

    # -----------------------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str] | None = None, **kwargs) -> "IntentClassifier":
        """A classifier over the catalog at ``path`` (default: the bundled one); see :func:`load_catalog`."""
        return cls(load_catalog(path), **kwargs)

    # -----------------------------------------------------------------------------------------------
    def rank(self, class_dots: list[float], example_dots: np.ndarray, norm: float) -> IntentScore:
        """Score per intent: ``centroid_weight`` x its best centroid similarity + the rest x its nearest
        example's similarity (the "most similar question")."""
        if norm <= 0:
            return IntentScore(FALLBACK, 0.0, FALLBACK, 0.0)
        n = len(self.ids)
        cen = [0.0] * n
        for c, d in enumerate(class_dots):
            k = self.class_intent[c]
            cen[k] = max(cen[k], d / norm)
        near = [0.0] * n
        maxima = np.maximum.reduceat(example_dots, self._slice_starts) if len(example_dots) else ()
        for k, m in zip(self._slice_intents.tolist(), np.asarray(maxima).tolist()):
            if m > near[k]:
                near[k] = m
        w = self.centroid_weight
        scores = [w * cen[k] + (1 - w) * near[k] / norm for k in range(n)]
        order = sorted(range(n), key=lambda k: scores[k], reverse=True)
        best, second = order[0], order[1] if n > 1 else order[0]
        top, runner = scores[best], scores[second]
        intent = self.ids[best]
        if top < self.other_threshold and FALLBACK in self.ids:
            return IntentScore(FALLBACK, top, intent, top)
        return IntentScore(intent, top, self.ids[second], runner)

    def score(self, text: str) -> IntentScore:
        """Rank intents for one text (offline use; live calls use :class:`CallIntent`)."""
        call = CallIntent(self)
        call.add(text, weight=1.0)
        return call.best()


class CallIntent:
    """The running intent evidence of one call (see the module docstring)."""

    __slots__ = ("clf", "vec", "dots", "example_dots", "sq", "customer_turns", "_best")

    def __init__(self, clf: IntentClassifier) -> None:
        self.clf = clf
        self.vec: dict[str, float] = {}
        self.dots = [0.0] * len(clf.class_intent)
        self.example_dots = np.zeros(len(clf.example_intent))
        self.sq = 0.0
        self.customer_turns = 0
        self._best: IntentScore | None = None

    def add(self, text: str, weight: float) -> None:
        idf, postings, vec, dots = self.clf.idf, self.clf.postings, self.vec, self.dots
        ex_postings, ex_dots = self.clf.example_postings, self.example_dots
        self._best = None
        for t, c in features(text).items():
            w = idf.get(t)
            if w is None:
                continue
            delta = weight * (1 + math.log(c)) * w
            old = vec.get(t, 0.0)
            new = old + delta
            vec[t] = new
            self.sq += new * new - old * old
            for k, pw in postings[t]:
                dots[k] += delta * pw
            idx, weights = ex_postings[t]
            ex_dots[idx] += delta * weights  # indices within one n-gram's postings are distinct

    def add_utterance(self, text: str, channel: str, damp: float = 1.0) -> None:
        """A final: customer (or mixed) turns weigh 1/(1 + 0.25 n) for the n-th; agent turns 0.25 of that.

        ``damp`` scales a turn down further: the analyzer passes 0.3 for a later turn that is an escalation
        or abuse (they say how the customer feels, not what the call is about)."""
        if channel == "agent":
            self.add(text, damp * 0.25 / (1 + 0.25 * self.customer_turns))
            return
        self.add(text, damp / (1 + 0.25 * self.customer_turns))
        self.customer_turns += 1

    def best(self) -> IntentScore:
        if self._best is None:
            self._best = self.clf.rank(self.dots, self.example_dots, math.sqrt(max(self.sq, 0.0)))
        return self._best
