"""The UAS side of a SIP dialog (RFC 3261 section 12): what identifies it and how we send in it.

We only ever accept dialogs (INVITEs come to us), and the only request we originate is BYE: when the
media stops (RTP timeout), when the peer never ACKs our 200, or when the service shuts down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .message import Headers, SipRequest, new_branch, parse_name_addr
from .transaction import Peer


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: str  # the To header of the INVITE, without tag (our identity in the dialog)
    remote_uri: str  # the From header of the INVITE, with its tag
    remote_target: str  # the peer's Contact URI (where in-dialog requests go, RFC 3261 12.1.1)
    route_set: list[str] = field(default_factory=list)  # Record-Route of the INVITE, in order
    remote_cseq: int = 0
    local_cseq: int = 0
    peer: Peer | None = None

    @classmethod
    def from_invite(cls, invite: SipRequest, local_tag: str, peer: Peer) -> "Dialog":
        contact = invite.headers.get("Contact")
        try:
            target = parse_name_addr(contact).uri if contact else invite.uri
        except Exception:  # a malformed Contact still lets us answer; BYE goes to the Request-URI's peer
            target = invite.uri
        to = invite.headers.get("To") or ""
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_tag,
            local_uri=to,
            remote_uri=invite.headers.get("From") or "",
            remote_target=target,
            route_set=invite.headers.get_all("Record-Route"),
            remote_cseq=invite.cseq[0],
            peer=peer,
        )

    def matches(self, req: SipRequest) -> bool:
        """An in-dialog request: same Call-ID, their tag in From, ours in To."""
        return req.call_id == self.call_id and req.to_tag == self.local_tag and req.from_tag == self.remote_tag

    def accepts_cseq(self, req: SipRequest) -> bool:
        """RFC 3261 12.2.2: a lower CSeq than the last one seen is out of order (answered 500)."""
        num = req.cseq[0]
        if req.method in ("ACK", "CANCEL"):
            return True
        if num < self.remote_cseq:
            return False
        self.remote_cseq = num
        return True

    def make_request(self, method: str, via_host: str, via_port: int, contact: str, user_agent: str) -> SipRequest:
        """A new in-dialog request from us (BYE), per RFC 3261 12.2.1.1."""
        self.local_cseq = max(self.local_cseq + 1, 1)
        transport = (self.peer.transport if self.peer else "udp").upper()
        h = Headers()
        h.add("Via", f"SIP/2.0/{transport} {_host(via_host)}:{via_port};branch={new_branch()};rport")
        h.add("Max-Forwards", "70")
        for route in self.route_set:
            h.add("Route", route)
        local = self.local_uri if ";tag=" in self.local_uri else f"{self.local_uri};tag={self.local_tag}"
        h.add("From", local)
        h.add("To", self.remote_uri)
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{self.local_cseq} {method}")
        h.add("Contact", contact)
        h.add("User-Agent", user_agent)
        return SipRequest(method, self.remote_target, h)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


__all__ = ["Dialog"]
