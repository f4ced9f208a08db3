"""Analytics throughput: finals analysed per second on one core, ours against a naive baseline, and the
live worker end to end through Redis.

Workload: the labelled dialogues under tests/data (zh and en, 4-30 turns) replayed as ``--calls`` live
calls whose finals are interleaved round-robin, as a worker sees them from the global finals stream.

* **ours**: ``CallAnalyzer.on_final`` per final and ``on_end`` per call: every rule of both packs
  (one Aho-Corasick pass + pinyin pass + a few patterns), negation and context checks, compliance,
  silence/overtalk timing, the unresolved state, the incremental intent update, quotes redacted when used.
* **baseline** (same run, same finals): what a straightforward implementation does: each rule phrase
  checked with its own ``in`` / regex over the folded text, and the intent re-scored from the whole call
  text so far on every final.
* **worker** (``--redis``): the real AnalyticsWorker on an embedded Redis: finals published to the global
  stream, then timed from the worker's start until the consumer group has acknowledged everything (reads,
  analysis, write-once output scripts, acks). This includes Redis's own CPU on the same machine.

Run: ``python -m benchmarks.analytics [--calls 2000] [--redis]``. Output: JSON in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path

from callscribe.events import CallEnded, CallStarted, Transcript
from callscribe.keyword.analyzer import Analytics
from callscribe.keyword.dialogue import read_dialogue, to_events
from callscribe.keyword.intent import CallIntent
from callscribe.keyword.normalize import fold

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
RESULTS = Path(__file__).parent / "results"


def workload(n_calls: int) -> tuple[list[CallStarted], list[Transcript], list[CallEnded]]:
    files = sorted(p for d in DATA.glob("dialogues*") for p in d.glob("*.txt") if p.name != "README.md")
    dialogues = [read_dialogue(f) for f in files]
    starts, per_call, ends = [], [], []
    for i in range(n_calls):
        d = dialogues[i % len(dialogues)]
        started, finals, ended = to_events(d)
        cid = f"bench-{i}"
        starts.append(CallStarted(cid, started.channels, started.language, metadata=started.metadata, started_at_ms=started.started_at_ms))
        per_call.append([Transcript(cid, t.channel, f"{cid}/{t.segment_id.split('/', 1)[1]}", 0, True, t.text, t.start_ms,
                                    t.end_ms, t.language, 1.0, emitted_at_ms=t.emitted_at_ms) for t in finals])
        ends.append(CallEnded(cid, ended.duration_ms, "hangup", len(finals)))
    interleaved = [p[k] for k in range(max(len(p) for p in per_call)) for p in per_call if k < len(p)]
    return starts, interleaved, ends


def run_ours(a: Analytics, starts, finals, ends) -> tuple[float, int]:
    t0 = time.process_time()
    calls = {s.call_id: a.call(s) for s in starts}
    outputs = 0
    for t in finals:
        outputs += len(calls[t.call_id].on_final(t))
    for e in ends:
        outputs += len(calls[e.call_id].on_end(e))
    return time.process_time() - t0, outputs


def run_baseline(a: Analytics, starts, finals) -> float:
    rules = [(r, [re.compile(re.escape(p)) for p in r.phrases] + list(r.patterns)) for r in a.matcher.rules]
    texts: dict[str, list[str]] = {s.call_id: [] for s in starts}
    t0 = time.process_time()
    for t in finals:
        folded = fold(t.text)
        for rule, pats in rules:
            if rule.channel not in ("any", t.channel):
                continue
            for p in pats:
                if p.search(folded):
                    break
        texts[t.call_id].append(t.text)
        ci = CallIntent(a.classifier)  # from scratch over the whole call so far
        for i, text in enumerate(texts[t.call_id]):
            ci.add(text, 1 / (1 + 0.25 * i))
        ci.best()
    return time.process_time() - t0


async def run_worker(starts, finals, ends) -> dict:
    from callscribe.config import Config
    from callscribe.keyword.worker import AnalyticsWorker
    from callscribe.stream import EmbeddedRedis, RedisPublisher

    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp))
        server.start()
        try:
            cfg = Config(redis_url=server.url, key_prefix="bench")
            pub = RedisPublisher(cfg, server.url)
            await pub.start()
            for e in [*starts, *finals, *ends]:
                await pub.publish(e)
            await pub.flush(120)
            await pub.stop()
            worker = AnalyticsWorker(cfg, server.url, consumer="bench")
            t0, c0 = time.perf_counter(), time.process_time()
            await worker.start()
            ok = await worker.drain(600)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            stats = worker.stats
            await worker.stop()
        finally:
            server.stop()
    entries = len(starts) + len(finals) + len(ends)
    return {"drained": ok, "entries": entries, "finals": len(finals), "wall_s": round(wall, 3),
            "worker_cpu_s": round(cpu, 3), "finals_per_s_wall": round(len(finals) / wall, 1),
            "finals_per_worker_cpu_s": round(len(finals) / cpu, 1), "outputs_written": stats.outputs_written}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--redis", action="store_true", help="also time the live worker through an embedded Redis")
    args = ap.parse_args()
    a = Analytics()
    starts, finals, ends = workload(args.calls)
    run_ours(a, starts[:50], [f for f in finals if f.call_id in {s.call_id for s in starts[:50]}], ends[:50])  # warm caches
    ours_s, outputs = run_ours(a, starts, finals, ends)
    base_s = run_baseline(a, starts, finals)
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": f"python -m benchmarks.analytics --calls {args.calls}" + (" --redis" if args.redis else ""),
        "calls": args.calls, "finals": len(finals),
        "ours": {"cpu_s": round(ours_s, 3), "finals_per_s_per_core": round(len(finals) / ours_s, 1), "outputs": outputs},
        "baseline": {"cpu_s": round(base_s, 3), "finals_per_s_per_core": round(len(finals) / base_s, 1)},
        "speedup_vs_baseline": round(base_s / ours_s, 2),
    }
    if args.redis:
        result["worker"] = asyncio.run(run_worker(starts, finals, ends))
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"analytics-{dt.datetime.now():%Y%m%d-%H%M}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
