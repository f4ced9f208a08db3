"""Short-lived signed audio links: what the QA page's ``<audio>`` element fetches.

A media element cannot send an ``Authorization`` header, and the page's token must not travel in a URL (URLs end
up in logs and histories). So ``GET /api/v1/calls/{id}/recording`` (bearer token, role-checked) answers with a
link that carries its own proof: an HMAC-SHA256, under a key derived from the gateway's ``auth_secret``, over the
call id, its start time, the rendition, the role and subject it was issued to, and its expiry (:data:`URL_TTL_S`
from issue). Any gateway with the same secret accepts it; nobody without the secret can make or alter one; it is
worthless after its expiry. The rendition is signed so a link can never be bent into the original, and the role
so that the policy is checked again when the link is used (callscribe/pii.py may have changed meanwhile).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

URL_TTL_S = 300
"""How long an audio link works: 5 minutes. The page asks for a fresh one when it is older (replay.js)."""
KEY_PURPOSE = b"callscribe recording audio link v1"
"""Derives the link key from auth_secret (never the token key itself)."""
_SKEW_S = 60
"""A link that claims to live longer than TTL + this was not issued here (clock skew between gateways allowed)."""
PARAMS = ("t", "r", "role", "sub", "exp", "sig")
"""The link's query parameters: call start (epoch ms), rendition, role, subject, expiry (epoch s), signature."""


class LinkError(Exception):
    """A link that is incomplete, altered, or expired (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class AudioLink:
    call_id: str
    started_at_ms: int
    rendition: str
    """original | redacted"""
    role: str
    sub: str
    exp: int
    """Epoch seconds."""


class AudioLinks:
    def __init__(self, key: bytes, ttl_s: int = URL_TTL_S) -> None:
        if len(key) < 32:
            raise ValueError("audio link key must be at least 32 bytes")
        self._key = key
        self.ttl_s = ttl_s

    def _sig(self, link: AudioLink) -> str:
        msg = json.dumps(["callscribe-audio", 1, link.call_id, link.started_at_ms, link.rendition, link.role, link.sub,
                          link.exp], ensure_ascii=True, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(hmac.new(self._key, msg, hashlib.sha256).digest()).rstrip(b"=").decode()

    def issue(self, call_id: str, started_at_ms: int, rendition: str, role: str, sub: str,
              now_s: float | None = None) -> AudioLink:
        now = int(time.time() if now_s is None else now_s)
        return AudioLink(call_id, int(started_at_ms), rendition, role, sub, now + self.ttl_s)

    def query(self, link: AudioLink) -> dict[str, str]:
        """The link's query parameters (signed)."""
        return {"t": str(link.started_at_ms), "r": link.rendition, "role": link.role, "sub": link.sub,
                "exp": str(link.exp), "sig": self._sig(link)}

    def verify(self, call_id: str, params: Mapping[str, str | None], now_s: float | None = None) -> AudioLink:
        """The link these query parameters (of ``call_id``'s audio route) stand for; LinkError saying why not."""
        missing = [p for p in PARAMS if not params.get(p)]
        if missing:
            raise LinkError(f"incomplete audio link (no {', '.join(missing)}): ask GET /api/v1/calls/{{id}}/recording for one")
        t, exp = str(params["t"]), str(params["exp"])
        if not (t.isascii() and t.isdigit() and len(t) <= 15 and exp.isascii() and exp.isdigit() and len(exp) <= 12):
            raise LinkError("bad audio link")
        link = AudioLink(call_id, int(t), str(params["r"]), str(params["role"]), str(params["sub"]), int(exp))
        if not hmac.compare_digest(self._sig(link).encode(), str(params["sig"]).encode("utf-8", "replace")):
            raise LinkError("bad audio link: the signature does not match (altered, or signed with another secret)")
        now = time.time() if now_s is None else now_s
        if link.exp <= now:
            raise LinkError("audio link expired: ask GET /api/v1/calls/{id}/recording for a fresh one")
        if link.exp - now > self.ttl_s + _SKEW_S:
            raise LinkError("bad audio link: expiry too far ahead")
        return link


__all__ = ["AudioLink", "AudioLinks", "LinkError", "URL_TTL_S", "KEY_PURPOSE", "PARAMS"]
