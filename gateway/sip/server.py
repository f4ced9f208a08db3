"""The SIP user-agent server and SIPREC recording server: asyncio transports around the sans-I/O parts.

Flow of a call: INVITE -> 100 Trying (transaction layer) -> :func:`.callplan.plan_call` decides streams,
codecs and channels (or the refusal: 400/415/420/488) -> admission (503 + Retry-After when the worker
is full, checked *before* anything is allocated, so a refused call is never half-open) -> RTP ports
bound -> pipeline call opened with the metadata -> 200 OK with our SDP answer (retransmitted until the
ACK). BYE, CANCEL, a media timeout or shutdown end it: the jitter buffers are drained and the pipeline
session ended, so every final is in Redis before CallEnded.

Before any of that, per message: a source outside ``sip_allow`` gets 403 Forbidden (every transport;
:mod:`.admission`); anything malformed is answered 400 with a reason phrase naming the problem ("Bad
CSeq") when it can be routed back, else logged (warning, rate-limited) and dropped; under a burst (too many
calls being set up, or too many transactions) a new INVITE gets an immediate stateless 503 + Retry-After
before any work is done for it. One source may hold at most ``cfg.source_quota`` calls (503 above it). One
peer's garbage never touches another call. See docs/sip.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import re
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field

from callscribe.config import Config
from callscribe.errors import CapacityError, SipError, SipParseError
from callscribe.events import CallStarted
from callscribe.pipeline import Pipeline

from ..rtp.codecs import SUPPORTED, Codec
from ..rtp.ports import PortPool
from ..rtp.receiver import RtpStream
from .admission import Admission
from .call import SipCall
from .callplan import CallPlan, offer_sdp, plan_call
from .dialog import Dialog
from .message import SipRequest, SipResponse, StreamFramer, error_response, make_response, new_tag, parse_message
from .sdp import MediaChoice, build_answer, negotiate, parse_sdp
from .siprec import RoleRules
from .transaction import AckTimeout, ClientResult, Deliver, Output, Peer, Send, TransactionLayer

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
SUPPORTED_EXTENSIONS = ("siprec", "timer", "100rel", "replaces", "norefersub")
MAX_TCP_BUFFER = 256 * 1024
MAX_SETUPS = 32  # INVITEs being set up (ports, pipeline) at once; beyond, new ones are shed with 503
MAX_TRANSACTIONS_FOR_INVITE = 10_000  # open transactions beyond which new INVITEs are shed with 503
_CALL_ID_OK = re.compile(r"^[A-Za-z0-9._:@+-]{1,120}$")


@dataclass(slots=True)
class SipStats:
    requests: int = 0
    responses: int = 0
    malformed: int = 0
    calls_accepted: int = 0
    calls_refused_capacity: int = 0
    calls_refused_quota: int = 0  # a source at its cfg.source_quota
    calls_refused_other: int = 0
    forbidden: int = 0  # messages from sources outside sip_allow (answered 403 when they could be)
    shed: int = 0  # INVITEs answered a stateless 503 under a burst (MAX_SETUPS / MAX_TRANSACTIONS_FOR_INVITE)
    calls_cancelled: int = 0
    calls_ended: dict[str, int] = field(default_factory=dict)
    # media of ended calls: lost audio concealed at the receiver, and (Opus) decoded from the next packet
    media_concealed_ms: float = 0.0
    media_fec_ms: float = 0.0


@dataclass(slots=True)
class _Pending:
    invite: SipRequest
    peer: Peer
    cancelled: bool = False


class SipServer:
    def __init__(self, cfg: Config, pipeline: Pipeline) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.host = cfg.sip_host or cfg.host
        self.txn = TransactionLayer()
        self.pool = PortPool(cfg.rtp_port_min, cfg.rtp_port_max)
        self.rules = RoleRules(tuple(cfg.siprec_agent_patterns), tuple(cfg.siprec_customer_patterns))
        self.codecs = tuple(c for c in cfg.sip_codecs if c in SUPPORTED)
        self.calls: dict[str, SipCall] = {}  # by SIP Call-ID
        self.pending: dict[str, _Pending] = {}  # INVITEs being set up (ports, pipeline) by Call-ID
        self.admission = Admission.from_config(cfg)
        self._sources: dict[str, str] = {}  # Call-ID -> source address counted in admission (until released)
        self.max_setups = MAX_SETUPS
        self.max_transactions_for_invite = MAX_TRANSACTIONS_FOR_INVITE
        self.udp_recv_buffer = 0  # SO_RCVBUF the kernel granted (Linux reports twice what it holds for data)
        self._limited = _RateLimitedLog()
        self.stats = SipStats()
        self.ports: dict[str, int] = {}  # transport -> bound port
        self.advertised = cfg.sip_advertised_address or _outbound_address(self.host)
        self._udp: asyncio.DatagramTransport | None = None
        self._servers: list[asyncio.Server] = []
        self._conns: dict[int, asyncio.StreamWriter] = {}
        self._conn_ids = itertools.count(1)
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task] = set()
        self._closing = False

    # --- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        port = self.cfg.sip_port
        if "udp" in self.cfg.sip_transports:
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(self.host, port))
            port = self._udp.get_extra_info("sockname")[1]
            self.ports["udp"] = port
            self.udp_recv_buffer = _grow_recv_buffer(self._udp.get_extra_info("socket"), self.cfg.sip_recv_buffer_bytes)
        if "tcp" in self.cfg.sip_transports:
            srv = await asyncio.start_server(lambda r, w: self._serve_stream(r, w, "tcp"), self.host, port)
            self._servers.append(srv)
            self.ports["tcp"] = srv.sockets[0].getsockname()[1]
        if "tls" in self.cfg.sip_transports:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.cfg.sip_tls_cert, self.cfg.sip_tls_key)
            srv = await asyncio.start_server(lambda r, w: self._serve_stream(r, w, "tls"), self.host, self.cfg.sip_tls_port, ssl=ctx)
            self._servers.append(srv)
            self.ports["tls"] = srv.sockets[0].getsockname()[1]
        self._timer = asyncio.create_task(self._timer_loop(), name="sip-timers")
        log.info("SIP listening on %s %s (codecs %s); %s", self.host, self.ports, ", ".join(self.codecs),
                 "sources: " + (", ".join(map(str, self.admission.networks)) or "none") if self.admission.enforce
                 else "sources: any (ingest_auth off)")

    @property
    def port(self) -> int:
        return self.ports.get("udp") or self.ports.get("tcp") or self.ports.get("tls", 0)

    async def stop(self) -> None:
        """BYE every live call (best effort), finish them (finals flushed), close the transports."""
        self._closing = True
        for call in list(self.calls.values()):
            self._send_bye(call)
        await asyncio.gather(*(self._end_call(c, "shutdown") for c in list(self.calls.values())), return_exceptions=True)
        await asyncio.sleep(0.05)  # let the BYEs leave
        for t in list(self._tasks):
            t.cancel()
        if self._timer is not None:
            self._timer.cancel()
        for srv in self._servers:
            srv.close()
        for w in self._conns.values():
            w.close()
        if self._udp is not None:
            self._udp.close()

    # --- wire in ------------------------------------------------------------------------------------
    def on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip(b"\r\n") == b"":  # RFC 5626 keep-alive ping: answer the pong
            if data == b"\r\n\r\n" and self._udp is not None:
                self._udp.sendto(b"\r\n", addr)
            return
        peer = Peer("udp", (addr[0], addr[1]))
        if not self.admission.allowed(addr[0]):
            self._forbid(data, peer)
            return
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            self._bad_message(data, exc, peer)
            return
        self._on_message(msg, peer)

    def _forbid(self, data: bytes, peer: Peer) -> None:
        """A message from outside ``sip_allow``: 403 to a request (stateless, from its raw lines, so nothing
        is parsed or kept for it), nothing to a response or an ACK; logged either way (rate-limited)."""
        self.stats.forbidden += 1
        resp = error_response(data, 403, "Forbidden", to_tag=new_tag(), headers=[("Server", self.cfg.sip_user_agent)])
        if resp is not None:
            self._transmit(resp, peer)
        self._limited("forbidden", logging.WARNING, "sip %s %s: source not in sip_allow: %s", peer.transport,
                      peer.addr[0], "403 Forbidden" if resp is not None else "dropped")

    async def _serve_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str) -> None:
        conn = next(self._conn_ids)
        self._conns[conn] = writer
        addr = writer.get_extra_info("peername") or ("?", 0)
        peer = Peer(transport, (addr[0], addr[1]), conn)
        framer = StreamFramer()
        try:
            if not self.admission.allowed(addr[0]):
                await self._forbid_stream(reader, peer)
                return
            while not reader.at_eof():
                data = await reader.read(65536)
                if not data:
                    break
                pings = framer.pings
                messages: list[SipRequest | SipResponse] = []
                while True:  # a message that frames but does not parse is answered; the stream goes on
                    try:
                        messages += framer.feed(data)
                        break
                    except SipParseError as exc:
                        self._bad_message(framer.error_data, exc, peer)
                        if framer.broken:  # no way to find the next message: answered (if we could), closed
                            log.info("sip %s %s: closing connection: %s", transport, addr, exc)
                            return
                        data = b""
                if framer.pings > pings:
                    writer.write(b"\r\n")
                for msg in messages:
                    self._on_message(msg, peer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            log.info("sip %s %s: connection lost (%s)", transport, addr, exc)
        finally:
            self._conns.pop(conn, None)
            writer.close()

    async def _forbid_stream(self, reader: asyncio.StreamReader, peer: Peer) -> None:
        """A connection from outside ``sip_allow``: 403 to the requests of its first message(s), then close."""
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = await asyncio.wait_for(reader.read(65536), 5.0)
                if not chunk:
                    break
                data += chunk
        except asyncio.TimeoutError:
            pass
        self._forbid(data, peer)

    def _on_message(self, msg: SipRequest | SipResponse, peer: Peer) -> None:
        now = time.monotonic()
        try:
            if isinstance(msg, SipResponse):
                self.stats.responses += 1
                self._perform(self.txn.on_response(msg, now))
            else:
                self.stats.requests += 1
                if msg.method == "INVITE" and self._overloaded() and self._new_invite(msg):
                    self._shed(msg, peer)
                    return
                self._perform(self.txn.on_request(msg, peer, now))
        except SipParseError as exc:  # a header the parser took lazily (CSeq, Via) is broken
            self._bad_message(msg.to_bytes(), exc, peer)
        except Exception:
            log.exception("sip: internal error handling a message from %s", peer.addr)
            if isinstance(msg, SipRequest) and msg.method != "ACK":
                self._send_direct(msg, 500, peer)

    def _bad_message(self, data: bytes, exc: SipParseError, peer: Peer) -> None:
        """A message we cannot parse: 400 (or the error's status) with the error's reason phrase ("Bad
        CSeq") and the details in a Warning header, if it carries enough to route a response back (Via,
        From, To, Call-ID, a CSeq method); else a drop logged as a warning (RFC 3261 8.2.1, 18.3). Both
        log lines are rate-limited, so a flood of garbage cannot flood the log."""
        self.stats.malformed += 1
        resp = error_response(data, exc.status, exc.reason, to_tag=new_tag(),
                              headers=[("Server", self.cfg.sip_user_agent), ("Warning", _warning(str(exc)))])
        if resp is not None:
            self._transmit(resp, peer)
            self._limited("malformed", logging.INFO, "sip %s %s: malformed request answered %d %s: %s",
                          peer.transport, peer.addr, exc.status, exc.reason, exc)
        else:
            self._limited("unanswerable", logging.WARNING, "sip %s %s: malformed message cannot be answered, "
                          "dropped: %s", peer.transport, peer.addr, exc)

    # --- load shedding ------------------------------------------------------------------------------
    def _overloaded(self) -> bool:
        return len(self.pending) >= self.max_setups or len(self.txn) >= self.max_transactions_for_invite

    def _new_invite(self, req: SipRequest) -> bool:
        """An initial INVITE we have not seen (not a re-INVITE, not a retransmission of one in progress)."""
        return (not req.to_tag and req.call_id not in self.pending and req.call_id not in self.calls
                and not self.txn.has_server(req))

    def _shed(self, req: SipRequest, peer: Peer) -> None:
        """A burst: answer a new INVITE 503 + Retry-After at once, statelessly (no transaction, no 100
        Trying, no SDP parsing), so the socket buffer keeps draining and no INVITE goes unanswered. A lost
        503 is repaired by the client's own INVITE retransmission, which gets another one."""
        self.stats.shed += 1
        self.stats.calls_refused_capacity += 1
        resp = make_response(req, 503, to_tag=new_tag(), headers=[
            ("Retry-After", str(self.cfg.sip_retry_after_s)), ("Server", self.cfg.sip_user_agent),
            ("Warning", _warning(f"overloaded: {len(self.pending)} calls being set up"))])
        self._transmit(resp.to_bytes(), peer)
        self._limited("shed", logging.WARNING, "sip: overloaded (%d calls being set up, %d transactions): "
                      "new INVITEs answered 503", len(self.pending), len(self.txn))

    # --- wire out -----------------------------------------------------------------------------------
    def _perform(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Send):
                self._transmit(out.data, out.peer)
            elif isinstance(out, Deliver):
                try:
                    self._dispatch(out)
                except SipError as exc:
                    self._reply(out.request, exc.status, exc.reason, warning=str(exc))
            elif isinstance(out, AckTimeout):
                call = self.calls.get(out.request.call_id)
                if call is not None:
                    log.warning("call %s: no ACK for our 200 OK; ending it", call.call_id)
                    self._send_bye(call)
                    self._spawn(self._end_call(call, "error"))
            elif isinstance(out, ClientResult):
                if out.response is None:
                    log.info("sip: no answer to our %s for %s", out.request.method, out.request.call_id)
        self._wake.set()

    def _transmit(self, data: bytes, peer: Peer) -> None:
        if peer.transport == "udp":
            if self._udp is not None:
                self._udp.sendto(data, peer.addr)
            return
        writer = self._conns.get(peer.conn or 0)
        if writer is None or writer.is_closing():
            log.info("sip: connection to %s is gone; %d bytes not sent", peer.addr, len(data))
            return
        writer.write(data)

    def _reply(self, req: SipRequest, status: int, reason: str | None = None, *, to_tag: str | None = None,
               headers: list[tuple[str, str]] | None = None, body: bytes = b"", content_type: str | None = None,
               warning: str | None = None) -> None:
        hdrs = list(headers or [])
        hdrs.append(("Server", self.cfg.sip_user_agent))
        if warning and status >= 300:
            hdrs.append(("Warning", _warning(warning)))
        if status == 405:
            hdrs.append(("Allow", ALLOW))
        if to_tag is None and status >= 200 and status != 100 and not req.to_tag:
            to_tag = new_tag()  # a final response to a dialog-creating request carries a To tag
        resp = make_response(req, status, reason, to_tag=to_tag, headers=hdrs, body=body, content_type=content_type)
        self._perform(self.txn.respond(req, resp, time.monotonic()))

    def _send_direct(self, req: SipRequest, status: int, peer: Peer) -> None:
        try:
            self._transmit(make_response(req, status).to_bytes(), peer)
        except Exception:
            pass

    def _contact(self, siprec: bool = False, transport: str = "udp") -> str:
        host = f"[{self.advertised}]" if ":" in self.advertised else self.advertised
        port = self.ports.get(transport) or self.port
        t = "" if transport == "udp" else f";transport={transport}"
        return f"<sip:callscribe@{host}:{port}{t}>" + (";+sip.srs" if siprec else "")

    # --- requests -----------------------------------------------------------------------------------
    def _dispatch(self, d: Deliver) -> None:
        req = d.request
        m = req.method
        if m == "INVITE":
            self._on_invite(req, d.peer)
        elif m == "ACK":
            return  # the transaction layer already stopped retransmitting our 2xx
        elif m == "BYE":
            self._on_bye(req)
        elif m == "CANCEL":
            self._on_cancel(req, d.invite)
        elif m == "OPTIONS":
            self._on_options(req)
        elif m == "UPDATE":
            self._on_update(req)
        elif m == "INFO":
            call = self._dialog_call(req)
            self._reply(req, 200 if call else 481)
        elif m in ("PRACK",):
            self._reply(req, 481)  # we never send reliable provisionals
        else:
            self._reply(req, 405)

    def _on_options(self, req: SipRequest) -> None:
        """Keep-alive / capability probe. When the worker is full we answer 503 so an SBC's health check
        routes new sessions to another recorder before they are refused."""
        if self._full():
            self._reply(req, 503, headers=[("Retry-After", str(self.cfg.sip_retry_after_s))], warning="at capacity")
            return
        self._reply(req, 200, headers=[("Allow", ALLOW), ("Accept", "application/sdp, multipart/mixed, application/rs-metadata+xml"),
                                        ("Supported", ", ".join(SUPPORTED_EXTENSIONS))])

    def _full(self) -> bool:
        return len(self.pipeline.calls) + len(self.pending) >= self.cfg.max_calls

    def _on_invite(self, req: SipRequest, peer: Peer) -> None:
        if req.to_tag:
            self._on_reinvite(req)
            return
        if req.call_id in self.calls or req.call_id in self.pending:
            self._reply(req, 482, "Loop Detected", warning="a second INVITE with this Call-ID and a new branch")
            return
        unsupported = [t for t in _option_tags(req, "Require") if t not in SUPPORTED_EXTENSIONS]
        if unsupported:
            self._reply(req, 420, headers=[("Unsupported", ", ".join(unsupported))])
            return
        if self._closing or self._full():
            self.stats.calls_refused_capacity += 1
            self._reply(req, 503, headers=[("Retry-After", str(self.cfg.sip_retry_after_s))],
                        warning=f"at capacity ({self.cfg.max_calls} calls)" if not self._closing else "shutting down")
            return
        source = peer.addr[0]
        if self.admission.over_quota(source):
            self.stats.calls_refused_quota += 1
            quota = self.admission.quota
            self._limited("quota", logging.WARNING, "sip: source %s is at its quota of %d calls: 503 to INVITE %s",
                          source, quota, req.call_id)
            self._reply(req, 503, headers=[("Retry-After", str(self.cfg.sip_retry_after_s))],
                        warning=f"this source is at its quota ({quota} calls)")
            return
        try:
            plan = plan_call(req, self.codecs, self.rules)
        except SipError as exc:
            self.stats.calls_refused_other += 1
            log.info("sip: refusing INVITE %s: %d %s", req.call_id, exc.status, exc)
            self._reply(req, exc.status, exc.reason, warning=str(exc))
            return
        self.admission.admit(source)
        self._sources[req.call_id] = source
        self.pending[req.call_id] = _Pending(req, peer)
        self._spawn(self._accept(req, peer, plan))

    def _release_source(self, call_id: str) -> None:
        """The call is gone (refused in set-up, cancelled, failed or ended): its source may open another."""
        source = self._sources.pop(call_id, None)
        if source is not None:
            self.admission.release(source)

    async def _accept(self, req: SipRequest, peer: Peer, plan: CallPlan) -> None:
        pending = self.pending[req.call_id]
        streams: list[RtpStream] = []
        base = 0
        call: SipCall | None = None
        try:
            try:
                base, streams = await self._open_streams(plan)
            except CapacityError as exc:
                self.stats.calls_refused_capacity += 1
                self._reply(req, 503, headers=[("Retry-After", str(self.cfg.sip_retry_after_s))], warning=str(exc))
                return
            dialog = Dialog.from_invite(req, new_tag(), peer)
            call = SipCall(dialog, plan, streams, base, self.cfg.rtp_timeout_s, self._on_media_timeout)
            first = plan.streams[0].choice
            codec = SUPPORTED[first.codec or "PCMU"]
            started = CallStarted(
                call_id=_pipeline_call_id(req.call_id),
                channels=plan.channels,
                language=self.cfg.language,
                sample_rate_hz=codec.sample_rate_hz,
                encoding=(first.codec or "pcmu").lower(),
                metadata=plan.metadata,
            )
            if pending.cancelled:
                raise _Cancelled
            try:
                session = await self.pipeline.open_call(started)
            except CapacityError as exc:
                self.stats.calls_refused_capacity += 1
                self._reply(req, 503, headers=[("Retry-After", str(self.cfg.sip_retry_after_s))], warning=str(exc))
                return
            if pending.cancelled:
                await session.end("cancel")
                raise _Cancelled
            ports = [0] * len(plan.offer.media)
            for sp, stream in zip(plan.streams, streams):
                ports[sp.index] = stream.port
            call.answer = build_answer(plan.offer, plan.choices, self.advertised, ports)
            self.calls[req.call_id] = call
            call.start_media(session)
            self.stats.calls_accepted += 1
            streams = []  # owned by the call now
            headers = [("Contact", self._contact(plan.kind == "siprec", peer.transport)), ("Allow", ALLOW),
                       ("Supported", ", ".join(SUPPORTED_EXTENSIONS))]
            if plan.kind == "siprec":
                headers.append(("Require", "siprec"))
            se = req.headers.get("Session-Expires")
            if se:  # RFC 4028: echo the interval; the SRC (uac) refreshes, we only watch the media
                headers += [("Session-Expires", f"{se.split(';')[0].strip()};refresher=uac"), ("Require", "timer")]
            self._reply(req, 200, to_tag=dialog.local_tag, headers=headers, body=call.answer, content_type="application/sdp")
            log.info("call %s accepted (%s, %s) from %s", started.call_id, plan.kind, ", ".join(plan.channels), peer.addr)
        except _Cancelled:
            self.stats.calls_cancelled += 1
            self._reply(req, 487)
            if call is not None and req.call_id in self.calls:
                del self.calls[req.call_id]
        except Exception as exc:
            log.exception("sip: setting up call %s failed", req.call_id)
            self._reply(req, 500, warning=f"internal error: {type(exc).__name__}")
        finally:
            self.pending.pop(req.call_id, None)
            for s in streams:  # a refused or failed call frees everything it took
                s.close()
            if base and (call is None or req.call_id not in self.calls):
                self.pool.release(base)
            if req.call_id not in self.calls:
                self._release_source(req.call_id)

    async def _open_streams(self, plan: CallPlan) -> tuple[int, list[RtpStream]]:
        """Bind adjacent RTP/RTCP pairs for the plan's streams; ports busy on the host are skipped."""
        busy: set[int] = set()
        for _ in range(16):
            base = self.pool.allocate(len(plan.streams), busy)
            streams: list[RtpStream] = []
            try:
                for i, sp in enumerate(plan.streams):
                    codec = _codec(sp.choice)
                    s = RtpStream(codec, sp.choice.dtmf_payload_type, self.cfg.jitter_depth_ms, sp.label or sp.channel)
                    await s.open(self.host, base + 2 * i)
                    streams.append(s)
                return base, streams
            except OSError as exc:
                log.info("rtp: ports from %d busy on this host (%s); trying another block", base, exc)
                for s in streams:
                    s.close()
                self.pool.release(base)
                busy.add(base)
        raise CapacityError("could not bind RTP ports: the range is busy on this host")

    def _dialog_call(self, req: SipRequest) -> SipCall | None:
        call = self.calls.get(req.call_id)
        if call is None or not call.dialog.matches(req):
            return None
        return call

    def _on_bye(self, req: SipRequest) -> None:
        call = self._dialog_call(req)
        if call is None:
            self._reply(req, 481, "Call/Transaction Does Not Exist")
            return
        self._reply(req, 200)
        self._spawn(self._end_call(call, "hangup"))

    def _on_cancel(self, req: SipRequest, invite: SipRequest | None) -> None:
        self._reply(req, 200)  # RFC 3261 9.2: the CANCEL itself always gets 200 once matched
        if invite is None:
            return  # already answered: the CANCEL has no effect (the peer must BYE)
        pending = self.pending.get(invite.call_id)
        if pending is not None:
            pending.cancelled = True  # _accept answers the INVITE 487 and frees what it took

    def _on_reinvite(self, req: SipRequest) -> None:
        call = self._dialog_call(req)
        if call is None:
            self._reply(req, 481, "Call/Transaction Does Not Exist")
            return
        if not call.dialog.accepts_cseq(req):
            self._reply(req, 500, warning="CSeq out of order")
            return
        self._renegotiate(call, req)

    def _on_update(self, req: SipRequest) -> None:
        call = self._dialog_call(req)
        if call is None:
            self._reply(req, 481, "Call/Transaction Does Not Exist")
            return
        if not req.body:  # a session refresh (RFC 4028)
            self._reply(req, 200)
            return
        self._renegotiate(call, req)

    def _renegotiate(self, call: SipCall, req: SipRequest) -> None:
        """A re-INVITE/UPDATE: hold/resume (direction or 0.0.0.0) and codec changes on the streams we have.
        Streams keep their ports (RFC 3264 8); a stream added later is answered with port 0."""
        contact = self._contact(call.plan.kind == "siprec", call.dialog.peer.transport if call.dialog.peer else "udp")
        if not req.body:  # no offer: we offer our current session again (the ACK carries the answer)
            self._reply(req, 200, headers=[("Contact", contact)], body=call.answer, content_type="application/sdp")
            return
        try:
            offer = parse_sdp(offer_sdp(req))
        except SipError as exc:
            # RFC 3261 14.2: a refused re-INVITE leaves the session as it was
            self._reply(req, exc.status, exc.reason, warning=str(exc))
            return
        offered = negotiate(offer, self.codecs)
        by_index = {sp.index: s for sp, s in zip(call.plan.streams, call.streams)}
        held, ports, choices = True, [0] * len(offer.media), []
        for choice in offered:
            stream = by_index.get(choice.index)
            if stream is None:  # a stream added mid-call: declined (port 0); the call goes on as it was
                choices.append(_reject(choice))
                continue
            m = offer.media[choice.index]
            direction = m.direction or offer.direction or "sendrecv"
            address = offer.media_address(choice.index) or ""
            on_hold = direction in ("inactive", "recvonly") or address in ("0.0.0.0", "::") or m.port == 0
            if not on_hold and not choice.accepted:
                self._reply(req, 488, warning="the new offer has no codec we decode on a live stream")
                return
            if on_hold:  # keep the stream and its codec; nothing will arrive until resumed
                choice = MediaChoice(choice.index, True, stream.codec.name, stream.codec.payload_type,
                                     stream.codec.clock_rate, stream.dtmf_payload_type)
            else:
                held = False
                if choice.codec and choice.codec != stream.codec.name:
                    stream.switch_codec(_codec(choice))  # a codec change mid-call: decode what now arrives
                stream.dtmf_payload_type = choice.dtmf_payload_type
            ports[choice.index] = stream.port
            choices.append(choice)
        if held != call.held:
            log.info("call %s: %s", call.call_id, "on hold" if held else "resumed")
        call.held = held
        call.answer = build_answer(offer, choices, self.advertised, ports)
        self._reply(req, 200, headers=[("Contact", contact)], body=call.answer, content_type="application/sdp")

    # --- call end -----------------------------------------------------------------------------------
    def _on_media_timeout(self, call: SipCall) -> None:
        self._send_bye(call)
        self._spawn(self._end_call(call, "timeout"))

    def _send_bye(self, call: SipCall) -> None:
        d = call.dialog
        if d.peer is None:
            return
        port = self.ports.get(d.peer.transport) or self.port
        bye = d.make_request("BYE", self.advertised, port, self._contact(call.plan.kind == "siprec", d.peer.transport), self.cfg.sip_user_agent)
        self._perform(self.txn.send_request(bye, d.peer, time.monotonic()))

    async def _end_call(self, call: SipCall, reason: str) -> None:
        try:
            await call.finish(reason)
        finally:
            if self.calls.get(call.call_id) is call:
                del self.calls[call.call_id]
                self.pool.release(call.port_base)
                self._release_source(call.call_id)
                self.stats.calls_ended[reason] = self.stats.calls_ended.get(reason, 0) + 1
                for s in call.streams:
                    self.stats.media_concealed_ms += s.decoder.stats.concealed_ms
                    self.stats.media_fec_ms += s.decoder.stats.fec_ms
                log.info("call %s ended (%s): %s", call.call_id, reason, call.stats())

    # --- timers and tasks ---------------------------------------------------------------------------
    async def _timer_loop(self) -> None:
        while True:
            deadline = self.txn.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            try:
                self._perform(self.txn.poll(time.monotonic()))
            except Exception:
                log.exception("sip: timer processing failed")
            self._wake.clear()  # after _perform, which sets it for messages handled outside this loop

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Cancelled(Exception):
    pass


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: SipServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            self.server.on_datagram(data, addr)
        except Exception:  # never let one datagram kill the listener
            log.exception("sip: datagram from %s", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("sip udp: %s", exc)


def _codec(choice) -> Codec:
    base = SUPPORTED[choice.codec]
    return Codec(base.name, choice.payload_type if choice.payload_type is not None else base.payload_type, base.clock_rate, base.sample_rate_hz)


def _reject(choice):
    return MediaChoice(choice.index, False, None, None, choice.clock_rate, None)


def _option_tags(req: SipRequest, header: str) -> list[str]:
    return [t.strip().lower() for v in req.headers.get_all(header) for t in v.split(",") if t.strip()]


def _pipeline_call_id(sip_call_id: str) -> str:
    """The pipeline/Redis call id: the SIP Call-ID when it is made of safe characters, else a cleaned
    form with a hash suffix (the original is kept in metadata ``sip_call_id``)."""
    if _CALL_ID_OK.match(sip_call_id):
        return sip_call_id
    clean = re.sub(r"[^A-Za-z0-9._:@+-]", "_", sip_call_id)[:100] or "call"
    return f"{clean}-{hashlib.sha1(sip_call_id.encode('utf-8', 'replace')).hexdigest()[:10]}"


def _warning(text: str) -> str:
    """A Warning header value (RFC 3261 20.43) carrying ``text``: code 399, quotes and line ends removed."""
    safe = text.replace("\\", "/").replace('"', "'").replace("\r", " ").replace("\n", " ")[:200]
    return f'399 callscribe "{safe}"'


def _grow_recv_buffer(sock, want: int) -> int:
    """Ask for a ``want``-byte receive buffer on a UDP socket (SO_RCVBUF, which the kernel caps at
    net.core.rmem_max; then SO_RCVBUFFORCE, which needs CAP_NET_ADMIN); log and return what was granted.
    A burst of INVITEs waits here while the loop works: too small a buffer drops them unanswered."""
    if sock is None or want <= 0:
        return 0
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)
    except OSError as exc:
        log.info("sip udp: SO_RCVBUF %d refused (%s)", want, exc)
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # Linux reports double what was set (it counts its bookkeeping), so compare with the doubled request
    full = want * 2 if sys.platform.startswith("linux") else want
    if got < full and hasattr(socket, "SO_RCVBUFFORCE"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUFFORCE, want)
            got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError:  # no CAP_NET_ADMIN: keep what rmem_max allowed
            pass
    if got < full:
        log.warning("sip udp: receive buffer %d bytes granted, %d asked (sip_recv_buffer_bytes); raise "
                    "net.core.rmem_max (sysctl) or INVITE bursts may be dropped by the kernel", got, want)
    else:
        log.info("sip udp: receive buffer %d bytes granted (%d asked)", got, want)
    return got


class _RateLimitedLog:
    """At most ``per_window`` lines per kind every ``window_s`` seconds; what was held back is counted and
    reported in one line when the next window opens (so a flood of garbage cannot flood the log)."""

    def __init__(self, per_window: int = 20, window_s: float = 10.0) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._windows: dict[str, list] = {}  # kind -> [window start, lines logged, lines suppressed]

    def __call__(self, kind: str, level: int, msg: str, *args) -> None:
        now = time.monotonic()
        w = self._windows.get(kind)
        if w is None or now - w[0] >= self.window_s:
            if w is not None and w[2]:
                log.warning("sip: %d more %s log line(s) suppressed in %.0f s", w[2], kind, now - w[0])
            w = self._windows[kind] = [now, 0, 0]
        if w[1] < self.per_window:
            w[1] += 1
            log.log(level, msg, *args)
        else:
            w[2] += 1


def _outbound_address(host: str) -> str:
    """The address peers should send to: the bind address, or when bound to every interface the one
    the kernel would route outward from (no packet is sent)."""
    if host not in ("0.0.0.0", "::", ""):
        return host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, just picks the interface
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


__all__ = ["SipServer", "SipStats", "ALLOW"]
