"""The web gateway's API on a real Redis (bundled valkey) with events written by the real publisher:
every endpoint and WebSocket against every role and no token, captions resumed by stream id (also across
a gateway restart), search and call detail from the store, QA redaction, callbacks, metrics, bad input."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from callscribe.config import Config
from callscribe.events import Alert, CallEnded, CallFlag, CallStarted, IntentUpdate, Quote, Transcript, to_fields
from callscribe.gateway.web import WebGateway
from callscribe.gateway.web.app import PAGES
from callscribe.stream import EmbeddedRedis, RedisPublisher, keys
from callscribe.stream.server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ROLES = ("agent", "supervisor", "qa", "admin", "integration")  # integration: a CRM, refused everywhere but its route
T0 = 1_790_000_000_000


def _events(call_id: str, agent: str, texts: list[tuple[str, str]], t0: int = T0, end: bool = True):
    """A call as the pipeline publishes it: start, a partial then the final of each turn, end."""
    out = [CallStarted(call_id, ("customer", "agent"), "zh", metadata={"agent_id": agent, "queue": "broadband",
                                                                        "caller": "13812345678"}, started_at_ms=t0)]
    for i, (channel, text) in enumerate(texts):
        seg = f"{call_id}/{channel}/{i}"
        out.append(Transcript(call_id, channel, seg, 0, False, text[:2], i * 3000, i * 3000 + 800, "zh", 0.5))
        out.append(Transcript(call_id, channel, seg, 1, True, text, i * 3000, i * 3000 + 2500, "zh", 0.9,
                              emitted_at_ms=t0 + i * 3000 + 3000, speech_end_at_ms=t0 + i * 3000 + 2500))
    if end:
        out.append(CallEnded(call_id, len(texts) * 3000, "hangup", finals=len(texts), ended_at_ms=t0 + len(texts) * 3000))
    return out


async def _publish(cfg: Config, events) -> None:
    pub = RedisPublisher(cfg, cfg.redis_url)
    await pub.start()
    for e in events:
        await pub.publish(e)
    assert await pub.flush(10)
    await pub.stop()


class Env:
    def __init__(self, cfg: Config, gw: WebGateway) -> None:
        self.cfg, self.gw = cfg, gw
        self.tokens = {role: gw.auth.mint(role, f"{role}-1", agent_id="a7" if role == "agent" else "")[0] for role in ROLES}
        self.tokens["other_agent"] = gw.auth.mint("agent", "a8")[0]

    @property
    def ws(self) -> str:
        return self.gw.url.replace("http://", "ws://")

    def headers(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def protocols(self, who: str | None) -> list[str]:
        return ["callscribe.v1", *([f"bearer.{self.tokens[who]}"] if who else [])]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    server = EmbeddedRedis(tmp / "redis")
    server.start()
    cfg = Config(data_dir=str(tmp), redis_url=server.url, web_port=0, key_prefix="web", board_replay_s=10 * 365 * 86400)
    await _publish(cfg, _events("c-own", "a7", [("customer", "我家宽带又断了，我要投诉你们"), ("agent", "非常抱歉，我马上帮您报修"),
                                                   ("customer", "I want to speak to your manager")]))
    r = aioredis.from_url(server.url, decode_responses=True)
    alert = Alert("c-own", "c-own/alert/esc", "escalation.complaint", "escalation", "high", "customer", "我要投诉", 0, 2500,
                  segment_id="c-own/customer/0", trigger_at_ms=T0 + 3000, emitted_at_ms=T0 + 3010)
    for stream in (keys.alerts_stream(cfg), keys.call_stream(cfg, "c-own")):
        await r.xadd(stream, to_fields(alert))
    intent = IntentUpdate("c-own", 1, "broadband_outage", "Broadband outage", 0.42, "other", 0.1, 1)
    for stream in (keys.insights_stream(cfg), keys.call_stream(cfg, "c-own")):
        await r.xadd(stream, to_fields(intent))
    await r.aclose()
    gw = WebGateway(cfg, server.url)
    await gw.start()
    e = Env(cfg, gw)
    assert await gw.ingest.drain(10)
    await asyncio.wait_for(gw.board.ready.wait(), 10)
    yield e
    await gw.stop()
    server.kill()


# --- roles: every endpoint, every role, no token ---------------------------------------------------------------
HTTP = [  # (method, path, roles allowed besides admin)
    ("GET", "/api/v1/me", {"agent", "supervisor", "qa"}),
    ("GET", "/api/v1/intents", {"agent", "supervisor", "qa"}),
    ("GET", "/api/v1/calls/live", {"supervisor"}),
    ("GET", "/api/v1/agents/me/call", {"agent"}),
    ("GET", "/api/v1/alerts", {"supervisor"}),
    ("GET", "/api/v1/callbacks", {"supervisor"}),
    ("POST", "/api/v1/callbacks/{call_id}/done", {"supervisor"}),
    ("GET", "/api/v1/stats/intents", {"supervisor"}),
    ("GET", "/api/v1/search", {"supervisor", "qa"}),
    ("GET", "/api/v1/calls/{call_id}", {"supervisor", "qa", "agent"}),
    ("GET", "/api/v1/assist/knowledge", {"agent", "supervisor"}),
    ("POST", "/api/v1/calls/{call_id}/ticket/draft", {"agent", "supervisor"}),
    ("POST", "/api/v1/calls/{call_id}/tickets", {"agent", "supervisor"}),
    ("GET", "/api/v1/calls/{call_id}/history", {"agent", "supervisor"}),
    ("POST", "/api/v1/assist/events", {"agent"}),
    ("GET", "/api/v1/reports/assist_adoption", {"supervisor"}),
    ("POST", "/api/v1/tickets/{ticket_id}/status", {"integration"}),
    ("GET", "/api/v1/calls/{call_id}/scorecard", {"supervisor", "qa", "agent"}),
    ("POST", "/api/v1/calls/{call_id}/scorecard/overrides", {"supervisor", "qa"}),
    ("POST", "/api/v1/calls/{call_id}/scorecard/appeals", {"agent"}),
    ("GET", "/api/v1/scorecards", {"supervisor", "qa", "agent"}),
    ("GET", "/api/v1/appeals", {"supervisor", "qa", "agent"}),
    ("POST", "/api/v1/appeals/{appeal_id}/decision", {"supervisor", "qa"}),
    ("GET", "/api/v1/reports/agent_scores", {"supervisor", "qa", "agent"}),
    ("GET", "/api/v1/reports/calibration", {"supervisor", "qa"}),
    ("GET", "/api/v1/reports/summary", {"supervisor", "qa"}),
    ("GET", "/api/v1/reports/topics", {"supervisor", "qa"}),
    ("GET", "/api/v1/calls/{call_id}/recording", {"supervisor", "qa"}),
    ("GET", "/api/v1/calls/{call_id}/recording/audio", {"supervisor", "qa"}),
    ("POST", "/api/v1/tokens", set()),
    ("GET", "/metrics", set()),
]
WS = [
    ("/ws/v1/calls/{call_id}/captions", {"agent", "supervisor"}),
    ("/ws/v1/agent", {"agent", "supervisor"}),
    ("/ws/v1/supervisor", {"supervisor"}),
]
PUBLIC = {"/health", "/ready", "/", "/openapi.json", "/favicon.ico", "/static", *PAGES}
BODIES = {  # the JSON body each role sends to a route that takes one
    "/api/v1/tokens": {"role": "qa", "sub": "new-qa"},
    "/api/v1/calls/{call_id}/tickets": {"type": "broadband_repair", "priority": "high", "summary": ["宽带又断了"]},
    "/api/v1/assist/events": {"call_id": "c-own", "card_kind": "scenario", "card_id": "zh.broadband_outage", "action": "shown"},
    "/api/v1/tickets/{ticket_id}/status": {"status": "resolved"},
    "/api/v1/calls/{call_id}/scorecard/overrides": {"question": "greeting", "answer": False, "reason": "no greeting"},
    "/api/v1/calls/{call_id}/scorecard/appeals": {"question": "greeting", "comment": "I did greet"},
    "/api/v1/appeals/{appeal_id}/decision": {"decision": "reject", "reason": "the rule is right"},
}
CALL_OF = {"/api/v1/calls/{call_id}/tickets": "c-nope"}  # a ticket on c-own would queue it (the callback test counts the queue)


async def test_the_role_tables_cover_every_route(env):
    routes = {(m, r.path) for r in env.gw._server.config.app.routes for m in getattr(r, "methods", None) or {"WS"}
              if r.path not in PUBLIC and m != "HEAD"}
    assert routes == {(m, p) for m, p, _ in HTTP} | {("WS", p) for p, _ in WS}


@pytest.mark.parametrize("who", [None, *ROLES])
@pytest.mark.parametrize("method, path, allowed", HTTP, ids=[f"{m} {p}" for m, p, _ in HTTP])
async def test_http_roles(env, method, path, allowed, who):
    url = path.format(call_id=CALL_OF.get(path, "c-own"), ticket_id="t-nope", appeal_id="ap-nope") + ("?q=投诉" if path.endswith("search") else "")
    body = BODIES.get(path)
    async with httpx.AsyncClient(base_url=env.gw.url) as client:
        resp = await client.request(method, url, headers=env.headers(who), json=body)
    if who is None:
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer", resp.text
    elif who == "admin" or who in allowed:
        assert resp.status_code in (200, 404), (resp.status_code, resp.text)  # 404: the callback is not queued
    else:
        assert resp.status_code == 403, resp.text
        assert "may not" in resp.json()["detail"]


async def _ws_outcome(env, path: str, who: str | None) -> tuple[str, int | None, str]:
    """('open', None, first message type) or ('closed', code, reason)."""
    try:
        async with connect(env.ws + path, subprotocols=env.protocols(who), open_timeout=5) as ws:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ws.subprotocol == "callscribe.v1"
            return "open", None, msg["type"]
    except ConnectionClosed as exc:
        return "closed", exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else ""


@pytest.mark.parametrize("who", [None, *ROLES])
@pytest.mark.parametrize("path, allowed", WS, ids=[p for p, _ in WS])
async def test_websocket_roles(env, path, allowed, who):
    url = path.format(call_id="c-own") + ("?agent_id=a7" if path == "/ws/v1/agent" and who in ("supervisor", "admin") else "")
    outcome, code, detail = await _ws_outcome(env, url, who)
    if who is None:
        assert (outcome, code) == ("closed", 4401) and "no token" in detail
    elif who == "admin" or who in allowed:
        assert outcome == "open", (code, detail)
        assert detail == {"/ws/v1/calls/{call_id}/captions": "call_started", "/ws/v1/agent": "current_call",
                          "/ws/v1/supervisor": "snapshot"}[path]
    else:
        assert (outcome, code) == ("closed", 4403) and "may not" in detail


async def test_an_agent_sees_only_their_own_calls(env):
    await _publish(env.cfg, _events("c-other", "a8", [("customer", "话费多扣了三十块")]))
    await asyncio.sleep(0.3)
    # another agent's call and a call that does not exist are answered alike (existence is not told)
    assert await _ws_outcome(env, "/ws/v1/calls/c-other/captions", "agent") == ("closed", 4404, "no such call")
    assert await _ws_outcome(env, "/ws/v1/calls/c-nope/captions", "agent") == ("closed", 4404, "no such call")
    assert (await _ws_outcome(env, "/ws/v1/calls/c-other/captions", "other_agent"))[0] == "open"
    async with httpx.AsyncClient(base_url=env.gw.url) as client:
        other = await client.get("/api/v1/calls/c-other", headers=env.headers("agent"))
        missing = await client.get("/api/v1/calls/c-nope", headers=env.headers("agent"))
        assert other.status_code == missing.status_code == 404 and other.json() == missing.json()
        assert (await client.get("/api/v1/calls/c-own", headers=env.headers("other_agent"))).status_code == 404
        mine = (await client.get("/api/v1/agents/me/call", headers=env.headers("other_agent"))).json()["call"]
        assert mine["call_id"] == "c-other" and mine["caller"] == "138****5678"
    outcome, _, first = await _ws_outcome(env, "/ws/v1/agent", "agent")
    assert (outcome, first) == ("open", "current_call")


async def test_websocket_token_in_header_and_bad_requests(env):
    headers = {"Authorization": f"Bearer {env.tokens['supervisor']}"}
    async with connect(env.ws + "/ws/v1/supervisor", additional_headers=headers) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
    assert (await _ws_outcome(env, "/ws/v1/calls/c-own/captions?after=abc", "supervisor"))[1] == 4400
    assert (await _ws_outcome(env, "/ws/v1/calls/no-such-call/captions", "supervisor"))[1] == 4404
    assert (await _ws_outcome(env, "/ws/v1/agent", "supervisor"))[1] == 4400  # which agent?
    async with httpx.AsyncClient(base_url=env.gw.url) as client:
        sup = env.headers("supervisor")
        bad = await client.get("/api/v1/search", params={"q": '"unbalanced'}, headers=sup)
        assert bad.status_code == 400 and "quote" in bad.json()["detail"].lower()
        assert (await client.get("/api/v1/search", params={"since": "yesterday"}, headers=sup)).status_code == 400
        assert (await client.get("/api/v1/search", params={"limit": 1000}, headers=sup)).status_code == 422
        assert (await client.get("/api/v1/search", params={"flag": "maybe"}, headers=sup)).status_code == 422
        assert (await client.get("/api/v1/calls/no-such-call", headers=sup)).status_code == 404
        assert (await client.post("/api/v1/tokens", json={"role": "root", "sub": "x"}, headers=env.headers("admin"))).status_code == 400
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/ready")).json() == {"status": "ok"}
        assert (await client.get("/openapi.json")).json()["info"]["title"] == "callscribe gateway"


# --- captions -------------------------------------------------------------------------------------------------------
async def _read_until(ws, pred, timeout: float = 10.0) -> list[dict]:
    got = []
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg["type"] == "ping":
            continue
        got.append(msg)
        if pred(msg):
            return got


async def test_captions_resume_from_the_last_id_without_gap_or_duplicate(env):
    cfg = env.cfg
    events = _events("c-resume", "a7", [("customer", f"第{i}句话") for i in range(6)], end=False)
    await _publish(cfg, events[:5])  # start + 2 turns
    await asyncio.sleep(0.2)
    url = env.ws + "/ws/v1/calls/c-resume/captions"
    async with connect(url + "?after=0", subprotocols=env.protocols("agent")) as ws:
        first = await _read_until(ws, lambda m: m.get("segment_id") == "c-resume/customer/1" and m.get("is_final"))
    await _publish(cfg, events[5:] + [CallEnded("c-resume", 18_000, "hangup")])
    async with connect(url + f"?after={first[-1]['id']}", subprotocols=env.protocols("agent")) as ws:
        rest = await _read_until(ws, lambda m: m["type"] == "call_ended")
    r = aioredis.from_url(cfg.redis_url, decode_responses=True)
    stream_ids = [i for i, _ in await r.xrange(keys.call_stream(cfg, "c-resume"))]
    await r.aclose()
    got = [m["id"] for m in first + rest]
    assert got == stream_ids and len(set(got)) == len(got)
    assert [m["kind"] for m in first + rest if m["type"] == "transcript"] == ["partial", "final"] * 6


async def test_gateway_restart_mid_call_resumes_with_no_gap_or_duplicate(env):
    """A second gateway on a fixed port is restarted while a call is published; the client follows the page's
    rule (reconnect with ?after=<last id>) and ends with exactly the call's stream."""
    fixed_port = free_port()
    cfg = env.cfg.replace(web_port=fixed_port)
    events = _events("c-restart", "a7", [("customer" if i % 2 == 0 else "agent", f"句子{i}") for i in range(10)])
    await _publish(cfg, events[:1])
    gw = WebGateway(cfg, cfg.redis_url)
    await gw.start()
    token = gw.auth.mint("agent", "a7")[0]
    received: list[dict] = []
    closes: list[int] = []

    async def follow() -> None:
        last = "0"
        while not received or received[-1]["type"] != "call_ended":
            try:
                async with connect(f"ws://127.0.0.1:{fixed_port}/ws/v1/calls/c-restart/captions?after={last}",
                                   subprotocols=["callscribe.v1", f"bearer.{token}"], open_timeout=2) as ws:
                    async for raw in ws:
                        msg = json.loads(raw)
                        if msg["type"] != "ping":
                            received.append(msg)
                            last = msg["id"]
                            if msg["type"] == "call_ended":
                                return
            except ConnectionClosed as exc:
                closes.append(exc.rcvd.code if exc.rcvd else 0)
            except OSError:  # refused while the gateway is down
                pass
            await asyncio.sleep(0.2)

    follower = asyncio.create_task(follow())

    async def publish_slowly() -> None:
        pub = RedisPublisher(cfg, cfg.redis_url)
        await pub.start()
        for e in events[1:]:
            await pub.publish(e)
            await asyncio.sleep(0.05)
        await pub.flush(10)
        await pub.stop()

    publisher = asyncio.create_task(publish_slowly())
    await asyncio.sleep(0.35)
    await gw.stop()  # mid-call: viewers get 1012
    await asyncio.sleep(0.5)
    gw2 = WebGateway(cfg, cfg.redis_url)
    await gw2.start()
    try:
        await publisher
        await asyncio.wait_for(follower, 15)
    finally:
        await gw2.stop()
    r = aioredis.from_url(cfg.redis_url, decode_responses=True)
    stream_ids = [i for i, _ in await r.xrange(keys.call_stream(cfg, "c-restart"))]
    await r.aclose()
    assert 1012 in closes
    assert [m["id"] for m in received] == stream_ids


# --- search, detail, redaction ---------------------------------------------------------------------------------------
async def test_search_and_call_detail(env):
    async with httpx.AsyncClient(base_url=env.gw.url) as client:
        qa = env.headers("qa")
        page = (await client.get("/api/v1/search", params={"q": "投诉"}, headers=qa)).json()
        hit = next(h for h in page["hits"] if h["call_id"] == "c-own")
        assert "<mark>投诉</mark>" in hit["highlighted"] and page["terms"] == ["投诉"]
        assert hit["call"]["caller"] == "138****5678"  # QA never sees the number
        page = (await client.get("/api/v1/search", params={"q": '"speak to your manager"', "channel": "customer",
                                                            "agent": "a7"}, headers=qa)).json()
        assert page["total"] == 1 and "<mark>speak to your manager</mark>" in page["hits"][0]["highlighted"]
        assert (await client.get("/api/v1/search", params={"q": "投诉", "agent": "nobody"}, headers=qa)).json()["total"] == 0
        detail = (await client.get("/api/v1/calls/c-own", headers=qa)).json()
        assert [u["segment_id"] for u in detail["utterances"]] == ["c-own/customer/0", "c-own/agent/1", "c-own/customer/2"]
        assert {e["type"] for e in detail["events"]} == {"alert", "intent"}
        sup = (await client.get("/api/v1/calls/c-own", headers=env.headers("supervisor"))).json()
        assert sup["call"]["caller"] == "138****5678"  # one PII policy: masked for every role but admin
        admin = (await client.get("/api/v1/calls/c-own", headers=env.headers("admin"))).json()
        assert admin["call"]["caller"] == "13812345678"
        intent = next(e for e in sup["events"] if e["type"] == "intent")
        assert (intent["intent"], intent["score"]) == ("broadband_outage", 0.42)


async def test_qa_reads_redacted_text_even_when_storage_is_raw(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    cfg = Config(data_dir=str(tmp_path), redis_url=server.url, web_port=0, key_prefix="raw", redact_stored_text=False)
    try:
        await _publish(cfg, _events("c-pii", "a7", [("customer", "我的手机号是13812345678，帮我查一下话费")]))
        async with WebGateway(cfg, server.url) as gw:
            assert await gw.ingest.drain(10)
            qa = {"Authorization": f"Bearer {gw.auth.mint('qa', 'q')[0]}"}
            sup = {"Authorization": f"Bearer {gw.auth.mint('supervisor', 's')[0]}"}
            async with httpx.AsyncClient(base_url=gw.url) as client:
                for who, visible in ((qa, False), (sup, True)):
                    hit = (await client.get("/api/v1/search", params={"q": "话费"}, headers=who)).json()["hits"][0]
                    detail = (await client.get("/api/v1/calls/c-pii", headers=who)).json()
                    for text in (hit["text"], hit["highlighted"], detail["utterances"][0]["text"]):
                        assert ("13812345678" in text) is visible, text
                    assert "<mark>话费</mark>" in hit["highlighted"]
    finally:
        server.kill()


# --- supervisor feed, callbacks, metrics --------------------------------------------------------------------------------
async def test_supervisor_feed_gets_alerts_and_callbacks_live_and_done_clears_them(env):
    cfg = env.cfg
    async with connect(env.ws + "/ws/v1/supervisor", subprotocols=env.protocols("supervisor")) as ws:
        snapshot = json.loads(await ws.recv())
        assert any(a["alert_id"] == "c-own/alert/esc" for a in snapshot["alerts"])
        await _publish(cfg, _events("c-cb", "a9", [("customer", "还是上不了网")], t0=T0 + 60_000))
        r = aioredis.from_url(cfg.redis_url, decode_responses=True)
        alert = Alert("c-cb", "c-cb/alert/abuse", "abuse.insult", "abuse", "high", "customer", "***", 0, 900)
        flag = CallFlag("c-cb", 3, True, True, ("customer_still_unhappy",), (Quote("customer", "还是上不了网", 0, 900),), "broadband_outage", "13900001111")
        await r.xadd(keys.alerts_stream(cfg), to_fields(alert))
        await r.xadd(keys.insights_stream(cfg), to_fields(flag))
        await r.xadd(keys.callbacks_stream(cfg), to_fields(flag))
        got = await _read_until(ws, lambda m: m["type"] == "callback")
        assert any(m["type"] == "alert" and m["alert"]["agent_id"] == "a9" for m in got)
        async with httpx.AsyncClient(base_url=env.gw.url) as client:
            sup = env.headers("supervisor")
            queue = (await client.get("/api/v1/callbacks", headers=sup)).json()["callbacks"]
            assert [c["call_id"] for c in queue] == ["c-cb"] and queue[0]["caller"] == "139****1111"
            full = (await client.get("/api/v1/callbacks", headers=env.headers("admin"))).json()["callbacks"]
            assert full[0]["caller"] == "13900001111"
            assert (await client.post("/api/v1/callbacks/c-cb/done", headers=sup)).json() == {"ok": True}
            await _read_until(ws, lambda m: m == {"type": "callback_done", "call_id": "c-cb"})
            assert (await client.get("/api/v1/callbacks", headers=sup)).json()["callbacks"] == []
            assert (await client.post("/api/v1/callbacks/c-cb/done", headers=sup)).status_code == 404
        audit = [f for _, f in await r.xrange(keys.callbacks_stream(cfg)) if f["type"] == "callback_done"]
        assert audit and audit[-1]["by"] == "supervisor-1"
        await r.aclose()


async def test_metrics(env):
    async with httpx.AsyncClient(base_url=env.gw.url) as client:
        text = (await client.get("/metrics", headers=env.headers("admin"))).text
    for name in ("callscribe_gateway_ws_clients", "callscribe_search_seconds_bucket", "callscribe_final_latency_seconds_bucket",
                 "callscribe_alert_latency_seconds_bucket", "callscribe_board_calls_live", 'callscribe_alerts_total{category="escalation"}',
                 "callscribe_store_entries_total"):
        assert name in text, name
    await asyncio.sleep(5.5)  # stream depths are polled every 5 s
    async with httpx.AsyncClient(base_url=env.gw.url) as client:
        text = (await client.get("/metrics", headers=env.headers("admin"))).text
    assert 'callscribe_group_lag{group="store",stream="web:finals"}' in text
    assert 'callscribe_stream_length{stream="web:alerts"}' in text


# --- command line ------------------------------------------------------------------------------------------------------
async def test_token_and_gateway_commands(tmp_path):
    import os
    import signal
    import sys

    from callscribe.gateway.web import TokenAuthority

    env = {**os.environ, "CALLSCRIBE_DATA_DIR": str(tmp_path)}
    out = await asyncio.create_subprocess_exec(sys.executable, "-m", "callscribe.cli", "token", "--role", "qa", "--sub", "quinn",
                                               "--page", "qa", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await out.communicate()
    assert out.returncode == 0 and b"qa token for quinn" in stderr
    url = stdout.decode().strip()
    assert url.startswith("http://127.0.0.1:8080/qa#token=")
    assert TokenAuthority.from_config(Config(data_dir=str(tmp_path))).verify(url.split("#token=")[1]).sub == "quinn"
    bad = await asyncio.create_subprocess_exec(sys.executable, "-m", "callscribe.cli", "gateway", env={**env, "REDIS_URL": ""},
                                               stderr=asyncio.subprocess.PIPE)
    assert await bad.wait() == 2 and b"REDIS_URL" in await bad.stderr.read()

    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    port = free_port()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "callscribe.cli", "gateway", "--redis-url", server.url,
                                                "--web-port", str(port), env=env, stderr=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert f"pages and API on http://127.0.0.1:{port}".encode() in line, line
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/ready")).json() == {"status": "ok"}
            assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {url.split('#token=')[1]}"})).json()["sub"] == "quinn"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
        server.kill()


async def test_dead_redis_makes_the_gateway_not_ready_and_it_still_stops_cleanly(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    cfg = Config(data_dir=str(tmp_path), redis_url=server.url, web_port=0, key_prefix="dead")
    gw = WebGateway(cfg, server.url)
    await gw.start()
    token = gw.auth.mint("supervisor", "s")[0]
    async with httpx.AsyncClient(base_url=gw.url) as client:
        assert (await client.get("/ready")).status_code == 200
        server.kill()
        resp = await client.get("/ready")
        assert resp.status_code == 503 and resp.json()["detail"].startswith("Redis")
        assert (await client.get("/health")).status_code == 200  # alive, just not ready
        # the board keeps what it had; search still answers from the store
        assert (await client.get("/api/v1/calls/live", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        assert (await client.get("/api/v1/search", params={"q": "x"}, headers={"Authorization": f"Bearer {token}"})).status_code == 200
    await asyncio.wait_for(gw.stop(), 20)
