"""Signing of outbound webhooks (pure: no I/O). Receivers may copy :func:`verify_signature` as it is.

Scheme (docs/webhooks.md): every request carries ``X-Callscribe-Timestamp: <unix seconds>`` and
``X-Callscribe-Signature: sha256=<hex>``, where ``<hex>`` is HMAC-SHA256, keyed with the shared secret (its
UTF-8 bytes), of ``b"<timestamp>." + body`` (the raw request body, byte for byte). Signing the timestamp with
the body lets a receiver refuse replays: a captured request is only good for ``tolerance_s``. A header may
list several signatures separated by commas (``sha256=<a>,sha256=<b>``) so a secret can be rotated: any
match is enough. Each attempt of a delivery is signed afresh, with its own timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SCHEME = "sha256"

__all__ = ["SCHEME", "sign", "signature_header", "verify_signature"]


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret``."""
    return hmac.new(_key(secret), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The value of ``X-Callscribe-Signature``: ``sha256=<hex>``."""
    return f"{SCHEME}={sign(secret, timestamp, body)}"


def verify_signature(secret: str | bytes, timestamp: str | int, body: bytes, header: str,
                     tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """True when ``header`` (``X-Callscribe-Signature``) signs ``body`` with ``secret`` at ``timestamp``
    (``X-Callscribe-Timestamp``) and that timestamp is within ``tolerance_s`` of ``now`` (default: the
    clock). ``body`` is the raw request body, before any JSON parsing. Never raises for bad input."""
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    expected = sign(secret, ts, body)
    ok = False
    for part in str(header).split(","):
        scheme, sep, value = part.strip().partition("=")
        if sep and scheme == SCHEME and hmac.compare_digest(value.strip().lower().encode("utf-8", "replace"),
                                                            expected.encode("ascii")):
            ok = True  # no early return: the time taken does not say which entry matched
    return ok
