"""Replay of call recordings (docs/recording.md "Replay"): the recording API and the audio route of the real gateway
on a real Redis (bundled valkey) and its SQLite store, over recordings written by the real recorder (Ogg Opus, a
leg that starts late so the time map is not trivial, a spoken phone number redacted); and the QA page in real
headless Chromium (Debian's `chromium`, Playwright) playing one.

Checked: roles (QA, supervisor, admin hear; an agent's token gets 403 from both routes, even on the agent's own
call), the signed link (works without a token, 403 once altered or expired), HTTP ranges (first bytes, a middle
range, a suffix, open-ended, 416), what each role hears (redacted everywhere with redacted text storage; with raw
storage supervisor and admin the original, QA the redacted rendition), a crash-cut recording's redacted rendition
made on first request from the call's finals (or refused, never the original), 404 / 409 answers. In the page:
play, the highlight follows the audio at 2x, a click on a line and on an alert marker seeks. About 15 s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import numpy as np
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from callscribe.config import Config
from callscribe.events import Alert, CallEnded, CallStarted, Transcript, Word, now_ms, to_fields
from callscribe.gateway.recordings import AudioLinks, RangeNotSatisfiable, byte_range
from callscribe.gateway.recordings.links import KEY_PURPOSE
from callscribe.gateway.web import WebGateway
from callscribe.pipeline import _redacted
from callscribe.recording import LocalStore, Recorder, call_prefix, read_manifest
from callscribe.recording.codec import decode
from callscribe.recording.renditions import untranscribed_tail, write_manifest
from callscribe.stream import EmbeddedRedis, RedisPublisher, keys

from .test_recording import SPOKEN_PHONE, rms

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ARTIFACTS = Path(os.environ.get("CALLSCRIBE_ARTIFACTS") or Path(__file__).parent.parent / "test-artifacts") / "screenshots"
RATE = 16000
SECONDS = 7.0
LAG_S = 0.6  # the agent's leg arrives this much later (wall time) than the customer's: the recorder pads it
T0 = now_ms() - 3_600_000
# (segment, channel, start, end, words) in the channel's own time (the transcript clock)
PHONE_WORDS = [(w, a, b) for w, a, b in SPOKEN_PHONE]
LINES = [
    ("customer", 500, 3700, PHONE_WORDS),
    ("agent", 3400, 4600, [(" Thank", 3400, 3700), (" you,", 3700, 3900), (" one", 3900, 4100), (" moment", 4100, 4400),
                           (" please.", 4400, 4600)]),
    ("customer", 5400, 6800, [(" Okay,", 5400, 5800), (" thank", 5800, 6200), (" you.", 6200, 6800)]),
]


def _finals(call_id: str) -> list[Transcript]:
    out = []
    for i, (channel, a, b, words) in enumerate(LINES):
        ws = tuple(Word(w, s, e, 0.9) for w, s, e in words)
        out.append(Transcript(call_id, channel, f"{call_id}/{channel}/{i}", 1, True, "".join(w.text for w in ws).strip(), a, b,
                              "en", 0.9, ws, emitted_at_ms=T0 + b + 300, speech_end_at_ms=T0 + b))
    return out


def _leg(channel: str, hz: float, seconds: float) -> np.ndarray:
    """A leg that "speaks" (amplitude-modulated tones, coded by Opus like voice) during its lines, silent between."""
    t = np.arange(int(seconds * RATE)) / RATE
    on = np.zeros_like(t, dtype=bool)
    for ch, a, b, _ in LINES:
        if ch == channel:
            on |= (t >= a / 1000) & (t < b / 1000)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.25 * on * env * (np.sin(2 * np.pi * hz * t) + 0.4 * np.sin(2 * np.pi * 3 * hz * t))).astype(np.float32)


async def _record(recorder: Recorder, started: CallStarted, finals: list[Transcript]):
    """Both legs through the real recorder; the agent's leg starts LAG_S of wall time after the customer's."""
    rec = recorder.open(started)
    customer, agent = _leg("customer", 220, SECONDS), _leg("agent", 330, SECONDS - LAG_S)
    step = RATE // 10
    i = 0
    while i < int(LAG_S * RATE):  # the customer alone, in real time
        rec.write(0, customer[i:i + step])
        i += step
        await asyncio.sleep(0.1)
    j = 0
    while i < len(customer) or j < len(agent):
        rec.write(0, customer[i:i + step])
        rec.write(1, agent[j:j + step])
        i, j = i + step, j + step
    for f in finals:
        rec.note(f)
    rec.finish()
    return await asyncio.wait_for(rec.done, 30)


async def plant_recording(cfg: Config, call_id: str, started_at_ms: int, finals=(), seconds: float = 2.0):
    """A short stereo recording of a call, made by the real recorder into ``cfg``'s recording store (its redacted
    rendition from ``finals``), for tests of other routes that need a recorded call (the PII walk, the API fuzz)."""
    recorder = Recorder(cfg, sweep_interval_s=3600)
    await recorder.start()
    try:
        rec = recorder.open(CallStarted(call_id, ("customer", "agent"), "zh", started_at_ms=started_at_ms))
        t = np.arange(int(seconds * RATE)) / RATE
        legs = [(0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32) for hz in (220, 330)]
        for i in range(0, len(legs[0]), RATE // 10):
            for ch, x in enumerate(legs):
                rec.write(ch, x[i:i + RATE // 10])
        for f in finals:
            rec.note(f)
        rec.finish()
        return await asyncio.wait_for(rec.done, 30)
    finally:
        await recorder.stop()


async def _publish(cfg: Config, events) -> None:
    pub = RedisPublisher(cfg, cfg.redis_url)
    await pub.start()
    for e in events:
        await pub.publish(e)
    assert await pub.flush(10)
    await pub.stop()


def _call(call_id: str, t0: int, finals: list[Transcript], redact_text: bool = True) -> list:
    started = CallStarted(call_id, ("customer", "agent"), "en", metadata={"agent_id": "a7", "queue": "care"}, started_at_ms=t0)
    stored = [_redacted(f) if redact_text else f for f in finals]  # as the pipeline stores them
    return [started, *stored, CallEnded(call_id, int(SECONDS * 1000), "hangup", finals=len(stored), ended_at_ms=t0 + 7000)]


@dataclasses.dataclass
class Env:
    gw: WebGateway
    raw: WebGateway  # a second gateway storing raw text (redact_stored_text = false)
    store: LocalStore
    manifest: object  # rp-1's manifest

    def headers(self, who: str | None, gw: WebGateway | None = None) -> dict[str, str]:
        if who is None:
            return {}
        token = (gw or self.gw).auth.mint(who, f"{who}-1", agent_id="a7" if who == "agent" else "")[0]
        return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replay")
    server = EmbeddedRedis(tmp / "redis")
    server.start()
    cfg = Config(data_dir=str(tmp / "main"), redis_url=server.url, web_port=0, key_prefix="replay", board_replay_s=86400)
    raw_cfg = cfg.replace(data_dir=str(tmp / "raw"), key_prefix="replayraw", redact_stored_text=False)
    recorder = Recorder(cfg, sweep_interval_s=3600)
    await recorder.start()
    try:
        manifests = {}
        for call_id, t0 in (("rp-1", T0), ("rp-crash", T0 + 60_000)):
            finals = _finals(call_id)
            started = _call(call_id, t0, finals)[0]
            manifests[call_id] = await _record(recorder, started, finals)
            await _publish(cfg, _call(call_id, t0, finals))
        gone = await _record(recorder, _call("rp-gone", T0 + 120_000, [])[0], [])
    finally:
        await recorder.stop()
    store = LocalStore(cfg.data_path / "recordings")
    # rp-crash and rp-gone: cut by a crash (closed as interrupted at the next start, no redacted rendition yet);
    # rp-gone's transcript is gone (only its start and end were ever published)
    for m in (manifests["rp-crash"], gone):
        if m.redacted != m.original:
            store.delete_object(m.redacted)
        write_manifest(store, m.replace(state="interrupted", redacted="", redaction="", redacted_spans=()))
    await _publish(cfg, [_call("rp-gone", T0 + 120_000, [])[0], _call("rp-gone", T0 + 120_000, [])[-1]])
    # rp-live: still being recorded; rp-none: never recorded
    live = manifests["rp-1"].replace(call_id="rp-live", prefix=manifests["rp-1"].prefix.replace("rp-1", "rp-live"),
                                     state="recording", redacted="")
    write_manifest(store, live)
    await _publish(cfg, _call("rp-live", T0, [])[:1] + _call("rp-none", T0, _finals("rp-none")))
    r = aioredis.from_url(server.url, decode_responses=True)
    alert = Alert("rp-1", "rp-1/alert/hold", "compliance.hold", "compliance", "high", "agent", "one moment please", 3400, 4600,
                  segment_id="rp-1/agent/1", trigger_at_ms=T0 + 4900, emitted_at_ms=T0 + 4910)
    for stream in (keys.alerts_stream(cfg), keys.call_stream(cfg, "rp-1")):
        await r.xadd(stream, to_fields(alert))
    await r.aclose()
    # the raw-text gateway: the same recording, the call stored with raw text
    shutil.copytree(cfg.data_path / "recordings" / manifests["rp-1"].prefix, raw_cfg.data_path / "recordings" / manifests["rp-1"].prefix)
    await _publish(raw_cfg, _call("rp-1", T0, _finals("rp-1"), redact_text=False))
    gw, raw = WebGateway(cfg, server.url), WebGateway(raw_cfg, server.url)
    await gw.start()
    await raw.start()
    assert await gw.ingest.drain(10) and await raw.ingest.drain(10)
    yield Env(gw, raw, store, manifests["rp-1"])
    await raw.stop()
    await gw.stop()
    server.kill()


async def _info(env: Env, call_id: str, who: str = "qa", gw: WebGateway | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=(gw or env.gw).url) as client:
        return await client.get(f"/api/v1/calls/{call_id}/recording", headers=env.headers(who, gw))


async def _get(env: Env, url: str, headers: dict | None = None, method: str = "GET", gw: WebGateway | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=(gw or env.gw).url) as client:
        return await client.request(method, url, headers=headers or {})


def _file(env: Env, key: str) -> bytes:
    return env.store.path(key).read_bytes()


# --- the recording as the recorder left it -------------------------------------------------------------------------
async def test_the_recorded_call_has_a_late_leg_and_a_redacted_rendition(env):
    m = env.manifest
    assert m.state == "complete" and m.channels == ("customer", "agent") and abs(m.duration_ms - SECONDS * 1000) <= 40
    shift = m.time_map.to_recording_ms(1, 3400) - 3400
    assert abs(shift - LAG_S * 1000) < 150, m.time_map  # the agent's leg sits where it was said
    assert m.redacted != m.original and m.redacted_spans and m.redacted_spans[0].kind == "phone"


# --- roles -----------------------------------------------------------------------------------------------------------
async def test_qa_supervisor_admin_get_a_link_agents_and_no_token_do_not(env):
    for who in ("qa", "supervisor", "admin"):
        resp = await _info(env, "rp-1", who)
        assert resp.status_code == 200, (who, resp.text)
        info = resp.json()
        assert info["rendition"] == "redacted" and info["content_type"] == "audio/ogg; codecs=opus"
        assert info["channels"] == ["customer", "agent"] and info["state"] == "complete"
        assert info["time_map"]["agent"] and not info["time_map"]["customer"]
        assert info["redacted_spans"][0]["kind"] == "phone" and info["ttl_s"] == 300
        assert 0 < info["expires_at_ms"] - time.time() * 1000 <= 300_000
    agent = await _info(env, "rp-1", "agent")  # the agent's own call
    assert agent.status_code == 403 and "may not" in agent.json()["detail"]
    assert (await _info(env, "rp-1", None)).status_code == 401
    async with httpx.AsyncClient(base_url=env.gw.url) as client:  # the call detail tells QA, not the agent
        qa_detail = (await client.get("/api/v1/calls/rp-1", headers=env.headers("qa"))).json()
        agent_detail = (await client.get("/api/v1/calls/rp-1", headers=env.headers("agent"))).json()
    assert qa_detail["recording"] == {"state": "complete", "format": "opus", "duration_ms": env.manifest.duration_ms,
                                      "channels": ["customer", "agent"], "playable": True}
    assert agent_detail["recording"] is None and agent_detail["utterances"]


async def test_the_audio_route_with_a_bearer_token(env):
    url = "/api/v1/calls/rp-1/recording/audio"
    for who in ("qa", "supervisor", "admin"):
        resp = await _get(env, url, env.headers(who))
        assert resp.status_code == 200 and resp.content == _file(env, env.manifest.redacted), who
        assert resp.headers["content-type"] == "audio/ogg; codecs=opus" and resp.headers["accept-ranges"] == "bytes"
        assert resp.headers["x-callscribe-rendition"] == "redacted" and resp.headers["cache-control"] == "private, no-store"
    agent = await _get(env, url, env.headers("agent"))
    assert agent.status_code == 403 and agent.content != _file(env, env.manifest.redacted)
    assert (await _get(env, url)).status_code == 401


# --- the signed link ------------------------------------------------------------------------------------------------
async def test_the_signed_link_works_without_a_token_until_it_is_altered_or_expires(env):
    info = (await _info(env, "rp-1")).json()
    ok = await _get(env, info["url"])  # no Authorization header: the link is the proof
    assert ok.status_code == 200 and ok.content == _file(env, env.manifest.redacted)
    max_age = int(ok.headers["cache-control"].split("max-age=")[1])
    assert ok.headers["cache-control"].startswith("private") and 290 <= max_age <= 300
    path, query = urlsplit(info["url"]).path, dict(parse_qsl(urlsplit(info["url"]).query))
    assert query["r"] == "redacted" and query["role"] == "qa" and "token" not in info["url"]

    def altered(**change) -> str:
        return f"{path}?{urlencode({**query, **change})}"

    for bad in (altered(r="original"), altered(role="admin"), altered(sub="someone-else"), altered(exp=str(int(query["exp"]) + 60)),
                altered(t=str(int(query["t"]) + 1)), altered(sig=query["sig"][:-2] + ("AA" if query["sig"][-2:] != "AA" else "BB")),
                info["url"].replace("/rp-1/", "/rp-crash/"), altered(sig="")):
        resp = await _get(env, bad)
        assert resp.status_code == 403, (bad, resp.status_code, resp.text)
        assert "audio link" in resp.json()["detail"] and not resp.content.startswith(b"OggS")
    # expired: a link issued with the gateway's key 10 minutes ago
    links = AudioLinks(env.gw.auth.derived_key(KEY_PURPOSE))
    old = links.issue("rp-1", env.manifest.started_at_ms, "redacted", "qa", "qa-1", now_s=time.time() - 600)
    expired = await _get(env, f"{path}?{urlencode(links.query(old))}")
    assert expired.status_code == 403 and "expired" in expired.json()["detail"]
    # signed with another secret (another deployment's link)
    stranger = AudioLinks(b"x" * 32)
    forged = stranger.issue("rp-1", env.manifest.started_at_ms, "redacted", "qa", "qa-1")
    assert (await _get(env, f"{path}?{urlencode(stranger.query(forged))}")).status_code == 403
    # a link for a role that may not hear (agent) cannot be made by anyone but this gateway, and it refuses its own
    agent_link = links.issue("rp-1", env.manifest.started_at_ms, "redacted", "agent", "a7")
    refused = await _get(env, f"{path}?{urlencode(links.query(agent_link))}")
    assert refused.status_code == 403 and "agent" in refused.json()["detail"]


# --- ranges ---------------------------------------------------------------------------------------------------------
async def test_range_header_parsing():
    assert byte_range(None, 100) is None and byte_range("items=0-5", 100) is None and byte_range("bytes=0-1,5-6", 100) is None
    assert byte_range("bytes=0-9", 100) == (0, 9) and byte_range("bytes=90-200", 100) == (90, 99)
    assert byte_range("bytes=95-", 100) == (95, 99) and byte_range("bytes=-10", 100) == (90, 99)
    assert byte_range("bytes=-500", 100) == (0, 99) and byte_range(" BYTES = 3-4 ", 100) == (3, 4)
    for bad in ("bytes=100-", "bytes=5-2", "bytes=-0", "bytes=-", "bytes=a-b", "bytes=1-2-3", "bytes=0-0"):
        if bad == "bytes=0-0":
            with pytest.raises(RangeNotSatisfiable):
                byte_range(bad, 0)
            continue
        with pytest.raises(RangeNotSatisfiable):
            byte_range(bad, 100)


async def test_range_requests_through_the_signed_link(env):
    info = (await _info(env, "rp-1")).json()
    data = _file(env, env.manifest.redacted)
    size = len(data)
    assert size > 3000
    cases = [("bytes=0-99", 0, 99), ("bytes=1000-1999", 1000, 1999), ("bytes=-500", size - 500, size - 1),
             (f"bytes={size - 10}-", size - 10, size - 1), (f"bytes=100-{size + 5000}", 100, size - 1)]
    for header, first, last in cases:
        resp = await _get(env, info["url"], {"Range": header})
        assert resp.status_code == 206, (header, resp.status_code)
        assert resp.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert resp.content == data[first:last + 1] and int(resp.headers["content-length"]) == last - first + 1
        assert resp.headers["accept-ranges"] == "bytes" and resp.headers["content-type"].startswith("audio/ogg")
    for header in (f"bytes={size}-", f"bytes={size + 100}-{size + 200}", "bytes=50-10", "bytes=-0"):
        resp = await _get(env, info["url"], {"Range": header})
        assert resp.status_code == 416 and resp.headers["content-range"] == f"bytes */{size}", header
    whole = await _get(env, info["url"], {"Range": "bytes=0-1, 5-6"})  # several ranges: the whole file
    assert whole.status_code == 200 and whole.content == data
    head = await _get(env, info["url"], {"Range": "bytes=10-19"}, method="HEAD")
    assert head.status_code == 206 and head.headers["content-length"] == "10" and not head.content
    bearer = await _get(env, "/api/v1/calls/rp-1/recording/audio", {**env.headers("supervisor"), "Range": "bytes=-100"})
    assert bearer.status_code == 206 and bearer.content == data[-100:]


# --- what each role hears -------------------------------------------------------------------------------------------
async def test_roles_that_read_redacted_text_hear_the_redacted_rendition(env):
    m = env.manifest
    original, redacted = _file(env, m.original), _file(env, m.redacted)
    assert original != redacted
    # raw text stored: supervisor and admin read it and hear the original; QA reads redacted text, hears redacted
    for who, want, rendition in (("supervisor", original, "original"), ("admin", original, "original"), ("qa", redacted, "redacted")):
        info = (await _info(env, "rp-1", who, env.raw)).json()
        assert info["rendition"] == rendition and (info["redacted_spans"] != []) == (rendition == "redacted")
        resp = await _get(env, info["url"], gw=env.raw)
        assert resp.status_code == 200 and resp.content == want and resp.headers["x-callscribe-rendition"] == rendition
        direct = await _get(env, "/api/v1/calls/rp-1/recording/audio", env.headers(who, env.raw), gw=env.raw)
        assert direct.content == want
    # a QA link cannot be bent into the original
    qa = (await _info(env, "rp-1", "qa", env.raw)).json()
    bent = await _get(env, qa["url"].replace("r=redacted", "r=original"), gw=env.raw)
    assert bent.status_code == 403
    # the redacted rendition is silent where the number was said, and the same elsewhere
    a, _ = decode(io.BytesIO(original), RATE)
    b, _ = decode(io.BytesIO(redacted), RATE)
    span = m.redacted_spans[0]
    inside = slice(span.start_ms * RATE // 1000 + 800, span.end_ms * RATE // 1000 - 800)
    assert rms(a[inside]) > 0.05 and rms(b[inside]) < 1e-3


# --- not playable (yet) ------------------------------------------------------------------------------------------------
async def test_no_recording_404_still_recording_409_unknown_call_404(env):
    none = await _info(env, "rp-none")
    assert none.status_code == 404 and "no recording" in none.json()["detail"]
    live = await _info(env, "rp-live")
    assert live.status_code == 409 and "still being recorded" in live.json()["detail"]
    assert (await _get(env, "/api/v1/calls/rp-live/recording/audio", env.headers("admin"))).status_code == 409
    assert (await _info(env, "rp-nope")).status_code == 404
    async with httpx.AsyncClient(base_url=env.gw.url) as client:
        detail = (await client.get("/api/v1/calls/rp-live", headers=env.headers("qa"))).json()
        assert detail["recording"]["state"] == "recording" and detail["recording"]["playable"] is False
        assert (await client.get("/api/v1/calls/rp-none", headers=env.headers("qa"))).json()["recording"] is None


async def test_a_crash_cut_recording_gets_its_redacted_rendition_on_first_request(env):
    before = read_manifest(env.store, env.manifest.prefix.replace("rp-1", "rp-crash"))
    assert before.state == "interrupted" and not before.redacted
    resp = await _info(env, "rp-crash", "supervisor")
    assert resp.status_code == 200, resp.text
    after = read_manifest(env.store, before.prefix)
    assert after.redacted and after.redacted != after.original and resp.json()["rendition"] == "redacted"
    kinds = [s.kind for s in after.redacted_spans]
    # the number (its tokens masked in Redis: word times kept) and the end no leg's transcript covers
    assert kinds[0] in ("masked", "phone") and kinds[-1] == "untranscribed", after.redacted_spans
    tail = untranscribed_tail(before, _finals("rp-crash"))
    assert after.redacted_spans[-1].start_ms == tail.start_ms == before.time_map.to_recording_ms(1, 4600)
    audio = await _get(env, resp.json()["url"])
    x, _ = decode(io.BytesIO(audio.content), RATE)
    o, _ = decode(io.BytesIO(_file(env, after.original)), RATE)
    phone = slice(1000 * RATE // 1000, 3000 * RATE // 1000)
    agent_line = slice(int((tail.start_ms - 900) * RATE / 1000), int((tail.start_ms - 400) * RATE / 1000))
    assert rms(o[phone]) > 0.05 and rms(x[phone]) < 1e-3
    assert rms(x[agent_line, 1]) > 0.05  # the agent's line before the tail is heard
    assert rms(x[tail.start_ms * RATE // 1000 + 400:]) < 1e-3
    # a second request finds it made
    assert read_manifest(env.store, before.prefix) == after and (await _info(env, "rp-crash")).status_code == 200


async def test_a_crash_cut_recording_without_a_transcript_is_refused_not_served_original(env):
    resp = await _info(env, "rp-gone")
    assert resp.status_code == 409 and "no transcript" in resp.json()["detail"] and "original" in resp.json()["detail"]
    audio = await _get(env, "/api/v1/calls/rp-gone/recording/audio", env.headers("admin"))
    assert audio.status_code == 409 and not audio.content.startswith(b"OggS")
    assert not read_manifest(env.store, call_prefix("rp-gone", T0 + 120_000)).redacted


# --- the QA page in Chromium ---------------------------------------------------------------------------------------
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
        b = await p.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu",
                                                                               "--autoplay-policy=no-user-gesture-required"])
        yield b
        await b.close()


async def _current_time(page) -> float:
    return await page.evaluate("document.getElementById('audio').currentTime")


async def test_qa_page_plays_the_call_the_highlight_follows_and_clicks_seek(env, browser):
    gw, m = env.gw, env.manifest
    shift = m.time_map.to_recording_ms(1, 3400) - 3400  # the agent's lines sit this much later in the recording
    context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    failed: list[str] = []  # answers >= 400: only the scorecard's 404 (the worker did not score this call) is expected
    page.on("response", lambda r: failed.append(f"{r.status} {urlsplit(r.url).path}") if r.status >= 400 else None)
    qa = gw.auth.mint("qa", "quinn")[0]
    await page.goto(f"{gw.url}/qa?q=moment#token={qa}")
    await page.click('#results .hit[data-call-id="rp-1"]', timeout=10_000)
    await page.wait_for_selector('#replay-note[data-kind="redacted"]', timeout=10_000)
    assert "silent" in await page.text_content("#replay-note")
    assert await page.is_visible("#leg-box")
    marks = page.locator("#progress-marks .mark")
    assert await marks.count() == 1 and await page.locator("#progress-marks .masked").count() == 1
    assert abs(int(await marks.first.get_attribute("data-at-ms")) - (3400 + shift)) <= 1

    await page.select_option("#speed", "2")
    await page.click("#play")
    first, second, third = (f'#timeline .utt.playing[data-segment-id="rp-1/{c}/{i}"]'
                            for i, c in enumerate(("customer", "agent", "customer")))
    await page.wait_for_selector(first, timeout=5_000)
    t0 = time.monotonic()
    # the audio's time when the highlight moved to the agent's line (at 3.4 s + the shift of its leg), read in the
    # frame it happened (polled every animation frame)
    at = await (await page.wait_for_function(
        "(sel) => document.querySelector(sel) && document.getElementById('audio').currentTime", arg=second,
        polling="raf", timeout=8_000)).json_value()
    wall = time.monotonic() - t0
    assert 3.4 + shift / 1000 - 0.05 <= at <= 3.4 + shift / 1000 + 0.5, at
    assert wall < 3.0, wall  # 3.5 s of audio from the first line to the second: 1.75 s at 2x
    assert await page.evaluate("document.getElementById('audio').playbackRate") == 2
    assert await page.locator("#timeline .utt.playing").count() == 1
    await _shot(page, "qa-replay")

    # a click on a later line seeks there (the audio keeps playing from it)
    await page.click('#timeline .utt[data-segment-id="rp-1/customer/2"]')
    assert 5.35 <= await _current_time(page) <= 6.5
    await page.wait_for_selector(third, timeout=3_000)
    # the alert marker on the timeline bar seeks to the alert (an agent line: its leg's shift applies)
    await page.click("#progress-marks .mark")
    assert abs(await _current_time(page) - (3400 + shift) / 1000) < 0.5
    await page.wait_for_selector(second, timeout=3_000)
    # one leg: the audio plays on through Web Audio
    await page.select_option("#leg", "customer")
    if await page.evaluate("document.getElementById('audio').paused"):  # a slow machine reached the end meanwhile
        await page.click("#play")
    before = await _current_time(page)
    await page.wait_for_timeout(400)
    assert await _current_time(page) > before and not await page.evaluate("document.getElementById('audio').paused")
    await page.click("#play")  # pause
    assert await page.evaluate("document.getElementById('audio').paused")
    assert failed == ["404 /api/v1/calls/rp-1/scorecard"], failed
    assert errors == ["Failed to load resource: the server responded with a status of 404 (Not Found)"], errors

    # an agent's token gets no audio: not the link (the call detail offers none), not the audio itself
    agent = gw.auth.mint("agent", "a7")[0]
    got = await page.evaluate("""async (token) => {
      const h = {Authorization: "Bearer " + token};
      const info = await fetch("/api/v1/calls/rp-1/recording", {headers: h});
      const audio = await fetch("/api/v1/calls/rp-1/recording/audio", {headers: {...h, Range: "bytes=0-99"}});
      const detail = await (await fetch("/api/v1/calls/rp-1", {headers: h})).json();
      return [info.status, audio.status, audio.headers.get("content-type"), detail.recording];
    }""", agent)
    assert got[:2] == [403, 403] and got[2] == "application/json" and got[3] is None, got
    await context.close()


async def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)
