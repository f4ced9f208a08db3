"""One RTP stream's receiving end: a UDP socket pair (RTP + RTCP) feeding the pure parts.

Packets are parsed as they arrive (malformed ones counted and dropped), RFC 4733 telephone-events are
split off to the DTMF detector (they never reach the ASR), audio packets go into the jitter buffer. The
call's media loop calls :meth:`RtpStream.take_audio` every few tens of ms to get the audio whose playout
time has come, decoded to 16 kHz float32 with losses concealed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import numpy as np

from callscribe.errors import RtpError

from .codecs import Codec, StreamAudioDecoder
from .jitter import JitterBuffer
from .packet import DtmfDetector, is_rtcp, parse_rtp

log = logging.getLogger(__name__)
MAX_DATAGRAM = 2048  # an RTP packet of a telephony codec is ~200 bytes; far larger ones are not ours


@dataclass(slots=True)
class StreamStats:
    packets: int = 0
    bytes: int = 0
    rtcp: int = 0
    malformed: int = 0
    dtmf_packets: int = 0
    foreign_pt: int = 0


class _Rtcp(asyncio.DatagramProtocol):
    """RTCP is accepted and counted (reports are not needed to transcribe); the socket also keeps the
    port reserved so nothing else binds it while the call lives."""

    def __init__(self, stats: StreamStats) -> None:
        self.stats = stats

    def datagram_received(self, data: bytes, addr) -> None:
        self.stats.rtcp += 1


class RtpStream(asyncio.DatagramProtocol):
    def __init__(self, codec: Codec, dtmf_payload_type: int | None, depth_ms: int, label: str = "") -> None:
        self.codec = codec
        self.dtmf_payload_type = dtmf_payload_type
        self.label = label
        self.jitter = JitterBuffer(clock_rate=codec.clock_rate, depth_ms=depth_ms)
        self.decoder = StreamAudioDecoder(codec)
        self.dtmf = DtmfDetector()
        self.stats = StreamStats()
        self.digits: list[str] = []  # detected, not yet taken by the media loop
        self.last_packet_at: float | None = None
        self.peer: tuple[str, int] | None = None
        self._transports: list[asyncio.DatagramTransport] = []
        self.port = 0

    # --- sockets ------------------------------------------------------------------------------------
    async def open(self, host: str, port: int) -> None:
        """Bind RTP on ``port`` and RTCP on ``port + 1``. Raises OSError if either is taken."""
        loop = asyncio.get_running_loop()
        rtp, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        try:
            rtcp, _ = await loop.create_datagram_endpoint(lambda: _Rtcp(self.stats), local_addr=(host, port + 1))
        except OSError:
            rtp.close()
            raise
        self._transports = [rtp, rtcp]
        self.port = port

    def close(self) -> None:
        for t in self._transports:
            t.close()
        self._transports = []

    # --- packets in ---------------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr) -> None:
        now = time.monotonic()
        if len(data) > MAX_DATAGRAM:
            self.stats.malformed += 1
            return
        if is_rtcp(data):  # RFC 5761 rtcp-mux: RTCP may share the RTP port
            self.stats.rtcp += 1
            return
        try:
            packet = parse_rtp(data)
        except RtpError as exc:
            self.stats.malformed += 1
            if self.stats.malformed in (1, 100, 10_000):
                log.info("rtp :%d: dropped malformed packet from %s (%s; %d so far)", self.port, addr, exc, self.stats.malformed)
            return
        self.stats.packets += 1
        self.stats.bytes += len(data)
        self.last_packet_at = now
        self.peer = addr
        if self.dtmf_payload_type is not None and packet.payload_type == self.dtmf_payload_type:
            self.stats.dtmf_packets += 1
            self.jitter.mark_non_audio(packet)  # its sequence number is not a lost audio packet
            digit = self.dtmf.feed(packet)
            if digit is not None:
                self.digits.append(digit)
            return
        if packet.payload_type >= 72 and packet.payload_type <= 95:  # RTCP range without mux detection
            self.stats.foreign_pt += 1
            return
        self.jitter.push(packet, now)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.: nothing to do
        log.debug("rtp :%d: %s", self.port, exc)

    # --- audio out ----------------------------------------------------------------------------------
    def take_audio(self, now: float | None = None) -> np.ndarray:
        """16 kHz float32 audio whose playout time has come (empty when none)."""
        slots = self.jitter.pop(time.monotonic() if now is None else now)
        return self._decode(slots)

    def drain(self) -> np.ndarray:
        """Everything still held (call end): nothing that arrived is lost on a clean hang-up."""
        audio = self._decode(self.jitter.flush())
        tail = self.decoder.flush()  # what the resampler still holds
        return np.concatenate([audio, tail]).astype(np.float32, copy=False) if tail.size else audio

    def take_digits(self) -> list[str]:
        digits, self.digits = self.digits, []
        return digits

    def _decode(self, slots) -> np.ndarray:
        if not slots:
            return np.zeros(0, np.float32)
        parts = [self.decoder.decode(s) for s in slots]
        return np.concatenate(parts).astype(np.float32, copy=False) if len(parts) > 1 else parts[0]


__all__ = ["RtpStream", "StreamStats"]
