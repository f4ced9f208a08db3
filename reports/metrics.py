"""A report: the metrics of a period from the report tables (:mod:`.tables`), overall and broken down.

Every rate is a ratio of two sums of the aggregates, so a breakdown's rows add up to the total and any grouping
(hour, day, intent, queue, agent) answers from the same numbers (definitions: docs/reports.md):

* ``fcr_rate`` = calls resolved first time / calls; ``repeat_rate`` = calls repeating an earlier call of the same
  number about the same intent within the window / calls; ``unresolved_rate`` = calls flagged unresolved / calls.
* ``aht_s``: average handle time; ``talk_ratio``, ``silence_ratio``, ``overtalk_ratio``: shares of the handle time
  of calls with timed finals; ``customer_share``: the customer's part of the talk.
* ``sentiment_avg`` (-1..1) and ``negative_rate`` over calls with an end sentiment; ``qa_avg`` over scored calls
  (None when no call of the group is scored); ``ticket_rate`` = calls with a ticket / calls; ``alert_rate`` = calls
  with any alert / calls (per category in ``alerts``).
"""

from __future__ import annotations

import time
import zoneinfo
from datetime import datetime, timezone
from typing import Any

from .facts import DAY_MS
from .tables import ReportFilter, ReportTables

__all__ = ["rates", "build_report", "utc_offset_ms", "zone", "topic_finder"]


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return round(a / b, digits) if b else None


def rates(m: dict[str, float]) -> dict[str, Any]:
    """The metrics of one group from its measure sums."""
    calls = m["calls"]
    spoken = m["talk_customer_ms"] + m["talk_agent_ms"]
    return {
        "calls": int(calls),
        "fcr": int(m["fcr"]), "fcr_rate": _ratio(m["fcr"], calls),
        "repeats": int(m["repeats"]), "repeat_rate": _ratio(m["repeats"], calls),
        "unresolved": int(m["unresolved"]), "unresolved_rate": _ratio(m["unresolved"], calls),
        "aht_s": _ratio(m["handle_ms"], calls * 1000, 1),
        "talk_ratio": _ratio(m["talk_ms"], m["timed_ms"]),
        "silence_ratio": _ratio(m["silence_ms"], m["timed_ms"]),
        "overtalk_ratio": _ratio(m["overtalk_ms"], m["timed_ms"]),
        "customer_share": _ratio(m["talk_customer_ms"], spoken),
        "sentiment_avg": _ratio(m["sentiment_sum"], m["sentiment_n"], 3),
        "negative_rate": _ratio(m["negative"], m["sentiment_n"]),
        "sentiment": {"negative": int(m["negative"]), "neutral": int(m["neutral"]), "positive": int(m["positive"])},
        "qa_avg": _ratio(m["qa_sum"], m["qa_n"], 1), "qa_scored": int(m["qa_n"]),
        "tickets": int(m["tickets"]), "ticket_rate": _ratio(m["ticket_calls"], calls),
        "alert_rate": _ratio(m["alert_calls"], calls),
    }


def zone(name: str = "") -> Any:
    """The report time zone: ``name`` (IANA), else the machine's local zone."""
    if name:
        return zoneinfo.ZoneInfo(name)
    return datetime.now().astimezone().tzinfo


def utc_offset_ms(tz: Any, at_ms: int) -> int:
    """The zone's UTC offset at ``at_ms``: days and hours of a report are cut with the offset at its start (exact for
    zones without daylight saving such as Asia/Shanghai; across a DST change a day boundary moves by the change)."""
    off = datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc).astimezone(tz).utcoffset()
    return int(off.total_seconds() * 1000) if off else 0


def local_midnight_ms(tz: Any, day: str) -> int:
    """Epoch ms of 00:00 of ``day`` (YYYY-MM-DD) in ``tz``."""
    d = datetime.fromisoformat(day)
    return int(d.replace(tzinfo=tz).timestamp() * 1000)


def _day_label(day_ms: int, off: int) -> str:
    return datetime.fromtimestamp((day_ms + off) / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def build_report(tables: ReportTables, since_ms: int, until_ms: int, *, queue: str | None = None, intent: str | None = None,
                 agent_id: str | None = None, tz: Any = None, window_days: float = 7.0, now_ms: int | None = None,
                 intent_names: dict[str, dict[str, str]] | None = None, drivers: bool = True, topics: Any = None,
                 min_count: int = 10) -> dict[str, Any]:
    """The report of calls started in [since, until) (whole hours), filtered by queue / intent / agent.

    ``topics``: a callable ``(ReportFilter, previous ReportFilter) -> list`` (:func:`.topics.emerging` bound to a
    store) or None to leave topics out; ``drivers``: the intent mix and movers and shakers (:mod:`.drivers`)."""
    from .drivers import intent_mix, movers

    tz = tz or zone()
    now = int(time.time() * 1000) if now_ms is None else now_ms
    off = utc_offset_ms(tz, since_ms)
    f = ReportFilter(since_ms, until_ms, queue, intent, agent_id)
    total = tables.measures(f, "total")
    totals = rates(total[0][1]) if total else rates(_zero())

    def breakdown(group: str) -> list[dict[str, Any]]:
        rows = tables.measures(f, group, off)
        out = [{group: key, **rates(m)} for key, m in rows]
        if group == "day":
            for r in out:
                r["date"] = _day_label(r["day"], off)
                r["provisional"] = r["day"] + DAY_MS > now - int(window_days * DAY_MS)
            out.sort(key=lambda r: r["day"])
        elif group == "hour":
            out.sort(key=lambda r: r["hour"])
        else:
            out.sort(key=lambda r: (-r["calls"], str(r[group])))
        return out

    calls = totals["calls"]
    alerts = sorted(({"category": tag, "calls": n, "rate": _ratio(n, calls)} for _, tag, n in tables.tags(f, "alert")),
                    key=lambda a: (-a["calls"], a["category"]))
    reasons = sorted(({"reason": tag, "calls": n, "share_of_unresolved": _ratio(n, totals["unresolved"])}
                      for _, tag, n in tables.tags(f, "reason")), key=lambda r: (-r["calls"], r["reason"]))
    alerts_by_intent: dict[str, dict[str, int]] = {}
    for value, tag, n in tables.tags(f, "alert", "intent"):
        alerts_by_intent.setdefault(value, {})[tag] = n
    report: dict[str, Any] = {
        "since_ms": since_ms, "until_ms": until_ms, "timezone": str(getattr(tz, "key", tz)), "utc_offset_ms": off,
        "filters": {"queue": queue, "intent": intent, "agent": agent_id},
        "fcr_window_days": window_days,
        "fcr_final_before_ms": now - int(window_days * DAY_MS),
        "generated_at_ms": now,
        "totals": totals,
        "by_intent": breakdown("intent"), "by_queue": breakdown("queue"), "by_agent": breakdown("agent"),
        "by_day": breakdown("day"), "by_hour": breakdown("hour"),
        "alerts": alerts, "alerts_by_intent": alerts_by_intent, "reasons": reasons,
        "intent_names": intent_names or {},
    }
    if drivers:
        previous = ReportFilter(since_ms - (until_ms - since_ms), since_ms, queue, intent, agent_id)
        report["intent_mix"] = intent_mix(tables.measures(f, "day_intent", off), off)
        cur = {k: m["calls"] for k, m in tables.measures(f, "intent", off)}
        prev = {k: m["calls"] for k, m in tables.measures(previous, "intent", off)}
        report["movers"] = movers(cur, prev, min_count=min_count)
        report["previous"] = {"since_ms": previous.since_ms, "until_ms": previous.until_ms, "calls": sum(prev.values())}
    if topics is not None:
        previous = ReportFilter(since_ms - (until_ms - since_ms), since_ms, queue, intent, agent_id)
        report["topics"] = topics(f, previous)
    return report


def topic_finder(tables: ReportTables, catalog: Any = None, limit_calls: int = 2000, **options: Any) -> Any:
    """``topics`` for :func:`build_report`: emerging phrases (:mod:`.topics`) of the period against the previous one,
    over the customers' words of the newest ``limit_calls`` calls of each."""
    from .topics import catalog_phrases, emerging

    cat = catalog if catalog is not None else catalog_phrases()

    def find(f: ReportFilter, previous: ReportFilter) -> list[dict[str, Any]]:
        current, newest = tables.customer_texts(f, limit_calls)
        before, _ = tables.customer_texts(previous, limit_calls)
        return emerging(current, before, cat, newest=newest, **options)

    return find


def _zero() -> dict[str, float]:
    from .facts import MEASURES

    return dict.fromkeys(MEASURES, 0)
