"""Packet-loss benchmark: how much transcription accuracy 5% random RTP loss costs, per codec path.

The same two-leg dialogue (real speech from tests/data/audio, the one tests/test_sip.py uses) is sent as
RTP packets through the real receive path: ``pcap.schedule`` (loss, 60 ms jitter that reorders packets,
1% duplicates), one JitterBuffer + StreamAudioDecoder per leg popped every 20 ms as the media loop does,
then the Pipeline with whisper (CPU int8 unless a GPU is there). Each path is run clean (the baseline,
measured in the same run) and with ``--seeds`` loss patterns; one seed's CER moves by +-3 points on a
~140-character dialogue, so the mean over seeds is what to compare.

Paths: ``g711`` (PCMU, receiver concealment), ``opus`` (24 kbit/s with in-band FEC: the next packet's
FEC copy rebuilds a lost one), ``opus-nofec`` (Opus without FEC: libopus concealment only).

Run: ``python -m benchmarks.rtp_loss [--lang zh|en] [--seeds 10] [--paths g711,opus,opus-nofec]``.
Output: a table of clean / impaired mean / gap per path, and benchmarks/results/rtp-loss-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from callscribe.asr.engine import WhisperEngine
from callscribe.config import Config
from callscribe.events import Transcript
from callscribe.filerun import run_call
from callscribe.gateway.rtp.codecs import OPUS, PCMU, Codec, StreamAudioDecoder, payload_duration
from callscribe.gateway.rtp.jitter import JitterBuffer
from callscribe.gateway.rtp.packet import parse_rtp
from callscribe.gateway.rtp.pcap import Impairment, Leg, schedule, two_leg_call
from callscribe.pipeline import Pipeline
from callscribe.scoring import error_rate

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "data" / "audio"
RESULTS = Path(__file__).parent / "results"
DIALOGUES = {  # (customer turns, agent turns): the dialogues of tests/test_sip.py's loss test
    "zh": (["zh/zh_cv_18536592.wav", "zh/zh_aishell1_BAC009S0724W0125.wav", "zh/zh_thchs30_D4_754.wav", "zh/zh_cv_18567452.wav"],
           ["zh/zh_aishell1_BAC009S0724W0121.wav", "zh/zh_cv_18536155.wav", "zh/zh_cv_18585207.wav", "zh/zh_aishell3_SSB00050002.wav"]),
    "en": (["en/en_librispeech_1995-1837-0001.wav", "en/en_cmu_arctic_aew_a0003.wav"],
           ["en/en_fleurs_001.wav", "en/en_cmu_arctic_aew_a0001.wav"]),
}
PATHS: dict[str, tuple[Codec, int]] = {"g711": (PCMU, 0), "opus": (OPUS, 10), "opus-nofec": (OPUS, 0)}  # codec, FEC loss %


def load_dialogue(lang: str) -> tuple[dict[str, np.ndarray], str]:
    with open(AUDIO / "manifest.tsv", newline="", encoding="utf-8") as f:
        refs = {r["file"]: r["reference_text"] for r in csv.DictReader(f, delimiter="\t")}
    customer, agent = DIALOGUES[lang]
    tracks = two_leg_call([sf.read(AUDIO / c, dtype="float32")[0] for c in customer],
                          [sf.read(AUDIO / c, dtype="float32")[0] for c in agent])
    ref = " ".join(refs[c] for c in customer) + " " + " ".join(refs[c] for c in agent)
    return tracks, ref


def receive(tracks: dict[str, np.ndarray], codec: Codec, fec_pct: int, imp: Impairment) -> dict[str, np.ndarray]:
    """Each leg's audio as the RTP receive path hands it to the pipeline."""
    legs = [Leg(tracks["customer"], 0, 0x1A2B3C4D, codec.name, opus_fec_loss_pct=fec_pct),
            Leg(tracks["agent"], 2, 0x5E6F7A8B, codec.name, opus_fec_loss_pct=fec_pct)]
    packets = schedule(legs, imp)
    out = {}
    for offset, name in ((0, "customer"), (2, "agent")):
        jitter = JitterBuffer(clock_rate=codec.clock_rate, depth_ms=80, duration_of=payload_duration(codec))
        decoder = StreamAudioDecoder(codec)
        mine = [(t, parse_rtp(p)) for t, o, p in packets if o == offset]
        parts, i, now = [], 0, 0.0
        while now <= mine[-1][0] + 1.0:
            while i < len(mine) and mine[i][0] <= now:
                jitter.push(mine[i][1], mine[i][0])
                i += 1
            parts += [decoder.decode(s) for s in jitter.pop(now)]
            now += 0.02
        parts += [decoder.decode(s) for s in jitter.flush()] + [decoder.flush()]
        out[name] = np.concatenate(parts)[decoder.latency_samples:]
    n = max(len(a) for a in out.values())
    return {k: np.pad(v, (0, n - len(v))) for k, v in out.items()}


async def transcribe(engine: WhisperEngine, cfg: Config, tracks: dict[str, np.ndarray]) -> str:
    pipeline = Pipeline(cfg, engine)
    await pipeline.start()
    finals: dict[str, list[str]] = {"customer": [], "agent": []}

    def on_event(e) -> None:
        if isinstance(e, Transcript) and e.is_final and e.text:
            finals[e.channel].append(e.text)

    try:
        await run_call(pipeline, [tracks["customer"], tracks["agent"]], ("customer", "agent"), language=cfg.language,
                       listener=on_event)
    finally:
        await pipeline.stop()
    return " ".join(finals["customer"]) + " " + " ".join(finals["agent"])


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lang", choices=sorted(DIALOGUES), default="zh")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--paths", default="g711,opus,opus-nofec")
    ap.add_argument("--loss", type=float, default=0.05)
    args = ap.parse_args()
    cfg = Config(data_dir=str(Path(os.environ.get("TMPDIR", "/tmp")) / "callscribe-bench"), partials=False, sip=False,
                 analytics=False, web=False)
    engine = WhisperEngine(cfg)
    engine.warmup()
    tracks, ref = load_dialogue(args.lang)
    seeds = [11] + list(range(1, args.seeds))
    rows = []
    for path in args.paths.split(","):
        codec, fec = PATHS[path]
        t0 = time.monotonic()
        clean = error_rate(ref, await transcribe(engine, cfg, receive(tracks, codec, fec, Impairment())), args.lang)
        impaired = []
        for seed in seeds:
            imp = Impairment(loss=args.loss, jitter_ms=60, duplicate=0.01, seed=seed)
            impaired.append(error_rate(ref, await transcribe(engine, cfg, receive(tracks, codec, fec, imp)), args.lang))
        mean = statistics.fmean(impaired)
        rows.append({"path": path, "clean": round(clean, 4), "impaired_mean": round(mean, 4),
                     "impaired_max": round(max(impaired), 4), "gap_points": round(100 * (mean - clean), 1),
                     "impaired": [round(x, 4) for x in impaired], "seconds": round(time.monotonic() - t0, 1)})
        print(f"{path:11s} clean {clean:.3f}  impaired mean {mean:.3f} (max {max(impaired):.3f})  "
              f"gap {100 * (mean - clean):+.1f} points  [{rows[-1]['seconds']} s]", flush=True)
    metric = "CER" if args.lang == "zh" else "WER"
    out = {"benchmark": "rtp_loss", "date": dt.datetime.now().isoformat(timespec="seconds"), "lang": args.lang,
           "metric": metric, "loss": args.loss, "jitter_ms": 60, "duplicate": 0.01, "seeds": seeds,
           "model": engine.description, "machine": f"{platform.machine()} {os.cpu_count()} cpus", "paths": rows}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"rtp-loss-{args.lang}-{dt.datetime.now():%Y%m%d-%H%M}.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"{metric}, {len(seeds)} loss seeds -> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
