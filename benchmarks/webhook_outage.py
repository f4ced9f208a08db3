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
    def __init__(self, port: int) -> None:
        self.port = port
        self.keys: list[str] = []
        self.bad_signatures = 0
        self.last_at = 0.0
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
            self.keys.append(headers.get("idempotency-key", ""))
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tickets", type=int, default=100)
    ap.add_argument("--down-s", type=float, default=60.0)
    args = ap.parse_args()
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
