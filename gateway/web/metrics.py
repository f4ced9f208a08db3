"""Prometheus metrics of the web gateway, plus the service's own when they run in one process.

What an operator watches here: viewers connected and dropped for falling behind, calls on the board,
alerts by category, latency from speech end to final and from final to alert (measured from the events'
own timestamps, so they hold across processes), search time, and the depth of every Redis stream and
the lag of every consumer group on it (ASR jobs, analytics, store): a growing lag is the first sign that
a stage needs more workers. Stream depths are polled every 5 s, not per scrape, so a scrape never waits
on Redis.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from redis.exceptions import RedisError

from callscribe.asr.jobs import jobs_stream
from callscribe.stream import keys

log = logging.getLogger(__name__)

__all__ = ["GatewayMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
POLL_S = 5.0


class GatewayMetrics:
    def __init__(self, gw: Any, service_metrics: Any = None) -> None:
        self.gw = gw
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.ws_clients = Gauge("callscribe_gateway_ws_clients", "WebSocket viewers connected to this gateway", registry=r)
        self.search_seconds = Histogram("callscribe_search_seconds", "Search request time in the store",
                                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=r)
        self.final_latency = Histogram("callscribe_final_latency_seconds", "Speech end to final transcript in Redis",
                                       buckets=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30), registry=r)
        self.alert_latency = Histogram("callscribe_alert_latency_seconds", "Triggering final to supervisor alert",
                                       buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5), registry=r)
        r.register(_Collector(self))
        if service_metrics is not None:
            r.register(service_metrics)
        self.streams: dict[str, int] = {}
        self.groups: dict[tuple[str, str], tuple[int, int]] = {}  # (stream, group) -> (lag, pending)
        self._task: asyncio.Task | None = None

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE

    async def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name="gateway-metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _poll(self) -> None:
        cfg = self.gw.cfg
        names = [keys.finals_stream(cfg), keys.insights_stream(cfg), keys.alerts_stream(cfg), keys.callbacks_stream(cfg),
                 jobs_stream(cfg)]
        while True:
            try:
                for name in names:
                    if not await self.gw.redis.exists(name):
                        continue
                    self.streams[name] = await self.gw.redis.xlen(name)
                    for g in await self.gw.redis.xinfo_groups(name):
                        self.groups[(name, g["name"])] = (int(g.get("lag") or 0), int(g.get("pending") or 0))
            except (RedisError, OSError) as exc:
                log.debug("metrics poll: %s", exc)
            await asyncio.sleep(POLL_S)


class _Collector:
    def __init__(self, m: GatewayMetrics) -> None:
        self.m = m

    def collect(self):
        gw = self.m.gw
        state = gw.board.state
        live = sum(1 for c in state.calls.values() if c.state == "live")
        yield GaugeMetricFamily("callscribe_board_calls_live", "Live calls on the supervisor board", value=live)
        yield GaugeMetricFamily("callscribe_callbacks_open", "Unresolved calls waiting in the callback queue", value=len(state.callbacks))
        alerts = CounterMetricFamily("callscribe_alerts", "Supervisor alerts seen since this gateway started (incl. replay)", labels=["category"])
        for category, n in sorted(state.alert_counts.items()):
            alerts.add_metric([category], n)
        yield alerts
        yield CounterMetricFamily("callscribe_gateway_viewers_dropped", "Viewers closed for falling behind (1013)", value=gw.board.dropped_viewers)
        yield CounterMetricFamily("callscribe_store_entries", "Stream entries applied to the transcript store", value=gw.ingest.entries)
        yield GaugeMetricFamily("callscribe_store_ingest_healthy", "1 while the transcript store takes writes", value=1 if gw.ingest.healthy else 0)
        hooks = getattr(gw, "webhooks", None)
        if hooks is not None:
            st = hooks.stats
            yield CounterMetricFamily("callscribe_webhooks_delivered", "Webhook deliveries answered 2xx", value=st.delivered)
            yield CounterMetricFamily("callscribe_webhooks_retried", "Webhook attempts that failed and will be retried", value=st.retried)
            yield CounterMetricFamily("callscribe_webhooks_dead_lettered", "Webhook deliveries given up (dead-letter stream)", value=st.dead_lettered)
            yield GaugeMetricFamily("callscribe_webhooks_backlog", "Webhook deliveries not yet settled", value=st.backlog)
        depth = GaugeMetricFamily("callscribe_stream_length", "Entries in a Redis stream", labels=["stream"])
        for name, n in sorted(self.m.streams.items()):
            depth.add_metric([name], n)
        yield depth
        lag = GaugeMetricFamily("callscribe_group_lag", "Entries not yet delivered to a consumer group", labels=["stream", "group"])
        pending = GaugeMetricFamily("callscribe_group_pending", "Entries delivered but not acknowledged", labels=["stream", "group"])
        for (name, group), (n_lag, n_pending) in sorted(self.m.groups.items()):
            lag.add_metric([name, group], n_lag)
            pending.add_metric([name, group], n_pending)
        yield lag
        yield pending
