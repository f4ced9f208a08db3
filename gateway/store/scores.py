"""QA scorecards in the store: each call's scorecard and answers, reviewers' overrides (the audit trail), agents'
appeals, and the reports over them (agent scorecards over a period, calibration of the automatic answers).

One implementation for both backends: the SQL here is the common part of SQLite and PostgreSQL (``?``
placeholders, rewritten to ``%s`` for psycopg; JSON lists kept as text; answers as ``yes`` / ``no`` / ``na``), run
through a small runner each backend gives (:class:`SqliteRunner`, :class:`PostgresRunner`: one transaction per call,
under the backend's lock). Tables:

* ``scorecards``: one row per call: form ref, ``score`` / ``raw_score`` / ``failed_critical`` as they stand with the
  overrides, ``auto_score`` / ``auto_raw_score`` as the analytics computed them, the agent, start time, overrides count.
* ``score_answers``: one row per call and question: weight, critical, section, label, the automatic answer
  (``auto``) with its confidence, reason and evidence (quote, channel, times), and the answer in force (``answer``).
* ``score_overrides``: append-only audit: who (subject, role), when, why, old and new answer, the appeal it accepts.
* ``score_appeals``: an agent's appeal of one answer (comment, the answer wanted) and its decision (who, when, why).

Every write is idempotent by its event's identity (call id, ``override_id``, ``appeal_id``): the ingest may file an
event twice (a redelivery, or the gateway that made it filed it first). The answer in force of a question is the
newest override's (by time, then id), else the automatic one, so the order overrides arrive in does not matter.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, TypeVar

from callscribe.keyword.qa.scoring import score_of

__all__ = ["AnswerRecord", "AppealRecord", "OverrideRecord", "PostgresRunner", "ScoreQuery", "ScoreRecord", "ScoreTables",
           "SqliteRunner", "answer_code", "answer_value"]

T = TypeVar("T")
Exec = Callable[..., Any]  # (sql, args=()) -> a DB-API cursor (fetchone, fetchall, rowcount)

ANSWERS = {True: "yes", False: "no", None: "na"}
_VALUES = {v: k for k, v in ANSWERS.items()}


def answer_code(answer: bool | None) -> str:
    """``yes`` / ``no`` / ``na`` (not applicable), as the tables keep an answer."""
    return ANSWERS[answer]


def answer_value(code: str | None) -> bool | None:
    return _VALUES.get(code or "na")


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    question: str
    auto: bool | None
    """The analytics' answer."""
    answer: bool | None
    """The answer in force (the newest override's, else ``auto``)."""
    confidence: float
    weight: float
    critical: bool = False
    section: str = ""
    label: dict[str, str] = field(default_factory=dict)
    why: str = ""
    evidence: dict[str, Any] | None = None
    """``{"channel", "quote", "start_ms", "end_ms"}`` (quote redacted) or None."""

    @property
    def overridden(self) -> bool:
        return self.answer != self.auto


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    call_id: str
    form: str
    score: float | None
    raw_score: float | None
    failed_critical: tuple[str, ...]
    auto_score: float | None
    auto_raw_score: float | None
    agent_id: str = ""
    language: str = ""
    started_at_ms: int = 0
    scored_at_ms: int = 0
    overrides: int = 0
    """How many overrides were filed for the call."""
    answers: tuple[AnswerRecord, ...] = ()
    """In form order (empty in lists)."""


@dataclass(frozen=True, slots=True)
class OverrideRecord:
    override_id: str
    call_id: str
    question: str
    old_answer: bool | None
    new_answer: bool | None
    reason: str
    by: str
    role: str
    appeal_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class AppealRecord:
    appeal_id: str
    call_id: str
    question: str
    agent_id: str
    comment: str
    wanted: bool | None
    status: str  # open | accepted | rejected
    created_at_ms: int
    resolved_by: str = ""
    reason: str = ""
    resolved_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class ScoreQuery:
    """Filters of a scorecard list (and of transcript search, as SearchQuery carries the same ones)."""

    agent_id: str | None = None
    since_ms: int | None = None  # the call's start
    until_ms: int | None = None
    score_min: float | None = None  # the score in force
    score_max: float | None = None
    answer_no: str | None = None  # a question answered no (in force)
    failed_critical: bool | None = None  # True: some critical question answered no; False: scored without
    limit: int = 50
    offset: int = 0


class Runner(Protocol):
    dialect: str  # "sqlite" | "postgres"

    def run(self, work: Callable[[Exec], T]) -> T:
        """``work(execute)`` in one transaction."""


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
    """Through :meth:`PostgresStore._run` (its lock, and one reconnect when the server dropped the connection)."""

    dialect = "postgres"

    def __init__(self, store: Any) -> None:
        self._store = store

    def run(self, work: Callable[[Exec], T]) -> T:
        def tx(db: Any) -> T:
            with db.transaction():
                return work(lambda q, a=(): db.execute(q.replace("?", "%s"), a))

        return self._store._run(tx)


SCHEMA = """
CREATE TABLE IF NOT EXISTS {t}scorecards (
    call_id TEXT PRIMARY KEY, form TEXT NOT NULL, score {real}, raw_score {real},
    failed_critical TEXT NOT NULL DEFAULT '[]', auto_score {real}, auto_raw_score {real},
    agent_id TEXT NOT NULL DEFAULT '', language TEXT NOT NULL DEFAULT '', started_at_ms {int} NOT NULL DEFAULT 0,
    scored_at_ms {int} NOT NULL DEFAULT 0, overrides {int} NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS scorecards_agent ON {t}scorecards(agent_id, started_at_ms);
CREATE INDEX IF NOT EXISTS scorecards_started ON {t}scorecards(started_at_ms);
CREATE INDEX IF NOT EXISTS scorecards_score ON {t}scorecards(score);
CREATE TABLE IF NOT EXISTS {t}score_answers (
    call_id TEXT NOT NULL, question TEXT NOT NULL, pos {int} NOT NULL DEFAULT 0, section TEXT NOT NULL DEFAULT '',
    label TEXT NOT NULL DEFAULT '{{}}', weight {real} NOT NULL, critical {int} NOT NULL DEFAULT 0,
    auto TEXT NOT NULL, answer TEXT NOT NULL, confidence {real} NOT NULL DEFAULT 0, why TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL DEFAULT '', quote TEXT NOT NULL DEFAULT '', start_ms {int} NOT NULL DEFAULT 0,
    end_ms {int} NOT NULL DEFAULT 0, has_evidence {int} NOT NULL DEFAULT 0,
    PRIMARY KEY (call_id, question)
);
CREATE INDEX IF NOT EXISTS score_answers_question ON {t}score_answers(question, answer);
CREATE TABLE IF NOT EXISTS {t}score_overrides (
    override_id TEXT PRIMARY KEY, call_id TEXT NOT NULL, question TEXT NOT NULL, old_answer TEXT NOT NULL,
    new_answer TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', by_sub TEXT NOT NULL DEFAULT '',
    by_role TEXT NOT NULL DEFAULT '', appeal_id TEXT NOT NULL DEFAULT '', at_ms {int} NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS score_overrides_call ON {t}score_overrides(call_id, at_ms);
CREATE TABLE IF NOT EXISTS {t}score_appeals (
    appeal_id TEXT PRIMARY KEY, call_id TEXT NOT NULL, question TEXT NOT NULL, agent_id TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT '', wanted TEXT NOT NULL DEFAULT 'na', status TEXT NOT NULL DEFAULT 'open',
    created_at_ms {int} NOT NULL DEFAULT 0, resolved_by TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',
    resolved_at_ms {int} NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS score_appeals_status ON {t}score_appeals(status, created_at_ms);
CREATE INDEX IF NOT EXISTS score_appeals_call ON {t}score_appeals(call_id);
"""
_TYPES = {"sqlite": {"int": "INTEGER", "real": "REAL"}, "postgres": {"int": "bigint", "real": "double precision"}}

_CARD_COLS = ("call_id, form, score, raw_score, failed_critical, auto_score, auto_raw_score, agent_id, language,"
              " started_at_ms, scored_at_ms, overrides")
_ANSWER_COLS = ("question, auto, answer, confidence, weight, critical, section, label, why, channel, quote, start_ms,"
                " end_ms, has_evidence")
_OVERRIDE_COLS = "override_id, call_id, question, old_answer, new_answer, reason, by_sub, by_role, appeal_id, at_ms"
_APPEAL_COLS = ("appeal_id, call_id, question, agent_id, comment, wanted, status, created_at_ms, resolved_by, reason,"
                " resolved_at_ms")
APPEAL_STATUSES = ("open", "accepted", "rejected")


def table_prefix(schema: str | None) -> str:
    """What goes before a table name: nothing for SQLite, ``"schema".`` for PostgreSQL."""
    return "" if not schema else '"' + schema.replace('"', '""') + '".'


def score_filters(q: Any, t: str, call_column: str = "u.call_id") -> tuple[list[str], list[object]]:
    """WHERE clauses (``?`` placeholders) and arguments restricting rows whose call is ``call_column`` to calls
    whose scorecard passes ``q``'s score filters (``score_min``, ``score_max``, ``answer_no``,
    ``failed_critical``; a ScoreQuery or a SearchQuery). ``t``: :func:`table_prefix`."""
    card: list[str] = []
    args: list[object] = []
    if q.score_min is not None:
        card.append("s.score >= ?")
        args.append(float(q.score_min))
    if q.score_max is not None:
        card.append("s.score <= ?")
        args.append(float(q.score_max))
    if q.failed_critical is not None:
        card.append("s.failed_critical " + ("!=" if q.failed_critical else "=") + " '[]'")
    where = []
    if card:
        where.append(f"EXISTS (SELECT 1 FROM {t}scorecards s WHERE s.call_id = {call_column} AND " + " AND ".join(card) + ")")
    if q.answer_no:
        where.append(f"EXISTS (SELECT 1 FROM {t}score_answers a WHERE a.call_id = {call_column} AND a.question = ?"
                     " AND a.answer = 'no')")
        args.append(q.answer_no)
    return where, args


class ScoreTables:
    """The scorecard tables of one store; ``store.scores`` on both backends."""

    def __init__(self, runner: Runner, schema: str | None = None) -> None:
        self.runner = runner
        self.t = table_prefix(schema)
        ddl = SCHEMA.format(t=self.t, **_TYPES[runner.dialect])

        def create(x: Exec) -> None:
            if runner.dialect == "postgres":  # several gateways starting at once would race on IF NOT EXISTS
                x("SELECT pg_advisory_xact_lock(hashtext(?))", (f"callscribe.scores.{schema}",))
            for statement in (s.strip() for s in ddl.split(";")):
                if statement:
                    x(statement)

        runner.run(create)

    # --- writes --------------------------------------------------------------------------------------------
    def add_scorecard(self, e: Any) -> bool:
        """File a ``scorecard`` event (callscribe.events.Scorecard); one already stored for the call is left as it
        is. Overrides filed before it (none in practice) apply at once. True when new."""
        t = self.t

        def work(x: Exec) -> bool:
            cur = x(f"INSERT INTO {t}scorecards({_CARD_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,0) ON CONFLICT DO NOTHING",
                    (e.call_id, e.form, e.score, e.raw_score, json.dumps(list(e.failed_critical)), e.score, e.raw_score,
                     e.agent_id, e.language, e.started_at_ms, e.emitted_at_ms))
            if not cur.rowcount:
                return False
            for pos, a in enumerate(e.answers):
                ev = a.evidence
                code = answer_code(a.answer)
                x(f"INSERT INTO {t}score_answers(call_id, question, pos, section, label, weight, critical, auto, answer,"
                  " confidence, why, channel, quote, start_ms, end_ms, has_evidence) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                  " ON CONFLICT DO NOTHING",
                  (e.call_id, a.question, pos, a.section, json.dumps(dict(a.label), ensure_ascii=False), float(a.weight),
                   int(a.critical), code, code, float(a.confidence), a.why, ev.channel if ev else "",
                   ev.text if ev else "", ev.start_ms if ev else 0, ev.end_ms if ev else 0, int(ev is not None)))
            if x(f"SELECT count(*) FROM {t}score_overrides WHERE call_id = ?", (e.call_id,)).fetchone()[0]:
                self._rescore(x, e.call_id)  # else the score stands as the analytics computed it
            return True

        return self.runner.run(work)

    def add_override(self, o: Any) -> bool:
        """File a ``score_override`` event (the audit row) and rescore its call; True when new."""
        t = self.t

        def work(x: Exec) -> bool:
            cur = x(f"INSERT INTO {t}score_overrides({_OVERRIDE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                    (o.override_id, o.call_id, o.question, answer_code(o.old_answer), answer_code(o.new_answer), o.reason,
                     o.by, o.role, o.appeal_id, o.emitted_at_ms))
            if not cur.rowcount:
                return False
            self._rescore(x, o.call_id)
            return True

        return self.runner.run(work)

    def add_appeal(self, a: Any) -> bool:
        """File a ``score_appeal`` event: an open one is stored once; a decision (accepted / rejected) closes the
        open appeal it names (a decision on an appeal already decided changes nothing). True when it changed a row."""
        t = self.t

        def work(x: Exec) -> bool:
            if a.status == "open":
                cur = x(f"INSERT INTO {t}score_appeals({_APPEAL_COLS}) VALUES (?,?,?,?,?,?,'open',?,'','',0)"
                        " ON CONFLICT DO NOTHING",
                        (a.appeal_id, a.call_id, a.question, a.agent_id, a.comment, answer_code(a.wanted), a.emitted_at_ms))
                return bool(cur.rowcount)
            cur = x(f"UPDATE {t}score_appeals SET status = ?, resolved_by = ?, reason = ?, resolved_at_ms = ?"
                    " WHERE appeal_id = ? AND status = 'open'", (a.status, a.by, a.reason, a.emitted_at_ms, a.appeal_id))
            if cur.rowcount:
                return True
            cur = x(f"INSERT INTO {t}score_appeals({_APPEAL_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                    (a.appeal_id, a.call_id, a.question, a.agent_id, a.comment, answer_code(a.wanted), a.status,
                     a.emitted_at_ms, a.by, a.reason, a.emitted_at_ms))
            return bool(cur.rowcount)

        return self.runner.run(work)

    def _rescore(self, x: Exec, call_id: str) -> None:
        """Set each answer of the call to the one in force and the call's score from them (:func:`score_of`)."""
        t = self.t
        rows = x(f"SELECT question, auto, weight, critical FROM {t}score_answers WHERE call_id = ? ORDER BY pos",
                 (call_id,)).fetchall()
        if not rows:
            return
        latest: dict[str, str] = {}
        for question, new in x(f"SELECT question, new_answer FROM {t}score_overrides WHERE call_id = ?"
                               " ORDER BY at_ms, override_id", (call_id,)).fetchall():
            latest[question] = new
        answers = []
        for question, auto, weight, critical in rows:
            code = latest.get(question, auto)
            x(f"UPDATE {t}score_answers SET answer = ? WHERE call_id = ? AND question = ? AND answer != ?",
              (code, call_id, question, code))
            answers.append((question, answer_value(code), float(weight), bool(critical)))
        score, raw, failed = score_of(answers)
        n = x(f"SELECT count(*) FROM {t}score_overrides WHERE call_id = ?", (call_id,)).fetchone()[0]
        x(f"UPDATE {t}scorecards SET score = ?, raw_score = ?, failed_critical = ?, overrides = ? WHERE call_id = ?",
          (score, raw, json.dumps(list(failed)), int(n), call_id))

    # --- reads ---------------------------------------------------------------------------------------------
    def scorecard(self, call_id: str) -> ScoreRecord | None:
        """A call's scorecard with its answers in form order; None when the call has none."""
        t = self.t

        def work(x: Exec) -> ScoreRecord | None:
            row = x(f"SELECT {_CARD_COLS} FROM {t}scorecards WHERE call_id = ?", (call_id,)).fetchone()
            if row is None:
                return None
            answers = x(f"SELECT {_ANSWER_COLS} FROM {t}score_answers WHERE call_id = ? ORDER BY pos", (call_id,)).fetchall()
            return _card(row, tuple(_answer(a) for a in answers))

        return self.runner.run(work)

    def overrides(self, call_id: str) -> list[OverrideRecord]:
        """The call's overrides, oldest first (the audit trail)."""
        rows = self.runner.run(lambda x: x(f"SELECT {_OVERRIDE_COLS} FROM {self.t}score_overrides WHERE call_id = ?"
                                           " ORDER BY at_ms, override_id", (call_id,)).fetchall())
        return [_override(r) for r in rows]

    def appeal(self, appeal_id: str) -> AppealRecord | None:
        row = self.runner.run(lambda x: x(f"SELECT {_APPEAL_COLS} FROM {self.t}score_appeals WHERE appeal_id = ?",
                                          (appeal_id,)).fetchone())
        return _appeal(row) if row else None

    def appeals(self, status: str | None = None, agent_id: str | None = None, call_id: str | None = None,
                limit: int = 200) -> list[AppealRecord]:
        """Appeals by status / agent / call, oldest first (the queue QA works through)."""
        where, args = [], []
        for column, value in (("status", status), ("agent_id", agent_id), ("call_id", call_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        args.append(max(1, min(limit, 1000)))
        rows = self.runner.run(lambda x: x(f"SELECT {_APPEAL_COLS} FROM {self.t}score_appeals {clause}"
                                           " ORDER BY created_at_ms, appeal_id LIMIT ?", args).fetchall())
        return [_appeal(r) for r in rows]

    def _where(self, q: ScoreQuery) -> tuple[str, list[object]]:
        where, args = score_filters(q, self.t, "c.call_id")
        for clause, value in (("c.agent_id = ?", q.agent_id), ("c.started_at_ms >= ?", q.since_ms),
                              ("c.started_at_ms < ?", q.until_ms)):
            if value is not None and value != "":
                where.append(clause)
                args.append(value)
        return ("WHERE " + " AND ".join(where)) if where else "", args

    def scorecards(self, q: ScoreQuery) -> tuple[int, list[ScoreRecord]]:
        """``(total, page)`` of the scorecards passing ``q``, newest call first (answers left out)."""
        clause, args = self._where(q)
        limit, offset = max(1, min(q.limit, 500)), max(0, q.offset)
        cols = ", ".join("c." + c.strip() for c in _CARD_COLS.split(","))

        def work(x: Exec) -> tuple[int, list[ScoreRecord]]:
            total = x(f"SELECT count(*) FROM {self.t}scorecards c {clause}", args).fetchone()[0]
            rows = x(f"SELECT {cols} FROM {self.t}scorecards c {clause} ORDER BY c.started_at_ms DESC, c.call_id"
                     " LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
            return int(total), [_card(r, ()) for r in rows]

        return self.runner.run(work)

    def agent_report(self, since_ms: int | None = None, until_ms: int | None = None,
                     agent_id: str | None = None) -> dict[str, Any]:
        """Agent scorecards over calls started in [since, until): per agent the calls scored, the average score
        (and raw score) in force, the calls with a critical failure, and per question yes / no / not applicable
        counts with the pass rate (yes over yes + no); ``labels``: each question's text per language."""
        clause, args = self._where(ScoreQuery(agent_id=agent_id, since_ms=since_ms, until_ms=until_ms))

        def work(x: Exec) -> tuple[list[Any], list[Any]]:
            cards = x(f"SELECT c.agent_id, count(*), avg(c.score), avg(c.raw_score), count(c.score),"
                      f" sum(CASE WHEN c.failed_critical != '[]' THEN 1 ELSE 0 END), sum(c.overrides)"
                      f" FROM {self.t}scorecards c {clause} GROUP BY c.agent_id ORDER BY c.agent_id", args).fetchall()
            answers = x(f"SELECT c.agent_id, a.question, a.answer, count(*) FROM {self.t}scorecards c"
                        f" JOIN {self.t}score_answers a ON a.call_id = c.call_id {clause}"
                        " GROUP BY c.agent_id, a.question, a.answer", args).fetchall()
            return cards, answers, self._labels(x, clause, args)

        cards, answers, labels = self.runner.run(work)
        per: dict[str, dict[str, dict[str, int]]] = {}
        for agent, question, code, n in answers:
            per.setdefault(agent, {}).setdefault(question, {"yes": 0, "no": 0, "na": 0})[code] += int(n)
        agents = []
        for agent, calls, avg, avg_raw, scored, failed, overrides in cards:
            agents.append({
                "agent_id": agent, "calls": int(calls), "scored": int(scored),
                "avg_score": _round(avg), "avg_raw_score": _round(avg_raw), "failed_critical_calls": int(failed or 0),
                "overrides": int(overrides or 0),
                "questions": {q: {**c, "pass_rate": _rate(c["yes"], c["yes"] + c["no"])}
                              for q, c in sorted(per.get(agent, {}).items())},
            })
        return {"since_ms": since_ms, "until_ms": until_ms, "agents": agents, "labels": labels}

    def calibration(self, since_ms: int | None = None, until_ms: int | None = None) -> dict[str, Any]:
        """Where people disagree with the automatic answers, per question, over calls started in [since, until):
        how many calls it was answered on, how many answers are overridden (the answer in force differs from the
        automatic one) and in which direction (``yes->no``: the rule said yes, QA said no; ``no->yes``; to and from
        not applicable), the override rate over all scored calls and over the calls QA reviewed (any override)."""
        clause, args = self._where(ScoreQuery(since_ms=since_ms, until_ms=until_ms))

        def work(x: Exec) -> tuple[list[Any], list[Any], int, int]:
            rows = x(f"SELECT a.question, a.auto, a.answer, count(*) FROM {self.t}scorecards c"
                     f" JOIN {self.t}score_answers a ON a.call_id = c.call_id {clause}"
                     " GROUP BY a.question, a.auto, a.answer", args).fetchall()
            reviewed_where = clause + (" AND " if clause else "WHERE ") + "c.overrides > 0"
            reviewed = x(f"SELECT a.question, a.auto, a.answer, count(*) FROM {self.t}scorecards c"
                         f" JOIN {self.t}score_answers a ON a.call_id = c.call_id {reviewed_where}"
                         " GROUP BY a.question, a.auto, a.answer", args).fetchall()
            calls = x(f"SELECT count(*) FROM {self.t}scorecards c {clause}", args).fetchone()[0]
            n_reviewed = x(f"SELECT count(*) FROM {self.t}scorecards c {reviewed_where}", args).fetchone()[0]
            return rows, reviewed, int(calls), int(n_reviewed), self._labels(x, clause, args)

        rows, reviewed, calls, n_reviewed, labels = self.runner.run(work)
        questions: dict[str, dict[str, Any]] = {}

        def entry(q: str) -> dict[str, Any]:
            return questions.setdefault(q, {"question": q, "calls": 0, "auto": {"yes": 0, "no": 0, "na": 0},
                                            "overridden": 0, "directions": {}, "reviewed_calls": 0, "reviewed_overridden": 0})

        for question, auto, answer, n in rows:
            e = entry(question)
            e["calls"] += int(n)
            e["auto"][auto] += int(n)
            if auto != answer:
                e["overridden"] += int(n)
                key = f"{auto}->{answer}"
                e["directions"][key] = e["directions"].get(key, 0) + int(n)
        for question, auto, answer, n in reviewed:
            e = entry(question)
            e["reviewed_calls"] += int(n)
            if auto != answer:
                e["reviewed_overridden"] += int(n)
        out = []
        for q in questions.values():
            d = q["directions"]
            out.append({**q, "yes_to_no": d.get("yes->no", 0), "no_to_yes": d.get("no->yes", 0),
                        "override_rate": _rate(q["overridden"], q["calls"]),
                        "reviewed_override_rate": _rate(q["reviewed_overridden"], q["reviewed_calls"])})
        out.sort(key=lambda q: (-q["overridden"], q["question"]))
        return {"since_ms": since_ms, "until_ms": until_ms, "calls": calls, "reviewed_calls": n_reviewed, "questions": out,
                "labels": labels}

    def _labels(self, x: Exec, clause: str, args: list[object]) -> dict[str, dict[str, str]]:
        """Question id -> its text per language ({"zh", "en"}), as the scorecards in the window carry it."""
        rows = x(f"SELECT a.question, max(a.label) FROM {self.t}scorecards c JOIN {self.t}score_answers a"
                 f" ON a.call_id = c.call_id {clause} GROUP BY a.question", args).fetchall()
        return {q: dict(json.loads(label or "{}")) for q, label in rows}


def _round(v: Any) -> float | None:
    return None if v is None else round(float(v), 1)


def _rate(n: int, of: int) -> float | None:
    return round(n / of, 4) if of else None


def _card(r: Sequence[Any], answers: tuple[AnswerRecord, ...]) -> ScoreRecord:
    return ScoreRecord(call_id=r[0], form=r[1], score=r[2], raw_score=r[3], failed_critical=tuple(json.loads(r[4] or "[]")),
                       auto_score=r[5], auto_raw_score=r[6], agent_id=r[7], language=r[8], started_at_ms=int(r[9]),
                       scored_at_ms=int(r[10]), overrides=int(r[11]), answers=answers)


def _answer(r: Sequence[Any]) -> AnswerRecord:
    (question, auto, answer, confidence, weight, critical, section, label, why, channel, quote, start_ms, end_ms,
     has_evidence) = r
    return AnswerRecord(question, answer_value(auto), answer_value(answer), float(confidence), float(weight), bool(critical),
                        section, dict(json.loads(label or "{}")), why,
                        {"channel": channel, "quote": quote, "start_ms": int(start_ms), "end_ms": int(end_ms)}
                        if has_evidence else None)


def _override(r: Sequence[Any]) -> OverrideRecord:
    return OverrideRecord(r[0], r[1], r[2], answer_value(r[3]), answer_value(r[4]), r[5], r[6], r[7], r[8], int(r[9]))


def _appeal(r: Sequence[Any]) -> AppealRecord:
    return AppealRecord(r[0], r[1], r[2], r[3], r[4], answer_value(r[5]), r[6], int(r[7]), r[8], r[9], int(r[10]))
