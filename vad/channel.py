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
        self._trailing_nonspeech_ms = 0  # Silero's view of the open segment's end
        self._silero = silero.SileroStream()

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
            events += self._silero_endpoint()
        self._rest = buf[n * self._frame_len :].copy()
        return events

    def flush(self) -> list[VadEvent]:
        return [self._gate(ev) for ev in self.endpointer.flush()]

    def current_audio(self) -> np.ndarray:
        return self.endpointer.current_audio()

    def speech_confirmed(self) -> bool:
        """Has Silero heard enough speech in the open segment (partials wait for that)?"""
        if not self.cfg.silero:
            return True
        self._score_new_audio()
        return self._gate_speech_ms >= self.cfg.silero_min_speech_ms

    def _score_new_audio(self) -> None:
        """Silero over the open segment, incrementally (whole 32 ms chunks added since the last call, the
        model's state carried over). Updates the speech heard and the trailing non-speech."""
        audio = self.endpointer.current_audio()
        new = audio[self._gate_checked_samples :]
        whole = (new.size // silero.CHUNK) * silero.CHUNK
        if not whole:
            return
        probs = self._silero.process(new[:whole])
        self._gate_checked_samples += whole
        self._gate_speech_ms += int(np.count_nonzero(probs >= self.cfg.silero_threshold) * 32)
        for p in probs:  # hysteresis: below the lower threshold counts as silence
            self._trailing_nonspeech_ms = 0 if p >= self.cfg.silero_threshold - 0.15 else self._trailing_nonspeech_ms + 32

    def _silero_endpoint(self) -> list[VadEvent]:
        """End the segment when Silero hears ``vad_hangover_ms`` of non-speech at its end, even where webrtcvad
        still fires (line noise, breathing, a noisy room): finals then come 0.4 s after the words, not 1-2 s."""
        if not (self.cfg.silero and self.endpointer.in_speech):
            return []
        self._score_new_audio()
        if self._gate_speech_ms >= self.cfg.silero_min_speech_ms and self._trailing_nonspeech_ms >= self.cfg.vad_hangover_ms:
            return [self._gate(ev) for ev in self.endpointer.end_now(self._trailing_nonspeech_ms)]
        return []

    def _gate(self, ev: VadEvent) -> VadEvent:
        if isinstance(ev, SpeechStarted):
            self._gate_checked_samples = 0
            self._gate_speech_ms = 0
            self._trailing_nonspeech_ms = 0
            self._silero.reset()
            return ev
        if isinstance(ev, SpeechEnded) and self.cfg.silero:
            if silero.speech_ms(ev.audio, self.cfg.silero_threshold) < self.cfg.silero_min_speech_ms:
                return SpeechAborted(ev.start_ms, "not_speech")
        return ev
