"""The WebSocket ingest protocol (docs/protocol.md), sans-I/O: messages in, typed requests or ProtocolError out.

Close codes (RFC 6455): 1003 unsupported data (binary before start, text where audio is due), 1007
invalid payload (bad JSON, bad field values, frame not a whole number of samples), 1008 policy violation
(protocol order), 1009 frame too big, 1011 internal error, 1013 try again later (worker at capacity, or the
source at its quota), 1001 going away (the server shuts down), 4409 the call id names another call.
Unauthenticated clients never reach the WebSocket: the handshake is answered HTTP 401 / 403.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from callscribe.audio import ENCODINGS, SAMPLE_RATES_HZ
from callscribe.errors import ProtocolError

CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013
CLOSE_GOING_AWAY = 1001
CLOSE_CALL_ID_IN_USE = 4409

_CALL_ID = re.compile(r"[A-Za-z0-9._:@+-]{1,128}")  # used with fullmatch: `$` would accept a trailing newline
_ROLES = ("customer", "agent", "mixed")
LAYOUTS = ("interleaved", "channel_prefixed")


@dataclass(frozen=True, slots=True)
class StartRequest:
    call_id: str
    channels: tuple[str, ...]
    encoding: str = "pcm16"
    sample_rate_hz: int = 16000
    language: str = "auto"
    layout: str = "interleaved"
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndRequest:
    reason: str = "client_end"


def storage_message(durable: bool, pending: int, call_id: str = "") -> str:
    """The ``storage`` message: whether this call's finals are durable (written to Redis) yet."""
    msg: dict = {"type": "storage", "durable": durable, "pending_finals": pending}
    if call_id:
        msg["call_id"] = call_id
    return json.dumps(msg)


def parse_text(message: str) -> StartRequest | EndRequest:
    """Parse one text message. Raises ProtocolError (code 1007) with a reason a client can act on."""
    try:
        return _parse_text(message)
    except RecursionError as exc:  # JSON nested past the interpreter's limit (a 64 kB frame holds 64,000 '[')
        raise ProtocolError("bad JSON: nested too deeply", 1007) from exc


def _parse_text(message: str) -> StartRequest | EndRequest:
    try:
        obj = json.loads(message)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"bad JSON: {exc.msg} at {exc.pos}", 1007) from exc
    except ValueError as exc:  # an integer past Python's digit limit (4,300 digits)
        raise ProtocolError(f"bad JSON: {str(exc)[:80]}", 1007) from exc
    if not isinstance(obj, dict):
        raise ProtocolError("a message must be a JSON object", 1007)
    kind = obj.get("type")
    if kind == "start":
        return _parse_start(obj)
    if kind == "end":
        reason = str(obj.get("reason", "client_end"))[:64]
        if not _utf8(reason):
            raise ProtocolError("end.reason must be UTF-8 text (no lone surrogates)", 1007)
        return EndRequest(reason)
    raise ProtocolError(f"unknown message type {kind!r}; expected start or end", 1007)


def _utf8(text: str) -> bool:
    """JSON may escape a lone surrogate ("\\ud800"): such a str cannot be written to Redis or sent back."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_start(obj: dict) -> StartRequest:
    call_id = obj.get("call_id")
    if not isinstance(call_id, str) or not _CALL_ID.fullmatch(call_id):
        raise ProtocolError("start.call_id must be 1-128 characters of A-Z a-z 0-9 . _ : @ + -", 1007)
    channels = obj.get("channels", ["customer", "agent"])
    if isinstance(channels, int) and not isinstance(channels, bool):
        channels = ["mixed"] if channels == 1 else ["customer", "agent"] if channels == 2 else channels
    if (
        not isinstance(channels, list)
        or not 1 <= len(channels) <= 2
        or any(c not in _ROLES for c in channels)
        or len(set(channels)) != len(channels)
    ):
        raise ProtocolError("start.channels must be 1 or 2 distinct roles of customer, agent, mixed", 1007)
    encoding = obj.get("encoding", "pcm16")
    if encoding not in ENCODINGS:
        raise ProtocolError(f"unknown encoding {encoding!r}; use one of {', '.join(ENCODINGS)}", 1003)
    rate = obj.get("sample_rate", 16000)
    if rate not in SAMPLE_RATES_HZ or isinstance(rate, bool):
        raise ProtocolError(f"unsupported sample_rate {rate!r}; use 8000 or 16000", 1003)
    language = obj.get("language", "auto")
    if not isinstance(language, str) or not re.match(r"^(auto|[a-z]{2,3})$", language):
        raise ProtocolError("start.language must be auto or a Whisper language code such as zh or en", 1007)
    layout = obj.get("layout", "interleaved")
    if layout not in LAYOUTS:
        raise ProtocolError(f"unknown layout {layout!r}; use {' or '.join(LAYOUTS)}", 1007)
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict) or len(metadata) > 64:
        raise ProtocolError("start.metadata must be an object of at most 64 entries", 1007)
    meta = {str(k)[:64]: str(v)[:256] for k, v in metadata.items() if isinstance(v, (str, int, float))}
    if not all(_utf8(k) and _utf8(v) for k, v in meta.items()):
        raise ProtocolError("start.metadata keys and values must be UTF-8 text (no lone surrogates)", 1007)
    return StartRequest(call_id, tuple(channels), encoding, int(rate), language, layout, meta)


def split_frame(data: bytes, layout: str, n_channels: int) -> tuple[int | None, bytes]:
    """(channel index or None for interleaved, audio bytes). Channel-prefixed frames carry the index first."""
    if layout == "interleaved":
        return None, data
    if not data:
        raise ProtocolError("empty channel-prefixed frame", 1007)
    index = data[0]
    if index >= n_channels:
        raise ProtocolError(f"frame for channel {index}, but the call has {n_channels}", 1007)
    return index, data[1:]
