"""The PostgreSQL transcript store: the interface and the search results of :class:`~.sqlite.SqliteStore`, for
a contact center that already runs PostgreSQL or has several gateways writing to one store.

Full text: PostgreSQL's parser does not segment Chinese (on a C-locale server ``to_tsvector('simple', ...)``
makes 我家宽带又断了，我要投诉 one word, Chinese comma included), so it is not used at all. Each utterance's
``tsvector`` is written here from query.py's own index tokens: the ``bi`` column of the SQLite index (Han
bigrams, words) with weight A, the ``uni`` column (single Han characters) with weight B, after the ``bi``
positions. A query becomes the ``tsquery`` twin of its FTS5 expression: a word is the phrase (``<->``) of
its tokens restricted to weight A, a one-character Chinese query that character with weight B, ``OR`` is
``|``, ``-x`` is ``& !``, ``word*`` is ``:*``. Both sides are split where FTS5's ``unicode61`` tokenizer
splits (``'`` and ``_`` inside words), so ``it's`` finds what it finds in SQLite. A GIN index answers ``@@``.
Tables: ``calls`` (with ``caller_key`` for caller history), ``utterances`` (with the ``tsv`` column), ``tickets``
and ``assist_events``, as in SQLite (and scores.py's QA scorecard tables), in one schema (``callscribe`` unless told; tests use one per test).

One connection guarded by a lock, like SqliteStore; it is reopened when the server drops it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import fields
from typing import Any, Callable, Sequence, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from callscribe.keyword.repeat import caller_key
from callscribe.reports.tables import ReportTables

from .base import (TICKET_COLS, AssistEvent, CallRecord, SearchPage, SearchQuery, StoreError, TicketRecord, Utterance,
                   fields_set_by, filter_clauses, masked, page_bounds, query_terms, search_page, ticket_from_row, ticket_row)
from .query import Term, han_tokens, index_tokens, pieces_of
from .scores import PostgresRunner, ScoreTables, score_filters

__all__ = ["PostgresStore"]

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.calls (
    call_id text PRIMARY KEY, started_at_ms bigint NOT NULL DEFAULT 0, duration_ms bigint NOT NULL DEFAULT 0,
    ended boolean NOT NULL DEFAULT false, agent_id text NOT NULL DEFAULT '', queue text NOT NULL DEFAULT '',
    caller text NOT NULL DEFAULT '', language text NOT NULL DEFAULT '', intent text NOT NULL DEFAULT '',
    intent_score double precision NOT NULL DEFAULT 0, unresolved boolean NOT NULL DEFAULT false,
    alerts text[] NOT NULL DEFAULT '{{}}', reasons text[] NOT NULL DEFAULT '{{}}'
);
ALTER TABLE {s}.calls ADD COLUMN IF NOT EXISTS quotes text[] NOT NULL DEFAULT '{{}}';
ALTER TABLE {s}.calls ADD COLUMN IF NOT EXISTS caller_key text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS calls_started ON {s}.calls(started_at_ms);
CREATE INDEX IF NOT EXISTS calls_agent ON {s}.calls(agent_id);
CREATE INDEX IF NOT EXISTS calls_caller ON {s}.calls(caller_key, started_at_ms);
CREATE TABLE IF NOT EXISTS {s}.tickets (
    ticket_id text PRIMARY KEY, call_id text NOT NULL, type text NOT NULL, priority text NOT NULL,
    status text NOT NULL DEFAULT 'open', title text NOT NULL DEFAULT '', subtype text NOT NULL DEFAULT '',
    intent text NOT NULL DEFAULT '', summary text NOT NULL DEFAULT '[]', fields text NOT NULL DEFAULT '{{}}',
    caller text NOT NULL DEFAULT '', agent_id text NOT NULL DEFAULT '', created_by text NOT NULL DEFAULT '',
    created_at_ms bigint NOT NULL DEFAULT 0
);
ALTER TABLE {s}.tickets ADD COLUMN IF NOT EXISTS status_note text NOT NULL DEFAULT '';
ALTER TABLE {s}.tickets ADD COLUMN IF NOT EXISTS external_id text NOT NULL DEFAULT '';
ALTER TABLE {s}.tickets ADD COLUMN IF NOT EXISTS status_at_ms bigint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS tickets_call ON {s}.tickets(call_id, created_at_ms);
CREATE TABLE IF NOT EXISTS {s}.assist_events (
    call_id text NOT NULL, card_kind text NOT NULL, card_id text NOT NULL, action text NOT NULL,
    agent_id text NOT NULL DEFAULT '', at_ms bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (call_id, card_kind, card_id, action)
);
CREATE INDEX IF NOT EXISTS assist_events_at ON {s}.assist_events(at_ms);
CREATE TABLE IF NOT EXISTS {s}.utterances (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, call_id text NOT NULL, segment_id text NOT NULL UNIQUE,
    channel text NOT NULL, start_ms bigint NOT NULL, end_ms bigint NOT NULL, text text NOT NULL,
    at_ms bigint NOT NULL, tsv tsvector NOT NULL
);
CREATE INDEX IF NOT EXISTS utterances_call ON {s}.utterances(call_id, start_ms);
CREATE INDEX IF NOT EXISTS utterances_at ON {s}.utterances(at_ms);
CREATE INDEX IF NOT EXISTS utterances_tsv ON {s}.utterances USING gin(tsv) WITH (gin_pending_list_limit = 256);
"""
# A small GIN pending list (256 kB, not the default 4 MB): new entries wait there until it is full, and every
# search scans it. Measured at 100k utterances (benchmarks/search.py, 2 cores): with 4 MB the query p50 was
# 4.3 ms against 2.7 ms; with no pending list (fastupdate off) ingest halved (4,900/s against 9,900/s).

# One statement per batch: rows in order (ids follow it, as SQLite's rowids do), a redelivered segment
# skipped, a call row for every call mentioned (in key order, so concurrent writers cannot deadlock).
ADD_UTTERANCES = """
WITH rows AS (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::bigint[],
                         %s::text[]) WITH ORDINALITY AS r(call_id, segment_id, channel, start_ms, end_ms, text, at_ms, tsv, n)
), added AS (
    INSERT INTO {s}.utterances(call_id, segment_id, channel, start_ms, end_ms, text, at_ms, tsv)
    SELECT call_id, segment_id, channel, start_ms, end_ms, text, at_ms, tsv::tsvector FROM rows ORDER BY n
    ON CONFLICT (segment_id) DO NOTHING RETURNING 1
), calls AS (
    INSERT INTO {s}.calls(call_id) SELECT DISTINCT call_id FROM rows ORDER BY 1 ON CONFLICT DO NOTHING
)
SELECT count(*) FROM added
"""

_CALL_COLS = [f.name for f in fields(CallRecord)]
_UTTERANCE_COLS = "u.call_id, u.segment_id, u.channel, u.start_ms, u.end_ms, u.text, u.at_ms"
_LEXEME = re.compile(r"[^\W_]+")  # what FTS5's unicode61 keeps as one token: a run of letters and digits
_MAX_LEXEME = 2046  # bytes PostgreSQL allows in one lexeme; only an absurd "word" is longer (and ASCII)
_BI, _UNI = "A", "B"  # the tsvector weights standing for the SQLite index's two columns

T = TypeVar("T")


class PostgresStore:
    def __init__(self, dsn: str, schema: str = "callscribe", connect_timeout_s: int = 10) -> None:
        """Connect to ``dsn`` (a ``postgresql://`` URL or ``key=value`` string) and create the tables in
        ``schema`` if they are missing. Raises :class:`StoreError` when the DSN is malformed or the server
        cannot be reached within ``connect_timeout_s`` (unless the DSN sets its own ``connect_timeout``)."""
        self.dsn = dsn
        self.schema = schema
        try:
            self._params: dict[str, Any] = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"invalid PostgreSQL DSN {masked(dsn)}: {str(exc).strip()}") from exc
        self._params.setdefault("connect_timeout", connect_timeout_s)
        self._params.setdefault("application_name", "callscribe")
        self._lock = threading.Lock()
        self._db = self._connect()
        try:
            with self._db.transaction():
                # concurrent first starts (several gateways) would race on CREATE ... IF NOT EXISTS
                self._db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"callscribe.schema.{schema}",))
                older = self._db.execute(
                    "SELECT count(*) FILTER (WHERE column_name = 'caller_key'), count(*) FROM information_schema.columns"
                    " WHERE table_schema = %s AND table_name = 'calls'", (schema,)).fetchone()
                self._db.execute(self._sql(SCHEMA))
                if older and older[1] and not older[0]:  # a store from before caller history: key its callers once
                    rows = self._db.execute(self._sql("SELECT call_id, caller FROM {s}.calls WHERE caller != ''")).fetchall()
                    with self._db.cursor() as cur:
                        cur.executemany(self._sql("UPDATE {s}.calls SET caller_key = %s WHERE call_id = %s"),
                                        [(caller_key(c), i) for i, c in rows])
            self.scores = ScoreTables(PostgresRunner(self), schema)  # QA scorecards (scores.py)
            self.reports = ReportTables.postgres(self, schema)  # report aggregates (callscribe/reports)
        except psycopg.Error as exc:
            self._db.close()
            raise StoreError(f"cannot create the tables in schema {schema!r} at {masked(dsn)}: {str(exc).strip()}") from exc

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(**self._params, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {masked(self.dsn)}: {str(exc).strip()}") from exc

    def _sql(self, query: str) -> sql.Composed:
        return sql.SQL(query).format(s=sql.Identifier(self.schema))  # type: ignore[arg-type]

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` under the lock. If the server dropped the connection (restart, failover, idle timeout),
        reconnect and run it once more, so the ingest consumer does not die of a PostgreSQL restart. Every
        operation is idempotent; at worst a batch that committed just before the drop counts 0 new rows."""
        with self._lock:
            try:
                return work(self._db)
            except psycopg.OperationalError:
                if not self._db.broken:
                    raise
                self._db = self._connect()
                return work(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writes --------------------------------------------------------------------------------------
    def add_utterances(self, rows: Sequence[Utterance]) -> int:
        if not rows:
            return 0
        columns = [list(col) for col in zip(*((u.call_id, u.segment_id, u.channel, u.start_ms, u.end_ms, u.text,
                                               u.at_ms, _tsvector(u.text)) for u in rows))]
        query = self._sql(ADD_UTTERANCES)

        def work(db: psycopg.Connection[Any]) -> int:
            row = db.execute(query, columns).fetchone()
            return int(row[0]) if row else 0

        return self._run(work)

    def upsert_call(self, call: CallRecord) -> None:
        """One atomic statement, so two writers cannot interleave a read and a write. Which columns an
        update writes depends only on ``call``: :func:`~.base.fields_set_by`, the rule SqliteStore merges by."""
        changed = fields_set_by(call)
        if "caller" in changed:
            changed.append("caller_key")
        update = ("DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in changed)) if changed else "DO NOTHING"
        query = self._sql(f"INSERT INTO {{s}}.calls({', '.join(_CALL_COLS)}, caller_key)"
                          f" VALUES ({', '.join(['%s'] * (len(_CALL_COLS) + 1))}) ON CONFLICT (call_id) {update}")
        values = [list(v) if isinstance(v, tuple) else v for v in (getattr(call, c) for c in _CALL_COLS)]
        values.append(caller_key(call.caller))
        self._run(lambda db: db.execute(query, values))

    def add_ticket(self, ticket: TicketRecord) -> bool:
        query = self._sql(f"INSERT INTO {{s}}.tickets({', '.join(TICKET_COLS)}) VALUES ({', '.join(['%s'] * len(TICKET_COLS))})"
                          " ON CONFLICT (ticket_id) DO NOTHING")
        return bool(self._run(lambda db: db.execute(query, ticket_row(ticket)).rowcount))

    def set_ticket_status(self, ticket_id: str, status: str, note: str, external_id: str, at_ms: int) -> bool:
        query = self._sql("UPDATE {s}.tickets SET status = %s, status_note = %s,"
                          " external_id = CASE WHEN %s::text = '' THEN external_id ELSE %s::text END, status_at_ms = %s"
                          " WHERE ticket_id = %s AND status_at_ms <= %s")
        args = (status, note, external_id, external_id, at_ms, ticket_id, at_ms)
        return bool(self._run(lambda db: db.execute(query, args).rowcount))

    def add_assist_events(self, rows: Sequence[AssistEvent]) -> int:
        if not rows:
            return 0
        query = self._sql(
            "INSERT INTO {s}.assist_events(call_id, card_kind, card_id, action, agent_id, at_ms)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[])"
            " ON CONFLICT DO NOTHING")
        columns = [list(col) for col in zip(*((r.call_id, r.card_kind, r.card_id, r.action, r.agent_id, r.at_ms) for r in rows))]
        return int(self._run(lambda db: db.execute(query, columns).rowcount))

    # --- reads ---------------------------------------------------------------------------------------
    def call(self, call_id: str) -> tuple[CallRecord, list[Utterance]] | None:
        call_q = self._sql(f"SELECT {', '.join(_CALL_COLS)} FROM {{s}}.calls WHERE call_id = %s")
        rows_q = self._sql(f"SELECT {_UTTERANCE_COLS} FROM {{s}}.utterances u WHERE u.call_id = %s ORDER BY u.start_ms, u.id")

        def work(db: psycopg.Connection[Any]) -> tuple[CallRecord, list[Utterance]] | None:
            rec = db.execute(call_q, (call_id,)).fetchone()
            if rec is None:
                return None
            return _call_from_row(rec), [Utterance(*r) for r in db.execute(rows_q, (call_id,)).fetchall()]

        return self._run(work)

    def tickets(self, call_ids: Sequence[str]) -> list[TicketRecord]:
        ids = list(dict.fromkeys(call_ids))
        if not ids:
            return []
        query = self._sql(f"SELECT {', '.join(TICKET_COLS)} FROM {{s}}.tickets WHERE call_id = ANY(%s)"
                          " ORDER BY created_at_ms, ticket_id")
        return [ticket_from_row(r) for r in self._run(lambda db: db.execute(query, (ids,)).fetchall())]

    def ticket(self, ticket_id: str) -> TicketRecord | None:
        query = self._sql(f"SELECT {', '.join(TICKET_COLS)} FROM {{s}}.tickets WHERE ticket_id = %s")
        row = self._run(lambda db: db.execute(query, (ticket_id,)).fetchone())
        return ticket_from_row(row) if row else None

    def caller_calls(self, caller: str, since_ms: int, until_ms: int, limit: int = 50) -> list[CallRecord]:
        key = caller_key(caller)
        if not key:
            return []
        query = self._sql(f"SELECT {', '.join(_CALL_COLS)} FROM {{s}}.calls WHERE caller_key = %s AND started_at_ms >= %s"
                          " AND started_at_ms < %s ORDER BY started_at_ms DESC LIMIT %s")
        args = (key, since_ms, until_ms, max(1, min(limit, 500)))
        return [_call_from_row(r) for r in self._run(lambda db: db.execute(query, args).fetchall())]

    def assist_counts(self, since_ms: int | None = None, until_ms: int | None = None) -> list[tuple[str, str, str, str, int]]:
        where, args = [], []
        if since_ms is not None:
            where.append("at_ms >= %s")
            args.append(since_ms)
        if until_ms is not None:
            where.append("at_ms < %s")
            args.append(until_ms)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        query = self._sql(f"SELECT card_kind, card_id, agent_id, action, count(*) FROM {{s}}.assist_events {clause}"
                          " GROUP BY card_kind, card_id, agent_id, action")
        return [(r[0], r[1], r[2], r[3], int(r[4])) for r in self._run(lambda db: db.execute(query, args).fetchall())]

    def search(self, q: SearchQuery) -> SearchPage:
        t0 = time.perf_counter()
        terms = query_terms(q)
        where, args = filter_clauses(q, "%s")
        if terms:
            where.append("u.tsv @@ %s::tsquery")
            args.append(_tsquery(terms))
        if q.alert:
            where.append("%s = ANY(c.alerts)")
            args.append(q.alert)
        score_where, score_args = score_filters(q, "{s}.")
        where += [w.replace("?", "%s") for w in score_where]
        args += score_args
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        # LEFT JOIN gives the rows of a JOIN (every utterance has its call row: add_utterances writes both
        # in one statement) but lets PostgreSQL skip the calls table when no filter needs it
        base = f"FROM {{s}}.utterances u LEFT JOIN {{s}}.calls c ON c.call_id = u.call_id {clause}"
        limit, offset = page_bounds(q)
        count_q = self._sql(f"SELECT count(*) {base}")
        page_q = self._sql(f"SELECT {_UTTERANCE_COLS}, {', '.join('c.' + c for c in _CALL_COLS)} {base}"
                           " ORDER BY u.at_ms DESC, u.id DESC LIMIT %s OFFSET %s")

        def work(db: psycopg.Connection[Any]) -> tuple[int, list[Any]]:
            total = db.execute(count_q, args).fetchone()
            return (total[0] if total else 0), db.execute(page_q, [*args, limit, offset]).fetchall()

        total, rows = self._run(work)
        return search_page(rows, total, terms, q, t0, _call_from_row)


def _call_from_row(row: Sequence[Any]) -> CallRecord:
    d = dict(zip(_CALL_COLS, row))
    d["alerts"] = tuple(d["alerts"])
    d["reasons"] = tuple(d["reasons"])
    d["quotes"] = tuple(d["quotes"])
    return CallRecord(**d)


def _lexeme(token: str) -> str:
    """A quoted lexeme for a tsvector/tsquery literal (quotes doubled, backslashes escaped)."""
    return "'" + token[:_MAX_LEXEME].replace("\\", "\\\\").replace("'", "''") + "'"


def _tsvector(text: str) -> str:
    """The tsvector literal of an utterance: the ``bi`` tokens at positions 1..n with weight A, then the
    ``uni`` characters with weight B (positions past 16383 or the 256th of one lexeme are capped by
    PostgreSQL, far beyond one final's length)."""
    bi, uni = index_tokens(text)
    bi_tokens = _LEXEME.findall(bi)
    entries = [f"{_lexeme(t)}:{i}{_BI}" for i, t in enumerate(bi_tokens, 1)]
    entries += [f"{_lexeme(t)}:{i}{_UNI}" for i, t in enumerate(_LEXEME.findall(uni), len(bi_tokens) + 1)]
    return " ".join(entries)


def _ts_phrase(option: str) -> str:
    """One query word or quoted phrase as a tsquery: what ``query._fts_phrase`` makes of it for FTS5."""
    pieces = pieces_of(option)
    if len(pieces) == 1 and pieces[0][0] == "han" and len(pieces[0][1]) == 1:
        return f"{_lexeme(pieces[0][1])}:{_UNI}"
    raw: list[str] = []
    for kind, piece in pieces:
        raw.extend(han_tokens(piece) if kind == "han" else [piece])
    tokens = _LEXEME.findall(" ".join(raw))
    lexemes = [f"{_lexeme(t)}:{_BI}" for t in tokens]
    if len(pieces) == 1 and pieces[0][1].endswith("*"):  # FTS5 makes the phrase's last token the prefix
        lexemes[-1] = f"{_lexeme(tokens[-1])}:*{_BI}"
    return "(" + " <-> ".join(lexemes) + ")"


def _tsquery(terms: list[Term]) -> str:
    """The tsquery of parsed terms, as ``query.to_fts`` builds the FTS5 expression."""
    positive, negative = [], []
    for t in terms:
        expr = "(" + " | ".join(_ts_phrase(x) for x in (t.text, *t.alternatives)) + ")"
        (negative if t.negated else positive).append(expr)
    return " & ".join(positive + ["!" + n for n in negative])
