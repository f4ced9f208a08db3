"""RTP packets (RFC 3550 section 5.1) and RFC 4733 telephone-events: bytes in, typed values out.

Pure functions, no I/O. :func:`parse_rtp` is the only door for untrusted datagrams, so it checks every length
field before slicing and raises nothing but :class:`~callscribe.errors.RtpError`: the receiver counts and drops
what it cannot read, and a hostile peer cannot crash the media loop with a crafted header.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from callscribe.errors import RtpError

RTP_VERSION = 2
HEADER_BYTES = 12
DTMF_SYMBOLS = "0123456789*#ABCD"  # RFC 4733 section 3.2: event codes 0..15

_HEADER = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One parsed RTP packet. ``payload`` excludes CSRCs, the header extension and padding."""

    payload_type: int  # 0..127
    sequence: int  # 0..65535, wraps
    timestamp: int  # 0..2**32-1, wraps; units of the payload format's clock
    ssrc: int
    marker: bool
    payload: bytes
    csrc: tuple[int, ...] = ()


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet (RFC 3550 section 5.1).

    Header extensions (section 5.3.1) are skipped after checking their length; padding (the P bit: the last
    octet counts the padding octets, itself included) is removed. Raises RtpError, and only RtpError, for
    anything malformed: too short, version not 2, a CSRC list or extension running past the end, bad padding.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RtpError(f"RTP packet must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_BYTES:
        raise RtpError(f"RTP packet too short: {len(data)} bytes, the fixed header alone is {HEADER_BYTES}")
    b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    version = b0 >> 6
    if version != RTP_VERSION:
        raise RtpError(f"RTP version {version}, expected {RTP_VERSION}")
    csrc_count = b0 & 0x0F
    offset = HEADER_BYTES + 4 * csrc_count
    if offset > len(data):
        raise RtpError(f"RTP packet of {len(data)} bytes too short for its {csrc_count} CSRCs")
    csrc = struct.unpack_from(f"!{csrc_count}I", data, HEADER_BYTES) if csrc_count else ()
    if b0 & 0x10:  # X: one extension header, 4 bytes + length (in 32-bit words) * 4
        if offset + 4 > len(data):
            raise RtpError("RTP header extension flag set but no room for the extension header")
        words = struct.unpack_from("!H", data, offset + 2)[0]
        offset += 4 + 4 * words
        if offset > len(data):
            raise RtpError(f"RTP header extension of {words} words runs past the end of the packet")
    end = len(data)
    if b0 & 0x20:  # P
        if end == offset:
            raise RtpError("RTP padding flag set but the packet has no payload or padding octets")
        pad = data[-1]
        if pad == 0 or pad > end - offset:
            raise RtpError(f"RTP padding count {pad} invalid for {end - offset} bytes after the header")
        end -= pad
    return RtpPacket(
        payload_type=b1 & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        marker=bool(b1 & 0x80),
        payload=data[offset:end],
        csrc=tuple(csrc),
    )


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 section 4 demultiplexing of RTP and RTCP sharing one port (rtcp-mux).

    RTCP packet types 192..223 (SR 200, RR 201, SDES 202, BYE 203, APP 204, ...) sit in the second octet,
    where RTP has marker + payload type; RTP payload types 64..95 are avoided for exactly this reason.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


def build_rtp(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    marker: bool = False,
    *,
    csrc: tuple[int, ...] = (),
    extension: tuple[int, bytes] | None = None,
    padding: int = 0,
) -> bytes:
    """Serialise an RTP packet (for tests and the pcap generator).

    ``extension`` is ``(profile, data)`` with ``len(data)`` a multiple of 4; ``padding`` is the number of
    padding octets to append (0 = no P bit). Raises ValueError for a field out of range: these are the
    caller's arguments, not bytes from the network.
    """
    if not 0 <= payload_type <= 127:
        raise ValueError(f"payload type {payload_type} outside 0..127")
    if not 0 <= sequence <= 0xFFFF:
        raise ValueError(f"sequence {sequence} outside 0..65535")
    if not 0 <= timestamp <= 0xFFFFFFFF or not 0 <= ssrc <= 0xFFFFFFFF:
        raise ValueError("timestamp and ssrc are 32-bit unsigned")
    if len(csrc) > 15 or any(not 0 <= c <= 0xFFFFFFFF for c in csrc):
        raise ValueError("at most 15 CSRCs, each 32-bit unsigned")
    if not 0 <= padding <= 255:
        raise ValueError(f"padding {padding} outside 0..255")
    b0 = (RTP_VERSION << 6) | (0x20 if padding else 0) | (0x10 if extension is not None else 0) | len(csrc)
    parts = [_HEADER.pack(b0, (0x80 if marker else 0) | payload_type, sequence, timestamp, ssrc)]
    parts += [struct.pack("!I", c) for c in csrc]
    if extension is not None:
        profile, ext = extension
        if len(ext) % 4 or len(ext) // 4 > 0xFFFF or not 0 <= profile <= 0xFFFF:
            raise ValueError("extension data must be a multiple of 4 bytes (at most 65535 words), profile 16-bit")
        parts.append(struct.pack("!HH", profile, len(ext) // 4) + bytes(ext))
    parts.append(bytes(payload))
    if padding:
        parts.append(bytes(padding - 1) + bytes([padding]))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """RFC 4733 section 2.3 payload: a DTMF key (or other event) and how long it has lasted so far."""

    event: int  # 0..255; 0..15 are DTMF_SYMBOLS
    end: bool  # E bit: this is (a retransmission of) the final packet of the event
    volume: int  # 0..63, in -dBm0
    duration: int  # 0..65535, in RTP timestamp units since the event's timestamp


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    """Parse the first 4-byte event block; later blocks are RFC 2198 redundancy and are ignored."""
    if len(payload) < _EVENT.size:
        raise RtpError(f"telephone-event payload of {len(payload)} bytes, needs 4 (RFC 4733 section 2.3)")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)


def build_telephone_event(event: int, end: bool, volume: int, duration: int) -> bytes:
    """Serialise an RFC 4733 event block. Raises ValueError for a field out of range."""
    if not 0 <= event <= 255 or not 0 <= volume <= 63 or not 0 <= duration <= 0xFFFF:
        raise ValueError(f"telephone-event field out of range: event={event} volume={volume} duration={duration}")
    return _EVENT.pack(event, (0x80 if end else 0) | volume, duration)


class DtmfDetector:
    """Turns the RFC 4733 telephone-event packets of one RTP stream into key presses, each reported once.

    A sender repeats every event: all packets of one event carry the event's start timestamp (the duration
    field grows), and the end packet is sent up to 3 times (section 2.5.1.4). So an event is identified by
    (SSRC, RTP timestamp), and a recently seen identity is never reported again, even when a late
    retransmission of an earlier event arrives after the next one began. An event longer than the 16-bit
    duration field continues under a new timestamp (section 2.5.1.3); that continuation is recognised and
    not reported as a second press.
    """

    _REMEMBER = 32  # recent event identities kept for de-duplication

    def __init__(self) -> None:
        self._seen: deque[tuple[int, int]] = deque(maxlen=self._REMEMBER)
        self._last: tuple[int, int, int, bool, int] | None = None  # ssrc, timestamp, event, ended, duration
        self.events = 0  # distinct events reported
        self.malformed = 0  # payloads shorter than 4 bytes
        self.ignored = 0  # distinct non-DTMF events (code > 15)

    def feed(self, packet: RtpPacket) -> str | None:
        """The symbol ('0'..'9', '*', '#', 'A'..'D') the first time an event is seen, else None."""
        try:
            ev = parse_telephone_event(packet.payload)
        except RtpError:
            self.malformed += 1
            return None
        key = (packet.ssrc, packet.timestamp)
        last = self._last
        if last is not None and last[0] == packet.ssrc and last[1] == packet.timestamp:
            self._last = (last[0], last[1], last[2], last[3] or ev.end, max(last[4], ev.duration))
            return None
        if key in self._seen:
            return None
        continuation = (
            last is not None
            and last[0] == packet.ssrc
            and last[2] == ev.event
            and not last[3]
            and last[4] >= 0xFF00  # the previous segment had (nearly) filled the 16-bit duration field
            and (packet.timestamp - last[1]) % 2**32 == last[4]
        )
        self._seen.append(key)
        self._last = (packet.ssrc, packet.timestamp, ev.event, ev.end, ev.duration)
        if continuation:
            return None
        if ev.event >= len(DTMF_SYMBOLS):
            self.ignored += 1
            return None
        self.events += 1
        return DTMF_SYMBOLS[ev.event]


__all__ = [
    "RtpPacket",
    "parse_rtp",
    "is_rtcp",
    "build_rtp",
    "TelephoneEvent",
    "parse_telephone_event",
    "build_telephone_event",
    "DTMF_SYMBOLS",
    "DtmfDetector",
]
