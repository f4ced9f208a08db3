"""``callscribe`` command line: serve, transcribe, stream, demo, analyze, analytics, gateway, token, redact, ..."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path

from .config import Config, ensure_data_dir
from .errors import CallscribeError


def safe_url(url: str) -> str:
    """A Redis URL without its password, for what the CLI prints."""
    from .stream.server import safe_url as strip

    return strip(url)

DATA_DIR = Path(__file__).parent / "data"


def _config(args: argparse.Namespace, **extra) -> Config:
    overrides = {
        "model": getattr(args, "model", None),
        "model_dir": getattr(args, "model_dir", None),
        "device": getattr(args, "device", None),
        "compute_type": getattr(args, "compute_type", None),
        "language": getattr(args, "language", None),
        "redis_url": getattr(args, "redis_url", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "beam_size_final": getattr(args, "beam_size", None),
        "remote_asr": getattr(args, "remote_asr", None),
        "sip_port": getattr(args, "sip_port", None),
        "sip": False if getattr(args, "no_sip", False) else None,
        **extra,
    }
    return Config.load(getattr(args, "config", None), **overrides)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (else CALLSCRIBE_CONFIG)")
    p.add_argument("--model", help="base | tiny.en | path (default: base)")
    p.add_argument("--model-dir", help="CTranslate2 Whisper model directory")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--compute-type", help="int8, float16, int8_float16, ... (default: auto)")
    p.add_argument("--language", help="zh, en, ... or auto (default: auto)")
    p.add_argument("--beam-size", type=int, help="beam size for finals (default 5)")


# --- transcribe ----------------------------------------------------------------------------------
async def _transcribe(args: argparse.Namespace) -> int:
    from .asr.engine import WhisperEngine
    from .events import Transcript, to_json
    from .filerun import load_call_audio, run_call
    from .pipeline import Pipeline

    cfg = _config(args, partials=args.partials)
    channels, names = load_call_audio(args.file, cfg)
    engine = await asyncio.to_thread(WhisperEngine, cfg)
    pipeline = Pipeline(cfg, engine)
    await pipeline.start()
    out = sys.stdout

    def on_event(event) -> None:
        if args.json:
            out.write(to_json(event) + "\n")
            out.flush()
        elif isinstance(event, Transcript) and event.is_final and event.text:
            out.write(f"[{event.start_ms / 1000:7.2f} - {event.end_ms / 1000:7.2f}] {event.channel:>8}: {event.text}\n")
            out.flush()

    t0 = time.monotonic()
    total_s = max(c.size for c in channels) / 16000
    with _progress(f"transcribing {Path(args.file).name}", total_s) as advance:
        ended = await run_call(pipeline, channels, names, call_id=args.call_id, language=cfg.language,
                               listener=on_event, on_progress=advance)
        await pipeline.stop()
    if not args.json:
        secs = time.monotonic() - t0
        print(f"-- {ended.finals} finals, {ended.duration_ms / 1000:.1f} s of audio in {secs:.1f} s ({engine.description})", file=sys.stderr)
    return 0


class _progress:
    """A progress bar on stderr (rich; plain output when stderr is not a terminal) for long runs."""

    def __init__(self, label: str, total_s: float) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s of audio"),
            TimeElapsedColumn(), console=Console(stderr=True), transient=True,
        )
        self._task = self._progress.add_task(label, total=total_s)

    def __enter__(self):
        self._progress.start()
        return lambda done_s: self._progress.update(self._task, completed=done_s)

    def __exit__(self, *exc) -> None:
        self._progress.stop()


# --- serve ---------------------------------------------------------------------------------------
async def _serve(args: argparse.Namespace) -> int:
    from .service import Service

    cfg = _config(args)
    if not cfg.redis_url or (cfg.web and not (cfg.store_url and cfg.auth_secret)):  # embedded Redis, SQLite, secret
        ensure_data_dir(cfg)  # an unwritable data_dir is one line (exit 2), not a traceback
    service = Service(cfg)
    await service.start(progress=lambda s: print(f"callscribe: {s}", file=sys.stderr, flush=True))
    print(f"callscribe: Redis at {safe_url(service.redis_url)}; Ctrl-C or SIGTERM to stop", file=sys.stderr, flush=True)
    try:
        await _wait_for_signal()
        print("callscribe: stopping: ending live calls and writing their finals", file=sys.stderr, flush=True)
    finally:
        await service.stop()
    return 0


# --- sip-pcap ------------------------------------------------------------------------------------
async def _sip_pcap(args: argparse.Namespace) -> int:
    from .audio import load_file, resample
    from .gateway.rtp.pcap import Impairment, Leg, duration_s, schedule, write_pcap

    def mono16k(path: str):
        f = load_file(path)
        audio = f.samples.mean(axis=1)
        return resample(audio.astype("float32"), f.sample_rate_hz)

    dtmf = []
    for item in args.dtmf:
        t, _, digit = item.partition(":")
        dtmf.append((float(t), digit))
    legs = [Leg(mono16k(args.customer), 0, 0x1111, args.codec, tuple(dtmf))]
    if args.agent:
        legs.append(Leg(mono16k(args.agent), 2, 0x2222, args.codec))
    packets = schedule(legs, Impairment(loss=args.loss, jitter_ms=args.jitter_ms))
    write_pcap(args.out, packets)
    print(f"{args.out}: {len(packets)} RTP packets, {duration_s(packets):.1f} s, {len(legs)} stream(s) "
          f"(ports +0{', +2' if args.agent else ''}); pause at least {int(duration_s(packets) * 1000) + 1000} ms in the scenario")
    return 0


# --- redact --------------------------------------------------------------------------------------
async def _redact(args: argparse.Namespace) -> int:
    from .keyword.redact import find_pii, redact

    text = " ".join(args.text)
    if args.spans:
        for span in find_pii(text):
            print(f"{span.kind}\t{span.start}-{span.end}\t{span.text}", file=sys.stderr)
    print(redact(text))
    return 0


# --- analyze / analytics -------------------------------------------------------------------------
async def _analyze(args: argparse.Namespace) -> int:
    """Dialogue files and/or recordings -> analytics JSON (callscribe/batch.py says how a folder runs)."""
    import json

    from .batch import analyze_inputs, discover
    from .keyword.worker import analytics_from_config

    cfg = _config(args, rule_packs=args.rules, intent_catalog=args.intents, silence_alert_s=args.silence_s, partials=False)
    out_dir = Path(args.out) if args.out else None
    items = discover(args.paths, exclude=out_dir.resolve() if out_dir else None)
    has_audio = any(i.kind == "audio" for i in items)
    single = len(items) == 1 and len(args.paths) == 1 and not Path(args.paths[0]).is_dir()
    if out_dir is None and has_audio and not single:
        out_dir = Path.cwd() / f"{Path(args.paths[0]).resolve().name}-analysis"  # a folder of recordings is a job
        print(f"callscribe analyze: one JSON per call in {out_dir} (rerun to resume)", file=sys.stderr)
    analytics = analytics_from_config(cfg)
    labels = None
    if args.labels:
        with open(args.labels, encoding="utf-8") as f:
            labels = json.load(f)
    total_audio_s = 0.0
    if has_audio:
        import soundfile

        for item in items:
            if item.kind == "audio":
                try:
                    total_audio_s += soundfile.info(str(item.path)).duration  # header only; MP3/M4A: unknown
                except (RuntimeError, OSError, soundfile.LibsndfileError):
                    pass
    with _CallProgress(len(items), total_audio_s, enabled=len(items) > 1 or has_audio) as progress:
        result = await analyze_inputs(items, analytics, cfg, out_dir=out_dir, jobs=args.jobs, on_progress=progress,
                                      labels=labels)
    summary = result.summary
    if summary["failed"]:
        for f in summary["failed"]:
            print(f"callscribe analyze: {f['path']}: {f['error']}", file=sys.stderr)
    if single and not result.calls:
        return 2  # the one file asked for could not be analysed: said above
    if single:
        out: dict = result.calls[0]
        if labels is not None:
            out = {"scores": summary["scores"], "calls": result.calls}
    elif out_dir is not None:
        out = summary
    else:
        out = {**({"scores": summary["scores"]} if labels is not None else {}), "calls": result.calls,
               "surges": summary["surges"]}
    print(json.dumps(out, ensure_ascii=False, indent=None if args.compact else 1))
    if has_audio and summary.get("x_real_time"):
        print(f"-- {summary['calls']} calls ({summary['resumed']} from an earlier run), {summary['audio_s_transcribed_now']:.0f} s "
              f"of audio transcribed in {summary['wall_s']:.0f} s: {summary['x_real_time']:.1f}x real time", file=sys.stderr)
    return 1 if summary["failed"] else 0


class _CallProgress:
    """Progress of a batch on stderr: calls done of total, and audio analysed (rich; silent when off)."""

    def __init__(self, total_calls: int, total_audio_s: float, enabled: bool = True) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.enabled = enabled
        self._progress = Progress(
            TextColumn("analysing calls"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[audio]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
        )
        self._task = self._progress.add_task("calls", total=total_calls, audio="")

    def __enter__(self):
        if self.enabled:
            self._progress.start()

        def advance(done: int, total: int, audio_s: float) -> None:
            if self.enabled:
                self._progress.update(self._task, completed=done, audio=f"{audio_s / 60:.1f} min of audio" if audio_s else "")
        return advance

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._progress.stop()


async def _analytics(args: argparse.Namespace) -> int:
    from .keyword.worker import AnalyticsWorker

    cfg = _config(args, rule_packs=args.rules, intent_catalog=args.intents)
    if not cfg.redis_url:
        print("callscribe analytics: set REDIS_URL (or --redis-url) to the Redis the transcripts go to", file=sys.stderr)
        return 2
    worker = AnalyticsWorker(cfg, cfg.redis_url)
    await worker.start()
    print(f"callscribe analytics {worker.consumer}: group {cfg.analytics_group} on {safe_url(cfg.redis_url)}", file=sys.stderr, flush=True)
    await _wait_for_signal()
    await worker.stop()
    return 0


# --- worker --------------------------------------------------------------------------------------
async def _worker(args: argparse.Namespace) -> int:
    import signal

    from .asr.engine import WhisperEngine
    from .asr.worker import AsrWorker

    cfg = _config(args)
    if not cfg.redis_url:
        print("callscribe worker: set REDIS_URL (or --redis-url) to the Redis the ingest nodes use", file=sys.stderr)
        return 2
    engine = await asyncio.to_thread(WhisperEngine, cfg)
    await asyncio.to_thread(engine.warmup)
    worker = AsrWorker(cfg, cfg.redis_url, engine)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    print(f"callscribe worker {worker.name}: {engine.description}, jobs from {safe_url(cfg.redis_url)}", file=sys.stderr, flush=True)
    await worker.run()
    return 0


# --- stream --------------------------------------------------------------------------------------
async def _stream(args: argparse.Namespace) -> int:
    from .events import Transcript, to_json
    from .gateway.client import IngestClient

    def on_event(event) -> None:
        if args.json:
            print(to_json(event), flush=True)
        elif isinstance(event, Transcript) and event.is_final and event.text:
            print(f"[{event.start_ms / 1000:7.2f}] {event.channel:>8}: {event.text}", flush=True)

    from .errors import CapacityError, Unauthorized

    client = IngestClient(args.url, token=args.token or os.environ.get("CALLSCRIBE_TOKEN") or None)
    meta = dict(kv.split("=", 1) for kv in args.meta or [])
    try:
        result = await client.stream_file(
            args.file, call_id=args.call_id, speed=None if args.speed <= 0 else args.speed, encoding=args.encoding,
            sample_rate_hz=args.sample_rate, language=args.language or "auto", metadata=meta, on_event=on_event,
        )
    except (Unauthorized, CapacityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    status = 0
    if result.errors:
        for err in result.errors:
            print(f"server error {err.get('code')}: {err.get('reason')}", file=sys.stderr)
        status = 1
    if result.ended is None or (result.close_code not in (None, 1000) and not result.errors):
        print(f"error: the server closed the call before its end (close {result.close_code}: "
              f"{result.close_reason or 'no reason'})", file=sys.stderr)
        status = 1
    if not result.durable:
        pending = result.storage[-1].get("pending_finals", "?")
        print(f"warning: the server's storage is down: {pending} finals of this call are not stored yet "
              "(the server holds them and writes them when Redis is back)", file=sys.stderr)
        status = status or 3
    return status


# --- demo ----------------------------------------------------------------------------------------
async def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from .batch import sidecar_metadata
    from .filerun import load_call_audio
    from .gateway.client import IngestClient
    from .gateway.store import SearchQuery
    from .service import Service
    from .stream import read_call, read_finals
    from .tui import CaptionBoard

    console = Console()
    cfg = _config(args, data_dir=args.data_dir, sip=False)
    ensure_data_dir(cfg)
    # the bundled demo: two synthesized service calls (callscribe/data/calls/README.md): a Mandarin broadband
    # outage that escalates and ends unresolved, an English billing dispute resolved after verification
    files = [Path(f) for f in args.files] or sorted((DATA_DIR / "calls").glob("demo_*.flac"))
    if not files:
        console.print("[red]no demo audio found[/red]")
        return 2
    service = Service(cfg)
    web_port = cfg.web_port if _port_free(cfg.web_host, cfg.web_port) else 0
    with console.status("starting callscribe") as status:
        await service.start(progress=lambda s: status.update(s), port=0, web_port=web_port)
    console.print(f"[bold]callscribe demo[/bold]: {service.engine.description}; ingest {service.ingest.url}; Redis {safe_url(service.redis_url)}")
    agents = [f"agent-{7 + i:03d}" for i in range(len(files))]
    if service.web is not None:
        _print_pages(console, service.web, agents)
    board = CaptionBoard()
    client = IngestClient(service.ingest.url, token=service.ingest.mint_token("demo", ttl_h=1))
    t0 = time.monotonic()
    try:
        with Live(board.render(), console=console, refresh_per_second=8, transient=False) as live:
            def on_event(event) -> None:
                board.update(event)
                live.update(board.render())

            jobs = []
            for i, f in enumerate(files):
                channels, names = load_call_audio(f, cfg)
                call_id = f"demo-{f.stem.removeprefix('demo_').removeprefix('call_')}-{int(time.time())}"
                side, _ = sidecar_metadata(f)
                meta = {"caller": side.get("caller") or f"1380013{8000 + i:04d}", "agent_id": agents[i], "queue": "demo"}
                jobs.append(client.stream(channels, names, call_id=call_id, speed=args.speed, metadata=meta, on_event=on_event))
            results = await asyncio.gather(*jobs)
        wall = time.monotonic() - t0
        import redis.asyncio as aioredis

        r = aioredis.from_url(service.redis_url)
        table = Table(title="Transcripts in Redis")
        for col in ("call", "per-call stream", "entries", "finals", "partials", "audio s"):
            table.add_column(col)
        from .stream import keys

        await service.publisher.flush(10)
        for res in results:
            events = await read_call(r, cfg, res.call_id)
            finals = [e for e in events if getattr(e, "is_final", False)]
            partials = [e for e in events if getattr(e, "is_final", None) is False]
            ended = res.ended
            table.add_row(res.call_id, keys.call_stream(cfg, res.call_id), str(len(events)), str(len(finals)), str(len(partials)),
                          f"{ended.duration_ms / 1000:.1f}" if ended else "?")
        console.print(table)
        global_finals = await read_finals(r, cfg)
        await r.aclose()
        stats = service.pipeline.scheduler.stats
        console.print(
            f"global finals stream [bold]{keys.finals_stream(cfg)}[/bold]: {len(global_finals)} entries. "
            f"ASR: {stats.batches} batches, {stats.finals_decoded} finals + {stats.partials_decoded} partials decoded, "
            f"{stats.partials_skipped} partials skipped; wall {wall:.1f} s"
        )
        if service.analytics is not None:
            await service.analytics.drain(10)
            await _print_analytics(console, service.redis_url, cfg, [res.call_id for res in results])
        if service.web is not None:
            await service.web.ingest.drain(10)
            hits = await asyncio.to_thread(service.web.store.search, SearchQuery(limit=1))
            console.print(f"transcript store: {hits.total} utterances searchable at {service.web.url}/qa")
        if args.keep_open and service.web is not None:
            console.print(f"[bold]pages stay up[/bold] at {service.web.url} (links above); Ctrl-C to stop")
            await _wait_for_signal()
        url = safe_url(service.redis_url).replace(":***@", f":$(cat {cfg.data_path / 'redis' / 'password'})@")
        console.print(f'Read them: redis-cli -u "{url}" XRANGE {keys.finals_stream(cfg)} - +   '
                      f"(embedded Redis stops now; data kept in {cfg.data_path / 'redis'})")
    finally:
        await service.stop()
    return 0


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _print_pages(console, web, agents: list[str]) -> None:
    """The three pages with demo tokens (8 h), so the demo can be watched in a browser while it runs."""
    sup, _ = web.auth.mint("supervisor", "demo-supervisor", ttl_h=8)
    qa, _ = web.auth.mint("qa", "demo-qa", ttl_h=8)
    console.print("[bold]Open in a browser[/bold] (tokens are in the #fragment, valid 8 h):")
    for agent in agents:
        token, _ = web.auth.mint("agent", agent, ttl_h=8)
        console.print(f"  agent desktop ({agent}): {web.page_url('agent', token)}", soft_wrap=True)
    console.print(f"  supervisor wallboard: {web.page_url('wallboard', sup)}", soft_wrap=True)
    console.print(f"  QA search: {web.page_url('qa', qa)}", soft_wrap=True)
    console.print(f"  OpenAPI: {web.url}/openapi.json", soft_wrap=True)


async def _wait_for_signal() -> None:
    """Until SIGINT or SIGTERM: how the long-running commands (serve, analytics, gateway, demo --keep-open) stop."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# --- gateway and tokens --------------------------------------------------------------------------
async def _gateway(args: argparse.Namespace) -> int:
    from .gateway.web import WebGateway

    cfg = _config(args, web_host=args.web_host, web_port=args.web_port, store_url=args.store)
    if not (cfg.store_url and cfg.auth_secret):  # the SQLite store or the generated secret live there
        ensure_data_dir(cfg)
    if not cfg.redis_url:
        print("callscribe gateway: set REDIS_URL (or --redis-url) to the Redis the transcripts go to", file=sys.stderr)
        return 2
    gateway = WebGateway(cfg, cfg.redis_url)
    await gateway.start()
    print(f"callscribe gateway: pages and API on {gateway.url} (OpenAPI {gateway.url}/openapi.json); "
          f"tokens: callscribe token --role supervisor --sub NAME --page wallboard", file=sys.stderr, flush=True)
    try:
        await _wait_for_signal()
    finally:
        await gateway.stop()
    return 0


async def _token(args: argparse.Namespace) -> int:
    from .gateway.web import TokenAuthority

    cfg = _config(args)
    if not cfg.auth_secret:  # the generated secret lives there
        ensure_data_dir(cfg)
    token, exp = TokenAuthority.from_config(cfg).mint(args.role, args.sub, args.agent_id or "", args.ttl_h)
    if args.page:
        print(f"http://{cfg.web_host}:{cfg.web_port}/{args.page}#token={token}")
    else:
        print(token)
    print(f"callscribe token: {args.role} token for {args.sub}, expires {time.strftime('%Y-%m-%d %H:%M', time.localtime(exp))}",
          file=sys.stderr)
    return 0


# --- recordings ------------------------------------------------------------------------------------------
async def _recordings(args: argparse.Namespace) -> int:
    """``callscribe recordings prune``: the retention sweep `serve` runs every hour, once, now."""
    from .recording import open_store, prune

    cfg = _config(args)
    days = cfg.recording_retention_days if args.days is None else args.days
    if days <= 0:
        print("callscribe recordings: retention is off (recording_retention_days = 0); nothing deleted", file=sys.stderr)
        return 0
    store = await asyncio.to_thread(open_store, cfg)
    deleted = await asyncio.to_thread(prune, store, days, time.time())
    for prefix in deleted:
        print(prefix)
    print(f"callscribe recordings: deleted {len(deleted)} recording(s) older than {days} days", file=sys.stderr)
    return 0


async def _print_analytics(console, redis_url: str, cfg: Config, call_ids: list[str]) -> None:
    """The analytics of the demo calls: intent, alerts, unresolved flag (from the insights/alerts streams)."""
    import redis.asyncio as aioredis
    from rich.table import Table

    from .events import Alert, CallFlag, CallSummary, from_fields
    from .stream import keys

    from .gateway.web.board import mask_caller

    r = aioredis.from_url(redis_url, decode_responses=True)
    summaries = {}
    alerts: dict[str, list[str]] = {}
    callback_entries: list[CallFlag] = []
    for _, fields in await r.xrange(keys.insights_stream(cfg)):
        e = from_fields(fields)
        if isinstance(e, CallSummary) and e.call_id in call_ids:
            summaries[e.call_id] = e
    for _, fields in await r.xrange(keys.alerts_stream(cfg)):
        e = from_fields(fields)
        if isinstance(e, Alert) and e.call_id in call_ids:
            alerts.setdefault(e.call_id, []).append(f"{e.category} ({e.rule}): {e.quote[:60]}")
    for _, fields in await r.xrange(keys.callbacks_stream(cfg)):
        e = from_fields(fields)
        if isinstance(e, CallFlag) and e.call_id in call_ids:
            callback_entries.append(e)
    callbacks = await r.xlen(keys.callbacks_stream(cfg))
    await r.aclose()
    table = Table(title=f"Analytics ({keys.alerts_stream(cfg)}, {keys.insights_stream(cfg)}, {keys.callbacks_stream(cfg)})")
    for col in ("call", "intent", "alerts", "unresolved", "customer at the end"):
        table.add_column(col)
    for cid in call_ids:
        s = summaries.get(cid)
        table.add_row(cid, f"{s.intent} ({s.intent_score:.2f})" if s else "?", "\n".join(alerts.get(cid, [])) or "-",
                      ("yes: " + "; ".join(s.reasons) if s.unresolved else "no") if s else "?",
                      (s.sentiment or "-") if s else "?")
    console.print(table)
    for cid in call_ids:
        for line in alerts.get(cid, []):
            console.print(f"  alert: {cid} {line}", soft_wrap=True)
    console.print(f"callback queue {keys.callbacks_stream(cfg)}: {callbacks} entries")
    for e in callback_entries:
        quotes = " / ".join(f"{q.channel}: {q.text}" for q in e.quotes[:2])
        console.print(f"  callback: {e.call_id} caller {mask_caller(e.caller) or '-'} intent {e.intent}: "
                      f"{'; '.join(e.reasons)}" + (f"  ({quotes})" if quotes else ""), soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callscribe", description="Real-time call transcription and monitoring.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("transcribe", help="run a recording through the streaming pipeline as fast as possible")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="one event per line as JSON")
    p.add_argument("--partials", action="store_true", help="also decode partials (slower)")
    p.add_argument("--call-id")
    _add_model_args(p)

    p = sub.add_parser("serve", help="WebSocket and SIP/SIPREC ingest + ASR + Redis")
    _add_model_args(p)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--sip-port", type=int, help="SIP port for UDP and TCP (default 5060)")
    p.add_argument("--no-sip", action="store_true", help="WebSocket ingest only")
    p.add_argument("--redis-url")
    p.add_argument("--remote-asr", action="store_true", default=None,
                   help="no local model: decode on `callscribe worker` processes through Redis")

    p = sub.add_parser("worker", help="ASR worker: decode jobs from Redis for ingest nodes run with --remote-asr")
    _add_model_args(p)
    p.add_argument("--redis-url")

    p = sub.add_parser("stream", help="play a recording into a running server")
    p.add_argument("file")
    p.add_argument("--url", default="ws://127.0.0.1:8765/v1/ingest")
    p.add_argument("--speed", type=float, default=1.0, help="x real time; 0 = as fast as possible")
    p.add_argument("--encoding", default="pcm16", choices=["pcm16", "mulaw", "alaw"])
    p.add_argument("--sample-rate", type=int, default=16000, choices=[8000, 16000])
    p.add_argument("--language")
    p.add_argument("--call-id")
    p.add_argument("--json", action="store_true")
    p.add_argument("--meta", action="append", help="metadata key=value (repeatable)")
    p.add_argument("--token", help="ingest token (callscribe token --role ingest --sub SOURCE); default $CALLSCRIBE_TOKEN")

    p = sub.add_parser("sip-pcap", help="build an RTP pcap from recordings, for sipp's play_pcap_audio (docs/sip.md)")
    p.add_argument("--customer", required=True, help="customer leg audio (first stream)")
    p.add_argument("--agent", help="agent leg audio (second stream, port +2): a SIPREC call")
    p.add_argument("--out", required=True)
    p.add_argument("--codec", default="PCMU", choices=["PCMU", "PCMA", "OPUS"],
                   help="OPUS: 24 kbit/s with in-band FEC, payload type 111 (offer '111 101' in the scenario)")
    p.add_argument("--loss", type=float, default=0.0, help="fraction of packets dropped")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="random extra delay per packet (reorders)")
    p.add_argument("--dtmf", action="append", default=[], help="TIME_S:DIGIT on the customer leg (repeatable)")

    p = sub.add_parser("redact", help="print TEXT with phone numbers, ID and card numbers, emails and addresses masked")
    p.add_argument("text", nargs="+")
    p.add_argument("--spans", action="store_true", help="list what was found (kind and text) on stderr")

    p = sub.add_parser("analyze", help="analyse recordings or dialogue files offline: intent, alerts, unresolved flag, "
                                       "sentiment, timed redacted transcript (JSON)")
    p.add_argument("paths", nargs="+", help="recordings (WAV/FLAC/OGG/MP3/M4A; stereo = customer, agent), dialogue files "
                                            "(customer<TAB>text / agent<TAB>text lines), or directories of either")
    p.add_argument("--out", help="write one JSON per call and summary.json here; a rerun skips calls already there "
                                 "(default for a folder of recordings: ./<folder>-analysis)")
    p.add_argument("--jobs", type=int, default=4, help="recordings transcribed at once, sharing decode batches (default 4)")
    _add_model_args(p)
    p.add_argument("--labels", help="labels.json to score against (adds precision/recall/accuracy)")
    p.add_argument("--rules", help="rule pack files or directories, comma-separated (default: the bundled packs)")
    p.add_argument("--intents", help="intent catalog YAML (default: the bundled telecom catalog)")
    p.add_argument("--silence-s", type=float, help="a gap this long or longer is a silence alert (default 30)")
    p.add_argument("--compact", action="store_true", help="one-line JSON")

    p = sub.add_parser("synth", help="labelled dialogue files -> two-leg 8 kHz call audio with Kokoro-82M (extra: synth)",
                       add_help=False)
    p.add_argument("synth_args", nargs=argparse.REMAINDER)

    p = sub.add_parser("analytics", help="run the live analytics worker on a Redis (alerts, intents, callback queue)")
    p.add_argument("--redis-url")
    p.add_argument("--rules", help="rule pack files or directories, comma-separated")
    p.add_argument("--intents", help="intent catalog YAML")
    p.add_argument("--config", help="TOML config file (else CALLSCRIBE_CONFIG)")

    p = sub.add_parser("demo", help="everything embedded: stream the bundled demo calls, live captions")
    _add_model_args(p)
    p.add_argument("files", nargs="*", help="recordings to stream instead of the bundled demo calls")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--keep-open", action="store_true", help="after the calls, keep the pages and API up until Ctrl-C")

    p = sub.add_parser("gateway", help="the web gateway alone: pages, API, transcript search, on a Redis")
    p.add_argument("--redis-url")
    p.add_argument("--web-host")
    p.add_argument("--web-port", type=int)
    p.add_argument("--store", help="transcript store: SQLite path or postgresql://... (default {data_dir}/transcripts.sqlite3)")
    p.add_argument("--config", help="TOML config file (else CALLSCRIBE_CONFIG)")

    p = sub.add_parser("token", help="mint an API token (signed with auth_secret) for a role")
    p.add_argument("--role", required=True, choices=["agent", "supervisor", "qa", "admin", "ingest", "integration"])
    p.add_argument("--sub", required=True, help="who it is for (agents: their agent id)")
    p.add_argument("--agent-id", help="agents: the agent id, when it differs from --sub")
    p.add_argument("--ttl-h", type=float, help="hours until it expires (default token_ttl_h, 12)")
    p.add_argument("--page", choices=["agent", "wallboard", "qa"], help="print that page's URL with the token instead")
    p.add_argument("--config", help="TOML config file (else CALLSCRIBE_CONFIG)")

    p = sub.add_parser("recordings", help="call recordings: `prune` deletes those older than recording_retention_days")
    p.add_argument("action", choices=["prune"])
    p.add_argument("--days", type=int, help="delete recordings older than this (default recording_retention_days)")
    p.add_argument("--config", help="TOML config file (else CALLSCRIBE_CONFIG)")

    from .reports.commands import add_commands as add_report_commands  # report, export, webhooks (docs/reports.md)

    add_report_commands(sub)

    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["synth"]:  # its own parser (callscribe/synth.py), so `callscribe synth --help` is its help
        from .synth import main as synth_main

        return synth_main(list(argv[1:]))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runner = {"transcribe": _transcribe, "serve": _serve, "stream": _stream, "demo": _demo, "worker": _worker,
              "sip-pcap": _sip_pcap, "redact": _redact, "analyze": _analyze, "analytics": _analytics,
              "gateway": _gateway, "token": _token, "recordings": _recordings}.get(args.cmd) or args.run
    try:
        return asyncio.run(runner(args))
    except KeyboardInterrupt:
        return 130
    except CallscribeError as exc:
        print(f"callscribe: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
