"""Load benchmark: N concurrent two-channel calls through the real pipeline, in real time.

    python -m benchmarks.load --quick              # 2 CPU cores, a few minutes
    python -m benchmarks.load --calls 50,100,200,400,800,1000 --duration 60   # a GPU

For each N it streams N calls (real speech, turn-taking, see benchmarks/calls.py) through VAD -> the
batch scheduler -> the Redis publisher (a real embedded Redis) on one shared clock, and measures:
final latency (end of speech, from Silero timestamps of the clip, -> final acknowledged by Redis) p50/p95/p99,
partial cadence (intervals between a channel's partials during a turn), partials skipped/dropped, finals
lost (emitted but not in Redis: must be 0), decoded windows/s, batch sizes, CPU use, and accuracy.

The same run measures two references on the same audio and hardware:
- baseline: per-call faster-whisper ``transcribe`` per segment, no cross-call batching (benchmarks/baseline.py);
- ceiling: raw CTranslate2 encode + greedy generate on full batches of the same segments (windows/s).

Max sustained calls = the largest N with p95 final latency <= 1.0 s and median partial interval <= 1.0 s.
Results: benchmarks/results/load-<stamp>.json and PNG plots next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from callscribe.config import Config
from callscribe.events import Event, Transcript
from callscribe.pipeline import Pipeline
from callscribe.scoring import error_rate
from callscribe.stream import EmbeddedRedis, RedisPublisher

from .calls import RATE, Call, build_call

RESULTS = Path(__file__).resolve().parent / "results"
CHUNK_S = 0.1
P95_LIMIT_S = 1.0
PARTIAL_LIMIT_S = 1.0


@dataclass
class LevelResult:
    mode: str
    calls: int
    duration_s: float
    turns: int
    finals_emitted: int
    finals_in_redis: int
    finals_lost: int
    turns_without_final: int
    latency_p50_s: float
    latency_p95_s: float
    latency_p99_s: float
    decode_latency_p95_s: float
    partial_interval_median_s: float
    partial_interval_p95_s: float
    first_partial_median_s: float
    partials_emitted: int
    partials_skipped: int
    partials_dropped: int
    windows_per_s: float
    batches: int
    mean_batch: float
    batch_sizes: dict[int, int]
    cpu_util: float
    lag_s: float
    error_rate: dict[str, float] = field(default_factory=dict)
    cpu_per_channel_pct: float = float("nan")
    """CPU of the process(es) that ran the calls per channel-second of call audio, in % of one core: CPU seconds /
    (2 * calls * duration_s) * 100, so waiting for a backlog of finals after the audio ends does not dilute it.
    With --workers that is the ingest side alone: VAD, Silero, ordering, partial/final jobs, publishing."""

    @property
    def sustained(self) -> bool:
        return bool(
            self.finals_lost == 0
            and self.latency_p95_s <= P95_LIMIT_S
            and self.partial_interval_median_s <= PARTIAL_LIMIT_S
            and self.lag_s < 1.0
        )


NAMES = ("customer", "agent")


def turn_finals(call: Call, turn, finals: list[Transcript]) -> list[Transcript]:
    """The finals of ``call`` that belong to ``turn`` (its channel, inside its time span), in time order."""
    lo, hi = turn.start_s * 1000 - 300, turn.end_s * 1000 + 300
    ch = NAMES[turn.channel]
    return sorted((e for e in finals if e.call_id == call.call_id and e.channel == ch and lo <= e.start_ms and e.end_ms <= hi + 700),
                  key=lambda e: e.start_ms)


def score(calls: list[Call], finals: list[Transcript]) -> dict[str, float]:
    """WER/CER per language of the finals against the turns' reference transcripts."""
    hyp: dict[str, list[str]] = {}
    ref: dict[str, list[str]] = {}
    for c in calls:
        for turn in c.turns:
            if turn.speech_end_s > c.duration_s:
                continue
            ref.setdefault(c.language, []).append(turn.clip.reference)
            hyp.setdefault(c.language, []).append(" ".join(e.text for e in turn_finals(c, turn, finals)))
    return {lang: round(error_rate(("" if lang == "zh" else " ").join(ref[lang]), ("" if lang == "zh" else " ").join(hyp[lang]), lang), 4)
            for lang in hyp}


async def one_call_each(engine, cfg: Config, calls: list[Call]) -> dict[str, float]:
    """The same calls decoded one at a time (as fast as possible, same pipeline and config): the no-load
    accuracy to compare the at-load accuracy with, on the same audio."""
    from callscribe.filerun import run_call

    finals: list[Transcript] = []
    for c in calls:
        pipeline = Pipeline(cfg.replace(partials=False), engine)
        await pipeline.start()
        await run_call(pipeline, list(c.channels), NAMES, call_id=c.call_id, language=c.language,
                       listener=lambda e: finals.append(e) if isinstance(e, Transcript) and e.is_final and e.text else None)
        await pipeline.stop()
    return score(calls, finals)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run_level(mode: str, engine, cfg: Config, calls: list[Call], redis_url: str, speed: float = 1.0,
                    remote: bool = False, t0_wall: float | None = None, summarize_here: bool = True,
                    run_tag: str | None = None):
    """Stream ``calls`` concurrently in real time through a fresh pipeline; measure everything.

    ``remote``: decode on `callscribe worker` processes (started by the caller) instead of ``engine``.
    ``t0_wall``: start the audio at this epoch time (several ingest processes share one clock).
    ``summarize_here`` False: return the raw measurements (a dict) for the caller to merge."""
    stamp = run_tag or str(int(time.time() * 1000) % 10**9)
    if remote:  # workers listen on the shared prefix: keep it, make the call ids unique instead
        calls = tag_calls(calls, stamp)
    else:
        cfg = cfg.replace(key_prefix=f"bench{stamp}")
    publisher = RedisPublisher(cfg, redis_url)
    written_events: list[tuple[float, Transcript]] = []
    emitted_finals: list[Transcript] = []

    def on_written(event: Event) -> None:
        if isinstance(event, Transcript):
            written_events.append((time.monotonic(), event))

    publisher.on_written = on_written
    await publisher.start()
    scheduler = None
    if remote:
        from callscribe.asr.remote import RemoteScheduler

        scheduler = RemoteScheduler(cfg, redis_url)
    pipeline = Pipeline(cfg, engine, publisher, scheduler)
    await pipeline.start()

    def listener(event: Event) -> None:
        if isinstance(event, Transcript) and event.is_final and event.text:
            emitted_finals.append(event)

    from callscribe.events import CallStarted

    sessions = [
        await pipeline.open_call(CallStarted(c.call_id, ("customer", "agent"), c.language, RATE, "pcm16", {}), listener)
        for c in calls
    ]
    chunk = int(RATE * CHUNK_S)
    total = max(c.channels[0].size for c in calls)
    cpu0, t_wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    t0 = time.monotonic() + (0.2 if t0_wall is None else t0_wall - time.time())
    lag = 0.0
    for k, pos in enumerate(range(0, total, chunk)):
        due = t0 + (k + 1) * CHUNK_S / speed  # audio up to pos+chunk exists at this instant
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag = max(lag, -delay)
        for s, c in zip(sessions, calls):
            for ch in (0, 1):
                part = c.channels[ch][pos : pos + chunk]
                if part.size:
                    await s.push(ch, part)
    await asyncio.gather(*(s.end("hangup") for s in sessions))
    await publisher.flush(60)
    wall = time.monotonic() - t_wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    stats = pipeline.scheduler.stats
    await pipeline.stop()
    pstats = publisher.stats
    await publisher.stop()

    # --- measurements ----------------------------------------------------------------------------
    mono_minus_wall = time.monotonic() - time.time()  # converts epoch (speech_end_at_ms) to this clock
    finals_redis = [(t, e) for t, e in written_events if e.is_final and e.text]
    partials_redis = [(t, e) for t, e in written_events if not e.is_final]
    latencies, decode_lat, intervals, first_partial = [], [], [], []
    turns_without = 0
    finals_only = [e for _, e in finals_redis]
    written_at = {id(e): t for t, e in finals_redis}
    for c in calls:
        for turn in c.turns:
            if turn.speech_end_s > c.duration_s:
                continue
            fin = turn_finals(c, turn, finals_only)
            if not fin:
                turns_without += 1
                continue
            speech_end_wall = t0 + turn.speech_end_s / speed
            latencies.append(max(written_at[id(e)] for e in fin) - speech_end_wall)
            decode_lat += [written_at[id(e)] - (e.speech_end_at_ms / 1000 + mono_minus_wall) for e in fin]
            lo, hi = turn.start_s * 1000 - 300, turn.end_s * 1000 + 300
            ch = NAMES[turn.channel]
            par = sorted(t for t, e in partials_redis if e.call_id == c.call_id and e.channel == ch and lo <= e.start_ms <= hi)
            if turn.speech_end_s - turn.speech_start_s >= 2.0:
                if par:
                    first_partial.append(par[0] - (t0 + turn.speech_start_s / speed))
                    intervals += [float(x) for x in np.diff(par)]
                else:
                    intervals.append(turn.speech_end_s - turn.speech_start_s)  # a long turn with no partial at all
    raw = {
        "calls": len(calls), "duration_s": round(total / RATE, 1), "turns": sum(len(c.turns) for c in calls),
        "latencies": latencies, "decode_lat": decode_lat, "intervals": intervals, "first_partial": first_partial,
        "turns_without": turns_without, "finals_emitted": len(emitted_finals), "finals_in_redis": len(finals_redis),
        "finals_lost": len({e.segment_id for e in emitted_finals} - {e.segment_id for _, e in finals_redis}),
        "finals": [[e.call_id, e.channel, e.start_ms, e.end_ms, e.text] for e in finals_only],
        "partials_emitted": len(partials_redis), "partials_skipped": stats.partials_skipped,
        "partials_dropped": pstats.partials_dropped, "decoded": stats.finals_decoded + stats.partials_decoded,
        "batches": stats.batches, "batch_sizes": dict(stats.batch_sizes), "cpu_s": cpu_s, "wall": wall, "lag": lag,
    }
    return summarize(mode, calls, [raw]) if summarize_here else raw


def tag_calls(calls: list[Call], tag: str) -> list[Call]:
    import dataclasses

    return [dataclasses.replace(c, call_id=f"{c.call_id}-{tag}") for c in calls]


async def run_level_multi(args: argparse.Namespace, n: int, cfg: Config, languages: list[str], redis_url: str) -> LevelResult:
    """One level driven by ``args.ingest_procs`` processes, each streaming its share of the N calls through
    its own pipeline to the shared workers, on one clock; their raw measurements are merged."""
    tag = str(int(time.time() * 1000) % 10**9)
    t0_wall = time.time() + 8.0  # time for the children to start and build their calls
    k = args.ingest_procs
    argv = ["--model", args.model, "--model-dir", args.model_dir, "--device", args.device, "--compute-type", args.compute_type,
            "--beam-size", str(args.beam_size), "--final-window", args.final_window, "--max-batch", str(args.max_batch),
            "--cpu-threads", str(args.cpu_threads), "--languages", ",".join(args.languages), "--duration", str(args.duration)]
    argv += ["--words"] if args.words else []
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.load", *argv, "--child", f"{n}:{i}:{k}:{t0_wall}:{tag}:{redis_url}",
            stdout=asyncio.subprocess.PIPE)
        for i in range(k)
    ]
    raws = []
    for child in children:
        out, _ = await child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"ingest process failed ({child.returncode})")
        raws.append(json.loads(out.decode().strip().splitlines()[-1]))
    calls = tag_calls(make_calls(n, args.duration, languages), tag)
    return summarize("ours", calls, raws)


async def child_main(args: argparse.Namespace) -> int:
    import signal

    # kill -USR1 <pid> prints where every task of this ingest process waits (a run that does not end)
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGUSR1, lambda: [t.print_stack(file=sys.stderr) for t in asyncio.all_tasks()])
    n, i, k, t0_wall, tag, redis_url = args.child.split(":", 5)
    cfg = build_config(args).replace(key_prefix="benchw")
    languages = [lang for lang in args.languages if lang == "en" or not cfg.model.endswith(".en")]
    calls = make_calls(int(n), args.duration, languages)[int(i) :: int(k)]
    profile_to = os.environ.get("LOAD_PROFILE_DIR")  # a folder: each ingest process writes its cProfile (CPU time) there
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # the event loop thread (VAD rounds off it are not in it)
        profiler.enable()
    raw = await run_level("ours", None, cfg, calls, redis_url, remote=True, t0_wall=float(t0_wall),
                          summarize_here=False, run_tag=tag)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(os.path.join(profile_to, f"ingest-{n}-{i}.prof"))
    print(json.dumps(raw, default=_json_default), flush=True)
    return 0


@dataclass(frozen=True, slots=True)
class _Final:
    call_id: str
    channel: str
    start_ms: int
    end_ms: int
    text: str


def summarize(mode: str, calls: list[Call], raws: list[dict]) -> LevelResult:
    """One LevelResult from the raw measurements of one or more ingest processes (lists merged)."""
    def cat(key: str) -> list:
        return [x for r in raws for x in r[key]]

    def total(key: str):
        return sum(r[key] for r in raws)

    latencies, decode_lat, intervals, first_partial = cat("latencies"), cat("decode_lat"), cat("intervals"), cat("first_partial")
    finals = [_Final(*f) for f in cat("finals")]
    wall = max(r["wall"] for r in raws)
    batch_sizes: dict[int, int] = {}
    for r in raws:
        for size, n in r["batch_sizes"].items():
            batch_sizes[int(size)] = batch_sizes.get(int(size), 0) + n
    batches = total("batches")
    return LevelResult(
        mode=mode,
        calls=total("calls"),
        duration_s=max(r["duration_s"] for r in raws),
        turns=total("turns"),
        finals_emitted=total("finals_emitted"),
        finals_in_redis=total("finals_in_redis"),
        finals_lost=total("finals_lost"),
        turns_without_final=total("turns_without"),
        latency_p50_s=round(pct(latencies, 50), 3),
        latency_p95_s=round(pct(latencies, 95), 3),
        latency_p99_s=round(pct(latencies, 99), 3),
        decode_latency_p95_s=round(pct(decode_lat, 95), 3),
        partial_interval_median_s=round(float(statistics.median(intervals)), 3) if intervals else float("nan"),
        partial_interval_p95_s=round(pct(intervals, 95), 3),
        first_partial_median_s=round(float(statistics.median(first_partial)), 3) if first_partial else float("nan"),
        partials_emitted=total("partials_emitted"),
        partials_skipped=total("partials_skipped"),
        partials_dropped=total("partials_dropped"),
        windows_per_s=round(total("decoded") / wall, 2),
        batches=batches,
        mean_batch=round(total("decoded") / batches, 2) if batches else float("nan"),
        batch_sizes=dict(sorted(batch_sizes.items())),
        cpu_util=round(total("cpu_s") / wall, 2),
        cpu_per_channel_pct=round(100 * total("cpu_s") / max(1e-9, 2 * total("calls") * max(r["duration_s"] for r in raws)), 4),
        lag_s=round(max(r["lag"] for r in raws), 3),
        error_rate=score(calls, finals),  # type: ignore[arg-type]
    )


def ceiling(engine, calls: list[Call], batch: int, windows: int, full: bool = True) -> dict:
    """Raw CTranslate2: encode + greedy generate of the calls' speech turns in full batches -> windows/s."""
    import ctranslate2

    from callscribe.asr.engine import _bucket

    segs = [t.clip.audio for c in calls for t in c.turns][:windows]
    while len(segs) < windows:
        segs += segs[: windows - len(segs)]
    prompt = engine._prompt(calls[0].language if engine.multilingual else "en")
    feats = []
    for a in segs:
        f = engine.fe(a, padding=480000)[:, :3000]
        if not full:  # the same window sizing as the engine's `dynamic` policy
            f = f[:, : _bucket(int(np.ceil(a.size / 160)), int(engine.cfg.dynamic_min_window_s * 100))]
        feats.append(f)
    t = time.perf_counter()
    done = 0
    for i in range(0, len(feats), batch):
        group = feats[i : i + batch]
        width = max(f.shape[1] for f in group)
        x = np.stack([np.pad(f, ((0, 0), (0, width - f.shape[1])), constant_values=f.min()) for f in group])
        enc = engine.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(x)), to_cpu=False)
        engine.model.generate(enc, [prompt] * len(group), beam_size=1, max_length=448)
        done += len(group)
    secs = time.perf_counter() - t
    return {"windows": done, "batch": batch, "full_window": full, "seconds": round(secs, 2), "windows_per_s": round(done / secs, 2)}


def make_calls(n: int, duration_s: float, languages: list[str], seed: int = 0) -> list[Call]:
    return [build_call(f"bench-{i:04d}", languages[i % len(languages)], duration_s, seed + i) for i in range(n)]


async def ramp(mode: str, engine, cfg: Config, levels: list[int], duration_s: float, languages: list[str],
               redis_url: str, stop_after_fail: int = 1, log=print, remote: bool = False) -> list[LevelResult]:
    out = []
    fails = 0
    for n in levels:
        calls = make_calls(n, duration_s, languages)
        res = await run_level(mode, engine, cfg, calls, redis_url, remote=remote)
        out.append(res)
        log(
            f"  {mode:>8} N={n:4d}: final p50 {res.latency_p50_s:.2f} p95 {res.latency_p95_s:.2f} p99 {res.latency_p99_s:.2f} s | "
            f"partial median {res.partial_interval_median_s:.2f} s | {res.windows_per_s:.1f} windows/s, batch {res.mean_batch:.1f} | "
            f"lost {res.finals_lost} | cpu {res.cpu_util:.2f} ({res.cpu_per_channel_pct:.3f}%/channel) | err {res.error_rate} | {'OK' if res.sustained else 'over'}"
        )
        fails = 0 if res.sustained else fails + 1
        if fails >= stop_after_fail:
            break
    return out


async def ramp_multi(args, levels: list[int], cfg: Config, languages: list[str], redis_url: str) -> list[LevelResult]:
    out, fails = [], 0
    for n in levels:
        res = await run_level_multi(args, n, cfg, languages, redis_url)
        out.append(res)
        print(f"  ours x{args.ingest_procs} ingest N={n:4d}: final p50 {res.latency_p50_s:.2f} p95 {res.latency_p95_s:.2f} s | "
              f"partial median {res.partial_interval_median_s:.2f} s | {res.windows_per_s:.1f} windows/s | lost {res.finals_lost} | "
              f"ingest cpu {res.cpu_util:.2f} ({res.cpu_per_channel_pct:.3f}%/channel) | lag {res.lag_s:.2f} s | err {res.error_rate} | {'OK' if res.sustained else 'over'}", flush=True)
        fails = 0 if res.sustained else fails + 1
        if fails >= args.stop_after_fail:
            break
    return out


def max_sustained(results: list[LevelResult]) -> int:
    ok = [r.calls for r in results if r.sustained]
    return max(ok) if ok else 0


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for mode, style in (("ours", "o-"), ("baseline", "s--")):
        rows = data["levels"].get(mode, [])
        if rows:
            axes[0].plot([r["calls"] for r in rows], [r["latency_p95_s"] for r in rows], style, label=f"{mode} p95 final latency")
            axes[0].plot([r["calls"] for r in rows], [r["partial_interval_median_s"] for r in rows], style, alpha=0.4,
                         label=f"{mode} median partial interval")
    axes[0].axhline(1.0, color="red", lw=0.8)
    axes[0].set_xlabel("concurrent two-channel calls")
    axes[0].set_ylabel("seconds")
    axes[0].set_title("latency vs calls")
    axes[0].legend(fontsize=8)
    rows = data["levels"].get("ours", [])
    if rows:
        axes[1].plot([r["calls"] for r in rows], [r["windows_per_s"] for r in rows], "o-", label="ours: decoded windows/s")
    brow = data["levels"].get("baseline", [])
    if brow:
        axes[1].plot([r["calls"] for r in brow], [r["windows_per_s"] for r in brow], "s--", label="baseline windows/s")
    for c in data["ceiling"]:
        axes[1].axhline(c["windows_per_s"], ls=":", color="gray")
        axes[1].text(0, c["windows_per_s"], f" ceiling ({'30 s' if c['full_window'] else 'sized'} windows, batch {c['batch']})", fontsize=7, va="bottom")
    axes[1].set_xlabel("concurrent two-channel calls")
    axes[1].set_ylabel("windows / s")
    axes[1].set_title("throughput vs engine ceiling")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"callscribe load, {data['model']}, {data['hardware']}, {data['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _json_default(o):
    """numpy scalars in results -> plain Python numbers."""
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count():
            import subprocess

            gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    except Exception:
        pass
    return f"{os.cpu_count()} x {cpu}" + (f" + {gpu}" if gpu else "")


def build_config(args: argparse.Namespace) -> Config:
    return Config.load(
        None,
        model=args.model, model_dir=args.model_dir, device=args.device, compute_type=args.compute_type, beam_size_final=args.beam_size,
        final_window=args.final_window, max_batch_size=args.max_batch, partials=True, word_timestamps=args.words,
        cpu_threads=args.cpu_threads, language_candidates=",".join(args.languages),
    )


async def start_workers(args: argparse.Namespace, redis_url: str, cfg: Config) -> list:
    """Start ``args.workers`` ASR worker processes with the benchmark's model settings; wait until ready."""
    env = {**os.environ, "CALLSCRIBE_KEY_PREFIX": cfg.key_prefix, "CALLSCRIBE_MAX_BATCH_SIZE": str(cfg.max_batch_size),
           "CALLSCRIBE_BEAM_SIZE_FINAL": str(cfg.beam_size_final), "CALLSCRIBE_FINAL_WINDOW": cfg.final_window,
           "CALLSCRIBE_WORD_TIMESTAMPS": str(cfg.word_timestamps), "CALLSCRIBE_LANGUAGE_CANDIDATES": ",".join(cfg.language_candidates),
           "CALLSCRIBE_CPU_THREADS": str(cfg.cpu_threads), "CALLSCRIBE_CLAIM_IDLE_S": "30"}
    model_args = ["--model-dir", cfg.model_dir] if cfg.model_dir else ["--model", cfg.model]
    procs = []
    for _ in range(args.workers):
        if args.stub_asr:  # answers at once, no model: ingest measured at the partial cadence a fast worker gives
            argv = [sys.executable, "-m", "benchmarks.load", "--stub-worker", redis_url]
        else:
            argv = [sys.executable, "-m", "callscribe.cli", "worker", "--redis-url", redis_url, *model_args,
                    "--device", cfg.device, "--compute-type", cfg.compute_type]
        procs.append(await asyncio.create_subprocess_exec(*argv, env=env, stderr=asyncio.subprocess.PIPE))
    for proc in procs:
        line = await asyncio.wait_for(proc.stderr.readline(), 300)
        if not line.startswith(b"callscribe worker "):
            raise RuntimeError(f"worker did not start: {line!r}")
        asyncio.create_task(_drain(proc.stderr))  # keep its log pipe from filling up
    return procs


class StubEngine:
    """Stands in for Whisper in ``--stub-asr`` workers: an instant answer, one English word per 0.4 s of audio
    with word times, so ingest, ordering and publishing do their full work without a model."""

    def decode(self, requests):
        from callscribe.asr.engine import DecodeResult
        from callscribe.events import Word

        out = []
        for r in requests:
            n = max(1, int(r.audio.size / 16000 / 0.4))
            words = tuple(Word(" word", r.offset_ms + 400 * k, r.offset_ms + 400 * k + 300, 0.9) for k in range(n)) if r.is_final else ()
            out.append(DecodeResult(" ".join(["word"] * n), "en", 1.0, 0.9, -0.1, 0.01, 1.2, 0.0, words))
        return out


async def stub_worker_main(redis_url: str) -> int:
    from callscribe.asr.worker import AsrWorker

    worker = AsrWorker(Config.load(None), redis_url, StubEngine())
    print("callscribe worker (stub: no model)", file=sys.stderr, flush=True)
    await worker.run()
    return 0


async def _drain(stream) -> None:
    while await stream.readline():
        pass


async def main_async(args: argparse.Namespace) -> dict:
    from callscribe.asr.engine import WhisperEngine

    from .baseline import PerCallEngine

    cfg = build_config(args)
    engine = WhisperEngine(cfg)
    engine.warmup()
    languages = [lang for lang in args.languages if engine.multilingual or lang == "en"]
    print(f"callscribe load benchmark: {engine.description}, languages {languages}, {args.duration:.0f} s calls, {hardware()}", flush=True)
    with EmbeddedRedis(Path(args.data_dir)) as redis:
        levels = [int(x) for x in args.calls.split(",")]
        base_levels = [int(x) for x in args.baseline_calls.split(",") if x.strip()]  # "" = no baseline ramp
        print("per-call baseline (faster-whisper transcribe per segment, no cross-call batching):", flush=True)
        base_cfg = cfg.replace(max_batch_size=1)
        baseline = await ramp("baseline", PerCallEngine(engine), base_cfg, base_levels, args.duration, languages, redis.url,
                              stop_after_fail=args.stop_after_fail)
        if args.workers:
            print(f"callscribe (cross-call batching on {args.workers} `callscribe worker` processes via Redis):", flush=True)
            wcfg = cfg.replace(key_prefix="benchw")  # ingest and workers must agree on the job stream
            procs = await start_workers(args, redis.url, wcfg)
            try:
                if args.ingest_procs > 1:
                    ours = await ramp_multi(args, levels, wcfg, languages, redis.url)
                else:
                    ours = await ramp("ours", engine, wcfg, levels, args.duration, languages, redis.url,
                                      stop_after_fail=args.stop_after_fail, remote=True)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    await proc.wait()
        else:
            print("callscribe (cross-call batching):", flush=True)
            ours = await ramp("ours", engine, cfg, levels, args.duration, languages, redis.url, stop_after_fail=args.stop_after_fail)
    ceil_calls = make_calls(4, 30, languages)
    ceilings = [ceiling(engine, ceil_calls, args.ceiling_batch, args.ceiling_windows, full=True)]
    if cfg.final_window == "dynamic":
        ceilings.append(ceiling(engine, ceil_calls, args.ceiling_batch, args.ceiling_windows, full=False))
    for c in ceilings:
        print(f"ceiling: {c}", flush=True)
    ours_max, base_max = max_sustained(ours), max_sustained(baseline)
    best = next((r for r in ours if r.calls == ours_max), None)
    same_audio = None
    if best is not None and not args.skip_same_audio:  # the max-N level's calls again, one at a time: accuracy at load vs no load, same audio
        alone = await one_call_each(engine, cfg, make_calls(ours_max, args.duration, languages))
        same_audio = {"at_load": best.error_rate, "one_call_at_a_time": alone}
        print(f"accuracy on the {ours_max} calls of the max level: at load {best.error_rate}, one at a time {alone}", flush=True)
    single = next((r for r in ours if r.calls == min(levels)), None)
    summary = {
        "max_sustained_calls": {"ours": ours_max, "baseline": base_max,
                                "ratio": round(ours_max / base_max, 2) if base_max else None},
        "windows_per_s_at_max": best.windows_per_s if best else None,
        "share_of_ceiling": {("full" if c["full_window"] else "sized"): round(best.windows_per_s / c["windows_per_s"], 3) if best else None for c in ceilings},
        "accuracy_one_call": single.error_rate if single else None,
        "accuracy_at_max": best.error_rate if best else None,
        "accuracy_same_audio": same_audio,
        "criteria": {"p95_final_latency_s": P95_LIMIT_S, "median_partial_interval_s": PARTIAL_LIMIT_S, "finals_lost": 0},
    }
    print(json.dumps(summary, indent=1), flush=True)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "hardware": hardware(),
        "model": engine.description,
        "config": {k: v for k, v in cfg.model_dump().items() if k in (
            "beam_size_final", "beam_size_partial", "final_window", "partial_window", "max_batch_size", "partial_interval_s",
            "vad_hangover_ms", "word_timestamps", "cpu_threads")},
        "duration_s": args.duration,
        "asr_workers": args.workers,  # 0: in-process model; N: decoded on N worker processes (cpu_util is then the ingest's)
        "stub_asr": bool(args.stub_asr),  # workers answered without a model: only the ingest figures mean something
        "ingest_procs": args.ingest_procs,
        "languages": languages,
        "levels": {"ours": [asdict(r) | {"sustained": r.sustained} for r in ours],
                   "baseline": [asdict(r) | {"sustained": r.sustained} for r in baseline]},
        "ceiling": ceilings,
        "summary": summary,
        "command": " ".join(sys.argv),
    }


async def accuracy_from(path: Path) -> int:
    """Add the same-audio accuracy comparison to an existing result (the calls are rebuilt from their seeds)."""
    from callscribe.asr.engine import WhisperEngine

    data = json.loads(path.read_text())
    n = data["summary"]["max_sustained_calls"]["ours"]
    level = next(r for r in data["levels"]["ours"] if r["calls"] == n)
    c = data["config"]
    cfg = Config(model="tiny.en" if "tiny.en" in data["model"] else "base", beam_size_final=c["beam_size_final"],
                 final_window=c["final_window"], max_batch_size=c["max_batch_size"], word_timestamps=c["word_timestamps"],
                 language_candidates=tuple(data["languages"]))
    engine = WhisperEngine(cfg)
    alone = await one_call_each(engine, cfg, make_calls(n, data["duration_s"], data["languages"]))
    data["summary"]["accuracy_same_audio"] = {"at_load": level["error_rate"], "one_call_at_a_time": alone}
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=_json_default) + "\n")
    print(f"{n} calls: at load {level['error_rate']}, one at a time {alone}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2-CPU preset: base int8, short calls, small ramp")
    p.add_argument("--calls", default="1,2,4,8,16,32,64,128,256,512,768,1000")
    p.add_argument("--baseline-calls", default="1,2,4,8,16,32,64,128")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of audio per call")
    p.add_argument("--model", default="base")
    p.add_argument("--device", default="auto")
    p.add_argument("--compute-type", default="auto")
    p.add_argument("--beam-size", type=int, default=1, help="beam size of finals (default greedy)")
    p.add_argument("--final-window", default="dynamic", choices=["full", "dynamic"])
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--words", action="store_true", help="word timestamps for finals")
    p.add_argument("--cpu-threads", type=int, default=0)
    p.add_argument("--model-dir", default="", help="a CTranslate2 Whisper directory (e.g. on the GPU machine)")
    p.add_argument("--workers", type=int, default=0,
                   help="decode on N `callscribe worker` processes through Redis (scale-out path) instead of in-process")
    p.add_argument("--languages", default="en,zh", type=lambda s: s.split(","))
    p.add_argument("--ceiling-batch", type=int, default=64)
    p.add_argument("--ceiling-windows", type=int, default=512)
    p.add_argument("--stop-after-fail", type=int, default=1)
    p.add_argument("--data-dir", default="var/bench")
    p.add_argument("--out", default="")
    p.add_argument("--accuracy-from", help="a results JSON: score its max-level calls one at a time and add that to it")
    p.add_argument("--ingest-procs", type=int, default=1,
                   help="with --workers: split the calls over this many ingest processes (VAD is CPU work)")
    p.add_argument("--skip-same-audio", action="store_true",
                   help="do not re-decode the max level's calls one at a time (the same-audio accuracy check)")
    p.add_argument("--stub-asr", action="store_true",
                   help="with --workers: workers answer at once without a model (StubEngine), to measure ingest CPU at "
                        "scale on a machine whose model could not keep up; latency and accuracy then mean nothing")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--stub-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stub_worker:
        return asyncio.run(stub_worker_main(args.stub_worker))
    if args.child:
        return asyncio.run(child_main(args))
    if args.accuracy_from:
        return asyncio.run(accuracy_from(Path(args.accuracy_from)))
    if args.quick:  # 2 CPU cores: tiny.en int8 (English), 40 s calls, a short ramp
        args.model = "tiny.en" if args.model == "base" else args.model
        args.calls, args.baseline_calls = "1,2,4,6,8,10,12,14,16,20", "1,2,3,4,5,6"
        args.duration, args.max_batch = min(args.duration, 40.0), 16
        args.ceiling_batch, args.ceiling_windows = 8, 48
        args.stop_after_fail = 2
    data = asyncio.run(main_async(args))
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M")
    out = Path(args.out) if args.out else RESULTS / f"load-{'quick-' if args.quick else ''}{stamp}.json"
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=_json_default) + "\n")
    try:
        plot(data, out.with_suffix(".png"))
    except ImportError:
        print("matplotlib not installed: no plot (pip install 'callscribe[bench]')", file=sys.stderr)
    print(f"results: {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
