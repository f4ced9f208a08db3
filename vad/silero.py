"""Silero VAD gate, using the ONNX model that ships inside faster-whisper (no download).

webrtcvad fires on any loud periodic sound (hold music, DTMF, line noise); Silero is a neural speech
detector that rejects those. It runs only inside open segments (never on silence between them): on the audio
added since the last push, for the endpoint and for partials (:class:`SileroStream`), and once more over each
finished segment as its gate.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

CHUNK = 512  # samples at 16 kHz (32 ms): the window Silero v5/v6 expects


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
