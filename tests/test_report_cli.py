"""``callscribe report`` over a seeded store: JSON and CSV with the right numbers, a standalone HTML page, and a PDF printed
by headless Chromium whose pages render with ``pdftoppm`` (poppler-utils) with the charts on them (their bars' colour
counted in the rendered pixels, their titles in the text layer)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from callscribe.cli import main
from callscribe.gateway.store import SqliteStore
from callscribe.reports.render import find_chromium
from callscribe.reports.sample import load, month

START = 1_796_659_200_000  # 2026-12-08 00:00 Asia/Shanghai
DAY = 86_400_000
ROOT = Path(__file__).parent.parent
ARTIFACTS = Path(os.environ.get("CALLSCRIBE_ARTIFACTS") or ROOT / "test-artifacts")
ECHARTS_BLUE = (0x54, 0x70, 0xC6)  # the first colour of ECharts' default palette: the "calls" bars


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-cli")
    store = SqliteStore(tmp / "store.db")
    calls = month(START, days=14, calls_per_day=20, callers=150)
    load(store, calls)
    store.close()
    return tmp, calls


def _run(tmp: Path, monkeypatch, *args: str) -> None:
    monkeypatch.setenv("CALLSCRIBE_REPORT_TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("CALLSCRIBE_DATA_DIR", str(tmp))
    assert main(["report", "--store", str(tmp / "store.db"), *args]) == 0


def test_json_and_csv_reports(seeded, monkeypatch):
    tmp, calls = seeded
    _run(tmp, monkeypatch, "--from", "2026-12-08", "--to", "2026-12-14", "--format", "json", "--out", str(tmp / "r.json"))
    report = json.loads((tmp / "r.json").read_text(encoding="utf-8"))
    week = [c for c in calls if START <= c.started_at_ms < START + 7 * DAY]
    assert report["totals"]["calls"] == len(week)
    assert [d["date"] for d in report["by_day"]] == [f"2026-12-{d:02d}" for d in range(8, 15)]
    assert report["topics"] is not None and report["movers"]
    _run(tmp, monkeypatch, "--from", "2026-12-08", "--to", "2026-12-14", "--queue", "broadband", "--format", "csv",
         "--out", str(tmp / "r.csv"))
    rows = list(csv.DictReader(io.StringIO((tmp / "r.csv").read_text(encoding="utf-8"))))
    total = {r["metric"]: r["value"] for r in rows if r["section"] == "total"}
    assert int(total["calls"]) == sum(1 for c in week if c.queue == "broadband")
    assert {r["key"] for r in rows if r["section"] == "queue"} == {"broadband"}
    assert {"intent", "day", "hour", "alert", "reason", "mover"} <= {r["section"] for r in rows}


def _ppm(path: Path) -> np.ndarray:
    """A binary PPM (P6) as an (h, w, 3) array."""
    data = path.read_bytes()
    parts, pos = [], 0
    while len(parts) < 4:  # magic, width, height, maxval; whitespace-separated, '#' comments
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        parts.append(data[pos:end])
        pos = end
    w, h = int(parts[1]), int(parts[2])
    return np.frombuffer(data[pos + 1:pos + 1 + w * h * 3], dtype=np.uint8).reshape(h, w, 3)


def test_pdf_report_pages_render_with_their_charts(seeded, monkeypatch):
    if find_chromium() is None:
        if os.environ.get("CALLSCRIBE_REQUIRE_BROWSER"):
            pytest.fail("chromium is required (CALLSCRIBE_REQUIRE_BROWSER is set): apt-get install chromium")
        pytest.skip("no chromium: apt-get install chromium")
    if shutil.which("pdftoppm") is None:
        if os.environ.get("CI"):
            pytest.fail("pdftoppm is required in CI: apt-get install poppler-utils (.ci/run installs it)")
        pytest.skip("no pdftoppm: apt-get install poppler-utils")
    tmp, _ = seeded
    out = ARTIFACTS / "report-2026-12-08-2026-12-14.pdf"
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(tmp, monkeypatch, "--from", "2026-12-08", "--to", "2026-12-14", "--format", "pdf", "--out", str(out), "--lang", "en")
    assert out.read_bytes()[:5] == b"%PDF-"
    pages_dir = tmp / "pages"
    pages_dir.mkdir(exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "50", str(out), str(pages_dir / "p")], check=True, timeout=60)
    pages = sorted(pages_dir.glob("p-*.ppm"))
    assert len(pages) >= 3
    blue_per_page = []
    for p in pages:
        img = _ppm(p).astype(int)
        near = (np.abs(img - np.array(ECHARTS_BLUE)).sum(axis=2) < 40).sum()
        blue_per_page.append(int(near))
    assert all(n > 200 for n in blue_per_page[:3]), blue_per_page  # bars drawn on each chart page
    subprocess.run(["pdftoppm", "-r", "60", "-png", "-f", "1", "-l", "3", str(out), str(ARTIFACTS / "report-page")],
                   check=True, timeout=60)
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
        for title in ("Calls, first-contact resolution and repeat rate per day", "By intent", "Movers and shakers",
                      "Intent mix over time", "By queue", "Why calls stay unresolved"):
            assert title in text, title


def test_html_report_is_standalone(seeded, monkeypatch):
    tmp, _ = seeded
    _run(tmp, monkeypatch, "--from", "2026-12-08", "--format", "html", "--out", str(tmp / "r.html"), "--no-topics")
    page = (tmp / "r.html").read_text(encoding="utf-8")
    assert "echarts" in page and 'data-chart="volume"' in page
    assert "src=\"http" not in page and "href=\"http" not in page  # nothing loaded from a network


@pytest.mark.integration
def test_report_webhook_goes_through_the_one_webhook_queue(seeded, monkeypatch, redis_server):
    """--webhook enqueues the JSON report as kind `report`, keyed by its period, once (a rerun is the same delivery)."""
    import redis

    from callscribe.config import Config
    from callscribe.stream import keys

    tmp, _ = seeded
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("CALLSCRIBE_KEY_PREFIX", "rpw")
    for _ in range(2):
        _run(tmp, monkeypatch, "--from", "2026-12-08", "--to", "2026-12-09", "--queue", "billing", "--format", "json",
             "--out", str(tmp / "w.json"), "--no-topics", "--webhook")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    entries = client.xrange(keys.webhooks_stream(Config(key_prefix="rpw")))
    client.close()
    assert [(f["kind"], f["key"]) for _, f in entries] == [("report", "report-2026-12-08-2026-12-09-billing")]
    assert json.loads(entries[0][1]["payload"])["filters"]["queue"] == "billing"
