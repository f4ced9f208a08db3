"""webrtcvad frame classifier: float32 16 kHz frames in, speech yes/no out."""

from __future__ import annotations

import numpy as np
import webrtcvad

try:  # the C function behind webrtcvad.Vad.is_speech: called directly, a frame costs the C work alone
    from _webrtcvad import process as _process
except ImportError:  # pragma: no cover - another build of webrtcvad
    _process = None


class WebRtcClassifier:
    def __init__(self, aggressiveness: int = 2, sample_rate_hz: int = 16000) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self.sample_rate_hz = sample_rate_hz

    def classify(self, frames: np.ndarray) -> list[bool]:
        """Flags for consecutive frames (a [n, frame_len] array): one int16 conversion for all of them."""
        n = frames.shape[1]
        step = n * 2
        scaled = frames * 32767.0  # as callscribe.audio.float_to_pcm16, with ufuncs (np.clip's overhead is per call)
        np.minimum(scaled, 32767.0, out=scaled)
        np.maximum(scaled, -32767.0, out=scaled)
        data = scaled.astype("<i2").tobytes()
        rate = self.sample_rate_hz
        handle = getattr(self._vad, "_vad", None)
        if _process is not None and handle is not None:
            return [bool(_process(handle, rate, data[i : i + step], n)) for i in range(0, len(data), step)]
        return [self._vad.is_speech(data[i : i + step], rate) for i in range(0, len(data), step)]
