"""SIPREC bodies: the multipart INVITE body (RFC 7866 section 8.1) and the recording metadata XML
(RFC 7865), and which recorded stream is the customer and which the agent.

Sans-I/O. Bad input raises :class:`~callscribe.errors.SiprecError` (a SipParseError, answered 400).

The metadata says who the participants are (``<participant>`` with a ``<nameID aor=...>``), which
streams exist (``<stream>`` with the SDP ``<label>``) and who sends what (``<participantstreamassoc>``,
or ``<send>`` inside ``<participant>`` in the pre-RFC drafts that some SBCs still emit). Vendors add
their own elements (agent id, queue, UCID...) in other namespaces: those come out flattened in
:attr:`RecordingMetadata.extensions`.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Sequence

from callscribe.errors import SipParseError, SiprecError

from .message import _parse_params

RECORDING_NS = "urn:ietf:params:xml:ns:recording:1"
# The namespace of draft-ietf-siprec-metadata before RFC 7865 (still seen from older SBC firmware).
_DRAFT_NS = "urn:ietf:params:xml:ns:recording"
MAX_METADATA_BYTES = 1_000_000
MAX_EXTENSIONS = 256
_MAX_MULTIPART_DEPTH = 4
_MAX_XML_DEPTH = 64  # extension data deeper than this is ignored (and never recursed into)

# Elements of the RFC 7865 schema (and its drafts): in the recording namespace these are structure, any
# other element in that namespace is treated as an extension (vendors sometimes forget their xmlns).
_SCHEMA_ELEMENTS = frozenset({
    "recording", "datamode", "dataMode", "group", "associate-time", "disassociate-time", "session",
    "sipSessionID", "group-ref", "start-time", "end-time", "reason", "participant", "nameID", "name",
    "aor", "send", "recv", "stream", "label", "content-type", "mode", "sessionrecordingassoc",
    "participantsessionassoc", "participantstreamassoc", "extensiondata", "id", "session-ref",
})
# Extension elements (local name, case-insensitive) that carry a participant's role, and the values
# that decide it. In a contact centre the caller is the customer and the callee the agent.
_ROLE_ELEMENTS = frozenset({"role", "participantrole", "participant-role", "participant_role", "type",
                            "participanttype", "participant-type", "usertype", "partytype"})
_ROLE_VALUES = {"agent": "agent", "customer": "customer", "caller": "customer", "callee": "agent",
                "calling": "customer", "called": "agent", "client": "customer", "employee": "agent"}
# Acme Packet / Oracle SBC style: <callingParty>true</callingParty> inside the participant.
_CALLING_ELEMENTS = frozenset({"callingparty", "callerorig", "iscaller"})


# --- multipart --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodyPart:
    """One MIME part. ``content_type`` is lower-cased without parameters ("text/plain" when the part has
    no Content-Type, RFC 2046 5.1); ``headers`` maps canonical-cased names (``Content-Disposition``,
    ``Content-ID``) to values; ``body`` is the raw bytes (base64 transfer encoding already undone)."""

    content_type: str
    headers: dict[str, str] = field(hash=False)
    body: bytes


def _media_type_and_params(value: str) -> tuple[str, dict[str, str | None]]:
    mtype, semi, rest = value.partition(";")
    mtype = mtype.strip(" \t").lower()
    try:
        params = _parse_params(rest, "Content-Type") if semi and rest.strip(" \t;") else {}
    except SipParseError as e:  # the shared SIP parameter parser; re-typed for the SIPREC layer
        raise SiprecError(f"bad Content-Type parameters: {e}") from None
    return mtype, params


def _canonical_part_header(name: str) -> str:
    low = name.lower()
    if low == "content-id":
        return "Content-ID"
    if low == "mime-version":
        return "MIME-Version"
    return "-".join(w.capitalize() for w in low.split("-"))


def _parse_part_headers(block: bytes) -> dict[str, str]:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise SiprecError("multipart part headers are not UTF-8") from None
    headers: dict[str, str] = {}
    last: str | None = None
    for line in re.split(r"\r?\n", text):
        if not line.strip():
            continue
        if line[:1] in (" ", "\t") and last is not None:
            headers[last] = (headers[last] + " " + line.strip()).strip()
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name or any(ch in name for ch in " \t\r"):
            raise SiprecError(f"malformed part header line {line[:80]!r}")
        last = _canonical_part_header(name)
        if last in headers:
            headers[last] = headers[last] + ", " + value.strip()
        else:
            headers[last] = value.strip()
    return headers


def _split_multipart(content_type_header: str, body: bytes, depth: int) -> list[BodyPart]:
    mtype, params = _media_type_and_params(content_type_header or "")
    if not mtype.startswith("multipart/"):
        raise SiprecError(f"not a multipart body: {mtype or 'no Content-Type'}")
    boundary = params.get("boundary")
    if not boundary:
        raise SiprecError("multipart Content-Type without a boundary parameter")
    if len(boundary) > 200:
        raise SiprecError("multipart boundary longer than 200 characters")
    try:
        delim = b"--" + boundary.encode("utf-8")
    except UnicodeEncodeError:
        raise SiprecError("multipart boundary is not encodable") from None
    body = bytes(body)
    if body.startswith(delim):
        pos = 0
    else:
        found = body.find(b"\n" + delim)
        if found < 0:
            raise SiprecError(f"multipart boundary {boundary!r} not found in the body")
        pos = found + 1
    parts: list[BodyPart] = []
    while True:
        after = pos + len(delim)
        if body[after:after + 2] == b"--":
            break  # close delimiter; the epilogue is ignored
        eol = body.find(b"\n", after)
        if eol < 0:
            break  # a delimiter at the very end without close: tolerate
        start = eol + 1
        nxt = body.find(b"\n" + delim, start - 1) if start > 0 else -1
        # the next delimiter must start a line; find from start-1 so an empty part ("--b\r\n--b") works
        if nxt < 0:
            end = len(body)  # no closing delimiter: tolerate a missing close, take the rest
        else:
            end = nxt
            if end > start - 1 and body[end - 1:end] == b"\r":
                end -= 1
        content = body[start:max(start, end)]
        parts.extend(_make_part(content, depth))
        if nxt < 0:
            break
        pos = nxt + 1
    if not parts:
        raise SiprecError("multipart body has no parts")
    return parts


def _make_part(content: bytes, depth: int) -> list[BodyPart]:
    m = re.search(rb"\r?\n\r?\n", content)
    if content.startswith(b"\r\n") or content.startswith(b"\n"):
        head, payload = b"", content[2 if content.startswith(b"\r\n") else 1:]
    elif m is None:
        head, payload = content, b""  # headers only, empty body
    else:
        head, payload = content[:m.start()], content[m.end():]
    headers = _parse_part_headers(head)
    ctype_header = headers.get("Content-Type", "text/plain")
    ctype, _ = _media_type_and_params(ctype_header)
    cte = headers.get("Content-Transfer-Encoding", "").strip().lower()
    if cte == "base64":
        try:
            payload = base64.b64decode(b"".join(payload.split()), validate=True)
        except (binascii.Error, ValueError):
            raise SiprecError("invalid base64 in a multipart part") from None
    if ctype.startswith("multipart/"):
        if depth >= _MAX_MULTIPART_DEPTH:
            raise SiprecError("multipart nested too deeply")
        return _split_multipart(ctype_header, payload, depth + 1)
    return [BodyPart(ctype or "text/plain", headers, payload)]


def split_multipart(content_type_header: str, body: bytes) -> list[BodyPart]:
    """Split a multipart/mixed (or /alternative, /related) body into its parts, in order (RFC 2046).

    ``content_type_header`` is the full Content-Type value including ``boundary`` (quoted or not). CRLF
    and bare LF both work; a preamble and epilogue are ignored; a missing close delimiter is tolerated.
    Nested multiparts are flattened into the list (depth-limited). Raises SiprecError on a missing
    boundary, a boundary not in the body, or no parts.
    """
    return _split_multipart(content_type_header, body, 0)


# --- rs-metadata ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Participant:
    """A participant of the recorded call. ``send``/``receives`` are stream ids. ``role`` is "agent" or
    "customer" when the metadata carries an explicit hint (a vendor role element), else None."""

    participant_id: str
    aor: str | None
    name: str | None
    send: tuple[str, ...] = ()
    receives: tuple[str, ...] = ()
    role: str | None = None


@dataclass(frozen=True)
class MediaStream:
    stream_id: str
    label: str
    session_id: str | None = None


@dataclass(frozen=True)
class RecordingMetadata:
    recording_session_id: str | None
    group_id: str | None
    participants: tuple[Participant, ...]
    streams: tuple[MediaStream, ...]
    sip_session_ids: tuple[str, ...]
    extensions: dict[str, str] = field(default_factory=dict, hash=False)
    datamode: str | None = None

    def participant_for_label(self, label: str) -> Participant | None:
        """The participant that sends the stream whose SDP ``a=label`` is ``label``."""
        ids = {s.stream_id for s in self.streams if s.label == label}
        if not ids:
            return None
        return next((p for p in self.participants if ids.intersection(p.send)), None)

    def sender_index(self, label: str) -> int | None:
        """Position (in metadata order) of the participant sending ``label``, or None."""
        p = self.participant_for_label(label)
        return None if p is None else self.participants.index(p)


def _local(tag: object) -> tuple[str | None, str]:
    """(namespace, local name) of an ElementTree tag; comments/PIs have non-str tags."""
    if not isinstance(tag, str):
        return None, ""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


def _text(el: ET.Element | None) -> str | None:
    if el is None:
        return None
    t = "".join(el.itertext()).strip()
    return t or None


class _NoDtdBuilder:
    """TreeBuilder target that refuses a DOCTYPE: no DTD, no entities, no entity-expansion attacks.
    (The C XMLParser calls ``target.doctype`` as the DOCTYPE starts, before any ENTITY is read.)"""

    def __init__(self) -> None:
        self._tb = ET.TreeBuilder()

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise SiprecError("rs-metadata with a DOCTYPE is refused (SIPREC metadata never has one)")

    def start(self, tag, attrs):  # noqa: ANN001 - ElementTree target protocol
        return self._tb.start(tag, attrs)

    def end(self, tag):  # noqa: ANN001
        return self._tb.end(tag)

    def data(self, data):  # noqa: ANN001
        return self._tb.data(data)

    def close(self):  # noqa: ANN201
        return self._tb.close()


def _refuse_dtd_bytes(xml: bytes) -> None:
    candidates = [xml]
    if xml[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(xml) > 1 and (xml[0] == 0 or xml[1] == 0)):
        for enc in ("utf-16", "utf-16-le", "utf-16-be"):
            try:
                candidates.append(xml.decode(enc).encode("utf-8"))
            except UnicodeDecodeError:
                pass
    for c in candidates:
        low = c.lower()
        if b"<!doctype" in low or b"<!entity" in low:
            raise SiprecError("rs-metadata with a DOCTYPE/ENTITY declaration is refused")


def _parse_xml(xml: bytes) -> ET.Element:
    if len(xml) > MAX_METADATA_BYTES:
        raise SiprecError(f"rs-metadata of {len(xml)} bytes is over the {MAX_METADATA_BYTES}-byte limit")
    _refuse_dtd_bytes(xml)
    parser = ET.XMLParser(target=_NoDtdBuilder())
    try:
        parser.feed(xml)
        root = parser.close()
    except SiprecError:
        raise
    except (ET.ParseError, ValueError, LookupError, UnicodeError, TypeError, RecursionError) as e:
        raise SiprecError(f"rs-metadata is not well-formed XML: {e}") from None
    if not isinstance(root, ET.Element):
        raise SiprecError("rs-metadata has no root element")
    return root


def _attr(el: ET.Element, *names: str) -> str | None:
    for n in names:
        v = el.get(n)
        if v is not None and v.strip():
            return v.strip()
    return None


def _role_from(el: ET.Element, rec_ns: set[str | None]) -> str | None:
    """An explicit role hint among the extension elements under a participant."""
    for sub in el.iter():
        ns, local = _local(sub.tag)
        if ns in rec_ns and local in _SCHEMA_ELEMENTS:
            continue
        value = (_text(sub) or "").lower() if len(sub) == 0 else ""
        low = local.lower()
        if low in _ROLE_ELEMENTS and value in _ROLE_VALUES:
            return _ROLE_VALUES[value]
        if low in _CALLING_ELEMENTS and value in ("true", "false", "1", "0", "yes", "no"):
            return "customer" if value in ("true", "1", "yes") else "agent"
    return None


def _collect_extensions(root: ET.Element, rec_ns: set[str | None]) -> dict[str, str]:
    """Leaf elements that are not RFC 7865 structure, flattened: local name -> stripped text. The first
    occurrence wins (document order), so a group/session-level value beats a participant-level one."""
    out: dict[str, str] = {}

    def walk(el: ET.Element, inside_ext: bool, depth: int) -> None:
        if depth > _MAX_XML_DEPTH:
            return
        for child in el:
            ns, local = _local(child.tag)
            if not local:
                continue
            is_ext = inside_ext or ns not in rec_ns or local not in _SCHEMA_ELEMENTS
            if len(child):
                walk(child, is_ext, depth + 1)
            elif is_ext and len(out) < MAX_EXTENSIONS:
                text = _text(child)
                if text is not None:
                    out.setdefault(local, text)

    walk(root, False, 0)
    return out


def parse_rs_metadata(xml: bytes) -> RecordingMetadata:
    """Parse ``application/rs-metadata+xml`` (RFC 7865 section 9 / its XML schema, section 10).

    Accepts the RFC namespace, the draft namespace, or none; ``participant_id``/``stream_id``/
    ``session_id`` attributes (or the drafts' ``id``); stream association through
    ``<participantstreamassoc>`` and/or ``<send>``/``<recv>`` inside ``<participant>``. Refuses any
    DOCTYPE/ENTITY declaration and documents over 1 MB. Raises SiprecError.
    """
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    root = _parse_xml(bytes(xml))
    root_ns, root_local = _local(root.tag)
    if root_local != "recording":
        raise SiprecError(f"rs-metadata root element is <{root_local or '?'}>, not <recording>")
    rec_ns: set[str | None] = {root_ns, RECORDING_NS, _DRAFT_NS}
    if root_ns is None:
        rec_ns.add(None)

    def children(el: ET.Element, name: str) -> list[ET.Element]:
        return [c for c in el if _local(c.tag)[1] == name and _local(c.tag)[0] in rec_ns]

    def child(el: ET.Element, *names: str) -> ET.Element | None:
        # (never `a or b` on Elements: an Element without children is falsy)
        for name in names:
            found = children(el, name)
            if found:
                return found[0]
        return None

    datamode = _text(child(root, "datamode", "dataMode"))
    sessions = children(root, "session")
    recording_session_id = next((v for s in sessions if (v := _attr(s, "session_id", "id"))), None)
    groups = children(root, "group")
    group_id = next((v for g in groups if (v := _attr(g, "group_id", "id"))), None)
    if group_id is None:
        group_id = next((v for s in sessions if (v := _text(child(s, "group-ref")))), None)
    sip_ids: list[str] = []
    for s in sessions:
        for sid in children(s, "sipSessionID"):
            t = _text(sid)
            if t:
                sip_ids.append("".join(t.split()))  # Session-ID values have no spaces; RFC examples wrap

    sends: dict[str, list[str]] = {}
    recvs: dict[str, list[str]] = {}
    for assoc in children(root, "participantstreamassoc"):
        pid = _attr(assoc, "participant_id", "id")
        if pid is None:
            continue
        sends.setdefault(pid, []).extend(t for e in children(assoc, "send") if (t := _text(e)))
        recvs.setdefault(pid, []).extend(t for e in children(assoc, "recv") if (t := _text(e)))

    participants: list[Participant] = []
    for p in children(root, "participant"):
        pid = _attr(p, "participant_id", "id")
        if pid is None:
            continue
        name_id = child(p, "nameID", "nameId")
        aor = _attr(name_id, "aor") if name_id is not None else None
        aor = aor or _text(child(p, "aor"))
        name = _text(child(name_id, "name")) if name_id is not None else None
        name = name or _text(child(p, "name"))
        send = [t for e in children(p, "send") if (t := _text(e))] + sends.get(pid, [])
        recv = [t for e in children(p, "recv") if (t := _text(e))] + recvs.get(pid, [])
        participants.append(Participant(pid, aor, name, tuple(dict.fromkeys(send)), tuple(dict.fromkeys(recv)),
                                        _role_from(p, rec_ns)))

    streams: list[MediaStream] = []
    for s in children(root, "stream"):
        sid = _attr(s, "stream_id", "id")
        label = _text(child(s, "label"))
        if sid is None or label is None:
            continue
        streams.append(MediaStream(sid, label, _attr(s, "session_id", "session")))

    return RecordingMetadata(recording_session_id, group_id, tuple(participants), tuple(streams),
                             tuple(sip_ids), _collect_extensions(root, rec_ns), datamode)


# --- channels ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleRules:
    """Site rules naming agents and customers: fnmatch globs, case-insensitive, matched against each
    participant's AoR and display name (e.g. ``"sip:10*@*"``, ``"*@agents.example.com"``). When both
    lists match the same participant, the agent rule wins (agent patterns are the specific ones)."""

    agent_patterns: tuple[str, ...] = ()
    customer_patterns: tuple[str, ...] = ()

    def role_of(self, participant: Participant | None) -> str | None:
        if participant is None:
            return None
        values = [v.casefold() for v in (participant.aor, participant.name) if v]
        if not values:
            return None

        def hit(patterns: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatchcase(v, p.casefold()) for p in patterns for v in values)

        if hit(self.agent_patterns):
            return "agent"
        if hit(self.customer_patterns):
            return "customer"
        return None


_OTHER = {"agent": "customer", "customer": "agent"}


def assign_channels(meta: RecordingMetadata, labels: Sequence[str], rules: RoleRules) -> dict[str, str]:
    """Map each stream label to "customer" or "agent".

    Evidence per label, strongest first: (1) ``rules`` matching the participant that sends it; (2) a role
    hint in that participant's extension data (``<role>agent</role>``, ``<callingParty>true``...);
    (3) metadata order: SRCs list the caller first, so the first participant is the customer and later
    ones agents; (4) label order: the first label is the customer, the second the agent.

    Two streams always end up on different channels: the label with the strongest evidence keeps its
    role (ties: earlier label) and the other takes the opposite. One stream gets its own evidence (default
    customer). With more than two streams each label gets its own role and repeats are numbered in label
    order: "customer", "agent", "agent2", "agent3", ... (so channel names stay unique).
    """
    uniq = list(dict.fromkeys(labels))
    if not uniq:
        return {}
    evidence: list[tuple[int, str | None, int | None]] = []  # (strength, role, sender index)
    for label in uniq:
        p = meta.participant_for_label(label)
        idx = meta.participants.index(p) if p is not None else None
        rule = rules.role_of(p)
        if rule is not None:
            evidence.append((3, rule, idx))
        elif p is not None and p.role is not None:
            evidence.append((2, p.role, idx))
        elif idx is not None:
            evidence.append((1, "customer" if idx == 0 else "agent", idx))
        else:
            evidence.append((0, None, None))

    if len(uniq) == 2:
        (sa, ra, ia), (sb, rb, ib) = evidence
        if ra is not None and rb is not None and ra != rb:
            return {uniq[0]: ra, uniq[1]: rb}
        if sa == sb == 1 and ia is not None and ib is not None and ia != ib:
            first_is_customer = ia < ib  # both from order: the earlier participant is the customer
            return {uniq[0]: "customer" if first_is_customer else "agent",
                    uniq[1]: "agent" if first_is_customer else "customer"}
        if sa == 0 and sb == 0:
            return {uniq[0]: "customer", uniq[1]: "agent"}
        if sb > sa:
            role_b = rb or "customer"
            return {uniq[0]: _OTHER[role_b], uniq[1]: role_b}
        role = ra or "customer"
        return {uniq[0]: role, uniq[1]: _OTHER[role]}

    roles: list[str] = []
    for n, (strength, role, _idx) in enumerate(evidence):
        roles.append(role if role is not None else ("customer" if n == 0 else "agent"))
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for label, role in zip(uniq, roles):
        seen[role] = seen.get(role, 0) + 1
        out[label] = role if seen[role] == 1 else f"{role}{seen[role]}"
    return out


__all__ = [
    "BodyPart", "split_multipart", "Participant", "MediaStream", "RecordingMetadata", "parse_rs_metadata",
    "RoleRules", "assign_channels", "RECORDING_NS",
]
