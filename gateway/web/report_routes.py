"""The reports API (thin: callscribe/reports does the work; docs/reports.md). Mounted by app.py.

``since`` / ``until``: a date (``2026-12-01``: midnight in ``report_timezone``), epoch ms or an ISO date-time.

* ``GET /api/v1/reports/summary``: the report of a period (totals, by intent / queue / agent / day / hour, alerts,
  unresolved reasons, intent mix, movers and shakers) and the queues, intents and agents seen in it (the filters).
* ``GET /api/v1/reports/topics``: emerging topics of the period against the one before, with example call ids.

Roles: supervisor, qa and admin. Numbers: a report holds no phone number; topics hold customers' words, which go
through the one PII policy (callscribe/pii.py) like any transcript text.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Query

from callscribe.reports.facts import DAY_MS
from callscribe.reports.metrics import build_report, local_midnight_ms, topic_finder, zone

from .auth import Principal

if TYPE_CHECKING:
    from .app import Api

__all__ = ["mount_reports", "MAX_DAYS"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LAST_MS = 253_402_214_400_000  # 9999-12-31 00:00 UTC: the last day a calendar (and zoneinfo) can name
MAX_DAYS = 400
"""Longest period one report covers (a year and a bit: the aggregates are hourly rows)."""


def period(since_ms: int | None, until_ms: int | None, now_ms: int | None = None) -> tuple[int, int]:
    """[since, until): default the last 7 days up to now; 400 days at most; since before until."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    until = until_ms if until_ms is not None else now
    since = since_ms if since_ms is not None else until - 7 * DAY_MS
    if since >= until:
        raise HTTPException(400, "since must be before until")
    if not (0 <= since and until <= _LAST_MS):
        raise HTTPException(400, "since and until must fall within years 1970-9999")
    if until - since > MAX_DAYS * DAY_MS:
        raise HTTPException(400, f"a report covers {MAX_DAYS} days at most")
    return since, until


def mount_reports(api: "Api", app: FastAPI) -> None:
    from .app import _when

    gw = api.gw
    readers = api.allow("supervisor", "qa")
    tz = zone(api.cfg.report_timezone)
    catalog: list[Any] = []

    def when(value: str | None, name: str) -> int | None:
        """A date (YYYY-MM-DD: its midnight in ``report_timezone``, where report days are cut), else what
        every other route takes (epoch ms, an ISO date-time)."""
        if value and _DATE.fullmatch(value.strip()):
            try:
                return local_midnight_ms(tz, value.strip())
            except ValueError as exc:
                raise HTTPException(400, f"{name}: not a date: {value[:40]!r}") from exc
        return _when(value, name)

    def filters(since: str | None, until: str | None) -> tuple[int, int]:
        return period(when(since, "since"), when(until, "until"))

    @app.get("/api/v1/reports/summary", tags=["reports"])
    async def summary(since: str | None = None, until: str | None = None,
                      queue: str | None = Query(None, max_length=200), intent: str | None = Query(None, max_length=200),
                      agent: str | None = Query(None, max_length=200), min_count: int = Query(10, ge=1, le=100_000),
                      who: Principal = Depends(readers)) -> dict[str, Any]:
        """The report of calls started in [since, until) (default: the last 7 days), by the configured
        ``report_timezone``; ``queue`` / ``intent`` / ``agent`` filter it. Movers compare with the period before."""
        lo, hi = filters(since, until)

        def build() -> dict[str, Any]:
            report = build_report(gw.store.reports, lo, hi, queue=queue or None, intent=intent or None,
                                  agent_id=agent or None, tz=tz, window_days=api.cfg.fcr_window_days,
                                  intent_names=gw.intent_names, min_count=min_count)
            report["dimensions"] = gw.store.reports.dimension_values(lo, hi)
            return report

        return api.view(who, await asyncio.to_thread(build))

    @app.get("/api/v1/reports/topics", tags=["reports"])
    async def topics(since: str | None = None, until: str | None = None,
                     queue: str | None = Query(None, max_length=200), intent: str | None = Query(None, max_length=200),
                     agent: str | None = Query(None, max_length=200), min_calls: int = Query(3, ge=1, le=10_000),
                     who: Principal = Depends(readers)) -> dict[str, Any]:
        """Emerging topics of [since, until) against the period before: phrases outside the intent catalog, with
        example call ids (customers' words of the newest 2,000 calls of each period)."""
        lo, hi = filters(since, until)
        from callscribe.reports.tables import ReportFilter

        def find() -> list[dict[str, Any]]:
            if not catalog:
                from callscribe.reports.topics import catalog_phrases

                catalog.append(catalog_phrases(api.cfg.intent_catalog or None))
            f = ReportFilter(lo, hi, queue or None, intent or None, agent or None)
            previous = ReportFilter(lo - (hi - lo), lo, queue or None, intent or None, agent or None)
            return topic_finder(gw.store.reports, catalog[0], min_calls=min_calls)(f, previous)

        return api.view(who, {"since_ms": lo, "until_ms": hi, "topics": await asyncio.to_thread(find)})
