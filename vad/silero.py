"""Silero VAD gate, using the ONNX model that ships inside faster-whisper (no download).

webrtcvad fires on any loud periodic sound (hold music, DTMF, line noise); Silero is a neural speech
detector that rejects those. It runs only inside open segments (never on silence between them), on the audio
added since the last push: its probabilities drive the endpoint, confirm speech for partials, and gate each
finished segment (see vad/channel.py).

Two ways to run it:
- :class:`SileroStream` / :func:`speech_probabilities`: one stream, the shipped model as is;
- :func:`score_jobs`: many streams' new chunks in ONE ONNX call (:class:`SileroJob`, one per stream), on
  ``silero_vad_v6_batched.onnx``, the same weights with an LSTM state per stream (built from the shipped model
  by vad/build_silero_batched.py). The pipeline scores every live channel this way once per tick; per chunk it
  costs about half of what one call per channel does, and none of the per-call overhead.
Both give the same probabilities (tests/test_vad_batch.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

CHUNK = 512  # samples at 16 kHz (32 ms): the window Silero v5/v6 expects
CONTEXT = 64  # samples of the previous chunk the model sees with each chunk
HIDDEN = 128
BATCHED_MODEL = Path(__file__).with_name("silero_vad_v6_batched.onnx")
MAX_STEPS = 8
"""Jobs of up to this many chunks share the one padded call; longer ones (a segment re-scored from its start,
rare) get calls of their own, so one long job never pads everyone's rows."""


@lru_cache(maxsize=1)
def _model():
    from faster_whisper.vad import get_vad_model

    return get_vad_model()


_lock = threading.Lock()


def speech_probabilities(audio: np.ndarray) -> np.ndarray:
    """One probability per 32 ms chunk of 16 kHz float32 audio (zero-padded to a whole chunk).

    Scores with a fresh :class:`SileroStream`, which never writes into its input (faster-whisper's own wrapper
    zeroes the last 64 samples of a whole-chunk input in place)."""
    if audio.size == 0:
        return np.zeros(0, np.float32)
    pad = (-audio.size) % CHUNK
    if pad:
        audio = np.pad(audio, (0, pad))
    return SileroStream().process(audio)


def speech_ms(audio: np.ndarray, threshold: float) -> int:
    """Milliseconds of ``audio`` Silero judges to be speech."""
    probs = speech_probabilities(audio)
    return int(np.count_nonzero(probs >= threshold) * CHUNK * 1000 // 16000)


@lru_cache(maxsize=1)
def _batched_session():
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(str(BATCHED_MODEL), providers=["CPUExecutionProvider"], sess_options=opts)


@dataclass(slots=True, eq=False)
class SileroJob:
    """New chunks of one stream to score, continuing its past.

    ``audio``: float32, a whole number of CHUNKs; ``context``: the CONTEXT samples before it (zeros at a stream's
    start); ``h``/``c``: the LSTM state after the stream's last scored chunk ([HIDDEN] each, zeros at the start).
    :func:`score_jobs` fills ``probs`` (one per chunk) and ``h_out``/``c_out``; ``error`` if the job failed."""

    audio: np.ndarray
    context: np.ndarray
    h: np.ndarray
    c: np.ndarray
    probs: np.ndarray | None = None
    h_out: np.ndarray | None = None
    c_out: np.ndarray | None = None
    error: str = ""
    steps: int = field(init=False)

    def __post_init__(self) -> None:
        self.steps = self.audio.size // CHUNK

    @classmethod
    def fresh(cls, audio: np.ndarray) -> "SileroJob":
        """A stream scored from its start (zero state and context)."""
        zeros = np.zeros(HIDDEN, np.float32)
        return cls(audio, np.zeros(CONTEXT, np.float32), zeros, zeros)


def score_jobs(jobs: list[SileroJob]) -> int:
    """Score every job; returns the number of ONNX calls made. Jobs of up to MAX_STEPS chunks go in one call
    (each chunk one encoder row, placed on the LSTM's time-major grid by ``slots``; each stream's LSTM state its
    own, ``lengths`` stopping each at its last chunk); longer ones in calls of their own. Streams never mix: a row only ever sees its own audio and state, so one
    stream's content cannot change another's probabilities. If a call fails, its jobs are retried one by one
    and only the one that fails again is marked (``error``, ``probs`` None)."""
    todo = [j for j in jobs if j.steps > 0]
    for j in jobs:
        if j.steps == 0:
            j.probs, j.h_out, j.c_out = np.zeros(0, np.float32), j.h, j.c
    short = [j for j in todo if j.steps <= MAX_STEPS]
    groups = ([short] if short else []) + [[j] for j in todo if j.steps > MAX_STEPS]
    calls = 0
    for group in groups:
        calls += 1
        try:
            _run(group)
        except Exception as exc:
            if len(group) == 1:
                group[0].error = f"silero: {exc!r}"
                continue
            for j in group:
                calls += 1
                try:
                    _run([j])
                except Exception as exc1:
                    j.error = f"silero: {exc1!r}"
    return calls


def _run(group: list[SileroJob]) -> None:
    n = len(group)
    steps = max(j.steps for j in group)
    real = sum(j.steps for j in group)
    rows = np.empty((real, CONTEXT + CHUNK), np.float32)
    slots = np.full((steps, n), real, np.int64)  # time-major grid; `real` = the zero row (past a stream's end)
    row = 0
    for b, j in enumerate(group):
        k = j.steps
        chunks = j.audio[: k * CHUNK].reshape(k, CHUNK)
        block = rows[row : row + k]
        block[:, CONTEXT:] = chunks
        block[0, :CONTEXT] = j.context
        if k > 1:
            block[1:, :CONTEXT] = chunks[:-1, -CONTEXT:]
        slots[:k, b] = np.arange(row, row + k)
        row += k
    h = np.stack([j.h for j in group])[None]
    c = np.stack([j.c for j in group])[None]
    lengths = np.array([j.steps for j in group], np.int32)
    feeds = {"input": rows, "h": h, "c": c, "slots": slots.reshape(-1), "lengths": lengths}
    probs, hn, cn = _batched_session().run(None, feeds)
    probs = np.asarray(probs, np.float32).reshape(n, steps)
    for b, j in enumerate(group):
        j.probs, j.h_out, j.c_out = probs[b, : j.steps].copy(), hn[0, b].copy(), cn[0, b].copy()


class SileroStream:
    """Silero over a growing signal, chunk by chunk, carrying the model's recurrent state and 64-sample
    context between calls, so scoring audio in pieces gives the same probabilities as scoring it whole
    (faster-whisper's wrapper resets the state on every call, which makes incremental use drift)."""

    CONTEXT = 64

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(self.CONTEXT, np.float32)

    def process(self, audio: np.ndarray) -> np.ndarray:
        """Probabilities for ``audio`` (a whole number of 512-sample chunks, continuing the last call)."""
        if audio.size == 0:
            return np.zeros(0, np.float32)
        chunks = np.asarray(audio, np.float32).reshape(-1, CHUNK)
        contexts = np.concatenate([self._context[None, :], chunks[:-1, -self.CONTEXT :]], axis=0)
        batch = np.concatenate([contexts, chunks], axis=1)
        with _lock:
            out, self._h, self._c = _model().session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = chunks[-1, -self.CONTEXT :].copy()
        return np.asarray(out, np.float32).reshape(-1)
