"""Surge / hot-topic warning: a topic (an intent, or an alert rule) suddenly on many more calls than usual.

Why: a regional broadband outage or a billing-run error shows up in the contact center as a jump in calls
about one thing, minutes before any monitoring system says so. For each topic the detector counts distinct
calls in the last ``window_s`` and compares with the rate over the preceding ``baseline_s`` (scaled to one
window). It fires when the window holds at least ``min_calls`` calls and at least ``ratio`` times the
baseline (the baseline is floored at ``floor`` calls per window, so a topic that was at zero needs
``min_calls`` to fire, not one call). Until the detector has watched for two windows it does not fire,
and before it has watched for ``baseline_s`` the baseline is the rate over the time it has watched, so a
worker that just started does not take ordinary traffic for a surge. After firing, a topic stays quiet for one window (``cooldown``) unless
the count doubles again. Pure: times are passed in, so tests and the offline CLI replay a day in a second.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from callscribe.events import Surge

__all__ = ["SurgeDetector"]


@dataclass(slots=True)
class _Topic:
    seen: deque[tuple[int, str]] = field(default_factory=deque)  # (at_ms, call_id), oldest first
    calls: set[str] = field(default_factory=set)
    last_fired_ms: int = -(10**15)
    last_fired_count: int = 0


class SurgeDetector:
    def __init__(
        self, window_s: float = 600.0, baseline_s: float = 6 * 3600.0, min_calls: int = 5, ratio: float = 3.0,
        floor: float = 1.0, max_topics: int = 10_000,
    ) -> None:
        self.window_ms = int(window_s * 1000)
        self.baseline_ms = int(baseline_s * 1000)
        self.min_calls = min_calls
        self.ratio = ratio
        self.floor = floor
        self.max_topics = max_topics
        self._topics: dict[tuple[str, str], _Topic] = {}
        self._first_ms: int | None = None
        self.fired: list[Surge] = []

    def observe(self, topic_kind: str, topic: str, call_id: str, at_ms: int) -> Surge | None:
        """Count ``call_id`` under the topic at ``at_ms`` (a call counts once per topic); a Surge when it fires."""
        if self._first_ms is None:
            self._first_ms = at_ms
        key = (topic_kind, topic)
        t = self._topics.get(key)
        if t is None:
            if len(self._topics) >= self.max_topics:
                return None  # bound memory against topic explosions; the known topics keep working
            t = self._topics[key] = _Topic()
        if call_id in t.calls:
            return None
        t.calls.add(call_id)
        t.seen.append((at_ms, call_id))
        horizon = at_ms - self.window_ms - self.baseline_ms
        while t.seen and t.seen[0][0] < horizon:
            _, old = t.seen.popleft()
            t.calls.discard(old)
        window_start = at_ms - self.window_ms
        recent = [c for ts, c in t.seen if ts > window_start]
        before = sum(1 for ts, _ in t.seen if ts <= window_start)
        watched_before_ms = window_start - self._first_ms
        if watched_before_ms < self.window_ms:
            return None  # still warming up: no baseline of at least one window yet
        span = min(self.baseline_ms, watched_before_ms)
        baseline = max(self.floor, before * self.window_ms / span)
        count = len(recent)
        if count < self.min_calls or count < self.ratio * baseline:
            return None
        in_cooldown = at_ms - t.last_fired_ms < self.window_ms
        if in_cooldown and count < 2 * t.last_fired_count:
            return None
        t.last_fired_ms, t.last_fired_count = at_ms, count
        surge = Surge(
            surge_id=f"surge/{topic_kind}/{topic}/{at_ms}", topic_kind=topic_kind, topic=topic,
            window_s=self.window_ms // 1000, count=count, baseline=round(baseline, 3),
            ratio=round(count / baseline, 2), call_ids=tuple(recent[-50:]),
        )
        self.fired.append(surge)
        return surge
