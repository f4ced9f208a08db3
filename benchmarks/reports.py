"""The reports over 1,000,000 calls on PostgreSQL: how long do they take to answer?

A throwaway PostgreSQL server (initdb into a temp dir, as tests/conftest.py starts one) gets a store
(callscribe.gateway.store.PostgresStore) and ``--calls`` generated calls over ``--days`` days (from ``--callers`` numbers;
one call in five repeats an earlier caller 2 h to 10 days later, mostly about the same intent), written with COPY into
``calls`` and ``report_calls``; then ``store.reports.rebuild`` links every repeat call (LAG / LEAD per caller and
intent) and builds the hourly aggregates. Measured:

* the bulk load and the rebuild (how long a store of that size takes to backfill);
* the live path: ``store.reports.refresh`` of ``--live`` new calls on top (what the store ingest adds per call);
* each report query, ``--repeat`` times, for the last day, week, month and the whole span, with no filter, a queue, an
  intent and an agent: the full report (``build_report`` without topics: totals, by intent / queue / agent / day / hour,
  alerts, reasons, intent mix, movers) and its single queries; p50 / p95 / max in ms.

Run: ``python -m benchmarks.reports [--calls 1000000] [--days 180] [--repeat 20] [--sqlite]``. JSON into
benchmarks/results/. ``--sqlite``: the same on a SQLite store (the single-node default) instead of PostgreSQL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

RESULTS = Path(__file__).parent / "results"
DAY = 86_400_000
INTENTS = ["billing_dispute", "broadband_outage", "data_plan", "roaming", "payment", "cancel_service", "package_change",
           "sim_device", "number_porting", "account_security", "complaint", "other"]
INTENT_W = np.array([14, 12, 11, 6, 9, 3, 6, 5, 3, 4, 5, 2], dtype=float)
QUEUES = ["billing", "broadband", "mobile", "retention", "care", "vip"]
REASONS = ["customer says the issue is not solved", "left pending: ticket, callback or wait for notice",
           "customer transferred around", "fix not confirmed; customer may call again"]
ALERTS = ["escalation", "silence", "overtalk", "compliance", "repeat_caller", "abuse", "sentiment"]


def start_postgres(tmp: Path) -> tuple[str, Callable[[], None]]:
    """A PostgreSQL server for the run (as tests/conftest.py's fixture, with memory settings for 1M rows)."""
    from callscribe.stream.server import free_port

    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    bindir = next((b for b in reversed(versions) if (b / "initdb").exists()), None)
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found: apt-get install postgresql")
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = tmp / "data"
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                    "--locale=C", "--no-sync"], check=True, capture_output=True)
    port = free_port()
    log = open(tmp / "postgres.log", "wb")
    server = subprocess.Popen([*as_user, str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(tmp),
                               "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                               "-c", "full_page_writes=off", "-c", "shared_buffers=512MB", "-c", "work_mem=64MB",
                               "-c", "maintenance_work_mem=512MB", "-c", "max_wal_size=4GB"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while subprocess.run([str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], check=False).returncode:
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"PostgreSQL did not start: {(tmp / 'postgres.log').read_text(errors='replace')[-1500:]}")
        time.sleep(0.1)

    def stop() -> None:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"], capture_output=True)
        server.wait(30)
        log.close()

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


def generate(n: int, days: int, callers: int, start_ms: int, seed: int = 22) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = int(n * 0.8)
    hour_w = np.array([1] * 8 + [6, 9, 9, 8, 5, 6, 8, 8, 7, 6, 4, 3, 2, 1, 1, 1], dtype=float)
    day = rng.integers(0, days, base)
    hour = rng.choice(24, base, p=hour_w / hour_w.sum())
    t = start_ms + day * DAY + hour * 3_600_000 + rng.integers(0, 3_600_000, base)
    caller = rng.integers(0, callers, base)
    intent = rng.choice(len(INTENTS), base, p=INTENT_W / INTENT_W.sum())
    k = n - base  # repeat calls: an earlier caller again, 2 h to 10 days later, 80 % about the same intent
    src = rng.integers(0, base, k)
    t2 = t[src] + rng.integers(2 * 3_600_000, 10 * DAY, k)
    intent2 = np.where(rng.random(k) < 0.8, intent[src], rng.choice(len(INTENTS), k, p=INTENT_W / INTENT_W.sum()))
    t = np.concatenate([t, t2])
    caller = np.concatenate([caller, caller[src]])
    intent = np.concatenate([intent, intent2])
    order = np.argsort(t, kind="stable")
    t, caller, intent = t[order], caller[order], intent[order]
    queue_of = np.array([0, 1, 2, 2, 0, 3, 3, 2, 2, 4, 4, 4])
    queue = np.where(rng.random(n) < 0.05, 5, queue_of[intent])
    unresolved = rng.random(n) < np.where(np.isin(intent, [1, 10]), 0.3, 0.15)
    return {
        "t": t, "caller": caller, "intent": intent, "queue": queue, "agent": rng.integers(0, 400, n),
        "unresolved": unresolved, "reason": rng.integers(0, len(REASONS), n),
        "alerts": rng.random((n, len(ALERTS))) < np.array([0.08, 0.06, 0.05, 0.02, 0.1, 0.01, 0.04]),
        "duration": rng.integers(45_000, 1_200_000, n), "lang": rng.random(n) < 0.75,
        "sentiment": rng.choice(3, n, p=[0.2, 0.5, 0.3]), "qa": np.where(rng.random(n) < 0.6, rng.uniform(50, 100, n), np.nan),
        "tickets": (unresolved & (rng.random(n) < 0.4)).astype(int), "talk": rng.uniform(0.55, 0.9, n),
        "cust": rng.uniform(0.35, 0.65, n), "over": rng.uniform(0.0, 0.05, n),
    }


def load(store: Any, g: dict[str, np.ndarray]) -> float:
    """COPY the calls into ``calls`` and ``report_calls`` (links and fcr left to the rebuild); seconds taken."""
    from callscribe.reports.facts import dumps

    s = store.schema
    n = len(g["t"])
    t0 = time.perf_counter()
    moods = ["negative", "neutral", "positive"]
    with store._lock:
        db = store._db
        with db.cursor() as cur:
            with cur.copy(f'COPY "{s}".calls (call_id, started_at_ms, duration_ms, ended, agent_id, queue, caller, language,'
                          " intent, intent_score, unresolved, alerts, reasons, caller_key) FROM STDIN") as cp:
                for i in range(n):
                    number = f"138{int(g['caller'][i]):08d}"
                    alerts = [a for a, on in zip(ALERTS, g["alerts"][i]) if on]
                    cp.write_row((f"b{i:07d}", int(g["t"][i]), int(g["duration"][i]), True, f"a{int(g['agent'][i]):03d}",
                                  QUEUES[int(g["queue"][i])], number, "zh" if g["lang"][i] else "en", INTENTS[int(g["intent"][i])],
                                  0.6, bool(g["unresolved"][i]), alerts,
                                  [REASONS[int(g["reason"][i])]] if g["unresolved"][i] else [], number))
            with cur.copy(f'COPY "{s}".report_calls (call_id, started_at_ms, hour_ms, queue, agent_id, intent, caller_key, language,'
                          " handle_ms, timed, talk_customer_ms, talk_agent_ms, talk_ms, overtalk_ms, silence_ms, unresolved,"
                          " reasons, alerts, sentiment, sentiment_score, qa_score, tickets, fcr, filed_at_ms) FROM STDIN") as cp:
                now = int(time.time() * 1000)
                for i in range(n):
                    d = int(g["duration"][i])
                    talk = int(d * g["talk"][i])
                    cust = int(talk * g["cust"][i])
                    over = int(talk * g["over"][i])
                    alerts = [a for a, on in zip(ALERTS, g["alerts"][i]) if on]
                    qa = None if np.isnan(g["qa"][i]) else round(float(g["qa"][i]), 1)
                    mood = int(g["sentiment"][i])
                    cp.write_row((f"b{i:07d}", int(g["t"][i]), int(g["t"][i]) // 3_600_000 * 3_600_000, QUEUES[int(g["queue"][i])],
                                  f"a{int(g['agent'][i]):03d}", INTENTS[int(g["intent"][i])], f"138{int(g['caller'][i]):08d}",
                                  "zh" if g["lang"][i] else "en", d, 1, cust, talk - cust + over, talk, over, d - talk,
                                  int(g["unresolved"][i]), dumps([REASONS[int(g["reason"][i])]] if g["unresolved"][i] else []),
                                  dumps(alerts), moods[mood], (-0.6, 0.0, 0.6)[mood], qa, int(g["tickets"][i]), 0, now))
        db.execute(f'ANALYZE "{s}".calls')
        db.execute(f'ANALYZE "{s}".report_calls')
    return time.perf_counter() - t0


def load_sqlite(store: Any, g: dict[str, np.ndarray]) -> float:
    """The same rows into a SQLite store (executemany in one transaction); seconds taken."""
    from callscribe.reports.facts import dumps

    n = len(g["t"])
    t0 = time.perf_counter()
    moods = ["negative", "neutral", "positive"]
    now = int(time.time() * 1000)
    calls, facts = [], []
    for i in range(n):
        number = f"138{int(g['caller'][i]):08d}"
        alerts = [a for a, on in zip(ALERTS, g["alerts"][i]) if on]
        reasons = [REASONS[int(g["reason"][i])]] if g["unresolved"][i] else []
        d = int(g["duration"][i])
        talk = int(d * g["talk"][i])
        cust, over = int(talk * g["cust"][i]), int(talk * g["over"][i])
        mood = int(g["sentiment"][i])
        qa = None if np.isnan(g["qa"][i]) else round(float(g["qa"][i]), 1)
        cid, t = f"b{i:07d}", int(g["t"][i])
        calls.append((cid, t, d, 1, f"a{int(g['agent'][i]):03d}", QUEUES[int(g["queue"][i])], number, "zh" if g["lang"][i] else "en",
                      INTENTS[int(g["intent"][i])], 0.6, int(g["unresolved"][i]), dumps(alerts), dumps(reasons), number))
        facts.append((cid, t, t // 3_600_000 * 3_600_000, QUEUES[int(g["queue"][i])], f"a{int(g['agent'][i]):03d}",
                      INTENTS[int(g["intent"][i])], number, "zh" if g["lang"][i] else "en", d, 1, cust, talk - cust + over, talk,
                      over, d - talk, int(g["unresolved"][i]), dumps(reasons), dumps(alerts), moods[mood], (-0.6, 0.0, 0.6)[mood],
                      qa, int(g["tickets"][i]), 0, now))
    with store._lock:
        db = store._db
        db.execute("BEGIN")
        db.executemany("INSERT INTO calls (call_id, started_at_ms, duration_ms, ended, agent_id, queue, caller, language, intent,"
                       " intent_score, unresolved, alerts, reasons, caller_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", calls)
        db.executemany("INSERT INTO report_calls (call_id, started_at_ms, hour_ms, queue, agent_id, intent, caller_key, language,"
                       " handle_ms, timed, talk_customer_ms, talk_agent_ms, talk_ms, overtalk_ms, silence_ms, unresolved, reasons,"
                       " alerts, sentiment, sentiment_score, qa_score, tickets, fcr, filed_at_ms)"
                       " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", facts)
        db.execute("COMMIT")
        db.execute("ANALYZE")
    return time.perf_counter() - t0


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    fn()  # warm the cache once, as a dashboard that is open is
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(times[max(0, int(0.95 * len(times)) - 1)], 1),
            "max_ms": round(times[-1], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--callers", type=int, default=0, help="distinct numbers (default: 35 % of the calls)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--live", type=int, default=2000, help="calls filed through the live path on top")
    ap.add_argument("--sqlite", action="store_true", help="the same on a SQLite store (the single-node default) instead")
    args = ap.parse_args()

    from zoneinfo import ZoneInfo

    from callscribe.gateway.store.base import CallRecord
    from callscribe.gateway.store.postgres import PostgresStore
    from callscribe.reports.metrics import build_report
    from callscribe.reports.sample import load as load_sample
    from callscribe.reports.sample import month
    from callscribe.reports.tables import ReportFilter

    tz = ZoneInfo("Asia/Shanghai")
    start_ms = 1_780_000_000_000 // DAY * DAY - 8 * 3_600_000  # a Shanghai midnight in 2026
    end_ms = start_ms + args.days * DAY
    tmp = Path(tempfile.mkdtemp(prefix="callscribe-bench-pg-"))
    if args.sqlite:
        from callscribe.gateway.store import SqliteStore

        def stop() -> None:
            pass
    else:
        dsn, stop = start_postgres(tmp)
    out: dict[str, Any] = {"benchmark": "reports", "backend": "sqlite" if args.sqlite else "postgresql",
                           "date": dt.datetime.now().isoformat(timespec="seconds"),
                           "machine": f"{platform.machine()}, {os.cpu_count()} cores", "calls": args.calls, "days": args.days}
    try:
        store = SqliteStore(tmp / "bench.db") if args.sqlite else PostgresStore(dsn, schema="bench")
        t0 = time.perf_counter()
        g = generate(args.calls, args.days, args.callers or int(args.calls * 0.35), start_ms)
        out["generate_s"] = round(time.perf_counter() - t0, 1)
        out["copy_s"] = round((load_sqlite if args.sqlite else load)(store, g), 1)
        print(f"loaded {args.calls:,} calls in {out['copy_s']} s", flush=True)
        t0 = time.perf_counter()
        store.reports.rebuild(7)
        out["rebuild_s"] = round(time.perf_counter() - t0, 1)
        if args.sqlite:
            store.reports.runner.run(lambda x: x("ANALYZE"))
        else:
            store._run(lambda db: (db.execute('ANALYZE "bench".report_calls'), db.execute('ANALYZE "bench".report_agg'),
                                   db.execute('ANALYZE "bench".report_agg_agent'), db.execute('ANALYZE "bench".report_tags')))
        total = store.reports.measures(ReportFilter(start_ms, end_ms + 11 * DAY))[0][1]
        out["stored"] = {"calls": total["calls"], "fcr_rate": round(total["fcr"] / total["calls"], 4),
                         "repeat_rate": round(total["repeats"] / total["calls"], 4)}
        if not args.sqlite:
            sizes = store._run(lambda db: db.execute(
                "SELECT relname, n_live_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables WHERE schemaname = 'bench'"
                " AND relname IN ('calls', 'report_calls', 'report_agg', 'report_agg_agent', 'report_tags')").fetchall())
            out["tables"] = {r[0]: {"rows": int(r[1]), "mb": round(r[2] / 2**20, 1)} for r in sizes}
        else:
            out["tables"] = {"file_mb": round((tmp / "bench.db").stat().st_size / 2**20, 1)}
        print(f"rebuild {out['rebuild_s']} s; {out['stored']}; {out['tables']}", flush=True)

        # the live path: new calls filed one by one, each linked and added to the aggregates
        live = month(end_ms - 3 * DAY, days=3, calls_per_day=max(1, args.live // 3), callers=2000, seed=5)[:args.live]
        for c in live:
            c.call_id = "live-" + c.call_id
        t0 = time.perf_counter()
        load_sample(store, live)
        out["live_path"] = {"calls": len(live), "calls_per_s": round(len(live) / (time.perf_counter() - t0), 1),
                            "note": "call row, finals, tickets, scorecard and the report refresh per call, as the ingest files them"}
        refresh_ms = []
        for c in live[:300]:
            store.upsert_call(CallRecord(c.call_id, unresolved=not c.unresolved, intent=c.intent))
            t1 = time.perf_counter()
            store.reports.refresh(c.call_id, 7)
            refresh_ms.append((time.perf_counter() - t1) * 1000)
        refresh_ms.sort()
        out["live_path"]["refresh_p50_ms"] = round(statistics.median(refresh_ms), 2)
        out["live_path"]["refresh_p95_ms"] = round(refresh_ms[int(0.95 * len(refresh_ms)) - 1], 2)
        print(f"live path {out['live_path']}", flush=True)

        queries: dict[str, Any] = {}
        ranges = {"day": 1, "week": 7, "month": 30, "all": args.days}
        filters = {"none": {}, "queue": {"queue": "broadband"}, "intent": {"intent": "billing_dispute"}, "agent": {"agent_id": "a042"}}
        for rname, ndays in ranges.items():
            lo, hi = end_ms - ndays * DAY, end_ms
            for fname, f in filters.items():
                key = f"report/{rname}/{fname}"
                queries[key] = timed(lambda: build_report(store.reports, lo, hi, tz=tz, now_ms=end_ms, **f), args.repeat)
                print(f"{key:28s} {queries[key]}", flush=True)
            rf = ReportFilter(lo, hi)
            for group in ("total", "intent", "queue", "day", "hour", "day_intent", "agent"):
                key = f"measures/{rname}/{group}"
                queries[key] = timed(lambda: store.reports.measures(rf, group, 8 * 3_600_000), args.repeat)
            queries[f"tags/{rname}/alerts_by_intent"] = timed(lambda: store.reports.tags(rf, "alert", "intent"), args.repeat)
        out["queries"] = queries
        reports_p95 = [v["p95_ms"] for k, v in queries.items() if k.startswith("report/")]
        out["report_p95_ms_max"] = max(reports_p95)
        out["all_p95_ms_max"] = max(v["p95_ms"] for v in queries.values())
        print(f"worst full-report p95: {out['report_p95_ms_max']} ms; worst single query p95: {out['all_p95_ms_max']} ms")
        store.close()
    finally:
        stop()
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"reports-{'sqlite-' if args.sqlite else ''}{args.calls}-{dt.datetime.now():%Y%m%d-%H%M}.json"
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(path)


if __name__ == "__main__":
    main()
