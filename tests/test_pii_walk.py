"""The one PII policy (callscribe/pii.py), checked at every exit of the web gateway by walking the app itself.

The routes are enumerated from the running app (``app.routes``), not from a hand list: every HTTP route with
every method, every WebSocket route, each with a token of every role (agent, supervisor, qa, admin, ingest, integration)
and with none. Path parameters get the planted call's id; query parameters and bodies are filled from small
tables (a route needing something the tables do not know fails the walk until it is taught). Each
WebSocket is read to its end or until quiet, then fed live events (a new call of the same agent, an
alert, a callback, a summary) so the live path of every feed is walked as well as its snapshot.

Planted (twice: a gateway storing redacted text, the default, and one with ``redact_stored_text=False``):
a call whose metadata has the caller 13812345678 under ``caller`` and under the alias ``caller_number``
(written 138 1234 5678), a call_flag (callback) and a call_summary with the raw ``caller``, an alert, an
intent, and finals, one holding an ID-card number and another phone number.

Asserted: no role but admin ever receives the caller's number in any form (digits with or without spaces,
dashes, dots); admin does receive it (the walk reaches the data); with raw storage QA never reads the text
PII while the agent on the call and the supervisor do (and with redacted storage nobody does).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Mount, Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from callscribe.config import Config
from callscribe.events import (Alert, CallEnded, CallFlag, CallStarted, CallSummary, IntentUpdate, Quote, ScoreAnswer,
                               ScoreAppeal, Scorecard, Transcript, to_fields)
from callscribe.gateway.web import WebGateway
from callscribe.keyword.redact import redact
from callscribe.stream import EmbeddedRedis, RedisPublisher, keys

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ROLES = ("agent", "supervisor", "qa", "admin", "ingest", "integration")
WHO = (*ROLES, None)  # None: no token
T0 = 1_790_000_000_000
CALL = "c-pii"
AGENT = "a7"
CALLER = "13812345678"
ID_CARD = "110101199003071234"
OTHER_PHONE = "13700001234"
TEXTS = [("customer", f"我的身份证号是{ID_CARD}，电话{OTHER_PHONE}，宽带又断了"), ("agent", "好的，我帮您登记报修"),
         ("customer", f"my ID is {ID_CARD[:6]} {ID_CARD[6:14]} {ID_CARD[14:]}, call me on 137-0000-1234")]


def _any_form(digits: str) -> re.Pattern[str]:
    """The digits with any spacing or punctuation a number is written with between them (138 1234 5678,
    138-1234-5678, 138.1234.5678) but not a mask: 138****5678 does not match."""
    return re.compile(r"[\s\-.()/]*".join(digits))


CALLER_RAW = _any_form(CALLER)
TEXT_PII = {"id card": re.compile(_any_form(ID_CARD).pattern + "|" + re.escape(ID_CARD[6:14])),
            "phone in text": _any_form(OTHER_PHONE)}

# --- how the walk fills what a route asks for -----------------------------------------------------------------------
PATH_FILL = {"call_id": CALL, "ticket_id": f"{CALL}:broadband_repair",  # the ticket the TicketBody walk submits
             "appeal_id": "ap-walk"}  # the appeal _plant files
QUERY_FILL: dict[str, list[str]] = {  # several values: each is walked (search: everything, and words of the PII finals)
    "q": ["", "身份证", "宽带", "call"],
    "agent_id": [AGENT],
    "after": ["0"],
}
BODY_FILL = {"TokenRequest": {"role": "qa", "sub": "walker"},
             "TicketBody": {"type": "broadband_repair", "priority": "high", "fields": {"caller": CALLER}, "summary": ["宽带又断了"]},
             "TelemetryBody": {"call_id": CALL, "card_kind": "scenario", "card_id": "zh.broadband_outage", "action": "shown"},
             "StatusBody": {"status": "in_progress", "note": f"客户说打{OTHER_PHONE}找他", "external_id": "CRM-1"},  # text PII
             # QA scorecards: typed text with PII (the planted scorecard answers greeting yes and closing no)
             "OverrideBody": {"question": "greeting", "answer": False, "reason": f"客户说打{OTHER_PHONE}找他"},
             "AppealBody": {"question": "closing", "comment": f"I asked, he said call {OTHER_PHONE}"},
             "DecisionBody": {"decision": "reject", "reason": f"no, the number {OTHER_PHONE} is not the point"}}
# Routes that carry no call data and are not walked: the static files mount (the page assets). Pages, /health,
# /ready, /openapi.json and /metrics are walked like any other route: cheap, and a leak there would count too.
SKIP = {"/static"}


@dataclass
class Seen:
    """What one role received from one route (every response body, header, message and close reason)."""

    status: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


@dataclass
class Walk:
    raw_text: bool
    routes: set[str]
    seen: dict[tuple[str, str | None], Seen]
    app_routes: list


def _events(call_id: str, raw_text: bool) -> list:
    """The planted call as the pipeline publishes it (finals redacted before storage unless raw storage)."""
    md = {"agent_id": AGENT, "queue": "broadband", "caller": CALLER, "caller_number": "138 1234 5678"}
    out: list = [CallStarted(call_id, ("customer", "agent"), "zh", metadata=md, started_at_ms=T0)]
    for i, (channel, text) in enumerate(TEXTS):
        text = text if raw_text else redact(text)
        seg = f"{call_id}/{channel}/{i}"
        out.append(Transcript(call_id, channel, seg, 0, False, text[:4], i * 3000, i * 3000 + 800, "zh", 0.5))
        out.append(Transcript(call_id, channel, seg, 1, True, text, i * 3000, i * 3000 + 2500, "zh", 0.9,
                              emitted_at_ms=T0 + i * 3000 + 3000, speech_end_at_ms=T0 + i * 3000 + 2500))
    out.append(CallEnded(call_id, len(TEXTS) * 3000, "hangup", finals=len(TEXTS), ended_at_ms=T0 + len(TEXTS) * 3000))
    return out


def _insights(cfg: Config, call_id: str, raw_text: bool, at_ms: int) -> list[tuple[list[str], object]]:
    """(streams, event): an alert quoting the PII final, an intent, a final unresolved flag and a summary,
    both with the raw caller."""
    quote = TEXTS[0][1] if raw_text else redact(TEXTS[0][1])
    alert = Alert(call_id, f"{call_id}/alert/esc", "escalation.complaint", "escalation", "high", "customer", quote, 0, 2500,
                  segment_id=f"{call_id}/customer/0", details={"caller": CALLER}, trigger_at_ms=at_ms, emitted_at_ms=at_ms + 10)
    intent = IntentUpdate(call_id, 1, "broadband_outage", "Broadband outage", 0.8, "other", 0.1, 1)
    flag = CallFlag(call_id, 3, True, True, ("customer_still_unhappy",), (Quote("customer", quote, 0, 2500),),
                    "broadband_outage", CALLER)
    summary = CallSummary(call_id, "broadband_outage", 0.8, ("escalation",), True, ("customer_still_unhappy",),
                          caller=CALLER, agent_id=AGENT, language="zh", started_at_ms=T0, duration_ms=9000, finals=3)
    own = keys.call_stream(cfg, call_id)
    return [([keys.alerts_stream(cfg), own], alert), ([keys.insights_stream(cfg), own], intent),
            ([keys.insights_stream(cfg), keys.callbacks_stream(cfg), own], flag), ([keys.insights_stream(cfg), own], summary)]


async def _plant(cfg: Config, call_id: str, raw_text: bool, at_ms: int = T0 + 3000) -> None:
    pub = RedisPublisher(cfg, cfg.redis_url)
    await pub.start()
    for e in _events(call_id, raw_text):
        await pub.publish(e)
    assert await pub.flush(10)
    await pub.stop()
    r = aioredis.from_url(cfg.redis_url, decode_responses=True)
    for streams, event in _insights(cfg, call_id, raw_text, at_ms):
        for stream in streams:
            await r.xadd(stream, to_fields(event))
    # a QA scorecard whose evidence quotes the PII final, and an open appeal whose comment holds a phone number
    quote = TEXTS[0][1] if raw_text else redact(TEXTS[0][1])
    answers = (ScoreAnswer("greeting", True, 0.9, 10, evidence=Quote("agent", "您好", 3000, 5500)),
               ScoreAnswer("verification", False, 0.8, 20, True, evidence=Quote("customer", quote, 0, 2500)),
               ScoreAnswer("closing", False, 0.8, 10))
    card = Scorecard(call_id, "telecom-standard@1", 0.0, 25.0, ("verification",), answers, agent_id=AGENT, started_at_ms=T0)
    comment = TEXTS[0][1] if raw_text else redact(TEXTS[0][1])
    appeal = ScoreAppeal("ap-walk", call_id, "verification", "open", AGENT, comment, True, AGENT)
    for event in (card, appeal):
        for stream in (keys.scores_stream(cfg), keys.call_stream(cfg, call_id)):
            await r.xadd(stream, to_fields(event))
    await r.aclose()
    # the call's recording (its redacted rendition from these finals), so the replay routes reach their data too
    from .test_recording_replay import plant_recording

    finals = [e for e in _events(call_id, raw_text) if isinstance(e, Transcript) and e.is_final]
    await plant_recording(cfg, call_id, T0, finals)


class Poker:
    """Live events while a WebSocket is open: a new call of the same agent (raw caller in its metadata) with
    an alert, a callback and a summary, and a summary on the planted call's own stream (captions)."""

    def __init__(self, cfg: Config, raw_text: bool) -> None:
        self.cfg, self.raw_text = cfg, raw_text
        self.n = itertools.count(1)

    async def __call__(self) -> None:
        cfg = self.cfg
        call_id = f"c-live-{next(self.n)}"
        r = aioredis.from_url(cfg.redis_url, decode_responses=True)
        started = CallStarted(call_id, ("customer", "agent"), "zh", started_at_ms=T0 + 60_000 * 60,
                              metadata={"agent_id": AGENT, "caller_number": "138-1234-5678", "caller": CALLER})
        for stream in (keys.finals_stream(cfg), keys.call_stream(cfg, call_id)):
            await r.xadd(stream, to_fields(started))
        for streams, event in _insights(cfg, call_id, self.raw_text, T0 + 60_000 * 60):
            for stream in streams:
                await r.xadd(stream, to_fields(event))
        await r.xadd(keys.call_stream(cfg, CALL), to_fields(_insights(cfg, CALL, self.raw_text, T0)[3][1]))
        await r.aclose()


def _routes(app) -> tuple[list[APIRoute], list[APIWebSocketRoute], set[str]]:
    http, ws, skipped = [], [], set()
    for route in app.routes:
        if isinstance(route, Mount) and route.path in SKIP:
            skipped.add(route.path)
        elif isinstance(route, Route):  # an APIRoute, or a plain one (/openapi.json)
            http.append(route)
        elif isinstance(route, APIWebSocketRoute):
            ws.append(route)
        else:  # a kind of route the walk does not know how to call: teach it, do not let it pass unwalked
            raise AssertionError(f"the PII walk cannot call route {route!r}: teach tests/test_pii_walk.py")
    return http, ws, skipped


def _path(route) -> str:
    names = re.findall(r"{(\w+)(?::\w+)?}", route.path)
    missing = [n for n in names if n not in PATH_FILL]
    assert not missing, f"{route.path}: the walk has no value for path parameter(s) {missing}: add them to PATH_FILL"
    return re.sub(r"{(\w+)(?::\w+)?}", lambda m: PATH_FILL[m.group(1)], route.path)


def _queries(route) -> list[dict[str, str]]:
    """Each combination of the fill values of the query parameters the route declares that the walk knows."""
    if not isinstance(route, (APIRoute, APIWebSocketRoute)):
        return [{}]
    names = [p.name for p in route.dependant.query_params if p.name in QUERY_FILL]
    for p in route.dependant.query_params:
        assert p.name in QUERY_FILL or not p.field_info.is_required(), f"{route.path}: add required query parameter {p.name!r} to QUERY_FILL"
    return [dict(zip(names, values)) for values in itertools.product(*(QUERY_FILL[n] for n in names))] or [{}]


def _body(route) -> dict | None:
    if not isinstance(route, APIRoute) or route.body_field is None:
        return None
    model = getattr(route.body_field.field_info.annotation, "__name__", repr(route.body_field.field_info.annotation))
    assert model in BODY_FILL, f"{route.path}: the walk has no body for {model}: add it to BODY_FILL"
    return BODY_FILL[model]


async def _walk(gw: WebGateway, raw_text: bool) -> Walk:
    app = gw._server.config.app
    http, ws_routes, _ = _routes(app)
    tokens = {role: gw.auth.mint(role, f"{role}-1", agent_id=AGENT if role == "agent" else "")[0] for role in ROLES}
    seen: dict[tuple[str, str | None], Seen] = {}
    poke = Poker(gw.cfg, raw_text)
    walked: set[str] = set()

    def record(key: str, who: str | None) -> Seen:
        walked.add(key)
        return seen.setdefault((key, who), Seen())

    async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
        # reads first, then writes (a POST may change what later reads see); admin first on writes
        for method, route in sorted(((m, r) for r in http for m in r.methods - {"HEAD"}), key=lambda mr: (mr[0] != "GET", mr[1].path)):
            for who in (("admin", *[w for w in WHO if w != "admin"]) if method != "GET" else WHO):
                for query in _queries(route):
                    headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
                    resp = await client.request(method, _path(route), params=query, json=_body(route), headers=headers)
                    s = record(f"{method} {route.path}", who)
                    s.status.append(resp.status_code)
                    s.texts += [resp.text, json.dumps(dict(resp.headers), ensure_ascii=False)]
    base = gw.url.replace("http://", "ws://")
    for route in ws_routes:
        for who in WHO:
            for query in _queries(route):
                s = record(f"WS {route.path}", who)
                url = base + _path(route) + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
                protocols = ["callscribe.v1", *([f"bearer.{tokens[who]}"] if who else [])]
                await _read_socket(url, protocols, s, poke)
    return Walk(raw_text, walked, seen, app.routes)


async def _read_socket(url: str, protocols: list[str], s: Seen, poke: Poker) -> None:
    """Every message until the socket closes or goes quiet; live events are fed once the first has come."""
    try:
        async with connect(url, subprotocols=protocols, open_timeout=5) as ws:
            s.status.append(101)
            poked = False
            while True:
                try:
                    msg = await asyncio.wait_for(ws.recv(), 5 if not s.texts else 0.6)
                except TimeoutError:
                    if poked:
                        return
                    await poke()  # a feed that has sent its snapshot now gets live messages too
                    poked = True
                    continue
                s.texts.append(msg if isinstance(msg, str) else msg.decode("utf-8", "replace"))
                if not poked and len(s.texts) == 1:
                    await poke()
                    poked = True
    except ConnectionClosed as exc:
        if exc.rcvd is not None:
            s.status.append(exc.rcvd.code)
            s.texts.append(f"close {exc.rcvd.code} {exc.rcvd.reason}")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=[False, True], ids=["stored-redacted", "stored-raw"])
async def walk(request, tmp_path_factory) -> Walk:
    raw_text = request.param
    tmp = tmp_path_factory.mktemp("pii-raw" if raw_text else "pii")
    server = EmbeddedRedis(tmp / "redis")
    server.start()
    cfg = Config(data_dir=str(tmp), redis_url=server.url, web_port=0, key_prefix="pii", redact_stored_text=not raw_text,
                 board_replay_s=10 * 365 * 86400)
    gw = None
    try:
        await _plant(cfg, CALL, raw_text)
        gw = WebGateway(cfg, server.url)
        await gw.start()
        assert await gw.ingest.drain(10)
        await asyncio.wait_for(gw.board.ready.wait(), 10)
        yield await _walk(gw, raw_text)
    finally:
        if gw is not None:
            await gw.stop()
        server.kill()


def _leaks(pattern: re.Pattern[str], text: str) -> list[str]:
    return [text[max(0, m.start() - 60): m.end() + 60] for m in pattern.finditer(text)]


# --- the walk itself --------------------------------------------------------------------------------------------------
async def test_the_walk_covers_every_route_of_the_app(walk):
    expected = {f"{m} {r.path}" for r in walk.app_routes if isinstance(r, Route) for m in r.methods - {"HEAD"}}
    expected |= {f"WS {r.path}" for r in walk.app_routes if isinstance(r, APIWebSocketRoute)}
    assert walk.routes == expected
    # the data routes of the contract are among them (a walk that lost its app would pass vacuously)
    assert {"GET /api/v1/calls/{call_id}", "GET /api/v1/search", "GET /api/v1/callbacks", "GET /api/v1/alerts",
            "GET /api/v1/calls/live", "GET /api/v1/agents/me/call", "WS /ws/v1/calls/{call_id}/captions",
            "WS /ws/v1/agent", "WS /ws/v1/supervisor"} <= walk.routes
    for route in walk.routes:  # every route was really answered to admin, not refused (writes run admin first)
        status = walk.seen[(route, "admin")].status
        assert status and all(code < 400 for code in status), (route, status)  # 101: the socket opened


# --- numbers --------------------------------------------------------------------------------------------------------
async def test_no_role_but_admin_ever_receives_the_caller_number(walk):
    leaks = {(route, who): _leaks(CALLER_RAW, s.text)[:3] for (route, who), s in walk.seen.items()
             if who != "admin" and CALLER_RAW.search(s.text)}
    assert not leaks, json.dumps({f"{r} as {w or 'no token'}": v for (r, w), v in leaks.items()}, ensure_ascii=False, indent=1)
    # ... while they do get the call, its number masked
    for route, who in (("GET /api/v1/calls/{call_id}", "supervisor"), ("GET /api/v1/calls/{call_id}", "qa"),
                       ("GET /api/v1/callbacks", "supervisor"), ("WS /ws/v1/calls/{call_id}/captions", "agent"),
                       ("WS /ws/v1/supervisor", "supervisor"), ("WS /ws/v1/agent", "agent"), ("GET /api/v1/search", "qa")):
        assert "138****5678" in walk.seen[(route, who)].text, (route, who)


async def test_admin_receives_the_caller_number_so_the_walk_reaches_it(walk):
    admin = {route for (route, who), s in walk.seen.items() if who == "admin" and CALLER_RAW.search(s.text)}
    assert {"GET /api/v1/calls/{call_id}", "GET /api/v1/search", "GET /api/v1/callbacks",
            "WS /ws/v1/calls/{call_id}/captions", "WS /ws/v1/supervisor"} <= admin, admin
    # the alias key reaches the client too (masked for the others, as stored for admin)
    assert "138 1234 5678" in walk.seen[("WS /ws/v1/calls/{call_id}/captions", "admin")].text
    assert "138****5678" in walk.seen[("WS /ws/v1/calls/{call_id}/captions", "supervisor")].text
    # the live path of the supervisor feed was walked, not only its snapshot
    live = walk.seen[("WS /ws/v1/supervisor", "admin")].texts[1:]
    assert any(json.loads(m).get("type") == "callback" and CALLER_RAW.search(m) for m in live), live[:3]


# --- transcript text ---------------------------------------------------------------------------------------------------
async def test_qa_never_reads_raw_transcript_pii(walk):
    readers = {"agent", "supervisor", "admin"} if walk.raw_text else set()  # pii.READS_RAW_TEXT, when stored raw
    for name, pattern in TEXT_PII.items():
        got = {(route, who): _leaks(pattern, s.text)[:2] for (route, who), s in walk.seen.items() if pattern.search(s.text)}
        wrong = {k: v for k, v in got.items() if k[1] not in readers}
        assert not wrong, (name, json.dumps({f"{r} as {w or 'no token'}": v for (r, w), v in wrong.items()}, ensure_ascii=False, indent=1))
        if walk.raw_text:  # the walk reaches the text: those who may read it as stored do
            assert {("WS /ws/v1/calls/{call_id}/captions", "agent"), ("GET /api/v1/calls/{call_id}", "supervisor"),
                    ("GET /api/v1/search", "supervisor"), ("GET /api/v1/calls/{call_id}", "agent")} <= set(got), (name, set(got))
    # QA got the finals themselves, redacted
    qa = walk.seen[("GET /api/v1/calls/{call_id}", "qa")].text + walk.seen[("GET /api/v1/search", "qa")].text
    assert "[NUMBER]" in qa and "[PHONE]" in qa and "宽带又断了" in qa
