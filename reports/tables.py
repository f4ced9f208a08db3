"""The report tables of a transcript store (``store.reports`` on both backends), kept up to date as calls end.

Tables (``{schema}.`` before each name on PostgreSQL):

* ``report_calls``: one row per reported call (:class:`~.facts.CallFact`): dimensions, measures, the verdict, the
  repeat links and ``fcr``. Filed when the call's summary reaches the store ingest, refreshed when something about
  the call changes later (its start or end arriving late, a ticket, a QA score or override, a repeat call).
* ``report_agg``: per UTC hour, queue and intent, the sums of :data:`~.facts.MEASURES`. Every report that does not
  involve agents reads only this table (about 24 x queues x intents rows a day, whatever the call volume).
* ``report_tags``: per UTC hour, queue and intent, how many calls had each alert category / unresolved reason.
* ``report_agg_agent``: per UTC day and agent, the same sums (the by-agent breakdown of a long period without other
  filters; the period's edge hours come from ``report_calls``).

Every change to a call goes through :meth:`ReportTables.refresh`: the new fact is built from the store (the
``calls`` row, the finals' time spans, the tickets, the scorecard), the repeat links of its chain are updated
(:func:`~.facts.links_after_insert`), and the aggregates get ``contribution(new) - contribution(old)`` for each call
whose fact changed, in one transaction. On PostgreSQL the transaction holds an advisory lock on the caller (or the
call), so two gateways sharing the store cannot interleave the links of one caller's chain.

One implementation for both backends, as in gateway/store/scores.py: SQL common to SQLite and PostgreSQL with ``?``
placeholders (rewritten to ``%s`` for psycopg), run through a small per-backend runner (one transaction per call).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Sequence, TypeVar

from callscribe.keyword.repeat import caller_key as _caller_key

from .facts import (DAY_MS, HOUR_MS, MEASURES, CallFact, Link, Span, contribution, dumps, hour_of, links_after_insert,
                    links_after_remove, loads, talk_stats)

__all__ = ["ReportTables", "ReportFilter", "SqliteRunner", "PostgresRunner", "GROUPS"]

T = TypeVar("T")
Exec = Callable[..., Any]

GROUPS = ("total", "intent", "queue", "agent", "day", "hour", "day_intent", "language")
"""What a measures query can be grouped by (``day`` / ``hour``: the local day / hour of day at a UTC offset)."""

_FACT_COLS = ("call_id", "started_at_ms", "hour_ms", "queue", "agent_id", "intent", "caller_key", "language", "handle_ms",
              "timed", "talk_customer_ms", "talk_agent_ms", "talk_ms", "overtalk_ms", "silence_ms", "unresolved", "reasons",
              "alerts", "sentiment", "sentiment_score", "qa_score", "tickets", "repeat_of", "repeat_gap_ms", "repeated_by",
              "fcr", "filed_at_ms")

SCHEMA = """
CREATE TABLE IF NOT EXISTS {t}report_calls (
    call_id TEXT PRIMARY KEY, started_at_ms {int} NOT NULL, hour_ms {int} NOT NULL, queue TEXT NOT NULL DEFAULT '',
    agent_id TEXT NOT NULL DEFAULT '', intent TEXT NOT NULL DEFAULT '', caller_key TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT '', handle_ms {int} NOT NULL DEFAULT 0, timed {int} NOT NULL DEFAULT 0,
    talk_customer_ms {int} NOT NULL DEFAULT 0, talk_agent_ms {int} NOT NULL DEFAULT 0, talk_ms {int} NOT NULL DEFAULT 0,
    overtalk_ms {int} NOT NULL DEFAULT 0, silence_ms {int} NOT NULL DEFAULT 0, unresolved {int} NOT NULL DEFAULT 0,
    reasons TEXT NOT NULL DEFAULT '[]', alerts TEXT NOT NULL DEFAULT '[]', sentiment TEXT NOT NULL DEFAULT '',
    sentiment_score {real} NOT NULL DEFAULT 0, qa_score {real}, tickets {int} NOT NULL DEFAULT 0,
    repeat_of TEXT NOT NULL DEFAULT '', repeat_gap_ms {int} NOT NULL DEFAULT 0, repeated_by TEXT NOT NULL DEFAULT '',
    fcr {int} NOT NULL DEFAULT 0, filed_at_ms {int} NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS report_calls_hour ON {t}report_calls(hour_ms);
CREATE INDEX IF NOT EXISTS report_calls_agent ON {t}report_calls(agent_id, hour_ms);
CREATE INDEX IF NOT EXISTS report_calls_chain ON {t}report_calls(caller_key, intent, started_at_ms);
CREATE INDEX IF NOT EXISTS report_calls_filed ON {t}report_calls(filed_at_ms);
CREATE TABLE IF NOT EXISTS {t}report_agg (
    hour_ms {int} NOT NULL, queue TEXT NOT NULL, intent TEXT NOT NULL, {measures},
    PRIMARY KEY (hour_ms, queue, intent)
);
CREATE TABLE IF NOT EXISTS {t}report_agg_agent (
    day_ms {int} NOT NULL, agent_id TEXT NOT NULL, {measures},
    PRIMARY KEY (day_ms, agent_id)
);
CREATE TABLE IF NOT EXISTS {t}report_tags (
    hour_ms {int} NOT NULL, queue TEXT NOT NULL, intent TEXT NOT NULL, kind TEXT NOT NULL, tag TEXT NOT NULL,
    n {int} NOT NULL DEFAULT 0,
    PRIMARY KEY (hour_ms, queue, intent, kind, tag)
);
"""
_TYPES = {"sqlite": {"int": "INTEGER", "real": "REAL"}, "postgres": {"int": "bigint", "real": "double precision"}}
_REAL_MEASURES = {"sentiment_sum", "qa_sum"}


class SqliteRunner:
    dialect = "sqlite"

    def __init__(self, db: Any, lock: threading.Lock) -> None:
        self._db, self._lock = db, lock

    def run(self, work: Callable[[Exec], T]) -> T:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                result = work(lambda q, a=(): self._db.execute(q, a))
                self._db.execute("COMMIT")
                return result
            except BaseException:
                self._db.execute("ROLLBACK")
                raise


class PostgresRunner:
    """Through ``PostgresStore._run`` (its lock, and one reconnect when the server dropped the connection)."""

    dialect = "postgres"

    def __init__(self, store: Any) -> None:
        self._store = store

    def run(self, work: Callable[[Exec], T]) -> T:
        def tx(db: Any) -> T:
            with db.transaction():
                return work(lambda q, a=(): db.execute(q.replace("%", "%%").replace("?", "%s"), a))

        return self._store._run(tx)


@dataclass(frozen=True, slots=True)
class ReportFilter:
    """Calls whose start hour is in [since, until) (both rounded to whole UTC hours: aggregate rows are hourly),
    optionally of one queue, intent and agent."""

    since_ms: int
    until_ms: int
    queue: str | None = None
    intent: str | None = None
    agent_id: str | None = None

    def hours(self) -> tuple[int, int]:
        return hour_of(self.since_ms), hour_of(self.until_ms + HOUR_MS - 1)


def _prefix(schema: str | None) -> str:
    return "" if not schema else '"' + schema.replace('"', '""') + '".'


def _list(v: Any) -> tuple[str, ...]:
    """A calls-table list column: text[] on PostgreSQL, JSON text on SQLite."""
    if isinstance(v, (list, tuple)):
        return tuple(str(x) for x in v)
    return loads(v)


class ReportTables:
    def __init__(self, runner: Any, schema: str | None = None) -> None:
        self.runner = runner
        self.dialect = runner.dialect
        self.t = _prefix(schema)
        self._schema = schema
        self._seen_tables: set[str] = set()
        types = _TYPES[self.dialect]
        measures = ", ".join(f"{m} {types['real'] if m in _REAL_MEASURES else types['int']} NOT NULL DEFAULT 0"
                             for m in MEASURES)
        ddl = SCHEMA.format(t=self.t, measures=measures, **types)

        def create(x: Exec) -> bool:
            if self.dialect == "postgres":
                x("SELECT pg_advisory_xact_lock(hashtext(?))", (f"callscribe.reports.{schema}",))
            for statement in (s.strip() for s in ddl.split(";")):
                if statement:
                    x(statement)
            return True

        runner.run(create)

    @classmethod
    def sqlite(cls, db: Any, lock: threading.Lock) -> "ReportTables":
        return cls(SqliteRunner(db, lock))

    @classmethod
    def postgres(cls, store: Any, schema: str) -> "ReportTables":
        return cls(PostgresRunner(store), schema)

    # --- reading the store ------------------------------------------------------------------------------------
    def _has_table(self, x: Exec, name: str) -> bool:
        """Whether the store has table ``name`` (the QA scorecards come with gateway/store/scores.py); a yes is kept."""
        if name in self._seen_tables:
            return True
        if self.dialect == "sqlite":
            found = x("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None
        else:
            found = bool(x("SELECT to_regclass(?) IS NOT NULL", (f"{self.t}{name}",)).fetchone()[0])
        if found:
            self._seen_tables.add(name)
        return found

    def _fact_row(self, x: Exec, call_id: str) -> CallFact | None:
        row = x(f"SELECT {', '.join(_FACT_COLS)} FROM {self.t}report_calls WHERE call_id = ?", (call_id,)).fetchone()
        return _fact(row) if row else None

    def _build(self, x: Exec, call_id: str, summary: Any, old: CallFact | None) -> CallFact | None:
        """The call's fact as the store has it now (links copied from ``old``); None when the store has no call row."""
        t = self.t
        row = x(f"SELECT started_at_ms, duration_ms, agent_id, queue, caller, language, intent, unresolved, alerts, reasons"
                f" FROM {t}calls WHERE call_id = ?", (call_id,)).fetchone()
        if row is None:
            return None
        started, duration, agent, queue, caller, language, intent, unresolved, alerts, reasons = row
        if summary is not None:
            started = started or summary.started_at_ms
            duration = max(int(duration or 0), int(summary.duration_ms or 0))
            agent = agent or summary.agent_id
            caller = caller or summary.caller
        elif old is not None:
            started = started or old.started_at_ms
            duration = max(int(duration or 0), old.handle_ms)
        spans = [Span(c, int(s), int(e)) for c, s, e in
                 x(f"SELECT channel, start_ms, end_ms FROM {t}utterances WHERE call_id = ?", (call_id,)).fetchall()]
        tickets = int(x(f"SELECT count(*) FROM {t}tickets WHERE call_id = ?", (call_id,)).fetchone()[0])
        qa = None
        if self._has_table(x, "scorecards"):
            r = x(f"SELECT score FROM {t}scorecards WHERE call_id = ?", (call_id,)).fetchone()
            qa = None if r is None or r[0] is None else float(r[0])
        stats = talk_stats(spans, int(duration or 0)) if spans else {}
        if summary is not None:
            sentiment, score = summary.sentiment, float(summary.sentiment_score or 0.0)
        else:
            sentiment, score = (old.sentiment, old.sentiment_score) if old else ("", 0.0)
        fact = CallFact(
            call_id=call_id, started_at_ms=int(started or 0), queue=queue or "", agent_id=agent or "", intent=intent or "",
            caller_key=_caller_key(caller or ""), language=language or "", handle_ms=int(duration or 0), timed=bool(spans),
            unresolved=bool(unresolved), reasons=_list(reasons), alerts=tuple(dict.fromkeys(_list(alerts))),
            sentiment=sentiment or "", sentiment_score=score, qa_score=qa, tickets=tickets, **stats)
        if old is not None:
            fact = replace(fact, repeat_of=old.repeat_of, repeat_gap_ms=old.repeat_gap_ms, repeated_by=old.repeated_by)
        return fact

    def _neighbours(self, x: Exec, f: CallFact) -> tuple[CallFact | None, CallFact | None]:
        """``f``'s predecessor and successor in its chain (``f`` itself excluded)."""
        cols, t = ", ".join(_FACT_COLS), self.t
        before = x(f"SELECT {cols} FROM {t}report_calls WHERE caller_key = ? AND intent = ? AND call_id != ?"
                   " AND (started_at_ms < ? OR (started_at_ms = ? AND call_id < ?))"
                   " ORDER BY started_at_ms DESC, call_id DESC LIMIT 1",
                   (f.caller_key, f.intent, f.call_id, f.started_at_ms, f.started_at_ms, f.call_id)).fetchone()
        after = x(f"SELECT {cols} FROM {t}report_calls WHERE caller_key = ? AND intent = ? AND call_id != ?"
                  " AND (started_at_ms > ? OR (started_at_ms = ? AND call_id > ?))"
                  " ORDER BY started_at_ms, call_id LIMIT 1",
                  (f.caller_key, f.intent, f.call_id, f.started_at_ms, f.started_at_ms, f.call_id)).fetchone()
        return (_fact(before) if before else None), (_fact(after) if after else None)

    # --- writing --------------------------------------------------------------------------------------------------
    def refresh(self, call_id: str, window_days: float, summary: Any = None) -> bool:
        """(Re)file one call from the store: with its ``call_summary`` event the call enters the reports (or its
        fact is rebuilt with the summary's sentiment); without one, a call already reported is rebuilt from what the
        store has now and a call not reported yet is left alone. True when anything changed."""
        window_ms = int(window_days * DAY_MS)

        def work(x: Exec) -> bool:
            if self.dialect == "postgres":
                key = x(f"SELECT caller FROM {self.t}calls WHERE call_id = ?", (call_id,)).fetchone()
                lock = _caller_key(key[0]) if key and key[0] else call_id
                x("SELECT pg_advisory_xact_lock(hashtext(?))", (f"callscribe.reports:{lock}",))
            old = self._fact_row(x, call_id)
            if old is None and summary is None:
                return False
            new = self._build(x, call_id, summary, old)
            if new is None:
                return False
            changed: dict[str, tuple[CallFact | None, CallFact]] = {}

            def link(links: Iterable[Link], facts: dict[str, CallFact]) -> None:
                for ln in links:
                    if ln.call_id == call_id:
                        continue
                    f = facts[ln.call_id]
                    g = ln.apply(changed[f.call_id][1] if f.call_id in changed else f)
                    changed[f.call_id] = (changed.get(f.call_id, (f, f))[0], g)

            moved = old is None or old.chain() != new.chain() or old.order() != new.order() or old.linkable != new.linkable
            if moved:
                if old is not None and old.linkable:
                    before, after = self._neighbours(x, old)
                    link(links_after_remove(before, after, window_ms),
                         {f.call_id: f for f in (before, after) if f is not None})
                new = replace(new, repeat_of="", repeat_gap_ms=0, repeated_by="")
                if new.linkable:
                    before, after = self._neighbours(x, new)
                    # a neighbour changed above is read back as changed
                    before = changed[before.call_id][1] if before is not None and before.call_id in changed else before
                    after = changed[after.call_id][1] if after is not None and after.call_id in changed else after
                    links = links_after_insert(new, before, after, window_ms)
                    link(links, {f.call_id: f for f in (before, after) if f is not None})
                    new = next(ln for ln in links if ln.call_id == call_id).apply(new)
            if old == new and not changed:
                return False
            changed[call_id] = (old, new)
            now = int(time.time() * 1000)
            for before_fact, after_fact in changed.values():
                self._write(x, after_fact, now)
            self._apply(x, [(o, n) for o, n in changed.values()])
            return True

        return self.runner.run(work)

    def _write(self, x: Exec, f: CallFact, now_ms: int) -> None:
        values = _fact_values(f, now_ms)
        cols = ", ".join(_FACT_COLS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _FACT_COLS if c != "call_id")
        x(f"INSERT INTO {self.t}report_calls({cols}) VALUES ({', '.join('?' * len(_FACT_COLS))})"
          f" ON CONFLICT (call_id) DO UPDATE SET {updates}", values)

    def _apply(self, x: Exec, changes: Sequence[tuple[CallFact | None, CallFact]]) -> None:
        """Add ``contribution(new) - contribution(old)`` of each change to the aggregate and tag rows."""
        agg: dict[tuple[int, str, str], dict[str, float]] = {}
        agents: dict[tuple[int, str], dict[str, float]] = {}
        tags: dict[tuple[int, str, str, str, str], int] = {}
        for old, new in changes:
            for fact, sign in ((old, -1), (new, 1)):
                if fact is None:
                    continue
                c = contribution(fact)
                row = agg.setdefault(c.key, dict.fromkeys(MEASURES, 0))
                arow = agents.setdefault((fact.hour_ms // DAY_MS * DAY_MS, fact.agent_id), dict.fromkeys(MEASURES, 0))
                for m, v in c.measures.items():
                    row[m] += sign * v
                    arow[m] += sign * v
                for kind, tag in c.tags:
                    k = (*c.key, kind, tag)
                    tags[k] = tags.get(k, 0) + sign
        t = self.t
        cols = ", ".join(MEASURES)
        sets = ", ".join(f"{m} = a.{m} + excluded.{m}" for m in MEASURES)
        for key, row in agg.items():
            if not any(row.values()):
                continue
            x(f"INSERT INTO {t}report_agg AS a (hour_ms, queue, intent, {cols}) VALUES (?,?,?,{', '.join('?' * len(MEASURES))})"
              f" ON CONFLICT (hour_ms, queue, intent) DO UPDATE SET {sets}", (*key, *(row[m] for m in MEASURES)))
        for key, row in agents.items():
            if not any(row.values()):
                continue
            x(f"INSERT INTO {t}report_agg_agent AS a (day_ms, agent_id, {cols}) VALUES (?,?,{', '.join('?' * len(MEASURES))})"
              f" ON CONFLICT (day_ms, agent_id) DO UPDATE SET {sets}", (*key, *(row[m] for m in MEASURES)))
        for key, n in tags.items():
            if n:
                x(f"INSERT INTO {t}report_tags AS a (hour_ms, queue, intent, kind, tag, n) VALUES (?,?,?,?,?,?)"
                  " ON CONFLICT (hour_ms, queue, intent, kind, tag) DO UPDATE SET n = a.n + excluded.n", (*key, n))

    def rebuild(self, window_days: float) -> int:
        """Recompute every repeat link (LAG / LEAD over each caller's and intent's calls) and both aggregate tables
        from ``report_calls``: after a change of ``fcr_window_days``, a bulk load, or to check the incremental
        aggregates (they must come out the same). Returns the number of calls."""
        window_ms = int(window_days * DAY_MS)
        t = self.t

        def work(x: Exec) -> int:
            if self.dialect == "postgres":
                x("SELECT pg_advisory_xact_lock(hashtext(?))", (f"callscribe.reports.{self._schema}",))
            x(f"UPDATE {t}report_calls SET repeat_of = '', repeat_gap_ms = 0, repeated_by = ''"
              " WHERE repeat_of != '' OR repeated_by != ''")
            x(f"""UPDATE {t}report_calls SET repeat_of = CASE WHEN o.prev_t IS NOT NULL AND o.t - o.prev_t <= ? THEN o.prev_id ELSE '' END,
                     repeat_gap_ms = CASE WHEN o.prev_t IS NOT NULL AND o.t - o.prev_t <= ? THEN o.t - o.prev_t ELSE 0 END,
                     repeated_by = CASE WHEN o.next_t IS NOT NULL AND o.next_t - o.t <= ? THEN o.next_id ELSE '' END
                  FROM (SELECT call_id AS id, started_at_ms AS t,
                               LAG(call_id) OVER w AS prev_id, LAG(started_at_ms) OVER w AS prev_t,
                               LEAD(call_id) OVER w AS next_id, LEAD(started_at_ms) OVER w AS next_t
                        FROM {t}report_calls WHERE caller_key != '' AND intent != ''
                        WINDOW w AS (PARTITION BY caller_key, intent ORDER BY started_at_ms, call_id)) AS o
                  WHERE {t}report_calls.call_id = o.id""".replace(f"{t}report_calls.call_id", "report_calls.call_id"),
              (window_ms, window_ms, window_ms))
            x(f"UPDATE {t}report_calls SET fcr = CASE WHEN unresolved = 0 AND repeated_by = '' THEN 1 ELSE 0 END")
            x(f"DELETE FROM {t}report_agg")
            x(f"DELETE FROM {t}report_tags")
            x(f"DELETE FROM {t}report_agg_agent")
            sums = ", ".join(_FACT_SUM[m] for m in MEASURES)
            x(f"INSERT INTO {t}report_agg (hour_ms, queue, intent, {', '.join(MEASURES)})"
              f" SELECT hour_ms, queue, intent, {sums} FROM {t}report_calls f GROUP BY hour_ms, queue, intent")
            x(f"INSERT INTO {t}report_agg_agent (day_ms, agent_id, {', '.join(MEASURES)})"
              f" SELECT (hour_ms / {DAY_MS}) * {DAY_MS}, agent_id, {sums} FROM {t}report_calls f"
              f" GROUP BY (hour_ms / {DAY_MS}) * {DAY_MS}, agent_id")
            for kind, column in (("alert", "alerts"), ("reason", "reasons")):
                if self.dialect == "sqlite":
                    x(f"INSERT INTO report_tags (hour_ms, queue, intent, kind, tag, n)"
                      f" SELECT f.hour_ms, f.queue, f.intent, ?, j.value, count(DISTINCT f.call_id) FROM report_calls f,"
                      f" json_each(f.{column}) j WHERE f.{column} != '[]' GROUP BY f.hour_ms, f.queue, f.intent, j.value", (kind,))
                else:
                    x(f"INSERT INTO {t}report_tags (hour_ms, queue, intent, kind, tag, n)"
                      f" SELECT f.hour_ms, f.queue, f.intent, ?, j.value, count(DISTINCT f.call_id) FROM {t}report_calls f,"
                      f" json_array_elements_text(f.{column}::json) j(value) WHERE f.{column} != '[]'"
                      f" GROUP BY f.hour_ms, f.queue, f.intent, j.value", (kind,))
            return int(x(f"SELECT count(*) FROM {t}report_calls").fetchone()[0])

        return self.runner.run(work)

    # --- reading the reports ------------------------------------------------------------------------------------
    def fact(self, call_id: str) -> CallFact | None:
        return self.runner.run(lambda x: self._fact_row(x, call_id))

    def facts(self, f: ReportFilter, limit: int = 100_000) -> list[CallFact]:
        where, args = self._where(f, facts=True)
        cols = ", ".join(_FACT_COLS)
        rows = self.runner.run(lambda x: x(f"SELECT {cols} FROM {self.t}report_calls f WHERE {where}"
                                           " ORDER BY started_at_ms, call_id LIMIT ?", [*args, limit]).fetchall())
        return [_fact(r) for r in rows]

    def _where(self, f: ReportFilter, facts: bool) -> tuple[str, list[Any]]:
        lo, hi = f.hours()
        where, args = ["f.hour_ms >= ?", "f.hour_ms < ?"], [lo, hi]
        for column, value in (("queue", f.queue), ("intent", f.intent), ("agent_id", f.agent_id if facts else None)):
            if value is not None:
                where.append(f"f.{column} = ?")
                args.append(value)
        return " AND ".join(where), args

    def uses_facts(self, f: ReportFilter, group: str) -> bool:
        """Agents are not a dimension of the hourly aggregates (hundreds of agents would make them as large as the
        calls): a query for one agent, or by agent within a queue or intent, reads ``report_calls`` (its index on
        agent and hour); by agent over everything reads ``report_agg_agent`` (per UTC day) and the edge hours."""
        return f.agent_id is not None or group in ("agent", "language")

    def measures(self, f: ReportFilter, group: str = "total", utc_offset_ms: int = 0) -> list[tuple[Any, dict[str, float]]]:
        """Sums of :data:`MEASURES` per group value: ``[(value, {measure: sum})]`` (``total``: one row, value None;
        ``day``: local midnight in epoch ms; ``hour``: 0-23; ``day_intent``: (day, intent))."""
        if group not in GROUPS:
            raise ValueError(f"group must be one of {', '.join(GROUPS)}")
        if group == "agent" and f.agent_id is None and f.queue is None and f.intent is None:
            return self._by_agent(f)
        facts = self.uses_facts(f, group)
        where, args = self._where(f, facts)
        table = "report_calls" if facts else "report_agg"
        sums = ", ".join((_FACT_SUM if facts else _AGG_SUM)[m] for m in MEASURES)
        off = int(utc_offset_ms)
        keys = {"total": [], "intent": ["f.intent"], "queue": ["f.queue"], "agent": ["f.agent_id"], "language": ["f.language"],
                "day": [f"((f.hour_ms + {off}) / {DAY_MS}) * {DAY_MS} - {off}"],
                "hour": [f"((f.hour_ms + {off}) / {HOUR_MS}) % 24"],
                "day_intent": [f"((f.hour_ms + {off}) / {DAY_MS}) * {DAY_MS} - {off}", "f.intent"]}[group]
        select = ", ".join([*keys, sums])
        group_by = f" GROUP BY {', '.join(keys)}" if keys else ""
        sql = f"SELECT {select} FROM {self.t}{table} f WHERE {where}{group_by}"
        rows = self.runner.run(lambda x: x(sql, args).fetchall())
        out = []
        n = len(keys)
        for r in rows:
            key: Any = None if n == 0 else (r[0] if n == 1 else tuple(r[:n]))
            if isinstance(key, (int, float)) and group in ("day", "hour"):
                key = int(key)
            if group == "day_intent":
                key = (int(key[0]), key[1])
            values = {m: (round(float(v or 0), 6) if m in _REAL_MEASURES else int(v or 0)) for m, v in zip(MEASURES, r[n:])}
            if n == 0 and not values["calls"]:
                continue
            out.append((key, values))
        return out

    def _by_agent(self, f: ReportFilter) -> list[tuple[Any, dict[str, float]]]:
        """Every agent over a period with no other filter: the whole UTC days inside it from ``report_agg_agent`` (one
        row per agent and day), the hours at its two edges from ``report_calls``; the same sums as reading the calls."""
        lo, hi = f.hours()
        d_lo, d_hi = -(-lo // DAY_MS) * DAY_MS, hi // DAY_MS * DAY_MS
        t = self.t
        sums_agg = ", ".join(_AGG_SUM[m] for m in MEASURES)
        sums_fact = ", ".join(_FACT_SUM[m] for m in MEASURES)

        def work(x: Exec) -> list[Any]:
            if d_lo >= d_hi:
                return x(f"SELECT f.agent_id, {sums_fact} FROM {t}report_calls f WHERE f.hour_ms >= ? AND f.hour_ms < ?"
                         " GROUP BY f.agent_id", (lo, hi)).fetchall()
            rows = x(f"SELECT f.agent_id, {sums_agg} FROM {t}report_agg_agent f WHERE f.day_ms >= ? AND f.day_ms < ?"
                     " GROUP BY f.agent_id", (d_lo, d_hi)).fetchall()
            rows += x(f"SELECT f.agent_id, {sums_fact} FROM {t}report_calls f WHERE (f.hour_ms >= ? AND f.hour_ms < ?)"
                      " OR (f.hour_ms >= ? AND f.hour_ms < ?) GROUP BY f.agent_id", (lo, d_lo, d_hi, hi)).fetchall()
            return rows

        totals: dict[str, dict[str, float]] = {}
        for r in self.runner.run(work):
            row = totals.setdefault(r[0], dict.fromkeys(MEASURES, 0))
            for m, v in zip(MEASURES, r[1:]):
                row[m] += v or 0
        out = []
        for agent, m in totals.items():
            values = {k: (round(float(v), 6) if k in _REAL_MEASURES else int(v)) for k, v in m.items()}
            if values["calls"]:
                out.append((agent, values))
        return out

    def tags(self, f: ReportFilter, kind: str, group: str = "total") -> list[tuple[Any, str, int]]:
        """Calls with each tag (alert category / unresolved reason): ``[(group value, tag, calls)]``; ``group``
        ``total`` (value None), ``intent`` or ``queue``."""
        if group not in ("total", "intent", "queue"):
            raise ValueError("tags group must be total, intent or queue")
        if f.agent_id is not None:  # one agent's calls: read them (a few thousand a month at most)
            counts: dict[tuple[Any, str], int] = {}
            for fact in self.facts(f):
                value = None if group == "total" else getattr(fact, group)
                for tag in (fact.alerts if kind == "alert" else fact.reasons):
                    counts[(value, tag)] = counts.get((value, tag), 0) + 1
            return [(v, tag, n) for (v, tag), n in counts.items()]
        where, args = self._where(f, False)
        key = "" if group == "total" else f"f.{group}, "
        rows = self.runner.run(lambda x: x(f"SELECT {key}f.tag, sum(f.n) FROM {self.t}report_tags f WHERE {where}"
                                           f" AND f.kind = ? GROUP BY {key}f.tag", [*args, kind]).fetchall())
        return [((None if group == "total" else r[0]), r[-2], int(r[-1])) for r in rows if int(r[-1])]

    def customer_texts(self, f: ReportFilter, limit_calls: int = 2000) -> tuple[list[tuple[str, str, str]], list[str]]:
        """What customers said in the newest ``limit_calls`` calls passing ``f`` (for :mod:`.topics`):
        ``([(call_id, language, text)], call ids newest first)``. The one report input read from the finals: topics
        are about words; a cap keeps it bounded on a busy month (the newest calls are the ones that show a new topic)."""
        where, args = self._where(f, facts=True)
        t = self.t
        sql = (f"SELECT f.call_id, f.language, f.started_at_ms, u.text FROM (SELECT call_id, language, started_at_ms"
               f" FROM {t}report_calls f WHERE {where} ORDER BY started_at_ms DESC LIMIT ?) f"
               f" JOIN {t}utterances u ON u.call_id = f.call_id WHERE u.channel = 'customer'")
        rows = self.runner.run(lambda x: x(sql, [*args, int(limit_calls)]).fetchall())
        newest = sorted({(r[2], r[0]) for r in rows}, reverse=True)
        return [(r[0], r[1], r[3]) for r in rows], [c for _, c in newest]

    def dimension_values(self, since_ms: int, until_ms: int) -> dict[str, list[str]]:
        """The queues, intents and agents seen in a period (for the page's filters)."""
        f = ReportFilter(since_ms, until_ms)
        lo, hi = f.hours()

        def work(x: Exec) -> dict[str, list[str]]:
            return {
                "queues": [r[0] for r in x(f"SELECT DISTINCT queue FROM {self.t}report_agg WHERE hour_ms >= ? AND hour_ms < ?"
                                           " ORDER BY 1", (lo, hi)).fetchall()],
                "intents": [r[0] for r in x(f"SELECT DISTINCT intent FROM {self.t}report_agg WHERE hour_ms >= ? AND hour_ms < ?"
                                            " ORDER BY 1", (lo, hi)).fetchall()],
                "agents": [r[0] for r in x(f"SELECT DISTINCT agent_id FROM {self.t}report_calls WHERE hour_ms >= ? AND hour_ms < ?"
                                           " ORDER BY 1", (lo, hi)).fetchall()],
            }

        return self.runner.run(work)


_AGG_SUM = {m: f"sum(f.{m})" for m in MEASURES}
_FACT_SUM = {
    "calls": "count(*)", "unresolved": "sum(f.unresolved)", "fcr": "sum(f.fcr)",
    "repeats": "sum(CASE WHEN f.repeat_of != '' THEN 1 ELSE 0 END)",
    "repeated": "sum(CASE WHEN f.repeated_by != '' THEN 1 ELSE 0 END)",
    "handle_ms": "sum(f.handle_ms)", "timed_calls": "sum(f.timed)", "timed_ms": "sum(f.timed * f.handle_ms)",
    "talk_customer_ms": "sum(f.timed * f.talk_customer_ms)", "talk_agent_ms": "sum(f.timed * f.talk_agent_ms)",
    "talk_ms": "sum(f.timed * f.talk_ms)", "overtalk_ms": "sum(f.timed * f.overtalk_ms)",
    "silence_ms": "sum(f.timed * f.silence_ms)",
    "sentiment_n": "sum(CASE WHEN f.sentiment IN ('negative', 'neutral', 'positive') THEN 1 ELSE 0 END)",
    "sentiment_sum": "sum(CASE WHEN f.sentiment IN ('negative', 'neutral', 'positive') THEN f.sentiment_score ELSE 0 END)",
    "negative": "sum(CASE WHEN f.sentiment = 'negative' THEN 1 ELSE 0 END)",
    "neutral": "sum(CASE WHEN f.sentiment = 'neutral' THEN 1 ELSE 0 END)",
    "positive": "sum(CASE WHEN f.sentiment = 'positive' THEN 1 ELSE 0 END)",
    "qa_n": "count(f.qa_score)", "qa_sum": "coalesce(sum(f.qa_score), 0)",
    "tickets": "sum(f.tickets)", "ticket_calls": "sum(CASE WHEN f.tickets > 0 THEN 1 ELSE 0 END)",
    "alert_calls": "sum(CASE WHEN f.alerts != '[]' THEN 1 ELSE 0 END)",
}
"""Each measure summed over ``report_calls`` rows: the same numbers :func:`~.facts.contribution` adds up."""


def _fact_values(f: CallFact, now_ms: int) -> list[Any]:
    return [f.call_id, f.started_at_ms, f.hour_ms, f.queue, f.agent_id, f.intent, f.caller_key, f.language, f.handle_ms,
            int(f.timed), f.talk_customer_ms, f.talk_agent_ms, f.talk_ms, f.overtalk_ms, f.silence_ms, int(f.unresolved),
            dumps(f.reasons), dumps(f.alerts), f.sentiment, float(f.sentiment_score), f.qa_score, f.tickets, f.repeat_of,
            f.repeat_gap_ms, f.repeated_by, int(f.fcr), now_ms]


def _fact(r: Sequence[Any]) -> CallFact:
    d = dict(zip(_FACT_COLS, r))
    return CallFact(
        call_id=d["call_id"], started_at_ms=int(d["started_at_ms"]), queue=d["queue"], agent_id=d["agent_id"],
        intent=d["intent"], caller_key=d["caller_key"], language=d["language"], handle_ms=int(d["handle_ms"]),
        timed=bool(d["timed"]), talk_customer_ms=int(d["talk_customer_ms"]), talk_agent_ms=int(d["talk_agent_ms"]),
        talk_ms=int(d["talk_ms"]), overtalk_ms=int(d["overtalk_ms"]), silence_ms=int(d["silence_ms"]),
        unresolved=bool(d["unresolved"]), reasons=loads(d["reasons"]), alerts=loads(d["alerts"]), sentiment=d["sentiment"],
        sentiment_score=float(d["sentiment_score"]), qa_score=None if d["qa_score"] is None else float(d["qa_score"]),
        tickets=int(d["tickets"]), repeat_of=d["repeat_of"], repeat_gap_ms=int(d["repeat_gap_ms"]),
        repeated_by=d["repeated_by"])
