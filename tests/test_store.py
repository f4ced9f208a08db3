"""Transcript store and search (gateway/store): Chinese bigram indexing, query syntax, highlights, filters,
and the Redis consumer that fills it (real Redis, with the analytics worker's summaries). Every store test
runs on both backends: SQLite, and PostgreSQL on a real server the session starts (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscribe.config import Config
from callscribe.gateway.store import (CallRecord, PostgresStore, QueryError, SearchQuery, SqliteStore, StoreError,
                                      TranscriptStore, Utterance, open_store, parse_query)
from callscribe.gateway.store.ingest import StoreIngest
from callscribe.gateway.store.postgres import _lexeme
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


def _pg_store(dsn: str) -> PostgresStore:
    """A PostgresStore in a schema of its own: tests share the session's server, not each other's rows."""
    return PostgresStore(dsn, schema=f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgres"])
def new_store(request, tmp_path):
    """Opens empty stores of the backend the test runs on (closed afterwards)."""
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else ""
    opened: list[TranscriptStore] = []

    def make() -> TranscriptStore:
        s = _pg_store(dsn) if dsn else SqliteStore(tmp_path / f"store-{len(opened)}.db")
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(new_store):
    s = new_store()
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
    return s


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


def test_upsert_merges_start_end_and_summaries(new_store):
    s = new_store()
    s.add_utterances([Utterance("c", "c/customer/0", "customer", 0, 1, "你好", 1)])
    assert s.call("c") == (CallRecord("c"), [Utterance("c", "c/customer/0", "customer", 0, 1, "你好", 1)])
    s.upsert_call(CallRecord("c", started_at_ms=5, agent_id="a7", queue="q", caller="138", language="zh"))
    s.upsert_call(CallRecord("c", duration_ms=9, ended=True))  # the end fills in, clears nothing
    s.upsert_call(CallRecord("c", intent="billing", intent_score=0.5, unresolved=True, alerts=("escalation", "legal"),
                             reasons=("no fix",)))
    s.upsert_call(CallRecord("c", unresolved=False))  # not a summary: nothing to change
    assert s.call("c")[0] == CallRecord("c", 5, 9, True, "a7", "q", "138", "zh", "billing", 0.5, True,
                                        ("escalation", "legal"), ("no fix",))
    s.upsert_call(CallRecord("c", intent="billing", intent_score=0.9, language="en"))  # a later summary's verdict wins
    assert s.call("c")[0] == CallRecord("c", 5, 9, True, "a7", "q", "138", "en", "billing", 0.9, False, (), ())
    s.upsert_call(CallRecord("new", queue="vip"))
    assert s.call("new") == (CallRecord("new", queue="vip"), [])
    twice = Utterance("new", "new/agent/0", "agent", 0, 1, "您好", 1)
    assert s.add_utterances([twice, twice]) == 1 and len(s.call("new")[1]) == 1  # a repeat within one batch too


def test_one_character_query_is_unigrams_and_longer_ones_bigram_phrases(new_store):
    s = new_store()
    s.add_utterances([Utterance("c", "c/0", "customer", 0, 1, "网络中断了", 1), Utterance("c", "c/1", "customer", 0, 1, "中 断", 2)])

    def found(q: str) -> list[str]:
        return [h.utterance.segment_id for h in s.search(SearchQuery(q)).hits]

    assert found("断") == ["c/1", "c/0"]  # inside a word too
    assert found("中断") == ["c/0"]
    assert found('"中 断"') == ["c/1"]  # the phrase of the two one-character words, not two adjacent characters
    assert found("断了") == ["c/0"] and found("断 了") == ["c/0"] and found("断 -了") == ["c/1"]


def test_any_query_text_is_searched_or_refused_cleanly(new_store):
    s = new_store()
    s.add_utterances([Utterance("c", "c/customer/0", "customer", 0, 1, 'a "quoted" 投诉 OR NOT * ( ) : ^ it\'s \\', 1)])

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=80))
    def search(text: str) -> None:
        try:
            s.search(SearchQuery(text))
        except QueryError:
            pass

    search()


# --- PostgreSQL only ---------------------------------------------------------------------------------
TRICKY = ["it's a \\ test: 'x'", "don't_stop me now", "it s 断 x 中 断", "投訴！我要投诉，WiFi 5G套餐", "refunded, refunds",
          "a:b & c | !d <-> e:*", "哈哈哈哈", "ｆｕｌｌ－ｗｉｄｔｈ ＷＩＦＩ", "🙂 emoji 投诉🙂"]


def _corpus() -> list[str]:
    lines = []
    for f in sorted(DIALOGUES.glob("*_02*.txt")):
        lines += [line.split("\t", 1)[1] for line in f.read_text(encoding="utf-8").splitlines() if "\t" in line]
    return TRICKY + lines


def _fill(s: TranscriptStore, texts: list[str]) -> None:
    for i in range(4):
        s.upsert_call(CallRecord(f"c{i}", started_at_ms=i * 1000, agent_id=f"a{i % 2}", queue=["q0", "q1", "q2"][i % 3],
                                 intent=["billing", "roaming"][i % 2], unresolved=i % 3 == 0,
                                 alerts=("escalation",) if i % 2 else ("legal", "escalation")))
    rows = [Utterance(f"c{i % 4}", f"c{i % 4}/{['agent', 'customer'][i % 2]}/{i}", ["agent", "customer"][i % 2],
                      i, i + 1, text, (i // 3) * 1000) for i, text in enumerate(texts)]
    assert s.add_utterances(rows) == len(rows)


def test_postgres_answers_every_query_like_sqlite(postgres_dsn, tmp_path):
    """Random queries made of pieces of the stored text (so they hit), with operators, quotes and filters:
    the same totals, hits in the same order, the same highlights and terms from both backends."""
    texts = _corpus()
    sqlite, pg = SqliteStore(tmp_path / "s.db"), _pg_store(postgres_dsn)
    for s in (sqlite, pg):
        _fill(s, texts)
    piece = st.builds(lambda t, i, n: t[i % len(t):i % len(t) + n], st.sampled_from(texts), st.integers(0, 300), st.integers(1, 6))
    word = st.builds(lambda neg, w, quote, star: neg + (f'"{w}"' if quote else w) + star,
                     st.sampled_from(["", "", "-"]), piece, st.booleans(), st.sampled_from(["", "", "*"]))
    query = st.lists(st.one_of(word, st.sampled_from(["OR", "-", '"', "'", "\\", ":", "_"])), min_size=1, max_size=5).map(" ".join)
    filters = st.fixed_dictionaries({}, optional={
        "agent_id": st.sampled_from(["a0", "a1"]), "queue": st.sampled_from(["q0", "q2"]), "intent": st.just("roaming"),
        "unresolved": st.booleans(), "alert": st.sampled_from(["legal", "escalation"]), "channel": st.just("agent"),
        "since_ms": st.integers(0, 30_000), "until_ms": st.integers(0, 30_000), "limit": st.integers(-1, 250),
        "offset": st.integers(-1, 40)})

    def answer(s: TranscriptStore, q: SearchQuery) -> object:
        try:
            page = s.search(q)
        except QueryError as exc:
            return str(exc)
        return page.total, page.offset, page.limit, page.terms, [(h.utterance, h.call, h.highlighted) for h in page.hits]

    @settings(max_examples=500, deadline=None)
    @given(query, filters)
    def same(text: str, f: dict) -> None:
        q = SearchQuery(text, **f)
        assert answer(pg, q) == answer(sqlite, q)

    same()
    assert answer(pg, SearchQuery("投诉", limit=200)) == answer(sqlite, SearchQuery("投诉", limit=200))
    sqlite.close()
    pg.close()


def test_postgres_quotes_lexemes_with_quotes_backslashes_and_colons(postgres_dsn):
    with psycopg.connect(postgres_dsn) as db:
        for token in ["it's", "a\\b", "c:d", "'", "\\", "x':*A | !y", "投诉"]:
            lexemes = db.execute("SELECT tsvector_to_array((%s || ':1A')::tsvector)", (_lexeme(token),)).fetchone()[0]
            assert lexemes == [token]
            assert db.execute("SELECT %s::tsvector @@ %s::tsquery", (_lexeme(token) + ":1A", _lexeme(token) + ":A")).fetchone()[0]
    s = _pg_store(postgres_dsn)
    s.add_utterances([Utterance("c", "c/0", "customer", 0, 1, "it's a \\ test: 'x'", 1)])
    for q in ["it's", "test:", "'x'", '"a \\ test"', "it's*", "s"]:
        assert s.search(SearchQuery(q)).total == 1, q
    assert s.search(SearchQuery("it's")).hits[0].highlighted == "<mark>it&#x27;s</mark> a \\ test: &#x27;x&#x27;"
    assert s.search(SearchQuery("'x y'")).total == 0
    s.close()


def test_postgres_reconnects_when_the_server_drops_it(postgres_dsn):
    s = _pg_store(postgres_dsn)
    s.add_utterances([Utterance("c", "c/0", "customer", 0, 1, "我要投诉", 1)])
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute("SELECT pg_terminate_backend(%s)", (s._db.info.backend_pid,))
    assert s.search(SearchQuery("投诉")).total == 1
    s.close()


def test_postgres_schema_it_cannot_create_is_a_store_error(postgres_dsn):
    with pytest.raises(StoreError, match="cannot create the tables in schema 'pg_reserved'"):
        PostgresStore(postgres_dsn, schema="pg_reserved")


def test_open_store_picks_the_backend(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in [str(tmp_path / "a.db"), "sqlite:///b.db", f"sqlite:///{tmp_path}/c.db", ":memory:", "sqlite://"]:
        s = open_store(url)
        assert isinstance(s, SqliteStore)
        s.close()
    assert {p.name for p in tmp_path.glob("*.db")} == {"a.db", "b.db", "c.db"}
    with pytest.raises(StoreError, match="unsupported store URL mysql://u:\\*\\*\\*@h/db"):
        open_store("mysql://u:pw@h/db")


def test_open_store_opens_postgres_urls(postgres_dsn):
    for url in [postgres_dsn, postgres_dsn.replace("postgresql://", "postgres://")]:
        s = open_store(url)
        assert isinstance(s, PostgresStore) and s.schema == "callscribe"
        s.close()


def test_unreachable_postgres_is_a_store_error_and_fast():
    with socket.socket() as silent:  # accepts connections (backlog) but never answers: only the timeout ends it
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        host, port = silent.getsockname()
        t0 = time.monotonic()
        with pytest.raises(StoreError, match=f"cannot connect to PostgreSQL at postgresql://u:\\*\\*\\*@{host}:{port}/db") as err:
            PostgresStore(f"postgresql://u:s3cret@{host}:{port}/db", connect_timeout_s=1)
        assert time.monotonic() - t0 < 5 and "s3cret" not in str(err.value)
    with pytest.raises(StoreError, match="cannot connect") as err:
        open_store(f"postgresql://u:s3cret@{host}:{port}/db?connect_timeout=1")  # closed now: refused at once
    assert "s3cret" not in str(err.value)
    with pytest.raises(StoreError, match="invalid PostgreSQL DSN"):
        PostgresStore("postgresql://u:s3cret@[::1/db")


# --- filled from Redis -----------------------------------------------------------------------------
@pytest.mark.integration
async def test_ingest_fills_the_store_from_redis_once(redis_server, new_store):
    from callscribe.keyword.worker import AnalyticsWorker

    from .test_analytics_live import _publish_calls

    cfg = Config(redis_url=redis_server.url, key_prefix="st", surge_min_calls=10_000)
    names = ["zh_021", "zh_022", "en_002", "en_023"]
    await _publish_calls(cfg, names)
    worker = AnalyticsWorker(cfg, redis_server.url, consumer="a")
    await worker.start()
    assert await worker.drain(30)
    await worker.stop()
    store = new_store()
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


# --- agent assist: tickets, caller history, card telemetry (gateway/assist) ------------------------------------
def test_tickets_caller_calls_and_assist_events(new_store):
    from callscribe.gateway.store.base import AssistEvent, TicketRecord, adoption_report

    s = new_store()
    s.upsert_call(CallRecord("old", started_at_ms=1_000, caller="+86 138-0013-8000", agent_id="a7"))
    s.upsert_call(CallRecord("old", intent="billing", unresolved=True, reasons=("left pending",)))
    s.upsert_call(CallRecord("old", quotes=('{"channel":"agent","text":"we call you back","start_ms":5,"end_ms":9}',)))
    s.upsert_call(CallRecord("now", started_at_ms=9_000, caller="13800138000"))
    s.upsert_call(CallRecord("other", started_at_ms=2_000, caller="13900000000"))
    rec = s.call("old")[0]
    assert rec.quotes and rec.unresolved and rec.reasons == ("left pending",)
    assert [c.call_id for c in s.caller_calls("138 0013 8000", 0, 9_000)] == ["old"]  # the number in any form
    assert [c.call_id for c in s.caller_calls("13800138000", 0, 10_000)] == ["now", "old"]  # newest first
    assert s.caller_calls("", 0, 10_000) == [] and s.caller_calls("13800138000", 1_001, 9_000) == []
    t = TicketRecord("old:billing_review", "old", "billing_review", "high", summary=("扣了两次",), fields={"amount": "85"},
                     caller="13800138000", agent_id="a7", created_by="agent-1", created_at_ms=3_000)
    assert s.add_ticket(t) is True and s.add_ticket(TicketRecord("old:billing_review", "old", "x", "low")) is False
    assert s.tickets(["old", "now"]) == [t] and s.tickets([]) == []
    rows = [AssistEvent("old", "offer", "o1", "shown", "a7", 10), AssistEvent("old", "offer", "o1", "shown", "a7", 11),
            AssistEvent("old", "offer", "o1", "used", "a7", 12), AssistEvent("now", "offer", "o1", "shown", "a8", 20)]
    assert s.add_assist_events(rows) == 3 and s.add_assist_events([]) == 0
    report = adoption_report(s.assist_counts())
    assert report["cards"] == [{"card_kind": "offer", "card_id": "o1", "shown": 2, "clicked": 0, "used": 1, "dismissed": 0,
                                "adoption": 0.5, "click_rate": 0.0}]
    assert [(a["agent_id"], a["adoption"]) for a in report["agents"]] == [("a7", 1.0), ("a8", 0.0)]
    assert adoption_report(s.assist_counts(since_ms=15))["total"]["shown"] == 1


def test_ticket_status_from_the_ticketing_system(new_store):
    """The latest reported status wins by its change time (a late retry of an older one is ignored); the
    external id stays once reported; an unknown ticket changes nothing."""
    from callscribe.gateway.store.base import TicketRecord

    s = new_store()
    t = TicketRecord("c1:broadband_repair", "c1", "broadband_repair", "high", created_at_ms=5_000)
    assert s.add_ticket(t) is True and s.ticket(t.ticket_id) == t and s.ticket("nope") is None
    assert (t.status, t.status_note, t.external_id, t.status_at_ms) == ("open", "", "", 0)
    assert s.set_ticket_status(t.ticket_id, "in_progress", "工程师周二上门", "CRM-7", 4_000) is True  # CRM clock behind ours
    assert s.set_ticket_status(t.ticket_id, "open", "older, retried late", "", 3_999) is False
    got = s.ticket(t.ticket_id)
    assert (got.status, got.status_note, got.external_id, got.status_at_ms) == ("in_progress", "工程师周二上门", "CRM-7", 4_000)
    assert s.set_ticket_status(t.ticket_id, "resolved", "", "", 9_000) is True
    assert s.set_ticket_status(t.ticket_id, "resolved", "", "", 9_000) is True  # the same again: same row
    got = s.ticket(t.ticket_id)
    assert (got.status, got.status_note, got.external_id, got.status_at_ms) == ("resolved", "", "CRM-7", 9_000)
    assert s.tickets(["c1"]) == [got] and got.to_dict()["external_id"] == "CRM-7"
    assert s.set_ticket_status("nope", "closed", "", "", 10_000) is False and s.ticket("nope") is None


def test_sqlite_tickets_from_before_ticket_status_are_migrated(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE tickets (ticket_id TEXT PRIMARY KEY, call_id TEXT NOT NULL, type TEXT NOT NULL, priority TEXT"
               " NOT NULL, status TEXT NOT NULL DEFAULT 'open', title TEXT NOT NULL DEFAULT '', subtype TEXT NOT NULL DEFAULT"
               " '', intent TEXT NOT NULL DEFAULT '', summary TEXT NOT NULL DEFAULT '[]', fields TEXT NOT NULL DEFAULT '{}',"
               " caller TEXT NOT NULL DEFAULT '', agent_id TEXT NOT NULL DEFAULT '', created_by TEXT NOT NULL DEFAULT '',"
               " created_at_ms INTEGER NOT NULL DEFAULT 0)")
    db.execute("INSERT INTO tickets(ticket_id, call_id, type, priority) VALUES ('t1', 'c', 'x', 'low')")
    db.commit()
    db.close()
    s = SqliteStore(path)
    try:
        assert s.set_ticket_status("t1", "closed", "done", "EXT-1", 5) is True
        assert s.ticket("t1").external_id == "EXT-1"
    finally:
        s.close()


def test_sqlite_store_from_before_caller_history_is_migrated(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE calls (call_id TEXT PRIMARY KEY, started_at_ms INTEGER NOT NULL DEFAULT 0, duration_ms INTEGER"
               " NOT NULL DEFAULT 0, ended INTEGER NOT NULL DEFAULT 0, agent_id TEXT NOT NULL DEFAULT '', queue TEXT NOT NULL"
               " DEFAULT '', caller TEXT NOT NULL DEFAULT '', language TEXT NOT NULL DEFAULT '', intent TEXT NOT NULL DEFAULT"
               " '', intent_score REAL NOT NULL DEFAULT 0, unresolved INTEGER NOT NULL DEFAULT 0, alerts TEXT NOT NULL DEFAULT"
               " '[]', reasons TEXT NOT NULL DEFAULT '[]')")
    db.execute("INSERT INTO calls(call_id, started_at_ms, caller) VALUES ('c', 5, '138 0013 8000')")
    db.commit()
    db.close()
    s = SqliteStore(path)
    try:
        assert s.call("c")[0] == CallRecord("c", started_at_ms=5, caller="138 0013 8000")
        assert [c.call_id for c in s.caller_calls("13800138000", 0, 10)] == ["c"]
    finally:
        s.close()


def test_postgres_store_from_before_caller_history_is_migrated(postgres_dsn):
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(f"CREATE TABLE {schema}.calls (call_id text PRIMARY KEY, started_at_ms bigint NOT NULL DEFAULT 0,"
                   " duration_ms bigint NOT NULL DEFAULT 0, ended boolean NOT NULL DEFAULT false, agent_id text NOT NULL"
                   " DEFAULT '', queue text NOT NULL DEFAULT '', caller text NOT NULL DEFAULT '', language text NOT NULL"
                   " DEFAULT '', intent text NOT NULL DEFAULT '', intent_score double precision NOT NULL DEFAULT 0,"
                   " unresolved boolean NOT NULL DEFAULT false, alerts text[] NOT NULL DEFAULT '{}', reasons text[] NOT NULL"
                   " DEFAULT '{}')")
        db.execute(f"INSERT INTO {schema}.calls(call_id, started_at_ms, caller) VALUES ('c', 5, '138 0013 8000')")
    s = PostgresStore(postgres_dsn, schema=schema)
    try:
        assert s.call("c")[0] == CallRecord("c", started_at_ms=5, caller="138 0013 8000")
        assert [c.call_id for c in s.caller_calls("13800138000", 0, 10)] == ["c"]
    finally:
        s.close()


def test_postgres_tickets_from_before_ticket_status_are_migrated(postgres_dsn):
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(f"CREATE TABLE {schema}.tickets (ticket_id text PRIMARY KEY, call_id text NOT NULL, type text NOT NULL,"
                   " priority text NOT NULL, status text NOT NULL DEFAULT 'open', title text NOT NULL DEFAULT '', subtype text"
                   " NOT NULL DEFAULT '', intent text NOT NULL DEFAULT '', summary text NOT NULL DEFAULT '[]', fields text NOT"
                   " NULL DEFAULT '{}', caller text NOT NULL DEFAULT '', agent_id text NOT NULL DEFAULT '', created_by text NOT"
                   " NULL DEFAULT '', created_at_ms bigint NOT NULL DEFAULT 0)")
        db.execute(f"INSERT INTO {schema}.tickets(ticket_id, call_id, type, priority) VALUES ('t1', 'c', 'x', 'low')")
    s = PostgresStore(postgres_dsn, schema=schema)
    try:
        assert s.set_ticket_status("t1", "closed", "done", "EXT-1", 5) is True
        assert (s.ticket("t1").status, s.ticket("t1").external_id) == ("closed", "EXT-1")
    finally:
        s.close()
