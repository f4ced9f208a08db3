"""API tokens and roles.

A token is an HS256-signed JWT (PyJWT) with ``sub``, ``role``, ``agent_id`` (agents) and ``exp``: the
gateway checks it without a database, any gateway with the same ``auth_secret`` accepts it, and it
expires on its own. Static tokens from config (``api_tokens``: ``role:subject:token``) serve screens that
cannot be given a fresh token every shift; they are compared in constant time.

Roles are checked per endpoint by the API (``app.py``); this module only says who the caller is.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from callscribe.config import Config
from callscribe.errors import CallscribeError

__all__ = ["ROLES", "Principal", "AuthError", "TokenAuthority"]

ROLES = ("agent", "supervisor", "qa", "admin", "ingest", "integration")
"""``ingest``: a call source (SBC, recorder, script) that may send calls to the ingest port and nothing else.
``integration``: a ticketing system (CRM) that may report ticket status (``POST /api/v1/tickets/{id}/status``) and
nothing else: reads no call data, so a leaked CRM credential leaks no calls."""
_ALG = "HS256"
_ISSUER = "callscribe"


class AuthError(CallscribeError):
    """No token, a token that does not verify, or one that has expired (HTTP 401, WebSocket 4401)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``sub`` names the person or screen; ``agent_id`` is set for agents only."""

    sub: str
    role: str
    agent_id: str = ""
    exp: int = 0  # epoch seconds; 0 = a static token that does not expire

    def to_dict(self) -> dict[str, object]:
        return {"sub": self.sub, "role": self.role, "agent_id": self.agent_id, "exp": self.exp}


class TokenAuthority:
    def __init__(self, secret: bytes, static_tokens: tuple[str, ...] = (), default_ttl_h: float = 12.0) -> None:
        if len(secret) < 32:
            raise AuthError("auth secret must be at least 32 bytes")
        self._secret = secret
        self.default_ttl_h = default_ttl_h
        self._static: list[tuple[bytes, Principal]] = []
        for entry in static_tokens:
            role, subject, token = entry.split(":", 2)
            principal = Principal(subject, role, subject if role == "agent" else "")
            self._static.append((token.encode(), principal))

    @classmethod
    def from_config(cls, cfg: Config) -> "TokenAuthority":
        """The secret from config, else the one in ``{data_dir}/auth.secret`` (created on first use, mode 0600)."""
        secret = cfg.auth_secret.encode() if cfg.auth_secret else _secret_file(cfg.data_path / "auth.secret")
        return cls(secret, cfg.api_tokens, cfg.token_ttl_h)

    def derived_key(self, purpose: bytes) -> bytes:
        """A key for another signature of this gateway (HMAC-SHA256 of ``purpose`` under the auth secret), so that
        no other signed thing (the recordings' audio links) can ever pass for a token or the other way round."""
        return hmac.new(self._secret, purpose, "sha256").digest()

    def mint(self, role: str, sub: str, agent_id: str = "", ttl_h: float | None = None) -> tuple[str, int]:
        """A signed token and its expiry (epoch seconds). Agents need an ``agent_id`` (default: ``sub``)."""
        if role not in ROLES:
            raise AuthError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if not sub.strip():
            raise AuthError("a token needs a subject (who it is for)")
        ttl = self.default_ttl_h if ttl_h is None else ttl_h
        if not 0 < ttl <= 24 * 366:
            raise AuthError("ttl_h must be between 0 and one year")
        now = int(time.time())
        exp = now + int(ttl * 3600)
        claims = {"sub": sub, "role": role, "iat": now, "exp": exp, "iss": _ISSUER}
        if role == "agent":
            claims["agent_id"] = agent_id or sub
        return jwt.encode(claims, self._secret, algorithm=_ALG), exp

    def verify(self, token: str | None) -> Principal:
        """The principal a token stands for; :class:`AuthError` saying why not."""
        if not token:
            raise AuthError("no token: send Authorization: Bearer <token>")
        raw = token.encode()
        for known, principal in self._static:
            if hmac.compare_digest(known, raw):
                return principal
        try:
            claims = jwt.decode(token, self._secret, algorithms=[_ALG], issuer=_ISSUER,
                                options={"require": ["exp", "sub", "role"]})
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        role = claims.get("role")
        if role not in ROLES:
            raise AuthError(f"invalid token: unknown role {role!r}")
        agent_id = str(claims.get("agent_id") or "")
        if role == "agent" and not agent_id:
            raise AuthError("invalid token: an agent token without agent_id")
        return Principal(str(claims["sub"]), role, agent_id, int(claims["exp"]))


def _secret_file(path: Path) -> bytes:
    """Read the generated secret, creating it on first use. The new secret is written to a private temp
    file and hard-linked into place, which fails if another process won the race: both then use its file."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()
