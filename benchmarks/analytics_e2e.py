"""Audio to alert, measured: every labelled dialogue set through ``callscribe analyze`` as text and as call audio.

For each set under tests/data with a ``labels.json`` (``dialogues``, ``dialogues_dev``, ``dialogues_check``,
``dialogues_tune``, ``holdout``):

* **text**: the dialogue files through the analyzer (what `callscribe analyze DIR` does);
* **audio**: where ``tests/data/<set>_audio/`` holds synthesized two-leg 8 kHz calls of (some of) its dialogues
  (``callscribe synth``), those recordings through the real streaming pipeline (VAD, cross-call batches,
  whisper-base int8 on the CPU) and the same analyzer, with ``--jobs`` calls at once; scored against the same
  labels, side by side with the text run *on the same calls*, so "audio minus text" is what ASR costs;
* **speed**: audio seconds per wall second of the audio run (x real time), model load included.

Metrics per run: alert precision/recall (overall and per category), intent top-1, unresolved F1, end sentiment,
PII masked. Audio results are kept in ``benchmarks/results/e2e-cache/<set>/`` (one JSON per call), so a rerun
resumes instead of transcribing again (``--fresh`` starts over).

Run: ``python -m benchmarks.analytics_e2e [--sets holdout dialogues_tune] [--jobs 4] [--fresh]``.
Output: ``benchmarks/results/analytics-e2e-<date>.json`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import time
from pathlib import Path

from callscribe.batch import AUDIO_SUFFIXES, analyze_inputs, discover
from callscribe.config import Config
from callscribe.keyword.analyzer import Analytics
from callscribe.keyword.evaluate import score

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
RESULTS = ROOT / "benchmarks" / "results"
KEYS = ("alert_precision", "alert_recall", "intent_accuracy", "unresolved_f1", "sentiment_accuracy", "pii_masked")


def labelled_sets() -> list[str]:
    return [d.name for d in sorted(DATA.iterdir()) if d.is_dir() and (d / "labels.json").exists()]


def _metrics(s: dict) -> dict:
    return {**{k: s.get(k) for k in KEYS}, "calls": s["calls"],
            "by_category": {c: v for c, v in s["alerts_by_category"].items() if v["expected"]}}


def reanalyze(analytics: Analytics, calls: list[dict]) -> list[dict]:
    """The cached calls' transcripts (what ASR heard, redacted as the live analyzer reads them) through the
    current analyzer: measures an analyzer change on audio without transcribing again."""
    from callscribe.events import CallEnded, CallStarted, Transcript
    from callscribe.keyword.dialogue import analyze_call
    out = []
    for c in sorted(calls, key=lambda c: c["started_at_ms"]):
        started = CallStarted(c["call_id"], ("customer", "agent"), c.get("language") or "auto", 8000, "pcm16", {},
                              started_at_ms=c["started_at_ms"])
        finals = [Transcript(c["call_id"], u["channel"], f"{c['call_id']}/{u['channel']}/{i}", 1, True, u["text"],
                             u["start_ms"], u["end_ms"], c.get("language") or "", -0.2)
                  for i, u in enumerate(c["utterances"])]
        ended = CallEnded(c["call_id"], c["duration_ms"], "eof", finals=len(finals),
                          ended_at_ms=c["started_at_ms"] + c["duration_ms"])
        out.append(analyze_call(analytics, started, finals, ended))  # callers are not in the cache: no repeats
    return out


async def run_set(name: str, analytics: Analytics, cfg: Config, jobs: int, fresh: bool, again: bool = False) -> dict:
    labels = json.loads((DATA / name / "labels.json").read_text(encoding="utf-8"))
    text = await analyze_inputs(discover([DATA / name]), analytics, cfg)
    out: dict = {"set": name, "text": _metrics(score(text.calls, labels))}
    audio_dir = DATA / f"{name}_audio"
    recordings = [p for p in sorted(audio_dir.glob("*")) if p.suffix.lower() in AUDIO_SUFFIXES] if audio_dir.is_dir() else []
    if not recordings:
        return out
    ids = {p.stem for p in recordings}
    cache = RESULTS / "e2e-cache" / name
    if fresh and cache.exists():
        shutil.rmtree(cache)
    t0 = time.monotonic()
    audio = await analyze_inputs(discover(recordings), analytics, cfg, out_dir=cache, jobs=jobs)
    wall = time.monotonic() - t0
    subset = {k: v for k, v in labels.items() if k in ids}
    same_text = [c for c in text.calls if c["call_id"] in ids]
    out["text_same_calls"] = _metrics(score(same_text, subset))
    calls = reanalyze(analytics, audio.calls) if again else audio.calls
    out["audio"] = _metrics(score(calls, subset))
    out["audio"]["reanalyzed_from_cache"] = again
    out["audio"]["failed"] = audio.summary["failed"]
    out["asr_cost"] = {k: (round(out["audio"][k] - out["text_same_calls"][k], 4)
                           if out["audio"][k] is not None and out["text_same_calls"][k] is not None else None) for k in KEYS}
    out["speed"] = {"audio_s": audio.summary["audio_s"], "transcribed_now_s": audio.summary["audio_s_transcribed_now"],
                    "wall_s": round(wall, 1), "x_real_time": audio.summary["x_real_time"], "jobs": jobs,
                    "resumed_calls": audio.summary["resumed"]}
    return out


def _row(label: str, m: dict) -> str:
    cells = [f"{m[k]:.2f}" if isinstance(m.get(k), float) else ("-" if m.get(k) is None else str(m[k])) for k in KEYS]
    return f"| {label} | {m['calls']} | " + " | ".join(cells) + " |"


def table(results: list[dict]) -> str:
    lines = ["| set, run | calls | alert P | alert R | intent | unresolved F1 | end sentiment | PII masked |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(_row(f"{r['set']}, text", r["text"]))
        if "audio" in r:
            lines.append(_row(f"{r['set']}, text (the calls with audio)", r["text_same_calls"]))
            sp = r["speed"]
            speed = f", {sp['x_real_time']}x real time" if sp.get("x_real_time") else ""
            lines.append(_row(f"{r['set']}, audio{speed}", r["audio"]))
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict:
    cfg = Config.load(None, partials=False)
    analytics = Analytics()
    results = [await run_set(name, analytics, cfg, args.jobs, args.fresh, args.reanalyze)
               for name in (args.sets or labelled_sets())]
    return {
        "benchmark": "analytics_e2e",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "model": f"whisper-{cfg.model} device={cfg.device} compute_type={cfg.compute_type} (auto: CPU int8 without a GPU)",
        "results": results,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", nargs="*", help="labelled sets (default: every tests/data/*/labels.json)")
    p.add_argument("--jobs", type=int, default=4, help="recordings transcribed at once (default 4)")
    p.add_argument("--fresh", action="store_true", help="transcribe again instead of resuming from the cache")
    p.add_argument("--reanalyze", action="store_true",
                   help="run the current analyzer over the cached transcripts (an analyzer change, same ASR)")
    args = p.parse_args()
    report = asyncio.run(main_async(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"analytics-e2e-{dt.datetime.now():%Y%m%d-%H%M}.json"
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    print(table(report["results"]))
    print(f"\n{out}")


if __name__ == "__main__":
    main()
