"""One channel's VAD: sample chunks of any size in, endpointing events out, Silero-gated."""

from __future__ import annotations

import numpy as np

from callscribe.config import Config

from . import silero
from .endpointer import Endpointer, EndpointerConfig, SpeechAborted, SpeechEnded, SpeechStarted, VadEvent
from .webrtc import WebRtcClassifier


class ChannelVad:
    """Frames 16 kHz float32 audio into VAD frames, endpoints it, and drops segments Silero calls non-speech.

    ``speech_confirmed`` tells whether the open segment has passed the Silero gate yet (partials wait for
    that, so a burst of noise never shows as a caption).
    """

    def __init__(self, config: Config) -> None:
        self.cfg = config
        self.endpointer = Endpointer(
            EndpointerConfig(
                frame_ms=config.vad_frame_ms,
                start_ms=config.vad_start_ms,
                start_window_ms=config.vad_start_window_ms,
                hangover_ms=config.vad_hangover_ms,
                pre_roll_ms=config.vad_pre_roll_ms,
                min_speech_ms=config.vad_min_speech_ms,
                max_segment_ms=int(config.vad_max_segment_s * 1000),
            )
        )
        self.classifier = WebRtcClassifier(config.vad_aggressiveness)
        self._frame_len = self.endpointer.frame_len
        self._rest = np.zeros(0, np.float32)
        self._gate_checked_samples = 0
        self._gate_speech_ms = 0

    @property
    def now_ms(self) -> int:
        return self.endpointer.now_ms

    @property
    def in_speech(self) -> bool:
        return self.endpointer.in_speech

    def push(self, samples: np.ndarray) -> list[VadEvent]:
        buf = np.concatenate([self._rest, samples.astype(np.float32, copy=False)]) if self._rest.size else samples
        n = buf.size // self._frame_len
        events: list[VadEvent] = []
        if n:
            frames = buf[: n * self._frame_len].reshape(n, self._frame_len)
            for frame, flag in zip(frames, self.classifier.classify(frames)):
                for ev in self.endpointer.push(frame, flag):
                    events.append(self._gate(ev))
        self._rest = buf[n * self._frame_len :].copy()
        return events

    def flush(self) -> list[VadEvent]:
        return [self._gate(ev) for ev in self.endpointer.flush()]

    def current_audio(self) -> np.ndarray:
        return self.endpointer.current_audio()

    def speech_confirmed(self) -> bool:
        """Silero check of the open segment, incremental: only audio added since the last call is scored."""
        if not self.cfg.silero:
            return True
        if self._gate_speech_ms >= self.cfg.silero_min_speech_ms:
            return True
        audio = self.endpointer.current_audio()
        start = max(0, self._gate_checked_samples - silero.CHUNK)  # one chunk of overlap for context
        new = audio[start:]
        whole = (new.size // silero.CHUNK) * silero.CHUNK
        if whole:
            probs = silero.speech_probabilities(new[:whole])
            if start:
                probs = probs[1:]  # the overlap chunk was counted before
            self._gate_speech_ms += int(np.count_nonzero(probs >= self.cfg.silero_threshold) * 32)
            self._gate_checked_samples = start + whole
        return self._gate_speech_ms >= self.cfg.silero_min_speech_ms

    def _gate(self, ev: VadEvent) -> VadEvent:
        if isinstance(ev, SpeechStarted):
            self._gate_checked_samples = 0
            self._gate_speech_ms = 0
            return ev
        if isinstance(ev, SpeechEnded) and self.cfg.silero:
            if silero.speech_ms(ev.audio, self.cfg.silero_threshold) < self.cfg.silero_min_speech_ms:
                return SpeechAborted(ev.start_ms, "not_speech")
        return ev
