"""Transcript store and search (gateway/store): Chinese bigram indexing, query syntax, highlights, filters,
and the Redis consumer that fills it (real Redis, with the analytics worker's summaries)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscribe.config import Config
from callscribe.gateway.store import CallRecord, QueryError, SearchQuery, SqliteStore, Utterance, parse_query
from callscribe.gateway.store.ingest import StoreIngest
from callscribe.gateway.store.query import highlight, index_tokens, to_fts

DIALOGUES = Path(__file__).parent / "data" / "dialogues"


def test_index_tokens_bigrams_words_and_unigrams():
    bi, uni = index_tokens("我要投訴，WiFi 5G套餐")
    assert bi.split() == ["我要", "要投", "投诉", "wifi", "5g", "套餐"]
    assert uni.split() == ["我", "要", "投", "诉", "套", "餐"]


def test_query_syntax():
    terms = parse_query('投诉 OR 举报 "speak to your manager" -宽带 refund*')
    assert [(t.text, t.negated, t.alternatives) for t in terms] == [
        ("投诉", False, ("举报",)), ("speak to your manager", False, ()), ("宽带", True, ()), ("refund*", False, ())]
    assert to_fts(terms) == '(bi : "投诉" OR bi : "举报") AND bi : "speak to your manager" AND bi : "refund"* NOT bi : "宽带"'
    for bad in ('"unbalanced', "-only", "   ", "x" * 600, "，。！"):
        with pytest.raises(QueryError):
            parse_query(bad)


def test_highlight_escapes_html_and_marks_every_hit():
    assert highlight("<b>投訴</b> 投诉", parse_query("投诉")) == "&lt;b&gt;<mark>投訴</mark>&lt;/b&gt; <mark>投诉</mark>"
    assert highlight("Manager, managers", parse_query("manager")) == "<mark>Manager</mark>, managers"


@pytest.fixture
def store():
    s = SqliteStore()
    s.upsert_call(CallRecord("c1", started_at_ms=1_000, agent_id="a7", queue="broadband"))
    s.upsert_call(CallRecord("c2", started_at_ms=50_000, agent_id="a8", queue="billing"))
    rows = [
        Utterance("c1", "c1/customer/0", "customer", 0, 2000, "我家宽带又断了，我要投诉你们", 1_000),
        Utterance("c1", "c1/agent/0", "agent", 2500, 4000, "非常抱歉，我帮您报修", 3_500),
        Utterance("c1", "c1/customer/1", "customer", 4500, 6000, "I want to speak to your manager", 5_500),
        Utterance("c2", "c2/customer/0", "customer", 0, 2000, "話費多扣了三十塊", 50_000),
        Utterance("c2", "c2/agent/0", "agent", 2500, 4000, "your manager approved a refund", 52_500),
    ]
    assert s.add_utterances(rows) == 5
    assert s.add_utterances(rows[:2]) == 0  # redelivered finals are no-ops
    s.upsert_call(CallRecord("c1", intent="broadband_outage", unresolved=True, alerts=("escalation",)))
    s.upsert_call(CallRecord("c2", intent="billing_dispute", unresolved=False, alerts=()))
    yield s
    s.close()


@pytest.mark.parametrize("q, calls", [
    ("投诉", ["c1"]),            # a 2-character word (the trigram tokenizer cannot find it)
    ("话费", ["c2"]),            # Traditional text, Simplified query
    ("話費", ["c2"]),            # and the other way round
    ("宽带 投诉", ["c1"]),
    ("投诉 OR 话费", ["c2", "c1"]),
    ('"speak to your manager"', ["c1"]),
    ("manager", ["c2", "c1"]),
    ("manager -refund", ["c1"]),
    ("refund*", ["c2"]),
    ("断", ["c1"]),               # one character
    ("退订", []),
])
def test_search_queries(store, q, calls):
    page = store.search(SearchQuery(q))
    assert [h.utterance.call_id for h in page.hits] == calls
    assert all("<mark>" in h.highlighted for h in page.hits)


def test_search_filters_and_paging(store):
    assert store.search(SearchQuery("manager", agent_id="a7")).total == 1
    assert store.search(SearchQuery("manager", intent="billing_dispute")).hits[0].utterance.call_id == "c2"
    assert store.search(SearchQuery("manager", unresolved=True)).hits[0].call.unresolved is True
    assert store.search(SearchQuery("manager", alert="escalation")).total == 1
    assert store.search(SearchQuery("manager", channel="agent")).hits[0].utterance.call_id == "c2"
    assert store.search(SearchQuery("manager", since_ms=10_000)).total == 1
    assert store.search(SearchQuery("manager", until_ms=10_000)).total == 1
    assert store.search(SearchQuery("", queue="broadband")).total == 3  # filters only
    page = store.search(SearchQuery("", limit=2, offset=2))
    assert page.total == 5 and len(page.hits) == 2 and page.offset == 2


def test_call_detail_in_time_order(store):
    rec, utterances = store.call("c1")
    assert rec.intent == "broadband_outage" and rec.agent_id == "a7" and rec.alerts == ("escalation",)
    assert [u.start_ms for u in utterances] == [0, 2500, 4500]
    assert store.call("nope") is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_query_text_is_searched_or_refused_cleanly(text):
    s = SqliteStore()
    s.add_utterances([Utterance("c", "c/customer/0", "customer", 0, 1, 'a "quoted" 投诉 OR NOT * ( ) : ^', 1)])
    try:
        s.search(SearchQuery(text))
    except QueryError:
        pass


# --- filled from Redis -----------------------------------------------------------------------------
@pytest.mark.integration
async def test_ingest_fills_the_store_from_redis_once(redis_server, tmp_path):
    from callscribe.keyword.worker import AnalyticsWorker

    from .test_analytics_live import _publish_calls

    cfg = Config(redis_url=redis_server.url, key_prefix="st", surge_min_calls=10_000)
    names = ["zh_021", "zh_022", "en_002", "en_023"]
    await _publish_calls(cfg, names)
    worker = AnalyticsWorker(cfg, redis_server.url, consumer="a")
    await worker.start()
    assert await worker.drain(30)
    await worker.stop()
    store = SqliteStore(tmp_path / "store.db")
    first = StoreIngest(cfg, redis_server.url, store, consumer="s1")
    first.BATCH = 7
    await first.start()
    for _ in range(5000):
        if first.entries >= 20 or first._task.done():
            break
        await asyncio.sleep(0.001)
    assert not first._task.done(), first._task.exception()
    await first.stop()  # stopped mid-stream
    second = StoreIngest(cfg, redis_server.url, store, consumer="s1")
    await second.start()
    assert await second.drain(30)
    await second.stop()
    page = store.search(SearchQuery("投诉"))
    assert {h.utterance.call_id for h in page.hits} >= {"zh_021"}
    rec, utterances = store.call("zh_022")
    assert rec.intent and rec.ended and "escalation" in rec.alerts
    finals = sum(1 for line in (DIALOGUES / "zh_022.txt").read_text(encoding="utf-8").splitlines()
                 if "\t" in line and not line.split("\t", 1)[1].startswith("["))
    assert len(utterances) == finals  # each final once, none lost
    assert store.search(SearchQuery('"speak to"', alert="escalation")).total >= 1 or store.search(SearchQuery("manager")).total >= 1
    store.close()
