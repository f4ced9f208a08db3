"""One RTP stream's receiving end: a UDP socket pair (RTP + RTCP) feeding the pure parts.

Packets are parsed as they arrive (malformed ones counted and dropped), RFC 4733 telephone-events are
split off to the DTMF detector (they never reach the ASR), audio packets go into the jitter buffer. The
call's media loop calls :meth:`RtpStream.take_audio` every few tens of ms to get the audio whose playout
time has come, decoded to 16 kHz float32 with losses concealed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass

import numpy as np

from callscribe.errors import RtpError

from .codecs import Codec, StreamAudioDecoder, payload_duration
from .jitter import JitterBuffer
from .packet import DtmfDetector, is_rtcp, parse_rtp

log = logging.getLogger(__name__)
MAX_DATAGRAM = 2048  # an RTP packet of a telephony codec is ~200 bytes; far larger ones are not ours
MAX_READ_PER_TICK = 1000  # packets read directly per media tick (the rest wait for the loop's reader)
RCVBUF = 256 * 1024  # kernel buffer per stream: ~8 s of G.711 at 50 packets/s, so a busy loop loses nothing


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
        self.depth_ms = depth_ms
        self.jitter = JitterBuffer(clock_rate=codec.clock_rate, depth_ms=depth_ms, duration_of=payload_duration(codec))
        self.decoder = StreamAudioDecoder(codec)
        self.dtmf = DtmfDetector()
        self.stats = StreamStats()
        self.digits: list[str] = []  # detected, not yet taken by the media loop
        self.last_packet_at: float | None = None
        self.peer: tuple[str, int] | None = None
        self._transports: list[asyncio.DatagramTransport] = []
        self.port = 0
        self._pending_tail = np.zeros(0, np.float32)
        self._sock: socket.socket | None = None

    # --- sockets ------------------------------------------------------------------------------------
    async def open(self, host: str, port: int) -> None:
        """Bind RTP on ``port`` and RTCP on ``port + 1``. Raises OSError if either is taken."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((host, port))
            rtp, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        except OSError:
            sock.close()
            raise
        try:
            rtcp, _ = await loop.create_datagram_endpoint(lambda: _Rtcp(self.stats), local_addr=(host, port + 1))
        except OSError:
            rtp.close()
            raise
        self._sock = sock
        self._transports = [rtp, rtcp]
        self.port = port

    def close(self) -> None:
        for t in self._transports:
            t.close()
        self._transports = []
        self._sock = None

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

    def switch_codec(self, codec: Codec) -> None:
        """A re-INVITE changed the codec: new packets decode with it (what the old decoder still holds
        is pushed out first by the next take_audio, as its resampler tail). A codec on another RTP clock
        (G.711 <-> Opus) also gets a fresh jitter buffer: what the old one held is played out first."""
        held = np.zeros(0, np.float32)
        if codec.clock_rate != self.codec.clock_rate:
            held = self._decode(self.jitter.flush())
            self.jitter = JitterBuffer(clock_rate=codec.clock_rate, depth_ms=self.depth_ms, duration_of=payload_duration(codec))
        else:
            self.jitter.duration_of = payload_duration(codec)
        self._pending_tail = np.concatenate([self._pending_tail, held, self.decoder.flush()]).astype(np.float32)
        self.codec = codec
        self.decoder = StreamAudioDecoder(codec)

    # --- audio out ----------------------------------------------------------------------------------
    def take_audio(self, now: float | None = None) -> np.ndarray:
        """16 kHz float32 audio whose playout time has come (empty when none)."""
        self._read_pending()
        slots = self.jitter.pop(time.monotonic() if now is None else now)
        audio = self._decode(slots)
        if self._pending_tail.size:
            audio, self._pending_tail = np.concatenate([self._pending_tail, audio]), np.zeros(0, np.float32)
        return audio

    def _read_pending(self) -> None:
        """Take in every datagram already in the socket's kernel buffer before deciding what is lost.

        Why: the event loop may run this call's media tick before the socket's read callback after a
        busy stretch (VAD and decoding of many calls share the loop); packets that arrived in time
        would then be declared lost and dropped as late a moment later."""
        if self._sock is None:
            return
        for _ in range(MAX_READ_PER_TICK):
            try:
                data, addr = self._sock.recvfrom(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.datagram_received(data, addr)

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
