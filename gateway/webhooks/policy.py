"""The delivery policy of outbound webhooks (pure: no Redis, no HTTP, no clock of its own).

* :class:`Endpoint`: one configured receiver (``kind=url``), with a stable id naming its consumer group.
* :class:`Delivery`: one enqueued delivery as the stream holds it, and the request body sent for it.
* :func:`classify` / :func:`decide`: what an attempt's answer means. 2xx: delivered. 408, 429, 5xx, a
  timeout or a connection error: retried with exponential backoff and jitter, unless the delivery is out of
  attempts (``max_attempts``) or of time (``max_age_s`` since it was enqueued); then it is dead-lettered.
  Any other answer (other 4xx, and 1xx/3xx: redirects are not followed) is permanent: dead-lettered at once.

Everything here is decided from the attempt count and the enqueue time stored in Redis, never from how long
this process has been running, so a restart, an outage of a minute or one of a day follow the same rules.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from callscribe.config import Config

__all__ = ["SCHEMA_VERSION", "Endpoint", "Delivery", "RetryPolicy", "Action", "Decision", "parse_endpoints",
           "classify", "decide", "backoff_s", "parse_retry_after", "check_kind", "check_key", "encode_payload"]

SCHEMA_VERSION = 1
"""Version of a delivery entry (``v``) and of the body envelope."""

_KIND = re.compile(r"[A-Za-z0-9._-]{1,64}")  # the same rule as config's ``webhooks`` entries
_KEY_MAX = 200


def check_kind(kind: str) -> str:
    """An output kind: 1-64 letters, digits, ``.``, ``_`` or ``-`` (``*`` is for endpoints only)."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValueError(f"webhook kind {kind!r}: 1-64 letters, digits, '.', '_' or '-'")
    return kind


def check_key(key: str) -> str:
    """An idempotency key: 1-200 printable ASCII characters (it travels as an HTTP header)."""
    if not isinstance(key, str) or not 0 < len(key) <= _KEY_MAX or not all(32 < ord(c) < 127 for c in key):
        raise ValueError(f"webhook idempotency key {key!r:.60}: 1-{_KEY_MAX} printable ASCII characters, no spaces")
    return key


def encode_payload(payload: Mapping[str, Any]) -> str:
    """``payload`` as compact JSON text (what the stream stores). Raises ValueError / TypeError at once for
    what JSON cannot carry (NaN, sets, lone surrogates): a caller's bug, better seen at enqueue."""
    if not isinstance(payload, Mapping):
        raise TypeError(f"webhook payload must be a dict, not {type(payload).__name__}")
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    text.encode("utf-8")  # a lone surrogate: UnicodeEncodeError (a ValueError)
    return text


# --- endpoints -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Endpoint:
    kind: str
    """The output kind it receives, or ``*`` for every kind."""
    url: str

    @property
    def id(self) -> str:
        """Stable name of this endpoint (sha256 of ``kind=url``, 12 hex digits): its consumer group is
        ``webhooks:{id}``, so a restart resumes where it stopped and a changed URL is a new endpoint."""
        return hashlib.sha256(f"{self.kind}={self.url}".encode("utf-8")).hexdigest()[:12]

    @property
    def safe_url(self) -> str:
        """The URL without credentials, query or fragment (they may hold tokens): for logs and dead letters."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def matches(self, kind: str) -> bool:
        return self.kind == "*" or self.kind == kind


def parse_endpoints(entries: tuple[str, ...] | list[str]) -> list[Endpoint]:
    """The ``webhooks`` setting (``kind=url`` entries, already validated by Config) as endpoints."""
    out: list[Endpoint] = []
    for entry in entries:
        kind, _, url = entry.partition("=")
        out.append(Endpoint(kind.strip(), url.strip()))
    return out


# --- deliveries ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    """The stream entry id (``<ms>-<seq>``): the same for every endpoint and every attempt."""
    kind: str
    key: str
    payload_json: str
    endpoint: str = ""
    """A replayed dead letter (replay.py): only the endpoint with this id takes it; '' = every endpoint of the kind."""

    @property
    def created_ms(self) -> int:
        """When it was enqueued (Redis's clock, from the entry id)."""
        return int(self.id.partition("-")[0])

    @staticmethod
    def fields(kind: str, key: str, payload_json: str) -> dict[str, str]:
        """The stream entry of a new delivery."""
        return {"v": str(SCHEMA_VERSION), "kind": kind, "key": key, "payload": payload_json}

    @classmethod
    def from_fields(cls, entry_id: str, fields: Mapping[Any, Any]) -> "Delivery":
        """Raises ValueError for an entry that is not a delivery, or of a version this code does not know."""
        f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in fields.items()}
        v = f.get("v", "")
        if v != str(SCHEMA_VERSION):
            raise ValueError(f"webhook entry {entry_id}: version {v!r}, this sender knows {SCHEMA_VERSION}")
        try:
            return cls(entry_id, check_kind(f["kind"]), check_key(f["key"]), f["payload"], f.get("endpoint", ""))
        except KeyError as exc:
            raise ValueError(f"webhook entry {entry_id}: no {exc.args[0]!r} field") from None

    def body(self) -> bytes:
        """The request body: ``{"v", "id", "kind", "key", "created_ms", "data"}``, identical for every
        attempt (``data`` is the payload exactly as enqueued)."""
        head = json.dumps({"v": SCHEMA_VERSION, "id": self.id, "kind": self.kind, "key": self.key,
                           "created_ms": self.created_ms}, separators=(",", ":"))
        return (head[:-1] + ',"data":' + self.payload_json + "}").encode("utf-8")


# --- retry policy ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 20
    max_age_s: float = 86_400.0
    backoff_min_s: float = 1.0
    """Delay before the first retry; doubled after each failed attempt ..."""
    backoff_max_s: float = 300.0
    """... up to this (5 min). Each delay is drawn from [d/2, d] (jitter) so receivers coming back are not
    hit by every sender at the same instant."""
    timeout_s: float = 10.0

    @classmethod
    def from_config(cls, cfg: Config, **overrides: Any) -> "RetryPolicy":
        values = dict(max_attempts=cfg.webhook_max_attempts, max_age_s=cfg.webhook_max_age_s,
                      timeout_s=cfg.webhook_timeout_s)
        values.update(overrides)
        return cls(**values)


class Action(str, Enum):
    DONE = "done"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay_s: float = 0.0
    """With RETRY: wait this long before the next attempt."""
    reason: str = ""
    """With DEAD: why it was given up on (besides the last error)."""


def classify(status: int | None) -> Action:
    """What one answer means on its own: ``status`` None is a timeout or a connection error."""
    if status is None or status in (408, 429) or 500 <= status <= 599:
        return Action.RETRY
    if 200 <= status <= 299:
        return Action.DONE
    return Action.DEAD


def backoff_s(attempts: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Delay after the ``attempts``-th failed attempt: ``backoff_min_s * 2**(attempts-1)`` capped at
    ``backoff_max_s``, drawn from its upper half."""
    exp = min(max(attempts - 1, 0), 60)
    d = min(policy.backoff_max_s, policy.backoff_min_s * 2.0 ** exp)
    return d / 2 + (rng or random).random() * d / 2


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (an HTTP date is ignored: None)."""
    if not value:
        return None
    try:
        s = float(value.strip())
    except ValueError:
        return None
    return s if math.isfinite(s) and s >= 0 else None


def decide(status: int | None, attempts: int, created_ms: int, now_ms: int, policy: RetryPolicy,
           retry_after_s: float | None = None, rng: random.Random | None = None) -> Decision:
    """After the ``attempts``-th attempt (counting this one) answered ``status``: deliver, retry or give up.

    A retry is never scheduled past the delivery's deadline (``created_ms + max_age_s``): the last attempt
    happens at the deadline, and if that fails too the delivery is dead-lettered. A ``Retry-After`` answer
    (429, 503) stretches the delay, up to ``backoff_max_s``."""
    action = classify(status)
    if action is Action.DONE:
        return Decision(Action.DONE)
    if action is Action.DEAD:
        return Decision(Action.DEAD, reason=f"permanent answer {status}" if status is not None else "permanent")
    if attempts >= policy.max_attempts:
        return Decision(Action.DEAD, reason=f"gave up after {attempts} attempts")
    left_s = (created_ms + policy.max_age_s * 1000 - now_ms) / 1000
    if left_s <= 0:
        return Decision(Action.DEAD, reason=f"gave up after {attempts} attempts over {policy.max_age_s:g} s (webhook_max_age_s)")
    delay = backoff_s(attempts, policy, rng)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, policy.backoff_max_s))
    return Decision(Action.RETRY, delay_s=min(delay, left_s))
