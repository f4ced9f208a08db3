"""Where each leg's audio goes in the recording: the call-time placement of separately arriving legs.

Pure (no clock, no I/O): the caller passes the wall time of each push (``now_s``, monotonic seconds), like
gateway/rtp/jitter.py does. Why this exists: the pipeline gets the legs of a call separately. Interleaved
WebSocket audio keeps them in lockstep, but SIPREC sends one RTP stream per leg, and a leg may start late (the
agent is bridged in after the IVR) or stop for a while (no packets, not even comfort noise). Writing each leg's
samples back to back would then slide that leg earlier than it was said. So a leg that has fallen behind the
other by more than ``tolerance_ms`` *and* that has really been silent for that long in wall time gets silence
inserted before its next audio, placing that audio at the call time the other leg has reached. The wall-time
condition keeps faster-than-real-time ingest (a file streamed at 10x, a client sending one leg in bursts of a
second) from getting silence it never had: there the lag is bursts, not time.

The recording's clock is therefore the leading leg's audio clock, the same clock the transcript's times use
(``Transcript.start_ms`` counts the samples a channel has received). Silence inserted into one leg shifts that
leg's later audio; :class:`TimeMap` maps a channel's transcript time to recording time (redaction needs it,
and so will replay). Both clocks are equal for interleaved audio and for legs that both started at once.

``catch_up`` pads a leg that has sent nothing for longer than ``max_skew_ms`` while the other leg went on, so
the writer never holds more than about that much of the other leg unwritten (crash safety, bounded memory).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

TOLERANCE_MS = 100
"""A lag below this is jitter (RTP ticks, jitter-buffer depth), never padded."""
MAX_SKEW_MS = 1000
"""A leg silent in wall time for longer than this is padded up to the other leg without waiting for it."""


@dataclass(frozen=True, slots=True)
class TimeMap:
    """Channel time -> recording time. ``shifts[c]`` lists ``(channel_ms, shift_ms)`` in order: from
    ``channel_ms`` on, channel ``c``'s audio sits ``shift_ms`` later in the recording (silence inserted before)."""

    shifts: tuple[tuple[tuple[int, int], ...], ...] = ()

    def to_recording_ms(self, channel: int, channel_ms: int) -> int:
        if channel >= len(self.shifts) or not self.shifts[channel]:
            return channel_ms
        points = self.shifts[channel]
        i = bisect.bisect_right([p[0] for p in points], channel_ms) - 1
        return channel_ms + (points[i][1] if i >= 0 else 0)

    def to_json(self) -> list[list[list[int]]]:
        return [[[a, s] for a, s in ch] for ch in self.shifts]

    @classmethod
    def from_json(cls, data: object) -> "TimeMap":
        if not isinstance(data, list):
            raise ValueError("shifts must be a list per channel")
        return cls(tuple(tuple((int(a), int(s)) for a, s in ch) for ch in data))


@dataclass(slots=True)
class LegTimeline:
    """Placement of ``channels`` legs at ``rate_hz``; counts in samples. Mutable: owned by one writer."""

    channels: int
    rate_hz: int
    start_s: float = 0.0
    tolerance_ms: int = TOLERANCE_MS
    max_skew_ms: int = MAX_SKEW_MS
    audio: list[int] = field(init=False)
    """Samples each channel received (its transcript clock)."""
    placed: list[int] = field(init=False)
    """Samples each channel occupies in the recording (audio + inserted silence)."""
    _clock: list[float] = field(init=False)
    _resuming: list[bool] = field(init=False)
    _shifts: list[list[tuple[int, int]]] = field(init=False)

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ValueError("a recording has at least one channel")
        self.audio = [0] * self.channels
        self.placed = [0] * self.channels
        self._clock = [self.start_s] * self.channels
        self._resuming = [False] * self.channels
        self._shifts = [[] for _ in range(self.channels)]

    @property
    def length(self) -> int:
        """Samples of the recording so far (the leading leg)."""
        return max(self.placed)

    def place(self, channel: int, n: int, now_s: float) -> int:
        """``channel`` brings ``n`` samples at ``now_s``: the silence (samples) to write before them."""
        pad = 0
        if self.channels > 1:
            lead = max(p for j, p in enumerate(self.placed) if j != channel)
            gap = lead - n - self.placed[channel]
            elapsed = int((now_s - self._clock[channel]) * self.rate_hz)
            pad = max(0, min(gap, elapsed))
            if pad <= self._samples(self.tolerance_ms) and not self._resuming[channel]:
                pad = 0
            if pad:
                self._insert(channel, pad)
        self._resuming[channel] = False
        self._clock[channel] = max(self._clock[channel], now_s)
        self.audio[channel] += n
        self.placed[channel] += n
        return pad

    def catch_up(self, now_s: float) -> list[tuple[int, int]]:
        """``(channel, silence samples)`` to write now for legs silent (in wall time) past ``max_skew_ms``."""
        out: list[tuple[int, int]] = []
        if self.channels < 2:
            return out
        lead = self.length
        skew = self._samples(self.max_skew_ms)
        for j in range(self.channels):
            lag = lead - self.placed[j]
            elapsed = int((now_s - self._clock[j]) * self.rate_hz)
            if lag <= skew or elapsed <= skew:
                continue
            pad = min(lag, elapsed) - self._samples(self.tolerance_ms)
            if pad > 0:
                self._insert(j, pad)
                self._resuming[j] = True  # at its next audio the rest of the gap is filled, however small
                out.append((j, pad))
                self._clock[j] += pad / self.rate_hz  # wall time accounted for; the rest counts at its return
        return out

    def finish(self) -> list[tuple[int, int]]:
        """``(channel, silence samples)`` bringing every leg to the recording's length (the call's end)."""
        lead = self.length
        out = [(j, lead - p) for j, p in enumerate(self.placed) if lead > p]
        for j, pad in out:
            self.placed[j] += pad
        return out

    def time_map(self) -> TimeMap:
        rate = self.rate_hz
        return TimeMap(tuple(tuple((a * 1000 // rate, s * 1000 // rate) for a, s in ch) for ch in self._shifts))

    def _insert(self, channel: int, pad: int) -> None:
        total = (self._shifts[channel][-1][1] if self._shifts[channel] else 0) + pad
        self._shifts[channel].append((self.audio[channel], total))
        self.placed[channel] += pad

    def _samples(self, ms: int) -> int:
        return self.rate_hz * ms // 1000


__all__ = ["LegTimeline", "TimeMap", "TOLERANCE_MS", "MAX_SKEW_MS"]
