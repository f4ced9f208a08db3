"""Search benchmark: load N utterances (zh + en) into the transcript store (SQLite, or PostgreSQL with
``--store postgresql://...``), report the ingest rate, then time a query mix (2-character Chinese words,
longer Chinese words, English words and phrases, OR, exclusions, with and without filters) and report
p50/p95/p99.

Utterances come from the labelled dialogues in tests/data (real contact-center wording in both
languages), spread over ``--calls`` calls, 40 agents, 6 queues and 30 days, with a per-call number
suffix so texts are not all identical. Run: ``python -m benchmarks.search [--utterances 100000]
[--store postgresql://user@host/db]``. PostgreSQL runs in a throwaway schema (dropped at the end) and is
ANALYZEd after the load, as autovacuum would do within a minute. Output: benchmarks/results/search-*.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from callscribe.gateway.store import CallRecord, SearchQuery, SqliteStore, TranscriptStore, Utterance
from callscribe.gateway.store.base import masked
from callscribe.keyword.dialogue import read_dialogue

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
INTENTS = ["billing_dispute", "data_plan", "roaming", "broadband_outage", "number_porting", "cancel_service",
           "package_change", "sim_device", "payment", "account_security", "complaint", "other"]
QUERIES = [
    ("投诉", {}), ("宽带", {}), ("退费", {}), ("工信部", {}), ("话费 OR 套餐", {}), ("携号转网", {}),
    ("流量 -漫游", {}), ("领导", {"unresolved": True}), ("宽带 断", {"intent": "broadband_outage"}),
    ("manager", {}), ('"speak to"', {}), ("refund", {"agent_id": "agent-07"}), ("roaming OR abroad", {}),
    ("complain*", {}), ("internet -router", {}), ("bill", {"queue": "billing", "alert": "escalation"}),
    ("投诉", {"since_days": 7}), ("password", {"channel": "customer"}),
]


def corpus() -> list[tuple[str, str]]:
    files = sorted(p for d in (ROOT / "tests" / "data").glob("dialogues*") for p in d.glob("*.txt"))
    out = []
    for f in files:
        for u in read_dialogue(f).utterances:
            if u.text:
                out.append((u.channel, u.text))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--utterances", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=8_000)
    ap.add_argument("--repeat", type=int, default=20, help="times each query is run")
    ap.add_argument("--store", metavar="URL", default="",
                    help="postgresql://... to benchmark PostgresStore on that server (default: SQLite in a temp dir)")
    args = ap.parse_args()
    if args.store and not args.store.startswith(("postgresql://", "postgres://")):
        ap.error("--store takes a postgresql:// URL (SQLite is the default)")
    rng = random.Random(7)
    lines = corpus()
    now_ms = int(time.time() * 1000)
    day = 86_400_000
    with tempfile.TemporaryDirectory() as tmp:
        pg_schema = f"bench_{os.getpid()}"
        store: TranscriptStore
        if args.store:
            from callscribe.gateway.store.postgres import PostgresStore

            store = PostgresStore(args.store, schema=pg_schema)
        else:
            store = SqliteStore(Path(tmp) / "bench.db")
        calls = []
        for i in range(args.calls):
            calls.append(CallRecord(
                f"call-{i}", started_at_ms=now_ms - rng.randrange(30 * day), agent_id=f"agent-{i % 40:02d}",
                queue=["billing", "broadband", "mobile", "roaming", "retention", "vip"][i % 6],
                intent=INTENTS[i % len(INTENTS)], unresolved=rng.random() < 0.3,
                alerts=("escalation",) if rng.random() < 0.15 else (), ended=True,
            ))
        t0 = time.perf_counter()
        for c in calls:
            store.upsert_call(c)
        per_call = max(1, -(-args.utterances // args.calls))
        batch: list[Utterance] = []
        n = 0
        for i, c in enumerate(calls):
            for k in range(per_call):
                if n >= args.utterances:
                    break
                channel, text = lines[(i * 7 + k) % len(lines)]
                batch.append(Utterance(c.call_id, f"{c.call_id}/{channel}/{k}", channel, k * 4000, k * 4000 + 3000,
                                       f"{text} #{i}", c.started_at_ms + k * 4000))
                n += 1
            if len(batch) >= 500:
                store.add_utterances(batch)
                batch = []
        store.add_utterances(batch)
        ingest_s = time.perf_counter() - t0
        if args.store:
            db_mb, backend = _postgres_finish_load(args.store, pg_schema)
        else:
            db_mb, backend = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6, f"SQLite {sqlite3.sqlite_version}"
        timings: dict[str, list[float]] = {}
        totals: dict[str, int] = {}
        for _ in range(args.repeat):
            for text, filters in QUERIES:
                f = dict(filters)
                if "since_days" in f:
                    f["since_ms"] = now_ms - f.pop("since_days") * day
                key = text + (" " + json.dumps(filters, ensure_ascii=False) if filters else "")
                t = time.perf_counter()
                page = store.search(SearchQuery(text, **f))
                timings.setdefault(key, []).append((time.perf_counter() - t) * 1000)
                totals[key] = page.total
        store.close()
        if args.store:
            _postgres_drop(args.store, pg_schema)
    all_ms = sorted(x for v in timings.values() for x in v)

    def pct(p: float) -> float:
        return round(all_ms[min(len(all_ms) - 1, int(p / 100 * len(all_ms)))], 2)

    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": f"python -m benchmarks.search --utterances {args.utterances}"
                   + (f" --store {masked(args.store)}" if args.store else ""),
        "store": backend,
        "utterances": n, "calls": args.calls, "db_mb": round(db_mb, 1),
        "ingest_s": round(ingest_s, 2), "ingest_utterances_per_s": round(n / ingest_s),
        "query_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": round(all_ms[-1], 2)},
        "per_query": {k: {"p50_ms": round(statistics.median(v), 2), "max_ms": round(max(v), 2), "total_hits": totals[k]}
                      for k, v in timings.items()},
    }
    print(json.dumps(result, indent=1, ensure_ascii=False))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"search-{dt.datetime.now():%Y%m%d-%H%M}.json"
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"saved {out.relative_to(ROOT)}")


def _postgres_finish_load(url: str, schema: str) -> tuple[float, str]:
    """ANALYZE the loaded tables (query plans need statistics; autovacuum would gather them within a
    minute of a bulk load); returns (tables + indexes in MB, server version)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'ANALYZE "{schema}".calls, "{schema}".utterances')
        size = db.execute("SELECT sum(pg_total_relation_size(format('%%I.%%I', schemaname, tablename)::regclass))"
                          " FROM pg_tables WHERE schemaname = %s", (schema,)).fetchone()
        version = db.execute("SHOW server_version").fetchone()
    return float(size[0] if size else 0) / 1e6, f"PostgreSQL {version[0] if version else '?'}"


def _postgres_drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
