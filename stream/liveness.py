"""No ghost calls: node heartbeats and the reaper that ends calls whose node is gone.

Every serving process (a *node*) refreshes ``keys.node_heartbeat`` every ``HEARTBEAT_S`` with a TTL of
``NODE_TTL_S``. The publisher's write-once script adds a call to ``keys.live_calls`` (``call_id ->
node|started_at_ms``) with its call_started and removes it with its call_ended, atomically. A call whose node
no longer heartbeats (killed, crashed, its host gone) would stay live on every wallboard for ever; the
reaper, run by every node, publishes its ``CallEnded`` with reason ``lost`` instead. The end goes through the
same publisher (write-once marker): two reapers, or a node that comes back and ends the call itself, still
give one end.

A node is reaped only after it was seen missing on two scans ``SCAN_S`` apart, and only by a node whose own
heartbeat has been written since its last Redis outage, so a Redis restart (heartbeats expired while it was
down) does not end healthy calls. The node's own calls are reaped when this process no longer has them
(``is_local``): a restart under the same node id cannot happen (ids carry a random part), but a call left in
the hash by a write that raced a crash can.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from callscribe.config import Config
from callscribe.events import CallEnded, now_ms

from . import keys

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
NODE_TTL_S = 10
SCAN_S = 5.0


def parse_live(value: str) -> tuple[str, int]:
    """``node|started_at_ms`` -> (node, started_at_ms); a malformed value gives ("", 0)."""
    node, _, started = value.rpartition("|")
    try:
        return node, int(started)
    except ValueError:
        return "", 0


def lost_calls(live: dict[str, str], alive: set[str], me: str, missing_before: set[str],
               is_local: Callable[[str], bool]) -> tuple[list[tuple[str, int]], set[str]]:
    """Pure decision of one scan. ``live``: the live-calls hash; ``alive``: nodes whose heartbeat exists.

    Returns the calls to end as (call_id, started_at_ms), and the set of nodes missing on this scan (pass it
    back as ``missing_before`` next time: a node is reaped on its second missing scan)."""
    missing: set[str] = set()
    out: list[tuple[str, int]] = []
    for call_id, value in live.items():
        node, started = parse_live(value)
        if node == me:
            if not is_local(call_id):
                out.append((call_id, started))
            continue
        if node in alive:
            continue
        missing.add(node)
        if node in missing_before:
            out.append((call_id, started))
    return out, missing


class Liveness:
    """Heartbeat of this node plus the reaper. ``publish`` is the node's publisher's ``publish``."""

    def __init__(self, cfg: Config, redis_url: str, node_id: str, publish, is_local: Callable[[str], bool]) -> None:
        self.cfg = cfg
        self.node_id = node_id
        self._publish = publish
        self._is_local = is_local
        self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=3, socket_connect_timeout=2)
        self._task: asyncio.Task | None = None
        self.reaped = 0
        self._missing: set[str] = set()
        self._beats_since_outage = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="liveness")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            await self.redis.delete(keys.node_heartbeat(self.cfg, self.node_id))
        except (RedisError, OSError):
            pass
        await self.redis.aclose()

    async def _run(self) -> None:
        next_scan = time.monotonic() + SCAN_S
        while True:
            try:
                await self.redis.set(keys.node_heartbeat(self.cfg, self.node_id), str(now_ms()), ex=NODE_TTL_S)
                self._beats_since_outage += 1
                if time.monotonic() >= next_scan:
                    next_scan = time.monotonic() + SCAN_S
                    if self._beats_since_outage >= 2:
                        await self.scan()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._beats_since_outage:
                    log.debug("liveness: Redis unavailable (%s)", exc)
                self._beats_since_outage = 0
                self._missing.clear()
            await asyncio.sleep(HEARTBEAT_S)

    async def scan(self) -> int:
        """One reaper pass; returns the number of calls ended as ``lost``."""
        live = await self.redis.hgetall(keys.live_calls(self.cfg))
        if not live:
            self._missing.clear()
            return 0
        nodes = sorted({parse_live(v)[0] for v in live.values()} - {self.node_id})
        alive: set[str] = set()
        if nodes:
            found = await self.redis.mget([keys.node_heartbeat(self.cfg, n) for n in nodes])
            alive = {n for n, v in zip(nodes, found) if v is not None}
        lost, self._missing = lost_calls(live, alive, self.node_id, self._missing, self._is_local)
        for call_id, started in lost:
            duration = max(0, now_ms() - started) if started else 0
            log.warning("call %s: its node %s is gone; ending it as lost", call_id, parse_live(live[call_id])[0] or "?")
            await self._publish(CallEnded(call_id, duration, "lost"))
            self.reaped += 1
        return len(lost)


__all__ = ["Liveness", "lost_calls", "parse_live", "HEARTBEAT_S", "NODE_TTL_S", "SCAN_S"]
