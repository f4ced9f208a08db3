"""Repeat callers: earlier calls from the same number, so the agent sees the history and a supervisor
sees a customer who keeps calling about the same problem.

:class:`RepeatIndex` is the in-process index (``callscribe analyze`` and tests); the live worker keeps the
same records in Redis (one sorted set per number, scored by call start, trimmed to the window), see
keyword/worker.py. Numbers are compared by their digits only, with a leading ``+86``/``0086``/``86`` on an
11-digit mobile number dropped, so ``+86 138-0013-8000`` and ``13800138000`` are one caller.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque

from .analyzer import PriorCall

__all__ = ["RepeatIndex", "caller_hash", "caller_key"]


def caller_key(number: str) -> str:
    """The digits that identify a caller ('' when there are none)."""
    digits = re.sub(r"\D", "", number)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11 and digits[len(prefix)] == "1":
            return digits[len(prefix):]
    return digits


def caller_hash(number: str) -> str:
    """A stable pseudonym of the caller (sha256 of :func:`caller_key`): what offline results keep so that a
    resumed run can link repeat callers without writing the number itself to disk."""
    key = caller_key(number)
    return hashlib.sha256(key.encode()).hexdigest()[:20] if key else ""


class RepeatIndex:
    """Calls by caller number within ``window_s``; memory bounded per number (``per_caller``)."""

    def __init__(self, window_s: float = 72 * 3600.0, per_caller: int = 20) -> None:
        self.window_ms = int(window_s * 1000)
        self.per_caller = per_caller
        self._calls: dict[str, deque[PriorCall]] = {}

    def lookup(self, number: str, now_ms: int) -> list[PriorCall]:
        key = caller_hash(number)
        if not key:
            return []
        calls = self._calls.get(key, ())
        return [c for c in calls if 0 <= now_ms - c.started_at_ms <= self.window_ms]

    def record(self, number: str, call: PriorCall) -> None:
        self.record_hash(caller_hash(number), call)

    def record_hash(self, key: str, call: PriorCall) -> None:
        """Record a call under a :func:`caller_hash` (a resumed offline run, which kept only the hash)."""
        if not key:
            return
        calls = self._calls.setdefault(key, deque(maxlen=self.per_caller))
        calls.append(call)
