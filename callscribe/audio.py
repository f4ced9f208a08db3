"""Audio front: decode what calls send (PCM16, G.711 mu-law/A-law at 8 or 16 kHz; files), resample to 16 kHz.

Everything downstream sees float32 mono arrays at 16 kHz in [-1, 1]. G.711 is decoded with lookup tables
built from the ITU-T G.711 expansion rules (the stdlib ``audioop`` is gone in Python 3.13). Resampling uses
soxr, with a streaming resampler per channel so chunk boundaries add no clicks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from .errors import AudioFormatError

TARGET_RATE_HZ = 16000
ENCODINGS = ("pcm16", "mulaw", "alaw")
SAMPLE_RATES_HZ = (8000, 16000)


def _mulaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    a = codes ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


MULAW_TO_PCM16 = _mulaw_table()
ALAW_TO_PCM16 = _alaw_table()


def _encode_table(decode: np.ndarray) -> np.ndarray:
    """PCM16 -> G.711 code by nearest decoded value (65,536-entry table, built once)."""
    order = np.argsort(decode)
    values = decode[order].astype(np.int32)
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    idx = np.clip(np.searchsorted(values, pcm), 1, len(values) - 1)
    left, right = values[idx - 1], values[idx]
    pick = np.where(np.abs(pcm - left) <= np.abs(right - pcm), idx - 1, idx)
    return order[pick].astype(np.uint8)


_ENCODE_CACHE: dict[str, np.ndarray] = {}


def encode_g711(pcm16: np.ndarray, encoding: str) -> bytes:
    """Encode int16 samples as G.711 (used to make telephone-grade test audio and by the stream client)."""
    if encoding not in ("mulaw", "alaw"):
        raise AudioFormatError(f"not a G.711 encoding: {encoding!r}")
    table = _ENCODE_CACHE.get(encoding)
    if table is None:
        table = _ENCODE_CACHE[encoding] = _encode_table(MULAW_TO_PCM16 if encoding == "mulaw" else ALAW_TO_PCM16)
    return table[pcm16.astype(np.int32) + 32768].tobytes()


def decode_bytes(data: bytes, encoding: str) -> np.ndarray:
    """Raw bytes -> int16 samples (still interleaved if the stream has several channels)."""
    if encoding == "pcm16":
        if len(data) % 2:
            raise AudioFormatError(f"pcm16 frame has an odd byte count ({len(data)})")
        return np.frombuffer(data, dtype="<i2")
    if encoding == "mulaw":
        return MULAW_TO_PCM16[np.frombuffer(data, dtype=np.uint8)]
    if encoding == "alaw":
        return ALAW_TO_PCM16[np.frombuffer(data, dtype=np.uint8)]
    raise AudioFormatError(f"unknown encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")


def bytes_per_sample(encoding: str) -> int:
    if encoding not in ENCODINGS:
        raise AudioFormatError(f"unknown encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
    return 2 if encoding == "pcm16" else 1


def pcm16_to_float(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 32768.0).astype(np.float32, copy=False)


def float_to_pcm16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


class StreamResampler:
    """Chunked resampling of one channel to 16 kHz (soxr's streaming API keeps filter state across chunks)."""

    def __init__(self, in_rate_hz: int, out_rate_hz: int = TARGET_RATE_HZ) -> None:
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._rs = None if in_rate_hz == out_rate_hz else soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="float32", quality="HQ")

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        if self._rs is None:
            return samples.astype(np.float32, copy=False)
        return self._rs.resample_chunk(samples.astype(np.float32, copy=False), last=last)


def resample(samples: np.ndarray, in_rate_hz: int, out_rate_hz: int = TARGET_RATE_HZ) -> np.ndarray:
    if in_rate_hz == out_rate_hz:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples.astype(np.float32, copy=False), in_rate_hz, out_rate_hz, quality="HQ").astype(np.float32, copy=False)


@dataclass(frozen=True, slots=True)
class AudioFile:
    """A decoded file: ``samples`` is float32 [frames, channels] at ``sample_rate_hz``."""

    samples: np.ndarray
    sample_rate_hz: int

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate_hz


def load_file(path: str | Path) -> AudioFile:
    """Read WAV/FLAC/OGG (soundfile) or, failing that, anything FFmpeg reads (PyAV: mp3, m4a, ...)."""
    path = Path(path)
    if not path.exists():
        raise AudioFormatError(f"no such audio file: {path}")
    try:
        import soundfile as sf

        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return AudioFile(data, int(rate))
    except Exception:  # soundfile can't read mp3/m4a on every libsndfile: fall back to FFmpeg
        pass
    try:
        import av

        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            chunks = []
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if arr.dtype.kind == "i":
                    arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
                if frame.format.is_planar:
                    arr = arr.T  # (channels, n) -> (n, channels)
                else:
                    arr = arr.reshape(-1, len(frame.layout.channels))
                chunks.append(arr.astype(np.float32))
        if not chunks:
            raise AudioFormatError(f"{path}: no audio frames")
        return AudioFile(np.concatenate(chunks, axis=0), int(rate))
    except AudioFormatError:
        raise
    except Exception as exc:
        raise AudioFormatError(f"cannot decode {path}: {exc}") from exc


class StreamDecoder:
    """Bytes of one call's audio stream -> one float32 16 kHz array per channel.

    Multi-channel streams are interleaved sample by sample (L R L R ...), as in a stereo WAV. Each frame must
    hold whole sample groups; a resampler per channel keeps filter state across frames.
    """

    def __init__(self, encoding: str, sample_rate_hz: int, channels: int) -> None:
        if encoding not in ENCODINGS:
            raise AudioFormatError(f"unknown encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
        if sample_rate_hz not in SAMPLE_RATES_HZ:
            raise AudioFormatError(f"unsupported sample rate {sample_rate_hz}; use 8000 or 16000")
        if not 1 <= channels <= 2:
            raise AudioFormatError(f"unsupported channel count {channels}; use 1 or 2")
        self.encoding = encoding
        self.channels = channels
        self.sample_rate_hz = sample_rate_hz
        self.group_bytes = bytes_per_sample(encoding) * channels
        self._resamplers = [StreamResampler(sample_rate_hz) for _ in range(channels)]

    def decode(self, data: bytes, last: bool = False) -> list[np.ndarray]:
        if len(data) % self.group_bytes:
            raise AudioFormatError(
                f"frame of {len(data)} bytes is not a whole number of {self.channels}-channel {self.encoding} samples"
            )
        pcm = decode_bytes(data, self.encoding)
        per_channel = pcm.reshape(-1, self.channels).T if self.channels > 1 else pcm.reshape(1, -1)
        return [rs.process(pcm16_to_float(ch), last=last) for rs, ch in zip(self._resamplers, per_channel)]
