"""Outbound webhooks: the one sender for tickets, alerts and reports (docs/webhooks.md).

``await WebhookSender(cfg, redis_url).start()``, then ``await sender.enqueue(kind, payload, key)`` from
anywhere in the process, or :func:`enqueue_webhook` (``WebhookSender.enqueue_sync``) with just a Redis client
from code that has no sender. Deliveries are durable in Redis, signed (:mod:`.signing`: receivers copy
:func:`verify_signature`), retried with backoff and dead-lettered by the rules of :mod:`.policy`.
"""

from __future__ import annotations

from .policy import Action, Decision, Delivery, Endpoint, RetryPolicy, classify, decide, parse_endpoints
from .sender import WebhookSender, WebhookStats, aenqueue_webhook, enqueue_webhook, load_secret
from .signing import sign, signature_header, verify_signature

__all__ = ["WebhookSender", "WebhookStats", "enqueue_webhook", "aenqueue_webhook", "load_secret", "verify_signature",
           "sign", "signature_header", "RetryPolicy", "Endpoint", "Delivery", "Action", "Decision", "classify",
           "decide", "parse_endpoints"]
