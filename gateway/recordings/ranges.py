"""HTTP range requests (RFC 9110 section 14) over a stored object of known size: one byte range per request.

``Range: bytes=0-1023`` (first bytes), ``bytes=1000-`` (from an offset), ``bytes=-500`` (the last 500). What a
media element sends when it starts, seeks, or reads the end of a file for its duration. A range whose end lies
past the object is cut to it; one starting past the end, a zero-length suffix, or a malformed ``bytes=``
value is refused (416, ``Content-Range: bytes */size``). Other units are ignored (the whole object, 200), as
RFC 9110 asks, and so is a request for several ranges (a browser never sends one for media; answering with
the whole object is allowed and avoids multipart responses).
"""

from __future__ import annotations

import re

_SPEC = re.compile(r"(\d{0,18})-(\d{0,18})")


class RangeNotSatisfiable(Exception):
    """The requested range cannot be served (HTTP 416 with ``Content-Range: bytes */<size>``)."""

    def __init__(self, size: int, why: str) -> None:
        super().__init__(why)
        self.size = size


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` (inclusive byte positions) of a ``Range`` header over an object of ``size`` bytes, or None
    to send the whole object (no header, another unit, several ranges). RangeNotSatisfiable for a range that
    cannot be served."""
    if not header:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    m = _SPEC.fullmatch(spec.strip())
    if m is None or not (m.group(1) or m.group(2)):
        raise RangeNotSatisfiable(size, f"malformed range {header[:60]!r}: use bytes=first-last, bytes=first- or bytes=-suffix")
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(size, "empty suffix range")
        return max(0, size - n), size - 1
    a = int(first)
    b = int(last) if last else size - 1
    if b < a:
        raise RangeNotSatisfiable(size, f"range ends before it starts ({a}-{b})")
    if a >= size:
        raise RangeNotSatisfiable(size, f"range starts at byte {a}, the recording has {size}")
    return a, min(b, size - 1)


__all__ = ["RangeNotSatisfiable", "byte_range"]
