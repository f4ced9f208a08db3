"""Schemathesis against the running web gateway: every operation of its own /openapi.json, generated valid
(positive) and invalid (negative) requests, each sent with a token of every role (agent, supervisor, qa,
admin, ingest) and with none; the gateway runs on a real embedded Redis with a real call published, and the
{call_id} routes are also driven with that call's id. No answer may be a 5xx (schemathesis's
``not_a_server_error``). The 500s found are pinned as plain asserts at the end.

Bounded (EXAMPLES per operation and mode) and derandomized (Hypothesis ``derandomize=True``, no example
database) so CI sends the same requests on every run; about 20 s here."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from callscribe.config import Config
from callscribe.events import (Alert, CallEnded, CallFlag, CallStarted, Quote, ScoreAnswer, ScoreAppeal, Scorecard, Ticket,
                               Transcript, to_fields)
from callscribe.gateway.assist import submit_ticket
from callscribe.gateway.web import WebGateway
from callscribe.stream import EmbeddedRedis, RedisPublisher, keys

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ROLES = ("agent", "supervisor", "qa", "admin", "ingest")
WHO = (*ROLES, None)  # None: no token
T0 = 1_790_000_000_000
# per operation and generation mode; each example is sent once per role and once without a token. 15 keeps the
# suite inside its CI budget as routes are added (about 60 operations); CALLSCRIBE_FUZZ_EXAMPLES=100 for a deep run
EXAMPLES = int(os.environ.get("CALLSCRIBE_FUZZ_EXAMPLES", "15"))
FIXED_CALL_ID = "c-fuzz"  # a real call, so routes with {call_id} also reach their data
REACH = {"/api/v1/search": {"query": {"q": "投诉"}}, "/api/v1/tokens": {"body": {"role": "qa", "sub": "fuzz-minted"}},
         "/api/v1/assist/events": {"body": {"call_id": FIXED_CALL_ID, "card_kind": "offer", "card_id": "o1", "action": "used"}},
         "/api/v1/tickets/{ticket_id}/status": {"path_parameters": {"ticket_id": f"{FIXED_CALL_ID}:broadband_repair"},
                                                "body": {"status": "resolved", "note": "fixed"}},
         # QA scorecards: the planted scorecard answers greeting yes and closing no; ap-fuzz is an open appeal
         "/api/v1/calls/{call_id}/scorecard/overrides": {"path_parameters": {"call_id": FIXED_CALL_ID},
                                                         "body": {"question": "greeting", "answer": False, "reason": "fuzz"}},
         "/api/v1/calls/{call_id}/scorecard/appeals": {"path_parameters": {"call_id": FIXED_CALL_ID},
                                                       "body": {"question": "closing", "comment": "fuzz"}},
         "/api/v1/appeals/{appeal_id}/decision": {"path_parameters": {"appeal_id": "ap-fuzz"},
                                                  "body": {"decision": "reject", "reason": "fuzz"}}}


async def _publish(cfg: Config, events) -> None:
    pub = RedisPublisher(cfg, cfg.redis_url)
    await pub.start()
    for e in events:
        await pub.publish(e)
    assert await pub.flush(10)
    await pub.stop()


def _call(call_id: str, agent: str) -> list:
    started = CallStarted(call_id, ("customer", "agent"), "zh", metadata={"agent_id": agent, "queue": "billing",
                                                                          "caller": "13812345678"}, started_at_ms=T0)
    texts = ["我要投诉你们的宽带", "好的，我帮您查一下", "call me back on 13900001111"]
    finals = [Transcript(call_id, "customer" if i % 2 == 0 else "agent", f"{call_id}/x/{i}", 1, True, t, i * 3000,
                         i * 3000 + 2500, "zh", 0.9, emitted_at_ms=T0 + i * 3000 + 3000) for i, t in enumerate(texts)]
    return [started, *finals, CallEnded(call_id, 9000, "hangup", finals=3, ended_at_ms=T0 + 9000)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    server = EmbeddedRedis(tmp / "redis")
    server.start()
    cfg = Config(data_dir=str(tmp), redis_url=server.url, web_port=0, key_prefix="fuzz", board_replay_s=10 * 365 * 86400)
    await _publish(cfg, _call(FIXED_CALL_ID, "a7"))
    r = aioredis.from_url(server.url, decode_responses=True)
    alert = Alert(FIXED_CALL_ID, f"{FIXED_CALL_ID}/alert/esc", "escalation.complaint", "escalation", "high", "customer",
                  "我要投诉", 0, 2500, trigger_at_ms=T0 + 3000)
    flag = CallFlag(FIXED_CALL_ID, 3, True, True, ("customer_still_unhappy",), (Quote("customer", "我要投诉", 0, 900),),
                    "broadband_outage", "13812345678")
    await r.xadd(keys.alerts_stream(cfg), to_fields(alert))
    await r.xadd(keys.insights_stream(cfg), to_fields(flag))
    await r.xadd(keys.callbacks_stream(cfg), to_fields(flag))
    # a submitted ticket, so the ticketing system's status route reaches its data too
    await submit_ticket(r, cfg, Ticket(f"{FIXED_CALL_ID}:broadband_repair", FIXED_CALL_ID, "broadband_repair", "high"))
    # a QA scorecard and an open appeal of it, so the scorecard routes reach their data
    answers = (ScoreAnswer("greeting", True, 0.9, 10, evidence=Quote("agent", "您好", 3000, 5500)),
               ScoreAnswer("verification", None, 0.7, 20, True), ScoreAnswer("closing", False, 0.8, 10))
    await r.xadd(keys.scores_stream(cfg), to_fields(Scorecard(FIXED_CALL_ID, "telecom-standard@1", 50.0, 50.0, (), answers,
                                                              agent_id="a7", started_at_ms=T0)))
    await r.xadd(keys.scores_stream(cfg), to_fields(ScoreAppeal("ap-fuzz", FIXED_CALL_ID, "greeting", "open", "a7", "fuzz", False)))
    await r.aclose()
    # the call's recording, so the replay routes reach their data
    from .test_recording_replay import plant_recording

    await plant_recording(cfg, FIXED_CALL_ID, T0, [e for e in _call(FIXED_CALL_ID, "a7") if isinstance(e, Transcript)])
    gw = WebGateway(cfg, server.url)
    await gw.start()
    assert await gw.ingest.drain(10)
    await asyncio.wait_for(gw.board.ready.wait(), 10)
    try:
        yield gw
    finally:
        await gw.stop()
        server.kill()


def _headers(gw: WebGateway) -> dict[str | None, dict[str, str]]:
    tokens = {role: gw.auth.mint(role, f"fuzz-{role}", agent_id="a7" if role == "agent" else "")[0] for role in ROLES}
    return {who: ({"Authorization": f"Bearer {tokens[who]}"} if who else {}) for who in WHO}


def _fuzz_operation(operation, base_url: str, headers: dict, statuses: dict[int, int]) -> tuple[int, list[str]]:
    """Run one operation's bounded Hypothesis search; returns (requests sent, failures seen)."""
    strategies = [operation.as_strategy(generation_mode=mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    if "{call_id}" in operation.path:
        strategies.append(operation.as_strategy(path_parameters={"call_id": FIXED_CALL_ID}))
    if operation.path in REACH:  # inputs that get past validation, so the handler's own code runs too
        strategies.append(operation.as_strategy(**REACH[operation.path]))
    sent = 0
    session = requests.Session()
    failures: list[str] = []

    @settings(max_examples=EXAMPLES * len(strategies), deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=st.one_of(strategies))
    def run(case) -> None:
        nonlocal sent
        for who in WHO:
            # The request as schemathesis serializes it, with this role's token put back: negative cases may
            # have dropped the Authorization header, and every role must reach the handler with every input.
            kwargs = case.as_transport_kwargs(base_url=base_url)
            kwargs["headers"] = {k: v for k, v in kwargs["headers"].items() if k.lower() != "authorization"} | headers[who]
            response = session.request(**kwargs, timeout=20, allow_redirects=False)
            sent += 1
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            try:  # collected, not raised: one run reports every 5xx, not only the first
                case.validate_response(response, checks=[not_a_server_error], headers=kwargs["headers"])
            except Exception as exc:  # schemathesis raises its FailureGroup (an AssertionError)
                failures.append(f"{who or 'no token'}: {case.method} {kwargs['url']} params={kwargs.get('params')!r} "
                                f"body={case.body!r} -> {response.status_code} {response.text[:200]} ({type(exc).__name__})")

    run()
    return sent, failures


async def test_no_route_answers_a_5xx_to_any_role(gateway):
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        raw = (await client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(raw)
    headers = _headers(gateway)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/v1/search", "/api/v1/calls/{call_id}", "/api/v1/tokens"}
    statuses: dict[str, dict[int, int]] = {}
    t0 = time.perf_counter()

    def fuzz_all() -> tuple[int, list[str]]:
        total, failures = 0, []
        for op in operations:
            n, f = _fuzz_operation(op, gateway.url, headers, statuses.setdefault(f"{op.method.upper()} {op.path}", {}))
            total += n
            failures += f
        return total, failures

    total, failures = await asyncio.to_thread(fuzz_all)
    print(f"schemathesis: {len(operations)} operations, {total} requests in {time.perf_counter() - t0:.1f} s")
    assert not failures, "\n".join(failures[:20])
    # the fuzz got past auth and validation: every operation answered some request 200
    for op, seen in statuses.items():
        assert 200 in seen, (op, seen)


# --- 500s found, pinned -------------------------------------------------------------------------------------------
async def test_a_token_minted_for_an_unencodable_subject_is_refused(gateway):
    """Found by hand while fuzzing: POST /api/v1/tokens took a JSON ``"\\ud800"`` (a lone surrogate) as ``sub`` or
    ``agent_id``; the holder of that token then got HTTP 500 from /api/v1/me (the answer cannot be UTF-8)
    and from POST /api/v1/callbacks/{id}/done (the audit entry cannot be written to Redis)."""
    admin = {"Authorization": f"Bearer {gateway.auth.mint('admin', 'root')[0]}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for body in ('{"role": "qa", "sub": "\\ud800"}', '{"role": "supervisor", "sub": "\\udc80x"}',
                     '{"role": "agent", "sub": "x", "agent_id": "\\udfff"}', '{"role": "qa", "sub": "a\\nb"}',
                     '{"role": "qa", "sub": "\\u0000"}'):
            resp = await client.post("/api/v1/tokens", content=body, headers=admin)
            assert resp.status_code == 400 and "printable" in resp.json()["detail"], (body, resp.status_code, resp.text)
        ok = await client.post("/api/v1/tokens", json={"role": "agent", "sub": "Zoë Wang 王", "agent_id": "a-7"}, headers=admin)
        assert ok.status_code == 200
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {ok.json()['token']}"})
        assert me.json()["sub"] == "Zoë Wang 王"
