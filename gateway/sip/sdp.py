"""SDP (RFC 4566): read an offer, pick what we can receive, write our answer (RFC 3264 offer/answer).

Sans-I/O and deliberately small: we are always the answerer and we only ever *receive* audio (a
recorder, a transcriber), so the answer is "this codec, on this port, recvonly" per offered audio stream.

Tolerance: LF or CRLF line ends, blank lines, unknown line types and malformed attributes we do not need
(e.g. ``a=rtpmap:31 LPC``) are accepted; what would make us send media to the wrong place or mis-read
the stream layout (no ``v=``, a broken ``m=`` or ``c=`` line, a non-numeric port) raises SdpError.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Sequence

from callscribe.errors import SdpError

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# RFC 3551 table 4: static audio payload types (name, clock rate, channels), usable without a=rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1), 3: ("GSM", 8000, 1), 4: ("G723", 8000, 1), 5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1), 7: ("LPC", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1),
    10: ("L16", 44100, 2), 11: ("L16", 44100, 1), 12: ("QCELP", 8000, 1), 13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1), 15: ("G728", 8000, 1), 16: ("DVI4", 11025, 1), 17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}
# RTP profiles we can receive. RTP/SAVP(F) needs SRTP keys we do not handle; UDP/TLS/... is DTLS-SRTP.
ACCEPTED_PROTOS = ("RTP/AVP", "RTP/AVPF")
# Never chosen as "the" codec of a stream: they carry no speech.
_NON_SPEECH = frozenset({"TELEPHONE-EVENT", "CN", "RED", "ULPFEC"})
# G.711 is 8 kHz by definition: an rtpmap saying otherwise is broken, and we would decode it wrongly.
_FIXED_RATE = {"PCMU": 8000, "PCMA": 8000, "OPUS": 48000}  # RFC 7587: always opus/48000/2
# Our fmtp for Opus (RFC 7587 section 6.1): we decode at 16 kHz, so wider audio would be bits wasted, and
# we use in-band FEC, so the sender should add it (it costs a few kbit/s and recovers single lost packets).
OPUS_FMTP = "maxplaybackrate=16000;useinbandfec=1"

_LINE_RE = re.compile(r"\r?\n")
_NUM_RE = re.compile(r"[0-9]{1,10}\Z")


@dataclass
class MediaDescription:
    """One ``m=`` section. ``formats`` are the strings of the m-line (payload types for RTP/AVP);
    ``rtpmap`` maps payload type to (encoding name upper-cased, clock rate, channels)."""

    media: str
    port: int
    port_count: int
    proto: str
    formats: list[str]
    connection: str | None = None
    rtpmap: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str | None = None
    label: str | None = None
    ptime: int | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """Value of the first ``a=name[:value]`` ("" for a flag), or None when absent."""
        for n, v in self.attributes:
            if n == name:
                return v if v is not None else ""
        return None


@dataclass
class SessionDescription:
    origin: str  # the o= value as written (username sess-id sess-version nettype addrtype address)
    session_name: str
    connection: str | None  # session-level c= address (TTL / count suffixes removed)
    direction: str | None  # session-level direction attribute, if any
    media: list[MediaDescription]
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def media_address(self, index: int) -> str | None:
        """Where the stream at ``index`` is sent from/to: the media-level c= else the session-level one."""
        m = self.media[index]
        return m.connection or self.connection

    def effective_direction(self, index: int) -> str:
        """The stream's direction: media-level attribute, else session-level, else sendrecv (RFC 4566)."""
        return self.media[index].direction or self.direction or "sendrecv"


def _parse_connection(value: str) -> str:
    parts = value.split()
    if len(parts) < 3 or parts[0].upper() != "IN" or parts[1].upper() not in ("IP4", "IP6"):
        raise SdpError(f"bad c= line {value[:80]!r} (want 'IN IP4|IP6 address')")
    addr = parts[2].split("/", 1)[0]  # multicast: address/ttl[/count]
    if not addr:
        raise SdpError(f"bad c= line {value[:80]!r}")
    return addr


def _parse_media_line(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"bad m= line {value[:80]!r} (want 'media port proto fmt ...')")
    media, port_s, proto = parts[0], parts[1], parts[2]
    port_str, slash, count_str = port_s.partition("/")
    if not _NUM_RE.match(port_str) or int(port_str) > 65535:
        raise SdpError(f"bad port {port_s!r} in m= line {value[:80]!r}")
    count = 1
    if slash:
        if not _NUM_RE.match(count_str) or not 1 <= int(count_str) <= 65535:
            raise SdpError(f"bad port count {port_s!r} in m= line {value[:80]!r}")
        count = int(count_str)
    return MediaDescription(media.lower(), int(port_str), count, proto, parts[3:])


def _apply_media_attribute(m: MediaDescription, name: str, value: str | None) -> None:
    """Interpret the attributes we use; malformed ones stay in ``attributes`` only (tolerance)."""
    if name in DIRECTIONS and value is None:
        m.direction = name
    elif name == "rtpmap" and value:
        pt_s, _, enc = value.strip().partition(" ")
        bits = enc.strip().split("/")
        if _NUM_RE.match(pt_s) and int(pt_s) <= 127 and len(bits) in (2, 3) and bits[0] \
                and _NUM_RE.match(bits[1]) and (len(bits) == 2 or _NUM_RE.match(bits[2])):
            m.rtpmap.setdefault(int(pt_s), (bits[0].upper(), int(bits[1]), int(bits[2]) if len(bits) == 3 else 1))
    elif name == "fmtp" and value:
        pt_s, _, params = value.strip().partition(" ")
        if _NUM_RE.match(pt_s) and int(pt_s) <= 127:
            m.fmtp.setdefault(int(pt_s), params.strip())
    elif name == "label" and value is not None and m.label is None:
        m.label = value.strip()
    elif name == "ptime" and value:
        try:
            ptime = round(float(value.strip()))
        except (ValueError, OverflowError):
            return
        if 0 < ptime <= 10000:
            m.ptime = ptime


def parse_sdp(body: bytes | str) -> SessionDescription:
    """Parse an SDP body. Raises SdpError on garbage: no ``v=`` first, a line that is not ``x=...``, a
    bad m= or c= line. Bytes are decoded as UTF-8 (invalid sequences replaced: only ASCII fields matter)."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, (bytes, bytearray)) else str(body)
    lines = [ln.strip() for ln in _LINE_RE.split(text)]
    lines = [ln for ln in lines if ln]
    if not lines or not lines[0].startswith("v="):
        raise SdpError("SDP does not start with a v= line")
    if lines[0][2:].strip() != "0":
        raise SdpError(f"unsupported SDP version {lines[0][:20]!r}")
    origin = ""
    session_name = ""
    connection: str | None = None
    direction: str | None = None
    attributes: list[tuple[str, str | None]] = []
    media: list[MediaDescription] = []
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpError(f"malformed SDP line {line[:80]!r} (want 'x=value')")
        kind, value = line[0], line[2:]
        cur = media[-1] if media else None
        if kind == "m":
            media.append(_parse_media_line(value))
        elif kind == "c":
            addr = _parse_connection(value)
            if cur is None:
                connection = addr
            elif cur.connection is None:
                cur.connection = addr
        elif kind == "a":
            name, colon, val = value.partition(":")
            name = name.strip()
            attr = (name, val if colon else None)
            if cur is None:
                attributes.append(attr)
                if name in DIRECTIONS and not colon:
                    direction = name
            else:
                cur.attributes.append(attr)
                _apply_media_attribute(cur, name, attr[1])
        elif cur is None and kind == "o" and not origin:
            origin = value
        elif cur is None and kind == "s" and not session_name:
            session_name = value
    return SessionDescription(origin, session_name, connection, direction, media, attributes)


@dataclass(frozen=True)
class MediaChoice:
    """What we do with offered m-line ``index``. ``clock_rate`` is the RTP clock (G.722: 8000 although it
    carries 16 kHz audio). ``reason`` says why a stream was not accepted (for logs and 488 texts)."""

    index: int
    accepted: bool
    codec: str | None
    payload_type: int | None
    clock_rate: int
    dtmf_payload_type: int | None
    reason: str | None = None


def _rejected(index: int, reason: str) -> MediaChoice:
    return MediaChoice(index, False, None, None, 0, None, reason)


def _codec_of(m: MediaDescription, pt: int) -> tuple[str, int, int] | None:
    if pt in m.rtpmap:
        return m.rtpmap[pt]
    return STATIC_PAYLOAD_TYPES.get(pt) if pt < 96 else None


def negotiate(offer: SessionDescription, supported: Sequence[str] = ("PCMU", "PCMA")) -> list[MediaChoice]:
    """One choice per offered m-line, in order. A stream is accepted when it is audio over RTP/AVP(F),
    has a non-zero port, is not inactive, and offers a codec in ``supported``; the codec is the first such
    format in the offerer's order (RFC 3264 section 6.1: the offerer's preference). Static payload types
    (0 PCMU, 8 PCMA, 9 G722, ...) work without rtpmap; dynamic ones need one. ``dtmf_payload_type`` is the
    offered telephone-event (RFC 4733) with the codec's clock rate, else any offered one."""
    wanted = {s.upper() for s in supported} - _NON_SPEECH
    choices: list[MediaChoice] = []
    for i, m in enumerate(offer.media):
        if m.media != "audio":
            choices.append(_rejected(i, f"{m.media} stream (we take audio only)"))
            continue
        if m.proto.upper() not in ACCEPTED_PROTOS:
            choices.append(_rejected(i, f"transport {m.proto} (we take {' or '.join(ACCEPTED_PROTOS)}; no SRTP)"))
            continue
        if m.port == 0:
            choices.append(_rejected(i, "port 0 (stream disabled by the offerer)"))
            continue
        if offer.effective_direction(i) == "inactive":
            choices.append(_rejected(i, "inactive stream"))
            continue
        chosen: tuple[int, str, int] | None = None
        for fmt in m.formats:
            if not _NUM_RE.match(fmt) or int(fmt) > 127:
                continue
            pt = int(fmt)
            codec = _codec_of(m, pt)
            if codec is None:
                continue
            name, rate, _channels = codec
            if name in wanted and _FIXED_RATE.get(name, rate) == rate:
                chosen = (pt, name, rate)
                break
        if chosen is None:
            choices.append(_rejected(i, "no offered codec in " + ", ".join(sorted(wanted))))
            continue
        pt, name, rate = chosen
        dtmf: int | None = None
        events = [int(f) for f in m.formats if _NUM_RE.match(f) and int(f) in m.rtpmap
                  and m.rtpmap[int(f)][0] == "TELEPHONE-EVENT"]
        same_rate = [e for e in events if m.rtpmap[e][1] == rate]
        if same_rate or events:
            dtmf = (same_rate or events)[0]
        choices.append(MediaChoice(i, True, name, pt, rate, dtmf))
    return choices


def _answer_direction(offered: str, wanted: str) -> str:
    """RFC 3264 section 6.1: sendonly offers get recvonly (or inactive); a recvonly offer means the
    offerer will not send, and we never send, so the stream is inactive."""
    if offered in ("recvonly", "inactive") or wanted == "inactive":
        return "inactive"
    if offered == "sendonly" and wanted in ("sendrecv", "recvonly"):
        return "recvonly"
    if offered == "sendonly":
        return "inactive"
    return wanted


def build_answer(offer: SessionDescription, choices: Sequence[MediaChoice], address: str, ports: Sequence[int], *,
                 session_id: int | None = None, session_version: int | None = None,
                 direction: str = "recvonly") -> bytes:
    """Our SDP answer (RFC 3264 section 6): one m-line per offered m-line, same order.

    Rejected streams get port 0 with the offered formats echoed. Accepted ones get the chosen payload
    type (plus telephone-event when offered, with its rtpmap and the offered fmtp, "0-16" by default),
    an a=rtpmap for each, a=ptime and a=label copied from the offer (SIPREC identifies streams by label),
    and a direction: ``direction`` adjusted to the offer (see :func:`_answer_direction`).

    ``ports`` is either one port per offered m-line (index-aligned; entries for rejected streams are
    ignored) or one per accepted stream, in m-line order. ``address`` goes into c= and o= (IP6 when it
    contains ':'). Raises ValueError for arguments that cannot make a valid answer (our bug, not the
    peer's).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    if not address or any(ch.isspace() for ch in address):
        raise ValueError(f"bad media address {address!r}")
    by_index = {c.index: c for c in choices}
    accepted = [i for i in range(len(offer.media)) if i in by_index and by_index[i].accepted]
    if len(ports) == len(offer.media):
        port_of = {i: int(ports[i]) for i in accepted}
    elif len(ports) == len(accepted):
        port_of = {i: int(p) for i, p in zip(accepted, ports)}
    else:
        raise ValueError(f"{len(ports)} ports for {len(offer.media)} offered / {len(accepted)} accepted streams")
    for i, p in port_of.items():
        if not 0 < p <= 65535:
            raise ValueError(f"bad RTP port {p} for stream {i}")
    sid = session_id if session_id is not None else secrets.randbelow(2**62) + 1
    version = session_version if session_version is not None else sid
    addrtype = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o=callscribe {sid} {version} IN {addrtype} {address}",
        "s=callscribe",
        f"c=IN {addrtype} {address}",
        "t=0 0",
    ]
    for i, m in enumerate(offer.media):
        c = by_index.get(i)
        if c is None or not c.accepted or c.payload_type is None:
            lines.append(f"m={m.media} 0 {m.proto} {' '.join(m.formats) or '0'}")
            continue
        pts = [c.payload_type]
        if c.dtmf_payload_type is not None and c.dtmf_payload_type != c.payload_type:
            pts.append(c.dtmf_payload_type)
        lines.append(f"m={m.media} {port_of[i]} {m.proto} {' '.join(str(p) for p in pts)}")
        codec = _codec_of(m, c.payload_type) or (c.codec or "", c.clock_rate, 1)
        name, rate, channels = codec
        if name == "OPUS":  # RFC 7587: always "opus/48000/2" (lower case; some peers compare so), whatever was offered
            name, channels = "opus", 2
        lines.append(f"a=rtpmap:{c.payload_type} {name}/{rate}" + (f"/{channels}" if channels != 1 else ""))
        if name == "opus":
            lines.append(f"a=fmtp:{c.payload_type} {OPUS_FMTP}")
        elif c.payload_type in m.fmtp:
            lines.append(f"a=fmtp:{c.payload_type} {m.fmtp[c.payload_type]}")
        if len(pts) == 2:
            ev_rate = m.rtpmap.get(pts[1], ("", 8000, 1))[1]
            lines.append(f"a=rtpmap:{pts[1]} telephone-event/{ev_rate}")
            lines.append(f"a=fmtp:{pts[1]} {m.fmtp.get(pts[1]) or '0-16'}")
        if m.ptime is not None:
            lines.append(f"a=ptime:{m.ptime}")
        if m.label is not None:
            lines.append(f"a=label:{m.label}")
        lines.append(f"a={_answer_direction(offer.effective_direction(i), direction)}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


__all__ = [
    "MediaDescription", "SessionDescription", "parse_sdp", "MediaChoice", "negotiate", "build_answer",
    "STATIC_PAYLOAD_TYPES", "ACCEPTED_PROTOS", "OPUS_FMTP",
]
