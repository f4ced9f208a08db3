"""QA scorecards end to end (issue 20 item 4): the score rule, the worker's scorecard written once, the store on both
backends (scorecards, the override audit and rescoring, appeals, the score filters of search and of the scorecard
list, agent scorecards and calibration on seeded calls), and the API on a real Redis with the real analytics worker
and SQLite store: publish -> store -> API, overrides audited, agents scoped to their own calls, the appeal flow,
calibration numbers. The page is tested in tests/test_scorecard_pages.py."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from callscribe.config import Config
from callscribe.events import (Quote, ScoreAnswer, ScoreAppeal, Scorecard, ScoreOverride, from_fields, from_json, to_fields,
                               to_json)
from callscribe.gateway.store import CallRecord, PostgresStore, SearchQuery, SqliteStore, Utterance
from callscribe.gateway.store.scores import ScoreQuery
from callscribe.gateway.web import WebGateway
from callscribe.keyword.analyzer import Analytics
from callscribe.keyword.dialogue import parse_dialogue, to_events
from callscribe.keyword.packs import bundled_pack_paths
from callscribe.keyword.qa import evaluate
from callscribe.keyword.qa.scoring import score_of, to_event
from callscribe.keyword.worker import AnalyticsWorker
from callscribe.stream import EmbeddedRedis, RedisPublisher, keys

T0 = 1_790_000_000_000
DAY = 86_400_000

GOOD = """agent\tThank you for calling, my name is Dana, how can I help you today?
customer\tHi, my internet keeps dropping every evening.
agent\tI'm sorry about that. Can you confirm the account holder's name and date of birth?
customer\tMark Jensen, fourth of May 1980.
agent\tThanks Mark, you're verified. I've reset your line and the drops should stop now.
customer\tGreat, thanks.
agent\tIs there anything else I can help you with today?
customer\tNo, that's all.
agent\tThanks for calling, goodbye."""
BAD = """agent\tYeah what.
customer\tMy internet keeps dropping every evening.
agent\tI've reset your line, it should work now.
customer\tOk.
agent\tBye."""
ZH = """agent\t您好，很高兴为您服务，请问有什么可以帮您？
customer\t我家宽带又断了。
agent\t请您提供一下机主姓名和身份证后四位。
customer\t张伟，后四位是一二三四。
agent\t好的，核实通过。我已经帮您重启了端口，现在应该可以上网了。
customer\t好了，谢谢。
agent\t请问还有其他可以帮您的吗？
customer\t没有了。"""


@pytest.fixture(scope="module")
def analytics() -> Analytics:
    return Analytics(pack_paths=bundled_pack_paths())


def _dialogue_events(call_id: str, text: str, agent: str, t0: int) -> list:
    started, finals, ended = to_events(parse_dialogue(text, call_id), started_at_ms=t0)
    started = dataclasses.replace(started, metadata={"agent_id": agent, "queue": "broadband", "caller": "13812345678"})
    return [started, *finals, ended]


# --- the score rule and the event --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [GOOD, BAD, ZH], ids=["good", "bad", "zh"])
def test_the_event_carries_what_scoring_again_needs(analytics, text):
    """score_of over the event's answers (weights, critical flags) gives evaluate's score: a store rescoring a call
    without the form scores it as the analytics did; the event survives Redis fields and JSON."""
    call = analytics.call(_dialogue_events("c-x", text, "a7", T0)[0], [])
    for e in _dialogue_events("c-x", text, "a7", T0)[1:]:
        if e.TYPE == "call_ended":
            call.on_end(e)
        else:
            call.on_final(e)
    card = evaluate(analytics.form, call.qa)
    event = to_event(card, analytics.form, "c-x", "a7", "en", T0)
    assert [a.question for a in event.answers] == [q.id for q in analytics.form.questions]
    assert score_of((a.question, a.answer, a.weight, a.critical) for a in event.answers) == (
        card.score, card.raw_score, tuple(card.failed_critical))
    assert from_fields(to_fields(event)) == event and from_json(to_json(event)) == event
    greeting = event.answers[0]
    assert greeting.label["en"] and greeting.label["zh"] and greeting.section == "opening"
    assert greeting.evidence is not None and greeting.evidence.channel == "agent" and greeting.evidence.start_ms == 0


def test_score_rule():
    rows = [("greeting", True, 10.0, False), ("verification", None, 20.0, True), ("closing", False, 10.0, False)]
    assert score_of(rows) == (50.0, 50.0, ())
    assert score_of([*rows, ("no_abuse", False, 10.0, True)]) == (0.0, 33.3, ("no_abuse",))
    assert score_of([("hold", None, 5.0, False)]) == (None, None, ())


# --- the worker: one scorecard per call, even when the call is analysed again -------------------------------------------
@pytest.mark.integration
@pytest.mark.asyncio
async def test_the_worker_writes_each_scorecard_once(redis_server, analytics, tmp_path):
    cfg = Config(data_dir=str(tmp_path), redis_url=redis_server.url, key_prefix="qaw")
    pub = RedisPublisher(cfg, cfg.redis_url)
    await pub.start()
    for e in _dialogue_events("w-good", GOOD, "a7", T0) + _dialogue_events("w-bad", BAD, "a8", T0 + 60_000):
        await pub.publish(e)
    assert await pub.flush(10)
    await pub.stop()
    r = aioredis.from_url(cfg.redis_url, decode_responses=True)
    try:
        for consumer in ("first", "again"):  # "again": a new group re-reads everything, as after a lost group
            worker = AnalyticsWorker(cfg.replace(analytics_group=f"analytics-{consumer}"), cfg.redis_url, analytics=analytics,
                                     consumer=consumer)
            await worker.start()
            assert await worker.drain(10)
            await worker.stop()
        scores = [from_fields(f) for _, f in await r.xrange(keys.scores_stream(cfg))]
        assert sorted(s.call_id for s in scores) == ["w-bad", "w-good"]
        assert all(isinstance(s, Scorecard) for s in scores)
        good = next(s for s in scores if s.call_id == "w-good")
        assert good.agent_id == "a7" and good.started_at_ms == T0 and good.form == analytics.form.ref
        assert good.score == 100.0 and {a.question: a.answer for a in good.answers}["greeting"] is True
        bad = next(s for s in scores if s.call_id == "w-bad")
        assert {a.question: a.answer for a in bad.answers}["greeting"] is False
        for call_id in ("w-good", "w-bad"):
            own = [f for _, f in await r.xrange(keys.call_stream(cfg, call_id)) if f["type"] == "scorecard"]
            assert len(own) == 1
    finally:
        await r.aclose()


# --- the store, both backends ---------------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "postgres":
        s = PostgresStore(request.getfixturevalue("postgres_dsn"), schema=f"test_{uuid.uuid4().hex[:12]}")
    else:
        s = SqliteStore(tmp_path / "store.db")
    yield s
    s.close()


def _card(call_id: str, agent: str, started: int, greeting: bool | None, verification: bool | None,
          closing: bool | None) -> Scorecard:
    answers = (ScoreAnswer("greeting", greeting, 0.9, 10, section="opening", label={"zh": "问候", "en": "Greeting"},
                           why="first line", evidence=Quote("agent", "Thank you for calling", 0, 2500)),
               ScoreAnswer("verification", verification, 0.85, 20, critical=True, section="opening",
                           evidence=Quote("agent", "can you confirm your date of birth", 6000, 9000)),
               ScoreAnswer("closing", closing, 0.8, 10, section="closing"))
    score, raw, failed = score_of((a.question, a.answer, a.weight, a.critical) for a in answers)
    return Scorecard(call_id, "telecom-standard@1", score, raw, failed, answers, agent_id=agent, language="en",
                     started_at_ms=started)


def _seed(store) -> None:
    """Four calls: a7 (good, no closing), a7 (verification failed), a8 (all yes), a8 (not verified: n/a) on days 0-3."""
    cards = [_card("s1", "a7", T0, True, True, False), _card("s2", "a7", T0 + DAY, True, False, True),
             _card("s3", "a8", T0 + 2 * DAY, True, True, True), _card("s4", "a8", T0 + 3 * DAY, False, None, True)]
    for c in cards:
        store.upsert_call(CallRecord(c.call_id, started_at_ms=c.started_at_ms, agent_id=c.agent_id))
        store.add_utterances([Utterance(c.call_id, f"{c.call_id}/agent/0", "agent", 0, 2500, "thank you for calling",
                                        c.started_at_ms)])
        assert store.scores.add_scorecard(c)


def test_store_keeps_the_scorecard_and_the_audited_overrides(store):
    _seed(store)
    assert not store.scores.add_scorecard(_card("s1", "a7", T0, False, False, False))  # filed once: the first stands
    card = store.scores.scorecard("s1")
    assert (card.form, card.score, card.raw_score, card.failed_critical, card.agent_id) == ("telecom-standard@1", 75.0, 75.0, (), "a7")
    greeting = card.answers[0]
    assert [a.question for a in card.answers] == ["greeting", "verification", "closing"]
    assert (greeting.answer, greeting.auto, greeting.confidence, greeting.weight, greeting.label) == (True, True, 0.9, 10.0,
                                                                                                      {"zh": "问候", "en": "Greeting"})
    assert greeting.evidence == {"channel": "agent", "quote": "Thank you for calling", "start_ms": 0, "end_ms": 2500}
    assert card.answers[2].evidence is None and store.scores.scorecard("nope") is None

    # a reviewer fails the critical question: the call scores 0, raw score 50; the audit keeps who, when, why, old, new
    o1 = ScoreOverride("o1", "s1", "verification", True, False, "read the balance before asking", "qa-1", "qa", emitted_at_ms=T0 + 5)
    assert store.scores.add_override(o1) and not store.scores.add_override(o1)  # once
    card = store.scores.scorecard("s1")
    assert (card.score, card.raw_score, card.failed_critical, card.auto_score, card.overrides) == (0.0, 25.0, ("verification",), 75.0, 1)
    assert (card.answers[1].answer, card.answers[1].auto, card.answers[1].overridden) == (False, True, True)
    audit = store.scores.overrides("s1")
    assert [(o.question, o.old_answer, o.new_answer, o.reason, o.by, o.role, o.at_ms) for o in audit] == [
        ("verification", True, False, "read the balance before asking", "qa-1", "qa", T0 + 5)]
    # the newest override wins, whatever order they are filed in; back to the automatic answer restores the score
    o3 = ScoreOverride("o3", "s1", "verification", False, True, "it was asked, in other words", "sup-1", "supervisor", emitted_at_ms=T0 + 9)
    o2 = ScoreOverride("o2", "s1", "closing", False, None, "the customer hung up", "qa-1", "qa", emitted_at_ms=T0 + 7)
    assert store.scores.add_override(o3) and store.scores.add_override(o2)
    card = store.scores.scorecard("s1")
    assert (card.score, card.raw_score, card.failed_critical, card.overrides) == (100.0, 100.0, (), 3)
    assert [a.answer for a in card.answers] == [True, True, None]
    assert [o.override_id for o in store.scores.overrides("s1")] == ["o1", "o2", "o3"]
    # an override filed before its scorecard (another gateway's ingest was faster) applies when the scorecard comes
    store.scores.add_override(ScoreOverride("o9", "s9", "greeting", True, False, "no greeting", "qa-1", "qa", emitted_at_ms=T0))
    store.scores.add_scorecard(_card("s9", "a7", T0, True, True, True))
    assert store.scores.scorecard("s9").score == 75.0 and store.scores.scorecard("s9").auto_score == 100.0


def test_store_appeals(store):
    _seed(store)
    ap = ScoreAppeal("ap1", "s2", "verification", "open", "a7", "I verified with the PIN", True, "a7", emitted_at_ms=T0 + 1)
    assert store.scores.add_appeal(ap) and not store.scores.add_appeal(ap)
    store.scores.add_appeal(ScoreAppeal("ap2", "s4", "greeting", "open", "a8", "I said hello", True, "a8", emitted_at_ms=T0 + 2))
    assert [a.appeal_id for a in store.scores.appeals("open")] == ["ap1", "ap2"]
    assert [a.appeal_id for a in store.scores.appeals("open", agent_id="a8")] == ["ap2"]
    decided = ScoreAppeal("ap1", "s2", "verification", "rejected", "a7", "", True, "qa-1", "the PIN came after", emitted_at_ms=T0 + 3)
    assert store.scores.add_appeal(decided)
    again = ScoreAppeal("ap1", "s2", "verification", "accepted", by="qa-2", reason="changed my mind", emitted_at_ms=T0 + 4)
    assert not store.scores.add_appeal(again)  # decided once
    a = store.scores.appeal("ap1")
    assert (a.status, a.comment, a.wanted, a.resolved_by, a.reason, a.resolved_at_ms) == (
        "rejected", "I verified with the PIN", True, "qa-1", "the PIN came after", T0 + 3)
    assert [a.appeal_id for a in store.scores.appeals("open")] == ["ap2"] and store.scores.appeal("nope") is None


def test_store_filters_agent_scorecards_and_calibration(store):
    _seed(store)
    # QA overrides: s1 closing no -> yes, s3 greeting yes -> no, s4 greeting no -> yes, s2 verification no -> yes
    for i, (call_id, q, old, new) in enumerate([("s1", "closing", False, True), ("s3", "greeting", True, False),
                                                 ("s4", "greeting", False, True), ("s2", "verification", False, True)]):
        store.scores.add_override(ScoreOverride(f"o{i}", call_id, q, old, new, "listened", "qa-1", "qa", emitted_at_ms=T0 + i))
    scores = {c: store.scores.scorecard(c).score for c in ("s1", "s2", "s3", "s4")}
    assert scores == {"s1": 100.0, "s2": 100.0, "s3": 75.0, "s4": 100.0}

    def listed(**kw) -> list[str]:
        total, rows = store.scores.scorecards(ScoreQuery(**kw))
        assert total == len(rows)
        return sorted(r.call_id for r in rows)

    assert listed() == ["s1", "s2", "s3", "s4"]
    assert listed(agent_id="a7") == ["s1", "s2"]
    assert listed(score_max=80) == ["s3"] and listed(score_min=80, score_max=100) == ["s1", "s2", "s4"]
    assert listed(answer_no="greeting") == ["s3"]
    assert listed(since_ms=T0 + DAY, until_ms=T0 + 3 * DAY) == ["s2", "s3"]
    store.scores.add_override(ScoreOverride("o-crit", "s4", "verification", None, False, "not verified", "qa-1", "qa", emitted_at_ms=T0 + 10))
    assert listed(failed_critical=True) == ["s4"] and listed(failed_critical=False) == ["s1", "s2", "s3"]
    # transcript search takes the same filters (hits are utterances of the calls that pass)
    assert [h.call.call_id for h in store.search(SearchQuery(failed_critical=True)).hits] == ["s4"]
    assert {h.call.call_id for h in store.search(SearchQuery(text="calling", score_min=90)).hits} == {"s1", "s2"}
    assert [h.call.call_id for h in store.search(SearchQuery(answer_no="greeting")).hits] == ["s3"]

    report = store.scores.agent_report(T0, T0 + 4 * DAY)
    a7, a8 = report["agents"]
    assert (a7["agent_id"], a7["calls"], a7["scored"], a7["avg_score"], a7["failed_critical_calls"], a7["overrides"]) == ("a7", 2, 2, 100.0, 0, 2)
    assert (a8["agent_id"], a8["calls"], a8["avg_score"], a8["avg_raw_score"], a8["failed_critical_calls"]) == ("a8", 2, 37.5, 62.5, 1)
    assert a8["questions"]["greeting"] == {"yes": 1, "no": 1, "na": 0, "pass_rate": 0.5}
    assert a8["questions"]["verification"] == {"yes": 1, "no": 1, "na": 0, "pass_rate": 0.5}
    assert [a["agent_id"] for a in store.scores.agent_report(agent_id="a8")["agents"]] == ["a8"]
    assert store.scores.agent_report(T0 + 2 * DAY, T0 + 3 * DAY)["agents"][0]["calls"] == 1

    cal = store.scores.calibration()
    by_q = {q["question"]: q for q in cal["questions"]}
    assert (cal["calls"], cal["reviewed_calls"]) == (4, 4)
    assert by_q["greeting"]["auto"] == {"yes": 3, "no": 1, "na": 0}
    assert (by_q["greeting"]["overridden"], by_q["greeting"]["yes_to_no"], by_q["greeting"]["no_to_yes"]) == (2, 1, 1)
    assert by_q["greeting"]["override_rate"] == 0.5
    assert by_q["verification"]["directions"] == {"no->yes": 1, "na->no": 1}
    assert by_q["closing"]["directions"] == {"no->yes": 1} and by_q["closing"]["override_rate"] == 0.25
    assert [q["question"] for q in cal["questions"]] == ["greeting", "verification", "closing"]  # most overridden first
    assert store.scores.calibration(T0 + 3 * DAY)["calls"] == 1
    assert cal["labels"]["greeting"] == {"zh": "问候", "en": "Greeting"} and report["labels"]["greeting"]["en"] == "Greeting"


# --- the API: publish -> worker -> store -> API, on a real Redis ----------------------------------------------------------
class Env:
    def __init__(self, cfg: Config, gw: WebGateway) -> None:
        self.cfg, self.gw = cfg, gw
        mint = gw.auth.mint
        self.tokens = {"qa": mint("qa", "qa-1")[0], "supervisor": mint("supervisor", "sup-1")[0], "a7": mint("agent", "a7")[0],
                       "a8": mint("agent", "a8")[0], "admin": mint("admin", "root")[0]}

    def client(self, who: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.gw.url, headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=10)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory, analytics):
    tmp = tmp_path_factory.mktemp("qa-api")
    server = EmbeddedRedis(tmp / "redis")
    server.start()
    cfg = Config(data_dir=str(tmp), redis_url=server.url, web_port=0, key_prefix="qa", board_replay_s=10 * 365 * 86400)
    pub = RedisPublisher(cfg, cfg.redis_url)
    await pub.start()
    for call_id, text, agent, t0 in (("c-good", GOOD, "a7", T0), ("c-bad", BAD, "a7", T0 + DAY), ("c-zh", ZH, "a8", T0 + 2 * DAY)):
        for e in _dialogue_events(call_id, text, agent, t0):
            await pub.publish(e)
    assert await pub.flush(10)
    await pub.stop()
    worker = AnalyticsWorker(cfg, cfg.redis_url, analytics=analytics, consumer="qa-test")
    await worker.start()
    assert await worker.drain(10)
    await worker.stop()
    gw = WebGateway(cfg, server.url)
    await gw.start()
    assert await gw.ingest.drain(10)
    yield Env(cfg, gw)
    await gw.stop()
    server.kill()


async def _xrange_types(cfg: Config, key: str) -> list[str]:
    r = aioredis.from_url(cfg.redis_url, decode_responses=True)
    try:
        return [f["type"] for _, f in await r.xrange(key)]
    finally:
        await r.aclose()


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_api_scorecard_from_the_live_worker(env):
    async with env.client("qa") as qa:
        card = (await qa.get("/api/v1/calls/c-good/scorecard")).json()
        assert card["form"] == "telecom-standard@1" and card["score"] == 100.0 and card["agent_id"] == "a7"
        greeting = card["answers"][0]
        assert greeting["question"] == "greeting" and greeting["answer"] is True and greeting["auto"] is True
        assert greeting["evidence"]["quote"].startswith("Thank you for calling") and greeting["evidence"]["start_ms"] == 0
        assert 0 < greeting["confidence"] <= 1 and greeting["label"]["en"] and greeting["weight"] == 10
        assert card["audit"] == [] and card["appeals"] == []
        bad = (await qa.get("/api/v1/calls/c-bad/scorecard")).json()
        assert {a["question"]: a["answer"] for a in bad["answers"]}["greeting"] is False
        assert (await qa.get("/api/v1/calls/c-nope/scorecard")).status_code == 404
        listed = (await qa.get("/api/v1/scorecards")).json()
        assert listed["total"] == 3 and [c["call_id"] for c in listed["scorecards"]] == ["c-zh", "c-bad", "c-good"]
    assert await _xrange_types(env.cfg, keys.scores_stream(env.cfg)) == ["scorecard"] * 3


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_api_agents_see_only_their_own_scores(env):
    async with env.client("a7") as a7, env.client("a8") as a8:
        assert (await a7.get("/api/v1/calls/c-good/scorecard")).status_code == 200
        other, missing = await a8.get("/api/v1/calls/c-good/scorecard"), await a8.get("/api/v1/calls/c-nope/scorecard")
        assert other.status_code == missing.status_code == 404 and other.json() == missing.json()  # existence not told
        assert (await a7.get("/api/v1/calls/c-zh/scorecard")).status_code == 404
        mine = (await a7.get("/api/v1/scorecards", params={"agent": "a8"})).json()  # asking for another's: still one's own
        assert sorted(c["call_id"] for c in mine["scorecards"]) == ["c-bad", "c-good"]
        report = (await a8.get("/api/v1/reports/agent_scores")).json()
        assert [a["agent_id"] for a in report["agents"]] == ["a8"]
        assert (await a7.post("/api/v1/calls/c-good/scorecard/overrides",
                              json={"question": "greeting", "answer": False, "reason": "x"})).status_code == 403
        assert (await a7.get("/api/v1/reports/calibration")).status_code == 403
        assert (await a8.post("/api/v1/calls/c-good/scorecard/appeals",
                              json={"question": "closing", "comment": "mine?"})).status_code == 404


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_api_override_is_audited_and_rescored(env):
    async with env.client("qa") as qa:
        before = (await qa.get("/api/v1/calls/c-good/scorecard")).json()
        resp = await qa.post("/api/v1/calls/c-good/scorecard/overrides",
                             json={"question": "closing", "answer": False, "reason": "asked before solving, not at the close"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        ov, card = body["override"], body["scorecard"]
        assert (ov["question"], ov["old_answer"], ov["new_answer"], ov["by"], ov["role"]) == ("closing", True, False, "qa-1", "qa")
        assert ov["reason"] == "asked before solving, not at the close" and ov["at_ms"] > T0
        closing = next(a for a in card["answers"] if a["question"] == "closing")
        assert (closing["answer"], closing["auto"], closing["overridden"]) == (False, True, True)
        assert card["score"] < before["score"] and card["auto_score"] == before["score"] and card["overrides"] == 1
        assert card["audit"] == [ov]
        again = await qa.post("/api/v1/calls/c-good/scorecard/overrides", json={"question": "closing", "answer": False, "reason": "x"})
        assert again.status_code == 409
        assert (await qa.post("/api/v1/calls/c-good/scorecard/overrides",
                              json={"question": "nope", "answer": True, "reason": "x"})).status_code == 404
        assert (await qa.post("/api/v1/calls/c-good/scorecard/overrides",
                              json={"question": "closing", "answer": True, "reason": ""})).status_code == 422
        # the agent reads the audited answer on their own call
    async with env.client("a7") as a7:
        mine = (await a7.get("/api/v1/calls/c-good/scorecard")).json()
        assert mine["score"] == card["score"] and mine["audit"][0]["by"] == "qa-1"
    # the override is on the scores stream (every gateway's store files it) and the call's stream
    assert (await _xrange_types(env.cfg, keys.scores_stream(env.cfg)))[3:] == ["score_override"]
    assert "score_override" in await _xrange_types(env.cfg, keys.call_stream(env.cfg, "c-good"))
    assert await env.gw.ingest.drain(10)
    assert env.gw.store.scores.scorecard("c-good").overrides == 1  # filed again by the ingest: no second row


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_api_appeal_flow(env):
    async with env.client("a7") as a7, env.client("qa") as qa, env.client("a8") as a8:
        resp = await a7.post("/api/v1/calls/c-bad/scorecard/appeals", json={"question": "greeting", "comment": "I said hi, it was cut"})
        assert resp.status_code == 200, resp.text
        appeal = resp.json()["appeal"]
        assert (appeal["status"], appeal["wanted"], appeal["agent_id"], appeal["question"]) == ("open", True, "a7", "greeting")
        dup = await a7.post("/api/v1/calls/c-bad/scorecard/appeals", json={"question": "greeting", "comment": "again"})
        assert dup.status_code == 409
        second = (await a7.post("/api/v1/calls/c-bad/scorecard/appeals",
                                json={"question": "closing", "comment": "I asked"})).json()["appeal"]
        queue = (await qa.get("/api/v1/appeals", params={"status": "open"})).json()["appeals"]
        assert [a["appeal_id"] for a in queue] == [appeal["appeal_id"], second["appeal_id"]]
        assert (await a8.get("/api/v1/appeals")).json()["appeals"] == []  # not theirs
        card = (await a7.get("/api/v1/calls/c-bad/scorecard")).json()
        assert next(a for a in card["answers"] if a["question"] == "greeting")["open_appeal"] == appeal["appeal_id"]

        accepted = await qa.post(f"/api/v1/appeals/{appeal['appeal_id']}/decision",
                                 json={"decision": "accept", "reason": "the greeting was clipped by the recording"})
        assert accepted.status_code == 200, accepted.text
        body = accepted.json()
        assert body["appeal"]["status"] == "accepted" and body["override"]["appeal_id"] == appeal["appeal_id"]
        greeting = next(a for a in body["scorecard"]["answers"] if a["question"] == "greeting")
        assert (greeting["answer"], greeting["auto"], greeting["open_appeal"]) == (True, False, None)
        assert (await qa.post(f"/api/v1/appeals/{appeal['appeal_id']}/decision",
                              json={"decision": "reject", "reason": "late"})).status_code == 409
        rejected = (await qa.post(f"/api/v1/appeals/{second['appeal_id']}/decision",
                                  json={"decision": "reject", "reason": "'bye' is not asking"})).json()
        assert rejected["appeal"]["status"] == "rejected" and rejected["override"] is None
        assert next(a for a in rejected["scorecard"]["answers"] if a["question"] == "closing")["answer"] is False
        assert (await qa.post("/api/v1/appeals/ap-nope/decision", json={"decision": "reject", "reason": "x"})).status_code == 404
        mine = (await a7.get("/api/v1/appeals")).json()["appeals"]
        assert [(a["status"], a["reason"], a["resolved_by"]) for a in mine] == [
            ("accepted", "the greeting was clipped by the recording", "qa-1"), ("rejected", "'bye' is not asking", "qa-1")]


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
async def test_api_calibration_agent_scorecards_and_search_filters(env):
    """After the two tests above: c-good closing yes -> no (override), c-bad greeting no -> yes (accepted appeal)."""
    async with env.client("qa") as qa:
        await qa.post("/api/v1/calls/c-zh/scorecard/overrides", json={"question": "no_abuse", "answer": False, "reason": "sarcasm"})
        cards = {c: (await qa.get(f"/api/v1/calls/{c}/scorecard")).json() for c in ("c-good", "c-bad", "c-zh")}
        cal = (await qa.get("/api/v1/reports/calibration")).json()
        by_q = {q["question"]: q for q in cal["questions"]}
        assert (cal["calls"], cal["reviewed_calls"]) == (3, 3)
        assert by_q["closing"]["directions"] == {"yes->no": 1} and by_q["closing"]["yes_to_no"] == 1
        assert by_q["greeting"]["directions"] == {"no->yes": 1} and by_q["greeting"]["no_to_yes"] == 1
        assert by_q["no_abuse"]["directions"] == {"yes->no": 1} and by_q["no_abuse"]["override_rate"] == round(1 / 3, 4)
        assert by_q["hold"]["overridden"] == 0 and by_q["greeting"]["calls"] == 3
        auto_closing = sum(1 for c in cards.values() for a in c["answers"] if a["question"] == "closing" and a["auto"] is True)
        assert by_q["closing"]["auto"]["yes"] == auto_closing

        report = (await qa.get("/api/v1/reports/agent_scores", params={"since": str(T0), "until": str(T0 + 3 * DAY)})).json()
        a7 = next(a for a in report["agents"] if a["agent_id"] == "a7")
        assert a7["calls"] == 2 and a7["avg_score"] == round((cards["c-good"]["score"] + cards["c-bad"]["score"]) / 2, 1)
        assert a7["questions"]["greeting"]["pass_rate"] == 1.0  # c-bad's greeting is yes since the accepted appeal
        assert [a["agent_id"] for a in (await qa.get("/api/v1/reports/agent_scores",
                                                     params={"since": str(T0 + DAY), "until": str(T0 + 2 * DAY)})).json()["agents"]] == ["a7"]

        async def calls(**params) -> set[str]:
            return {h["call_id"] for h in (await qa.get("/api/v1/search", params=params)).json()["hits"]}

        failed = {c for c, card in cards.items() if card["failed_critical"]}
        assert "c-zh" in failed and "c-good" not in failed and cards["c-zh"]["score"] == 0.0
        assert cards["c-zh"]["failed_critical"] == ["no_abuse"]
        assert await calls(failed_critical="true") == failed
        assert await calls(failed_critical="false") == set(cards) - failed
        assert await calls(answer_no="closing") == {c for c, card in cards.items() if any(
            a["question"] == "closing" and a["answer"] is False for a in card["answers"])} >= {"c-good"}
        assert await calls(score_min="50") == {c for c, card in cards.items() if card["score"] >= 50} == {"c-good"}
        assert await calls(score_max="50", q="thanks") <= {c for c, card in cards.items() if card["score"] <= 50}
        assert (await qa.get("/api/v1/search", params={"score_min": "101"})).status_code == 422
        listed = (await qa.get("/api/v1/scorecards", params={"failed_critical": "true"})).json()
        assert {c["call_id"] for c in listed["scorecards"]} == failed and listed["total"] == len(failed)
