"""The gateway's HTTP and WebSocket API (FastAPI), and the pages. The contract is docs/gateway.md.

Every data route declares its roles with :func:`Api.allow` (admin may do everything); WebSockets check the
same through :meth:`Api.ws_principal`, which reads the token from the ``bearer.<token>`` subprotocol that
browsers can send. Blocking store calls run in a thread so a slow search never stalls live captions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from callscribe.errors import SchemaError
from callscribe.events import AssistTelemetry, CallbackDone, CallStarted, Transcript, from_fields, now_ms, to_dict, to_fields
from callscribe.gateway.assist import (StatusBody, TelemetryBody, TicketBody, TicketLabels, adoption,
                                       build_ticket, caller_history, draft_now, find_ticket, labels_for, record_status,
                                       record_telemetry, send_ticket_webhook, status_event, submit_ticket, ticket_id_for,
                                       ticket_json)
from callscribe.gateway.qa import (AppealBody, DecisionBody, OverrideBody, ReviewError, appeal_json, decide, override,
                                   override_json, scorecard_json, scorecard_row)
from callscribe.gateway.qa import appeal as file_appeal
from callscribe.gateway.store import CallRecord, QueryError, SearchQuery, Utterance
from callscribe.gateway.store.scores import APPEAL_STATUSES, ScoreQuery
from callscribe.gateway.store.query import highlight, parse_query
from callscribe.gateway.webhooks import load_secret, verify_signature
from callscribe.pii import for_role, number_for, text_for
from callscribe.stream import keys

from .auth import AuthError, Principal
from .hardening import SecurityHeaders
from .recordings import RecordingRoutes

if TYPE_CHECKING:  # server.py imports this module
    from .server import WebGateway

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
PAGES = {"/agent": "agent.html", "/wallboard": "wallboard.html", "/qa": "qa.html", "/scores": "scores.html", "/reports": "reports.html"}
_STREAM_ID = re.compile(r"\d{1,20}(-\d{1,20})?")
_CALL_ID = re.compile(r"[\w.:@+-]{1,128}", re.ASCII)
_APPEAL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
_QUESTION = r"^[A-Za-z0-9_.\-]{1,64}$"
_TICKET_ID = re.compile(r"[A-Za-z0-9_.:@+-]{1,200}")  # a client's ticket_id, or {call_id}:{type} (at most 200)
DETAIL_EVENTS = ("alert", "intent", "call_flag", "call_summary", "dtmf")
WS_PROTOCOL = "callscribe.v1"
PING_S = 15.0
PING = '{"type":"ping"}'
StoredCall = Optional[tuple[CallRecord, list[Utterance]]]  # what TranscriptStore.call answers
_UNREAD: Any = object()


class TokenRequest(BaseModel):
    role: str = Field(description="agent | supervisor | qa | admin")
    sub: str = Field(description="who the token is for (a person or a screen)")
    agent_id: str = Field("", description="agents: their agent id (default: sub)")
    ttl_h: float | None = Field(None, description="lifetime in hours (default: token_ttl_h)")


class WsClosed(Exception):
    """The WebSocket was closed by us for a reason already sent to the client."""


class RoleError(Exception):
    """A valid token whose role may not use this (HTTP 403, WebSocket 4403)."""


def create_app(gw: "WebGateway") -> FastAPI:
    api = Api(gw)
    app = FastAPI(title="callscribe gateway", version="1", summary="Live captions, supervisor feed and transcript search",
                  description="See docs/gateway.md for roles, shapes and WebSocket messages.",
                  docs_url=None, redoc_url=None)  # their UIs load from a CDN; pages must work offline
    api.mount(app)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Any, exc: RequestValidationError) -> Response:
        # FastAPI's own 422, but ASCII-escaped: a JSON body may carry a lone surrogate ("\ud800") that the error
        # echoes as the invalid input, and UTF-8 cannot encode it (the default handler answered HTTP 500)
        body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
        return Response(body, status_code=422, media_type="application/json")

    app.add_middleware(SecurityHeaders)  # CSP, no framing, nosniff on every response (hardening.py)
    return app


class Api:
    def __init__(self, gw: "WebGateway") -> None:
        self.gw = gw
        self.cfg = gw.cfg
        self._bearer = HTTPBearer(auto_error=False)
        self._analytics: Any = None
        self._analytics_lock = asyncio.Lock()
        self._labels = TicketLabels(self.cfg.assist_packs)
        self._webhook_secret: bytes | None = None
        self.recordings = RecordingRoutes(self)  # replay: gateway/web/recordings.py

    # --- auth --------------------------------------------------------------------------------------------
    def authorize(self, token: str | None, roles: tuple[str, ...]) -> Principal:
        """Who holds ``token``, if one of ``roles`` (admin always is): :class:`AuthError` or :class:`RoleError`."""
        who = self.gw.auth.verify(token)
        if who.role != "admin" and who.role not in roles:
            raise RoleError(f"role {who.role} may not use this")
        return who

    def http_principal(self, creds: HTTPAuthorizationCredentials | None, roles: tuple[str, ...]) -> Principal:
        """:meth:`authorize` for HTTP: 401 without a valid token, 403 for another role."""
        try:
            return self.authorize(creds.credentials if creds else None, roles)
        except AuthError as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
        except RoleError as exc:
            raise HTTPException(403, str(exc)) from exc

    def allow(self, *roles: str) -> Callable[..., Awaitable[Principal]]:
        """A dependency that admits these roles (and admin)."""

        async def dependency(creds: HTTPAuthorizationCredentials | None = Depends(self._bearer)) -> Principal:
            return self.http_principal(creds, roles)

        return dependency

    def reporter(self) -> Callable[..., Awaitable[str]]:
        """A dependency for the routes other systems call back: a request signed as our webhooks are
        (``X-Callscribe-Timestamp`` + ``X-Callscribe-Signature``, HMAC-SHA256 of ``"<timestamp>.<raw body>"`` with
        ``webhook_secret``, docs/webhooks.md) or a bearer token of role ``integration`` (or admin). A request that
        carries a signature is judged by it alone: a bad one is 401 whatever token comes with it. Returns who
        reported: ``signature`` or ``<role>:<subject>``."""

        async def dependency(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(self._bearer)) -> str:
            signature = request.headers.get("x-callscribe-signature")
            if signature is None:
                who = self.http_principal(creds, ("integration",))
                return f"{who.role}:{who.sub}"
            if self._webhook_secret is None:
                self._webhook_secret = await asyncio.to_thread(load_secret, self.cfg)
            body = await request.body()  # the raw bytes (FastAPI has read them already; this is its cache)
            if not verify_signature(self._webhook_secret, request.headers.get("x-callscribe-timestamp", ""), body, signature):
                raise HTTPException(401, "bad signature: X-Callscribe-Signature must be sha256=HMAC-SHA256(webhook_secret, "
                                         "'<X-Callscribe-Timestamp>.<body>'), timestamp within 5 minutes")
            return "signature"

        return dependency

    async def ws_principal(self, ws: WebSocket, *roles: str) -> Principal:
        """Accept the socket (so the client sees our close code), then check its token and role."""
        offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        token = next((p[len("bearer."):] for p in offered if p.startswith("bearer.")), None)
        header = ws.headers.get("authorization", "")
        if token is None and header.lower().startswith("bearer "):
            token = header[7:].strip()
        await ws.accept(subprotocol=WS_PROTOCOL if WS_PROTOCOL in offered else None)
        try:
            return self.authorize(token, roles)
        except AuthError as exc:
            await _close(ws, 4401, str(exc))
            raise WsClosed from exc
        except RoleError as exc:
            await _close(ws, 4403, str(exc))
            raise WsClosed from exc

    async def stored_call(self, call_id: str) -> StoredCall:
        return await asyncio.to_thread(self.gw.store.call, call_id)

    async def call_owner(self, call_id: str, stored: StoredCall = _UNREAD) -> str | None:
        """The agent of a call (board, else store, else its stream's call_started); None when the call is
        unknown. ``stored``: the store's answer, when the caller has already asked it."""
        info = self.gw.board.state.calls.get(call_id)
        if info is not None:
            return info.agent_id
        if stored is _UNREAD:
            stored = await self.stored_call(call_id)
        if stored is not None:
            return stored[0].agent_id
        first = await self.gw.redis.xrange(keys.call_stream(self.cfg, call_id), count=1)
        if not first:
            return None
        try:
            started = from_fields(first[0][1])
        except SchemaError:
            return ""
        return started.metadata.get("agent_id", "") if isinstance(started, CallStarted) else ""

    def may_see(self, who: Principal, owner: str) -> bool:
        return who.role != "agent" or (bool(owner) and owner == who.agent_id)

    def for_reader(self, who: Principal, text: str) -> str:
        """Text as this role may read it (the one PII policy: callscribe/pii.py)."""
        return text_for(who.role, text, self.cfg.redact_stored_text)

    def view(self, who: Principal, obj: Any) -> Any:
        """Any event / record / message as this role may see it (callscribe/pii.py): every exit calls this."""
        return for_role(who.role, obj, self.cfg.redact_stored_text)

    async def analytics(self) -> Any:
        """The call analytics (keyword/analyzer.py, as the worker builds it from the config), built once on first
        use (a second or so: rule packs and intent catalog load with it): ticket drafts replay calls through it."""
        async with self._analytics_lock:
            if self._analytics is None:
                from callscribe.keyword.worker import analytics_from_config

                self._analytics = await asyncio.to_thread(analytics_from_config, self.cfg)
        return self._analytics

    async def assist(self) -> Any:
        """The agent assist (keyword/assist) over the configured packs, attached to :meth:`analytics`."""
        from callscribe.keyword.assist import assist_for

        analytics = await self.analytics()
        return assist_for(analytics, self.cfg.assist_packs)

    async def call_facts(self, call_id: str, stored: StoredCall = _UNREAD) -> dict[str, Any] | None:
        """Agent, caller (as stored), intent, start time and repeat_of of a call (board, else store, else its
        stream's call_started); None when the call is unknown."""
        info = self.gw.board.state.calls.get(call_id)
        if info is not None:
            return {"agent_id": info.agent_id, "caller": info.caller, "intent": info.intent,
                    "started_at_ms": info.started_at_ms, "repeat_of": list(info.repeat_of)}
        if stored is _UNREAD:
            stored = await self.stored_call(call_id)
        if stored is not None:
            r = stored[0]
            return {"agent_id": r.agent_id, "caller": r.caller, "intent": r.intent, "started_at_ms": r.started_at_ms,
                    "repeat_of": []}
        first = await self.gw.redis.xrange(keys.call_stream(self.cfg, call_id), count=1)
        if not first:
            return None
        try:
            started = from_fields(first[0][1])
        except SchemaError:
            started = None
        if not isinstance(started, CallStarted):
            return {"agent_id": "", "caller": "", "intent": "", "started_at_ms": 0, "repeat_of": []}
        md = started.metadata
        return {"agent_id": md.get("agent_id", ""), "caller": md.get("caller", ""), "intent": "",
                "started_at_ms": started.started_at_ms, "repeat_of": []}

    async def own_call(self, who: Principal, call_id: str) -> dict[str, Any]:
        """:meth:`call_facts` of a call ``who`` may work on (an agent: their own), else HTTP 404 alike for
        another agent's call and a call that does not exist."""
        facts = await self.call_facts(call_id) if _CALL_ID.fullmatch(call_id) else None
        if facts is None or not self.may_see(who, facts["agent_id"]):
            raise HTTPException(404, "no such call")
        return facts

    async def history(self, who: Principal, call_id: str, facts: dict[str, Any]) -> dict[str, Any]:
        """The caller's history message for a call, as ``who`` may see it (gateway/assist/history.py)."""
        body = await asyncio.to_thread(caller_history, self.gw.store, call_id, facts["caller"],
                                       facts["started_at_ms"] or now_ms(), facts["repeat_of"], self.cfg.assist_history_days)
        return self.view(who, {"type": "caller_history", **body})

    async def tickets_view(self, who: Principal, tickets) -> list[dict[str, Any]]:
        """Tickets as ``who`` may see them, each with its fields' labels (gateway/assist/labels.py)."""
        tickets = list(tickets)
        labels = await asyncio.to_thread(self._labels.get) if tickets else {}
        return [ticket_json(t, who.role, self.cfg.redact_stored_text, labels_for(labels, t.type, t.fields)) for t in tickets]

    # --- routes ----------------------------------------------------------------------------------------------
    def mount(self, app: FastAPI) -> None:
        gw = self.gw
        any_role = self.allow("agent", "supervisor", "qa")
        supervisors = self.allow("supervisor")
        readers = self.allow("qa", "supervisor")
        details = self.allow("qa", "supervisor", "agent")
        agent_or_supervisor = self.allow("agent", "supervisor")

        @app.get("/health", tags=["ops"])
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        @app.get("/ready", tags=["ops"])
        async def ready() -> JSONResponse:
            detail = await gw.not_ready()
            if detail:
                return JSONResponse({"status": "not ready", "detail": detail}, status_code=503)
            return JSONResponse({"status": "ok"})

        @app.get("/metrics", tags=["ops"], response_class=Response)
        async def metrics(creds: HTTPAuthorizationCredentials | None = Depends(self._bearer)) -> Response:
            if not self.cfg.metrics_public:
                self.http_principal(creds, ())  # admin only
            body, content_type = gw.metrics.render()
            return Response(body, media_type=content_type)

        @app.get("/api/v1/me", tags=["auth"])
        async def me(who: Principal = Depends(any_role)) -> dict[str, Any]:
            return who.to_dict()

        @app.post("/api/v1/tokens", tags=["auth"])
        async def mint(body: TokenRequest, who: Principal = Depends(self.allow())) -> dict[str, Any]:
            # JSON may carry lone surrogates ("\ud800") and control characters: a token naming such a
            # subject could not be answered (its /me would not encode: HTTP 500) nor audited in Redis.
            for name in ("sub", "agent_id"):
                if not getattr(body, name).isprintable():
                    raise HTTPException(400, f"{name} must be printable text (no control characters or lone surrogates)")
            try:
                token, exp = gw.auth.mint(body.role, body.sub, body.agent_id, body.ttl_h)
            except AuthError as exc:
                raise HTTPException(400, str(exc)) from exc
            log.info("token minted by %s for %s (%s)", who.sub, body.sub, body.role)
            return {"token": token, "exp": exp}

        @app.get("/api/v1/intents", tags=["calls"])
        async def intents(who: Principal = Depends(any_role)) -> dict[str, Any]:
            return {"intents": [{"id": i, "name": n} for i, n in gw.intent_names.items()]}

        @app.get("/api/v1/calls/live", tags=["supervisor"])
        async def live_calls(who: Principal = Depends(supervisors)) -> dict[str, Any]:
            return self.view(who, {"calls": gw.board.state.live_calls()})

        @app.get("/api/v1/agents/me/call", tags=["agent"])
        async def my_call(who: Principal = Depends(self.allow("agent"))) -> dict[str, Any]:
            return self.view(who, {"call": gw.board.state.agent_call(who.agent_id) if who.agent_id else None})

        @app.get("/api/v1/alerts", tags=["supervisor"])
        async def alerts(limit: int = Query(100, ge=1, le=500), who: Principal = Depends(supervisors)) -> dict[str, Any]:
            return self.view(who, {"alerts": list(gw.board.state.alerts)[:limit]})

        @app.get("/api/v1/callbacks", tags=["supervisor"])
        async def callbacks(who: Principal = Depends(supervisors)) -> dict[str, Any]:
            return self.view(who, {"callbacks": gw.board.state.callback_list()})

        @app.post("/api/v1/callbacks/{call_id}/done", tags=["supervisor"])
        async def callback_done(call_id: str, who: Principal = Depends(supervisors)) -> dict[str, Any]:
            if call_id not in gw.board.state.callbacks:
                raise HTTPException(404, f"call {call_id} is not in the callback queue")
            event = CallbackDone(call_id, who.sub)
            try:
                await gw.redis.xadd(keys.callbacks_stream(self.cfg), to_fields(event),
                                    maxlen=self.cfg.global_stream_maxlen, approximate=True)
            except RedisError as exc:
                raise HTTPException(503, f"Redis unavailable: {exc}") from exc
            return {"ok": True}

        @app.post("/api/v1/calls/{call_id}/ticket/draft", tags=["assist"])
        async def ticket_draft(call_id: str, who: Principal = Depends(agent_or_supervisor)) -> dict[str, Any]:
            """The one-click ticket draft of the call now (keyword/assist/ticket.py), and ``submit``: the body
            for ``POST /api/v1/calls/{call_id}/tickets`` prefilled from it (edit, then post)."""
            await self.own_call(who, call_id)
            try:
                draft = await draft_now(gw.redis, self.cfg, await self.analytics(), await self.assist(), call_id)
            except RedisError as exc:
                raise HTTPException(503, f"Redis unavailable: {exc}") from exc
            if draft is None:
                raise HTTPException(409, "no transcript of this call to draft a ticket from")
            submit = {"ticket_id": f"{call_id}:{draft.ticket_type}", "type": draft.ticket_type, "priority": draft.priority,
                      "title": draft.title, "subtype": draft.subtype, "fields": dict(draft.fields), "summary": list(draft.summary)}
            return self.view(who, {"draft": to_dict(draft), "submit": submit})

        @app.post("/api/v1/calls/{call_id}/tickets", tags=["assist"])
        async def submit(call_id: str, body: TicketBody, who: Principal = Depends(agent_or_supervisor)) -> dict[str, Any]:
            """Submit a ticket (idempotent by ``ticket_id``, default ``{call_id}:{type}``): the tickets stream, the
            store, the supervisor's callback queue and the ticket webhook."""
            facts = await self.own_call(who, call_id)
            if len(ticket_id_for(call_id, body)) > 200:
                raise HTTPException(422, "ticket_id too long: give a shorter ticket_id")
            ticket = build_ticket(self.cfg, call_id, body, who.sub, facts["agent_id"], facts["caller"], facts["intent"])
            try:
                created = await submit_ticket(gw.redis, self.cfg, ticket)
                delivery = await send_ticket_webhook(gw.redis, self.cfg, ticket, getattr(gw, "webhooks", None))
            except RedisError as exc:
                raise HTTPException(503, f"Redis unavailable, submit again: {exc}") from exc
            return {"ticket": ticket_json(ticket, who.role, self.cfg.redact_stored_text), "created": created,
                    "webhook_delivery": delivery}

        @app.post("/api/v1/tickets/{ticket_id}/status", tags=["assist"])
        async def ticket_status(ticket_id: str, body: StatusBody, by: str = Depends(self.reporter())) -> dict[str, Any]:
            """The ticketing system reports a ticket's status (gateway/assist/status.py; docs/webhooks.md): signed
            like our webhooks, or with an integration token. Idempotent: a repeat answers ``unchanged``, a change
            older than the last one reported ``stale`` (both 200, nothing written); 404 for an unknown ticket."""
            ref = await find_ticket(gw.redis, self.cfg, gw.store, ticket_id) if _TICKET_ID.fullmatch(ticket_id) else None
            if ref is None:
                raise HTTPException(404, "no such ticket")
            event = status_event(self.cfg, ref, body, by)
            try:
                result = await record_status(gw.redis, self.cfg, ref, event)
            except RedisError as exc:
                raise HTTPException(503, f"Redis unavailable, report again: {exc}") from exc
            return {"ticket_id": ref.ticket_id, "status": event.status, "changed_at_ms": event.changed_at_ms,
                    "result": result}

        @app.get("/api/v1/calls/{call_id}/history", tags=["assist"])
        async def call_history(call_id: str, who: Principal = Depends(agent_or_supervisor)) -> dict[str, Any]:
            """The caller's calls of the ``assist_history_days`` (30) before this one, what was left pending, the
            banner data."""
            return await self.history(who, call_id, await self.own_call(who, call_id))

        @app.post("/api/v1/assist/events", tags=["assist"])
        async def assist_event(body: TelemetryBody, who: Principal = Depends(self.allow("agent"))) -> dict[str, Any]:
            """The agent desk reports a card shown / clicked / used / dismissed (on the agent's own call)."""
            facts = await self.own_call(who, body.call_id)
            event = AssistTelemetry(body.call_id, body.card_kind, body.card_id, body.action,
                                    who.agent_id or facts["agent_id"])
            try:
                await record_telemetry(gw.redis, self.cfg, event)
            except RedisError as exc:
                raise HTTPException(503, f"Redis unavailable: {exc}") from exc
            return {"ok": True}

        @app.get("/api/v1/reports/assist_adoption", tags=["supervisor"])
        async def assist_adoption(since: str | None = None, until: str | None = None,
                                  who: Principal = Depends(supervisors)) -> dict[str, Any]:
            """Adoption of the assist cards (used / shown, clicked / shown) per card and per agent."""
            return await asyncio.to_thread(adoption, gw.store, _when(since, "since"), _when(until, "until"))

        @app.get("/api/v1/stats/intents", tags=["supervisor"])
        async def intent_stats(window_s: int = Query(3600, ge=60, le=86400), bucket_s: int = Query(300, ge=60, le=3600),
                               who: Principal = Depends(supervisors)) -> dict[str, Any]:
            return gw.board.state.intent_series(window_s, bucket_s)

        @app.get("/api/v1/assist/knowledge", tags=["assist"])
        async def assist_knowledge(q: str = Query("", max_length=500, description="the agent's question, free text"),
                                   lang: str = Query("zh", pattern="^(zh|en)$"), limit: int = Query(3, ge=1, le=10),
                                   who: Principal = Depends(self.allow("agent", "supervisor"))) -> dict[str, Any]:
            """The knowledge search box of the agent desk: the best answer cards of the assist packs
            (keyword/assist), best first, each with its cosine score and the threshold a live card needs."""
            assist = await self.assist()
            return {"q": q, "lang": lang, "cards": await asyncio.to_thread(_knowledge_cards, assist, q, lang, limit)}

        @app.get("/api/v1/search", tags=["search"])
        async def search(
            q: str = Query("", max_length=500, description='words (AND), OR, "phrase", -exclude, prefix*'),
            since: str | None = None, until: str | None = None, agent: str | None = None, queue: str | None = None,
            intent: str | None = None, flag: str | None = Query(None, pattern="^(unresolved|resolved)$"),
            alert: str | None = None, channel: str | None = Query(None, pattern="^(customer|agent|mixed)$"),
            score_min: float | None = Query(None, ge=0, le=100, description="QA scorecard: score at least"),
            score_max: float | None = Query(None, ge=0, le=100, description="QA scorecard: score at most"),
            answer_no: str | None = Query(None, pattern=_QUESTION, description="QA scorecard: this question answered no"),
            failed_critical: bool | None = Query(None, description="QA scorecard: a critical question failed (or not)"),
            limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0, le=100_000),
            who: Principal = Depends(readers),
        ) -> dict[str, Any]:
            query = SearchQuery(
                text=q, since_ms=_when(since, "since"), until_ms=_when(until, "until"), agent_id=agent or None,
                queue=queue or None, intent=intent or None, unresolved=None if flag is None else flag == "unresolved",
                alert=alert or None, channel=channel, score_min=score_min, score_max=score_max,
                answer_no=answer_no or None, failed_critical=failed_critical, limit=limit, offset=offset,
            )
            t0 = time.perf_counter()
            try:
                page = await asyncio.to_thread(gw.store.search, query)
            except QueryError as exc:
                raise HTTPException(400, str(exc)) from exc
            finally:
                gw.metrics.search_seconds.observe(time.perf_counter() - t0)
            terms = parse_query(q) if page.terms else []
            tickets: dict[str, list[dict[str, Any]]] = {}
            found = await asyncio.to_thread(gw.store.tickets, [h.call.call_id for h in page.hits])
            for t, shaped in zip(found, await self.tickets_view(who, found)):
                tickets.setdefault(t.call_id, []).append(shaped)
            hits = []
            for h in page.hits:
                text = self.for_reader(who, h.utterance.text)
                hits.append({
                    "call_id": h.utterance.call_id, **_utterance(h.utterance), "text": text,
                    "highlighted": h.highlighted if text == h.utterance.text else highlight(text, terms),
                    "call": {**_record(h.call, who.role), "tickets": tickets.get(h.call.call_id, [])},
                })
            return {"total": page.total, "offset": page.offset, "limit": page.limit, "took_ms": page.took_ms,
                    "terms": list(page.terms), "hits": hits}

        @app.get("/api/v1/calls/{call_id}", tags=["search"])
        async def call_detail(call_id: str, who: Principal = Depends(details)) -> dict[str, Any]:
            if not _CALL_ID.fullmatch(call_id):
                raise HTTPException(404, "no such call")
            stored = await self.stored_call(call_id)
            owner = await self.call_owner(call_id, stored)
            if owner is None or not self.may_see(who, owner):  # alike: whether a call exists is not told
                raise HTTPException(404, "no such call")
            return await self.detail(who, call_id, stored)

        @app.websocket("/ws/v1/calls/{call_id}/captions")
        async def captions(ws: WebSocket, call_id: str, after: str = "0") -> None:
            await self.guarded(ws, self.captions(ws, call_id, after))

        @app.websocket("/ws/v1/agent")
        async def agent_feed(ws: WebSocket, agent_id: str = "") -> None:
            await self.guarded(ws, self.agent_feed(ws, agent_id))

        @app.websocket("/ws/v1/supervisor")
        async def supervisor_feed(ws: WebSocket) -> None:
            await self.guarded(ws, self.supervisor_feed(ws))

        self.mount_scorecards(app)

        from .report_routes import mount_reports  # reports (callscribe/reports; docs/reports.md)

        mount_reports(self, app)
        self.recordings.mount(app)

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(STATIC / "index.html")

        for path, name in PAGES.items():
            app.add_api_route(path, _page(name), include_in_schema=False, methods=["GET"])
        if STATIC.is_dir():
            app.mount("/static", StaticFiles(directory=STATIC), name="static")

        @app.get("/favicon.ico", include_in_schema=False)
        async def favicon() -> RedirectResponse:
            return RedirectResponse("/static/favicon.svg")

    # --- QA scorecards (gateway/qa; docs/qa.md) -----------------------------------------------------------------
    async def scorecard_view(self, who: Principal, call_id: str) -> dict[str, Any]:
        """A call's scorecard with its audit trail and appeals, as ``who`` may see it; 404 when it has none."""
        scores = self.gw.store.scores

        def read() -> tuple[Any, Any, Any]:
            return scores.scorecard(call_id), scores.overrides(call_id), scores.appeals(call_id=call_id)

        card, overrides, appeals = await asyncio.to_thread(read)
        if card is None:
            raise HTTPException(404, "this call has no scorecard (yet)")
        return self.view(who, scorecard_json(card, overrides, appeals, who.role, self.cfg.redact_stored_text))

    def mount_scorecards(self, app: FastAPI) -> None:
        gw = self.gw
        reviewers = self.allow("qa", "supervisor")
        readers = self.allow("qa", "supervisor", "agent")
        redacted = self.cfg.redact_stored_text

        def scoped(who: Principal, agent: str | None) -> str | None:
            """The agent filter a request may use: an agent's own id whatever it asks (agent tokens always carry one:
            ``agent_id`` defaults to the subject; one without is refused)."""
            if who.role == "agent":
                if not who.agent_id:
                    raise HTTPException(403, "this agent token names no agent")
                return who.agent_id
            return agent or None

        async def reviewed(work: Awaitable[Any]) -> Any:
            try:
                return await work
            except ReviewError as exc:
                raise HTTPException(exc.status, exc.detail) from exc
            except RedisError as exc:
                raise HTTPException(503, f"Redis unavailable, send again: {exc}") from exc

        @app.get("/api/v1/calls/{call_id}/scorecard", tags=["qa"])
        async def call_scorecard(call_id: str, who: Principal = Depends(readers)) -> dict[str, Any]:
            """The call's scorecard: each answer in force (and the automatic one) with evidence and confidence, the
            score, the override audit trail, the appeals. Agents: their own calls only (404 alike otherwise)."""
            await self.own_call(who, call_id)
            return await self.scorecard_view(who, call_id)

        @app.post("/api/v1/calls/{call_id}/scorecard/overrides", tags=["qa"])
        async def score_override(call_id: str, body: OverrideBody, who: Principal = Depends(reviewers)) -> dict[str, Any]:
            """Override one answer with a reason (audited: who, when, why, old and new answer); the call is rescored.
            404 no scorecard / question, 409 already answered so."""
            await self.own_call(who, call_id)
            event = await reviewed(override(gw.redis, self.cfg, gw.store, call_id, body, who.sub, who.role))
            return {"override": self.view(who, override_json(event, who.role, redacted)),
                    "scorecard": await self.scorecard_view(who, call_id)}

        @app.post("/api/v1/calls/{call_id}/scorecard/appeals", tags=["qa"])
        async def score_appeal(call_id: str, body: AppealBody, who: Principal = Depends(self.allow("agent"))) -> dict[str, Any]:
            """An agent appeals one answer of their own call with a comment (409: one open appeal per question)."""
            facts = await self.own_call(who, call_id)
            event = await reviewed(file_appeal(gw.redis, self.cfg, gw.store, call_id, body, who.sub,
                                               who.agent_id or facts["agent_id"]))
            return {"appeal": self.view(who, appeal_json(event, who.role, redacted))}

        @app.get("/api/v1/scorecards", tags=["qa"])
        async def scorecards(
            agent: str | None = None, since: str | None = None, until: str | None = None,
            score_min: float | None = Query(None, ge=0, le=100), score_max: float | None = Query(None, ge=0, le=100),
            answer_no: str | None = Query(None, pattern=_QUESTION), failed_critical: bool | None = None,
            limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=100_000),
            who: Principal = Depends(readers),
        ) -> dict[str, Any]:
            """Scorecards of calls started in [since, until), newest first, filtered by agent, score range, a question
            answered no, a critical failure. Agents get their own calls' only."""
            q = ScoreQuery(agent_id=scoped(who, agent), since_ms=_when(since, "since"), until_ms=_when(until, "until"),
                           score_min=score_min, score_max=score_max, answer_no=answer_no or None,
                           failed_critical=failed_critical, limit=limit, offset=offset)
            total, rows = await asyncio.to_thread(gw.store.scores.scorecards, q)
            return {"total": total, "offset": offset, "limit": limit, "scorecards": self.view(who, [scorecard_row(r) for r in rows])}

        @app.get("/api/v1/appeals", tags=["qa"])
        async def appeals(status: str | None = Query(None, pattern="^(" + "|".join(APPEAL_STATUSES) + ")$"),
                          agent: str | None = None, who: Principal = Depends(readers)) -> dict[str, Any]:
            """Appeals, oldest first (``status=open``: the queue QA works through). Agents get their own only."""
            rows = await asyncio.to_thread(gw.store.scores.appeals, status, scoped(who, agent))
            return {"appeals": self.view(who, [appeal_json(a, who.role, redacted) for a in rows])}

        @app.post("/api/v1/appeals/{appeal_id}/decision", tags=["qa"])
        async def appeal_decision(appeal_id: str, body: DecisionBody, who: Principal = Depends(reviewers)) -> dict[str, Any]:
            """Accept (the answer is overridden, by default to the one asked for) or reject an open appeal, with a
            reason. 404 unknown, 409 decided already."""
            if not _APPEAL_ID.fullmatch(appeal_id):
                raise HTTPException(404, "no such appeal")
            event, done = await reviewed(decide(gw.redis, self.cfg, gw.store, appeal_id, body, who.sub, who.role))
            return {"appeal": self.view(who, appeal_json(event, who.role, redacted)),
                    "override": self.view(who, override_json(done, who.role, redacted)) if done else None,
                    "scorecard": await self.scorecard_view(who, event.call_id)}

        @app.get("/api/v1/reports/agent_scores", tags=["qa"])
        async def agent_scores(since: str | None = None, until: str | None = None, agent: str | None = None,
                               who: Principal = Depends(readers)) -> dict[str, Any]:
            """Agent scorecards over calls started in [since, until): calls, average score, critical failures, pass
            rate per question. Agents get their own."""
            return await asyncio.to_thread(gw.store.scores.agent_report, _when(since, "since"), _when(until, "until"),
                                           scoped(who, agent))

        @app.get("/api/v1/reports/calibration", tags=["qa"])
        async def calibration(since: str | None = None, until: str | None = None,
                              who: Principal = Depends(reviewers)) -> dict[str, Any]:
            """Per question: how often people overrode the automatic answer, and which way (yes->no, no->yes, ...)."""
            return await asyncio.to_thread(gw.store.scores.calibration, _when(since, "since"), _when(until, "until"))

    # --- call detail -------------------------------------------------------------------------------------------
    async def detail(self, who: Principal, call_id: str, found: StoredCall) -> dict[str, Any]:
        try:
            entries = await self.gw.redis.xrange(keys.call_stream(self.cfg, call_id), count=self.cfg.call_stream_maxlen)
        except RedisError as exc:
            log.warning("call detail %s: Redis unavailable, transcript from the store only: %s", call_id, exc)
            entries = []
        events, stream_finals = [], []
        for entry_id, fields in entries:
            try:
                e = from_fields(fields)
            except SchemaError:
                continue
            d = {"id": entry_id, **to_dict(e)}
            if d["type"] in DETAIL_EVENTS:
                events.append(self.view(who, d))
            elif isinstance(e, Transcript) and e.is_final and e.text:
                stream_finals.append(Utterance(call_id, e.segment_id, e.channel, e.start_ms, e.end_ms, e.text, e.emitted_at_ms))
        if found is not None:
            record, rows = found
            call = _record(record, who.role)
            stored = {u.segment_id for u in rows}
            rows = rows + [u for u in stream_finals if u.segment_id not in stored]  # live: not ingested yet
        else:
            call = _record(_record_from_info(call_id, self.gw.board.state.calls.get(call_id)), who.role)  # board masks
            rows = stream_finals
        rows.sort(key=lambda u: (u.start_ms, u.segment_id))
        utterances = [{**_utterance(u), "text": self.for_reader(who, u.text)} for u in rows]
        call["tickets"] = await self.tickets_view(who, await asyncio.to_thread(self.gw.store.tickets, [call_id]))
        recording = await self.recordings.summary(who, call_id, call["started_at_ms"])  # None: none, or not for this role
        return {"call": call, "utterances": utterances, "events": events, "recording": recording}

    # --- WebSockets ------------------------------------------------------------------------------------------
    async def guarded(self, ws: WebSocket, handler: Awaitable[None]) -> None:
        """Run a socket handler until it ends or the client leaves; registered so a gateway stop can close it."""
        task = asyncio.current_task()
        self.gw.ws_tasks.add(task)
        self.gw.metrics.ws_clients.inc()
        try:
            await handler
        except (WsClosed, WebSocketDisconnect):
            pass
        except asyncio.CancelledError:
            # Cancelled by a gateway stop (the page reconnects and resumes) or by the server when the client
            # vanished. Either way this socket's task ends here; there is nothing above it to unwind.
            await _close(ws, 1012, "gateway restarting")
        except RedisError as exc:
            log.warning("websocket %s: Redis error: %s", ws.url.path, exc)
            await _close(ws, 1011, "Redis unavailable, reconnect")
        finally:
            self.gw.metrics.ws_clients.dec()
            self.gw.ws_tasks.discard(task)

    async def captions(self, ws: WebSocket, call_id: str, after: str) -> None:
        who = await self.ws_principal(ws, "agent", "supervisor")
        if not _STREAM_ID.fullmatch(after) or not _CALL_ID.fullmatch(call_id):
            await _close(ws, 4400, "after must be a stream id like 1763880012345-0")
            return
        owner = await self.call_owner(call_id)
        if owner is None or not self.may_see(who, owner):  # alike: whether a call exists is not told
            await _close(ws, 4404, "no such call")
            return
        stream = keys.call_stream(self.cfg, call_id)
        redis = self.gw.stream_redis

        async def pump() -> None:
            last = after
            while True:
                reply = await redis.xread({stream: last}, count=200, block=int(PING_S * 1000))
                if not reply:
                    await ws.send_text(PING)
                    continue
                for _, batch in reply:
                    for entry_id, fields in batch:
                        last = entry_id
                        try:
                            event = to_dict(from_fields(fields))
                        except SchemaError as exc:
                            log.warning("captions %s: skipping %s: %s", call_id, entry_id, exc)
                            continue
                        await ws.send_text(json.dumps(self.view(who, {"id": entry_id, **event}), ensure_ascii=False, separators=(",", ":")))

        await _until_client_leaves(ws, pump())

    async def agent_feed(self, ws: WebSocket, agent_id: str) -> None:
        who = await self.ws_principal(ws, "agent", "supervisor")
        agent = who.agent_id if who.role == "agent" else agent_id
        if not agent:
            await _close(ws, 4400, "supervisors name the agent: ?agent_id=...")
            return
        board = self.gw.board

        def mine(msg: dict[str, Any]) -> bool:
            return (msg["type"] == "call" and msg["call"]["agent_id"] == agent) or msg["type"] == "call_removed"

        async def pump() -> None:
            sub = board.subscribe(maxsize=200, accept=mine)
            try:
                sent: Any = object()
                history_of: Any = None
                while True:
                    current = board.state.agent_call(agent)
                    if current != sent:
                        await ws.send_text(json.dumps(self.view(who, {"type": "current_call", "call": current}), ensure_ascii=False))
                        sent = current
                        # the caller's history, once per call (again when the repeat-caller alert names earlier calls)
                        key = (current["call_id"], tuple(current["repeat_of"])) if current else None
                        if key is not None and key != history_of:
                            history_of = key
                            facts = {"caller": current["caller"], "started_at_ms": current["started_at_ms"],
                                     "repeat_of": current["repeat_of"]}
                            msg = await self.history(who, current["call_id"], facts)
                            await ws.send_text(json.dumps(msg, ensure_ascii=False))
                    await _next(sub, ws)
            finally:
                board.unsubscribe(sub)

        await _until_client_leaves(ws, pump())

    async def supervisor_feed(self, ws: WebSocket) -> None:
        who = await self.ws_principal(ws, "supervisor")
        board = self.gw.board
        await board.ready.wait()

        async def pump() -> None:
            sub = board.subscribe()  # subscribe and snapshot in one step: nothing can fall between them
            snapshot = board.state.snapshot()
            try:
                await ws.send_text(json.dumps(self.view(who, snapshot), ensure_ascii=False))
                while True:
                    msg = await _next(sub, ws)
                    if msg is not None:
                        await ws.send_text(json.dumps(self.view(who, msg), ensure_ascii=False))
            finally:
                board.unsubscribe(sub)

        await _until_client_leaves(ws, pump())


async def _next(sub, ws: WebSocket) -> dict[str, Any] | None:
    """The subscriber's next message; a ping after a quiet spell (None); a 1013 close if it fell behind."""
    if sub.overflowed:
        await _close(ws, 1013, "too far behind, reconnect for a fresh snapshot")
        raise WsClosed
    try:
        return await asyncio.wait_for(sub.queue.get(), PING_S)
    except asyncio.TimeoutError:  # (an overflowed queue is full: its get() never times out)
        await ws.send_text(PING)
        return None


async def _until_client_leaves(ws: WebSocket, pump: Awaitable[None]) -> None:
    """Run ``pump`` until it ends or the client disconnects (we never expect client messages; we read them
    only to notice the close while the pump is blocked on Redis)."""
    pump_task = asyncio.ensure_future(pump)

    async def listen() -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return

    listen_task = asyncio.ensure_future(listen())
    try:
        done, _ = await asyncio.wait({pump_task, listen_task}, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is pump_task and not t.cancelled():
                t.result()
    finally:
        for t in (pump_task, listen_task):
            t.cancel()
        await asyncio.gather(pump_task, listen_task, return_exceptions=True)


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
        try:
            await ws.close(code, reason[:120])
        except (RuntimeError, OSError):  # the client left first
            pass


def _page(name: str):
    async def page() -> FileResponse:
        return FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})

    return page


def _when(value: str | None, name: str) -> int | None:
    """Epoch ms from epoch ms or an ISO date/time (local time when no zone is given)."""
    if value is None or not value.strip():
        return None
    v = value.strip()
    if v.isascii() and v.isdigit():
        if len(v) > 15:  # beyond year 33658: SQLite and PostgreSQL integers would overflow
            raise HTTPException(400, f"{name}: epoch ms out of range: {value[:40]!r}")
        return int(v)
    try:
        return int(datetime.fromisoformat(v).timestamp() * 1000)
    except (ValueError, OverflowError, OSError) as exc:
        raise HTTPException(400, f"{name}: not a date/time or epoch ms: {value[:40]!r}") from exc


def _utterance(u: Utterance) -> dict[str, Any]:
    return {"segment_id": u.segment_id, "channel": u.channel, "start_ms": u.start_ms, "end_ms": u.end_ms,
            "text": u.text, "at_ms": u.at_ms}


def _record(r: CallRecord, role: str) -> dict[str, Any]:
    """A call as JSON, its caller's number as ``role`` may see it (callscribe/pii.py)."""
    return {"call_id": r.call_id, "started_at_ms": r.started_at_ms, "duration_ms": r.duration_ms, "ended": r.ended,
            "agent_id": r.agent_id, "queue": r.queue, "caller": number_for(role, r.caller),
            "language": r.language, "intent": r.intent, "intent_score": r.intent_score, "unresolved": r.unresolved,
            "alerts": list(r.alerts), "reasons": list(r.reasons)}


def _record_from_info(call_id: str, info) -> CallRecord:
    """A live call the store has not seen yet, from the board."""
    if info is None:
        return CallRecord(call_id)
    return CallRecord(call_id, started_at_ms=info.started_at_ms, duration_ms=info.duration_ms, ended=info.state == "ended",
                      agent_id=info.agent_id, queue=info.queue, caller=info.caller, language=info.language,
                      intent=info.intent, intent_score=info.intent_score, unresolved=bool(info.unresolved),
                      alerts=tuple(info.alerts), reasons=tuple(info.flag_reasons))


KNOWLEDGE_SEARCH_FLOOR = 0.1  # cosine; below it a search hit shares a stray n-gram, not a topic


def _knowledge_cards(assist: Any, q: str, lang: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` answer cards for ``q`` in ``lang``, best first (keyword/assist KnowledgeIndex.best), down to
    :data:`KNOWLEDGE_SEARCH_FLOOR` (the agent asked, so lower than the pack's threshold for unasked live cards)."""
    index = assist.compiled.knowledge.get(lang)
    cards: list[dict[str, Any]] = []
    seen: set[str] = set()
    while index is not None and q.strip() and len(cards) < limit:
        hit = index.best(q, exclude=seen)
        if hit is None or hit.score < KNOWLEDGE_SEARCH_FLOOR:
            break
        seen.add(hit.card.id)
        cards.append({"card": hit.card.id, "title": hit.card.title, "answer": hit.card.answer, "source": hit.card.source,
                      "score": hit.score, "threshold": hit.threshold, "scenario": hit.scenario, "matched": hit.question})
    return cards
