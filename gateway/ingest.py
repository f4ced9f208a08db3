"""WebSocket ingest server: one connection = one call (docs/protocol.md).

Who may send a call is decided before the WebSocket exists: with ``ingest_auth`` (on by default; the
demo mints its own token) the handshake must carry ``Authorization: Bearer <token>`` of role ``ingest`` (or admin), else it is
answered HTTP 401/403 and takes no call slot. The token's subject is the *source*: one source holds at most
``cfg.source_quota`` live calls, so a misbehaving SBC or script cannot take every slot. ``/metrics`` needs
an admin token unless ``metrics_public``.

Storage outages are told, not hidden: while Redis does not take writes, every live connection gets
``{"type": "storage", "durable": false, ...}`` and, once the buffered finals are written, ``durable: true``;
a call that ends with finals still buffered gets the same message (with its count) before it closes.

The handler only moves bytes: protocol parsing is in :mod:`.protocol`, audio decoding in
:mod:`callscribe.audio`, everything else in the pipeline. A bad message closes *that* connection with a
code and reason; the call is still ended cleanly (its finals flushed to Redis) and no other call notices.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from callscribe.audio import StreamDecoder
from callscribe.config import Config
from callscribe.errors import AudioFormatError, CallIdInUse, CapacityError, ProtocolError
from callscribe.events import CallStarted, Event, Transcript, to_json
from callscribe.pipeline import CallSession, Pipeline

from . import protocol as proto

log = logging.getLogger(__name__)
OUTBOX_MAX = 1000
INGEST_ROLES = ("ingest", "admin")


class IngestServer:
    def __init__(self, cfg: Config, pipeline: Pipeline) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self._server: Server | None = None
        self.connections = 0
        self.refused = 0
        self.unauthorized = 0
        self.metrics = None  # a callscribe.metrics.ServiceCollector, set by the service
        self._sources: "weakref.WeakKeyDictionary[ServerConnection, str]" = weakref.WeakKeyDictionary()
        self._outboxes: dict[str, asyncio.Queue[str | None]] = {}  # call_id -> its connection's outbox
        self._stopping = False
        self._auth = None
        if cfg.ingest_auth or not cfg.metrics_public:
            from callscribe.gateway.web.auth import TokenAuthority

            self._auth = TokenAuthority.from_config(cfg)
        publisher = getattr(pipeline, "sink", None)
        if hasattr(publisher, "add_listener"):
            publisher.add_listener(self._on_storage)

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        self._server = await serve(
            self._handle,
            host or self.cfg.host,
            self.cfg.port if port is None else port,
            process_request=self._http,
            max_size=self.cfg.max_frame_bytes,
            max_queue=64,
            ping_interval=20,
            ping_timeout=20,
            open_timeout=self.cfg.http_header_timeout_s,
        )

    def mint_token(self, source: str, ttl_h: float = 12.0) -> str:
        """An ingest token for ``source`` signed with this service's secret (the demo's own client)."""
        from callscribe.gateway.web.auth import TokenAuthority

        authority = self._auth or TokenAuthority.from_config(self.cfg)
        return authority.mint("ingest", source, ttl_h=ttl_h)[0]

    def _token(self, request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        query = parse_qs(urlsplit(request.path).query).get("access_token")
        return query[0] if query else None

    def _http(self, connection: ServerConnection, request):
        """Plain HTTP on the ingest port: ``/health``, ``/metrics`` (Prometheus, admin token unless
        ``metrics_public``); the WebSocket handshake itself needs an ingest token (``ingest_auth``)."""
        from callscribe.gateway.web.auth import AuthError

        path = urlsplit(request.path).path
        if path == "/health":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if path == "/metrics" and self.metrics is not None:
            if not self.cfg.metrics_public:
                try:
                    who = self._auth.verify(self._token(request))
                except AuthError as exc:
                    return connection.respond(HTTPStatus.UNAUTHORIZED, f"{exc}\n")
                if who.role != "admin":
                    return connection.respond(HTTPStatus.FORBIDDEN, "metrics need an admin token\n")
            from callscribe.metrics import CONTENT_TYPE, render

            response = connection.respond(HTTPStatus.OK, render(self.metrics).decode())
            response.headers["Content-Type"] = CONTENT_TYPE
            return response
        limit = self.cfg.http_max_connections
        if limit and self.connections_open >= limit:
            self.refused += 1
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections; retry later\n")
        if self.cfg.ingest_auth:
            try:
                who = self._auth.verify(self._token(request))
            except AuthError as exc:
                self.unauthorized += 1
                log.warning("ingest: refused a handshake from %s: %s", _peer(connection), exc)
                return connection.respond(HTTPStatus.UNAUTHORIZED, f"{exc}\n")
            if who.role not in INGEST_ROLES:
                self.unauthorized += 1
                log.warning("ingest: refused a %s token (%s) from %s", who.role, who.sub, _peer(connection))
                return connection.respond(HTTPStatus.FORBIDDEN, "sending calls needs a token of role ingest\n")
            self._sources[connection] = f"token:{who.sub}"
        else:
            self._sources[connection] = f"addr:{_peer(connection).rsplit(':', 1)[0]}"
        return None

    @property
    def connections_open(self) -> int:
        return len(self._server.connections) if self._server is not None else 0

    def _on_storage(self, durable: bool, buffered: int) -> None:
        """Publisher outage started / ended: tell every live call's client (finals are never dropped)."""
        publisher = self.pipeline.sink
        for call_id, outbox in list(self._outboxes.items()):
            pending = publisher.pending(call_id) if hasattr(publisher, "pending") else 0
            try:
                outbox.put_nowait(proto.storage_message(durable, pending, call_id))
            except asyncio.QueueFull:
                pass  # a client this far behind gets the state at its call's end

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://{self.cfg.host}:{self.port}/v1/ingest"

    async def stop(self) -> None:
        """Stop taking calls; live calls end with reason ``shutdown`` (their finals flushed) and their
        clients get close code 1001."""
        self._stopping = True
        if self._server is None:
            return
        self._server.close(close_connections=False)  # no new connections
        live = [(self.pipeline.calls.get(cid), box) for cid, box in list(self._outboxes.items())]
        ends = [s.end("shutdown") for s, _ in live if s is not None]
        if ends:  # every final decoded and queued to its client before the socket closes
            await asyncio.gather(*ends, return_exceptions=True)
            try:
                async with asyncio.timeout(5):
                    while any(not box.empty() for _, box in live):
                        await asyncio.sleep(0.02)
            except TimeoutError:
                log.warning("ingest: clients too slow to take their last finals before shutdown (they are in Redis)")
        for ws in list(self._server.connections):
            try:
                await ws.close(proto.CLOSE_GOING_AWAY, "server shutting down")
            except Exception:  # already gone
                pass
        await self._server.wait_closed()

    # --- one connection ----------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        session: CallSession | None = None
        outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX_MAX)
        sender = asyncio.create_task(self._send_loop(ws, outbox))
        reason = "disconnect"
        close: tuple[int, str] | None = None
        try:
            start = await self._read_start(ws)
            decoder = StreamDecoder(start.encoding, start.sample_rate_hz, len(start.channels) if start.layout == "interleaved" else 1)
            per_channel = (
                [StreamDecoder(start.encoding, start.sample_rate_hz, 1) for _ in start.channels]
                if start.layout == "channel_prefixed"
                else None
            )
            started = CallStarted(start.call_id, start.channels, start.language, start.sample_rate_hz, start.encoding, start.metadata)
            if self._stopping:
                raise ProtocolError("server shutting down; retry on another worker", proto.CLOSE_TRY_LATER)
            try:
                session = await self.pipeline.open_call(started, self._listener(outbox), source=self._sources.get(ws, ""))
            except CallIdInUse as exc:
                self.refused += 1
                raise ProtocolError(str(exc), proto.CLOSE_CALL_ID_IN_USE) from exc
            except CapacityError as exc:
                self.refused += 1
                raise ProtocolError(str(exc), proto.CLOSE_TRY_LATER) from exc
            self._outboxes[session.call_id] = outbox
            while True:
                msg = await asyncio.wait_for(ws.recv(), timeout=self.cfg.idle_timeout_s)
                if isinstance(msg, str):
                    req = proto.parse_text(msg)
                    if isinstance(req, proto.EndRequest):
                        reason = req.reason
                        close = (proto.CLOSE_NORMAL, "call ended")
                        break
                    raise ProtocolError("start sent twice on one connection", proto.CLOSE_POLICY)
                index, payload = proto.split_frame(msg, start.layout, len(start.channels))
                try:
                    if index is None:
                        for i, samples in enumerate(decoder.decode(payload)):
                            await session.push(i, samples)
                    else:
                        await session.push(index, per_channel[index].decode(payload)[0])  # type: ignore[index]
                except AudioFormatError as exc:
                    raise ProtocolError(str(exc), proto.CLOSE_INVALID) from exc
        except ProtocolError as exc:
            log.warning("ingest %s: %s", session.call_id if session else "-", exc)
            reason, close = "error", (exc.close_code, str(exc)[:120])
        except asyncio.TimeoutError:
            reason, close = "timeout", (proto.CLOSE_POLICY, f"no data for {self.cfg.idle_timeout_s:.0f} s")
        except ConnectionClosed as exc:
            if self._stopping:
                reason = "shutdown"
            else:
                reason = "disconnect"
                log.info("ingest %s: client went away (%s)", session.call_id if session else "-", exc.rcvd)
        except Exception:
            log.exception("ingest %s: internal error", session.call_id if session else "-")
            reason, close = "error", (proto.CLOSE_INTERNAL, "internal error")
        finally:
            if session is not None:
                await session.end(reason)  # flushes every final of the call, also on disconnect
                self._outboxes.pop(session.call_id, None)
                publisher = self.pipeline.sink
                if getattr(publisher, "degraded", False):  # the client must not take "ended" for "stored"
                    pending = publisher.pending(session.call_id)
                    if pending:
                        await outbox.put(proto.storage_message(False, pending, session.call_id))
            await outbox.put(None)
            await sender
            if close is not None:
                if close[0] != proto.CLOSE_NORMAL:
                    try:
                        await ws.send(_error_json(close[0], close[1]))
                    except ConnectionClosed:
                        pass
                await ws.close(*close)

    async def _read_start(self, ws: ServerConnection) -> proto.StartRequest:
        msg = await asyncio.wait_for(ws.recv(), timeout=self.cfg.idle_timeout_s)
        if not isinstance(msg, str):
            raise ProtocolError("first message must be the JSON start message, not audio", proto.CLOSE_UNSUPPORTED)
        req = proto.parse_text(msg)
        if not isinstance(req, proto.StartRequest):
            raise ProtocolError("first message must be start", proto.CLOSE_POLICY)
        return req

    def _listener(self, outbox: asyncio.Queue[str | None]):
        async def on_event(event: Event) -> None:
            text = to_json(event)
            if isinstance(event, Transcript) and not event.is_final:
                if outbox.full():
                    return  # a slow client loses partials, never finals
                outbox.put_nowait(text)
            else:
                await outbox.put(text)

        return on_event

    async def _send_loop(self, ws: ServerConnection, outbox: asyncio.Queue[str | None]) -> None:
        while (text := await outbox.get()) is not None:
            try:
                await ws.send(text)
            except ConnectionClosed:
                # keep draining so producers never block on a dead client
                continue


def _peer(connection: ServerConnection) -> str:
    addr = connection.remote_address
    return f"{addr[0]}:{addr[1]}" if addr else "?"


def _error_json(code: int, reason: str) -> str:
    import json

    return json.dumps({"type": "error", "code": code, "reason": reason}, ensure_ascii=False)


__all__ = ["IngestServer"]
