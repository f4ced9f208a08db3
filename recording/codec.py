"""Audio files of recordings: a streaming encoder, a decoder and a duration probe, over PyAV (FFmpeg).

PyAV already comes with faster-whisper; its FFmpeg has libopus and FLAC. Formats:

* ``opus``: Ogg Opus, VBR at :data:`OPUS_BITRATE` (16 kbit/s mono, 24 kbit/s stereo: wideband speech),
  20 ms frames, complexity 5 (about 270x real time per core for a stereo call, measured). An Ogg page is
  flushed at least every :data:`PAGE_DURATION_US`, and the store's file is unbuffered, so a process killed
  mid-call leaves a file that plays up to about a second before the kill: Ogg demuxers stop at the last
  complete page.
* ``flac``: lossless, 16-bit. FFmpeg writes the STREAMINFO length only at close, so a file cut by a crash
  has an unknown length: FFmpeg (and so PyAV and browsers) play it; libsndfile refuses it.

Not thread-safe: one :class:`AudioEncoder` belongs to one writer thread. PyAV releases the GIL while FFmpeg
encodes, so encoding in a thread does not stall the event loop.
"""

from __future__ import annotations

from typing import BinaryIO

import av
import numpy as np

from callscribe.errors import RecordingError

OPUS_BITRATE = {1: 16_000, 2: 24_000}
OPUS_COMPLEXITY = 5
PAGE_DURATION_US = 1_000_000
_LAYOUTS = {1: "mono", 2: "stereo"}


class AudioEncoder:
    """Encode float32 blocks shaped ``(samples, channels)`` at ``rate_hz`` into ``fileobj`` as ``fmt``."""

    def __init__(self, fileobj: BinaryIO, fmt: str, rate_hz: int, channels: int) -> None:
        if channels not in _LAYOUTS:
            raise RecordingError(f"recordings have 1 or 2 channels, not {channels}")
        self.fmt = fmt
        self.rate_hz = rate_hz
        self.channels = channels
        self.samples = 0
        if fmt == "opus":
            self._container = av.open(fileobj, "w", format="ogg", options={"page_duration": str(PAGE_DURATION_US)})
            self._stream = self._container.add_stream(
                "libopus", rate=rate_hz,
                options={"application": "voip", "frame_duration": "20", "compression_level": str(OPUS_COMPLEXITY)})
            self._stream.bit_rate = OPUS_BITRATE[channels]
            self._sample_format = "flt"
        elif fmt == "flac":
            self._container = av.open(fileobj, "w", format="flac")
            self._stream = self._container.add_stream("flac", rate=rate_hz)
            self._sample_format = "s16"
        else:
            raise RecordingError(f"unknown recording format {fmt!r} (opus or flac)")
        self._stream.layout = _LAYOUTS[channels]
        self._stream.format = self._sample_format

    def write(self, block: np.ndarray) -> None:
        """Encode ``block`` (float32 ``(n, channels)``, -1..1). Raises OSError / av errors on a failed write."""
        if block.shape[0] == 0:
            return
        if self._sample_format == "s16":
            data = np.round(np.clip(block, -1.0, 1.0) * 32767.0).astype(np.int16)
        else:
            data = np.ascontiguousarray(block, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format=self._sample_format, layout=_LAYOUTS[self.channels])
        frame.sample_rate = self.rate_hz
        frame.pts = self.samples
        self.samples += block.shape[0]
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and write the trailer (the last Ogg page, with the exact end position)."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()

    def abort(self) -> None:
        """Give up after a failed write: release FFmpeg's state without raising."""
        try:
            self._container.close()
        except Exception:  # the container may be half-written; nothing more to save
            pass


def decode(source: str | BinaryIO, rate_hz: int | None = None) -> tuple[np.ndarray, int]:
    """The whole file as float32 ``(samples, channels)`` and its rate (``rate_hz``: resampled to it; Ogg Opus
    decodes at 48 kHz otherwise). Reads a file cut by a crash up to its last complete page or frame."""
    chunks: list[np.ndarray] = []
    try:
        with av.open(source) as container:
            stream = container.streams.audio[0]
            channels = stream.codec_context.channels
            layout = _LAYOUTS.get(channels, "stereo")
            out_rate = rate_hz or stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="flt", layout=layout, rate=out_rate)
            try:
                for frame in container.decode(stream):
                    for f in resampler.resample(frame):
                        chunks.append(f.to_ndarray().reshape(-1, channels))
            except av.error.InvalidDataError:
                pass  # a truncated last packet: everything before it is decoded
            for f in resampler.resample(None):
                chunks.append(f.to_ndarray().reshape(-1, channels))
    except av.error.FFmpegError as exc:
        raise RecordingError(f"cannot decode recording: {exc}") from exc
    audio = np.concatenate(chunks) if chunks else np.zeros((0, channels), np.float32)
    return audio.astype(np.float32, copy=False), out_rate


def probe_duration_ms(source: str | BinaryIO) -> int:
    """Duration from the packets' timestamps, without decoding (crash recovery of long recordings)."""
    end = 0.0
    try:
        with av.open(source) as container:
            stream = container.streams.audio[0]
            try:
                for packet in container.demux(stream):
                    if packet.pts is None or packet.time_base is None:
                        continue
                    end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            except av.error.InvalidDataError:
                pass
    except av.error.FFmpegError as exc:
        raise RecordingError(f"cannot read recording: {exc}") from exc
    return int(round(end * 1000))


__all__ = ["AudioEncoder", "decode", "probe_duration_ms", "OPUS_BITRATE", "OPUS_COMPLEXITY", "PAGE_DURATION_US"]
