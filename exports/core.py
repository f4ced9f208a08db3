"""Incremental exports for a warehouse: each run writes what changed since the last run of the same export, as CSV or
Parquet files, and then moves that export's stored cursor (its *watermark*) past what it wrote.

Datasets (their columns: :data:`DATASETS`):

* ``calls``: ``report_calls`` (one row per reported call, with FCR, repeat links and the measures), by
  ``(filed_at_ms, call_id)``: a call is exported again when its row changes (a repeat call arriving days later flips its
  ``fcr``), so load it as an upsert on ``call_id``.
* ``utterances``: every final (redacted as stored) by its row ``id``.
* ``tickets``: by ``(greatest(created_at_ms, status_at_ms), ticket_id)``: again when the ticketing system reports a
  status (load as an upsert on ``ticket_id``).
* ``scores``: QA scorecards by ``(scored_at_ms, call_id)``, and ``score_overrides`` by ``(at_ms, override_id)``.
* ``alerts``: the supervisor alerts and surges of the Redis alerts stream, by stream id (Redis keeps
  ``global_stream_maxlen`` entries: export more often than that many alerts arrive).

Cursors live in the store (``export_cursors``: export name, dataset, cursor), so any machine running the export resumes
where the last one stopped. A cursor moves only after its file is complete on disk (written to a temporary name, synced,
renamed), so a crash re-exports at most one batch: at least once, and every row has a key to deduplicate by. Calls newer
than ``lag_s`` (5 s) are left for the next run, so a transaction still committing is not skipped past. Callers' numbers
never leave: ``caller_hash`` (keyword.repeat.caller_hash, the pseudonym `callscribe analyze` writes: 20 hex digits of the
sha256 of the digits; the same caller, the same value) stands in for them; text is exported
as stored (redacted by default; redacted here when the store keeps raw text).
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from callscribe.errors import CallscribeError
from callscribe.keyword.repeat import caller_hash
from callscribe.pii import mask_number, text_for

__all__ = ["DATASETS", "ALL", "Dataset", "ExportError", "export", "read_cursor", "write_cursor", "redis_alerts"]

CURSOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS {t}export_cursors (
    name TEXT NOT NULL, dataset TEXT NOT NULL, cursor TEXT NOT NULL, rows {int} NOT NULL DEFAULT 0,
    updated_at_ms {int} NOT NULL DEFAULT 0, PRIMARY KEY (name, dataset)
)
"""


class ExportError(CallscribeError):
    """An export that cannot run (Parquet without pyarrow, an unknown dataset, an unwritable folder)."""


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    table: str
    columns: tuple[tuple[str, str], ...]
    """(column, type): ``int`` / ``float`` / ``str`` / ``bool``; the Parquet schema and the CSV header."""
    cursor: tuple[str, str]
    """SQL expressions of the two-part watermark (a time or id, then a unique key)."""
    select: str = ""
    """The SELECT list when it differs from the columns."""
    timed: bool = True
    """The first cursor part is the time the row was written, in ms (rows newer than ``lag_s`` wait). The other
    datasets' times are their events' (a ticket's creation, a status the CRM dated): a row dated before the cursor when
    it arrives is not exported by that export (keep the store's clocks in step; re-export with a new ``--name``)."""


_CALL_COLS = (("call_id", "str"), ("started_at_ms", "int"), ("queue", "str"), ("agent_id", "str"), ("intent", "str"),
              ("caller_hash", "str"), ("language", "str"), ("handle_ms", "int"), ("timed", "bool"), ("talk_customer_ms", "int"),
              ("talk_agent_ms", "int"), ("talk_ms", "int"), ("overtalk_ms", "int"), ("silence_ms", "int"), ("unresolved", "bool"),
              ("reasons", "str"), ("alerts", "str"), ("sentiment", "str"), ("sentiment_score", "float"), ("qa_score", "float"),
              ("tickets", "int"), ("repeat_of", "str"), ("repeat_gap_ms", "int"), ("repeated_by", "str"), ("fcr", "bool"),
              ("filed_at_ms", "int"))
DATASETS: dict[str, Dataset] = {
    "calls": Dataset("calls", "report_calls", _CALL_COLS, ("filed_at_ms", "call_id"),
                     select=", ".join("caller_key" if c == "caller_hash" else c for c, _ in _CALL_COLS)),
    "utterances": Dataset("utterances", "utterances",
                          (("id", "int"), ("call_id", "str"), ("segment_id", "str"), ("channel", "str"), ("start_ms", "int"),
                           ("end_ms", "int"), ("at_ms", "int"), ("text", "str")), ("id", "segment_id"), timed=False),
    "tickets": Dataset("tickets", "tickets",
                       (("ticket_id", "str"), ("call_id", "str"), ("type", "str"), ("priority", "str"), ("status", "str"),
                        ("title", "str"), ("subtype", "str"), ("intent", "str"), ("summary", "str"), ("fields", "str"),
                        ("caller", "str"), ("agent_id", "str"), ("created_by", "str"), ("created_at_ms", "int"),
                        ("status_note", "str"), ("external_id", "str"), ("status_at_ms", "int")),
                       ("CASE WHEN status_at_ms > created_at_ms THEN status_at_ms ELSE created_at_ms END", "ticket_id"),
                       timed=False),
    "scores": Dataset("scores", "scorecards",
                      (("call_id", "str"), ("form", "str"), ("score", "float"), ("raw_score", "float"), ("failed_critical", "str"),
                       ("auto_score", "float"), ("auto_raw_score", "float"), ("agent_id", "str"), ("language", "str"),
                       ("started_at_ms", "int"), ("scored_at_ms", "int"), ("overrides", "int")), ("scored_at_ms", "call_id"),
                      timed=False),
    "score_overrides": Dataset("score_overrides", "score_overrides",
                               (("override_id", "str"), ("call_id", "str"), ("question", "str"), ("old_answer", "str"),
                                ("new_answer", "str"), ("reason", "str"), ("by_sub", "str"), ("by_role", "str"),
                                ("appeal_id", "str"), ("at_ms", "int")), ("at_ms", "override_id"), timed=False),
}
ALERT_COLS = (("stream_id", "str"), ("type", "str"), ("call_id", "str"), ("alert_id", "str"), ("rule", "str"), ("category", "str"),
              ("severity", "str"), ("channel", "str"), ("quote", "str"), ("start_ms", "int"), ("end_ms", "int"),
              ("topic_kind", "str"), ("topic", "str"), ("count", "int"), ("ratio", "float"), ("call_ids", "str"),
              ("emitted_at_ms", "int"))
ALL = (*DATASETS, "alerts")


def _runner(store: Any) -> tuple[Any, str, str]:
    tables = store.reports
    return tables.runner, tables.t, tables.dialect


def _ensure(store: Any) -> None:
    runner, t, dialect = _runner(store)
    ddl = CURSOR_SCHEMA.format(t=t, int="INTEGER" if dialect == "sqlite" else "bigint")
    runner.run(lambda x: x(ddl))


def read_cursor(store: Any, name: str, dataset: str) -> list[Any] | None:
    _ensure(store)
    runner, t, _ = _runner(store)
    row = runner.run(lambda x: x(f"SELECT cursor FROM {t}export_cursors WHERE name = ? AND dataset = ?", (name, dataset)).fetchone())
    return json.loads(row[0]) if row else None


def write_cursor(store: Any, name: str, dataset: str, cursor: Sequence[Any], rows: int) -> None:
    runner, t, _ = _runner(store)
    runner.run(lambda x: x(f"INSERT INTO {t}export_cursors AS c (name, dataset, cursor, rows, updated_at_ms) VALUES (?,?,?,?,?)"
                           " ON CONFLICT (name, dataset) DO UPDATE SET cursor = excluded.cursor, rows = c.rows + excluded.rows,"
                           " updated_at_ms = excluded.updated_at_ms",
                           (name, dataset, json.dumps(list(cursor)), rows, int(time.time() * 1000))))


def _has_table(store: Any, table: str) -> bool:
    runner, t, dialect = _runner(store)
    if dialect == "sqlite":
        return runner.run(lambda x: x("SELECT 1 FROM sqlite_master WHERE type='table' AND name = ?", (table,)).fetchone()) is not None
    return bool(runner.run(lambda x: x("SELECT to_regclass(?) IS NOT NULL", (f"{t}{table}",)).fetchone()[0]))


def _rows(store: Any, ds: Dataset, after: list[Any] | None, limit: int, upto_ms: int) -> list[tuple[Any, ...]]:
    runner, t, _ = _runner(store)
    a, b = ds.cursor
    cols = ds.select or ", ".join(c for c, _ in ds.columns)
    where, args = [], []
    if after is not None:
        where.append(f"(({a}) > ? OR (({a}) = ? AND {b} > ?))")
        args += [after[0], after[0], after[1]]
    if ds.timed:
        where.append(f"({a}) <= ?")
        args.append(upto_ms)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    sql = f"SELECT {cols}, ({a}) AS cursor_a, {b} AS cursor_b FROM {t}{ds.table} {clause} ORDER BY ({a}), {b} LIMIT ?"
    return runner.run(lambda x: x(sql, [*args, limit]).fetchall())


def _clean(ds_name: str, names: Sequence[str], row: Sequence[Any], stored_redacted: bool) -> list[Any]:
    out = list(row)
    for i, name in enumerate(names):
        v = out[i]
        if name == "caller_hash":
            out[i] = caller_hash(v) if v else ""
        elif name == "caller":
            out[i] = mask_number(v) if v else ""
        elif name in ("text", "quote", "summary", "fields", "status_note", "reason", "title") and isinstance(v, str):
            out[i] = text_for("export", v, stored_redacted)
    return out


def _write(path: Path, fmt: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> None:
    """The file, complete or not at all: a temporary name, synced, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    names = [c for c, _ in columns]
    if fmt == "csv":
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(names)
            for r in rows:
                w.writerow(["" if v is None else (int(v) if isinstance(v, bool) else v) for v in r])
            f.flush()
            os.fsync(f.fileno())
    else:
        pa, pq = _pyarrow()
        types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}
        schema = pa.schema([(c, types[k]) for c, k in columns])
        data = {c: [(_typed(r[i], columns[i][1])) for r in rows] for i, c in enumerate(names)}
        pq.write_table(pa.Table.from_pydict(data, schema=schema), tmp, compression="zstd")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    os.replace(tmp, path)


def _typed(v: Any, kind: str) -> Any:
    if v is None:
        return None
    if kind == "int":
        return int(v)
    if kind == "float":
        return float(v)
    if kind == "bool":
        return bool(v)
    return str(v)


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ExportError("Parquet needs pyarrow: pip install 'callscribe[parquet]' (or export --format csv)") from exc
    return pa, pq


def export(store: Any, out_dir: str | os.PathLike[str], *, name: str = "warehouse", datasets: Iterable[str] = ALL,
           fmt: str = "csv", batch: int = 50_000, lag_s: float = 5.0, stored_redacted: bool = True,
           alerts_reader: Callable[[str | None, int], list[tuple[str, dict[str, Any]]]] | None = None,
           now_ms: int | None = None) -> dict[str, dict[str, Any]]:
    """Export what changed since export ``name`` last ran: ``{dataset: {"rows", "files", "cursor"}}``.

    ``alerts_reader(after_stream_id, count)`` -> ``[(stream id, event dict)]`` reads the Redis alerts stream (None:
    alerts are skipped). Files: ``{out_dir}/{dataset}/{dataset}-{first}-{n}.{csv|parquet}``."""
    if fmt not in ("csv", "parquet"):
        raise ExportError("format must be csv or parquet")
    if fmt == "parquet":
        _pyarrow()
    wanted = list(datasets)
    unknown = [d for d in wanted if d not in ALL]
    if unknown:
        raise ExportError(f"unknown dataset(s) {', '.join(unknown)}: choose from {', '.join(ALL)}")
    out = Path(out_dir)
    upto = (int(time.time() * 1000) if now_ms is None else now_ms) - int(lag_s * 1000)
    result: dict[str, dict[str, Any]] = {}
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for ds_name in wanted:
        files: list[str] = []
        total = 0
        cursor = read_cursor(store, name, ds_name)
        if ds_name == "alerts":
            if alerts_reader is None:
                result[ds_name] = {"rows": 0, "files": [], "cursor": cursor, "skipped": "no Redis to read alerts from"}
                continue
            while True:
                entries = alerts_reader(cursor[0] if cursor else None, batch)
                if not entries:
                    break
                rows = [_alert_row(i, e, stored_redacted) for i, e in entries]
                path = out / ds_name / f"{ds_name}-{stamp}-{len(files):04d}.{fmt}"
                _write(path, fmt, ALERT_COLS, rows)
                cursor = [entries[-1][0], ""]
                write_cursor(store, name, ds_name, cursor, len(rows))
                files.append(str(path))
                total += len(rows)
                if len(entries) < batch:
                    break
            result[ds_name] = {"rows": total, "files": files, "cursor": cursor}
            continue
        ds = DATASETS[ds_name]
        if not _has_table(store, ds.table):
            result[ds_name] = {"rows": 0, "files": [], "cursor": cursor, "skipped": f"the store has no {ds.table} table"}
            continue
        names = [c for c, _ in ds.columns]
        while True:
            raw = _rows(store, ds, cursor, batch, upto)
            if not raw:
                break
            rows = [_clean(ds_name, names, r[:len(names)], stored_redacted) for r in raw]
            path = out / ds_name / f"{ds_name}-{stamp}-{len(files):04d}.{fmt}"
            _write(path, fmt, ds.columns, rows)
            cursor = [raw[-1][-2], raw[-1][-1]]
            write_cursor(store, name, ds_name, cursor, len(rows))
            files.append(str(path))
            total += len(rows)
            if len(raw) < batch:
                break
        result[ds_name] = {"rows": total, "files": files, "cursor": cursor}
    return result


def _alert_row(stream_id: str, e: dict[str, Any], stored_redacted: bool) -> list[Any]:
    row = [stream_id, e.get("type", ""), e.get("call_id", ""), e.get("alert_id", "") or e.get("surge_id", ""), e.get("rule", ""),
           e.get("category", ""), e.get("severity", ""), e.get("channel", ""), text_for("export", str(e.get("quote", "")), stored_redacted),
           e.get("start_ms"), e.get("end_ms"), e.get("topic_kind", ""), e.get("topic", ""), e.get("count"), e.get("ratio"),
           " ".join(e.get("call_ids", []) or []), e.get("emitted_at_ms")]
    return row


def redis_alerts(client: Any, cfg: Any) -> Callable[[str | None, int], list[tuple[str, dict[str, Any]]]]:
    """An ``alerts_reader`` over a synchronous redis-py client: the alerts stream after a stream id, as event dicts."""
    from callscribe.errors import SchemaError
    from callscribe.events import from_fields, to_dict
    from callscribe.stream import keys

    def read(after: str | None, count: int) -> list[tuple[str, dict[str, Any]]]:
        entries = client.xrange(keys.alerts_stream(cfg), min=f"({after}" if after else "-", count=count)
        out = []
        for entry_id, fields in entries:
            sid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            try:
                out.append((sid, to_dict(from_fields(fields))))
            except SchemaError:
                out.append((sid, {"type": "unreadable"}))
        return out

    return read
