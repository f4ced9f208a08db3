"""Final to card: how long after a final is published the agent-assist card it causes is in Redis.

Workload: ``--calls`` concurrent calls replaying the labelled dialogues under tests/data, each final published
live (its ``emitted_at_ms`` stamped at publish time) with the dialogue's own gaps divided by ``--speed``,
through the real publisher into an embedded Redis, where the real AnalyticsWorker (rules, intent, sentiment
and the AssistSession beside each call) reads the global finals stream and writes its cards write-once to
``{prefix}:assist`` and the call's stream. Each card carries ``trigger_at_ms`` (the emitted time of the final
that caused it) and ``emitted_at_ms`` (when the worker made it); the latency measured here is from the
final's publication to the card's entry id in Redis (the time Redis accepted it), which is what a page
following the call's stream waits for. The supervisor alerts of the same run are measured the same way, as
the reference the issue compares against (alerts: within 1 s).

Run: ``python -m benchmarks.assist_latency [--calls 50] [--speed 5]``. Output: JSON in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from callscribe.config import Config
from callscribe.events import CallEnded, CallStarted, Transcript, from_fields
from callscribe.keyword.dialogue import read_dialogue, to_events
from callscribe.keyword.worker import AnalyticsWorker
from callscribe.stream import EmbeddedRedis, RedisPublisher, keys

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
RESULTS = Path(__file__).parent / "results"
DIALOGUE_SETS = ("dialogues", "dialogues_dev", "dialogues_tune", "dialogues_tune2")  # never the hold-out


def dialogues() -> list:
    files = sorted(p for name in DIALOGUE_SETS for p in (DATA / name).glob("*.txt"))
    return [read_dialogue(f) for f in files]


async def play_call(pub: RedisPublisher, d, call_id: str, speed: float, offset_s: float) -> int:
    await asyncio.sleep(offset_s)
    started, finals, ended = to_events(d)
    await pub.publish(CallStarted(call_id, started.channels, started.language, metadata=started.metadata))
    t0 = time.monotonic()
    for t in finals:
        due = t0 + t.end_ms / 1000 / speed
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await pub.publish(Transcript(call_id, t.channel, f"{call_id}/{t.segment_id.split('/', 1)[1]}", 0, True, t.text,
                                     t.start_ms, t.end_ms, t.language, 1.0))  # emitted_at_ms: now
    await pub.publish(CallEnded(call_id, ended.duration_ms, "hangup", len(finals)))
    return len(finals)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = sorted(values)
    q = statistics.quantiles(v, n=100, method="inclusive") if len(v) > 1 else [v[0]] * 99
    return {"n": len(v), "p50_ms": round(q[49], 1), "p95_ms": round(q[94], 1), "p99_ms": round(q[98], 1),
            "max_ms": round(v[-1], 1)}


async def run(calls: int, speed: float) -> dict:
    ds = dialogues()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp))
        server.start()
        try:
            cfg = Config(redis_url=server.url, data_dir=tmp, key_prefix="benchassist", surge_min_calls=10_000)
            worker = AnalyticsWorker(cfg, server.url, consumer="bench")
            await worker.start()
            pub = RedisPublisher(cfg, server.url)
            await pub.start()
            t0 = time.perf_counter()
            n_finals = sum(await asyncio.gather(*(
                play_call(pub, ds[i % len(ds)], f"ba-{i}", speed, offset_s=(i % 10) * 0.3) for i in range(calls))))
            await pub.flush(60)
            ok = await worker.drain(120)
            wall = time.perf_counter() - t0
            await worker.stop()
            await pub.stop()
            import redis.asyncio as aioredis

            r = aioredis.from_url(server.url, decode_responses=True)
            assist = await r.xrange(keys.assist_stream(cfg))
            alerts = await r.xrange(keys.alerts_stream(cfg))
            await r.aclose()
        finally:
            server.stop()
    by_kind: dict[str, list[float]] = {}
    scenario_at: dict[str, int] = {}  # call -> when its first scenario card landed
    retro = 0
    for entry_id, fields in assist:
        e = from_fields(fields)
        landed = int(entry_id.split("-")[0])
        if e.TYPE == "assist_scenario":
            scenario_at.setdefault(e.call_id, landed)
        trigger = getattr(e, "trigger_at_ms", 0)
        if not trigger:
            continue
        if e.TYPE == "assist_step_done" and trigger < scenario_at.get(e.call_id, 0):
            # a step the transcript showed before the intent (and so the scenario) was known: it is ticked
            # when the scenario card arrives, so its wait is the scenario card's, counted there
            retro += 1
            continue
        by_kind.setdefault(e.TYPE, []).append(landed - trigger)
    alert_lat = []
    for entry_id, fields in alerts:
        e = from_fields(fields)
        if getattr(e, "trigger_at_ms", 0) and e.TYPE == "alert":
            alert_lat.append(int(entry_id.split("-")[0]) - e.trigger_at_ms)
    return {
        "drained": ok, "calls": calls, "finals": n_finals, "speed": speed, "wall_s": round(wall, 1),
        "finals_per_s": round(n_finals / wall, 1),
        "final_to_card": {kind: percentiles(v) for kind, v in sorted(by_kind.items())},
        "final_to_card_all": percentiles([x for v in by_kind.values() for x in v]),
        "final_to_alert": percentiles(alert_lat),
        "steps_ticked_with_the_scenario_card": retro,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=50, help="concurrent calls")
    ap.add_argument("--speed", type=float, default=5.0, help="dialogue time divided by this (5 = five times real time)")
    args = ap.parse_args()
    result = {
        "benchmark": "assist_latency",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": f"python -m benchmarks.assist_latency --calls {args.calls} --speed {args.speed}",
        **asyncio.run(run(args.calls, args.speed)),
    }
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"assist-latency-{dt.datetime.now():%Y%m%d-%H%M}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
