"""webrtcvad frame classifier: float32 16 kHz frames in, speech yes/no out."""

from __future__ import annotations

import numpy as np
import webrtcvad


class WebRtcClassifier:
    def __init__(self, aggressiveness: int = 2, sample_rate_hz: int = 16000) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self.sample_rate_hz = sample_rate_hz

    def is_speech(self, frame: np.ndarray) -> bool:
        pcm = (np.clip(frame, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        return self._vad.is_speech(pcm, self.sample_rate_hz)

    def classify(self, frames: np.ndarray) -> list[bool]:
        """Flags for consecutive frames (a [n, frame_len] array): one int16 conversion for all of them."""
        pcm = (np.clip(frames, -1.0, 1.0) * 32767.0).astype("<i2")
        step = pcm.shape[1] * 2
        data = pcm.tobytes()
        return [self._vad.is_speech(data[i : i + step], self.sample_rate_hz) for i in range(0, len(data), step)]
