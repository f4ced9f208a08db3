"""Redacted audio: the spans whose words the transcript redaction masks, silenced (or beeped) in the recording.

Two pure parts and one file transform:

* :func:`pii_spans` - which stretches of one final are PII, in the channel's time: the words that the one PII
  detector (callscribe/keyword/redact.py ``find_pii``, what masks stored text) finds over the final's joined
  word tokens, exactly as ``redact_words`` masks them, so spoken digits split over many tokens ("four one
  five", "一三八 零零一三") are one span. Finals read back from Redis are already redacted: their masked tokens
  (``[PHONE]`` and the emptied tokens after it) count too. A final whose text holds PII but whose words do not
  show where (no word timestamps, or text and tokens disagree) is redacted whole: privacy first.
* :func:`redaction_spans` - those spans in recording time (through the manifest's :class:`TimeMap`), widened
  by :data:`MARGIN_MS` on both sides (Whisper's word times are good to about a syllable) and merged. A span is
  applied to every channel, not only the speaker's: the other leg may carry an echo of the number.
* :func:`render_redacted` - writes the redacted rendition. Ogg Opus is redacted *packet by packet*: every
  20 ms packet that overlaps a span is replaced by a packet of encoded silence (or of a 1 kHz tone) and every
  other packet is copied untouched, so outside the spans the file is bit-identical to the original and decodes
  identically once the decoder's predictors have re-converged after a span: within 0.25 s, meanwhile the
  same speech up to about 7 dB quieter for the first 100 ms, never louder (measured; re-encoding a short
  bridge after each span would remove that dip, at the cost of transcoding it). It costs a demux and a mux,
  no decoding: milliseconds for a long call. FLAC is decoded, the spans replaced with 5 ms ramps, and
  re-encoded: lossless, so everything else is sample-identical.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal

import av
import numpy as np

from callscribe.errors import RecordingError
from callscribe.events import Transcript
from callscribe.keyword.redact import DEFAULT_MASKS, find_pii

from .codec import AudioEncoder
from .manifest import RedactedSpan
from .timeline import TimeMap

MARGIN_MS = 250
"""Widening of each span on both sides."""
BEEP_HZ = 1000.0
BEEP_LEVEL = 0.1
"""-20 dBFS: clearly a tone, not loud."""
RAMP_MS = 5
Mode = Literal["silence", "beep"]
_MASK_TOKENS = frozenset(DEFAULT_MASKS.values())


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """A PII stretch of one final, in that channel's time (ms, as the transcript's word times)."""

    channel: str
    start_ms: int
    end_ms: int
    kind: str


def _text_has_pii(text: str) -> bool:
    return any(m in text for m in _MASK_TOKENS) or bool(find_pii(text))


def pii_spans(final: Transcript) -> list[PiiSpan]:
    """The PII spans of one final (see the module doc); [] for partials, empty finals and clean text."""
    if not final.is_final or not final.text:
        return []
    out: list[PiiSpan] = []
    words = final.words
    if words:
        tokens = [w.text for w in words]
        bounds: list[tuple[int, int]] = []
        pos = 0
        for t in tokens:
            bounds.append((pos, pos + len(t)))
            pos += len(t)
        for span in find_pii("".join(tokens)):
            hit = [i for i, (s, e) in enumerate(bounds) if s < span.end and e > span.start]
            if hit:
                out.append(PiiSpan(final.channel, words[hit[0]].start_ms, words[hit[-1]].end_ms, span.kind))
        i = 0
        while i < len(tokens):  # tokens masked before storage: the mask, then the tokens it swallowed ("")
            if tokens[i].strip() in _MASK_TOKENS:
                j = i
                while j + 1 < len(tokens) and tokens[j + 1] == "":
                    j += 1
                out.append(PiiSpan(final.channel, words[i].start_ms, words[j].end_ms, "masked"))
                i = j + 1
            else:
                i += 1
    if not out and _text_has_pii(final.text):
        out.append(PiiSpan(final.channel, final.start_ms, final.end_ms, "segment"))
    return out


def redaction_spans(finals: Iterable[Transcript], channels: Sequence[str], time_map: TimeMap, duration_ms: int,
                    margin_ms: int = MARGIN_MS) -> tuple[RedactedSpan, ...]:
    """Recording-time spans to replace: each final's :func:`pii_spans` mapped through ``time_map`` (channel
    index by name in ``channels``; ``mixed`` and unknown names are channel 0), widened by ``margin_ms``,
    clipped to ``[0, duration_ms]``, sorted and merged."""
    raw: list[tuple[int, int, str]] = []
    for final in finals:
        for s in pii_spans(final):
            ch = channels.index(s.channel) if s.channel in channels else 0
            a = time_map.to_recording_ms(ch, s.start_ms) - margin_ms
            b = time_map.to_recording_ms(ch, s.end_ms) + margin_ms
            a, b = max(0, a), min(duration_ms, b) if duration_ms > 0 else b
            if b > a:
                raw.append((a, b, s.kind))
    raw.sort()
    merged: list[list] = []
    for a, b, kind in raw:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
            if kind not in merged[-1][2].split(","):
                merged[-1][2] += "," + kind
        else:
            merged.append([a, b, kind])
    return tuple(RedactedSpan(a, b, k) for a, b, k in merged)


# --- PCM ---------------------------------------------------------------------------------------------
def apply_spans(block: np.ndarray, first_sample: int, rate_hz: int, spans: Sequence[RedactedSpan],
                mode: Mode = "silence") -> np.ndarray:
    """``block`` (float32 ``(n, channels)``, starting at sample ``first_sample`` of the recording) with every
    span replaced by silence or the beep, faded over RAMP_MS inside the span's edges. A copy when changed."""
    n = block.shape[0]
    out = block
    ramp = max(1, rate_hz * RAMP_MS // 1000)
    for span in spans:
        a = span.start_ms * rate_hz // 1000
        b = span.end_ms * rate_hz // 1000
        lo, hi = max(a, first_sample), min(b, first_sample + n)
        if lo >= hi:
            continue
        if out is block:
            out = block.copy()
        idx = np.arange(lo, hi)
        # gain of the original: 1 outside, ramping to 0 over the first / last RAMP_MS of the span
        keep = np.clip(np.maximum(a + ramp - idx, idx - (b - ramp)) / ramp, 0.0, 1.0).astype(np.float32)
        seg = out[lo - first_sample:hi - first_sample]
        replaced = seg * keep[:, None]
        if mode == "beep":
            tone = (BEEP_LEVEL * np.sin(2 * np.pi * BEEP_HZ * idx / rate_hz)).astype(np.float32)
            replaced += (tone * (1.0 - keep))[:, None]
        out[lo - first_sample:hi - first_sample] = replaced
    return out


# --- files -------------------------------------------------------------------------------------------
def render_redacted(src: BinaryIO, dst: BinaryIO, fmt: str, spans: Sequence[RedactedSpan], mode: Mode = "silence") -> None:
    """Write ``src`` (a recording in ``fmt``) to ``dst`` with ``spans`` replaced. Raises RecordingError when
    the source cannot be read (the caller then stores no redacted rendition)."""
    try:
        if fmt == "opus":
            _redact_opus_packets(src, dst, spans, mode)
        elif fmt == "flac":
            _redact_pcm(src, dst, spans, mode)
        else:
            raise RecordingError(f"unknown recording format {fmt!r}")
    except av.error.FFmpegError as exc:
        raise RecordingError(f"cannot render the redacted recording: {exc}") from exc


def _redact_opus_packets(src: BinaryIO, dst: BinaryIO, spans: Sequence[RedactedSpan], mode: Mode) -> None:
    bounds = [(s.start_ms / 1000, s.end_ms / 1000) for s in spans]
    with av.open(src) as inp:
        ins = inp.streams.audio[0]
        channels = ins.codec_context.channels
        out = av.open(dst, "w", format="ogg")
        try:
            outs = out.add_stream_from_template(ins)
            filler: _Filler | None = None
            for packet in inp.demux(ins):
                if packet.dts is None:  # the demuxer's final empty packet
                    continue
                t0 = float(packet.pts * packet.time_base)
                t1 = t0 + float(packet.duration * packet.time_base)
                if any(t0 < b and t1 > a for a, b in bounds):
                    frame_ms = _frame_ms(packet)
                    if filler is None or filler.frame_ms != frame_ms:  # a new run of replaced packets
                        filler = _Filler(channels, frame_ms, mode)
                    new = av.Packet(filler.next())
                    new.pts, new.dts, new.duration, new.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
                    packet = new
                else:
                    filler = None
                packet.stream = outs
                out.mux(packet)
        finally:
            out.close()


_FRAME_MS = {0: 10.0, 1: 20.0, 2: 40.0, 3: 60.0}  # SILK-only / hybrid configs by (config % 4); CELT below


def _frame_ms(packet: av.Packet) -> float:
    """The frame size of an Opus packet from its TOC byte (RFC 6716 section 3.1)."""
    data = bytes(packet)
    if not data:
        return 20.0
    config = data[0] >> 3
    if config < 12:
        return _FRAME_MS[config % 4]
    if config < 16:
        return 10.0 if config % 2 == 0 else 20.0
    return (2.5, 5.0, 10.0, 20.0)[config % 4]


class _Filler:
    """Consecutive Opus packets of silence or of the beep, from one running encoder.

    Why one encoder per run and not one packet repeated: Opus codes each frame's energy relative to the
    previous frame, so a repeated tone packet grows louder and louder; consecutive packets of one encoder
    decode as a steady tone. The run starts after a short warm-up, so its first packet is already steady."""

    WARMUP_FRAMES = 3

    def __init__(self, channels: int, frame_ms: float, mode: Mode) -> None:
        self.frame_ms = frame_ms
        self.channels = channels
        self.mode = mode
        self._rate = 48_000
        self._n = int(self._rate * frame_ms / 1000)
        enc = av.CodecContext.create("libopus", "w")
        enc.sample_rate = self._rate
        enc.layout = "stereo" if channels == 2 else "mono"
        enc.format = "flt"
        enc.bit_rate = 24_000
        enc.options = {"application": "voip", "frame_duration": f"{frame_ms:g}"}
        enc.open()
        self._enc = enc
        self._frames = 0
        self._ready: list[bytes] = []
        for _ in range(self.WARMUP_FRAMES):
            self._feed()
        self._ready.clear()

    def _feed(self) -> None:
        i0 = self._frames * self._n
        if self.mode == "beep":
            t = np.arange(i0, i0 + self._n) / self._rate
            signal = (BEEP_LEVEL * np.sin(2 * np.pi * BEEP_HZ * t)).astype(np.float32)
        else:
            signal = np.zeros(self._n, np.float32)
        data = np.repeat(signal[:, None], self.channels, axis=1)
        frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="flt", layout=self._enc.layout)
        frame.sample_rate = self._rate
        frame.pts = i0
        self._frames += 1
        self._ready += [bytes(p) for p in self._enc.encode(frame)]

    def next(self) -> bytes:
        for _ in range(8):
            if self._ready:
                return self._ready.pop(0)
            self._feed()
        raise RecordingError("libopus gave no packet for the redaction filler")


def _redact_pcm(src: BinaryIO, dst: BinaryIO, spans: Sequence[RedactedSpan], mode: Mode) -> None:
    with av.open(src) as inp:
        stream = inp.streams.audio[0]
        rate = stream.codec_context.sample_rate
        channels = stream.codec_context.channels
        resampler = av.AudioResampler(format="flt", layout="stereo" if channels == 2 else "mono", rate=rate)
        enc = AudioEncoder(dst, "flac", rate, channels)
        pos = 0
        try:
            frames = inp.decode(stream)
            for frame in frames:
                for f in resampler.resample(frame):
                    block = f.to_ndarray().reshape(-1, channels)
                    enc.write(apply_spans(block, pos, rate, spans, mode))
                    pos += block.shape[0]
        except av.error.InvalidDataError:
            pass  # a file cut by a crash: everything decodable is redacted and kept
        for f in resampler.resample(None):
            block = f.to_ndarray().reshape(-1, channels)
            enc.write(apply_spans(block, pos, rate, spans, mode))
            pos += block.shape[0]
        enc.close()


def redact_bytes(data: bytes, fmt: str, spans: Sequence[RedactedSpan], mode: Mode = "silence") -> bytes:
    """:func:`render_redacted` in memory (tests, small files)."""
    out = io.BytesIO()
    render_redacted(io.BytesIO(data), out, fmt, spans, mode)
    return out.getvalue()


__all__ = ["PiiSpan", "pii_spans", "redaction_spans", "apply_spans", "render_redacted", "redact_bytes", "MARGIN_MS",
           "BEEP_HZ", "BEEP_LEVEL"]
