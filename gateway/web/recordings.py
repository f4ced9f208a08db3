"""Replay routes: a call's recording for the QA page (docs/recording.md "Replay"; the logic is gateway/recordings).

* ``GET /api/v1/calls/{call_id}/recording`` (qa, supervisor, admin; bearer token): the recording's facts, the
  rendition this role hears, and a short-lived signed link to its audio.
* ``GET|HEAD /api/v1/calls/{call_id}/recording/audio``: the audio, with HTTP range requests. Authorized by that
  signed link (what the page's ``<audio>`` element fetches) or by a bearer token of the same roles (API clients).

Agents play no recordings: an agent's token gets 403 from both routes.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, AsyncIterator
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from callscribe.gateway.recordings import (HEARS, AudioLinks, LinkError, Playable, RangeNotSatisfiable, Replay, ReplayError,
                                           byte_range, call_finals)
from callscribe.gateway.recordings.links import KEY_PURPOSE

from .auth import Principal

if TYPE_CHECKING:
    from .app import Api

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
"""Bytes read from the store per step of a response (an S3 store: one ranged GET each)."""


class RecordingRoutes:
    def __init__(self, api: "Api") -> None:
        self.api = api
        self.replay = Replay(api.cfg)
        self.links = AudioLinks(api.gw.auth.derived_key(KEY_PURPOSE))

    async def summary(self, who: Principal, call_id: str, started_at_ms: int) -> dict[str, Any] | None:
        """The call detail's ``recording``: None when the call has none or ``who`` may not play recordings."""
        if who.role not in HEARS:
            return None
        return await self.replay.summary(call_id, started_at_ms)

    async def playable(self, role: str, call_id: str, started_at_ms: int) -> Playable:
        gw = self.api.gw
        try:
            return await self.replay.playable(role, call_id, started_at_ms,
                                              lambda: call_finals(gw.redis, self.api.cfg, gw.store, call_id))
        except ReplayError as exc:
            raise HTTPException(exc.status, exc.detail) from exc

    def mount(self, app: FastAPI) -> None:
        api = self.api
        hearers = api.allow("qa", "supervisor")

        @app.get("/api/v1/calls/{call_id}/recording", tags=["recordings"])
        async def recording(call_id: str, who: Principal = Depends(hearers)) -> dict[str, Any]:
            """The call's recording: state, format, length, channels, the time map (transcript time of each channel ->
            recording time), the rendition this role hears and its masked spans, and ``url``: a signed link to the
            audio that works for ``ttl_s`` seconds. 404 no recording; 409 still recording, or no redacted rendition
            can be made; agents 403."""
            facts = await api.own_call(who, call_id)
            p = await self.playable(who.role, call_id, facts["started_at_ms"])
            link = self.links.issue(call_id, facts["started_at_ms"], p.rendition, who.role, who.sub)
            log.info("audio link for call %s (%s) issued to %s:%s", call_id, p.rendition, who.role, who.sub)
            m = p.manifest
            return {
                "call_id": call_id, "state": m.state, "format": m.format, "content_type": p.media_type,
                "duration_ms": m.duration_ms, "channels": list(m.channels), "sample_rate_hz": m.sample_rate_hz,
                "time_map": {name: [list(s) for s in (m.time_map.shifts[i] if i < len(m.time_map.shifts) else ())]
                             for i, name in enumerate(m.channels)},
                "rendition": p.rendition,
                "redacted_spans": [{"start_ms": s.start_ms, "end_ms": s.end_ms, "kind": s.kind}
                                   for s in (m.redacted_spans if p.rendition == "redacted" else ())],
                "url": f"/api/v1/calls/{quote(call_id, safe='')}/recording/audio?{urlencode(self.links.query(link))}",
                "expires_at_ms": link.exp * 1000, "ttl_s": self.links.ttl_s,
            }

        @app.get("/api/v1/calls/{call_id}/recording/audio", tags=["recordings"], response_class=Response,
                 responses={200: {"content": {"audio/ogg": {}, "audio/flac": {}}}, 206: {"description": "Partial Content"},
                            416: {"description": "Range Not Satisfiable"}})
        async def audio(
            request: Request, call_id: str,
            t: str | None = Query(None, max_length=20), r: str | None = Query(None, max_length=20),
            role: str | None = Query(None, max_length=20), sub: str | None = Query(None, max_length=1000),
            exp: str | None = Query(None, max_length=20), sig: str | None = Query(None, max_length=100),
            range_: str | None = Header(None, alias="Range", max_length=200),
            creds: HTTPAuthorizationCredentials | None = Depends(api._bearer),
        ) -> Response:
            """The audio of the rendition the caller's role hears (audio/ogg or audio/flac), with range requests
            (206, ``Content-Range``; 416 for a range it cannot serve). Authorized by the signed link from
            ``GET .../recording`` (t, r, role, sub, exp, sig; altered or expired: 403) or a bearer token of qa,
            supervisor or admin."""
            link = {"t": t, "r": r, "role": role, "sub": sub, "exp": exp, "sig": sig}
            if any(link.values()):  # a signed link is judged by its signature alone, whatever token comes with it
                try:
                    signed = self.links.verify(call_id, link)
                except LinkError as exc:
                    raise HTTPException(403, str(exc)) from exc
                if signed.role not in HEARS:
                    raise HTTPException(403, f"role {signed.role} may not play recordings")
                who_role, started_at_ms, max_age = signed.role, signed.started_at_ms, max(0, signed.exp - int(time.time()))
                p = await self.playable(who_role, call_id, started_at_ms)
                if p.rendition != signed.rendition:  # the policy changed since the link was issued
                    raise HTTPException(403, "this audio link is for another rendition than this role now hears: "
                                             "ask GET /api/v1/calls/{id}/recording for a fresh one")
                cache = f"private, max-age={max_age}"
            else:
                who = api.http_principal(creds, ("qa", "supervisor"))
                facts = await api.own_call(who, call_id)
                p = await self.playable(who.role, call_id, facts["started_at_ms"])
                cache = "private, no-store"
            return await self.respond(request, call_id, p, range_, cache)

        # HEAD: the same answer without the body (one OpenAPI operation: the GET)
        app.add_api_route("/api/v1/calls/{call_id}/recording/audio", audio, methods=["HEAD"], include_in_schema=False)

    async def respond(self, request: Request, call_id: str, p: Playable, range_header: str | None, cache: str) -> Response:
        try:
            size = (await self.replay.stat(p.key)).size
        except ReplayError as exc:
            raise HTTPException(exc.status, exc.detail) from exc
        ext = p.key.rsplit(".", 1)[-1] if "." in p.key.rsplit("/", 1)[-1] else "bin"
        headers = {"Accept-Ranges": "bytes", "Cache-Control": cache, "X-Callscribe-Rendition": p.rendition,
                   "Content-Disposition": f"inline; filename=\"{quote(call_id, safe='')}-{p.rendition}.{ext}\""}
        try:
            span = byte_range(range_header, size)
        except RangeNotSatisfiable as exc:
            return JSONResponse({"detail": str(exc)}, status_code=416,
                                headers={**headers, "Content-Range": f"bytes */{exc.size}"})
        first, last = span if span else (0, size - 1)
        length = max(0, last - first + 1)
        headers["Content-Length"] = str(length)
        status = 200
        if span:
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        if request.method == "HEAD" or length == 0:
            return Response(b"", status_code=status, headers=headers, media_type=p.media_type)
        if length <= CHUNK:  # the usual case: one read, one answer (a read error becomes a clean 503)
            try:
                body = await self.replay.read(p.key, first, length)
            except Exception as exc:  # noqa: BLE001 - store errors of either store kind
                raise HTTPException(503, f"recording store unavailable: {exc}") from exc
            headers["Content-Length"] = str(len(body))
            return Response(body, status_code=status, headers=headers, media_type=p.media_type)
        return StreamingResponse(self._chunks(p.key, first, length), status_code=status, headers=headers,
                                 media_type=p.media_type)

    async def _chunks(self, key: str, first: int, length: int) -> AsyncIterator[bytes]:
        pos, end = first, first + length
        while pos < end:
            data = await self.replay.read(key, pos, min(CHUNK, end - pos))
            if not data:  # the object shrank under us (deleted by retention mid-answer): stop, the client retries
                log.warning("recording object %s ended at %d of %d", key, pos, end)
                return
            yield data
            pos += len(data)


__all__ = ["RecordingRoutes"]
