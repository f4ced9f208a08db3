"""Agent assist live (keyword/worker.py + gateway/assist + gateway/web): a real Redis, the real analytics worker and
the real web gateway; dialogue finals published through the real publisher as they would arrive (no ASR).

Shown: the scenario card reaches the assist stream and the call's stream within 1 s of the final that fixed the
intent; steps tick; a verification prompt; an offer only after resolution and never in an escalation; the
unresolved call's ticket draft at its end; the agent's draft on a click; a submitted ticket in the tickets stream,
the store, QA search, call detail, the callback queue and the webhook stream, once; the caller's earlier call in
the history of a second call from the same number (HTTP and the agent feed), the number masked for every role
but admin; the ticketing system reporting the ticket's status back (signed as our webhooks, or with an integration
token; badly signed refused, repeats and older changes written nowhere) and the history, QA's call detail and the
callback queue showing it; card telemetry and the adoption report.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from callscribe.config import Config
from callscribe.events import (KnowledgeCard, Offer, ScenarioCard, StepDone, StepPrompt, Ticket, TicketDraft, TicketStatus,
                               Transcript, from_fields, now_ms)
from callscribe.gateway.web import WebGateway
from callscribe.gateway.webhooks import load_secret, signature_header
from callscribe.keyword.dialogue import read_dialogue, to_events
from callscribe.keyword.worker import AnalyticsWorker
from callscribe.stream import EmbeddedRedis, RedisPublisher, keys

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

DIALOGUES = Path(__file__).parent / "data" / "dialogues"
CALLER = "13800138000"
MASKED = "138****8000"
AGENT = "a7"
DAY = 86_400_000
HISTORY_DAYS = 20  # not the default 30: the gateway must use the setting (the calls below are 2 days old)
CARDS = (ScenarioCard, StepDone, StepPrompt, KnowledgeCard, Offer, TicketDraft)


class Env:
    def __init__(self, cfg: Config, gw: WebGateway, worker: AnalyticsWorker) -> None:
        self.cfg, self.gw, self.worker = cfg, gw, worker
        self.r = aioredis.from_url(cfg.redis_url, decode_responses=True)
        self.tokens = {role: gw.auth.mint(role, f"{role}-1", agent_id=AGENT if role == "agent" else "")[0]
                       for role in ("agent", "supervisor", "qa", "admin")}
        self.tokens["other_agent"] = gw.auth.mint("agent", "a8")[0]
        self.published: dict[str, dict[str, str]] = {}  # call_id -> segment_id -> finals-stream entry id

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.gw.url, timeout=20)

    async def publish(self, name: str, call_id: str, started_at_ms: int, caller: str = CALLER, end: bool = True,
                      gap_s: float = 0.03) -> None:
        """A dialogue as a live call: its finals one by one, each stamped with its real emit time."""
        started, finals, ended = to_events(read_dialogue(DIALOGUES / f"{name}.txt"), started_at_ms)
        started = replace(started, call_id=call_id, metadata={"caller": caller, "agent_id": AGENT, "queue": "care"})
        pub = RedisPublisher(self.cfg, self.cfg.redis_url)
        await pub.start()
        await pub.publish(started)
        for t in finals:
            seg = t.segment_id.replace(f"{t.call_id}/", f"{call_id}/", 1)
            await pub.publish(replace(t, call_id=call_id, segment_id=seg, emitted_at_ms=now_ms()))
            await asyncio.sleep(gap_s)
        if end:
            await pub.publish(replace(ended, call_id=call_id))
        assert await pub.flush(10)
        await pub.stop()

    async def cards(self, call_id: str) -> list[tuple[str, object]]:
        """(entry id, card) of the call's assist cards, from its own stream."""
        out = []
        for entry_id, fields in await self.r.xrange(keys.call_stream(self.cfg, call_id)):
            e = from_fields(fields)
            if isinstance(e, CARDS):
                out.append((entry_id, e))
        return out

    async def settle(self) -> None:
        assert await self.worker.drain(20)
        assert await self.gw.ingest.drain(20)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("assist")
    server = EmbeddedRedis(tmp / "redis")
    server.start()
    cfg = Config(data_dir=str(tmp), redis_url=server.url, web_port=0, key_prefix="as", surge_min_calls=10_000,
                 board_replay_s=10 * 365 * 86400, assist_history_days=HISTORY_DAYS)
    worker = AnalyticsWorker(cfg, server.url, consumer="w-1")
    await worker.start()
    gw = WebGateway(cfg, server.url)
    await gw.start()
    await asyncio.wait_for(gw.board.ready.wait(), 10)
    e = Env(cfg, gw, worker)
    t0 = now_ms() - 2 * DAY
    # three calls two days ago (the later one of the same number is the repeat caller below)
    await e.publish("zh_003", "as-offer", t0, caller="13900000003")    # data add-on, resolved: an offer after it
    await e.publish("zh_005", "as-verify", t0 + 60_000, caller="13900000005")  # roaming switched on before verification
    await e.publish("en_002", "as-esc", t0 + 120_000)                  # charged twice, escalates, left pending
    await e.settle()
    yield e
    await e.r.aclose()
    await gw.stop()
    await worker.stop()
    server.kill()


# --- the live cards ---------------------------------------------------------------------------------------------
async def test_scenario_card_within_one_second_of_the_final_that_fixed_the_intent(env):
    for call_id in ("as-offer", "as-verify", "as-esc"):
        cards = await env.cards(call_id)
        entry_id, card = next((i, c) for i, c in cards if isinstance(c, ScenarioCard))
        assert card.seq == 0 and card.steps and card.lines and card.trigger_at_ms
        latency = card.emitted_at_ms - card.trigger_at_ms
        # the same through Redis's clock: the trigger final appended -> the card appended
        trigger = None
        for fid, fields in await env.r.xrange(keys.finals_stream(env.cfg)):
            t = from_fields(fields)
            if isinstance(t, Transcript) and t.call_id == call_id and t.emitted_at_ms == card.trigger_at_ms:
                trigger = fid
        assert trigger is not None
        redis_latency = int(entry_id.split("-")[0]) - int(trigger.split("-")[0])
        print(f"{call_id}: {card.scenario} after {card.finals} finals, final-to-card {latency} ms (Redis clock {redis_latency} ms)")
        assert 0 <= latency < 1000 and 0 <= redis_latency < 1000
        # the assist stream has the same card, once (write-once identity {call_id}/assist/scenario/0)
        everywhere = [from_fields(f) for _, f in await env.r.xrange(keys.assist_stream(env.cfg))]
        assert sum(1 for c in everywhere if isinstance(c, ScenarioCard) and c.call_id == call_id) == len(
            [c for _, c in cards if isinstance(c, ScenarioCard)])
    assert await env.r.exists(keys.output_marker(env.cfg, "as-offer/assist/scenario/0"))
    assert env.worker.stats.assist_errors == 0


async def test_steps_tick_and_a_verification_prompt(env):
    offer = [c for _, c in await env.cards("as-offer")]
    done = [c.step for c in offer if isinstance(c, StepDone)]
    assert {"check_usage", "verify_identity", "confirm_result"} <= set(done), done
    verify = [c for _, c in await env.cards("as-verify")]
    prompt = next(c for c in verify if isinstance(c, StepPrompt))
    assert (prompt.step, prompt.reason) == ("verify_identity", "before:enable_roaming") and prompt.line
    # the prompt came with the step done out of order, on the same final
    enabled = next(c for c in verify if isinstance(c, StepDone) and c.step == "enable_roaming")
    assert prompt.segment_id == enabled.segment_id


async def test_offer_only_after_resolution_and_never_in_an_escalation(env):
    cards = [c for _, c in await env.cards("as-offer")]
    made = [c for c in cards if isinstance(c, Offer) and c.status == "made"]
    assert len(made) == 1 and made[0].line and made[0].moment == "after_resolution"
    resolved = next(c for c in cards if isinstance(c, StepDone) and c.by == "signal:resolved")
    segs = [c.segment_id for c in cards if isinstance(c, (StepDone, Offer)) and c.segment_id]
    order = {s: int(s.rsplit("/", 1)[1]) * 2 + (s.split("/")[1] == "customer") for s in segs}
    assert order[made[0].segment_id] > order[resolved.segment_id]  # a later turn than the resolution
    esc = [c for _, c in await env.cards("as-esc")]
    offers = [c for c in esc if isinstance(c, Offer)]
    assert offers and all(o.status == "suppressed" and o.reason == "escalation" and not o.line for o in offers)


async def test_unresolved_call_gets_its_ticket_draft_at_the_end(env):
    drafts = [c for _, c in await env.cards("as-esc") if isinstance(c, TicketDraft)]
    assert len(drafts) == 1
    d = drafts[0]
    assert d.trigger == "unresolved" and d.ticket_type and d.priority in ("high", "urgent") and d.summary
    assert d.caller == MASKED  # the draft never holds the raw number
    assert not [c for _, c in await env.cards("as-offer") if isinstance(c, TicketDraft)]  # resolved: none


# --- tickets ----------------------------------------------------------------------------------------------------
async def test_agent_asks_for_a_draft_and_submits_the_edited_ticket(env):
    async with env.client() as client:
        resp = await client.post("/api/v1/calls/as-esc/ticket/draft", headers=env.headers("agent"))
        assert resp.status_code == 200, resp.text
        got = resp.json()
        assert got["draft"]["type"] == "assist_ticket" and got["draft"]["trigger"] == "agent"
        assert got["draft"]["caller"] == MASKED
        # each field's label in both page languages rides on the draft (the desk needs no pack)
        assert got["draft"]["labels"]["disputed_amount"] == {"zh": "争议金额", "en": "Disputed amount"}
        body = got["submit"]
        assert body["ticket_id"] == f"as-esc:{body['type']}"
        assert (await client.post("/api/v1/calls/as-esc/ticket/draft", headers=env.headers("other_agent"))).status_code == 404
        body["fields"]["disputed_amount"] = "85 dollars, call me on 13800138000"
        body["summary"] = body["summary"] + ["Agent: refund promised within 7 days"]
        resp = await client.post("/api/v1/calls/as-esc/tickets", json=body, headers=env.headers("agent"))
        assert resp.status_code == 200, resp.text
        first = resp.json()
        assert first["created"] is True and first["ticket"]["status"] == "open"
        assert first["ticket"]["caller"] == MASKED and CALLER not in json.dumps(first)  # typed number redacted too
        again = (await client.post("/api/v1/calls/as-esc/tickets", json=body, headers=env.headers("agent"))).json()
        assert again["created"] is False and again["webhook_delivery"] == first["webhook_delivery"]
        # bad bodies: unknown priority, unknown key, lone surrogate; another agent's call
        for bad in ({**body, "priority": "asap"}, {**body, "extra": 1}, {**body, "title": "\ud800"}):
            resp = await client.post("/api/v1/calls/as-esc/tickets", content=json.dumps(bad),  # \ud800 escaped
                                     headers={**env.headers("agent"), "Content-Type": "application/json"})
            assert resp.status_code == 422, resp.text
        assert (await client.post("/api/v1/calls/as-esc/tickets", json=body, headers=env.headers("other_agent"))).status_code == 404
    tickets = [from_fields(f) for _, f in await env.r.xrange(keys.tickets_stream(env.cfg))]
    assert len(tickets) == 1 and isinstance(tickets[0], Ticket)
    t = tickets[0]
    assert (t.ticket_id, t.call_id, t.agent_id, t.by, t.caller) == (body["ticket_id"], "as-esc", AGENT, "agent-1", CALLER)
    assert [c for c in (from_fields(f) for _, f in await env.r.xrange(keys.call_stream(env.cfg, "as-esc")))
            if isinstance(c, Ticket)] == tickets  # the desk following the call sees it
    hooks = [f for _, f in await env.r.xrange(keys.webhooks_stream(env.cfg))]
    assert len(hooks) == 1 and hooks[0]["kind"] == "ticket" and hooks[0]["key"] == t.ticket_id
    assert CALLER not in hooks[0]["payload"] and MASKED in hooks[0]["payload"]
    await env.settle()
    await asyncio.sleep(0.3)  # the board reads the tickets stream with XREAD (1 s blocks)
    async with env.client() as client:
        # the store, as QA search and call detail show it
        page = (await client.get("/api/v1/search", params={"q": "charged"}, headers=env.headers("qa"))).json()
        hit = next(h for h in page["hits"] if h["call_id"] == "as-esc")
        assert [x["ticket_id"] for x in hit["call"]["tickets"]] == [t.ticket_id]
        assert hit["call"]["tickets"][0]["caller"] == MASKED
        detail = (await client.get("/api/v1/calls/as-esc", headers=env.headers("qa"))).json()
        assert detail["call"]["tickets"][0]["priority"] == body["priority"]
        # the supervisor's callback queue: the unresolved call, with its ticket
        for _ in range(30):
            queue = (await client.get("/api/v1/callbacks", headers=env.headers("supervisor"))).json()["callbacks"]
            entry = next((c for c in queue if c["call_id"] == "as-esc"), None)
            if entry and entry.get("tickets"):
                break
            await asyncio.sleep(0.1)
        assert entry is not None and [x["ticket_id"] for x in entry["tickets"]] == [t.ticket_id]
        assert entry["caller"] == MASKED and entry["tickets"][0]["caller"] == MASKED and CALLER not in json.dumps(queue)


# --- caller history ---------------------------------------------------------------------------------------------
async def test_second_call_from_the_same_number_shows_the_first_in_its_history(env):
    await env.publish("zh_008", "as-repeat", now_ms() - 60_000, end=False)
    await env.settle()
    async with env.client() as client:
        # the agent desk's feed: the current call, then its caller's history
        async with connect(env.gw.url.replace("http://", "ws://") + "/ws/v1/agent",
                           subprotocols=["callscribe.v1", f"bearer.{env.tokens['agent']}"]) as ws:
            msgs = []
            while not any(m["type"] == "caller_history" for m in msgs):
                msgs.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        assert msgs[0]["type"] == "current_call" and msgs[0]["call"]["call_id"] == "as-repeat"
        pushed = next(m for m in msgs if m["type"] == "caller_history")
        got = {}
        for who in ("agent", "supervisor", "admin"):
            resp = await client.get("/api/v1/calls/as-repeat/history", headers=env.headers(who))
            assert resp.status_code == 200, resp.text
            got[who] = resp.json()
        assert (await client.get("/api/v1/calls/as-repeat/history", headers=env.headers("qa"))).status_code == 403
        assert (await client.get("/api/v1/calls/as-repeat/history", headers=env.headers("other_agent"))).status_code == 404
    h = got["agent"]
    assert pushed["calls"] == h["calls"] and pushed["call_id"] == "as-repeat"
    assert h["window_days"] == pushed["window_days"] == HISTORY_DAYS
    first = next(c for c in h["calls"] if c["call_id"] == "as-esc")
    assert first["resolved"] is False and "escalation" in first["alerts"] and first["intent"]
    assert [(t["status"], t["type"]) for t in first["tickets"]] == [("open", first["tickets"][0]["type"])]
    assert h["last"]["call_id"] == "as-esc" and h["last"]["reasons"] and h["last"]["open_tickets"]
    assert h["last"]["quotes"] and all(q["text"] for q in h["last"]["quotes"])
    assert h["banner"]["previous_calls"] == 1 and h["banner"]["last_unresolved"] is True
    assert all(c["call_id"] not in ("as-offer", "as-verify", "as-repeat") for c in h["calls"])  # other numbers, itself
    for who in ("agent", "supervisor"):
        assert got[who]["caller"] == MASKED and CALLER not in json.dumps(got[who]), who
    assert CALLER not in json.dumps(pushed)
    assert got["admin"]["caller"] == CALLER


# --- ticket status back from the ticketing system ------------------------------------------------------------------
def _signed(body: dict, secret: bytes, ts: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The request a CRM sends: the raw JSON body and its signature headers (docs/webhooks.md)."""
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    ts = int(time.time()) if ts is None else ts
    return raw, {"Content-Type": "application/json", "X-Callscribe-Timestamp": str(ts),
                 "X-Callscribe-Signature": signature_header(secret, ts, raw)}


async def test_the_crm_reports_ticket_status_back_and_the_history_and_qa_show_it(env):
    secret = load_secret(env.cfg)  # the gateway's webhook_secret (here generated into data_dir)
    tickets = [from_fields(f) for _, f in await env.r.xrange(keys.tickets_stream(env.cfg))]
    tid = next(t.ticket_id for t in tickets if isinstance(t, Ticket) and t.call_id == "as-esc")
    url = f"/api/v1/tickets/{tid}/status"
    update = {"status": "in_progress", "note": "Engineer booked for Tuesday", "external_id": "CRM-4711"}
    integration = env.gw.auth.mint("integration", "crm")[0]
    async with env.client() as client:
        # badly signed: another secret, a body changed after signing, a replayed old request, no timestamp
        raw, headers = _signed(update, b"not-the-secret-0123456789abcdef0123")
        assert (await client.post(url, content=raw, headers=headers)).status_code == 401
        raw, headers = _signed(update, secret)
        tampered = raw.replace(b"in_progress", b"closed")  # still valid JSON: refused for its signature
        assert (await client.post(url, content=tampered, headers=headers)).status_code == 401
        raw, headers = _signed(update, secret, ts=int(time.time()) - 3600)
        assert (await client.post(url, content=raw, headers=headers)).status_code == 401
        raw, headers = _signed(update, secret)
        no_ts = {k: v for k, v in headers.items() if k != "X-Callscribe-Timestamp"}
        assert (await client.post(url, content=raw, headers=no_ts)).status_code == 401
        # a signature is judged alone: a valid token beside a bad signature does not help
        raw, headers = _signed(update, b"not-the-secret-0123456789abcdef0123")
        resp = await client.post(url, content=raw, headers={**headers, "Authorization": f"Bearer {integration}"})
        assert resp.status_code == 401 and "signature" in resp.json()["detail"]
        # neither signed nor a token; a token of a role that may not
        assert (await client.post(url, json=update)).status_code == 401
        assert (await client.post(url, json=update, headers=env.headers("agent"))).status_code == 403
        # correctly signed: unknown ticket 404, bad body 422, then the change, once
        raw, headers = _signed(update, secret)
        assert (await client.post("/api/v1/tickets/as-esc:nope/status", content=raw, headers=headers)).status_code == 404
        bad, bad_headers = _signed({**update, "status": "done"}, secret)
        assert (await client.post(url, content=bad, headers=bad_headers)).status_code == 422
        resp = await client.post(url, content=raw, headers=headers)
        assert resp.status_code == 200, resp.text
        first = resp.json()
        assert (first["ticket_id"], first["status"], first["result"]) == (tid, "in_progress", "changed")
        # the CRM retries (freshly signed, same content): nothing more is written
        raw, headers = _signed(update, secret)
        assert (await client.post(url, content=raw, headers=headers)).json()["result"] == "unchanged"
        # resolved, by an integration token; then a late retry of an older change is refused as stale
        later = {"status": "resolved", "note": "Line repaired, customer confirmed", "changed_at_ms": first["changed_at_ms"] + 60_000}
        resp = await client.post(url, json=later, headers={"Authorization": f"Bearer {integration}"})
        assert resp.json()["result"] == "changed", resp.text
        old = {"status": "in_progress", "changed_at_ms": first["changed_at_ms"] + 1}
        raw, headers = _signed(old, secret)
        assert (await client.post(url, content=raw, headers=headers)).json()["result"] == "stale"
    reports = [e for e in (from_fields(f) for _, f in await env.r.xrange(keys.tickets_stream(env.cfg)))
               if isinstance(e, TicketStatus)]
    assert [(e.status, e.by, e.external_id) for e in reports] == [
        ("in_progress", "signature", "CRM-4711"), ("resolved", "integration:crm", "")]
    on_call = [e for e in (from_fields(f) for _, f in await env.r.xrange(keys.call_stream(env.cfg, "as-esc")))
               if isinstance(e, TicketStatus)]
    assert on_call == reports  # a desk following the call sees them
    await env.settle()
    stored = env.gw.store.ticket(tid)
    assert (stored.status, stored.status_note, stored.external_id) == ("resolved", "Line repaired, customer confirmed", "CRM-4711")
    async with env.client() as client:
        # the caller's history on the agent desk: the earlier call's ticket and its status, nothing left open
        h = (await client.get("/api/v1/calls/as-repeat/history", headers=env.headers("agent"))).json()
        first_call = next(c for c in h["calls"] if c["call_id"] == "as-esc")
        t = first_call["tickets"][0]
        assert (t["status"], t["status_note"], t["external_id"]) == ("resolved", "Line repaired, customer confirmed", "CRM-4711")
        assert h["last"]["open_tickets"] == [] and h["banner"]["open_tickets"] == 0
        # QA's call detail: the status, its note, the CRM's id and each field's label in both languages
        detail = (await client.get("/api/v1/calls/as-esc", headers=env.headers("qa"))).json()
        qt = detail["call"]["tickets"][0]
        assert (qt["status"], qt["status_note"], qt["external_id"]) == ("resolved", "Line repaired, customer confirmed", "CRM-4711")
        assert qt["labels"]["disputed_amount"] == {"zh": "争议金额", "en": "Disputed amount"} and set(qt["labels"]) <= set(qt["fields"])
        # the supervisor's callback queue follows it too
        for _ in range(30):
            queue = (await client.get("/api/v1/callbacks", headers=env.headers("supervisor"))).json()["callbacks"]
            entry = next(c for c in queue if c["call_id"] == "as-esc")
            if entry["tickets"][0]["status"] == "resolved":
                break
            await asyncio.sleep(0.1)
        assert entry["tickets"][0]["status"] == "resolved" and entry["tickets"][0]["external_id"] == "CRM-4711"


# --- telemetry ----------------------------------------------------------------------------------------------------
async def test_card_telemetry_and_the_adoption_report(env):
    events = [("as-offer", "scenario", "zh.data_plan", "shown"), ("as-offer", "scenario", "zh.data_plan", "used"),
              ("as-offer", "offer", "offer.zh.data_addon", "shown"), ("as-offer", "offer", "offer.zh.data_addon", "dismissed"),
              ("as-verify", "scenario", "zh.roaming", "shown"), ("as-verify", "step_prompt", "verify_identity", "shown"),
              ("as-verify", "step_prompt", "verify_identity", "clicked"), ("as-verify", "step_prompt", "verify_identity", "used"),
              ("as-verify", "scenario", "zh.roaming", "shown")]  # shown twice: counts once
    async with env.client() as client:
        for call_id, kind, card, action in events:
            resp = await client.post("/api/v1/assist/events", headers=env.headers("agent"),
                                     json={"call_id": call_id, "card_kind": kind, "card_id": card, "action": action})
            assert resp.status_code == 200, resp.text
        bad = {"call_id": "as-offer", "card_kind": "scenario", "card_id": "x", "action": "liked"}
        assert (await client.post("/api/v1/assist/events", json=bad, headers=env.headers("agent"))).status_code == 422
        other = {"call_id": "as-offer", "card_kind": "scenario", "card_id": "x", "action": "shown"}
        assert (await client.post("/api/v1/assist/events", json=other, headers=env.headers("other_agent"))).status_code == 404
        assert (await client.post("/api/v1/assist/events", json=other, headers=env.headers("supervisor"))).status_code == 403
        assert await env.r.xlen(keys.assist_telemetry_stream(env.cfg)) == len(events)
        await env.settle()
        report = (await client.get("/api/v1/reports/assist_adoption", headers=env.headers("supervisor"))).json()
        assert (await client.get("/api/v1/reports/assist_adoption", headers=env.headers("agent"))).status_code == 403
    cards = {(c["card_kind"], c["card_id"]): c for c in report["cards"]}
    assert cards[("scenario", "zh.data_plan")]["adoption"] == 1.0
    assert cards[("scenario", "zh.roaming")]["shown"] == 1 and cards[("scenario", "zh.roaming")]["adoption"] == 0.0
    assert cards[("offer", "offer.zh.data_addon")]["dismissed"] == 1
    assert cards[("step_prompt", "verify_identity")]["click_rate"] == 1.0
    agent = next(a for a in report["agents"] if a["agent_id"] == AGENT)
    assert (agent["shown"], agent["used"], agent["adoption"]) == (4, 2, 0.5)


# --- the new events ---------------------------------------------------------------------------------------------
async def test_ticket_and_telemetry_events_round_trip_in_schema_v1():
    from callscribe.events import SCHEMA_VERSION, AssistTelemetry, from_json, to_dict, to_fields, to_json

    t = Ticket("c-1:repair", "c-1", "broadband_repair", "high", ("宽带又断了", "line 2"), {"caller": "138****8000", "addr": "x"},
               title="宽带报修", subtype="follow_up", intent="broadband_outage", caller=CALLER, agent_id=AGENT, by="agent-1")
    a = AssistTelemetry("c-1", "offer", "offer.zh.data_addon", "used", AGENT)
    for e in (t, a):
        assert from_fields(to_fields(e)) == e and from_json(to_json(e)) == e
        assert to_dict(e)["v"] == SCHEMA_VERSION == 1
    d = to_dict(t)
    assert (d["type"], d["ticket_type"], d["summary"], d["status"]) == ("ticket", "broadband_repair", ["宽带又断了", "line 2"], "open")
    # an entry of an older writer (no status, no fields) still reads, with the defaults
    old = {k: v for k, v in to_fields(t).items() if k not in ("status", "fields", "title")}
    assert from_fields(old) == replace(t, status="open", fields={}, title="")


# --- the worker's delivery contract holds for the cards ---------------------------------------------------------
class Crash(BaseException):
    """The worker process dying: nothing in the worker catches it."""


async def _cards_after(env, prefix: str, crash_at: int | None) -> list[tuple[str, str]]:
    cfg = env.cfg.replace(key_prefix=prefix)
    pub = RedisPublisher(cfg, cfg.redis_url)
    await pub.start()
    for i, name in enumerate(("zh_003", "zh_005", "en_002")):
        started, finals, ended = to_events(read_dialogue(DIALOGUES / f"{name}.txt"), 1_767_225_600_000 + i * 1000)
        for e in (started, *finals, ended):
            await pub.publish(e)
    assert await pub.flush(10)
    await pub.stop()
    if crash_at is not None:
        first = AnalyticsWorker(cfg, cfg.redis_url, consumer="w-1")
        first.BATCH = 5
        real_xack = first.redis.xack

        async def die_before_ack(*args, **kwargs):
            if first.stats.entries >= crash_at:
                raise Crash
            return await real_xack(*args, **kwargs)

        first.redis.xack = die_before_ack
        await first.start()
        done, _ = await asyncio.wait({first._task}, timeout=30)
        assert done and isinstance(first._task.exception(), Crash)
        await first.stop()
    worker = AnalyticsWorker(cfg, cfg.redis_url, consumer="w-2", claim_idle_s=0.2)
    await asyncio.sleep(0.3)
    await worker.start()
    assert await worker.drain(30)
    await worker.stop()
    out = []
    for _, fields in await env.r.xrange(keys.assist_stream(cfg)):
        c = from_fields(fields)
        out.append((c.call_id, f"{c.TYPE}:{getattr(c, 'scenario', '')}:{getattr(c, 'step', '')}:{getattr(c, 'offer', '')}"
                                f":{getattr(c, 'status', '')}:{getattr(c, 'card', '')}:{getattr(c, 'ticket_type', '')}"))
    return out


async def test_a_worker_crash_mid_call_writes_every_card_once(env):
    reference = await _cards_after(env, "ref", None)
    assert len(reference) == len(set(reference)) >= 10
    crashed = await _cards_after(env, "crash", 14)  # mid-call: outputs written, the batch never acknowledged
    assert sorted(crashed) == sorted(reference)
