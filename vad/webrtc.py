"""webrtcvad frame classifier: float32 16 kHz frames in, speech yes/no out."""

from __future__ import annotations

import numpy as np
import webrtcvad

from callscribe.audio import float_to_pcm16


class WebRtcClassifier:
    def __init__(self, aggressiveness: int = 2, sample_rate_hz: int = 16000) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self.sample_rate_hz = sample_rate_hz

    def classify(self, frames: np.ndarray) -> list[bool]:
        """Flags for consecutive frames (a [n, frame_len] array): one int16 conversion for all of them."""
        step = frames.shape[1] * 2
        data = float_to_pcm16(frames).astype("<i2", copy=False).tobytes()
        return [self._vad.is_speech(data[i : i + step], self.sample_rate_hz) for i in range(0, len(data), step)]
