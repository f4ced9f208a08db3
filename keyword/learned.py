"""A small learned layer beside the rules: a linear classifier over n-grams of one utterance.

Why: rules name wordings, and every new author words an account read-out differently ("I'm seeing a balance
of ...", 系统这边显示您上个月..., "that's the Samsung on your line"). A multinomial logistic regression over
character n-grams (Mandarin) and word n-grams (English), trained on utterances labelled by authors who never
saw the rules, generalises over wording where a phrase list cannot. It runs next to the rules, never instead
of them: the rules stay the operator's override (a rule hit decides; the model only adds what no rule named),
and it only answers above a confidence threshold.

Pure Python + numpy, sans-I/O: the weights are a JSON file in the package (``keyword/packs/*.model.json``),
nothing is downloaded, inference is a dictionary lookup per n-gram. Training (``python -m callscribe.keyword.learned``)
is a few seconds of full-batch Adam on the labelled JSONL files; it writes the JSON and prints
cross-validated per-class precision and recall, so the number that decides whether the model is used comes
from utterances it did not see.

The same linear model stacks the call-level judgements over the rules' answers (``end_sentiment_features``,
``unresolved_features``; trained by ``python -m callscribe.keyword.train_models``, which also prints the
leave-one-set-out comparison with the rules alone).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from callscribe.errors import CallscribeError

from .normalize import fold, is_han

__all__ = ["LinearTextModel", "ModelError", "bundled_model_path", "end_sentiment_features", "featurize", "train",
           "train_rows", "unresolved_features"]

FORMAT = "callscribe-linear-text/1"


class ModelError(CallscribeError):
    """A model file that is missing, malformed or of another format."""


def bundled_model_path(name: str) -> Path:
    return Path(__file__).parent / "packs" / f"{name}.model.json"


_ZH_NUM = "零〇一二三四五六七八九十百千万两幺"
_NUM_RUN = re.compile(rf"[0-9][0-9.,:]*|[{_ZH_NUM}]{{2,}}")
_EN_TOKEN = re.compile(r"[a-z][a-z']*|0|[$£€¥%?]")


def _shape(folded: str) -> str:
    """Numbers as a shape: an amount, a date or a phone number says 'a value here', not which value."""
    return _NUM_RUN.sub("0", folded)


def featurize(text: str) -> Counter[str]:
    """The n-gram counts of one utterance: Han character 1-3-grams (numbers as ``0``, so 58块 and 五十八块
    read alike), English word 1-3-grams with no stop list (``your`` and ``you've`` carry the meaning
    here) and the character 4-grams of English words, plus a question mark feature."""
    folded = _shape(fold(text))
    out: Counter[str] = Counter()
    run: list[str] = []

    def flush() -> None:
        padded = ["^", *run, "$"]
        n = len(padded)
        for i in range(n):
            if 0 < i < n - 1:
                out[padded[i]] += 1
            if i + 1 < n:
                out[padded[i] + padded[i + 1]] += 1
            if i + 2 < n:
                out[padded[i] + padded[i + 1] + padded[i + 2]] += 1
        run.clear()

    for ch in folded:
        if is_han(ch) or (ch == "0" and run):
            run.append(ch)
        elif run:
            flush()
    if run:
        flush()
    words = _EN_TOKEN.findall(folded)
    for w in words:  # character 4-grams of longer words: "charged" and "charges", "bolt-on" and "add-on"
        if len(w) >= 4:
            padded = f"<{w}>"
            for i in range(len(padded) - 3):
                out["c:" + padded[i:i + 4]] += 1
    for i, w in enumerate(words):
        out["w:" + w] += 1
        if i + 1 < len(words):
            out["b:" + w + " " + words[i + 1]] += 1
        if i + 2 < len(words):
            out["t:" + w + " " + words[i + 1] + " " + words[i + 2]] += 1
    if "?" in folded or "吗" in folded:
        out["?"] += 1
    return out


def _log_scaled(counts: Mapping[str, int]) -> dict[str, float]:
    """Sub-linear counts, L2-normalised: a long turn is not more confident for being long."""
    vec = {k: 1.0 + math.log(v) for k, v in counts.items()}
    norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
    return {k: v / norm for k, v in vec.items()}


def end_sentiment_features(last_customer_texts: Sequence[str], rule_label: str, unresolved: bool,
                           rule_score: float, flags: Iterable[str] = ()) -> dict[str, float]:
    """What the end-sentiment model reads: the rules' answer and score (keyword/sentiment.py), whether the call
    is left unresolved, and the n-grams of the customer's last two turns. Authors split on the same words
    ("没了，谢谢啊" after a fix: positive for one, neutral for another); a model trained on several authors'
    labels learns where they agree, which no hand-set threshold did (docs/analytics.md)."""
    text = " ".join(last_customer_texts[-2:])
    feats = {f"L:{k}": v for k, v in _log_scaled(featurize(text)).items()}
    feats[f"rule:{rule_label}"] = 1.0
    feats[f"unres:{bool(unresolved)}"] = 1.0
    feats["score"] = float(rule_score)
    for flag in flags:  # what else the call did: the agent insulted the customer, the customer escalated
        feats[f"flag:{flag}"] = 1.0
    return feats


def unresolved_features(customer_last: Sequence[str], agent_last: Sequence[str], rule_unresolved: bool) -> dict[str, float]:
    """What the unresolved-flag model reads: the rules' flag and the n-grams of the last two customer and agent
    turns (redacted, as stored). Trained on the rules' FIRST-RUN flags of six sets (tests/data/first_run: the
    flag each set got before anything was tuned on it), so it learns where the rules go wrong on an author they
    have not seen, not where they were fitted."""
    feats = {f"C:{k}": v for k, v in _log_scaled(featurize(" ".join(customer_last[-2:]))).items()}
    feats.update({f"A:{k}": v for k, v in _log_scaled(featurize(" ".join(agent_last[-2:]))).items()})
    feats[f"rule:{bool(rule_unresolved)}"] = 1.0
    return feats


@dataclass(frozen=True, slots=True)
class LinearTextModel:
    """A trained model: labels, a weight row per feature, the bias, and what it was trained on."""

    labels: tuple[str, ...]
    weights: Mapping[str, Sequence[float]]
    bias: Sequence[float]
    meta: Mapping[str, object]

    @classmethod
    def load(cls, path: str | Path) -> "LinearTextModel":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read model {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelError(f"{path} is not a {FORMAT} model")
        try:
            labels, weights, bias = tuple(data["labels"]), data["weights"], data["bias"]
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{path}: missing {exc}") from exc
        if any(len(w) != len(labels) for w in weights.values()) or len(bias) != len(labels):
            raise ModelError(f"{path}: weight rows do not match the {len(labels)} labels")
        return cls(labels, weights, tuple(bias), data.get("meta", {}))

    def save(self, path: str | Path) -> None:
        data = {
            "format": FORMAT, "labels": list(self.labels), "bias": [round(b, 5) for b in self.bias],
            "meta": dict(self.meta),
            "weights": {k: [round(x, 4) for x in w] for k, w in sorted(self.weights.items())},
        }
        Path(path).write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")

    def proba(self, text: str) -> dict[str, float]:
        return self.proba_features(_log_scaled(featurize(text)))

    def proba_features(self, features: Mapping[str, float]) -> dict[str, float]:
        z = list(self.bias)
        for feat, value in features.items():
            row = self.weights.get(feat)
            if row is not None:
                for j, w in enumerate(row):
                    z[j] += w * value
        top = max(z)
        exp = [math.exp(v - top) for v in z]
        total = sum(exp)
        return {label: e / total for label, e in zip(self.labels, exp)}


def train(texts: Sequence[str], labels: Sequence[str], *, l2: float = 3e-4, epochs: int = 300, lr: float = 0.05,
          meta: Mapping[str, object] | None = None) -> LinearTextModel:
    """Multinomial logistic regression over the n-grams of ``texts`` (see :func:`train_rows`)."""
    return train_rows([_log_scaled(featurize(t)) for t in texts], labels, l2=l2, epochs=epochs, lr=lr, meta=meta)


def train_rows(rows: Sequence[Mapping[str, float]], labels: Sequence[str], *, l2: float = 3e-4, epochs: int = 300,
               lr: float = 0.05, meta: Mapping[str, object] | None = None) -> LinearTextModel:
    """Multinomial logistic regression by full-batch Adam (deterministic: no sampling) over feature rows."""
    classes = tuple(sorted(set(labels)))
    vocab = sorted({f for r in rows for f in r})
    index = {f: i for i, f in enumerate(vocab)}
    row_ids, col_ids, vals = [], [], []
    for i, r in enumerate(rows):
        for f, v in r.items():
            row_ids.append(i)
            col_ids.append(index[f])
            vals.append(v)
    ri, ci, vv = np.array(row_ids, dtype=int), np.array(col_ids, dtype=int), np.array(vals, dtype=float)
    n, d, k = len(rows), len(vocab), len(classes)
    y = np.zeros((n, k))
    y[np.arange(n), [classes.index(label) for label in labels]] = 1.0
    W = np.zeros((d, k))
    b = np.zeros(k)
    m_w, v_w, m_b, v_b = np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, epochs + 1):
        z = np.zeros((n, k))
        np.add.at(z, ri, vv[:, None] * W[ci])
        z += b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - y) / n
        gW = np.zeros_like(W)
        np.add.at(gW, ci, vv[:, None] * g[ri])
        gW += l2 * W
        gb = g.sum(axis=0)
        for param, grad, m, v in ((W, gW, m_w, v_w), (b, gb, m_b, v_b)):
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            param -= lr * (m / (1 - beta1 ** step)) / (np.sqrt(v / (1 - beta2 ** step)) + eps)
    keep = np.abs(W).max(axis=1) >= 1e-3
    weights = {vocab[j]: tuple(float(x) for x in W[j]) for j in np.nonzero(keep)[0]}
    return LinearTextModel(classes, weights, tuple(float(x) for x in b), dict(meta or {}, samples=n))


def read_jsonl(paths: Iterable[str | Path]) -> list[dict]:
    out = []
    for path in paths:
        for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as exc:
                    raise ModelError(f"{path}:{line_no}: {exc}") from exc
    return out


def cross_validate(items: Sequence[dict], folds: int = 5, **kwargs) -> dict[str, dict[str, float]]:
    """Per-class precision and recall over ``folds`` interleaved folds (each utterance predicted by a model
    that did not see it)."""
    pred: list[str] = []
    gold: list[str] = []
    for f in range(folds):
        train_items = [it for i, it in enumerate(items) if i % folds != f]
        test_items = [it for i, it in enumerate(items) if i % folds == f]
        model = train([it["text"] for it in train_items], [it["label"] for it in train_items], **kwargs)
        for it in test_items:
            p = model.proba(it["text"])
            pred.append(max(p, key=p.get))
            gold.append(it["label"])
    report = {}
    for c in sorted(set(gold)):
        tp = sum(1 for g, p in zip(gold, pred) if g == p == c)
        n_pred = sum(1 for p in pred if p == c)
        n_gold = sum(1 for g in gold if g == c)
        report[c] = {"precision": tp / n_pred if n_pred else 1.0, "recall": tp / n_gold if n_gold else 1.0,
                     "n": n_gold}
    report["accuracy"] = {"value": sum(1 for g, p in zip(gold, pred) if g == p) / max(1, len(gold))}
    return report


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m callscribe.keyword.learned", description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="+", help="labelled JSONL files ({text, label} per line)")
    ap.add_argument("--out", help="write the trained model here (JSON)")
    ap.add_argument("--cv", type=int, default=5, help="cross-validation folds to report (0: none)")
    ap.add_argument("--l2", type=float, default=3e-4)
    ap.add_argument("--epochs", type=int, default=300)
    args = ap.parse_args(argv)
    items = read_jsonl(args.data)
    if args.cv:
        print(json.dumps(cross_validate(items, args.cv, l2=args.l2, epochs=args.epochs), indent=1))
    if args.out:
        sources = [Path(p).name for p in args.data]
        model = train([it["text"] for it in items], [it["label"] for it in items], l2=args.l2, epochs=args.epochs,
                      meta={"trained_on": sources, "l2": args.l2, "epochs": args.epochs})
        model.save(args.out)
        print(f"wrote {args.out}: {len(model.weights)} features, labels {model.labels}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
