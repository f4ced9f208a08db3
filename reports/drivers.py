"""Contact drivers (pure): the intent mix over time, and movers and shakers with a significance test.

**Movers and shakers.** For each intent, its share of calls this period (``x1 / n1``) against the previous period of
the same length (``x2 / n2``), tested with the two-proportion z-test (pooled standard error). Shares, not counts: a
busy Monday raises every intent's count, not its share. An intent is a *mover* when

* it had at least ``min_count`` calls in the two periods together (fewer calls cannot show anything but noise), and
* its change is significant after the Benjamini-Hochberg correction over all intents tested, at false discovery rate
  ``alpha`` (0.05): with twenty intents tested, a plain p < 0.05 would flag one of them by chance in most periods.

Each row carries counts, shares, the change in percentage points, z, the raw p-value and the adjusted q-value, so a
reader can see why it is (or is not) called a mover.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Iterable

__all__ = ["two_proportion_z", "benjamini_hochberg", "movers", "intent_mix"]


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """``(z, two-sided p)`` of H0: both proportions equal (pooled). ``(0, 1)`` when either period is empty or the
    pooled share is 0 or 1 (nothing to test)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted q-values, in the order given."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, pvalues[i] * m / rank)
        q[i] = min(1.0, running)
    return q


def movers(current: dict[str, int], previous: dict[str, int], min_count: int = 10, alpha: float = 0.05) -> list[dict[str, Any]]:
    """Every intent of either period with its test; ``direction`` is ``up`` / ``down`` for significant movers and
    ``""`` otherwise. Sorted: movers first (by |z|), then the rest by calls."""
    n1, n2 = sum(current.values()), sum(previous.values())
    rows = []
    for intent in sorted(set(current) | set(previous)):
        x1, x2 = int(current.get(intent, 0)), int(previous.get(intent, 0))
        z, p = two_proportion_z(x1, n1, x2, n2)
        rows.append({"intent": intent, "calls": x1, "previous_calls": x2,
                     "share": round(x1 / n1, 4) if n1 else None, "previous_share": round(x2 / n2, 4) if n2 else None,
                     "change_pp": round(100 * ((x1 / n1 if n1 else 0) - (x2 / n2 if n2 else 0)), 2),
                     "z": round(z, 3), "p": p, "tested": x1 + x2 >= min_count and n1 > 0 and n2 > 0})
    tested = [r for r in rows if r["tested"]]
    for r, q in zip(tested, benjamini_hochberg([r["p"] for r in tested])):
        r["q"] = q
    for r in rows:
        r.setdefault("q", None)
        significant = r["tested"] and r["q"] is not None and r["q"] <= alpha
        r["direction"] = ("up" if r["z"] > 0 else "down") if significant else ""
        r["p"] = round(r["p"], 6)
        r["q"] = None if r["q"] is None else round(r["q"], 6)
    rows.sort(key=lambda r: (not r["direction"], -abs(r["z"]) if r["direction"] else -r["calls"], r["intent"]))
    return rows


def intent_mix(rows: Iterable[tuple[tuple[int, str], dict[str, Any]]], utc_offset_ms: int) -> dict[str, Any]:
    """Calls per local day and intent from ``measures(..., "day_intent")`` rows: ``{"days": [YYYY-MM-DD...],
    "day_ms": [...], "intents": [...] (most calls first), "calls": {intent: [per day]}, "share": {intent: [...]}}``."""
    counts: dict[tuple[int, str], int] = {}
    for (day, intent), m in rows:
        counts[(day, intent)] = counts.get((day, intent), 0) + int(m["calls"])
    days = sorted({d for d, _ in counts})
    totals = {i: 0 for _, i in counts}
    for (_, i), n in counts.items():
        totals[i] += n
    intents = sorted(totals, key=lambda i: (-totals[i], i))
    per_day = {d: sum(n for (dd, _), n in counts.items() if dd == d) for d in days}
    calls = {i: [counts.get((d, i), 0) for d in days] for i in intents}
    share = {i: [round(calls[i][k] / per_day[d], 4) if per_day[d] else 0.0 for k, d in enumerate(days)] for i in intents}
    labels = [datetime.fromtimestamp((d + utc_offset_ms) / 1000, tz=timezone.utc).strftime("%Y-%m-%d") for d in days]
    return {"days": labels, "day_ms": days, "intents": intents, "calls": calls, "share": share}
