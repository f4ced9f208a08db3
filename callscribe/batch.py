"""Offline analysis of recorded calls and dialogue files: ``callscribe analyze FILE|DIR``.

A contact center's first use of callscribe is last month's recordings, so a folder of calls must be a
job you can start, watch, interrupt and start again:

* **Same code as live calls.** A recording is decoded (:func:`callscribe.filerun.load_call_audio`: WAV,
  FLAC, OGG, MP3, M4A ...; stereo = customer, agent by ``channel_map``) and streamed through the same
  :class:`~callscribe.pipeline.Pipeline` (VAD, the cross-call batch scheduler, Whisper) as a live call; its
  finals then go through the same :class:`~callscribe.keyword.analyzer.CallAnalyzer` the live worker
  runs (:func:`callscribe.keyword.dialogue.analyze_call`), redacted as the live worker sees them.
* **Parallel over the cores.** Up to ``jobs`` recordings stream at once into one pipeline, so their
  segments share decode batches (the product's own cross-call batching) and ctranslate2 uses every core.
* **Ordered where order matters.** Transcription runs in any order; analysis runs in name order, because
  repeat callers and surges are judged against the calls before.
* **Resumable.** Each call's result is written as ``OUT/<call_id>.json`` (atomically, by rename) the
  moment it is analysed; a rerun loads those instead of transcribing again (and feeds them to the
  repeat-caller index), so an interrupted month resumes where it stopped. ``OUT/summary.json`` sums up
  the run (calls, audio hours, speed in x real time, intents, alerts, unresolved, failures).
* **A bad file is one failed call, not a failed job.** It is logged and listed in the summary's
  ``failed``; no JSON is written for it, so the next run tries it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from .config import Config
from .errors import CallscribeError
from .events import CallEnded, CallStarted, Transcript

log = logging.getLogger(__name__)

__all__ = ["AUDIO_SUFFIXES", "BatchError", "BatchResult", "CallInput", "analyze_inputs", "discover"]

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4", ".webm", ".wma"})
DIALOGUE_SUFFIXES = frozenset({".txt", ".tsv", ""})
SUMMARY_NAME = "summary.json"


class BatchError(CallscribeError):
    """Inputs that cannot be analysed at all (nothing found, two calls with one id, an unwritable output)."""


@dataclass(frozen=True, slots=True)
class CallInput:
    """One call to analyse: a recording or a dialogue file; ``call_id`` is its file name without suffix."""

    call_id: str
    path: Path
    kind: Literal["audio", "dialogue"]


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    if suffix in DIALOGUE_SUFFIXES and not path.name.startswith("."):
        if path.name.lower() in ("readme", "license") or path.name.upper().startswith(("README", "LICENSE")):
            return None
        return "dialogue"
    return None


def discover(paths: Iterable[str | os.PathLike[str]], exclude: Path | None = None) -> list[CallInput]:
    """The calls under ``paths`` (files, or directories searched recursively), in name order.

    Directories yield recordings and dialogue files (``.txt``/``.tsv``); sidecar ``.json`` files, READMEs
    and anything under ``exclude`` (the output folder) are skipped. A file named explicitly is taken by
    its suffix. Two calls with the same id are an error: their results would overwrite each other."""
    items: list[CallInput] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                if exclude is not None and exclude in f.parents:
                    continue
                kind = _kind(f)
                if kind is not None:
                    items.append(CallInput(f.stem, f, kind))  # type: ignore[arg-type]
        elif path.is_file():
            kind = "audio" if path.suffix.lower() in AUDIO_SUFFIXES else "dialogue"
            items.append(CallInput(path.stem, path, kind))  # type: ignore[arg-type]
        else:
            raise BatchError(f"{path}: no such file or directory")
    seen: dict[str, Path] = {}
    for item in items:
        if item.call_id in seen:
            raise BatchError(f"two calls named {item.call_id!r}: {seen[item.call_id]} and {item.path}; rename one")
        seen[item.call_id] = item.path
    return items


def sidecar_metadata(path: Path) -> tuple[dict[str, str], int | None]:
    """Call metadata from ``<recording>.json`` beside a recording, when there is one.

    Keys read: ``caller``, ``agent_id``, ``queue`` (or a ``metadata`` mapping) and ``started_at_ms`` (epoch
    ms, for repeat-caller windows). Anything else in the file (a synthesizer's timed script) is ignored."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}, None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError) as exc:
        log.warning("%s: sidecar not read: %s", side, exc)
        return {}, None
    if not isinstance(data, dict):
        return {}, None
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    out = {str(k): str(v) for k, v in meta.items()}
    for key in ("caller", "agent_id", "queue"):
        if data.get(key):
            out[key] = str(data[key])
    started = data.get("started_at_ms")
    return out, int(started) if isinstance(started, (int, float)) else None


@dataclass(slots=True)
class BatchResult:
    """What a run did: per-call results (in name order) and the summary written beside them."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Transcribed:
    started: CallStarted
    finals: list[Transcript]
    ended: CallEnded
    audio_s: float


def _majority_language(finals: list[Transcript], default: str) -> str:
    weight: Counter[str] = Counter()
    for t in finals:
        if t.language:
            weight[t.language] += max(1, len(t.text))
    return weight.most_common(1)[0][0] if weight else default


async def _transcribe(pipeline, cfg: Config, item: CallInput, started_at_ms: int) -> _Transcribed:
    from .filerun import load_call_audio, run_call
    from .pipeline import _redacted

    channels, names = await asyncio.to_thread(load_call_audio, item.path, cfg)
    meta, sidecar_start = sidecar_metadata(item.path)
    finals: list[Transcript] = []

    def collect(event) -> None:
        if isinstance(event, Transcript) and event.is_final and event.text.strip():
            # what the live analytics worker reads from Redis: the stored (redacted) copy
            finals.append(_redacted(event) if cfg.redact_stored_text else event)  # type: ignore[arg-type]

    ended = await run_call(pipeline, channels, names, call_id=item.call_id, language=cfg.language,
                           metadata=meta, listener=collect)
    language = _majority_language(finals, cfg.language if cfg.language != "auto" else "")
    started = CallStarted(item.call_id, names, language or "auto", 16000, "pcm16", meta,
                          started_at_ms=sidecar_start or started_at_ms)
    audio_s = max(c.size for c in channels) / 16000 if channels else 0.0
    return _Transcribed(started, finals, ended, audio_s)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _load_done(out_dir: Path | None, call_id: str) -> dict[str, Any] | None:
    if out_dir is None:
        return None
    f = out_dir / f"{call_id}.json"
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError):
        return None  # a torn or foreign file: analyse the call again
    return data if isinstance(data, dict) and data.get("call_id") == call_id else None


async def analyze_inputs(
    items: list[CallInput],
    analytics,
    cfg: Config,
    out_dir: Path | None = None,
    jobs: int = 4,
    pipeline_factory: Callable[[], Any] | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
    spacing_s: float = 300.0,
    labels: dict[str, Any] | None = None,
) -> BatchResult:
    """Analyse ``items`` (see the module docstring); ``on_progress(done_calls, total_calls, audio_s_done)``.

    ``pipeline_factory`` builds the started-on-demand Pipeline (tests pass their own); by default a local
    Whisper engine from ``cfg``. It is only called when some recording still needs transcribing. With
    ``labels`` (keyword/evaluate.py's format) the summary carries ``scores``."""
    from .keyword.dialogue import BASE_EPOCH_MS, analyze_call, analyze_dialogue, read_dialogue
    from .keyword.repeat import RepeatIndex
    from .keyword.surge import SurgeDetector

    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BatchError(f"cannot write results to {out_dir}: {exc}") from exc
    t0 = time.monotonic()
    repeat = RepeatIndex(window_s=analytics.settings.repeat_window_s)
    surge = SurgeDetector()
    done = {item.call_id: _load_done(out_dir, item.call_id) for item in items}
    todo_audio = [i for i, item in enumerate(items) if item.kind == "audio" and done[item.call_id] is None]
    pipeline = None
    tasks: dict[int, asyncio.Task[_Transcribed]] = {}
    gate = asyncio.Semaphore(max(1, jobs))
    if todo_audio:
        pipeline = pipeline_factory() if pipeline_factory is not None else await _local_pipeline(cfg)
        await pipeline.start()

        async def one(i: int) -> _Transcribed:
            async with gate:
                return await _transcribe(pipeline, cfg, items[i], BASE_EPOCH_MS + int(i * spacing_s * 1000))

        tasks = {i: asyncio.create_task(one(i), name=f"transcribe-{items[i].call_id}") for i in todo_audio}

    result = BatchResult()
    failed: list[dict[str, str]] = []
    audio_s_now = audio_s_all = 0.0
    resumed = 0
    try:
        for i, item in enumerate(items):
            started_at = BASE_EPOCH_MS + int(i * spacing_s * 1000)
            prior = done[item.call_id]
            try:
                if prior is not None:
                    resumed += 1
                    call = prior
                    _replay_history(prior, repeat, surge, started_at)
                elif item.kind == "dialogue":
                    call = analyze_dialogue(analytics, read_dialogue(item.path), repeat, surge, started_at)
                    call["source"] = str(item.path)
                else:
                    tr = await tasks.pop(i)
                    call = analyze_call(analytics, tr.started, tr.finals, tr.ended, repeat, surge)
                    call["source"] = str(item.path)
                    call["audio_s"] = round(tr.audio_s, 2)
                    audio_s_now += tr.audio_s
                if prior is None and out_dir is not None:
                    _write_json(out_dir / f"{item.call_id}.json", call)
            except (CallscribeError, OSError, ValueError, RuntimeError) as exc:
                log.error("%s: not analysed: %s", item.path, exc)
                failed.append({"call_id": item.call_id, "path": str(item.path), "error": str(exc)})
                continue
            audio_s_all += float(call.get("audio_s", 0.0))
            result.calls.append(call)
            if on_progress is not None:
                on_progress(i + 1, len(items), audio_s_all)
    finally:
        for task in tasks.values():
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        if pipeline is not None:
            await pipeline.stop()
    wall_s = time.monotonic() - t0
    result.summary = _summary(result.calls, failed, resumed, audio_s_now, audio_s_all, wall_s, surge, out_dir)
    if labels is not None:
        from .keyword.evaluate import score

        result.summary["scores"] = score(result.calls, labels)
    if out_dir is not None:
        _write_json(out_dir / SUMMARY_NAME, result.summary)
    return result


async def _local_pipeline(cfg: Config):
    from .asr.engine import WhisperEngine
    from .pipeline import Pipeline

    engine = await asyncio.to_thread(WhisperEngine, cfg)
    return Pipeline(cfg, engine)


def _replay_history(prior: dict[str, Any], repeat, surge, started_at_ms: int) -> None:
    """A call analysed by an earlier run still counts for the repeat callers and surges after it."""
    from .keyword.analyzer import PriorCall

    key = prior.get("caller_hash") or ""
    if key:
        repeat.record_hash(key, PriorCall(prior["call_id"], int(prior.get("started_at_ms") or started_at_ms),
                                        str(prior.get("intent", "other")), bool(prior.get("unresolved"))))
    surge.observe("intent", str(prior.get("intent", "other")), prior["call_id"],
                  int(prior.get("started_at_ms") or started_at_ms) + int(prior.get("duration_ms") or 0))


def _summary(calls, failed, resumed, audio_s_now, audio_s_all, wall_s, surge, out_dir) -> dict[str, Any]:
    from .keyword.dialogue import _surge_json

    alerts: Counter[str] = Counter()
    for c in calls:
        for cat in {a["category"] for a in c.get("alerts", ())}:
            alerts[cat] += 1
    return {
        "calls": len(calls),
        "resumed": resumed,
        "analysed_now": len(calls) - resumed,
        "failed": failed,
        "audio_s": round(audio_s_all, 1),
        "audio_s_transcribed_now": round(audio_s_now, 1),
        "wall_s": round(wall_s, 1),
        "x_real_time": round(audio_s_now / wall_s, 2) if audio_s_now and wall_s > 0 else None,
        "intents": dict(Counter(c.get("intent", "other") for c in calls).most_common()),
        "calls_with_alert": dict(alerts.most_common()),
        "unresolved": sum(1 for c in calls if c.get("unresolved")),
        "surges": [_surge_json(s) for s in surge.fired],
        **({"out_dir": str(out_dir)} if out_dir is not None else {}),
    }
