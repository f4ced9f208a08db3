"""Consumer-group plumbing shared by every Redis consumer (ASR workers, analytics, the search store).

Why one place: each consumer needs the same three things, with the same subtleties: create its group
idempotently, tell when it has caught up (nothing undelivered, nothing unacknowledged), and stop its read
loop without hanging (a redis-py read that is cancelled can swallow the cancellation, so loops are asked
to stop and only cancelled, with a bounded wait, when they do not)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable

from redis.exceptions import RedisError, ResponseError

log = logging.getLogger(__name__)

__all__ = ["ensure_group", "group_drained", "stop_loop"]


async def ensure_group(client: Any, stream: str, group: str, start_id: str = "0") -> None:
    """Create ``group`` on ``stream`` (and the stream) unless it exists."""
    try:
        await client.xgroup_create(stream, group, id=start_id, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def group_drained(client: Any, streams: Iterable[str], group: str, timeout_s: float) -> bool:
    """Wait until ``group`` has no undelivered (lag) and no unacknowledged (pending) entries on every one
    of ``streams``; False after ``timeout_s`` or when Redis cannot be asked."""
    streams = list(streams)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            infos = [await client.xinfo_groups(s) for s in streams]
        except (RedisError, OSError):
            return False
        mine = [next((g for g in info if g.get("name") == group), None) for info in infos]
        if all(g is not None and not g.get("pending") and not g.get("lag") for g in mine):
            return True
        await asyncio.sleep(0.05)
    return False


async def stop_loop(task: asyncio.Task, timeout_s: float, name: str) -> None:
    """Wait for a read loop that was asked to stop; cancel it if it does not finish in ``timeout_s``,
    and never wait more than that again (its client is closed right after anyway)."""
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=timeout_s)
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.error("%s loop failed: %r", name, task.exception())
