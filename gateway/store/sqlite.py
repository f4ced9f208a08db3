"""The default transcript store: one SQLite file, FTS5 over pre-tokenised text (see query.py), WAL mode.

Why SQLite by default: it needs no server, a 100,000-utterance index answers in milliseconds (measured
by benchmarks/search.py), and a contact center can start with it and move to PostgreSQL behind the same
interface. Tables: ``calls`` (one row per call, filled in as start, end and analytics arrive; ``caller_key``
the number's digits for caller history), ``utterances`` (one row per final; ``segment_id`` unique, so a
redelivered final is a no-op), the contentless FTS5 table ``utterances_fts`` (columns ``bi`` and ``uni``,
rowid = utterance id), ``tickets`` (submitted tickets, by ``ticket_id``) and ``assist_events`` (the agent
desk's card telemetry, one row per call, card and action); the QA scorecard tables are scores.py's.
Thread-safe: one connection guarded by a lock (calls are short; the API runs them in a thread).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Sequence

from callscribe.keyword.repeat import caller_key
from callscribe.reports.tables import ReportTables

from .base import (TICKET_COLS, AssistEvent, CallRecord, SearchPage, SearchQuery, TicketRecord, Utterance, fields_set_by,
                   filter_clauses, page_bounds, query_terms, search_page, ticket_from_row, ticket_row)
from .query import index_tokens, to_fts
from .scores import ScoreTables, SqliteRunner, score_filters

__all__ = ["SqliteStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY, started_at_ms INTEGER NOT NULL DEFAULT 0, duration_ms INTEGER NOT NULL DEFAULT 0,
    ended INTEGER NOT NULL DEFAULT 0, agent_id TEXT NOT NULL DEFAULT '', queue TEXT NOT NULL DEFAULT '',
    caller TEXT NOT NULL DEFAULT '', language TEXT NOT NULL DEFAULT '', intent TEXT NOT NULL DEFAULT '',
    intent_score REAL NOT NULL DEFAULT 0, unresolved INTEGER NOT NULL DEFAULT 0,
    alerts TEXT NOT NULL DEFAULT '[]', reasons TEXT NOT NULL DEFAULT '[]', quotes TEXT NOT NULL DEFAULT '[]',
    caller_key TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS calls_started ON calls(started_at_ms);
CREATE INDEX IF NOT EXISTS calls_agent ON calls(agent_id);
CREATE TABLE IF NOT EXISTS tickets (
    ticket_id TEXT PRIMARY KEY, call_id TEXT NOT NULL, type TEXT NOT NULL, priority TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open', title TEXT NOT NULL DEFAULT '', subtype TEXT NOT NULL DEFAULT '',
    intent TEXT NOT NULL DEFAULT '', summary TEXT NOT NULL DEFAULT '[]', fields TEXT NOT NULL DEFAULT '{}',
    caller TEXT NOT NULL DEFAULT '', agent_id TEXT NOT NULL DEFAULT '', created_by TEXT NOT NULL DEFAULT '',
    created_at_ms INTEGER NOT NULL DEFAULT 0, status_note TEXT NOT NULL DEFAULT '', external_id TEXT NOT NULL DEFAULT '',
    status_at_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tickets_call ON tickets(call_id, created_at_ms);
CREATE TABLE IF NOT EXISTS assist_events (
    call_id TEXT NOT NULL, card_kind TEXT NOT NULL, card_id TEXT NOT NULL, action TEXT NOT NULL,
    agent_id TEXT NOT NULL DEFAULT '', at_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (call_id, card_kind, card_id, action)
);
CREATE INDEX IF NOT EXISTS assist_events_at ON assist_events(at_ms);
CREATE TABLE IF NOT EXISTS utterances (
    id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, segment_id TEXT NOT NULL UNIQUE, channel TEXT NOT NULL,
    start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, text TEXT NOT NULL, at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS utterances_call ON utterances(call_id, start_ms);
CREATE INDEX IF NOT EXISTS utterances_at ON utterances(at_ms);
CREATE VIRTUAL TABLE IF NOT EXISTS utterances_fts USING fts5(bi, uni, content='', tokenize='unicode61 remove_diacritics 0');
"""

_CALL_COLS = [f.name for f in fields(CallRecord)]
# Columns added after the first release: an older file gets them on open (CREATE TABLE IF NOT EXISTS does not)
_ADDED_COLUMNS = (("calls", "quotes", "TEXT NOT NULL DEFAULT '[]'"), ("calls", "caller_key", "TEXT NOT NULL DEFAULT ''"),
                  ("tickets", "status_note", "TEXT NOT NULL DEFAULT ''"), ("tickets", "external_id", "TEXT NOT NULL DEFAULT ''"),
                  ("tickets", "status_at_ms", "INTEGER NOT NULL DEFAULT 0"))


def _private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if missing, else chmod it to 0600 (SQLite keeps the mode of
    the main file for its -wal and -shm files)."""
    try:
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
    except OSError:
        pass  # a read-only or foreign file: sqlite's own error says more


class SqliteStore:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            _private(Path(self.path).expanduser())  # the file holds caller numbers: this user only
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            self._db.executescript(SCHEMA)
            self._db.execute("CREATE INDEX IF NOT EXISTS calls_caller ON calls(caller_key, started_at_ms)")
        self.scores = ScoreTables(SqliteRunner(self._db, self._lock))  # QA scorecards (scores.py)
        self.reports = ReportTables.sqlite(self._db, self._lock)  # report aggregates (callscribe/reports)
        if self.path != ":memory:":
            for suffix in ("", "-wal", "-shm"):
                _private(Path(self.path + suffix).expanduser())

    def _migrate(self) -> None:
        """Add the columns an older store lacks, and fill ``caller_key`` for its calls. A table the file does
        not have yet is left to SCHEMA, which creates it whole."""
        columns = {t: {r[1] for r in self._db.execute(f"PRAGMA table_info({t})").fetchall()}
                   for t in {t for t, _, _ in _ADDED_COLUMNS}}
        for table, column, decl in _ADDED_COLUMNS:
            if columns[table] and column not in columns[table]:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        have = columns["calls"]
        if have and "caller_key" not in have:
            rows = self._db.execute("SELECT call_id, caller FROM calls WHERE caller != ''").fetchall()
            self._db.executemany("UPDATE calls SET caller_key = ? WHERE call_id = ?", [(caller_key(c), i) for i, c in rows])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writes --------------------------------------------------------------------------------------
    def add_utterances(self, rows: Sequence[Utterance]) -> int:
        added = 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for u in rows:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO utterances(call_id, segment_id, channel, start_ms, end_ms, text, at_ms)"
                        " VALUES (?,?,?,?,?,?,?)",
                        (u.call_id, u.segment_id, u.channel, u.start_ms, u.end_ms, u.text, u.at_ms),
                    )
                    if cur.rowcount:
                        bi, uni = index_tokens(u.text)
                        self._db.execute("INSERT INTO utterances_fts(rowid, bi, uni) VALUES (?,?,?)", (cur.lastrowid, bi, uni))
                        added += 1
                    self._db.execute("INSERT OR IGNORE INTO calls(call_id) VALUES (?)", (u.call_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def upsert_call(self, call: CallRecord) -> None:
        with self._lock:
            old = self._call_row(call.call_id)
            merged = call if old is None else _merge(old, call)
            values = [_to_sql(getattr(merged, c)) for c in _CALL_COLS] + [caller_key(merged.caller)]
            self._db.execute(
                f"INSERT OR REPLACE INTO calls({', '.join(_CALL_COLS)}, caller_key) VALUES ({', '.join('?' * (len(_CALL_COLS) + 1))})",
                values,
            )

    def add_ticket(self, ticket: TicketRecord) -> bool:
        with self._lock:
            cur = self._db.execute(
                f"INSERT OR IGNORE INTO tickets({', '.join(TICKET_COLS)}) VALUES ({', '.join('?' * len(TICKET_COLS))})",
                ticket_row(ticket),
            )
            return bool(cur.rowcount)

    def set_ticket_status(self, ticket_id: str, status: str, note: str, external_id: str, at_ms: int) -> bool:
        with self._lock:
            cur = self._db.execute(
                "UPDATE tickets SET status = ?, status_note = ?, external_id = CASE WHEN ? = '' THEN external_id ELSE ? END,"
                " status_at_ms = ? WHERE ticket_id = ? AND status_at_ms <= ?",
                (status, note, external_id, external_id, at_ms, ticket_id, at_ms))
            return bool(cur.rowcount)

    def add_assist_events(self, rows: Sequence[AssistEvent]) -> int:
        added = 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for r in rows:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO assist_events(call_id, card_kind, card_id, action, agent_id, at_ms)"
                        " VALUES (?,?,?,?,?,?)", (r.call_id, r.card_kind, r.card_id, r.action, r.agent_id, r.at_ms))
                    added += cur.rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    # --- reads ---------------------------------------------------------------------------------------
    def _call_row(self, call_id: str) -> CallRecord | None:
        row = self._db.execute(f"SELECT {', '.join(_CALL_COLS)} FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return _call_from_row(row) if row else None

    def call(self, call_id: str) -> tuple[CallRecord, list[Utterance]] | None:
        with self._lock:
            rec = self._call_row(call_id)
            if rec is None:
                return None
            rows = self._db.execute(
                "SELECT call_id, segment_id, channel, start_ms, end_ms, text, at_ms FROM utterances"
                " WHERE call_id = ? ORDER BY start_ms, id", (call_id,)
            ).fetchall()
        return rec, [Utterance(*r) for r in rows]

    def tickets(self, call_ids: Sequence[str]) -> list[TicketRecord]:
        ids = list(dict.fromkeys(call_ids))
        if not ids:
            return []
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(TICKET_COLS)} FROM tickets WHERE call_id IN ({', '.join('?' * len(ids))})"
                " ORDER BY created_at_ms, ticket_id", ids,
            ).fetchall()
        return [ticket_from_row(r) for r in rows]

    def ticket(self, ticket_id: str) -> TicketRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(TICKET_COLS)} FROM tickets WHERE ticket_id = ?", (ticket_id,)).fetchone()
        return ticket_from_row(row) if row else None

    def caller_calls(self, caller: str, since_ms: int, until_ms: int, limit: int = 50) -> list[CallRecord]:
        key = caller_key(caller)
        if not key:
            return []
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_CALL_COLS)} FROM calls WHERE caller_key = ? AND started_at_ms >= ? AND started_at_ms < ?"
                " ORDER BY started_at_ms DESC LIMIT ?", (key, since_ms, until_ms, max(1, min(limit, 500))),
            ).fetchall()
        return [_call_from_row(r) for r in rows]

    def assist_counts(self, since_ms: int | None = None, until_ms: int | None = None) -> list[tuple[str, str, str, str, int]]:
        where, args = [], []
        if since_ms is not None:
            where.append("at_ms >= ?")
            args.append(since_ms)
        if until_ms is not None:
            where.append("at_ms < ?")
            args.append(until_ms)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT card_kind, card_id, agent_id, action, count(*) FROM assist_events {clause}"
                " GROUP BY card_kind, card_id, agent_id, action", args,
            ).fetchall()
        return [tuple(r) for r in rows]

    def search(self, q: SearchQuery) -> SearchPage:
        t0 = time.perf_counter()
        terms = query_terms(q)
        where, args = filter_clauses(q, "?")
        if terms:
            where.append("u.id IN (SELECT rowid FROM utterances_fts WHERE utterances_fts MATCH ?)")
            args.append(to_fts(terms))
        if q.alert:
            where.append("EXISTS (SELECT 1 FROM json_each(c.alerts) WHERE value = ?)")
            args.append(q.alert)
        score_where, score_args = score_filters(q, "")
        where += score_where
        args += score_args
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        base = f"FROM utterances u JOIN calls c ON c.call_id = u.call_id {clause}"
        limit, offset = page_bounds(q)
        with self._lock:
            total = self._db.execute(f"SELECT count(*) {base}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT u.call_id, u.segment_id, u.channel, u.start_ms, u.end_ms, u.text, u.at_ms, "
                f"{', '.join('c.' + c for c in _CALL_COLS)} {base} ORDER BY u.at_ms DESC, u.id DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        return search_page(rows, total, terms, q, t0, _call_from_row)


def _to_sql(value: Any) -> Any:
    if isinstance(value, tuple):
        return json.dumps(list(value), ensure_ascii=False)
    if isinstance(value, bool):
        return int(value)
    return value


def _call_from_row(row: Sequence[Any]) -> CallRecord:
    d = dict(zip(_CALL_COLS, row))
    d["ended"] = bool(d["ended"])
    d["unresolved"] = bool(d["unresolved"])
    d["alerts"] = tuple(json.loads(d["alerts"] or "[]"))
    d["reasons"] = tuple(json.loads(d["reasons"] or "[]"))
    d["quotes"] = tuple(json.loads(d["quotes"] or "[]"))
    return CallRecord(**d)


def _merge(old: CallRecord, new: CallRecord) -> CallRecord:
    """``new`` over ``old`` by the shared rule (:func:`~.base.fields_set_by`)."""
    return replace(old, **{name: getattr(new, name) for name in fields_set_by(new)})
