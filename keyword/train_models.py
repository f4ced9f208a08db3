"""Rebuild the bundled learned models from the labelled data in tests/data (a developer's tool, not run time).

``python -m callscribe.keyword.train_models [--check]``:

* ``packs/agent-turns.model.json``: agent turns -> disclosure / verification / other, from the utterances of
  tests/data/utterances (two authors who never saw the rules);
* ``packs/unresolved.model.json``: the call's unresolved flag, stacked over the rules' flag and the last two
  customer and agent turns, trained on the rules' first-run flags (tests/data/first_run: each set analysed with
  the code of the commit that added it, before anything was tuned on it) against the sets' labels;
* ``packs/end-sentiment.model.json``: the customer's sentiment at the end of a call, stacked over the rules'
  answer, the unresolved flag and the customer's last two turns, from the labelled dialogue sets that carry
  ``end_sentiment`` and are tuned on (never ``holdout``). ``--check`` prints the leave-one-set-out accuracy
  (each set predicted by a model trained on the others) beside the rules' own, the number that decided it is
  used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .analyzer import Analytics, AnalyticsSettings
from .dialogue import analyze_paths
from .learned import bundled_model_path, end_sentiment_features, read_jsonl, train, train_rows, unresolved_features

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
SENTIMENT_SETS = ("dialogues_tune", "dialogues_tune2", "dialogues_tune3", "dialogues_tune4", "dialogues_tune5")
UTTERANCES = ("agent_zh.jsonl", "agent_en.jsonl")
END_L2 = 1e-3
UNRESOLVED_L2 = 1e-5  # leave-one-set-out over 1e-3 .. 3e-6: weaker regularisation lets the last words count


def unresolved_rows(path: Path) -> list[tuple[dict[str, float], str, bool]]:
    """(features, label, the rules' first-run flag) per call of one first-run file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    labels = json.loads((DATA / data["set"] / "labels.json").read_text(encoding="utf-8"))
    return [(unresolved_features(c["customer"], c["agent"], c["unresolved"]), str(bool(labels[cid]["unresolved"])),
             c["unresolved"]) for cid, c in data["calls"].items() if cid in labels]


def _f1(pairs: list[tuple[bool, bool]]) -> float:
    tp = sum(p and g for p, g in pairs)
    fp = sum(p and not g for p, g in pairs)
    fn = sum(g and not p for p, g in pairs)
    precision, recall = (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def sentiment_rows(name: str, analytics: Analytics) -> list[tuple[dict[str, float], str, str]]:
    """(features, label, the rules' answer) per labelled call of one set."""
    folder = DATA / name
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    out = []
    for r in analyze_paths(analytics, sorted(folder.glob("*.txt")))["calls"]:
        label = labels.get(r["call_id"], {}).get("end_sentiment")
        if not label:
            continue
        texts = [u["text"] for u in r["utterances"] if u["channel"] == "customer"]
        s = r["sentiment"]
        feats = end_sentiment_features(texts, s["end"], r["unresolved"], s.get("end_score", 0.0), s.get("flags", ()))
        out.append((feats, label, s["end"]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m callscribe.keyword.train_models", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="print leave-one-set-out accuracy, write nothing")
    args = ap.parse_args(argv)
    first_runs = {p.stem: unresolved_rows(p) for p in sorted((DATA / "first_run").glob("*.json"))}
    rules_only = Analytics(AnalyticsSettings(end_sentiment_model=False, unresolved_model=False))
    data = {name: sentiment_rows(name, rules_only) for name in SENTIMENT_SETS if (DATA / name / "labels.json").exists()}
    if args.check:
        right_rules = right_model = total = 0
        for held in data:
            rows = [x for name, xs in data.items() if name != held for x in xs]
            model = train_rows([x[0] for x in rows], [x[1] for x in rows], l2=END_L2)
            test = data[held]
            ok_rules = sum(x[2] == x[1] for x in test)
            ok_model = sum(max((p := model.proba_features(x[0])), key=p.get) == x[1] for x in test)
            right_rules, right_model, total = right_rules + ok_rules, right_model + ok_model, total + len(test)
            print(f"{held}: rules {ok_rules / len(test):.3f}  model {ok_model / len(test):.3f}  (n={len(test)})")
        print(f"all: rules {right_rules / total:.3f}  model {right_model / total:.3f}  (n={total})")
        every_rule, every_model = [], []
        for held in first_runs:
            rows = [x for name, xs in first_runs.items() if name != held for x in xs]
            model = train_rows([x[0] for x in rows], [x[1] for x in rows], l2=UNRESOLVED_L2)
            test = first_runs[held]
            by_rule = [(x[2], x[1] == "True") for x in test]
            by_model = [(max((p := model.proba_features(x[0])), key=p.get) == "True", x[1] == "True") for x in test]
            every_rule, every_model = every_rule + by_rule, every_model + by_model
            print(f"unresolved, {held}: first-run rules F1 {_f1(by_rule):.3f}  model {_f1(by_model):.3f}  (n={len(test)})")
        print(f"unresolved, all: first-run rules F1 {_f1(every_rule):.3f}  model {_f1(every_model):.3f}")
        return 0
    rows = [x for xs in data.values() for x in xs]
    end = train_rows([x[0] for x in rows], [x[1] for x in rows], l2=END_L2,
                     meta={"trained_on": sorted(data), "l2": END_L2})
    end.save(bundled_model_path("end-sentiment"))
    rows_u = [x for xs in first_runs.values() for x in xs]
    unresolved = train_rows([x[0] for x in rows_u], [x[1] for x in rows_u], l2=UNRESOLVED_L2,
                            meta={"trained_on": sorted(first_runs), "l2": UNRESOLVED_L2})
    unresolved.save(bundled_model_path("unresolved"))
    items = read_jsonl(DATA / "utterances" / f for f in UTTERANCES)
    turns = train([it["text"] for it in items], [it["label"] for it in items],
                  meta={"trained_on": list(UTTERANCES), "l2": 3e-4, "epochs": 300})
    turns.save(bundled_model_path("agent-turns"))
    print(f"wrote {bundled_model_path('end-sentiment')} ({len(rows)} calls), {bundled_model_path('unresolved')} "
          f"({len(rows_u)} first-run calls) and {bundled_model_path('agent-turns')} "
          f"({len(items)} utterances)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
