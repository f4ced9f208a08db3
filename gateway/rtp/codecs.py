"""RTP payload decoding: playout slots of one stream -> 16 kHz float32 mono audio, losses concealed.

G.711 (PCMU/PCMA) reuses callscribe.audio's tables. G.722 uses the optional PyPI package ``g722`` (module
``G722``, a C extension of the ITU-T reference codec: ``G722.G722(16000, 64000).decode(bytes)`` returns 16 kHz
int16 samples and keeps the ADPCM state between calls); it is not a dependency of callscribe, so G722 is in
SUPPORTED only where that package imports. G.722's RTP clock is 8000 although it samples at 16 kHz (RFC 3551
section 4.5.2), which is why Codec keeps the two rates apart.

Opus (RFC 7587, ``opus/48000/2``) uses the optional PyPI package ``opuslib-next`` (ctypes bindings to the
system libopus: Debian ``libopus0``). Its RTP clock is always 48 kHz; we ask libopus for 16 kHz mono
directly, which is what the ASR wants, so there is no resampling. Opus is the codec to prefer on lossy
networks: libopus conceals a lost frame from its own model, and when the sender enables in-band FEC
(``useinbandfec=1``, which our SDP answer asks for) the next packet carries a low-bitrate copy of the
lost one, which the jitter buffer hands over with the lost slot (``Playout.next_payload``).
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

try:  # optional: pip install opuslib-next (and the system libopus, Debian libopus0)
    import opuslib_next as _opus
except Exception:  # pragma: no cover - ImportError, or the library could not find libopus
    _opus = None


@dataclass(frozen=True, slots=True)
class Codec:
    """A payload format as negotiated in SDP (``a=rtpmap:<payload_type> <name>/<clock_rate>``)."""

    name: str  # "PCMU" | "PCMA" | "G722" | "OPUS"
    payload_type: int
    clock_rate: int  # RTP timestamp clock: 8000, but 48000 for Opus
    sample_rate_hz: int  # audio we decode to: 8000 for G.711, 16000 for G.722 and Opus


PCMU = Codec("PCMU", 0, 8000, 8000)
PCMA = Codec("PCMA", 8, 8000, 8000)
G722 = Codec("G722", 9, 8000, 16000)
OPUS = Codec("OPUS", 111, 48000, 16000)  # dynamic payload type: 111 is only what we use when we pick one

SUPPORTED: dict[str, Codec] = {"PCMU": PCMU, "PCMA": PCMA}  # codec name -> its static-PT definition
if _g722 is not None:
    SUPPORTED["G722"] = G722
if _opus is not None:
    SUPPORTED["OPUS"] = OPUS
_HINTS = {"G722": " (install the optional `g722` package)",
          "OPUS": " (install the optional `opuslib-next` package and the system libopus, Debian `libopus0`)"}

STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000)}
COMFORT_NOISE_PT = 13  # RFC 3389: a noise level, no speech; decoded as silence
_G711 = {"PCMU": "mulaw", "PCMA": "alaw"}


def codec_for(name: str, payload_type: int) -> Codec:
    """The Codec for an rtpmap entry (``name`` case-insensitive). Raises AudioFormatError if we cannot
    decode it (G722 needs the optional ``g722`` package)."""
    base = SUPPORTED.get(name.upper())
    if base is None:
        hint = _HINTS.get(name.upper(), "")
        raise AudioFormatError(f"cannot decode RTP payload {name!r}{hint}; supported: {', '.join(SUPPORTED)}")
    return Codec(base.name, payload_type, base.clock_rate, base.sample_rate_hz)


# RFC 6716 section 3.1: frame length of each TOC configuration, in 48 kHz samples.
_OPUS_FRAME = [480, 960, 1920, 2880] * 3 + [480, 960] * 2 + [120, 240, 480, 960] * 4
OPUS_MAX_SAMPLES = 5760  # 120 ms at 48 kHz: the longest packet RFC 6716 allows
_OPUS_MAX_16K = OPUS_MAX_SAMPLES * TARGET_RATE_HZ // 48000  # the same at the 16 kHz we decode to


def _new_opus():
    return _opus.Decoder(TARGET_RATE_HZ, 1)


def opus_samples(payload: bytes) -> int:
    """48 kHz samples an Opus packet covers, from its TOC byte (RFC 6716 section 3.1); 0 for a packet
    that is empty or malformed (a code-3 packet without its frame count, zero frames, over 120 ms)."""
    if not payload:
        return 0
    toc = payload[0]
    frame, code = _OPUS_FRAME[toc >> 3], toc & 3
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(payload) < 2:
            return 0
        count = payload[1] & 0x3F
    total = frame * count
    return total if 0 < total <= OPUS_MAX_SAMPLES else 0


def payload_duration(codec: Codec):
    """``duration_of(payload_type, payload)`` for a stream's JitterBuffer: RTP timestamp units a packet
    covers. One byte per unit for G.711/G.722 (8 kHz clock); Opus packets say it in their TOC byte."""
    if codec.name == "OPUS":
        opus_pt = codec.payload_type
        return lambda pt, payload: opus_samples(payload) if pt == opus_pt else len(payload)
    return lambda _pt, payload: len(payload)


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
    fec_ms: float = 0.0  # Opus lost slots decoded from the next packet (its in-band FEC if the sender added
    # any; libopus conceals from it otherwise)
    unknown_payloads: int = 0  # audio slots of a payload type we cannot decode (played as zeros)
    corrupt_payloads: int = 0  # audio slots the codec refused (a malformed Opus packet; played as zeros)
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
    (which is what VAD and Whisper should hear); long ones become silence rather than a buzz. Opus streams
    are concealed by libopus itself, or rebuilt from the next packet's in-band FEC when the jitter buffer
    has that packet (``slot.next_payload``): with FEC, 5% random loss costs Mandarin CER 0.8 points
    instead of G.711's 6.4 (ten loss seeds, benchmarks/rtp_loss.py).
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
        self._stateful: dict[int, object] = {}  # payload type -> its G.722 or Opus decoder (they keep state)
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
            rebuilt = self._opus_recover(slot)
            if rebuilt is not None:
                self._push(self._resume(rebuilt, TARGET_RATE_HZ), TARGET_RATE_HZ)
            else:
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
        if codec.name == "OPUS":
            if not payload:  # libopus would take it as a loss and conceal 120 ms for one slot
                self.stats.corrupt_payloads += 1
                return None
            try:
                pcm = self._state(payload_type, _new_opus).decode(bytes(payload), _OPUS_MAX_16K)
            except _opus.OpusError:
                self.stats.corrupt_payloads += 1
                return None
            return pcm16_to_float(np.frombuffer(pcm, dtype=np.int16)), TARGET_RATE_HZ
        dec = self._state(payload_type, lambda: _g722.G722(16000, 64000))
        return pcm16_to_float(np.frombuffer(dec.decode(bytes(payload)), dtype=np.int16)), 16000

    def _state(self, payload_type: int, make):
        """The stateful decoder of ``payload_type``, made on first use."""
        dec = self._stateful.get(payload_type)
        if dec is None:
            dec = self._stateful[payload_type] = make()
        return dec

    def _opus_recover(self, slot: Playout) -> np.ndarray | None:
        """A lost slot of an Opus stream, rebuilt by libopus: from the in-band FEC of the packet after the
        gap when we have it, else by libopus's own concealment. None when the stream is not Opus or the
        slot's length is not one libopus can conceal (a multiple of 2.5 ms, at most 120 ms)."""
        codec = self._codec_of(slot.payload_type)
        if codec is None or codec.name != "OPUS" or "OPUS" not in SUPPORTED:
            return None
        n = slot.duration * TARGET_RATE_HZ // codec.clock_rate
        if n <= 0 or n % (TARGET_RATE_HZ // 400) or n > _OPUS_MAX_16K or slot.duration % 3:
            return None
        dec = self._state(slot.payload_type, _new_opus)
        fec = bool(slot.next_payload)
        try:
            pcm = dec.decode(bytes(slot.next_payload), n, decode_fec=fec)
        except _opus.OpusError:  # a malformed next packet: plain concealment instead
            fec = False
            pcm = dec.decode(b"", n)
        ms = slot.duration * 1000 / codec.clock_rate
        if fec:
            self.stats.fec_ms += ms
        else:
            self.stats.concealed_ms += ms
        return pcm16_to_float(np.frombuffer(pcm, dtype=np.int16))

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
    "OPUS",
    "SUPPORTED",
    "opus_samples",
    "payload_duration",
    "STATIC_PAYLOAD_TYPES",
    "COMFORT_NOISE_PT",
    "codec_for",
    "StreamAudioDecoder",
    "DecoderStats",
]
