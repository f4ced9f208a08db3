"""RTP payload decoding: playout slots of one stream -> 16 kHz float32 mono audio, losses concealed.

G.711 (PCMU/PCMA) reuses callscribe.audio's tables. G.722 uses the optional PyPI package ``g722`` (module
``G722``, a C extension of the ITU-T reference codec: ``G722.G722(16000, 64000).decode(bytes)`` returns 16 kHz
int16 samples and keeps the ADPCM state between calls); it is not a dependency of callscribe, so G722 is in
SUPPORTED only where that package imports. G.722's RTP clock is 8000 although it samples at 16 kHz (RFC 3551
section 4.5.2), which is why Codec keeps the two rates apart.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from callscribe.audio import TARGET_RATE_HZ, StreamResampler, decode_bytes, pcm16_to_float
from callscribe.errors import AudioFormatError

from .jitter import Playout

try:  # optional: pip install g722
    import G722 as _g722
except ImportError:  # pragma: no cover - depends on the environment
    _g722 = None


@dataclass(frozen=True, slots=True)
class Codec:
    """A payload format as negotiated in SDP (``a=rtpmap:<payload_type> <name>/<clock_rate>``)."""

    name: str  # "PCMU" | "PCMA" | "G722"
    payload_type: int
    clock_rate: int  # RTP timestamp clock: 8000 for all three
    sample_rate_hz: int  # audio actually carried: 8000 for G.711, 16000 for G.722


PCMU = Codec("PCMU", 0, 8000, 8000)
PCMA = Codec("PCMA", 8, 8000, 8000)
G722 = Codec("G722", 9, 8000, 16000)

SUPPORTED: dict[str, Codec] = {"PCMU": PCMU, "PCMA": PCMA}  # codec name -> its static-PT definition
if _g722 is not None:
    SUPPORTED["G722"] = G722

STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000)}
COMFORT_NOISE_PT = 13  # RFC 3389: a noise level, no speech; decoded as silence
_G711 = {"PCMU": "mulaw", "PCMA": "alaw"}


def codec_for(name: str, payload_type: int) -> Codec:
    """The Codec for an rtpmap entry (``name`` case-insensitive). Raises AudioFormatError if we cannot
    decode it (G722 needs the optional ``g722`` package)."""
    base = SUPPORTED.get(name.upper())
    if base is None:
        hint = " (install the optional `g722` package)" if name.upper() == "G722" else ""
        raise AudioFormatError(f"cannot decode RTP payload {name!r}{hint}; supported: {', '.join(SUPPORTED)}")
    return Codec(base.name, payload_type, base.clock_rate, base.sample_rate_hz)


@functools.cache
def _resampler_lag(rate_hz: int) -> int:
    """Output samples a fresh StreamResampler(rate_hz -> 16 kHz) can owe at most: soxr's HQ streaming mode
    releases output in blocks of ~100 ms, so we measure its worst shortfall once (plus 5 ms of margin)."""
    rs = StreamResampler(rate_hz, TARGET_RATE_HZ)
    step = max(1, rate_hz // 200)
    needed = produced = lag = 0
    for _ in range(400):  # 2 s in 5 ms steps
        produced += len(rs.process(np.zeros(step, np.float32)))
        needed += step * TARGET_RATE_HZ // rate_hz
        lag = max(lag, needed - produced)
    return lag + TARGET_RATE_HZ // 200


@dataclass(slots=True)
class DecoderStats:
    slots: int = 0
    concealed_ms: float = 0.0  # lost slots filled by concealment (including the faded-to-zero part)
    unknown_payloads: int = 0  # audio slots of a payload type we cannot decode (played as zeros)
    underrun_samples: int = 0  # zeros padded because the resampler had not caught up (codec switch)


class StreamAudioDecoder:
    """Playout slots of one RTP stream -> 16 kHz float32 mono numpy audio, with packet-loss concealment.

    Each :meth:`decode` returns exactly ``slot.duration * 16000 / clock_rate`` samples (rounding carried
    over), so sample counts are a faithful clock of the stream. The 8 kHz -> 16 kHz resampler keeps its state
    across slots (no clicks at packet edges); because soxr releases its output in ~100 ms blocks, the output
    is delayed by ``latency_samples`` of leading zeros, and :meth:`flush` returns the held tail at the end.

    Concealment (lost slots) is done at the codec's own rate, before resampling, in the spirit of
    ITU-T G.711 Appendix I: the last pitch period of the decoded history is repeated, at full level for
    10 ms, then fading linearly to zero at 60 ms of consecutive loss; the first 4 ms after a loss are
    cross-faded from the concealment into the real audio. Short losses thus sound like the speech going on
    (which is what VAD and Whisper should hear); long ones become silence rather than a buzz.
    """

    HISTORY_MS = 30
    FULL_GAIN_MS = 10
    FADE_END_MS = 60
    CROSSFADE_MS = 4

    def __init__(self, codec: Codec, others: Mapping[int, Codec] | None = None) -> None:
        """``others``: further payload types negotiated for the stream (a peer may switch among them);
        static payload types 0, 8 and 9 are known without being listed."""
        if codec.name not in SUPPORTED:
            codec_for(codec.name, codec.payload_type)  # raises with the reason
        self.codec = codec
        self._others = dict(others or {})
        self._g722: dict[int, object] = {}  # payload type -> stateful G.722 decoder
        self.stats = DecoderStats()
        self._units = 0  # stream time decoded, in RTP timestamp units
        self._out = 0  # samples returned
        self._reset_signal(codec.sample_rate_hz)
        self.latency_samples = len(self._fifo)

    # --- public ------------------------------------------------------------------------------------
    def decode(self, slot: Playout) -> np.ndarray:
        self.stats.slots += 1
        self._units += max(0, slot.duration)
        total = self._units * TARGET_RATE_HZ // self.codec.clock_rate
        n, self._out = total - self._out, total
        if slot.kind == "audio":
            decoded = self._decode_payload(slot.payload_type, slot.payload)
            if decoded is None:
                self._push(self._silence(slot.duration, self._rate), self._rate)
            else:
                samples, rate = decoded
                self._push(self._resume(samples, rate), rate)
        elif slot.kind == "lost":
            self.stats.concealed_ms += slot.duration * 1000 / self.codec.clock_rate
            self._push(self._conceal(self._native(slot.duration, self._rate)), self._rate)
        else:
            self._push(self._silence(slot.duration, self._rate), self._rate)
        return self._take(n)

    def flush(self) -> np.ndarray:
        """End of stream: the audio still inside the resampler and the output queue. The decoder starts
        afresh afterwards."""
        tail = [self._fifo]
        if self._resampler is not None:
            tail.append(self._resampler.process(np.zeros(0, np.float32), last=True))
        out = np.clip(np.concatenate(tail), -1.0, 1.0).astype(np.float32)
        self._reset_signal(self.codec.sample_rate_hz)
        return out

    # --- payloads ----------------------------------------------------------------------------------
    def _codec_of(self, payload_type: int) -> Codec | None:
        if payload_type == self.codec.payload_type:
            return self.codec
        if payload_type in self._others:
            return self._others[payload_type]
        static = STATIC_PAYLOAD_TYPES.get(payload_type)
        return SUPPORTED.get(static[0]) if static else None

    def _decode_payload(self, payload_type: int, payload: bytes) -> tuple[np.ndarray, int] | None:
        """(float samples, their rate), or None for a payload we cannot decode (counted)."""
        if payload_type == COMFORT_NOISE_PT:
            return None
        codec = self._codec_of(payload_type)
        if codec is None or codec.name not in SUPPORTED:
            self.stats.unknown_payloads += 1
            return None
        if codec.name in _G711:
            return pcm16_to_float(decode_bytes(payload, _G711[codec.name])), 8000
        dec = self._g722.get(payload_type)
        if dec is None:
            dec = self._g722[payload_type] = _g722.G722(16000, 64000)
        pcm = np.frombuffer(dec.decode(bytes(payload)), dtype=np.int16)
        return pcm16_to_float(pcm), 16000

    # --- signal path -------------------------------------------------------------------------------
    def _reset_signal(self, rate: int) -> None:
        self._rate = rate
        self._resampler = None if rate == TARGET_RATE_HZ else StreamResampler(rate, TARGET_RATE_HZ)
        lag = 0 if self._resampler is None else _resampler_lag(rate)
        self._fifo = np.zeros(lag, np.float32)
        self._history = np.zeros(0, np.float32)
        self._loss_run = 0
        self._period = 1

    def _native(self, duration: int, rate: int) -> int:
        return max(0, round(duration * rate / self.codec.clock_rate))

    def _push(self, samples: np.ndarray, rate: int) -> None:
        """Into the output queue, through the resampler of ``rate`` (switching it if the codec changed)."""
        if rate != self._rate:
            if self._resampler is not None:
                self._fifo = np.concatenate([self._fifo, self._resampler.process(np.zeros(0, np.float32), last=True)])
            self._rate = rate
            self._resampler = None if rate == TARGET_RATE_HZ else StreamResampler(rate, TARGET_RATE_HZ)
        out = samples if self._resampler is None else self._resampler.process(samples)
        self._fifo = np.concatenate([self._fifo, out.astype(np.float32, copy=False)])
        limit = TARGET_RATE_HZ + _resampler_lag(8000)  # a payload/duration mismatch must not grow it forever
        if len(self._fifo) > limit:
            self._fifo = self._fifo[-limit:]

    def _take(self, n: int) -> np.ndarray:
        out, self._fifo = self._fifo[:n], self._fifo[n:]
        if len(out) < n:
            self.stats.underrun_samples += n - len(out)
            out = np.concatenate([out, np.zeros(n - len(out), np.float32)])
        return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)

    def _silence(self, duration: int, rate: int) -> np.ndarray:
        self._history = np.zeros(0, np.float32)
        self._loss_run = 0
        return np.zeros(self._native(duration, rate), np.float32)

    # --- concealment -------------------------------------------------------------------------------
    def _resume(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """Real audio after a loss: cross-fade in from where the concealment would have gone on."""
        samples = samples.astype(np.float32)
        if rate != self._rate:
            self._history = np.zeros(0, np.float32)
            self._loss_run = 0
        if self._loss_run and len(self._history):
            k = min(len(samples), rate * self.CROSSFADE_MS // 1000)
            ramp = np.linspace(0.0, 1.0, k, endpoint=False, dtype=np.float32)
            samples[:k] = ramp * samples[:k] + (1 - ramp) * self._extend(k, rate)
        self._loss_run = 0
        self._history = np.concatenate([self._history, samples])[-rate * self.HISTORY_MS // 1000:]
        return samples

    def _conceal(self, k: int) -> np.ndarray:
        if not len(self._history):
            return np.zeros(k, np.float32)
        if self._loss_run == 0:
            self._period = _pitch_period(self._history, self._rate)
        out = self._extend(k, self._rate)
        self._loss_run += k
        return out

    def _extend(self, k: int, rate: int) -> np.ndarray:
        """The next ``k`` samples of the faded periodic continuation of the history."""
        idx = self._loss_run + np.arange(k)
        h, p = self._history, min(self._period, len(self._history))
        full, end = rate * self.FULL_GAIN_MS // 1000, rate * self.FADE_END_MS // 1000
        gain = np.clip((end - idx) / max(1, end - full), 0.0, 1.0).astype(np.float32)
        return (h[len(h) - p + idx % p] * gain).astype(np.float32)


def _pitch_period(history: np.ndarray, rate: int) -> int:
    """The lag (2.5..15 ms) at which the last 10 ms best match the signal before them; 20 ms (or the whole
    history) when nothing correlates, as in unvoiced sounds, so that noise is not turned into a buzz."""
    w = rate // 100
    lo, hi = rate // 400, min(rate * 15 // 1000, len(history) - w)
    fallback = min(len(history), rate // 50)
    if hi < lo or w <= 0:
        return max(1, fallback)
    tail = history[-w:].astype(np.float64)
    lags = np.arange(lo, hi + 1)
    segs = np.stack([history[len(history) - w - lag: len(history) - lag] for lag in lags]).astype(np.float64)
    corr = segs @ tail / np.sqrt((segs * segs).sum(axis=1) * (tail @ tail) + 1e-12)
    best = int(np.argmax(corr))
    return int(lags[best]) if corr[best] >= 0.5 else max(1, fallback)


__all__ = [
    "Codec",
    "PCMU",
    "PCMA",
    "G722",
    "SUPPORTED",
    "STATIC_PAYLOAD_TYPES",
    "COMFORT_NOISE_PT",
    "codec_for",
    "StreamAudioDecoder",
    "DecoderStats",
]
