"""QA scorecards in real headless Chromium (Debian's `chromium`, Playwright): the scorecard on the QA page's call
detail (answers, evidence quotes and times) with an override submitted from it; the scores page for an agent (their
own calls, an appeal) and for QA (agent scorecards, calibration, the appeal decided). Fed by the real analytics
worker over a real Redis (dialogue finals published as the pipeline publishes them) and the gateway with its SQLite
store; no speech model needed. Screenshots go to ``test-artifacts/screenshots/`` (or ``$CALLSCRIBE_ARTIFACTS``)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from callscribe.config import Config
from callscribe.events import now_ms
from callscribe.gateway.web import WebGateway
from callscribe.keyword.analyzer import Analytics
from callscribe.keyword.dialogue import parse_dialogue, to_events
from callscribe.keyword.packs import bundled_pack_paths
from callscribe.keyword.worker import AnalyticsWorker
from callscribe.stream import EmbeddedRedis, RedisPublisher

from .test_scorecards import BAD, GOOD

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ARTIFACTS = Path(os.environ.get("CALLSCRIBE_ARTIFACTS") or Path(__file__).parent.parent / "test-artifacts") / "screenshots"


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
    tmp = tmp_path_factory.mktemp("scorecard-pages")
    server = EmbeddedRedis(tmp / "redis")
    server.start()
    cfg = Config(data_dir=str(tmp), redis_url=server.url, web_port=0, key_prefix="scpages", board_replay_s=60)
    t0 = now_ms() - 3_600_000  # an hour ago: inside the scores page's default period
    pub = RedisPublisher(cfg, cfg.redis_url)
    await pub.start()
    for call_id, text, t in (("c-page", GOOD, t0), ("c-page-2", BAD, t0 + 600_000)):
        started, finals, ended = to_events(parse_dialogue(text, call_id), started_at_ms=t)
        started = dataclasses.replace(started, metadata={"agent_id": "a7", "queue": "broadband"})
        for e in (started, *finals, ended):
            await pub.publish(e)
    assert await pub.flush(10)
    await pub.stop()
    worker = AnalyticsWorker(cfg, cfg.redis_url, analytics=Analytics(pack_paths=bundled_pack_paths()), consumer="pages")
    await worker.start()
    assert await worker.drain(10)
    await worker.stop()
    gw = WebGateway(cfg, server.url)
    await gw.start()
    assert await gw.ingest.drain(10)
    yield gw
    await gw.stop()
    server.kill()


def _token(gw: WebGateway, role: str, sub: str) -> str:
    return gw.auth.mint(role, sub)[0]


async def _page(browser, url: str, name: str, locale: str = "en-US"):
    context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale=locale)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{name}: {exc}"))
    page.on("console", lambda msg: errors.append(f"{name}: {msg.text}") if msg.type == "error" else None)
    await page.goto(url)
    return page, errors


async def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


async def test_qa_page_shows_the_scorecard_and_submits_an_override(browser, gateway):
    qa = _token(gateway, "qa", "qa-1")
    page, errors = await _page(browser, f"{gateway.url}/qa?q=verified#token={qa}", "qa")
    await page.click('.hit[data-call-id="c-page"]', timeout=10_000)
    await page.wait_for_selector("#scorecard .scorecard", timeout=10_000)
    assert await page.text_content("#scorecard .sc-head .sc-score") == "100"
    assert await page.locator("#scorecard .sc-answer").count() == 10
    greeting = page.locator('#scorecard .sc-answer[data-question="greeting"]')
    assert await greeting.get_attribute("data-answer") == "yes"
    assert (await greeting.locator(".sc-quote").text_content()).startswith("Thank you for calling")
    assert await greeting.locator(".sc-ts").text_content() == "0:00"
    assert await greeting.locator(".sc-q").text_content() == "The agent's first line greets the customer (hello, the company or their name, an offer to help)"
    await page.locator('#scorecard .sc-answer[data-question="verification"] .sc-ts').click()  # seeks the replay there

    closing = page.locator('#scorecard .sc-answer[data-question="closing"]')
    await closing.locator(".sc-override-btn").click()
    await closing.locator("select.sc-answer-select").select_option("no")
    await closing.locator("textarea.sc-reason").fill("asked while the fault was still open, not at the close")
    await closing.locator(".sc-submit").click()
    await page.wait_for_selector('#scorecard .sc-answer[data-question="closing"][data-answer="no"][data-overridden="true"]')
    assert await page.text_content("#scorecard .sc-head .sc-score") == "88.9"
    audit = page.locator("#scorecard .sc-audit-line")
    assert await audit.count() == 1
    line = await audit.first.text_content()
    assert "qa-1" in line and "asked while the fault was still open" in line and "Yes → No" in line
    await _shot(page, "qa-scorecard-override")
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {qa}"}) as client:
        stored = (await client.get("/api/v1/calls/c-page/scorecard")).json()
    assert stored["score"] == 88.9 and stored["audit"][0]["by"] == "qa-1" and stored["audit"][0]["new_answer"] is False
    assert not errors, errors
    await page.context.close()


async def test_scores_page_agent_appeals_and_qa_decides(browser, gateway):
    agent, errors = await _page(browser, f"{gateway.url}/scores#token={_token(gateway, 'agent', 'a7')}", "agent")
    await agent.wait_for_selector('.card-row[data-call-id="c-page-2"]', timeout=10_000)
    assert await agent.locator(".card-row").count() == 2 and await agent.locator("#agents-panel").is_hidden()
    await agent.click('.card-row[data-call-id="c-page-2"]')
    greeting = agent.locator('.card-detail .sc-answer[data-question="greeting"]')
    await greeting.locator(".sc-appeal-btn").click()
    await greeting.locator("textarea.sc-reason").fill("I said hello, the line was still connecting")
    await greeting.locator(".sc-submit").click()
    await agent.wait_for_selector('.card-detail .sc-answer[data-question="greeting"] .sc-open-appeal')
    await agent.wait_for_selector('#my-appeals .sc-appeal[data-status="open"]')
    assert not errors, errors
    await agent.context.close()

    qa, errors = await _page(browser, f"{gateway.url}/scores#token={_token(gateway, 'qa', 'qa-1')}", "qa-scores")
    closing = qa.locator('#calibration tr[data-question="closing"]')
    await closing.wait_for(timeout=10_000)
    assert await closing.locator(".overridden").text_content() == "1" and await closing.locator(".yes-no").text_content() == "1"
    assert await qa.text_content('#agents tr[data-agent-id="a7"] td:nth-child(2)') == "2"
    appeal = qa.locator('#appeal-queue .sc-appeal[data-question="greeting"]')
    await appeal.locator("input.sp-reason").fill("the greeting was clipped")
    await appeal.locator(".sp-accept").click()
    await qa.wait_for_selector("#appeal-queue .empty")
    await qa.wait_for_selector('#calibration tr[data-question="greeting"] .no-yes:text("1")')
    await _shot(qa, "scores-calibration")
    assert not errors, errors
    await qa.context.close()
