"""The one outbound-webhook sender (thin I/O over :mod:`.policy` and :mod:`.signing`).

Contract:

* **Durable enqueue.** :meth:`WebhookSender.enqueue` (or :func:`enqueue_webhook` with any sync Redis client,
  :func:`aenqueue_webhook` with an asyncio one) writes the delivery to ``keys.webhooks_stream`` and sets a
  write-once marker (``keys.webhook_marker``: kind + idempotency key) in one Lua script, atomically. Once it
  returns, the delivery survives this process dying and the receiver being down; enqueueing the same kind and
  key again returns the first delivery's id and writes nothing.
* **One consumer group per endpoint** (``webhooks:{endpoint.id}``). Each endpoint reads the stream at its
  own pace and holds at most ``max_held`` deliveries in memory (in backoff or in flight), POSTing at most
  ``concurrency`` at a time: a slow or dead receiver fills its own window and stops reading, the others go on.
* **Acknowledged when settled.** An entry is XACKed in its endpoint's group only when delivered (2xx) or
  dead-lettered (to ``keys.webhooks_dead_stream``, with the last error, in the same transaction). Failed
  attempts are counted in ``keys.webhook_attempts``, so the count and the age limit survive restarts.
* **Restarts.** A sender first re-reads its own consumer's pending entries (from id 0), then takes over
  entries other consumers have held for ``claim_idle_s`` without touching them (XAUTOCLAIM: a sender that
  died). A live sender touches the entries it holds every ``claim_idle_s / 3``, so they are never taken from
  it while they wait for a retry. With a stable ``consumer`` name a restarted sender resumes at once.
* **At least once.** A POST that was cut short (stop, crash, lost answer) is sent again, with the same
  ``X-Callscribe-Delivery`` and ``Idempotency-Key``: receivers drop repeats by that key.
* **New endpoints.** An endpoint's group is created on its first start. The first group ever created on the
  stream starts ``webhook_max_age_s`` back (deliveries enqueued before any sender ran are not missed); an
  endpoint added later starts with the deliveries enqueued from then on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from callscribe.config import Config
from callscribe.stream import keys
from callscribe.stream.groups import group_drained, stop_loop

from .policy import Action, Delivery, Endpoint, RetryPolicy, check_key, check_kind, decide, encode_payload, parse_endpoints, parse_retry_after
from .signing import signature_header

log = logging.getLogger(__name__)

__all__ = ["WebhookSender", "WebhookStats", "enqueue_webhook", "aenqueue_webhook", "load_secret", "ENQUEUE_LUA",
           "GROUP_PREFIX"]

GROUP_PREFIX = "webhooks:"
USER_AGENT = "callscribe-webhooks/1"
_BLOCK_MS = 200
_ERROR_BODY_BYTES = 300

# KEYS: marker, stream. ARGV: marker ttl_s, stream maxlen, field, value, ...
# Returns {1, id} when written, {0, id of the first delivery} when the marker says it already was.
ENQUEUE_LUA = """
local prev = redis.call('GET', KEYS[1])
if prev then return {0, prev} end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'stream' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' holds a ' .. t .. ', not a stream')
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[1], id, 'EX', ARGV[1])
return {1, id}
"""


def _enqueue_args(cfg: Config, kind: str, payload: Mapping[str, Any], key: str) -> tuple[list[str], list[str]]:
    check_kind(kind)
    check_key(key)
    ttl_s = max(cfg.call_stream_ttl_s, math.ceil(cfg.webhook_max_age_s))
    args = [str(ttl_s), str(cfg.global_stream_maxlen)]
    for name, value in Delivery.fields(kind, key, encode_payload(payload)).items():
        args += [name, value]
    return [keys.webhook_marker(cfg, kind, key), keys.webhooks_stream(cfg)], args


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def enqueue_webhook(client: Any, cfg: Config, kind: str, payload: Mapping[str, Any], key: str) -> str:
    """Enqueue a delivery with a synchronous ``redis.Redis`` client; returns its delivery id (the first
    one's when ``kind`` + ``key`` was enqueued before). Raises ValueError / TypeError for a bad kind, key
    or payload, and redis-py's errors when Redis cannot take it (nothing was enqueued then)."""
    k, a = _enqueue_args(cfg, kind, payload, key)
    _, entry_id = client.eval(ENQUEUE_LUA, len(k), *k, *a)
    return _text(entry_id)


async def aenqueue_webhook(client: Any, cfg: Config, kind: str, payload: Mapping[str, Any], key: str) -> str:
    """:func:`enqueue_webhook` for a ``redis.asyncio.Redis`` client."""
    k, a = _enqueue_args(cfg, kind, payload, key)
    _, entry_id = await client.eval(ENQUEUE_LUA, len(k), *k, *a)
    return _text(entry_id)


def load_secret(cfg: Config) -> bytes:
    """``webhook_secret``, else the one in ``{data_dir}/webhook.secret`` (created on first use, mode 0600,
    the way gateway/web/auth.py keeps ``auth.secret``). Receivers verify with the same bytes."""
    if cfg.webhook_secret:
        return cfg.webhook_secret.encode("utf-8")
    path = cfg.data_path / "webhook.secret"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode())
    try:
        os.link(tmp, path)  # fails if another process won the race: both then use its file
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()


@dataclass(slots=True)
class WebhookStats:
    """Counters of one sender (plain attributes, read them from the event loop; others export them)."""

    enqueued: int = 0
    """Deliveries this sender's :meth:`~WebhookSender.enqueue` wrote."""
    duplicates: int = 0
    """Enqueues the marker found already done (same kind and key)."""
    delivered: int = 0
    """(delivery, endpoint) pairs answered 2xx."""
    retried: int = 0
    """Failed attempts that are retried."""
    dead_lettered: int = 0
    """(delivery, endpoint) pairs given up on and written to the dead-letter stream."""
    backlog: int = 0
    """Deliveries not yet settled, summed over endpoints (unread + in backoff + in flight); refreshed every second."""
    backlog_by_endpoint: dict[str, int] = field(default_factory=dict)
    """The same per endpoint id."""
    last_error: str = ""
    """The last failed attempt: endpoint, delivery and what went wrong."""


@dataclass(eq=False)
class _Route:
    """One endpoint at run time."""

    endpoint: Endpoint
    client: httpx.AsyncClient
    slots: asyncio.Semaphore
    held: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    claim_cursor: str = "0-0"

    @property
    def group(self) -> str:
        return GROUP_PREFIX + self.endpoint.id


class WebhookSender:
    """Delivers enqueued webhooks to the endpoints in ``cfg.webhooks``. See the module docstring."""

    def __init__(self, cfg: Config, redis_url: str, *, policy: RetryPolicy | None = None, consumer: str | None = None,
                 concurrency: int = 4, max_held: int = 256, claim_idle_s: float = 60.0,
                 secret: str | bytes | None = None) -> None:
        self.cfg = cfg
        self.policy = policy or RetryPolicy.from_config(cfg)
        self.endpoints = parse_endpoints(cfg.webhooks)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        """This sender in every endpoint's group. Keep it stable across restarts to resume at once."""
        self.concurrency = max(1, concurrency)
        self.max_held = max(1, max_held)
        self.claim_idle_s = claim_idle_s
        self.stats = WebhookStats()
        self.stream = keys.webhooks_stream(cfg)
        self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=10, socket_connect_timeout=2)
        self._secret: bytes | None = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._routes: list[_Route] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._started = False
        self._rng = random.Random()
        self._redis_down = False

    # --- producers -------------------------------------------------------------------------------------
    async def enqueue(self, kind: str, payload: dict, key: str, timeout_s: float = 10.0) -> str:
        """Write one delivery durably; returns its delivery id (the first one's for a repeated kind + key).

        Redis unreachable: retried for up to ``timeout_s``, then the Redis error is raised (nothing was
        enqueued; the caller keeps its data). Bad kind, key or payload: ValueError / TypeError at once."""
        k, a = _enqueue_args(self.cfg, kind, payload, key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = 0.1
        while True:
            try:
                written, entry_id = await self.redis.eval(ENQUEUE_LUA, len(k), *k, *a)
                break
            except (RedisError, OSError) as exc:
                if isinstance(exc, ResponseError) or loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
        if int(written):
            self.stats.enqueued += 1
        else:
            self.stats.duplicates += 1
        return _text(entry_id)

    @classmethod
    def enqueue_sync(cls, client: Any, cfg: Config, kind: str, payload: Mapping[str, Any], key: str) -> str:
        """:func:`enqueue_webhook`: enqueue with just a synchronous Redis client, no sender needed."""
        return enqueue_webhook(client, cfg, kind, payload, key)

    # --- life cycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the endpoints' groups and start delivering. Raises redis-py's errors if Redis is down."""
        if self._started:
            return
        self._started = True
        if self._secret is None:
            self._secret = await asyncio.to_thread(load_secret, self.cfg)
        existing = await self._groups()
        first = not any(name.startswith(GROUP_PREFIX) for name in existing)
        start_id = f"{max(0, int(time.time() * 1000 - self.policy.max_age_s * 1000))}-0" if first else "$"
        for ep in self.endpoints:
            route = _Route(ep, httpx.AsyncClient(timeout=self.policy.timeout_s, follow_redirects=False,
                                                 limits=httpx.Limits(max_connections=self.concurrency)),
                           asyncio.Semaphore(self.concurrency))
            if route.group not in existing:
                try:
                    await self.redis.xgroup_create(self.stream, route.group, id=start_id, mkstream=True)
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise
            await self._forget_idle_consumers(route)
            self._routes.append(route)
            self._tasks.append(asyncio.create_task(self._reader(route), name=f"webhooks-{ep.id}"))
        mine = {r.group for r in self._routes}
        for name, info in existing.items():
            if name.startswith(GROUP_PREFIX) and name not in mine and (info.get("pending") or info.get("lag")):
                log.warning("webhooks: group %s belongs to no configured endpoint (a changed or removed URL) and holds "
                            "%s pending and %s unread deliveries; XGROUP DESTROY %s %s removes it", name,
                            info.get("pending"), info.get("lag"), self.stream, name)
        self._tasks.append(asyncio.create_task(self._monitor(), name="webhooks-monitor"))
        if self.endpoints:
            log.info("webhooks: delivering to %s", ", ".join(f"{e.kind}={e.safe_url}" for e in self.endpoints))

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading, let POSTs in flight finish for up to ``timeout_s``, then close. Whatever is not
        settled stays pending in Redis and is delivered after the next start."""
        self._stop.set()
        for task in self._tasks:  # readers first: no delivery starts after this
            await stop_loop(task, timeout_s, "webhook sender")
        self._tasks.clear()
        held = [t for r in self._routes for t in r.held.values()]
        if held:
            _, rest = await asyncio.wait(held, timeout=timeout_s)
            for t in rest:
                t.cancel()
            if rest:
                await asyncio.wait(rest, timeout=1.0)
        for r in self._routes:
            await r.client.aclose()
        self._routes.clear()
        await self.redis.aclose()

    async def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every endpoint has settled every delivery (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for r in list(self._routes):
            if not await group_drained(self.redis, [self.stream], r.group, max(0.0, deadline - loop.time())):
                return False
        return True

    async def backlog(self) -> dict[str, int]:
        """Unsettled deliveries per endpoint id now (pending + unread in its group)."""
        groups = await self._groups()
        out = {}
        for r in self._routes:
            info = groups.get(r.group, {})
            out[r.endpoint.id] = int(info.get("pending") or 0) + int(info.get("lag") or 0)
        return out

    async def _forget_idle_consumers(self, route: _Route) -> None:
        """Remove consumers of earlier runs that hold nothing (each run with a generated name adds one)."""
        try:
            for c in await self.redis.xinfo_consumers(self.stream, route.group):
                if c["name"] != self.consumer and not c.get("pending") and (c.get("idle") or 0) > self.claim_idle_s * 1000:
                    await self.redis.xgroup_delconsumer(self.stream, route.group, c["name"])
        except (RedisError, OSError) as exc:
            log.debug("webhooks: could not tidy the consumers of %s: %s", route.group, exc)

    async def _groups(self) -> dict[str, dict]:
        try:
            return {g["name"]: g for g in await self.redis.xinfo_groups(self.stream)}
        except ResponseError as exc:  # no such key yet
            if "no such key" in str(exc).lower():
                return {}
            raise

    # --- reading ---------------------------------------------------------------------------------------
    async def _reader(self, route: _Route) -> None:
        """Keep ``route``'s window full: its own pending entries first, then taken-over and new ones."""
        loop = asyncio.get_running_loop()
        cursor: str | None = "0"  # replaying this consumer's pending entries; None once done
        next_claim = 0.0
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if loop.time() >= next_claim:
                    await self._claim(route)
                    next_claim = loop.time() + self.claim_idle_s / 3
                room = self.max_held - len(route.held)
                if room <= 0:
                    route.room.clear()
                    try:
                        await asyncio.wait_for(route.room.wait(), _BLOCK_MS / 1000)
                    except TimeoutError:
                        pass
                    continue
                reply = await self.redis.xreadgroup(route.group, self.consumer, {self.stream: cursor or ">"},
                                                    count=room, block=None if cursor else _BLOCK_MS)
                entries = reply[0][1] if reply else []
                if cursor is not None:
                    if not entries:
                        cursor = None
                        continue
                    cursor = entries[-1][0]
                await self._take(route, entries)
                if self._redis_down:
                    log.warning("webhooks: Redis is back")
                    self._redis_down = False
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down, or a bug: retry; nothing is acknowledged that was not settled
                if not self._redis_down:
                    log.warning("webhooks: reading %s failed (%s: %s); retrying", self.stream, type(exc).__name__, exc,
                                exc_info=not isinstance(exc, (RedisError, OSError)))
                    self._redis_down = True
                await self._sleep(backoff)
                backoff = min(10.0, backoff * 2)

    async def _claim(self, route: _Route) -> None:
        """Touch the entries this sender holds (so nobody takes them), and take over entries another
        consumer has left untouched for ``claim_idle_s`` (it died)."""
        held = list(route.held)
        for i in range(0, len(held), 100):
            await self.redis.xclaim(self.stream, route.group, self.consumer, 0, held[i:i + 100], justid=True)
        room = self.max_held - len(route.held)
        if room <= 0:
            return
        reply = await self.redis.xautoclaim(self.stream, route.group, self.consumer, int(self.claim_idle_s * 1000),
                                            start_id=route.claim_cursor, count=room)
        route.claim_cursor = reply[0] if reply and reply[0] else "0-0"
        entries = reply[1] if reply else []
        if entries:
            log.info("webhooks: took over %d deliveries for %s left by another sender", len(entries), route.endpoint.safe_url)
        await self._take(route, entries)

    async def _take(self, route: _Route, entries: list) -> None:
        """Start a delivery task for each entry of ``route``'s kind; acknowledge the others at once."""
        skip: list[str] = []
        for entry_id, fields in entries:
            if entry_id in route.held:
                continue
            if not fields:  # trimmed away (MAXLEN) before it was settled
                log.error("webhooks: delivery %s for %s was trimmed from %s before it was delivered (raise "
                          "global_stream_maxlen)", entry_id, route.endpoint.safe_url, self.stream)
                skip.append(entry_id)
                continue
            try:
                delivery = Delivery.from_fields(entry_id, fields)
            except ValueError as exc:
                if str(fields.get("v", "")).isdigit() and int(fields["v"]) > 1:
                    log.warning("webhooks: %s; left for a newer sender", exc)  # stays pending
                    continue
                log.error("webhooks: %s; dropped", exc)
                skip.append(entry_id)
                continue
            if not route.endpoint.matches(delivery.kind) or (delivery.endpoint and delivery.endpoint != route.endpoint.id):
                skip.append(entry_id)
                continue
            route.held[entry_id] = asyncio.create_task(self._deliver(route, delivery), name=f"webhook-{entry_id}")
        if skip:
            await self.redis.xack(self.stream, route.group, *skip)

    # --- delivering ------------------------------------------------------------------------------------
    async def _deliver(self, route: _Route, d: Delivery) -> None:
        ep = route.endpoint
        field_name = f"{ep.id}/{d.id}"
        try:
            attempts = 0  # failed attempts so far, also those of earlier runs
            try:
                saved = await self.redis.hget(keys.webhook_attempts(self.cfg), field_name)
                if saved:
                    attempts = int(saved.partition("|")[0])
            except (RedisError, OSError, ValueError):
                pass
            while not self._stop.is_set():
                async with route.slots:
                    if self._stop.is_set():
                        return
                    status, error, retry_after = await self._post(route, d)
                attempts += 1
                now_ms = int(time.time() * 1000)
                decision = decide(status, attempts, d.created_ms, now_ms, self.policy, retry_after, self._rng)
                if decision.action is Action.DONE:
                    await self._settle(route, d, field_name, None)
                    self.stats.delivered += 1
                    return
                self.stats.last_error = f"{ep.safe_url} delivery {d.id}: {error}"
                if decision.action is Action.DEAD:
                    dead = {"v": "1", "delivery": d.id, "kind": d.kind, "key": d.key, "endpoint": ep.safe_url,
                            "endpoint_id": ep.id, "attempts": str(attempts), "status": str(status or ""),
                            "error": error, "reason": decision.reason, "created_ms": str(d.created_ms),
                            "dead_at_ms": str(now_ms), "payload": d.payload_json}
                    await self._settle(route, d, field_name, dead)
                    self.stats.dead_lettered += 1
                    log.error("webhooks: %s %s (key %s) to %s dead-lettered: %s; last error: %s", d.kind, d.id, d.key,
                              ep.safe_url, decision.reason, error)
                    return
                self.stats.retried += 1
                log.info("webhooks: %s %s to %s failed (attempt %d: %s); retry in %.1f s", d.kind, d.id, ep.safe_url,
                         attempts, error, decision.delay_s)
                try:
                    await self.redis.hset(keys.webhook_attempts(self.cfg), field_name, f"{attempts}|{error}")
                except (RedisError, OSError):
                    pass  # the count restarts lower after a restart; the age limit still holds
                if await self._sleep(decision.delay_s):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: the entry stays pending and is picked up again after a restart
            log.exception("webhooks: delivering %s to %s failed", d.id, ep.safe_url)
        finally:
            route.held.pop(d.id, None)
            route.room.set()

    async def _post(self, route: _Route, d: Delivery) -> tuple[int | None, str, float | None]:
        """One attempt: (status or None, error text for a failure, Retry-After seconds)."""
        body = d.body()
        ts = int(time.time())
        assert self._secret is not None
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Callscribe-Event": d.kind,
            "X-Callscribe-Delivery": d.id,
            "Idempotency-Key": d.key,
            "X-Callscribe-Timestamp": str(ts),
            "X-Callscribe-Signature": signature_header(self._secret, ts, body),
        }
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                async with route.client.stream("POST", route.endpoint.url, content=body, headers=headers) as resp:
                    status = resp.status_code
                    if 200 <= status <= 299:
                        return status, "", None
                    text = b""
                    async for chunk in resp.aiter_bytes():
                        text += chunk
                        if len(text) >= _ERROR_BODY_BYTES:
                            break
                    detail = text[:_ERROR_BODY_BYTES].decode("utf-8", "replace").strip()
                    error = f"HTTP {status}" + (f": {detail}" if detail else "")
                    return status, error, parse_retry_after(resp.headers.get("retry-after"))
        except TimeoutError:
            return None, f"timed out after {self.policy.timeout_s:g} s", None
        except httpx.TimeoutException as exc:
            return None, f"timed out ({type(exc).__name__})", None
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300], None

    async def _settle(self, route: _Route, d: Delivery, field_name: str, dead: dict[str, str] | None) -> None:
        """XACK (and dead-letter) in one transaction, retried until Redis takes it or the sender stops (then
        the entry stays pending and is delivered again after a restart: at least once)."""
        delay = 0.2
        while True:
            try:
                pipe = self.redis.pipeline(transaction=True)
                if dead is not None:
                    pipe.xadd(keys.webhooks_dead_stream(self.cfg), dead, maxlen=self.cfg.global_stream_maxlen, approximate=True)
                pipe.xack(self.stream, route.group, d.id)
                pipe.hdel(keys.webhook_attempts(self.cfg), field_name)
                await pipe.execute()
                return
            except (RedisError, OSError) as exc:
                log.warning("webhooks: could not settle %s for %s (%s); retrying", d.id, route.endpoint.safe_url, exc)
                if await self._sleep(delay):
                    return
                delay = min(5.0, delay * 2)

    async def _sleep(self, delay_s: float) -> bool:
        """Sleep ``delay_s``; True (at once) when the sender is stopping."""
        try:
            await asyncio.wait_for(self._stop.wait(), delay_s)
            return True
        except TimeoutError:
            return False

    async def _monitor(self) -> None:
        while not self._stop.is_set():
            try:
                by_ep = await self.backlog()
                self.stats.backlog_by_endpoint = by_ep
                self.stats.backlog = sum(by_ep.values())
            except (RedisError, OSError):
                pass
            if await self._sleep(1.0):
                return
