"""Commands registered by callscribe/cli.py: ``callscribe report`` (the daily or weekly report of a store as JSON, CSV,
HTML or PDF, optionally also sent as a ``report`` webhook), ``callscribe export`` (incremental CSV / Parquet exports,
callscribe/exports) and ``callscribe webhooks`` (the dead-letter stream: list, replay)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    p = sub.add_parser("report", help="the report of a period (FCR, repeat calls, drivers, topics) as json, csv, html or pdf")
    p.add_argument("--from", dest="since", help="first day, YYYY-MM-DD in report_timezone (default: yesterday)")
    p.add_argument("--to", dest="until", help="last day, included (default: the --from day: a daily report)")
    p.add_argument("--queue", help="only this queue")
    p.add_argument("--intent", help="only this intent")
    p.add_argument("--agent", help="only this agent")
    p.add_argument("--format", choices=["json", "csv", "html", "pdf"], default="json")
    p.add_argument("--out", help="file to write (default: stdout for json/csv, report-FROM-TO.html/.pdf)")
    p.add_argument("--lang", choices=["zh", "en"], default="zh", help="language of the html/pdf page (default zh)")
    p.add_argument("--no-topics", action="store_true", help="leave emerging topics out (they read the customers' finals)")
    p.add_argument("--rebuild", action="store_true",
                   help="first relink repeat calls and recount the aggregates (after changing fcr_window_days)")
    p.add_argument("--webhook", action="store_true",
                   help="also enqueue the JSON report as webhook kind `report` (key report-FROM-TO[-queue]) on redis_url")
    p.add_argument("--store", help="transcript store: SQLite path or postgresql://... (default: store_url)")
    p.add_argument("--chromium", help="Chromium binary for --format pdf (default: CALLSCRIBE_CHROMIUM, then chromium on PATH)")
    p.add_argument("--config", help="TOML config file (else CALLSCRIBE_CONFIG)")
    p.set_defaults(run=_report)

    p = sub.add_parser("export", help="incremental export (by stored watermark) of calls, utterances, alerts, tickets and "
                                      "scores as CSV or Parquet files, for a warehouse")
    p.add_argument("--out", required=True, help="folder: files go to OUT/<dataset>/")
    p.add_argument("--name", default="warehouse", help="the export whose cursor to use and move (default warehouse)")
    p.add_argument("--datasets", default="", help="comma-separated subset of calls,utterances,alerts,tickets,scores,score_overrides")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="parquet needs the `parquet` extra (pyarrow)")
    p.add_argument("--batch", type=int, default=50_000, help="rows per file (default 50,000)")
    p.add_argument("--lag-s", type=float, default=5.0, help="leave calls filed in the last this many seconds for the next run")
    p.add_argument("--store", help="transcript store: SQLite path or postgresql://... (default: store_url)")
    p.add_argument("--config", help="TOML config file (else CALLSCRIBE_CONFIG)")
    p.set_defaults(run=_export)

    p = sub.add_parser("webhooks", help="outbound webhooks' dead-letter stream: `dead` lists it, `replay` sends dead letters "
                                        "again (same idempotency key) once the receiver is fixed")
    p.add_argument("action", choices=["dead", "replay"])
    p.add_argument("--id", action="append", default=[], help="replay only this dead letter (its stream id); repeatable")
    p.add_argument("--kind", help="replay only dead letters of this kind")
    p.add_argument("--all", action="store_true", help="also replay dead letters whose endpoint is no longer configured, "
                                                      "to every receiver of their kind")
    p.add_argument("--redis-url")
    p.add_argument("--config", help="TOML config file (else CALLSCRIBE_CONFIG)")
    p.set_defaults(run=_webhooks)


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"callscribe report: {name} must be a date like 2026-12-07, not {value!r}") from None


async def _report(args: argparse.Namespace) -> int:
    from callscribe.config import Config
    from callscribe.gateway.store import open_store

    from .metrics import build_report, local_midnight_ms, topic_finder, zone
    from .render import to_csv, to_html, to_json, to_pdf

    cfg = Config.load(args.config)
    tz = zone(cfg.report_timezone)
    first = _day(args.since, "--from") or (datetime.now(tz).date() - timedelta(days=1))
    last = _day(args.until, "--to") or first
    if last < first:
        raise SystemExit("callscribe report: --to is before --from")
    since_ms = local_midnight_ms(tz, first.isoformat())
    until_ms = local_midnight_ms(tz, (last + timedelta(days=1)).isoformat())
    store = await asyncio.to_thread(open_store, args.store or cfg.store_url or str(cfg.data_path / "transcripts.sqlite3"))
    try:
        if args.rebuild:
            n = await asyncio.to_thread(store.reports.rebuild, cfg.fcr_window_days)
            print(f"callscribe report: relinked and recounted {n} calls", file=sys.stderr)
        topics = None if args.no_topics else topic_finder(store.reports, None if not cfg.intent_catalog else _catalog(cfg))
        names = _intent_names(cfg)
        report = await asyncio.to_thread(build_report, store.reports, since_ms, until_ms, queue=args.queue, intent=args.intent,
                                         agent_id=args.agent, tz=tz, window_days=cfg.fcr_window_days, intent_names=names,
                                         topics=topics)
    finally:
        store.close()
    stem = f"report-{first.isoformat()}-{last.isoformat()}" + (f"-{args.queue}" if args.queue else "")
    if args.format in ("json", "csv"):
        text = to_json(report) if args.format == "json" else to_csv(report)
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        page = to_html(report, lang=args.lang)
        out = Path(args.out or f"{stem}.{args.format}")
        if args.format == "html":
            out.write_text(page, encoding="utf-8")
        else:
            await asyncio.to_thread(to_pdf, page, out, args.chromium)
        print(f"callscribe report: wrote {out}", file=sys.stderr)
    if args.webhook:
        delivery = await asyncio.to_thread(_send, cfg, report, stem)
        print(f"callscribe report: webhook `report` enqueued (delivery {delivery})", file=sys.stderr)
    return 0


async def _export(args: argparse.Namespace) -> int:
    import json

    from callscribe.config import Config
    from callscribe.exports.core import ALL, export, redis_alerts
    from callscribe.gateway.store import open_store

    cfg = Config.load(args.config)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] or list(ALL)
    store = await asyncio.to_thread(open_store, args.store or cfg.store_url or str(cfg.data_path / "transcripts.sqlite3"))
    client = None
    if "alerts" in datasets and cfg.redis_url:
        import redis

        client = redis.Redis.from_url(cfg.redis_url)
    try:
        result = await asyncio.to_thread(export, store, args.out, name=args.name, datasets=datasets, fmt=args.format,
                                         batch=max(1, args.batch), lag_s=max(0.0, args.lag_s), stored_redacted=cfg.redact_stored_text,
                                         alerts_reader=redis_alerts(client, cfg) if client is not None else None)
    finally:
        store.close()
        if client is not None:
            client.close()
    for name, r in result.items():
        note = f" ({r['skipped']})" if r.get("skipped") else ""
        print(f"callscribe export: {name}: {r['rows']} rows in {len(r['files'])} file(s){note}", file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))
    return 0


async def _webhooks(args: argparse.Namespace) -> int:
    import json

    import redis

    from callscribe.config import Config
    from callscribe.gateway.webhooks import dead_letters, replay

    cfg = Config.load(args.config, **({"redis_url": args.redis_url} if args.redis_url else {}))
    if not cfg.redis_url:
        raise SystemExit("callscribe webhooks: needs redis_url (--redis-url or REDIS_URL): the Redis the gateway uses")
    client = redis.Redis.from_url(cfg.redis_url)
    try:
        if args.action == "dead":
            for d in await asyncio.to_thread(dead_letters, client, cfg):
                print(json.dumps(d.to_dict(), ensure_ascii=False))
            return 0
        result = await asyncio.to_thread(replay, client, cfg, args.id or None, args.kind, args.all)
    finally:
        client.close()
    print(json.dumps(result, ensure_ascii=False))
    print(f"callscribe webhooks: replayed {len(result['replayed'])}, left {len(result['left'])}", file=sys.stderr)
    return 0 if not result["left"] else 1


def _catalog(cfg: Any) -> Any:
    from .topics import catalog_phrases

    return catalog_phrases(cfg.intent_catalog)


def _intent_names(cfg: Any) -> dict[str, dict[str, str]]:
    from callscribe.keyword.intent import load_catalog

    return {i.id: {"zh": i.name_zh, "en": i.name_en} for i in load_catalog(cfg.intent_catalog or None)}


def _send(cfg: Any, report: dict[str, Any], key: str) -> str:
    """Enqueue the report through the one webhook sender's queue (gateway/webhooks): a running gateway delivers it."""
    import redis

    from callscribe.gateway.webhooks import enqueue_webhook

    if not cfg.redis_url:
        raise SystemExit("callscribe report: --webhook needs redis_url (the Redis the gateway's webhook sender reads)")
    client = redis.Redis.from_url(cfg.redis_url)
    try:
        return enqueue_webhook(client, cfg, "report", report, key)
    finally:
        client.close()
