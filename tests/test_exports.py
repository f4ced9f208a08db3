"""Incremental exports (callscribe/exports): CSV and Parquet by stored watermark on both store backends, alerts from the
Redis stream, corrections re-exported, nothing twice, no caller number in any file; and the `callscribe export` command."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import pytest
import redis

from callscribe.cli import main
from callscribe.config import Config
from callscribe.events import Alert, Surge, to_fields
from callscribe.exports.core import export, read_cursor, redis_alerts
from callscribe.gateway.store import SqliteStore
from callscribe.reports.sample import SampleCall, load, month
from callscribe.stream import keys

START = 1_796_659_200_000
DAY = 86_400_000


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "postgres":
        from callscribe.gateway.store.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("postgres_dsn"), schema=f"exp_{uuid.uuid4().hex[:10]}")
    else:
        s = SqliteStore(tmp_path / "exports.db")
    yield s
    s.close()


def _csv_rows(files: list[str]) -> list[dict[str, str]]:
    rows = []
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            rows += list(csv.DictReader(fh))
    return rows


def test_incremental_csv_export_by_watermark(store, tmp_path):
    calls = month(START, days=3, calls_per_day=15, callers=30)
    load(store, calls)
    out = tmp_path / "out"
    first = export(store, out, name="wh", lag_s=0, batch=20)
    n_utt = sum(len(c.utterances) for c in calls)
    assert first["calls"]["rows"] == len(calls) and len(first["calls"]["files"]) == -(-len(calls) // 20)
    assert first["utterances"]["rows"] == n_utt
    assert first["tickets"]["rows"] == sum(c.tickets for c in calls)
    assert first["scores"]["rows"] == sum(c.qa_score is not None for c in calls)
    assert first["alerts"].get("skipped")
    rows = _csv_rows(first["calls"]["files"])
    assert {r["call_id"] for r in rows} == {c.call_id for c in calls}
    text = "".join(Path(f).read_text(encoding="utf-8") for d in first.values() for f in d["files"])
    assert not any(c.caller[-8:] in text for c in calls)  # no caller number leaves: caller_hash / masked instead
    by_id = {r["call_id"]: r for r in rows}
    assert all(len(r["caller_hash"]) == 20 for r in rows)  # keyword.repeat.caller_hash: the same pseudonym as `analyze`

    # nothing new: nothing exported, the cursors stay
    again = export(store, out, name="wh", lag_s=0)
    assert all(r["rows"] == 0 for r in again.values())
    # a repeat call arrives: it is exported, and so is the call it corrects (its fcr flips)
    last = max(calls, key=lambda c: c.started_at_ms)
    target = next(c for c in sorted(calls, key=lambda c: -c.started_at_ms) if not c.unresolved and by_id[c.call_id]["fcr"] == "1")
    repeat = SampleCall("late-1", target.started_at_ms + 3_600_000, target.caller, target.queue, "a01", target.intent, False,
                        duration_ms=60_000, utterances=[("customer", 1000, 3000, "还是不行")])
    load(store, [repeat])
    third = export(store, out, name="wh", lag_s=0)
    changed = {r["call_id"]: r for r in _csv_rows(third["calls"]["files"])}
    assert set(changed) == {"late-1", target.call_id}, (set(changed), last.call_id)
    assert changed[target.call_id]["fcr"] == "0" and changed[target.call_id]["repeated_by"] == "late-1"
    assert third["utterances"]["rows"] == 1
    # another export name has its own cursor: it gets everything
    other = export(store, tmp_path / "other", name="lake", datasets=["calls"], lag_s=0)
    assert other["calls"]["rows"] == len(calls) + 1
    assert read_cursor(store, "wh", "calls")[1] and read_cursor(store, "lake", "utterances") is None


def test_parquet_export_and_alerts_from_redis(store, tmp_path, redis_server):
    pq = pytest.importorskip("pyarrow.parquet")
    cfg = Config(redis_url=redis_server.url, key_prefix="exp")
    client = redis.Redis.from_url(redis_server.url)
    for i in range(7):
        client.xadd(keys.alerts_stream(cfg), to_fields(Alert(f"c{i}", f"c{i}/a{i}", "escalation.manager", "escalation", "high",
                                                             "customer", "我要投诉你们 13812345678", 1000, 2000)))
    client.xadd(keys.alerts_stream(cfg), to_fields(Surge("s1", "intent", "broadband_outage", 600, 12, 2.0, 6.0, ("c1", "c2"))))
    load(store, month(START, days=1, calls_per_day=10, callers=10))
    result = export(store, tmp_path / "pq", fmt="parquet", datasets=["calls", "alerts"], lag_s=0, batch=5,
                    alerts_reader=redis_alerts(client, cfg), stored_redacted=False)  # raw text stored: redacted on the way out
    assert result["alerts"]["rows"] == 8 and len(result["alerts"]["files"]) == 2
    table = pq.read_table(result["calls"]["files"][0])
    assert table.schema.field("fcr").type == "bool" and table.schema.field("handle_ms").type == "int64"
    alerts = [r for f in result["alerts"]["files"] for r in pq.read_table(f).to_pylist()]
    assert [a["type"] for a in alerts].count("surge") == 1
    assert all("13812345678" not in (a["quote"] or "") for a in alerts)  # the quote through the PII policy
    client.xadd(keys.alerts_stream(cfg), to_fields(Alert("c9", "c9/a9", "abuse.x", "abuse", "high", "customer", "x", 1, 2)))
    more = export(store, tmp_path / "pq", fmt="parquet", datasets=["alerts"], lag_s=0, alerts_reader=redis_alerts(client, cfg))
    assert more["alerts"]["rows"] == 1
    client.close()


def test_export_command(tmp_path, monkeypatch, capsys):
    s = SqliteStore(tmp_path / "store.db")
    load(s, month(START, days=1, calls_per_day=8, callers=8))
    s.close()
    monkeypatch.setenv("CALLSCRIBE_DATA_DIR", str(tmp_path))
    assert main(["export", "--store", str(tmp_path / "store.db"), "--out", str(tmp_path / "x"), "--datasets", "calls,tickets",
                 "--lag-s", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"calls", "tickets"}
    assert (tmp_path / "x" / "calls").is_dir()
