"""Where a call's recording lives in a recording store: pure functions of the call id and its start time.

One call is one *prefix* (a folder in the local store, a key prefix in an object store) holding up to three
objects: the original recording, the redacted rendition, and ``manifest.json`` (callscribe/recording/manifest.py).
Prefixes are sharded by the call's UTC start date (``2026/12/08/<call id>``) so retention walks days, not one
folder of millions of calls, and anyone who knows the call id and its start time (the gateway has both in
its store) finds the recording without an index.

Call ids come from clients (WebSocket ``start``) and SIP Call-IDs, which may hold ``/`` and other characters
that mean something in a path or a key; :func:`safe_segment` percent-encodes everything but a small safe set,
so a call id can never climb out of its prefix.
"""

from __future__ import annotations

import datetime as _dt
from urllib.parse import quote

MANIFEST = "manifest.json"
ORIGINAL = "original"
REDACTED = "redacted"
EXTENSIONS = {"opus": ".opus", "flac": ".flac"}
"""File extension per ``recording_format``: ``.opus`` is the registered extension of Ogg Opus (audio/ogg)."""
MEDIA_TYPES = {"opus": "audio/ogg; codecs=opus", "flac": "audio/flac"}
"""What an HTTP response serving the object says it is."""
_SAFE = "-_:@+"


def safe_segment(call_id: str) -> str:
    """``call_id`` as one path segment: letters, digits and ``-_:@+`` kept, everything else (``/``, ``.``,
    ``%``, spaces, non-ASCII) percent-encoded, so the segment is never ``.``, ``..`` or contains a separator."""
    if not call_id:
        raise ValueError("empty call id")
    return quote(call_id, safe=_SAFE).replace(".", "%2E")


def call_prefix(call_id: str, started_at_ms: int) -> str:
    """The prefix of a call's objects: ``YYYY/MM/DD/<safe call id>`` by the UTC date the call started."""
    day = _dt.datetime.fromtimestamp(max(0, started_at_ms) / 1000, _dt.timezone.utc)
    return f"{day:%Y/%m/%d}/{safe_segment(call_id)}"


def object_key(prefix: str, name: str, fmt: str = "") -> str:
    """``prefix/name`` plus the format's extension (``original.opus``); ``name`` MANIFEST takes none."""
    return f"{prefix}/{name}{EXTENSIONS[fmt] if fmt else ''}"


def prefix_day(prefix: str) -> _dt.date | None:
    """The UTC start date encoded in a prefix, or None when the prefix is not one of ours."""
    parts = prefix.split("/")
    if len(parts) < 3:
        return None
    try:
        return _dt.date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None


__all__ = ["MANIFEST", "ORIGINAL", "REDACTED", "EXTENSIONS", "MEDIA_TYPES", "safe_segment", "call_prefix",
           "object_key", "prefix_day"]
