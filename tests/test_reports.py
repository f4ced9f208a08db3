"""Reports (callscribe/reports): first-contact resolution and repeat calls against known answers, the aggregates kept
by the store ingest against a rebuild from scratch, corrections, talk / silence / overtalk, movers and shakers, and
emerging topics; on both store backends."""

from __future__ import annotations

import random
import uuid
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from callscribe.config import Config
from callscribe.events import CallEnded, CallStarted, CallSummary, Ticket, Transcript, to_fields
from callscribe.gateway.store import SqliteStore
from callscribe.gateway.store.base import CallRecord, ticket_record
from callscribe.gateway.store.ingest import StoreIngest
from callscribe.reports.drivers import benjamini_hochberg, movers, two_proportion_z
from callscribe.reports.facts import MEASURES, CallFact, Span, contribution, relink, talk_stats
from callscribe.reports.metrics import build_report
from callscribe.reports.sample import SampleCall, expected, load, month
from callscribe.reports.tables import ReportFilter
from callscribe.stream import keys

DAY = 86_400_000
SHANGHAI = ZoneInfo("Asia/Shanghai")
START = 1_796_659_200_000  # 2026-12-08 00:00 in Asia/Shanghai; the sample is relative to it


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "postgres":
        from callscribe.gateway.store.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("postgres_dsn"), schema=f"rep_{uuid.uuid4().hex[:10]}")
    else:
        s = SqliteStore(tmp_path / "reports.db")
    yield s
    s.close()


def _all(days: int) -> ReportFilter:
    return ReportFilter(START, START + days * DAY)


# --- FCR and repeat calls --------------------------------------------------------------------------------------------
def test_fcr_and_repeat_rate_on_a_generated_month_with_known_answers(store):
    """A month of calls filed in a random order (a repeat call is often filed before the call it repeats): every call's
    FCR and repeat flag as the definitions say, the totals and the per-intent rates from the aggregates, and the same
    aggregates from a rebuild from scratch."""
    calls = month(START, days=30, calls_per_day=20, callers=200)
    answers = expected(calls)
    order = list(calls)
    random.Random(7).shuffle(order)
    load(store, order)
    f = _all(30)
    facts = {x.call_id: x for x in store.reports.facts(f)}
    assert len(facts) == len(calls)
    wrong = [c for c, (fcr, rep) in answers.items() if facts[c].fcr != fcr or bool(facts[c].repeat_of) != rep]
    assert not wrong, wrong[:10]
    total = store.reports.measures(f)[0][1]
    assert total["calls"] == len(calls)
    assert total["fcr"] == sum(a for a, _ in answers.values())
    assert total["repeats"] == sum(b for _, b in answers.values())
    assert 0.1 < total["repeats"] / total["calls"] < 0.35  # the sample really has repeat callers
    by_intent = dict(store.reports.measures(f, "intent"))
    for intent, m in by_intent.items():
        mine = [c for c in calls if c.intent == intent]
        assert m["calls"] == len(mine)
        assert m["fcr"] == sum(answers[c.call_id][0] for c in mine)
        assert m["repeats"] == sum(answers[c.call_id][1] for c in mine)
        assert m["unresolved"] == sum(c.unresolved for c in mine)
    report = build_report(store.reports, START, START + 30 * DAY, now_ms=START + 40 * DAY, tz=SHANGHAI)
    assert report["totals"]["fcr_rate"] == round(total["fcr"] / len(calls), 4)
    assert report["totals"]["repeat_rate"] == round(total["repeats"] / len(calls), 4)
    assert sum(r["calls"] for r in report["by_day"]) == sum(r["calls"] for r in report["by_hour"]) == len(calls)
    assert sum(r["calls"] for r in report["by_agent"]) == len(calls)  # (read from report_calls, not the aggregates)
    assert sum(r["fcr"] for r in report["by_agent"]) == total["fcr"]
    # by agent (per-day agent rows inside the period, calls at its edges) = the calls' own contributions, also for a
    # period that does not start or end on a UTC day
    for lo, hi in ((START, START + 30 * DAY), (START + 5 * H, START + 20 * DAY + 7 * H)):
        sums: dict[str, dict[str, float]] = {}
        for fact in store.reports.facts(ReportFilter(lo, hi)):
            row = sums.setdefault(fact.agent_id, dict.fromkeys(MEASURES, 0))
            for m, v in contribution(fact).measures.items():
                row[m] += v
        got = dict(store.reports.measures(ReportFilter(lo, hi), "agent"))
        assert set(got) == set(sums)
        for agent, m in got.items():
            assert m == pytest.approx(sums[agent]), agent
    # the incremental aggregates are exactly a recount from scratch
    groups = ("intent", "queue", "day", "hour", "agent")
    before = {g: sorted(store.reports.measures(f, g), key=str) for g in groups}
    tags = sorted(store.reports.tags(f, "alert", "intent"), key=str), sorted(store.reports.tags(f, "reason"), key=str)
    assert store.reports.rebuild(7) == len(calls)
    assert {g: sorted(store.reports.measures(f, g), key=str) for g in groups} == before
    assert (sorted(store.reports.tags(f, "alert", "intent"), key=str), sorted(store.reports.tags(f, "reason"), key=str)) == tags
    assert {x.call_id: (x.repeat_of, x.repeated_by) for x in store.reports.facts(f)} == \
        {c: (x.repeat_of, x.repeated_by) for c, x in facts.items()}


H = 3_600_000
# (label, [(call, number, intent, unresolved, hours after the first call)], {call: (fcr, repeat)}, filed in this order)
PAIRS = [
    ("same number and intent 3 days later", [("a", "13812345678", "roaming", False, 0), ("b", "13812345678", "roaming", False, 72)],
     {"a": (False, False), "b": (True, True)}, "ab"),
    ("filed the other way round", [("a", "13812345678", "roaming", False, 0), ("b", "13812345678", "roaming", False, 72)],
     {"a": (False, False), "b": (True, True)}, "ba"),
    ("another intent", [("a", "13812345678", "roaming", False, 0), ("b", "13812345678", "payment", False, 2)],
     {"a": (True, False), "b": (True, False)}, "ab"),
    ("exactly seven days is within", [("a", "13812345678", "roaming", False, 0), ("b", "13812345678", "roaming", False, 168)],
     {"a": (False, False), "b": (True, True)}, "ab"),
    ("a minute past seven days is not", [("a", "13812345678", "roaming", False, 0),
                                         ("b", "13812345678", "roaming", False, 168 + 1 / 60)],
     {"a": (True, False), "b": (True, False)}, "ab"),
    ("the same number written three ways", [("a", "138-1234-5678", "roaming", False, 0), ("b", "+86 13812345678", "roaming", False, 5),
                                            ("c", "008613812345678", "roaming", False, 30)],
     {"a": (False, False), "b": (False, True), "c": (True, True)}, "cab"),
    ("no number: never linked", [("a", "", "roaming", False, 0), ("b", "", "roaming", False, 1)],
     {"a": (True, False), "b": (True, False)}, "ab"),
    ("no intent: never linked", [("a", "13812345678", "", False, 0), ("b", "13812345678", "", False, 1)],
     {"a": (True, False), "b": (True, False)}, "ab"),
    ("unresolved is never FCR", [("a", "13812345678", "roaming", True, 0)], {"a": (False, False)}, "a"),
    ("another number", [("a", "13812345678", "roaming", False, 0), ("b", "13912345678", "roaming", False, 1)],
     {"a": (True, False), "b": (True, False)}, "ab"),
    ("a call filed between two that were 9 days apart", [("a", "13812345678", "roaming", False, 0),
                                                         ("b", "13812345678", "roaming", False, 100),
                                                         ("c", "13812345678", "roaming", False, 216)],
     {"a": (False, False), "b": (False, True), "c": (True, True)}, "acb"),
]


@pytest.mark.parametrize("label,calls,answers,order", PAIRS, ids=[p[0] for p in PAIRS])
def test_labelled_repeat_caller_pairs(store, label, calls, answers, order):
    t0 = START + 10 * H
    sample = {cid: SampleCall(cid, t0 + int(hours * H), number, "q", "a1", intent, unresolved, ("follow_up",) if unresolved else (),
                              duration_ms=60_000) for cid, number, intent, unresolved, hours in calls}
    load(store, [sample[c] for c in order])
    got = {x.call_id: (x.fcr, bool(x.repeat_of)) for x in store.reports.facts(_all(20))}
    assert got == answers
    assert {c: a for c, a in expected(list(sample.values())).items()} == answers  # the reference agrees with the labels
    total = store.reports.measures(_all(20))[0][1]
    assert (total["fcr"], total["repeats"]) == (sum(a for a, _ in answers.values()), sum(b for _, b in answers.values()))


def test_corrections_move_exactly_what_they_change(store):
    """A ticket, a QA score and a call whose intent changes (it leaves one chain and joins another) after filing."""
    a = SampleCall("c1", START + H, "13800000001", "billing", "a1", "billing_dispute", False, duration_ms=120_000, qa_score=None)
    b = SampleCall("c2", START + 5 * H, "13800000001", "payment", "a2", "payment", False, duration_ms=60_000)
    c = SampleCall("c3", START + 9 * H, "13800000001", "billing", "a1", "billing_dispute", False, duration_ms=60_000)
    load(store, [a, b, c])
    assert store.reports.fact("c1").repeated_by == "c3" and store.reports.fact("c2").fcr
    store.add_ticket(ticket_record(Ticket("c2:t", "c2", "repair", "high", intent="payment")))
    assert store.reports.refresh("c2", 7)
    assert store.reports.fact("c2").tickets == 1
    # c3 turns out to be about payment: c1 is resolved first time after all, c3 repeats c2
    store.upsert_call(CallRecord("c3", intent="payment", unresolved=False))
    assert store.reports.refresh("c3", 7)
    f1, f2, f3 = (store.reports.fact(x) for x in ("c1", "c2", "c3"))
    assert (f1.fcr, f1.repeated_by, f2.fcr, f2.repeated_by, f3.repeat_of) == (True, "", False, "c3", "c2")
    f = _all(1)
    total = store.reports.measures(f)[0][1]
    assert (total["calls"], total["fcr"], total["repeats"], total["tickets"], total["ticket_calls"]) == (3, 2, 1, 1, 1)
    by_intent = dict(store.reports.measures(f, "intent"))
    assert by_intent["billing_dispute"]["calls"] == 1 and by_intent["payment"]["calls"] == 2
    assert not store.reports.refresh("c3", 7)  # nothing changed: nothing written
    store.reports.rebuild(7)
    assert dict(store.reports.measures(f, "intent")) == by_intent
    assert not store.reports.refresh("nope", 7)  # a call the reports never saw: nothing


def test_chain_reference_agrees_with_the_definitions():
    rng = random.Random(3)
    facts = [CallFact(f"x{i}", rng.randrange(0, 30 * DAY), caller_key=rng.choice(["1", "2", "3", ""]),
                      intent=rng.choice(["p", "q", ""])) for i in range(300)]
    links = relink(facts, 7 * DAY)
    calls = [SampleCall(f.call_id, f.started_at_ms, f.caller_key, "", "", f.intent, False) for f in facts]
    answers = expected(calls)
    assert {c: (not by, bool(of)) for c, (of, _, by) in links.items()} == answers


# --- talk, silence, overtalk -------------------------------------------------------------------------------------------
def test_talk_silence_and_overtalk_from_the_finals_spans():
    spans = [Span("customer", 0, 4_000), Span("agent", 3_000, 8_000), Span("customer", 7_500, 9_000),
             Span("agent", 20_000, 25_000), Span("agent", 24_000, 26_000)]
    s = talk_stats(spans, 30_000)
    assert s == {"talk_customer_ms": 5_500, "talk_agent_ms": 11_000, "talk_ms": 15_000, "overtalk_ms": 1_500,
                 "silence_ms": 15_000}
    assert talk_stats([Span("mixed", 0, 50_000)], 10_000) == {"talk_customer_ms": 0, "talk_agent_ms": 0, "talk_ms": 10_000,
                                                             "overtalk_ms": 0, "silence_ms": 0}


# --- drivers -----------------------------------------------------------------------------------------------------------------
def test_two_proportion_z_and_benjamini_hochberg():
    z, p = two_proportion_z(30, 100, 10, 100)
    assert z == pytest.approx(3.5355, abs=1e-3) and p == pytest.approx(4.07e-4, rel=0.01)
    assert two_proportion_z(0, 0, 5, 10) == (0.0, 1.0)
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.0533, 0.0533, 0.5], abs=1e-3)


def test_movers_flag_a_real_rise_and_not_noise():
    m = {r["intent"]: r for r in movers({"roaming": 70, "billing": 150, "payment": 60, "rare": 3},
                                        {"roaming": 20, "billing": 100, "payment": 40, "rare": 0})}
    assert m["roaming"]["direction"] == "up" and m["roaming"]["q"] < 0.05
    assert m["billing"]["direction"] == "" and m["payment"]["direction"] == ""
    assert not m["rare"]["tested"] and m["rare"]["direction"] == ""  # 3 calls: below min_count, never a mover


def test_movers_on_the_sample_month(store):
    """Roaming's share triples in the second half of the sample month: a mover; the others are stable (not flagged
    up). Intent mix per day adds up to the calls."""
    load(store, month(START, days=30, calls_per_day=20, callers=200))
    report = build_report(store.reports, START + 15 * DAY, START + 30 * DAY, now_ms=START + 40 * DAY, min_count=10, tz=SHANGHAI)
    up = [r["intent"] for r in report["movers"] if r["direction"] == "up"]
    assert up == ["roaming"], report["movers"]
    mix = report["intent_mix"]
    assert len(mix["days"]) == 15
    assert sum(sum(v) for v in mix["calls"].values()) == report["totals"]["calls"]


# --- through the store ingest (real Redis) ---------------------------------------------------------------------------
@pytest.mark.integration
async def test_ingest_files_report_rows_and_corrects_fcr_when_the_repeat_arrives(redis_server, tmp_path):
    cfg = Config(redis_url=redis_server.url, key_prefix="rep", fcr_window_days=7)
    store = SqliteStore(tmp_path / "s.db")
    r = aioredis.from_url(redis_server.url, decode_responses=True)
    ingest = StoreIngest(cfg, redis_server.url, store, consumer="r1")
    await ingest.start()

    async def call(cid: str, t: int, unresolved: bool) -> None:
        await r.xadd(keys.finals_stream(cfg), to_fields(CallStarted(cid, ("customer", "agent"), "zh",
                                                                    metadata={"agent_id": "a7", "queue": "broadband",
                                                                              "caller": "13812345678"}, started_at_ms=t)))
        for i, (ch, s, e) in enumerate([("customer", 1_000, 5_000), ("agent", 4_000, 9_000)]):
            await r.xadd(keys.finals_stream(cfg), to_fields(Transcript(cid, ch, f"{cid}/{ch}/{i}", 0, True, "宽带断了", s, e, "zh",
                                                                       0.9, emitted_at_ms=t + e)))
        await r.xadd(keys.finals_stream(cfg), to_fields(CallEnded(cid, 20_000, "hangup", ended_at_ms=t + 20_000)))
        await r.xadd(keys.insights_stream(cfg), to_fields(CallSummary(
            cid, "broadband_outage", 0.6, ("escalation",), unresolved, ("follow_up_promised",) if unresolved else (),
            caller="13812345678", agent_id="a7", started_at_ms=t, duration_ms=20_000, sentiment="negative",
            sentiment_score=-0.5)))
        assert await ingest.drain(10)

    await call("i1", START, False)
    f1 = store.reports.fact("i1")
    assert f1.fcr and f1.queue == "broadband" and f1.handle_ms == 20_000 and f1.timed
    assert (f1.talk_ms, f1.overtalk_ms, f1.silence_ms) == (8_000, 1_000, 12_000)
    await call("i2", START + 2 * DAY, True)  # two days later, same number, same intent: i1 was not resolved after all
    f1, f2 = store.reports.fact("i1"), store.reports.fact("i2")
    assert (f1.fcr, f1.repeated_by, f2.repeat_of, f2.fcr) == (False, "i2", "i1", False)
    await r.xadd(keys.tickets_stream(cfg), to_fields(Ticket("i2:repair", "i2", "repair", "high")))
    assert await ingest.drain(10)
    assert store.reports.fact("i2").tickets == 1
    total = store.reports.measures(_all(3))[0][1]
    assert (total["calls"], total["fcr"], total["repeats"], total["unresolved"], total["tickets"]) == (2, 0, 1, 1, 1)
    await ingest.stop()
    await r.aclose()
    store.close()


# --- emerging topics ---------------------------------------------------------------------------------------------------------
def test_emerging_topics_find_the_new_phrase_outside_the_catalog_with_its_calls(tmp_path):
    """In the sample month, broadband callers start saying 光猫红灯一直闪 / "optical modem red light" in the last ten
    days: the emerging topics of those days name it (Mandarin through jieba, English as n-grams) with calls that said it,
    and nothing the intent catalog already knows (宽带, 流量, roaming ...)."""
    from callscribe.reports.metrics import topic_finder
    from callscribe.reports.sample import EMERGING
    from callscribe.reports.topics import catalog_phrases

    store = SqliteStore(tmp_path / "t.db")
    calls = month(START, days=30, calls_per_day=20, callers=200)
    load(store, calls)
    catalog = catalog_phrases()
    report = build_report(store.reports, START + 23 * DAY, START + 30 * DAY, now_ms=START + 40 * DAY, tz=SHANGHAI,
                          topics=topic_finder(store.reports, catalog))
    topics = report["topics"]
    phrases = [t["text"] for t in topics]
    zh = next(t for t in topics if "光猫" in t["text"])
    en = next(t for t in topics if "red light" in t["text"] or "modem" in t["text"])
    said = {c.call_id for c in calls for _, _, _, text in c.utterances if EMERGING[0] in text or EMERGING[1] in text}
    for t in (zh, en):
        assert t["calls"] >= 3 and t["call_ids"] and set(t["call_ids"]) <= said, t
    assert not any(catalog.covers(p) for p in phrases)
    assert "宽带" not in phrases and "roaming" not in phrases
    store.close()
