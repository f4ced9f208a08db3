"""Outbound webhooks per event type: alerts, surges, call summaries and ticket status changes, as they happen.

:func:`outputs` (pure) says what one event becomes: ``(kind, idempotency key, payload)``; :class:`WebhookFeed` (thin)
reads the alerts, insights and tickets streams through its own consumer group (``webhook-feed``) and enqueues each
output through THE webhook queue (:func:`~.sender.aenqueue_webhook`: the same signing, retries, dead letters and
write-once markers as every other kind), acknowledging an entry only once its outputs are enqueued. A redelivered
entry (a restart before the acknowledgement) enqueues the same kind and key again, which the marker makes a no-op: each
event is delivered under one idempotency key, however often it is read.

| kind | from | key | payload |
|---|---|---|---|
| ``alert`` | ``alert`` events (alerts stream) | the alert id | the event, quote redacted, numbers masked |
| ``surge`` | ``surge`` events (alerts stream) | the surge id | the event |
| ``call_summary`` | ``call_summary`` events (insights stream) | ``{call_id}/summary`` | the event, caller masked |
| ``ticket_status`` | ``ticket_status`` events (tickets stream) | ``{ticket_id}@{changed_at_ms}`` | the event, note redacted |
| ``ticket`` | the ticket route (gateway/assist/tickets.py), not this feed | the ticket id | the ticket |
| ``report`` | ``callscribe report --webhook`` | ``report-FROM-TO[-queue]`` | the report |

Only kinds some configured receiver takes (``webhooks``: ``kind=url`` or ``*``) are enqueued. A feed created for the
first time starts ``webhook_max_age_s`` back in the streams (events of the last day are sent, not the whole history).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from callscribe.config import Config
from callscribe.errors import SchemaError
from callscribe.events import Alert, CallSummary, Surge, TicketStatus, from_fields, to_dict
from callscribe.keyword.redact import redact
from callscribe.pii import for_role, mask_number
from callscribe.stream import keys
from callscribe.stream.groups import group_drained, stop_loop

from .policy import parse_endpoints
from .sender import aenqueue_webhook

log = logging.getLogger(__name__)

__all__ = ["outputs", "WebhookFeed", "FEED_KINDS", "GROUP"]

FEED_KINDS = ("alert", "surge", "call_summary", "ticket_status")
GROUP = "webhook-feed"


def outputs(event: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """The webhooks one event becomes (none for the events that are not sent this way)."""
    if isinstance(event, Alert):
        d = to_dict(event)
        d["quote"] = redact(d["quote"])
        return [("alert", event.alert_id, for_role("webhook", d, True))]
    if isinstance(event, Surge):
        return [("surge", event.surge_id, to_dict(event))]
    if isinstance(event, CallSummary):
        d = to_dict(event)
        d["caller"] = mask_number(d["caller"]) if d["caller"] else ""
        return [("call_summary", f"{event.call_id}/summary", for_role("webhook", d, True))]
    if isinstance(event, TicketStatus):
        d = to_dict(event)
        d["note"] = redact(d["note"])
        return [("ticket_status", f"{event.ticket_id}@{event.changed_at_ms}", for_role("webhook", d, True))]
    return []


class WebhookFeed:
    BATCH = 200
    BLOCK_MS = 500

    def __init__(self, cfg: Config, redis_url: str, consumer: str | None = None) -> None:
        self.cfg = cfg
        wanted = {e.kind for e in parse_endpoints(cfg.webhooks)}
        self.kinds = set(FEED_KINDS) if "*" in wanted else wanted & set(FEED_KINDS)
        self.streams = [keys.alerts_stream(cfg), keys.insights_stream(cfg), keys.tickets_stream(cfg)]
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10)
        self.enqueued = 0
        self._stop = False
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if not self.kinds:
            return
        start_id = f"{max(0, int(time.time() * 1000 - self.cfg.webhook_max_age_s * 1000))}-0"
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, GROUP, id=start_id, mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._task = asyncio.create_task(self._run(), name="webhook-feed")
        log.info("webhook feed: sending %s", ", ".join(sorted(self.kinds)))

    async def stop(self, timeout_s: float = 2.0) -> None:
        self._stop = True
        if self._task is not None:
            await stop_loop(self._task, timeout_s, "webhook feed")
            self._task = None
        await self.redis.aclose()

    async def drain(self, timeout_s: float = 10.0) -> bool:
        return await group_drained(self.redis, self.streams, GROUP, timeout_s)

    async def _run(self) -> None:
        backlog, backoff = True, 0.5
        while not self._stop:
            try:
                ids = {s: "0" if backlog else ">" for s in self.streams}
                reply = await self.redis.xreadgroup(GROUP, self.consumer, ids, count=self.BATCH,
                                                    block=None if backlog else self.BLOCK_MS)
                entries = [(s, i, f) for s, batch in (reply or []) for i, f in batch]
                if backlog and not entries:
                    backlog = False
                    continue
                for stream, entry_id, fields in entries:
                    if fields:
                        await self._send(entry_id, fields)
                    await self.redis.xack(stream, GROUP, entry_id)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: nothing acknowledged that was not enqueued; read again from 0
                log.warning("webhook feed: %s: %s; retrying", type(exc).__name__, exc)
                backlog = True
                await asyncio.sleep(backoff)
                backoff = min(10.0, backoff * 2)

    async def _send(self, entry_id: str, fields: Any) -> None:
        try:
            event = from_fields(fields)
        except SchemaError as exc:
            log.warning("webhook feed: skipping %s: %s", entry_id, exc)
            return
        for kind, key, payload in outputs(event):
            if kind in self.kinds:
                await aenqueue_webhook(self.redis, self.cfg, kind, payload, key)
                self.enqueued += 1
