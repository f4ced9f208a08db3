"""The three pages in real headless Chromium (Debian's `chromium`, driven by Playwright), fed by the whole
service: real speech streamed through the WebSocket ingest, VAD, Whisper, Redis, analytics, the store
and the web gateway. Screenshots go to ``test-artifacts/screenshots/`` (or ``$CALLSCRIBE_ARTIFACTS``).

The shared real-speech clips contain no complaint phrase, so the escalation comes from an operator rule
pack (rule packs are the operator's to extend) that treats "sorrow" in a customer turn as an escalation,
exactly as the bundled 投诉 / "speak to your manager" rules are treated.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from callscribe.events import Alert, from_fields
from callscribe.gateway.client import IngestClient
from callscribe.gateway.web import WebGateway
from callscribe.keyword.packs import bundled_pack_paths
from callscribe.service import Service
from callscribe.stream import EmbeddedRedis, keys

from .conftest import load_clip

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ARTIFACTS = Path(os.environ.get("CALLSCRIBE_ARTIFACTS") or Path(__file__).parent.parent / "test-artifacts") / "screenshots"
SILENCE = np.zeros(8000, np.float32)  # 0.5 s

# Records, inside each page, what a viewer would see happen and when (epoch ms): alerts appearing, partial
# captions, connection states, and the id of every captions message (to check resume: no gap, no duplicate).
OBSERVE = """
window.__seen = {alerts: {}, partial: false, states: [], captionIds: []};
const NativeWS = window.WebSocket;
window.WebSocket = class extends NativeWS {
  constructor(url, protocols) {
    super(url, protocols);
    if (String(url).includes('/captions')) {
      this.addEventListener('message', (ev) => {
        try { const m = JSON.parse(ev.data); if (m.id) window.__seen.captionIds.push(m.id); } catch (e) {}
      });
    }
  }
};
new MutationObserver(() => {
  const now = Date.now();
  for (const el of document.querySelectorAll('.alert[data-alert-id]')) {
    const id = el.dataset.alertId;
    if (!(id in window.__seen.alerts)) window.__seen.alerts[id] = now;
  }
  if (document.querySelector('#captions .utt.partial')) window.__seen.partial = true;
  const conn = document.querySelector('#conn');
  const state = conn && conn.dataset.state;
  const states = window.__seen.states;
  if (state && states[states.length - 1] !== state) states.push(state);
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""


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
async def stack(tmp_path_factory, engine, asr_config):
    tmp = tmp_path_factory.mktemp("pages")
    server = EmbeddedRedis(tmp / "redis")
    server.start()
    pack = tmp / "ops.yaml"
    pack.write_text("version: 1\nlanguage: en\nrules:\n  - {id: ops.sorrow, category: escalation, severity: high, "
                    "channel: customer, phrases: [sorrow]}\n", encoding="utf-8")
    cfg = asr_config.replace(redis_url=server.url, port=0, data_dir=str(tmp), analytics=True, web=True, web_port=0,
                             partials=True, key_prefix="pages", rule_packs=(str(pack), *(str(p) for p in bundled_pack_paths())))
    service = Service(cfg, engine=engine)
    await service.start(web_port=0)
    yield service
    await service.stop()
    server.kill()


async def _page(browser, url: str, name: str, ready: str = "#conn[data-state=open]"):
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{name}: {exc}"))
    page.on("console", lambda msg: errors.append(f"{name}: {msg.text}") if msg.type == "error" else None)
    await page.add_init_script(OBSERVE)
    await page.goto(url)
    await page.wait_for_selector(ready, timeout=10_000)
    return page, errors


async def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def _call(customer: list[str], agent: list[str]) -> list[np.ndarray]:
    """Two channels, turns alternating customer/agent with 0.5 s gaps; the other side silent meanwhile."""
    cust, ag = [], []
    for i in range(max(len(customer), len(agent))):
        for clips, mine, other in ((customer, cust, ag), (agent, ag, cust)):
            if i < len(clips):
                audio = np.concatenate([SILENCE, load_clip(clips[i])])
                mine.append(audio)
                other.append(np.zeros_like(audio))
    return [np.concatenate(cust), np.concatenate(ag)]


async def test_live_captions_alert_on_wallboard_and_qa_search(stack, browser):
    web = stack.web
    agent_token = web.auth.mint("agent", "agent-en")[0]
    agent_page, agent_errors = await _page(browser, web.page_url("agent", agent_token), "agent")
    board_page, board_errors = await _page(browser, web.page_url("wallboard", web.auth.mint("supervisor", "sue")[0]), "wallboard")
    client = IngestClient(stack.ingest.url)
    en = _call(["en/en_pocketsphinx_cards_001.wav", "en/en_librispeech_1995-1837-0001.wav"], ["en/en_cmu_arctic_axb_a0005.wav"])
    zh = _call(["zh/zh_aishell1_BAC009S0724W0125.wav"], ["zh/zh_aishell3_SSB00050002.wav"])
    t_start = time.time()
    en_task = asyncio.create_task(client.stream(en, ("customer", "agent"), call_id="page-en", speed=1.0, language="en",
                                                metadata={"agent_id": "agent-en", "queue": "billing", "caller": "13800138000"}))
    zh_result = await client.stream(zh, ("customer", "agent"), call_id="page-zh", speed=None, language="zh",
                                     metadata={"agent_id": "agent-zh", "queue": "broadband", "caller": "13900139000"})
    assert not zh_result.errors
    # live captions while the English call is still being spoken
    await agent_page.wait_for_selector("#captions .utt.final[data-channel=customer]", timeout=30_000)
    assert not en_task.done(), "the call should still be running: captions must show live"
    await agent_page.wait_for_function(
        "() => [...document.querySelectorAll('#captions .utt.final .text')].some(e => /sorrow/i.test(e.textContent))",
        timeout=30_000)
    await _shot(agent_page, "agent-live")
    # the customer's mood (SentimentUpdate) on the agent desk
    await agent_page.wait_for_function("() => document.querySelector('#sentiment').dataset.mood !== ''", timeout=15_000)
    en_result = await en_task
    assert not en_result.errors
    assert await agent_page.evaluate("window.__seen.partial"), "no partial caption was ever shown"
    colours = await agent_page.evaluate("""() => ['customer', 'agent'].map(ch => {
        const el = document.querySelector(`#captions .utt[data-channel=${ch}]`);
        return el && getComputedStyle(el).backgroundColor; })""")
    assert colours[0] and colours[1] and colours[0] != colours[1], colours
    # the alert: on the wallboard within 2 s of its final reaching Redis
    await board_page.wait_for_selector(".alert[data-alert-id]", timeout=10_000)
    r = aioredis.from_url(stack.redis_url, decode_responses=True)
    alerts = [from_fields(f) for _, f in await r.xrange(keys.alerts_stream(stack.cfg))]
    alert = next(a for a in alerts if isinstance(a, Alert) and a.rule == "ops.sorrow")
    final_entry_ms = next(int(i.split("-")[0]) for i, f in await r.xrange(keys.finals_stream(stack.cfg))
                          if f.get("segment_id") == alert.segment_id and f.get("is_final") == "1")
    await r.aclose()
    await board_page.wait_for_selector(f'.alert[data-alert-id="{alert.alert_id}"]', timeout=5_000)
    seen_ms = (await board_page.evaluate("window.__seen.alerts"))[alert.alert_id]
    latency_ms = seen_ms - final_entry_ms
    print(f"final in Redis -> alert on the wallboard: {latency_ms} ms (call started {t_start:.0f})")
    assert 0 <= latency_ms < 2000, latency_ms
    await board_page.wait_for_selector('#calls tr[data-call-id="page-en"]', timeout=5_000)
    await board_page.wait_for_selector('#calls tr[data-call-id="page-en"] .c-sentiment .badge.mood[data-mood]', timeout=10_000)
    await _shot(board_page, "wallboard")
    await board_page.click("#lang")  # Chinese and English UI
    await board_page.wait_for_selector("html[lang=en]", timeout=5_000)
    assert "Alerts" in await board_page.inner_text("body")
    await _shot(board_page, "wallboard-en")
    # QA: the stored transcripts, by a 2-character Chinese word and by an English phrase
    assert await web.ingest.drain(15)
    qa_page, qa_errors = await _page(browser, web.page_url("qa", web.auth.mint("qa", "quinn")[0]), "qa", ready="#q")
    for query, call_id, marked, shot in (("股市", "page-zh", "股市", "qa-zh-word"), ('"great sorrow"', "page-en", "great sorrow", "qa-en-phrase")):
        await qa_page.fill("#q", query)
        await qa_page.press("#q", "Enter")
        hit = qa_page.locator(f'#results .hit[data-call-id="{call_id}"]').first
        await hit.wait_for(timeout=10_000)
        marks = [m.lower() for m in await hit.locator(".hl mark").all_text_contents()]
        assert marked in marks, (query, marks)
        await _shot(qa_page, shot)
    await qa_page.locator('#results .hit[data-call-id="page-en"]').first.click()
    await qa_page.wait_for_selector("#call-detail .utt", timeout=10_000)
    texts = " ".join(await qa_page.locator("#call-detail .utt").all_text_contents()).lower()
    assert "sorrow" in texts and "forget" in texts
    await _shot(qa_page, "qa-call")
    assert not (agent_errors + board_errors + qa_errors), agent_errors + board_errors + qa_errors


async def test_gateway_restart_mid_call_caption_page_resumes_without_gap_or_duplicate(stack, browser):
    web = stack.web
    port = web.port
    page, errors = await _page(browser, web.page_url("agent", web.auth.mint("agent", "agent-rs")[0]), "agent-restart")
    client = IngestClient(stack.ingest.url)
    audio = _call(["en/en_pocketsphinx_cards_001.wav", "en/en_pocketsphinx_cards_003.wav", "en/en_pocketsphinx_cards_005.wav"],
                  ["en/en_cmu_arctic_aew_a0003.wav", "en/en_librivox_sns01_0880.wav"])
    task = asyncio.create_task(client.stream(audio, ("customer", "agent"), call_id="page-restart", speed=1.0, language="en",
                                             metadata={"agent_id": "agent-rs", "queue": "billing", "caller": "13700137000"}))
    await page.wait_for_selector("#captions .utt.final", timeout=30_000)
    await web.stop()  # mid-call
    assert not task.done()
    await page.wait_for_function("window.__seen.states.includes('reconnecting')", timeout=5_000)
    await asyncio.sleep(1.0)
    stack.web = WebGateway(stack.cfg, stack.redis_url, service_metrics=stack.ingest.metrics)
    await stack.web.start(port=port)
    result = await task
    assert not result.errors
    assert await stack.analytics.drain(10)  # the call's summary is the last entry of its stream
    await asyncio.sleep(0.5)
    r = aioredis.from_url(stack.redis_url, decode_responses=True)
    entries = await r.xrange(keys.call_stream(stack.cfg, "page-restart"))
    await r.aclose()
    stream_ids = [i for i, _ in entries]
    finals = [f["segment_id"] for _, f in entries if f.get("type") == "transcript" and f.get("is_final") == "1" and f.get("text")]
    # every entry up to the call's end reached the page exactly once, in order
    await page.wait_for_function(f"window.__seen.captionIds.includes({stream_ids[-1]!r})", timeout=15_000)
    seen_ids = await page.evaluate("window.__seen.captionIds")
    assert seen_ids == stream_ids
    shown = await page.eval_on_selector_all("#captions .utt.final", "els => els.map(e => e.dataset.segmentId)")
    assert shown == finals and len(finals) >= 4
    await _shot(page, "agent-after-restart")
    assert page.url.endswith("/agent")  # the token left the address bar
    # the browser logs the refused reconnects while the gateway is down; nothing else may go wrong
    assert not [e for e in errors if "ERR_CONNECTION_REFUSED" not in e], errors
