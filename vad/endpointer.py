"""Endpointing state machine: per-frame speech flags in, utterance boundaries out. Pure logic, no I/O.

States: SILENCE -> (enough voiced frames in a short window) -> SPEECH -> (trailing silence >= hangover) ->
SILENCE. A segment keeps ``pre_roll_ms`` of audio before the onset (so first consonants are not clipped) and
a little trailing silence (Whisper ends words more reliably with some). A segment longer than
``max_segment_ms`` is cut at its quietest frame in the second half, and the rest continues as the next
segment, so every segment fits one 30 s Whisper window. Segments with less than ``min_speech_ms`` of voiced
audio are aborted (coughs, clicks).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np


@dataclass(frozen=True, slots=True)
class EndpointerConfig:
    frame_ms: int = 20
    start_ms: int = 120
    start_window_ms: int = 200
    hangover_ms: int = 500
    pre_roll_ms: int = 200
    tail_ms: int = 200
    min_speech_ms: int = 250
    max_segment_ms: int = 20_000
    lead_ms: int = 0  # audio before the segment (before its pre-roll) handed over with it, outside its times


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    start_ms: int
    onset_ms: int = 0
    """Where the first voiced frame is, from ``start_ms`` (the pre-roll before it): detectors that judge the
    segment start there (Silero, from a fresh state, misses speech that follows silence; see vad/channel.py)."""


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """A finished utterance. ``audio`` is float32 16 kHz, owned by the receiver. ``lead``: up to ``lead_ms`` of
    the audio just before it (not part of the segment: its times are ``start_ms``..``end_ms``), for a decoder
    that wants more lead-in than the pre-roll."""

    audio: np.ndarray
    start_ms: int
    end_ms: int
    voiced_ms: int
    reason: Literal["silence", "max_length", "flush"]
    lead: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class SpeechAborted:
    start_ms: int
    reason: str


VadEvent = Union[SpeechStarted, SpeechEnded, SpeechAborted]


class Endpointer:
    """Feed one frame at a time with ``push(frame, is_speech)``; collect the events it returns.

    Time is counted in frames from the first frame pushed, so ``start_ms``/``end_ms`` are offsets into the
    channel's audio, independent of wall-clock.
    """

    def __init__(self, config: EndpointerConfig | None = None, sample_rate_hz: int = 16000) -> None:
        self.cfg = config or EndpointerConfig()
        self.frame_len = sample_rate_hz * self.cfg.frame_ms // 1000
        f = self.cfg.frame_ms
        self._start_frames = max(1, self.cfg.start_ms // f)
        self._window = deque(maxlen=max(self._start_frames, self.cfg.start_window_ms // f))
        self._pre_roll_frames = self.cfg.pre_roll_ms // f
        self._lead_frames = self.cfg.lead_ms // f
        self._pre_roll: deque[np.ndarray] = deque(maxlen=self._window.maxlen + self._pre_roll_frames + self._lead_frames)
        self._lead: list[np.ndarray] = []
        self._hangover_frames = max(1, self.cfg.hangover_ms // f)
        self._tail_frames = min(self._hangover_frames, self.cfg.tail_ms // f)
        self._max_frames = max(2, self.cfg.max_segment_ms // f)
        self._min_voiced_frames = max(1, self.cfg.min_speech_ms // f)
        self.frames_seen = 0
        self.in_speech = False
        self._seg: list[np.ndarray] = []
        self._seg_voiced: list[bool] = []
        self._seg_start_frame = 0
        self._silence_run = 0

    # --- public ------------------------------------------------------------------------------------
    @property
    def segment_start_ms(self) -> int:
        return self._seg_start_frame * self.cfg.frame_ms

    @property
    def now_ms(self) -> int:
        return self.frames_seen * self.cfg.frame_ms

    def current_audio(self) -> np.ndarray:
        """Audio of the segment in progress (for partials); empty when not in speech."""
        if not self.in_speech or not self._seg:
            return np.zeros(0, np.float32)
        return np.concatenate(self._seg)

    def audio_since(self, sample_offset: int) -> np.ndarray:
        """Audio of the segment in progress from ``sample_offset`` (samples from its start) on: what Silero has
        not scored yet, without joining the whole segment on every push."""
        if not self.in_speech:
            return np.zeros(0, np.float32)
        first, skip = divmod(sample_offset, self.frame_len)
        if first >= len(self._seg):
            return np.zeros(0, np.float32)
        return np.concatenate(self._seg[first:])[skip:]

    def push(self, frame: np.ndarray, is_speech: bool) -> list[VadEvent]:
        events: list[VadEvent] = []
        self.frames_seen += 1
        if not self.in_speech:
            self._pre_roll.append(frame)
            self._window.append(is_speech)
            if sum(self._window) >= self._start_frames:
                self.in_speech = True
                # the segment starts pre_roll_ms before the first voiced frame of the onset window
                flags = list(self._window)
                from_first_voiced = len(flags) - flags.index(True)
                keep = min(len(self._pre_roll), from_first_voiced + self._pre_roll_frames)
                history = list(self._pre_roll)
                self._seg = history[-keep:]
                self._lead = history[max(0, len(history) - keep - self._lead_frames) : len(history) - keep]
                self._seg_voiced = ([False] * keep + flags)[-keep:]
                self._seg_start_frame = self.frames_seen - len(self._seg)
                self._silence_run = 0
                self._pre_roll.clear()
                self._window.clear()
                events.append(SpeechStarted(self.segment_start_ms, (keep - from_first_voiced) * self.cfg.frame_ms))
            return events

        self._seg.append(frame)
        self._seg_voiced.append(is_speech)
        self._silence_run = 0 if is_speech else self._silence_run + 1
        if self._silence_run >= self._hangover_frames:
            events.append(self._close(keep_frames=len(self._seg) - self._silence_run + self._tail_frames, reason="silence"))
        elif len(self._seg) >= self._max_frames:
            events.extend(self._cut_at_quietest())
        return events

    def push_many(self, frames, flags: list[bool]) -> list[VadEvent]:
        """``push`` for consecutive frames, with the same events; in silence, a run of frames that cannot hold an
        onset is taken in one step (most of a call's frames on a channel are the other side talking)."""
        events: list[VadEvent] = []
        i, n = 0, len(flags)
        while i < n:
            if not self.in_speech and sum(self._window) + sum(flags[i:]) < self._start_frames:
                # no window can reach start_frames voiced frames: none of these frames opens a segment
                self._pre_roll.extend(frames[i:])
                self._window.extend(flags[i:])
                self.frames_seen += n - i
                break
            out = self.push(frames[i], flags[i])
            if out:
                events.extend(out)
            i += 1
        return events

    def end_now(self, trailing_silence_ms: int) -> list[VadEvent]:
        """Close the open segment because another detector (Silero) heard ``trailing_silence_ms`` of non-speech
        at its end; like a hangover endpoint, the tail is kept and the rest of the silence trimmed."""
        if not self.in_speech:
            return []
        silence = min(len(self._seg), max(self._silence_run, trailing_silence_ms // self.cfg.frame_ms))
        return [self._close(keep_frames=len(self._seg) - silence + self._tail_frames, reason="silence")]

    def flush(self) -> list[VadEvent]:
        """End of stream: close any open segment (its trailing silence trimmed like an endpoint)."""
        if not self.in_speech:
            return []
        return [self._close(keep_frames=len(self._seg) - self._silence_run + self._tail_frames, reason="flush")]

    # --- internals ---------------------------------------------------------------------------------
    def _close(self, keep_frames: int, reason: str) -> VadEvent:
        keep = max(1, min(keep_frames, len(self._seg)))
        voiced = sum(self._seg_voiced[:keep])
        start_ms = self.segment_start_ms
        audio = np.concatenate(self._seg[:keep])
        lead = self._lead_audio()
        self._reset()
        if voiced < self._min_voiced_frames:
            return SpeechAborted(start_ms, "too_short")
        end_ms = start_ms + keep * self.cfg.frame_ms
        return SpeechEnded(audio, start_ms, end_ms, voiced * self.cfg.frame_ms, reason, lead)  # type: ignore[arg-type]

    def _lead_audio(self) -> np.ndarray | None:
        return np.concatenate(self._lead) if self._lead else None

    def _cut_at_quietest(self) -> list[VadEvent]:
        energies = np.array([float(np.dot(f, f)) for f in self._seg])
        half = len(self._seg) // 2
        # smooth over 5 frames so one quiet frame inside a word does not win; divide by the frames actually in
        # each window, or the zero padding of mode="same" makes the last frames look quiet and always win
        kernel = np.ones(5)
        smooth = np.convolve(energies, kernel, mode="same") / np.convolve(np.ones_like(energies), kernel, mode="same")
        cut = half + int(np.argmin(smooth[half:]))
        cut = max(1, min(cut, len(self._seg) - 1))
        start_ms = self.segment_start_ms
        voiced = sum(self._seg_voiced[:cut])
        audio = np.concatenate(self._seg[:cut])
        lead = self._lead_audio()
        self._lead = self._seg[max(0, cut - self._lead_frames) : cut] if self._lead_frames else []
        rest, rest_flags = self._seg[cut:], self._seg_voiced[cut:]
        self._seg, self._seg_voiced = rest, rest_flags
        self._seg_start_frame += cut
        self._silence_run = 0
        for flag in reversed(rest_flags):
            if flag:
                break
            self._silence_run += 1
        end_ms = start_ms + cut * self.cfg.frame_ms
        return [
            SpeechEnded(audio, start_ms, end_ms, voiced * self.cfg.frame_ms, "max_length", lead),
            SpeechStarted(self.segment_start_ms),
        ]

    def _reset(self) -> None:
        self.in_speech = False
        self._lead = []
        self._seg = []
        self._seg_voiced = []
        self._silence_run = 0
        self._window.clear()
        self._pre_roll.clear()
