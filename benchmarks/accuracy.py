"""Accuracy against plain faster-whisper: callscribe's finals vs ``WhisperModel.transcribe()`` on the same audio.

For each language (zh, en) the real-speech clips of ``tests/data/audio`` (or ``--audio-dir``) are joined into
one call (0.9 s of silence between clips, as tests/test_pipeline.py does) and scored two ways on the same
model and compute type (whisper-base, CPU int8 unless ``--model``): faster-whisper's own ``transcribe()``
with its defaults (beam 5, temperature fallback, condition_on_previous_text, language detection), the
baseline, measured in the same run; and callscribe's streaming pipeline (VAD segments, batched decode).
Bands: ``wideband`` (the 16 kHz clips) and ``telephone`` (resampled to 8 kHz, G.711 mu-law encoded and
decoded, resampled back to 16 kHz: what the audio front hands the pipeline for a PCMU call).

Variants are named sets of config overrides (``--variants``, see VARIANTS), each run on every band and
language, so one JSON holds before/after figures of each change side by side with the baseline.

Run: ``python -m benchmarks.accuracy [--variants before,default] [--bands wideband,telephone] [--langs zh,en]``.
Output: a table and benchmarks/results/accuracy-*.json. CER for zh, WER for en (callscribe.scoring).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from callscribe.audio import decode_bytes, encode_g711, float_to_pcm16, pcm16_to_float, resample
from callscribe.config import Config
from callscribe.events import Transcript
from callscribe.filerun import run_call
from callscribe.pipeline import Pipeline
from callscribe.scoring import error_rate

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "data" / "audio"
RESULTS = Path(__file__).parent / "results"
GAP_S = 0.9

# What each change was measured as. "before" = the settings before issue 21's accuracy work.
VARIANTS: dict[str, dict] = {
    # the settings before issue 21's accuracy work: finals without timestamps, no context, no lead-in, 200 ms of
    # pre-roll, the Silero gate at 0.5 (Silero judging from the onset stays: it is a fix, not a setting)
    "before": {"final_context": False, "final_lead_ms": 0, "vad_pre_roll_ms": 200, "silero_gate_threshold": 0.5},
    # + the previous utterance of the channel as acoustic context (finals then decode in timestamp mode)
    "context": {"final_context": True, "final_lead_ms": 0},
    # + 200 ms more lead-in before each final's audio (400 ms before the onset in all), no context
    "lead": {"final_context": False, "final_lead_ms": 200},
    # both: the shipped defaults after issue 21
    "default": {},
    # the finished-segment Silero gate at 0.5 instead of 0.4
    "gate050": {"silero_gate_threshold": 0.5},
    # + a prompt of the contact center's words (asr/vocabulary.py) before every final
    "domain": {"domain_prompt": True},
}


def load_manifest(audio_dir: Path) -> list[dict[str, str]]:
    with open(audio_dir / "manifest.tsv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def telephone(audio: np.ndarray) -> np.ndarray:
    """16 kHz -> 8 kHz -> G.711 mu-law -> 8 kHz -> 16 kHz (soxr both ways, as the audio front resamples)."""
    narrow = resample(audio, 16000, 8000)
    line = pcm16_to_float(decode_bytes(encode_g711(float_to_pcm16(narrow), "mulaw"), "mulaw"))
    return resample(line, 8000, 16000).astype(np.float32)


def joined(rows: list[dict[str, str]], audio_dir: Path) -> tuple[np.ndarray, str, list[tuple[float, float]]]:
    """The clips one after another with GAP_S of silence: audio, the joined reference, each clip's span (s)."""
    gap = np.zeros(int(16000 * GAP_S), np.float32)
    parts, refs, spans, pos = [], [], [], 0.0
    for r in rows:
        audio, rate = sf.read(audio_dir / r["file"], dtype="float32")
        assert rate == 16000, r["file"]
        parts += [audio, gap]
        refs.append(r["reference_text"])
        spans.append((pos, pos + audio.size / 16000))
        pos += (audio.size + gap.size) / 16000
    return np.concatenate(parts), " ".join(refs), spans


Piece = tuple[float, float, str]  # start s, end s, text


def plain_transcribe(engine, audio: np.ndarray) -> list[Piece]:
    segments, _ = engine._fw.transcribe(audio)  # faster-whisper's defaults
    return [(s.start, s.end, s.text) for s in segments]


async def callscribe_transcribe(engine, cfg: Config, audio: np.ndarray | list[np.ndarray],
                                names: tuple[str, ...] = ("mixed",)) -> list[Piece]:
    engine.cfg = cfg  # the engine reads its decode settings from cfg on every batch
    pipeline = Pipeline(cfg, engine)
    await pipeline.start()
    events: list = []
    channels = audio if isinstance(audio, list) else [audio]
    await run_call(pipeline, channels, names, language="auto", listener=events.append)
    await pipeline.stop()
    finals = [e for e in events if isinstance(e, Transcript) and e.is_final and e.text]
    if len(names) > 1:
        return [(e.start_ms / 1000, e.end_ms / 1000, e.text, e.channel) for e in finals]  # type: ignore[misc]
    return [(e.start_ms / 1000, e.end_ms / 1000, e.text) for e in finals]


def set_domain_prompt(engine, on: bool) -> None:
    """The experiment of issue 21: finals decoded after a previous-text prompt of the contact center's words
    (asr/vocabulary.py), the same number of tokens in both languages so a batch can mix them."""
    from callscribe.asr import vocabulary

    if not on:
        engine.domain_prompts = {}
        return
    tok = engine._tokenizer("en")
    prompts = {lang: tok.encode(" " + vocabulary.prompt(lang)) for lang in ("zh", "en")}
    n = min(len(p) for p in prompts.values())
    engine.domain_prompts = {lang: p[:n] for lang, p in prompts.items()}


def score_calls(engine, base: Config, variants: list[str], calls_dir: Path, show: bool) -> dict:
    """Two-leg calls with timed scripts (`callscribe synth` output): each channel's finals against its lines,
    and plain faster-whisper on each channel alone, per language."""
    from callscribe.filerun import load_call_audio

    refs: dict[str, list[str]] = {}
    hyps: dict[str, dict[str, list[str]]] = {}
    for meta_path in sorted(calls_dir.glob("*.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        lang = meta["language"]
        channels, names = load_call_audio(calls_dir / meta["audio"], base)
        for name in names:
            refs.setdefault(lang, []).append(" ".join(u["text"] for u in meta["utterances"] if u["channel"] == name))
        for i, name in enumerate(names):
            hyps.setdefault(lang, {}).setdefault("plain", []).append(" ".join(t for _, _, t in plain_transcribe(engine, channels[i])))
        for v in variants:
            conf = dict(VARIANTS[v])
            set_domain_prompt(engine, bool(conf.pop("domain_prompt", False)))
            pieces = asyncio.run(callscribe_transcribe(engine, base.replace(**conf), channels, names))
            for name in names:
                hyps[lang].setdefault(v, []).append(" ".join(p[2] for p in pieces if p[3] == name))
        set_domain_prompt(engine, False)
        if show:
            print(meta_path.stem, {k: v[-1][:80] for k, v in hyps[lang].items()}, flush=True)
    out: dict = {}
    for lang, ref in refs.items():
        joiner = "" if lang == "zh" else " "
        out[lang] = {k: round(error_rate(joiner.join(ref), joiner.join(h), lang), 4) for k, h in hyps[lang].items()}
        print(lang, "calls:", out[lang], flush=True)
    return out


def per_clip(pieces: list[Piece], spans: list[tuple[float, float]], rows: list[dict[str, str]], lang: str) -> list[float]:
    """Each clip's error: the pieces whose time overlaps it most are its hypothesis (a piece spanning two clips
    counts for one: per-clip figures are for finding where errors are, the joined figure is the score)."""
    texts: list[list[str]] = [[] for _ in spans]
    for start, end, text in pieces:
        overlap = [max(0.0, min(end, b) - max(start, a)) for a, b in spans]
        texts[int(np.argmax(overlap))].append(text)
    return [round(error_rate(r["reference_text"], " ".join(t), lang), 3) for r, t in zip(rows, texts)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="before,context,lead,default,gate050,domain", help=f"comma list of {', '.join(VARIANTS)}")
    ap.add_argument("--bands", default="wideband,telephone")
    ap.add_argument("--langs", default="zh,en")
    ap.add_argument("--audio-dir", default=str(AUDIO))
    ap.add_argument("--model", default="", help="a CTranslate2 model directory (default: the configured model)")
    ap.add_argument("--set", action="append", default=[], help="extra override for every variant, KEY=VALUE (repeatable)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help='an ad-hoc variant, e.g. dyn=\'{"final_window": "dynamic"}\' (repeatable; add NAME to --variants)')
    ap.add_argument("--calls", default="", help="also score two-leg calls with timed scripts in this folder (callscribe synth)")
    ap.add_argument("--out", default="")
    ap.add_argument("--show", action="store_true", help="print each transcript")
    args = ap.parse_args()

    from callscribe.asr.engine import WhisperEngine

    extra = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        try:
            extra[k] = json.loads(v)
        except ValueError:
            extra[k] = v
    for spec in args.variant:
        name, _, js = spec.partition("=")
        VARIANTS[name] = json.loads(js)
    base = Config(partials=False, sip=False, analytics=False, web=False, ingest_auth=False,
                  **({"model_dir": args.model} if args.model else {}))
    engine = WhisperEngine(base)
    engine.warmup()
    audio_dir = Path(args.audio_dir)
    rows = load_manifest(audio_dir)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bands = [b.strip() for b in args.bands.split(",") if b.strip()]
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    results: dict = {}
    for lang in langs:
        lang_rows = [r for r in rows if r["language"] == lang]
        audio16, reference, spans = joined(lang_rows, audio_dir)
        for band in bands:
            audio = audio16 if band == "wideband" else telephone(audio16)
            t0 = time.perf_counter()
            pieces = plain_transcribe(engine, audio)
            plain = " ".join(t for _, _, t in pieces)
            entry = {"plain": {"error": round(error_rate(reference, plain, lang), 4), "seconds": round(time.perf_counter() - t0, 1),
                               "per_clip": per_clip(pieces, spans, lang_rows, lang)}}
            if args.show:
                print(f"[{lang}/{band}] plain: {plain}")
            for name in variants:
                conf = {**VARIANTS[name], **extra}
                set_domain_prompt(engine, bool(conf.pop("domain_prompt", False)))
                cfg = base.replace(**conf)
                t0 = time.perf_counter()
                pieces = asyncio.run(callscribe_transcribe(engine, cfg, audio))
                ours = " ".join(t for _, _, t in pieces)
                err = error_rate(reference, ours, lang)
                entry[name] = {"error": round(err, 4), "gap": round(err - entry["plain"]["error"], 4),
                               "seconds": round(time.perf_counter() - t0, 1), "per_clip": per_clip(pieces, spans, lang_rows, lang)}
                if args.show:
                    print(f"[{lang}/{band}] {name}: {ours}")
                print(f"{lang:3} {band:10} {name:10} {'CER' if lang == 'zh' else 'WER'} {err:.3f}  plain {entry['plain']['error']:.3f}"
                      f"  gap {err - entry['plain']['error']:+.3f}", flush=True)
            results.setdefault(lang, {})[band] = entry
    set_domain_prompt(engine, False)
    calls = score_calls(engine, base, variants, Path(args.calls), args.show) if args.calls else None
    out = {
        "benchmark": "accuracy",
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "model": engine.description,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, no GPU" if engine.device == "cpu" else engine.device,
        "audio": {lang: {"clips": sum(r["language"] == lang for r in rows),
                         "seconds": round(sum(float(r["duration_s"]) for r in rows if r["language"] == lang), 1)} for lang in langs},
        "metric": {"zh": "CER", "en": "WER"},
        "variants": {v: {**VARIANTS[v], **extra} for v in variants},
        "clips": {lang: [r["file"] for r in rows if r["language"] == lang] for lang in langs},
        "results": results,
        **({"calls": {"dir": args.calls, "error": calls}} if calls else {}),
    }
    path = Path(args.out) if args.out else RESULTS / f"accuracy-{dt.datetime.now():%Y%m%d-%H%M}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
