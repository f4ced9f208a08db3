"""WebSocket ingest server: one connection = one call (docs/protocol.md).

The handler only moves bytes: protocol parsing is in :mod:`.protocol`, audio decoding in
:mod:`callscribe.audio`, everything else in the pipeline. A bad message closes *that* connection with a
code and reason; the call is still ended cleanly (its finals flushed to Redis) and no other call notices.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus


from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from callscribe.audio import StreamDecoder
from callscribe.config import Config
from callscribe.errors import AudioFormatError, CapacityError, ProtocolError
from callscribe.events import CallStarted, Event, Transcript, to_json
from callscribe.pipeline import CallSession, Pipeline

from . import protocol as proto

log = logging.getLogger(__name__)
OUTBOX_MAX = 1000


class IngestServer:
    def __init__(self, cfg: Config, pipeline: Pipeline) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self._server: Server | None = None
        self.connections = 0
        self.refused = 0
        self.metrics = None  # a callscribe.metrics.ServiceCollector, set by the service

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
        )

    def _http(self, connection: ServerConnection, request):
        """Plain HTTP on the ingest port: ``/health`` and ``/metrics`` (Prometheus); else go on to WebSocket."""
        if request.path == "/health":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if request.path == "/metrics" and self.metrics is not None:
            from callscribe.metrics import CONTENT_TYPE, render

            response = connection.respond(HTTPStatus.OK, render(self.metrics).decode())
            response.headers["Content-Type"] = CONTENT_TYPE
            return response
        return None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://{self.cfg.host}:{self.port}/v1/ingest"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
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
            try:
                session = await self.pipeline.open_call(started, self._listener(outbox))
            except CapacityError as exc:
                self.refused += 1
                raise ProtocolError(str(exc), proto.CLOSE_TRY_LATER) from exc
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
            reason = "disconnect"
            log.info("ingest %s: client went away (%s)", session.call_id if session else "-", exc.rcvd)
        except Exception:
            log.exception("ingest %s: internal error", session.call_id if session else "-")
            reason, close = "error", (proto.CLOSE_INTERNAL, "internal error")
        finally:
            if session is not None:
                await session.end(reason)  # flushes every final of the call, also on disconnect
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


def _error_json(code: int, reason: str) -> str:
    import json

    return json.dumps({"type": "error", "code": code, "reason": reason}, ensure_ascii=False)


__all__ = ["IngestServer"]
