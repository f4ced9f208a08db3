"""A report (:func:`.metrics.build_report`) as a file: JSON, CSV, a standalone HTML page with its charts, or PDF.

* JSON: the report as the API answers it.
* CSV: tidy rows ``section,key,metric,value`` (``total``, ``intent``, ``queue``, ``agent``, ``day``, ``hour``,
  ``alert``, ``reason``, ``mover``, ``topic``): one file any spreadsheet or warehouse loads without knowing the shape.
* HTML: one self-contained file (Apache ECharts inlined from the vendored copy, the report's JSON, the charts drawn as
  SVG when it opens; no network), laid out for A4 landscape printing.
* PDF: that HTML printed by headless Chromium (Debian ``chromium``; ``--chromium`` or ``CALLSCRIBE_CHROMIUM`` names
  another), so the PDF carries the same vector charts.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from callscribe.errors import CallscribeError

__all__ = ["to_json", "to_csv", "to_html", "to_pdf", "RenderError", "find_chromium", "ECHARTS"]

ECHARTS = Path(__file__).resolve().parent.parent / "gateway" / "web" / "static" / "vendor" / "echarts" / "echarts.min.js"
TEMPLATE = Path(__file__).with_name("report.html")
_METRICS = ("calls", "fcr_rate", "repeat_rate", "unresolved_rate", "aht_s", "talk_ratio", "silence_ratio", "overtalk_ratio",
            "customer_share", "sentiment_avg", "negative_rate", "qa_avg", "ticket_rate", "alert_rate", "tickets")


class RenderError(CallscribeError):
    """The report could not be written as asked (no Chromium for a PDF, Chromium failing)."""


def _echarts_path() -> Path:
    """The vendored ECharts: in the source tree, or in the installed package (callscribe/gateway/web/static/vendor)."""
    if ECHARTS.exists():
        return ECHARTS
    from callscribe.gateway import web

    return Path(web.__file__).parent / "static" / "vendor" / "echarts" / "echarts.min.js"


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=1)


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "key", "metric", "value"])

    def rows(section: str, key: Any, values: dict[str, Any]) -> None:
        for m in _METRICS:
            if m in values and values[m] is not None:
                w.writerow([section, "" if key is None else key, m, values[m]])

    rows("total", None, report["totals"])
    for section, group, key in (("intent", "by_intent", "intent"), ("queue", "by_queue", "queue"), ("agent", "by_agent", "agent"),
                                ("day", "by_day", "date"), ("hour", "by_hour", "hour")):
        for r in report.get(group, []):
            rows(section, r[key], r)
    for a in report.get("alerts", []):
        w.writerow(["alert", a["category"], "calls", a["calls"]])
        w.writerow(["alert", a["category"], "rate", a["rate"]])
    for r in report.get("reasons", []):
        w.writerow(["reason", r["reason"], "calls", r["calls"]])
    for m in report.get("movers", []):
        for k in ("calls", "previous_calls", "change_pp", "z", "q", "direction"):
            w.writerow(["mover", m["intent"], k, "" if m[k] is None else m[k]])
    for t in report.get("topics", []) or []:
        w.writerow(["topic", t["text"], "calls", t["calls"]])
        w.writerow(["topic", t["text"], "example_calls", " ".join(t["call_ids"])])
    return out.getvalue()


def _day(ms: int, off: int) -> str:
    return datetime.fromtimestamp((ms + off) / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def to_html(report: dict[str, Any], title: str = "", lang: str = "zh") -> str:
    """The standalone report page (see the module docstring)."""
    off = int(report.get("utc_offset_ms", 0))
    last = _day(int(report["until_ms"]) - 1, off)
    period = f"{_day(int(report['since_ms']), off)} – {last}"
    title = title or (f"呼叫中心报表 {period}" if lang == "zh" else f"Contact center report {period}")
    data = json.dumps(report, ensure_ascii=False).replace("</", "<\\/")
    page = TEMPLATE.read_text(encoding="utf-8")
    echarts = _echarts_path().read_text(encoding="utf-8").replace("</script", "<\\/script")
    return (page.replace("{{TITLE}}", html.escape(title)).replace("{{LANG}}", "zh-CN" if lang == "zh" else "en")
            .replace("{{PERIOD}}", html.escape(period)).replace("/*{{ECHARTS}}*/", echarts)
            .replace("/*{{DATA}}*/null", data).replace("/*{{UILANG}}*/\"zh\"", json.dumps(lang)))


def find_chromium(explicit: str | None = None) -> str | None:
    """``explicit``, else ``CALLSCRIBE_CHROMIUM``, else chromium / chromium-browser / google-chrome on PATH."""
    for candidate in (explicit, os.environ.get("CALLSCRIBE_CHROMIUM")):
        if candidate:
            return candidate
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def to_pdf(page_html: str, out: Path, chromium: str | None = None, timeout_s: float = 120.0) -> Path:
    """Print ``page_html`` to ``out`` with headless Chromium (A4 landscape, no header or footer)."""
    binary = find_chromium(chromium)
    if binary is None:
        raise RenderError("a PDF needs Chromium: apt-get install chromium (or --chromium PATH / CALLSCRIBE_CHROMIUM)")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="callscribe-report-") as tmp:
        src = Path(tmp) / "report.html"
        src.write_text(page_html, encoding="utf-8")
        cmd = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--disable-extensions", f"--user-data-dir={tmp}/profile", "--window-size=1080,760", "--no-pdf-header-footer",
               "--run-all-compositor-stages-before-draw", "--virtual-time-budget=10000", f"--print-to-pdf={out}",
               src.as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RenderError(f"Chromium did not print the report within {timeout_s:g} s") from exc
        except OSError as exc:
            raise RenderError(f"cannot run Chromium ({binary}): {exc}") from exc
    if done.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise RenderError(f"Chromium could not print the report (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return out
