"""The reports page in real headless Chromium (Debian's `chromium`, Playwright) over a seeded month of calls: every
chart drawn with data (Apache ECharts, vendored), a screenshot per chart into ``test-artifacts/screenshots/reports-*``
(or ``$CALLSCRIBE_ARTIFACTS``), and a click on a chart's bar drilling down to QA search over exactly those calls. Also
the reports API's roles and the PII policy on topics."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from callscribe.config import Config
from callscribe.gateway.store import SqliteStore
from callscribe.gateway.web import WebGateway
from callscribe.reports.sample import load, month
from callscribe.stream import EmbeddedRedis

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).parent.parent
ARTIFACTS = Path(os.environ.get("CALLSCRIBE_ARTIFACTS") or ROOT / "test-artifacts") / "screenshots"
DAY = 86_400_000
START = 1_796_659_200_000  # 2026-12-08 00:00 Asia/Shanghai
CHARTS = ("volume", "intents", "mix", "movers", "queues", "agents", "hours", "reasons", "alerts", "sentiment", "topics")


def _chromium() -> str | None:
    return os.environ.get("CALLSCRIBE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    path = _chromium()
    if path is None:
        if os.environ.get("CALLSCRIBE_REQUIRE_BROWSER"):
            pytest.fail("chromium is required (CALLSCRIBE_REQUIRE_BROWSER is set) but not installed: apt-get install chromium")
        pytest.skip("no chromium: apt-get install chromium (CI installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        await b.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reports-page")
    server = EmbeddedRedis(tmp / "redis")
    server.start()
    cfg = Config(redis_url=server.url, data_dir=str(tmp), key_prefix="rp", web_port=0, report_timezone="Asia/Shanghai",
                 sip=False, analytics=False)
    store = SqliteStore(tmp / "store.db")
    calls = month(START, days=30, calls_per_day=20, callers=200)
    load(store, calls)
    gw = WebGateway(cfg, server.url, store=store)
    await gw.start(port=0)
    gw.sample = calls
    yield gw
    await gw.stop()
    store.close()
    server.kill()


async def test_reports_page_charts_every_metric_and_drills_down_to_the_calls(gateway, browser):
    token = gateway.auth.mint("supervisor", "sup-rp")[0]
    context = await browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(f"{gateway.url}/reports?since=2026-12-08&until=2027-01-06#token={token}")
    await page.wait_for_selector("body[data-topics=true]", timeout=20_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in CHARTS:
        node = page.locator(f"#chart-{name}")
        points = int(await node.get_attribute("data-points") or 0)
        assert points > 0, f"chart {name} has no data"
        drawn = await page.evaluate(f"""() => {{ const c = echarts.getInstanceByDom(document.getElementById('chart-{name}'));
                                        return c.getOption().series.reduce((n, s) => n + s.data.length, 0); }}""")
        assert drawn > 0, name
        await page.locator(f"section:has(#chart-{name})").screenshot(path=str(ARTIFACTS / f"reports-{name}.png"))
    await page.screenshot(path=str(ARTIFACTS / "reports-page.png"), full_page=True)
    kpis = await page.eval_on_selector_all("#rp-kpis .kpi", "els => els.map(e => [e.dataset.kpi, e.querySelector('.kpi-value').textContent])")
    assert dict(kpis)["k_calls"] == str(len(gateway.sample))
    assert not errors, errors

    # drill down: click the first bar of the intent chart (a real mouse click on the canvas)
    await page.locator("#chart-intents").scroll_into_view_if_needed()
    x, y, intent = await page.evaluate("""() => {
        const node = document.getElementById('chart-intents'); const c = echarts.getInstanceByDom(node);
        const opt = c.getOption(); const v = opt.series[0].data[0];
        const [px, py] = c.convertToPixel({xAxisIndex: 0, yAxisIndex: 0}, [0, v / 2]);
        const box = node.getBoundingClientRect();
        return [box.left + px, box.top + py, opt.xAxis[0].data[0]]; }""")
    await page.mouse.click(x, y)
    await page.wait_for_url("**/qa?**", timeout=10_000)
    assert "intent=" in page.url and "since=" in page.url
    await page.wait_for_selector("#results .hit, #results [data-call-id], #results article", timeout=15_000)
    shown = await page.evaluate("""() => [...document.querySelectorAll('#results [data-call-id]')].map(e => e.dataset.callId)""")
    await page.screenshot(path=str(ARTIFACTS / "reports-drilldown-qa.png"))
    top = max({c.intent for c in gateway.sample}, key=lambda i: sum(c.intent == i for c in gateway.sample))
    mine = {c.call_id for c in gateway.sample if c.intent == top}
    assert shown and set(shown) <= mine, (intent, shown[:5])
    await context.close()


async def test_reports_api_roles_and_topics_through_the_pii_policy(gateway):
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        for role, status in (("supervisor", 200), ("qa", 200), ("admin", 200), ("agent", 403), ("integration", 403)):
            tok = gateway.auth.mint(role, f"{role}-x")[0]
            r = await http.get("/api/v1/reports/summary", params={"since": "2026-12-08", "until": "2026-12-15"},
                               headers={"Authorization": f"Bearer {tok}"})
            assert r.status_code == status, (role, r.text)
        assert (await http.get("/api/v1/reports/summary")).status_code == 401
        tok = gateway.auth.mint("qa", "qa-x")[0]
        r = await http.get("/api/v1/reports/summary", params={"since": "2026-12-15", "until": "2026-12-08"},
                           headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 400
        r = await http.get("/api/v1/reports/summary", params={"since": "2026-12-08", "until": "2026-12-15", "queue": "broadband"},
                           headers={"Authorization": f"Bearer {tok}"})
        body = r.json()
        assert body["totals"]["calls"] == sum(1 for c in gateway.sample if c.queue == "broadband" and START <= c.started_at_ms < START + 7 * DAY)
        assert {q["queue"] for q in body["by_queue"]} == {"broadband"}
        r = await http.get("/api/v1/reports/topics", params={"since": "2026-12-31", "until": "2027-01-07"},
                           headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 200 and any("光猫" in t["text"] for t in r.json()["topics"])
