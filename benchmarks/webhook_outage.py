"""The ticket receiver down for a minute: is every ticket delivered, once, and how soon after it is back?

A real HTTP receiver (asyncio, HTTP/1.1, checks each request's HMAC signature with
``gateway.webhooks.verify_signature``) is down while ``--tickets`` tickets are enqueued through the real
WebhookSender on an embedded Redis with the production retry policy (backoff 1 s doubling to 5 min, with
jitter), stays down ``--down-s`` seconds, then comes up. Measured: tickets delivered, duplicates, bad
signatures, dead letters, retries, and the time from the receiver coming back to the last delivery (the
backoff reached during the outage bounds it).

Run: ``python -m benchmarks.webhook_outage [--tickets 100] [--down-s 60]``. Output: JSON in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from callscribe.config import Config
from callscribe.gateway.webhooks import WebhookSender, verify_signature
from callscribe.stream import EmbeddedRedis
from callscribe.stream.server import free_port

RESULTS = Path(__file__).parent / "results"
SECRET = "benchmark-webhook-secret-0123456789abcdef"


class Receiver:
    def __init__(self, port: int, flaky: bool = False) -> None:
        self.port = port
        self.keys: list[str] = []
        self.bad_signatures = 0
        self.last_at = 0.0
        self.flaky = flaky  # answer 500 to the first request of each key: every delivery is redelivered once
        self.refused: dict[str, str] = {}  # key -> delivery id of the refused first request
        self.redelivered_same = 0  # redeliveries with the same Idempotency-Key and X-Callscribe-Delivery
        self.kinds: dict[str, str] = {}
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readline()
            headers: dict[str, str] = {}
            while (h := (await reader.readline()).decode("latin-1").strip()):
                name, _, value = h.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if not verify_signature(SECRET, headers.get("x-callscribe-timestamp", ""), body,
                                    headers.get("x-callscribe-signature", "")):
                self.bad_signatures += 1
            key, delivery = headers.get("idempotency-key", ""), headers.get("x-callscribe-delivery", "")
            if self.flaky and key not in self.refused:
                self.refused[key] = delivery
                writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                await writer.drain()
                return
            if self.flaky and self.refused.get(key) == delivery:
                self.redelivered_same += 1
            self.kinds[key] = headers.get("x-callscribe-event", "")
            self.keys.append(key)
            self.last_at = time.monotonic()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


async def run(tickets: int, down_s: float) -> dict:
    port = free_port()
    receiver = Receiver(port)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start()
        try:
            cfg = Config(data_dir=tmp, webhooks=(f"ticket=http://127.0.0.1:{port}/tickets",), webhook_secret=SECRET)
            sender = WebhookSender(cfg, server.url)
            await sender.start()
            t0 = time.monotonic()
            for i in range(tickets):
                await sender.enqueue("ticket", {"ticket_id": f"t-{i}", "type": "broadband_fault"}, f"t-{i}")
            await asyncio.sleep(max(0.0, down_s - (time.monotonic() - t0)))
            await receiver.start()
            up_at = time.monotonic()
            deadline = up_at + 600
            while len(set(receiver.keys)) < tickets and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # anything late or duplicated would show now
            stats = sender.stats
            await sender.stop()
        finally:
            server.stop()
    return {
        "tickets": tickets, "receiver_down_s": round(up_at - t0, 1),
        "delivered_distinct": len(set(receiver.keys)), "requests": len(receiver.keys),
        "duplicates": len(receiver.keys) - len(set(receiver.keys)), "bad_signatures": receiver.bad_signatures,
        "dead_lettered": stats.dead_lettered, "retried": stats.retried,
        "last_delivery_after_receiver_up_s": round(receiver.last_at - up_at, 1) if receiver.keys else None,
        "policy": "backoff 1 s doubling to 300 s with jitter, 20 attempts, 24 h (the defaults)",
    }


async def run_feed(events: int, down_s: float) -> dict:
    """Every kind through the gateway's webhook feed (gateway/webhooks/feed.py) and the one sender, one receiver for
    all (``*=``), down for ``down_s``; once up it refuses the first request of every key (500), so each delivery is
    also redelivered once: the redelivery must carry the same Idempotency-Key and X-Callscribe-Delivery."""
    import redis.asyncio as aioredis

    from callscribe.events import Alert, CallSummary, Surge, TicketStatus, to_fields
    from callscribe.gateway.webhooks import WebhookFeed
    from callscribe.stream import keys as rkeys

    port = free_port()
    receiver = Receiver(port, flaky=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        server.start()
        try:
            cfg = Config(data_dir=tmp, webhooks=(f"*=http://127.0.0.1:{port}/all",), webhook_secret=SECRET, redis_url=server.url)
            sender = WebhookSender(cfg, server.url)
            feed = WebhookFeed(cfg, server.url)
            await sender.start()
            await feed.start()
            r = aioredis.from_url(server.url, decode_responses=True)
            t0 = time.monotonic()
            expected: dict[str, str] = {}
            per = max(1, events // 5)
            for i in range(per):
                await r.xadd(rkeys.alerts_stream(cfg), to_fields(Alert(f"c{i}", f"c{i}/a", "escalation.x", "escalation", "high",
                                                                       "customer", "叫你们经理来", 1000, 2000)))
                expected[f"c{i}/a"] = "alert"
                await r.xadd(rkeys.alerts_stream(cfg), to_fields(Surge(f"s{i}", "intent", "broadband_outage", 600, 12, 2.0, 6.0)))
                expected[f"s{i}"] = "surge"
                await r.xadd(rkeys.insights_stream(cfg), to_fields(CallSummary(f"c{i}", "roaming", 0.5, (), False, (),
                                                                               caller="13812345678")))
                expected[f"c{i}/summary"] = "call_summary"
                await r.xadd(rkeys.tickets_stream(cfg), to_fields(TicketStatus(f"t{i}", f"c{i}", "resolved", changed_at_ms=1000 + i)))
                expected[f"t{i}@{1000 + i}"] = "ticket_status"
                await sender.enqueue("ticket", {"ticket_id": f"t{i}"}, f"t{i}")
                expected[f"t{i}"] = "ticket"
            await r.aclose()
            await asyncio.sleep(max(0.0, down_s - (time.monotonic() - t0)))
            await receiver.start()
            up_at = time.monotonic()
            deadline = up_at + 900
            while len(set(receiver.keys)) < len(expected) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            stats = sender.stats
            await feed.stop()
            await sender.stop()
        finally:
            server.stop()
    got = set(receiver.keys)
    return {
        "events": len(expected), "by_kind": {k: sum(1 for v in expected.values() if v == k) for k in sorted(set(expected.values()))},
        "receiver_down_s": round(up_at - t0, 1), "delivered_distinct": len(got), "missing": sorted(set(expected) - got)[:20],
        "wrong_kind": sum(1 for k in got if receiver.kinds.get(k) != expected.get(k)),
        "duplicates_after_2xx": len(receiver.keys) - len(got), "refused_once_then_redelivered": len(receiver.refused),
        "redelivered_with_same_key_and_delivery_id": receiver.redelivered_same, "bad_signatures": receiver.bad_signatures,
        "dead_lettered": stats.dead_lettered, "retried": stats.retried,
        "last_delivery_after_receiver_up_s": round(receiver.last_at - up_at, 1) if receiver.keys else None,
        "policy": "backoff 1 s doubling to 300 s with jitter, 20 attempts, 24 h (the defaults)",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tickets", type=int, default=100)
    ap.add_argument("--down-s", type=float, default=60.0)
    ap.add_argument("--feed", action="store_true", help="every kind (alert, surge, call_summary, ticket_status, ticket) "
                                                        "through the webhook feed, each also refused once after the outage")
    args = ap.parse_args()
    if args.feed:
        result = {"benchmark": "webhook_outage_feed", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                  "command": f"python -m benchmarks.webhook_outage --feed --tickets {args.tickets} --down-s {args.down_s}",
                  **asyncio.run(run_feed(args.tickets, args.down_s))}
        print(json.dumps(result, indent=1))
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"webhook-outage-feed-{dt.datetime.now():%Y%m%d-%H%M}.json"
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"saved {out}")
        return
    result = {
        "benchmark": "webhook_outage",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": f"python -m benchmarks.webhook_outage --tickets {args.tickets} --down-s {args.down_s}",
        **asyncio.run(run(args.tickets, args.down_s)),
    }
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"webhook-outage-{dt.datetime.now():%Y%m%d-%H%M}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
