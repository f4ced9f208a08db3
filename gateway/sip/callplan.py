"""What an INVITE asks of us, decided without I/O: which streams we take, with which codec, on which
channel (customer / agent / mixed), and the call metadata that goes into CallStarted.

Two kinds of INVITE arrive:
- SIPREC (RFC 7866): a recording client (SBC/PBX) sends ``multipart/mixed`` with SDP (one ``a=label``'d
  m-line per leg) and ``application/rs-metadata+xml`` (RFC 7865) naming the participants and which
  stream each sends. Each stream becomes a channel, named by :func:`.siprec.assign_channels`.
- plain SIP: one m-line (e.g. a PBX forking the mixed call audio): channel ``mixed``. Several audio
  m-lines in a plain INVITE (rare) become ``mixed``, ``mixed2``, ...

Refusals carry the SIP status to send: 415 for a body we do not understand, 488 when no stream offers a
codec we decode, 400 for a broken body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Sequence

from callscribe.errors import SdpError, SipError, SiprecError

from .message import SipRequest, parse_name_addr, parse_uri
from .sdp import MediaChoice, SessionDescription, negotiate, parse_sdp
from .siprec import RecordingMetadata, RoleRules, assign_channels, parse_rs_metadata, split_multipart

RS_METADATA_TYPES = ("application/rs-metadata+xml", "application/rs-metadata")
# X-headers SBCs and PBXes commonly use to pass the agent and queue of a call
AGENT_HEADERS = ("x-agent-id", "x-agentid", "x-agent", "x-genesys-agentid", "x-cisco-agent-id")
QUEUE_HEADERS = ("x-queue", "x-queue-name", "x-skill", "x-acd-queue", "x-genesys-queue")
AGENT_KEYS = ("agentid", "agent_id", "agent", "agentidentifier", "extension")
QUEUE_KEYS = ("queue", "queuename", "queue_name", "skill", "skillgroup", "acdqueue")
MAX_METADATA_VALUE = 256


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """One m-line we receive: its index in the offer, its label (SIPREC) and the pipeline channel."""

    index: int
    channel: str
    choice: MediaChoice
    label: str | None = None


@dataclass(frozen=True, slots=True)
class CallPlan:
    kind: str  # "siprec" | "sip"
    offer: SessionDescription
    choices: tuple[MediaChoice, ...]  # one per offered m-line, accepted or not (the answer mirrors them)
    streams: tuple[StreamPlan, ...]  # the accepted ones, in m-line order
    metadata: dict[str, str] = field(default_factory=dict)
    recording: RecordingMetadata | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(s.channel for s in self.streams)


def is_siprec(invite: SipRequest) -> bool:
    """SIPREC INVITEs carry ``Require: siprec`` / ``+sip.src`` in Contact, or rs-metadata in the body."""
    require = ",".join(invite.headers.get_all("Require")).lower()
    contact = (invite.headers.get("Contact") or "").lower()
    return "siprec" in require or "+sip.src" in contact or (
        invite.content_type or ""
    ).startswith("multipart/") and any(t.encode() in invite.body for t in RS_METADATA_TYPES)


def plan_call(invite: SipRequest, codecs: Sequence[str], rules: RoleRules | None = None) -> CallPlan:
    """Decide how to take ``invite``. Raises SipError (with the status to answer) when we cannot."""
    sdp_bytes, meta_bytes = _bodies(invite)
    offer = parse_sdp(sdp_bytes)
    choices = tuple(negotiate(offer, codecs))
    recording = parse_rs_metadata(meta_bytes) if meta_bytes is not None else None
    siprec = recording is not None or is_siprec(invite)
    accepted = [c for c in choices if c.accepted]
    if not accepted:
        offered = sorted({name for m in offer.media for (name, _, _) in m.rtpmap.values()} | {
            {"0": "PCMU", "8": "PCMA", "9": "G722"}.get(f, f) for m in offer.media for f in m.formats})
        raise SdpError(f"no offered audio stream uses a codec we decode ({', '.join(codecs)}); offered: "
                       f"{', '.join(offered) or 'nothing'}", 488, "Not Acceptable Here")
    if siprec:
        labels = [offer.media[c.index].label or str(c.index) for c in accepted]
        mapping = assign_channels(recording or RecordingMetadata(None, None, (), (), (), {}), labels, rules or RoleRules())
        streams = tuple(StreamPlan(c.index, mapping.get(lbl) or f"stream{c.index}", c, lbl) for c, lbl in zip(accepted, labels))
    else:
        streams = tuple(StreamPlan(c.index, "mixed" if n == 0 else f"mixed{n + 1}", c, offer.media[c.index].label)
                        for n, c in enumerate(accepted))
    if len({s.channel for s in streams}) != len(streams):  # never two streams on one channel
        streams = tuple(StreamPlan(s.index, f"{s.channel}{i + 1}" if i else s.channel, s.choice, s.label)
                        for i, s in enumerate(streams))
    plan = CallPlan("siprec" if siprec else "sip", offer, choices, streams, recording=recording)
    return replace(plan, metadata=call_metadata(invite, plan))


def offer_sdp(request: SipRequest) -> bytes:
    """The SDP offer of an INVITE/UPDATE (alone or inside a SIPREC multipart body)."""
    return _bodies(request)[0]


def _bodies(invite: SipRequest) -> tuple[bytes, bytes | None]:
    ctype = invite.content_type
    if not invite.body:
        # An INVITE without an offer would need our offer in the 200 and the answer in the ACK: a
        # recorder has nothing to offer, so we refuse it clearly.
        raise SipError("INVITE without an SDP offer is not supported (send the offer in the INVITE)", 488, "Not Acceptable Here")
    if ctype == "application/sdp":
        return invite.body, None
    if ctype and ctype.startswith("multipart/"):
        parts = split_multipart(invite.headers.get("Content-Type") or "", invite.body)
        sdp = next((p.body for p in parts if p.content_type == "application/sdp"), None)
        meta = next((p.body for p in parts if p.content_type in RS_METADATA_TYPES), None)
        if sdp is None:
            raise SiprecError("multipart body without an application/sdp part", 400, "Bad Request")
        return sdp, meta
    raise SipError(f"unsupported body type {ctype!r} (we take application/sdp or multipart/mixed)", 415, "Unsupported Media Type")


def call_metadata(invite: SipRequest, plan: CallPlan) -> dict[str, str]:
    """CallStarted.metadata: caller/called numbers, agent id, queue, recording ids and every X- header."""
    md: dict[str, str] = {"source": plan.kind, "sip_call_id": invite.call_id}
    xh = {name.lower(): value for name, value in invite.headers.items() if name.lower().startswith("x-")}
    for name, value in xh.items():
        md[name] = value
    rec = plan.recording
    if rec is not None:
        if rec.recording_session_id:
            md["recording_session_id"] = rec.recording_session_id
        if rec.group_id:
            md["recording_group_id"] = rec.group_id
        if rec.sip_session_ids:
            md["recorded_sip_session_id"] = rec.sip_session_ids[0]
        for key, value in rec.extensions.items():
            md.setdefault(f"ext_{key}", value)
        for stream in plan.streams:
            p = rec.participant_for_label(stream.label or "")
            if p is None:
                continue
            role = stream.channel
            if p.aor:
                md[f"{role}_aor"] = p.aor
            if p.name:
                md[f"{role}_name"] = p.name
        customer, agent = md.get("customer_aor"), md.get("agent_aor")
        if customer:
            md["caller"] = _number(customer)
        if agent:
            md["called"] = _number(agent)
    else:
        md["caller"] = _number(_uri_of(invite.headers.get("P-Asserted-Identity")) or _uri_of(invite.headers.get("From")) or "")
        md["called"] = _number(_uri_of(invite.headers.get("To")) or invite.uri)
    agent_id = _first(xh, AGENT_HEADERS) or _first_key(rec.extensions if rec else {}, AGENT_KEYS)
    queue = _first(xh, QUEUE_HEADERS) or _first_key(rec.extensions if rec else {}, QUEUE_KEYS)
    if agent_id:
        md["agent_id"] = agent_id
    if queue:
        md["queue"] = queue
    return {k: _clip(v) for k, v in md.items() if v}


def _uri_of(header: str | None) -> str | None:
    if not header:
        return None
    try:
        return parse_name_addr(header).uri
    except Exception:
        return None


def _number(uri: str) -> str:
    """The user part of a SIP/tel URI (the phone number or extension), else the URI itself."""
    try:
        u = parse_uri(uri)
        return u.user or uri
    except Exception:
        m = re.search(r"(?:sips?|tel):\+?([^@;>]+)", uri)
        return m.group(1) if m else uri


def _first(headers: dict[str, str], names: Sequence[str]) -> str | None:
    return next((headers[n] for n in names if headers.get(n)), None)


def _first_key(ext: dict[str, str], keys: Sequence[str]) -> str | None:
    low = {k.lower(): v for k, v in ext.items()}
    return next((low[k] for k in keys if low.get(k)), None)


def _clip(value: str) -> str:
    value = "".join(ch for ch in str(value) if ch.isprintable())
    return value[:MAX_METADATA_VALUE]


__all__ = ["CallPlan", "StreamPlan", "plan_call", "offer_sdp", "is_siprec", "call_metadata", "RS_METADATA_TYPES"]
