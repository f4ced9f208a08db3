"""SIP transactions (RFC 3261 section 17, with RFC 6026's Accepted state), sans I/O.

Why a layer of its own: over UDP every request and final response may be lost or duplicated, so a
server must (a) answer a retransmitted request with the response it already sent, never hand it to the
call logic twice (a retransmitted INVITE must not open a second call), (b) retransmit its final
responses until acknowledged, and (c) retransmit its own requests (our BYE) until answered. Over TCP/TLS
none of the retransmission happens, but the same state machines run so the call logic sees one story.

The layer is pure: ``on_request`` / ``respond`` / ``send_request`` / ``on_response`` / ``poll`` take a
``now`` (monotonic seconds) and return :data:`Output` items (bytes to send, requests for the call logic,
timeouts). The asyncio shell (:mod:`.server`) performs them and calls ``poll`` at ``next_deadline()``.
Tests drive it with a fake clock.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from enum import Enum
from typing import Union

from .message import SipRequest, SipResponse, make_response

T1 = 0.5  # RTT estimate (s)
T2 = 4.0  # longest retransmit interval for non-INVITE requests and INVITE responses
T4 = 5.0  # longest time a message stays in the network
MAX_TRANSACTIONS = 100_000  # a flood of distinct requests cannot grow memory without bound


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from / goes to. ``conn`` identifies the TCP/TLS connection (None for UDP)."""

    transport: str  # "udp" | "tcp" | "tls"
    addr: tuple[str, int]
    conn: int | None = None

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"


# --- outputs ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Put these bytes on the wire to ``peer``."""

    data: bytes
    peer: Peer


@dataclass(frozen=True, slots=True)
class Deliver:
    """A new request for the call logic. For CANCEL, ``invite`` is the INVITE it cancels (still open)."""

    request: SipRequest
    peer: Peer
    invite: SipRequest | None = None


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """Our 2xx to an INVITE was never ACKed within 64*T1: the dialog must be torn down (RFC 3261 13.3.1.4)."""

    request: SipRequest


@dataclass(frozen=True, slots=True)
class ClientResult:
    """The final response to a request we sent (``response`` None: Timer F fired, no answer)."""

    request: SipRequest
    response: SipResponse | None


Output = Union[Send, Deliver, AckTimeout, ClientResult]


class State(Enum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"  # RFC 6026: INVITE answered 2xx, retransmitting it until the ACK
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(slots=True)
class _Server:
    key: tuple
    request: SipRequest
    peer: Peer
    state: State
    last: bytes | None = None  # the last response sent, replayed on a retransmitted request
    interval: float = T1
    generation: int = 0  # bumps on every state change; stale timers are ignored


@dataclass(slots=True)
class _Client:
    key: tuple
    request: SipRequest
    data: bytes
    peer: Peer
    state: State = State.TRYING
    interval: float = T1
    generation: int = 0


@dataclass(order=True, slots=True)
class _Timer:
    at: float
    seq: int
    kind: str = field(compare=False)
    key: tuple = field(compare=False)
    generation: int = field(compare=False)


def server_key(req: SipRequest) -> tuple:
    """RFC 3261 17.2.3: branch + sent-by + method (ACK matches its INVITE). Pre-3261 peers (no magic
    cookie) fall back to Call-ID, From tag, CSeq number and top Via."""
    method = "INVITE" if req.method == "ACK" else req.method
    branch = req.branch
    via = req.headers.get("Via") or ""
    if branch and branch.startswith("z9hG4bK"):
        v = req.top_via
        return ("b", branch, v.host, v.port, method)
    return ("c", req.call_id, req.from_tag, req.cseq[0], method, via.split(",")[0].strip())


def client_key(branch: str, method: str) -> tuple:
    return (branch, method)


class TransactionLayer:
    """Server transactions for every request we receive, client transactions for the requests we send."""

    def __init__(self, t1: float = T1, t2: float = T2, t4: float = T4) -> None:
        self.t1, self.t2, self.t4 = t1, t2, t4
        self._servers: dict[tuple, _Server] = {}
        self._clients: dict[tuple, _Client] = {}
        self._accepted: dict[tuple[str, int], tuple] = {}  # (Call-ID, CSeq) of a 2xx'd INVITE -> its key
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self.absorbed = 0  # retransmitted requests answered from the transaction (never re-delivered)

    # --- requests in --------------------------------------------------------------------------------
    def on_request(self, req: SipRequest, peer: Peer, now: float) -> list[Output]:
        if req.method == "ACK":
            return self._on_ack(req, peer, now)
        key = server_key(req)
        txn = self._servers.get(key)
        if txn is not None:  # a retransmission
            self.absorbed += 1
            return [Send(txn.last, txn.peer if peer.reliable else peer)] if txn.last else []
        if req.method == "CANCEL":
            return self._on_cancel(req, peer, key, now)
        if len(self._servers) >= MAX_TRANSACTIONS:
            return [Send(make_response(req, 503, headers=[("Retry-After", "5")]).to_bytes(), peer)]
        txn = _Server(key, req, peer, State.PROCEEDING if req.method == "INVITE" else State.TRYING)
        self._servers[key] = txn
        out: list[Output] = []
        if req.method == "INVITE":
            # 100 Trying at once (RFC 3261 17.2.1): stops the client retransmitting while we set up media
            trying = make_response(req, 100)
            txn.last = trying.to_bytes()
            out.append(Send(txn.last, peer))
        out.append(Deliver(req, peer))
        return out

    def _on_cancel(self, req: SipRequest, peer: Peer, key: tuple, now: float) -> list[Output]:
        invite_key = key[:-1] + ("INVITE",) if key[0] == "b" else None
        invite = self._servers.get(invite_key) if invite_key else None
        if invite is None and key[0] == "c":  # pre-3261: match on Call-ID + CSeq number
            invite = next((t for t in self._servers.values() if t.request.method == "INVITE"
                           and t.request.call_id == req.call_id and t.request.cseq[0] == req.cseq[0]), None)
        txn = _Server(key, req, peer, State.TRYING)
        self._servers[key] = txn
        if invite is None:
            return self.respond(req, make_response(req, 481, "Call/Transaction Does Not Exist"), now)
        open_invite = invite.request if invite.state == State.PROCEEDING else None
        return [Deliver(req, peer, invite=open_invite)]

    def _on_ack(self, req: SipRequest, peer: Peer, now: float) -> list[Output]:
        txn = self._servers.get(server_key(req))
        if txn is not None and txn.state == State.COMPLETED:  # ACK of our non-2xx final: ends the transaction
            self._set(txn, State.CONFIRMED)
            self._arm(now + (0 if txn.peer.reliable else self.t4), "I", txn)
            return []
        if txn is not None and txn.state == State.CONFIRMED:
            return []  # retransmitted ACK
        accepted = self._accepted.pop((req.call_id, req.cseq[0]), None)
        if accepted is not None:  # ACK of our 2xx: stop retransmitting it; the call logic sees the ACK
            t = self._servers.get(accepted)
            if t is not None:
                t.generation += 1  # cancels Timer G-style 2xx retransmits and Timer L's AckTimeout
                self._arm(now + 64 * self.t1, "L", t)
            return [Deliver(req, peer)]
        return [Deliver(req, peer)] if req.to_tag else []  # stray ACK: the call logic may know its dialog

    # --- responses out ------------------------------------------------------------------------------
    def respond(self, req: SipRequest, resp: SipResponse, now: float) -> list[Output]:
        """Send ``resp`` to ``req`` through its transaction (which then handles retransmission)."""
        txn = self._servers.get(server_key(req))
        data = resp.to_bytes()
        if txn is None:  # the transaction is gone (e.g. it timed out): send once, best effort
            return []
        if txn.state in (State.COMPLETED, State.CONFIRMED, State.TERMINATED, State.ACCEPTED):
            return []  # a final was already sent; RFC 3261 forbids a second one
        txn.last = data
        out: list[Output] = [Send(data, txn.peer)]
        if resp.status < 200:
            self._set(txn, State.PROCEEDING)
            return out
        if req.method == "INVITE":
            if resp.status < 300:
                self._set(txn, State.ACCEPTED)
                self._accepted[(req.call_id, req.cseq[0])] = txn.key
                txn.interval = self.t1
                if not txn.peer.reliable:
                    self._arm(now + txn.interval, "G2xx", txn)
                self._arm(now + 64 * self.t1, "H2xx", txn)
            else:
                self._set(txn, State.COMPLETED)
                txn.interval = self.t1
                if not txn.peer.reliable:
                    self._arm(now + txn.interval, "G", txn)
                self._arm(now + 64 * self.t1, "H", txn)
        else:
            self._set(txn, State.COMPLETED)
            self._arm(now + (0 if txn.peer.reliable else 64 * self.t1), "J", txn)
        return out

    # --- requests out (BYE when media times out or we shut down) -----------------------------------
    def send_request(self, req: SipRequest, peer: Peer, now: float) -> list[Output]:
        """Start a non-INVITE client transaction (RFC 3261 17.1.2) for ``req`` (it must carry a branch)."""
        key = client_key(req.branch or "", req.method)
        txn = _Client(key, req, req.to_bytes(), peer)
        self._clients[key] = txn
        if not peer.reliable:
            self._arm(now + self.t1, "E", txn)
        self._arm(now + 64 * self.t1, "F", txn)
        return [Send(txn.data, peer)]

    def on_response(self, resp: SipResponse, now: float) -> list[Output]:
        try:
            key = client_key(resp.branch or "", resp.cseq[1])
        except Exception:  # a response we cannot match is dropped (RFC 3261 18.1.2)
            return []
        txn = self._clients.get(key)
        if txn is None or txn.state in (State.COMPLETED, State.TERMINATED):
            return []
        if resp.status < 200:
            txn.state = State.PROCEEDING
            return []
        txn.state = State.COMPLETED
        txn.generation += 1
        self._arm(now + (0 if txn.peer.reliable else self.t4), "K", txn)
        return [ClientResult(txn.request, resp)]

    # --- time -----------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        return self._timers[0].at if self._timers else None

    def poll(self, now: float) -> list[Output]:
        out: list[Output] = []
        while self._timers and self._timers[0].at <= now:
            t = heapq.heappop(self._timers)
            table = self._clients if t.kind in ("E", "F", "K") else self._servers
            txn = table.get(t.key)
            if txn is None or txn.generation != t.generation:
                continue
            out.extend(self._fire(t, txn, now))
        return out

    def _fire(self, t: _Timer, txn, now: float) -> list[Output]:
        if t.kind in ("G", "G2xx"):  # retransmit our final response, doubling up to T2
            txn.interval = min(txn.interval * 2, self.t2)
            self._arm(now + txn.interval, t.kind, txn)
            return [Send(txn.last, txn.peer)] if txn.last else []
        if t.kind == "H2xx":  # no ACK for our 2xx
            self._drop_server(txn)
            self._accepted.pop((txn.request.call_id, txn.request.cseq[0]), None)
            return [AckTimeout(txn.request)]
        if t.kind in ("H", "I", "J", "L"):
            self._drop_server(txn)
            return []
        if t.kind == "E":  # retransmit our request
            txn.interval = min(txn.interval * 2, self.t2)
            self._arm(now + txn.interval, "E", txn)
            return [Send(txn.data, txn.peer)]
        if t.kind == "F":
            del self._clients[txn.key]
            return [ClientResult(txn.request, None)]
        if t.kind == "K":
            self._clients.pop(txn.key, None)
        return []

    # --- helpers ------------------------------------------------------------------------------------
    def _set(self, txn: _Server, state: State) -> None:
        txn.state = state
        txn.generation += 1

    def _arm(self, at: float, kind: str, txn) -> None:
        heapq.heappush(self._timers, _Timer(at, next(self._seq), kind, txn.key, txn.generation))

    def _drop_server(self, txn: _Server) -> None:
        self._servers.pop(txn.key, None)

    def has_server(self, req: SipRequest) -> bool:
        """A server transaction for ``req`` exists (so ``req`` is a retransmission)."""
        return server_key(req) in self._servers

    def __len__(self) -> int:
        return len(self._servers) + len(self._clients)


__all__ = [
    "T1", "T2", "T4", "Peer", "Send", "Deliver", "AckTimeout", "ClientResult", "Output", "State",
    "TransactionLayer", "server_key",
]
