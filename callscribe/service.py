"""Wires the stages into a running service: Redis (external or embedded) -> publisher -> model ->
pipeline -> WebSocket ingest and SIP/SIPREC (RTP) ingest, plus the analytics worker on the transcript streams
and the web gateway (pages, API, search store). Used by ``callscribe serve`` and ``callscribe demo``; tests use it too."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable

from callscribe.asr.engine import WhisperEngine
from callscribe.gateway.ingest import IngestServer
from callscribe.stream import RedisPublisher, ensure_redis
from callscribe.stream.liveness import Liveness
from callscribe.stream.server import RedisSupervisor, safe_url

from .config import Config
from .pipeline import Pipeline

log = logging.getLogger(__name__)


def spool_dir(cfg: Config) -> Path:
    """Where the publisher saves durable events Redis did not take before a stop: one folder per Redis
    (the embedded one lives in this data_dir; an external one is named by its host, port and db)."""
    if not cfg.redis_url:
        return cfg.data_path / "spool" / "embedded"
    from urllib.parse import urlsplit

    try:
        u = urlsplit(cfg.redis_url)
        name = f"{u.hostname or 'local'}-{u.port or 6379}{u.path.replace('/', '-') or '-0'}"
    except ValueError:
        name = "redis"
    return cfg.data_path / "spool" / name


class Service:
    def __init__(self, cfg: Config, engine: WhisperEngine | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.redis_url = ""
        self._embedded = None
        self.publisher: RedisPublisher | None = None
        self.pipeline: Pipeline | None = None
        self.ingest: IngestServer | None = None
        self.sip = None  # a callscribe.gateway.sip.server.SipServer when cfg.sip
        self.analytics = None  # a callscribe.keyword.worker.AnalyticsWorker when cfg.analytics
        self.web = None  # a callscribe.gateway.web.WebGateway when cfg.web
        self.supervisor: RedisSupervisor | None = None  # restarts the embedded Redis when it dies
        self.liveness: Liveness | None = None  # heartbeat + reaper of calls whose node is gone
        self.recorder = None  # a callscribe.recording.Recorder when cfg.recording

    async def start(self, progress: Callable[[str], None] = lambda s: None, port: int | None = None,
                    web_port: int | None = None) -> None:
        progress("starting Redis" if not self.cfg.redis_url else f"connecting to {safe_url(self.cfg.redis_url)}")
        self.redis_url, self._embedded = await ensure_redis(self.cfg)
        if self._embedded is not None:
            self.supervisor = RedisSupervisor(self._embedded)
            await self.supervisor.start()
        self.publisher = RedisPublisher(self.cfg, self.redis_url, spool_dir=spool_dir(self.cfg))
        await self.publisher.start()
        scheduler = None
        if self.cfg.remote_asr:
            from callscribe.asr.remote import RemoteScheduler

            scheduler = RemoteScheduler(self.cfg, self.redis_url)
            progress(f"decoding on ASR workers (callscribe worker) via {safe_url(self.redis_url)}")
        elif self.engine is None:
            progress(f"loading Whisper model {self.cfg.model_dir or self.cfg.model}")
            self.engine = await asyncio.to_thread(WhisperEngine, self.cfg)
            progress(f"warming up {self.engine.description}")
            await asyncio.to_thread(self.engine.warmup)
        if self.cfg.analytics:
            from callscribe.keyword.worker import AnalyticsWorker

            progress("starting analytics (alerts, intent, unresolved flags)")
            self.analytics = AnalyticsWorker(self.cfg, self.redis_url)
            await self.analytics.start()
        if self.cfg.recording:
            from callscribe.recording import Recorder

            self.recorder = Recorder(self.cfg)
            await self.recorder.start()
            progress(f"recording calls ({self.cfg.recording_format}) to {self.recorder.root}")
        self.pipeline = Pipeline(self.cfg, self.engine, self.publisher, scheduler, recorder=self.recorder)
        await self.pipeline.start()
        pipeline = self.pipeline
        self.liveness = Liveness(self.cfg, self.redis_url, self.publisher.node_id, self.publisher.publish,
                                 is_local=lambda call_id: call_id in pipeline.calls)
        await self.liveness.start()
        self.ingest = IngestServer(self.cfg, self.pipeline)
        from .metrics import ServiceCollector

        self.ingest.metrics = ServiceCollector(self.pipeline, self.publisher, self.ingest)
        await self.ingest.start(port=port)
        progress(f"listening on {self.ingest.url}")
        if self.cfg.web:
            from callscribe.gateway.web import WebGateway

            progress("starting the web gateway (pages, API, transcript search)")
            self.web = WebGateway(self.cfg, self.redis_url, service_metrics=self.ingest.metrics)
            await self.web.start(port=web_port)
            progress(f"pages and API on {self.web.url} (sign in with a token: callscribe token --role supervisor --sub NAME --page wallboard)")
        if self.cfg.sip:
            from callscribe.gateway.sip.server import SipServer

            self.sip = SipServer(self.cfg, self.pipeline)
            await self.sip.start()
            self.ingest.metrics.sip = self.sip
            transports = ", ".join(f"{t.upper()} {p}" for t, p in self.sip.ports.items())
            progress(f"SIP/SIPREC on {self.sip.host} ({transports}), RTP ports {self.cfg.rtp_port_min}-{self.cfg.rtp_port_max}")

    async def stop(self) -> None:
        if self.sip is not None:
            await self.sip.stop()  # BYEs live SIP calls and flushes their finals first
        if self.ingest is not None:
            await self.ingest.stop()
        if self.pipeline is not None:
            await self.pipeline.stop()
        if self.recorder is not None:
            await self.recorder.stop()  # every recording closed and its redacted rendition stored
        if self.liveness is not None:
            await self.liveness.stop()
        if self.publisher is not None:
            await self.publisher.stop()
        if self.analytics is not None:
            await self.analytics.drain()
            await self.analytics.stop()
        if self.web is not None:
            await self.web.ingest.drain(5)  # the last finals and summaries into the search store
            await self.web.stop()
        if self.supervisor is not None:
            await self.supervisor.stop()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)

    async def __aenter__(self) -> "Service":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
