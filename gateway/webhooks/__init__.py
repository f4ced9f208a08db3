"""Outbound webhooks: the one sender for tickets, alerts and reports (docs/webhooks.md).

:mod:`.feed` turns alerts, surges, call summaries and ticket status changes into deliveries as they happen;
:mod:`.replay` lists and replays the dead-letter stream; :mod:`.schemas` is the JSON Schema of every payload.

``await WebhookSender(cfg, redis_url).start()``, then ``await sender.enqueue(kind, payload, key)`` from
anywhere in the process, or :func:`enqueue_webhook` (``WebhookSender.enqueue_sync``) with just a Redis client
from code that has no sender. Deliveries are durable in Redis, signed (:mod:`.signing`: receivers copy
:func:`verify_signature`), retried with backoff and dead-lettered by the rules of :mod:`.policy`.
"""

from __future__ import annotations

from .feed import FEED_KINDS, WebhookFeed, outputs
from .policy import Action, Decision, Delivery, Endpoint, RetryPolicy, classify, decide, parse_endpoints
from .replay import DeadLetter, dead_letters, replay
from .sender import WebhookSender, WebhookStats, aenqueue_webhook, enqueue_webhook, load_secret
from .signing import sign, signature_header, verify_signature

__all__ = ["WebhookSender", "WebhookStats", "enqueue_webhook", "aenqueue_webhook", "load_secret", "verify_signature",
           "sign", "signature_header", "RetryPolicy", "Endpoint", "Delivery", "Action", "Decision", "classify",
           "decide", "parse_endpoints", "WebhookFeed", "outputs", "FEED_KINDS", "DeadLetter", "dead_letters", "replay"]
