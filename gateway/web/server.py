"""The web gateway's lifecycle: store + its Redis consumer, the live board, the API on uvicorn.

It reads Redis and its own store only, never the pipeline's memory, so it runs in the same process as
the service (``serve``, ``demo``) or alone (``callscribe gateway``) and can be restarted while calls go on:
on stop it closes every WebSocket with 1012 (service restart) and pages reconnect where they left off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis
import uvicorn
from redis.exceptions import RedisError

from callscribe.config import Config
from callscribe.errors import CallscribeError
from callscribe.gateway.store import TranscriptStore, open_store
from callscribe.gateway.store.ingest import StoreIngest
from callscribe.stream.server import safe_url

from .app import create_app
from .auth import TokenAuthority
from .board import Board
from .hardening import header_timed
from .metrics import GatewayMetrics

log = logging.getLogger(__name__)

__all__ = ["WebGateway", "GatewayError"]


class GatewayError(CallscribeError):
    """The web gateway could not start (port taken, store unreachable, ...)."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        """The host process (``callscribe serve`` / ``demo`` / ``gateway``) owns SIGINT and SIGTERM."""
        yield


class WebGateway:
    def __init__(self, cfg: Config, redis_url: str, service_metrics: Any = None, store: TranscriptStore | None = None) -> None:
        self.cfg = cfg
        self.redis_url = redis_url
        self.auth = TokenAuthority.from_config(cfg)
        self._own_store = store is None
        self.store: TranscriptStore = store if store is not None else open_store(cfg.store_url or str(cfg.data_path / "transcripts.sqlite3"))
        self.intent_names = _intent_names(cfg)
        self.board = Board(cfg, redis_url, self.intent_names)
        self.ingest = StoreIngest(cfg, redis_url, self.store, group=cfg.store_group)
        self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
        # Captions block in XREAD for up to 15 s: a separate pool whose socket timeout is longer than that.
        self.stream_redis = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=30)
        self.service_metrics = service_metrics  # the service's collector (publisher, pipeline) when in-process
        self.webhooks = None  # the one outbound webhook sender (gateway/webhooks), when cfg.webhooks names endpoints
        if cfg.webhooks:
            from callscribe.gateway.webhooks import WebhookSender

            self.webhooks = WebhookSender(cfg, redis_url)
        self.webhook_feed = None  # alerts, surges, call summaries, ticket status -> webhooks (gateway/webhooks/feed.py)
        if cfg.webhooks:
            from callscribe.gateway.webhooks import WebhookFeed

            self.webhook_feed = WebhookFeed(cfg, redis_url)
        self.metrics = GatewayMetrics(self, service_metrics)
        self.ws_tasks: set[asyncio.Task] = set()
        self._server: _Server | None = None
        self._serve_task: asyncio.Task | None = None
        self.host = cfg.web_host
        self.port = cfg.web_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def page_url(self, page: str, token: str) -> str:
        return f"{self.url}/{page}#token={token}"

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        self.host = host or self.cfg.web_host
        try:
            await self.ingest.start()
        except (RedisError, OSError) as exc:
            raise GatewayError(f"web gateway: Redis at {safe_url(self.redis_url)}: {exc}") from exc
        if self.webhooks is not None:
            try:
                await self.webhooks.start()
            except (RedisError, OSError) as exc:
                raise GatewayError(f"web gateway: webhook sender: Redis at {safe_url(self.redis_url)}: {exc}") from exc
        if self.webhook_feed is not None:
            try:
                await self.webhook_feed.start()
            except (RedisError, OSError) as exc:
                raise GatewayError(f"web gateway: webhook feed: Redis at {safe_url(self.redis_url)}: {exc}") from exc
        self.board.observers(self.metrics.final_latency.observe, self.metrics.alert_latency.observe)
        await self.board.start()
        await self.metrics.start()
        cfg = self.cfg
        config = uvicorn.Config(
            create_app(self), host=self.host, port=cfg.web_port if port is None else port,
            log_level="warning", access_log=False, lifespan="off", ws="websockets-sansio", ws_max_size=65536,
            timeout_graceful_shutdown=3, http=header_timed(cfg.http_header_timeout_s),
            timeout_keep_alive=max(1, round(cfg.http_keepalive_s)), limit_concurrency=cfg.http_max_connections,
        )
        self._server = _Server(config)
        self._serve_task = asyncio.create_task(self._server.serve(), name="web-gateway")
        while not self._server.started:
            if self._serve_task.done():
                exc = self._serve_task.exception() if not self._serve_task.cancelled() else None
                await self._stop_backends()
                raise GatewayError(f"web gateway could not listen on {self.host}:{config.port}: {exc or 'server exited'}")
            await asyncio.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every WebSocket with 1012 (pages reconnect), stop serving, then the board and the store consumer."""
        for task in list(self.ws_tasks):
            task.cancel()
        if self.ws_tasks:
            await asyncio.wait(list(self.ws_tasks), timeout=3)
        if self._server is not None and self._serve_task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._serve_task, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._serve_task.cancel()
            except SystemExit:  # uvicorn exits this way when binding failed; already reported at start
                pass
            self._server = self._serve_task = None
        await self._stop_backends()

    async def _stop_backends(self) -> None:
        if self.webhook_feed is not None:
            await self.webhook_feed.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        await self.metrics.stop()
        await self.board.stop()
        await self.ingest.stop()
        await self.redis.aclose()
        await self.stream_redis.aclose()
        if self._own_store:
            self.store.close()

    async def not_ready(self) -> str:
        """Why the gateway cannot serve yet (empty when ready): Redis, the store, the board's replay."""
        try:
            await asyncio.wait_for(self.redis.ping(), 2)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            return f"Redis: {exc or 'timeout'}"
        if not self.board.ready.is_set():
            return "board still replaying history"
        if not self.ingest.healthy:
            return f"transcript store not taking writes ({self.ingest.last_error})"
        publisher = getattr(self.service_metrics, "publisher", None)
        if publisher is not None and not publisher.stats.redis_up:
            return f"Redis not taking writes: {publisher.stats.buffered} events held in memory"
        try:
            await asyncio.to_thread(self.store.call, "\x00ready-check")
        except Exception as exc:  # noqa: BLE001 - any store failure means not ready; say which
            return f"store: {exc}"
        return ""

    async def __aenter__(self) -> "WebGateway":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


def _intent_names(cfg: Config) -> dict[str, dict[str, str]]:
    """Intent id -> {zh, en} display names from the configured catalog (pages show names, not ids)."""
    from callscribe.keyword.intent import load_catalog

    return {i.id: {"zh": i.name_zh, "en": i.name_en} for i in load_catalog(cfg.intent_catalog or None)}
