"""The pure SIP parsing layer: SIP messages (RFC 3261 section 7), TCP framing (18.3), responses (8.2.6),
SDP offer/answer (RFC 4566 / 3264) and SIPREC bodies (RFC 7866 / 7865).

Realistic fixtures live in tests/data/sip (see its README). Torture cases follow RFC 4475. The hypothesis
tests feed arbitrary and mutated input to every parser: the only exceptions allowed out are the typed
SipParseError family.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callscribe.errors import SdpError, SipParseError, SiprecError
from callscribe.gateway.sip.message import (
    COMPACT,
    Headers,
    SipRequest,
    SipResponse,
    StreamFramer,
    Via,
    error_response,
    make_response,
    new_branch,
    new_tag,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from callscribe.gateway.sip.sdp import build_answer, negotiate, parse_sdp
from callscribe.gateway.sip.siprec import (
    MediaStream,
    Participant,
    RecordingMetadata,
    RoleRules,
    assign_channels,
    parse_rs_metadata,
    split_multipart,
)

DATA = Path(__file__).parent / "data" / "sip"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load(name: str) -> bytes:
    """A fixture as wire bytes: LF -> CRLF, ``[length]`` -> the body length (see tests/data/sip/README.md)."""
    text = (DATA / name).read_text(encoding="utf-8")
    head, body = text.split("\n\n", 1)
    body_b = body.replace("\n", "\r\n").encode()
    head = head.replace("[length]", str(len(body_b))).replace("\n", "\r\n")
    return head.encode() + b"\r\n\r\n" + body_b


def crlf(*lines: str, body: bytes = b"") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parts_of(msg: SipRequest) -> tuple[bytes, bytes]:
    parts = split_multipart(msg.headers.get("Content-Type") or "", msg.body)
    sdp = next(p.body for p in parts if p.content_type == "application/sdp")
    meta = next(p.body for p in parts if p.content_type.startswith("application/rs-metadata"))
    return sdp, meta


def answer_media(answer: bytes) -> list[list[str]]:
    """The answer's m-sections as lists of lines (for asserting what each stream got)."""
    out: list[list[str]] = []
    for line in answer.decode().split("\r\n"):
        if line.startswith("m="):
            out.append([line])
        elif out and line:
            out[-1].append(line)
    return out


BASIC_SDP = b"v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"


def basic_invite(extra: tuple[str, ...] = (), body: bytes = BASIC_SDP, method: str = "INVITE") -> bytes:
    return crlf(
        f"{method} sip:srs@10.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-1;rport",
        "From: <sip:src@10.0.0.9>;tag=abc",
        "To: <sip:srs@10.0.0.1>",
        "Call-ID: c1@10.0.0.9",
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
        *extra,
        "Content-Type: application/sdp",
        f"Content-Length: {len(body)}",
        body=body,
    )


# --- realistic fixtures ------------------------------------------------------------------------------


def test_asterisk_invite_fields_codecs_and_answer():
    msg = parse_message(load("asterisk_invite.sip"))
    assert isinstance(msg, SipRequest)
    assert (msg.method, msg.uri, msg.version) == ("INVITE", "sip:recorder@10.0.0.1:5060", "SIP/2.0")
    assert msg.call_id == "2f6c1b0e-7d3a-4a59-9c8e-0b1d2e3f4a5b" and msg.cseq == (11111, "INVITE")
    assert msg.from_tag == "6a0c1e8e-4a8e-4d7f-a1c3-9b2f0d4e5c67" and msg.to_tag is None
    assert msg.branch == "z9hG4bKPj3f1c7e5a-8b1d-4f0e-9d3a-2c6b7e8f9a01"
    via = msg.top_via
    assert (via.transport, via.host, via.port, via.rport_requested, via.rport) == ("UDP", "10.0.0.20", 5060, True, None)
    assert msg.content_type == "application/sdp" and msg.headers.get("x-agent-id") == "4711"
    assert msg.headers.get_all("Supported") == ["100rel", "timer", "replaces", "norefersub", "histinfo"]
    assert parse_name_addr(msg.headers.get("From")).display == "John Customer"
    assert parse_uri(parse_name_addr(msg.headers.get("P-Asserted-Identity")).uri).user == "+14155550123"

    offer = parse_sdp(msg.body)
    m = offer.media[0]
    assert (m.media, m.port, m.proto, m.formats) == ("audio", 15062, "RTP/AVP", ["0", "8", "101"])
    assert m.rtpmap[101] == ("TELEPHONE-EVENT", 8000, 1) and m.fmtp[101] == "0-16" and m.ptime == 20
    assert m.direction == "sendrecv" and offer.media_address(0) == "10.0.0.20"
    (choice,) = negotiate(offer)
    assert (choice.accepted, choice.codec, choice.payload_type, choice.clock_rate, choice.dtmf_payload_type) == (
        True, "PCMU", 0, 8000, 101)
    assert negotiate(offer, ("pcma",))[0].payload_type == 8  # our list filters, the offer orders

    answer = build_answer(offer, [choice], "10.0.0.1", [30000], session_id=42)
    assert b"o=callscribe 42 42 IN IP4 10.0.0.1\r\n" in answer and b"c=IN IP4 10.0.0.1\r\n" in answer
    assert answer_media(answer) == [["m=audio 30000 RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000",
                                     "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20",
                                     "a=recvonly"]]
    assert parse_sdp(answer).media[0].direction == "recvonly"


def test_siprec_rfc7866_invite_multipart_sdp_and_metadata():
    msg = parse_message(load("siprec_rfc7866.sip"))
    assert msg.headers.get("Require") == "siprec" and "+sip.src" in msg.headers.get("Contact")
    # folded headers are unfolded to one line (the fold counts as one space)
    assert msg.headers.get("Session-ID") == "ab30317f1a784dc48ff824d0d3715d86 ;remote=00000000000000000000000000000000"
    assert msg.headers.get_all("Accept") == ["application/sdp", "application/rs-metadata", "application/rs-metadata-request"]
    assert msg.content_type == "multipart/mixed"

    parts = split_multipart(msg.headers.get("Content-Type"), msg.body)
    assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata"]
    assert parts[1].headers["Content-Disposition"] == "recording-session"
    assert parts[1].body.startswith(b"<?xml") and parts[1].body.endswith(b"</recording>")

    offer = parse_sdp(parts[0].body)
    assert [(m.label, m.direction, m.port) for m in offer.media] == [("1", "sendonly", 12240), ("2", "sendonly", 12242)]
    choices = negotiate(offer)
    assert [(c.accepted, c.codec, c.dtmf_payload_type) for c in choices] == [(True, "PCMU", None)] * 2

    meta = parse_rs_metadata(parts[1].body)
    assert meta.recording_session_id == "hVpd7YQgRW2nD22h7q60JQ==" and meta.group_id == "7+OTCyoxTmqmqyA/1weDAg=="
    assert meta.sip_session_ids == ("ab30317f1a784dc48ff824d0d3715d86;remote=00000000000000000000000000000000",)
    assert meta.datamode == "complete"
    assert [(p.aor, p.name) for p in meta.participants] == [("sip:alice@atlanta.com", "Alice"), ("sip:bob@biloxy.com", "Bob")]
    assert meta.participants[0].send == ("UAAMm5GRQKSCMVvLyl4rFw==",)
    assert meta.participants[0].receives == ("i1Pz3to5hGk8fuXl+PbwCw==",)
    assert meta.streams[1] == MediaStream("i1Pz3to5hGk8fuXl+PbwCw==", "2", "hVpd7YQgRW2nD22h7q60JQ==")
    assert meta.participant_for_label("2").name == "Bob" and meta.participant_for_label("9") is None
    assert meta.extensions == {"supervisor": "sip:alice@atlanta.com"}  # the RFC's call-center extension
    assert assign_channels(meta, ["1", "2"], RoleRules()) == {"1": "customer", "2": "agent"}
    assert assign_channels(meta, ["1", "2"], RoleRules(agent_patterns=("sip:alice@*",))) == {"1": "agent", "2": "customer"}

    answer = build_answer(offer, choices, "192.0.2.50", [40000, 40002])
    assert answer_media(answer) == [
        ["m=audio 40000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=label:1", "a=recvonly"],
        ["m=audio 40002 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=label:2", "a=recvonly"],
    ]


def test_cube_style_siprec_with_extension_data_and_role_hint():
    msg = parse_message(load("siprec_cube.sip"))
    assert msg.headers.get("MIME-Version") == "1.0" and msg.headers.get("Cisco-Guid").startswith("1533853326")
    sdp, xml = parts_of(msg)  # boundary given quoted
    offer = parse_sdp(sdp)
    choices = negotiate(offer, ("PCMU", "PCMA"))
    assert [(c.codec, c.payload_type, c.dtmf_payload_type) for c in choices] == [("PCMA", 8, 101)] * 2
    answer = build_answer(offer, choices, "10.10.1.50", [20000, 20002])
    assert [m[0] for m in answer_media(answer)] == ["m=audio 20000 RTP/AVP 8 101", "m=audio 20002 RTP/AVP 8 101"]
    assert "a=fmtp:101 0-15" in answer_media(answer)[0]  # the offered event range is echoed

    meta = parse_rs_metadata(xml)
    assert meta.extensions["agentId"] == "4711" and meta.extensions["queue"] == "billing-en"
    assert meta.extensions["gcid"] == "5B6C7D8E-11EF-1DD8-8001-A2B3C4D5E6F7" and meta.group_id is None
    agent, customer = meta.participants
    assert agent.role == "agent" and customer.role is None
    # outbound call: the agent is listed first, but the explicit role beats metadata order
    assert assign_channels(meta, ["1", "2"], RoleRules()) == {"1": "agent", "2": "customer"}
    # and a site rule beats the vendor's hint
    assert assign_channels(meta, ["1", "2"], RoleRules(customer_patterns=("*@cucm.example.com",))) == {
        "1": "customer", "2": "agent"}


def test_draft_metadata_with_send_inside_participant_and_calling_party_hints():
    meta = parse_rs_metadata((DATA / "siprec_draft_metadata.xml").read_bytes())
    assert meta.recording_session_id == "0PdEkKHrEeSMEwBZthXCJQ==" and meta.datamode == "complete"
    assert [s.label for s in meta.streams] == ["10", "11"] and meta.streams[0].session_id == "0PdEkKHrEeSMEwBZthXCJQ=="
    assert [p.role for p in meta.participants] == ["agent", "customer"]
    assert meta.participant_for_label("10").aor == "sip:+15105551234@carrier.example.net"
    assert meta.extensions["ucid"] == "00FA080018803B6B7A3E01" and "mode" not in meta.extensions
    assert assign_channels(meta, ["10", "11"], RoleRules()) == {"10": "customer", "11": "agent"}


# --- headers, compact forms, folding -----------------------------------------------------------------


def test_compact_headers_are_expanded_and_written_long():
    raw = crlf(
        "INVITE sip:bob@example.com SIP/2.0",
        "v: SIP/2.0/UDP pc33.example.com;branch=z9hG4bKnashds8",
        "f: Alice <sip:alice@example.com>;tag=1928301774",
        "t: Bob <sip:bob@example.com>",
        "i: a84b4c76e66710@pc33.example.com",
        "CSeq: 314159 INVITE",
        "m: <sip:alice@pc33.example.com>",
        "k: timer, 100rel",
        "s: hello",
        "c: application/sdp; charset=utf-8",
        "l: 0",
    )
    msg = parse_message(raw)
    assert msg.call_id == "a84b4c76e66710@pc33.example.com" and msg.from_tag == "1928301774"
    assert msg.headers.get("Call-ID") == msg.headers.get("i") == msg.headers.get("CALL-ID")
    assert [n for n, _ in msg.headers.items()][:4] == ["Via", "From", "To", "Call-ID"]
    assert msg.headers.get_all("Supported") == ["timer", "100rel"] and msg.content_type == "application/sdp"
    out = msg.to_bytes()
    assert b"\r\nContact: <sip:alice@pc33.example.com>\r\n" in out and b"\r\nSubject: hello\r\n" in out
    assert b"\r\nl:" not in out and out.endswith(b"Content-Length: 0\r\n\r\n")
    assert set(COMPACT) >= {"i", "m", "e", "l", "c", "f", "s", "k", "t", "v", "o", "u", "r", "b", "x"}


def test_header_folding_with_spaces_and_tabs():
    msg = parse_message(basic_invite(("Subject: I know you're there,", "\tpick up the phone", "   and talk to me!")))
    assert msg.headers.get("Subject") == "I know you're there, pick up the phone and talk to me!"


def test_multiple_via_in_one_header_and_across_lines():
    msg = parse_message(crlf(
        "OPTIONS sip:srs@10.0.0.1 SIP/2.0",
        "Via: SIP/2.0/TLS three.example.org;branch=z9hG4bK3,",
        "\tSIP/2.0/TCP two.example.org;branch=z9hG4bK2 , SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bK1",
        "v: SIP/2.0/UDP one.example.org;branch=z9hG4bK0;received=192.0.2.7;rport=5099",
        "From: <sip:a@example.org>;tag=1", "To: <sip:srs@10.0.0.1>", "Call-ID: mv1", "CSeq: 7 OPTIONS",
        "Content-Length: 0",
    ))
    hosts = [(v.transport, v.host, v.port, v.branch) for v in msg.vias]
    assert hosts == [("TLS", "three.example.org", None, "z9hG4bK3"), ("TCP", "two.example.org", None, "z9hG4bK2"),
                     ("UDP", "2001:db8::1", 5062, "z9hG4bK1"), ("UDP", "one.example.org", None, "z9hG4bK0")]
    assert msg.top_via.host == "three.example.org" and msg.branch == "z9hG4bK3"
    assert msg.headers.get("Via") == "SIP/2.0/TLS three.example.org;branch=z9hG4bK3"  # first element, not the line
    last = msg.vias[-1]
    assert last.received == "192.0.2.7" and last.rport == 5099 and last.sent_by == "one.example.org"
    resp = make_response(msg, 200)
    assert parse_message(resp.to_bytes()).vias == msg.vias  # all Vias, in order


def test_headers_api():
    h = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("x-custom", "1"), ("Contact", '"Doe, J" <sip:j@x>, <sip:k@y;a=b,c>')])
    h.add("contact", "*")
    assert h.get_all("m") == ['"Doe, J" <sip:j@x>', "<sip:k@y;a=b,c>", "*"]  # quotes and <...> are not split
    assert "CONTACT" in h and "Route" not in h and 5 not in h
    assert h.get("Route") is None and h.get("Route", "dflt") == "dflt"
    h.add("X-Custom", "2")
    assert h.get_all("X-CUSTOM") == ["1", "2"]
    h.set("x-custom", "3")
    assert h.get_all("x-custom") == ["3"] and [n.lower() for n, _ in h.items()].index("x-custom") == 1  # kept its place
    c = h.copy()
    c.remove("Contact")
    assert "Contact" in h and "Contact" not in c and len(c) == 2
    assert Headers(h.items()) == h and Headers() != h
    with pytest.raises(ValueError):
        h.add("X-Evil", "a\r\nVia: injected")
    with pytest.raises(ValueError):
        h.set("X-Evil", "a\nb")
    h.set("Allow", "")
    assert h.get("Allow") == "" and h.get_all("Allow") == []


def test_to_bytes_sets_content_length_and_roundtrips():
    msg = parse_message(basic_invite())
    msg.body = b"v=0\r\n"
    msg.headers.add("Content-Length", "999")  # stale/duplicate values never reach the wire
    out = msg.to_bytes()
    assert out.count(b"Content-Length") == 1 and b"Content-Length: 5\r\n\r\nv=0\r\n" in out
    again = parse_message(out)
    assert (again.method, again.uri, again.body, again.call_id) == (msg.method, msg.uri, b"v=0\r\n", msg.call_id)
    req = SipRequest("BYE", "sip:a@b", Headers([("Via", f"SIP/2.0/UDP h;branch={new_branch()}"), ("From", "<sip:x@y>;tag=1"),
                                                ("To", "<sip:a@b>;tag=2"), ("Call-ID", "x"), ("CSeq", "2 BYE")]))
    assert parse_message(req.to_bytes()).cseq == (2, "BYE")


def test_udp_body_bounds():
    body = BASIC_SDP
    trailing = basic_invite(body=body) + b"garbage after the message"
    assert parse_message(trailing).body == body  # bytes past Content-Length are ignored on UDP
    no_cl = basic_invite(body=body).replace(f"Content-Length: {len(body)}\r\n".encode(), b"")
    assert parse_message(no_cl).body == body  # no Content-Length: the rest of the datagram
    assert parse_message(b"\r\n\r\n" + basic_invite()).method == "INVITE"  # CRLFs before the start-line
    lf_only = basic_invite(body=b"").replace(b"\r\n", b"\n")
    assert parse_message(lf_only).call_id == "c1@10.0.0.9"  # bare-LF senders are tolerated


def test_response_parsing():
    raw = crlf(
        "SIP/2.0 183 Session Progress",
        "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923",
        "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23",
        "Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf",
        "CSeq: 35 INVITE",
        "From: sip:user@example.com;tag=11141343",
        "To: sip:user@example.edu;tag=2229",
        "Content-Length: 0",
    )
    resp = parse_message(raw)
    assert isinstance(resp, SipResponse)
    assert (resp.status, resp.reason, resp.cseq, resp.to_tag, resp.from_tag) == (183, "Session Progress", (35, "INVITE"), "2229", "11141343")
    assert len(resp.vias) == 2 and resp.branch == "z9hG4bK1324923"
    # RFC 4475 'unreason': any UTF-8 reason phrase; 'noreason': an empty one
    assert parse_message(raw.replace(b"183 Session Progress", "200 = 2**3 * 5**2 но сто девяносто девять".encode())).reason.startswith("= 2**3")
    assert parse_message(raw.replace(b"183 Session Progress", b"100 ")).reason == ""
    assert parse_message(raw.replace(b"183 Session Progress", b"399 Novel Status")).status == 399


# --- make_response -----------------------------------------------------------------------------------


def test_make_response_copies_the_right_headers():
    raw = basic_invite(("Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1", "Record-Route: <sip:p1.example.com;lr>",
                        "Record-Route: <sip:p2.example.com;lr>", "Timestamp: 54.5"))
    inv = parse_message(raw)
    ok = make_response(inv, 200, to_tag="srs1", body=b"v=0\r\n", content_type="application/sdp",
                       headers=[("Contact", "<sip:srs@10.0.0.1>")])
    assert ok.reason == "OK" and ok.to_tag == "srs1" and ok.from_tag == "abc"
    assert ok.headers.get_all("Via") == inv.headers.get_all("Via")
    assert ok.headers.get_all("Record-Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert (ok.call_id, ok.cseq, ok.content_type) == (inv.call_id, inv.cseq, "application/sdp")
    assert "Max-Forwards" not in ok.headers and "Timestamp" not in ok.headers
    wire = parse_message(ok.to_bytes())
    assert isinstance(wire, SipResponse) and wire.body == b"v=0\r\n" and wire.headers.get("Contact") == "<sip:srs@10.0.0.1>"

    trying = make_response(inv, 100, to_tag="srs1")
    assert trying.reason == "Trying" and trying.to_tag is None  # never a tag on 100
    assert trying.headers.get("Timestamp") == "54.5" and "Record-Route" not in trying.headers

    bye = parse_message(basic_invite(("Record-Route: <sip:p1.example.com;lr>",), body=b"", method="BYE"))
    assert "Record-Route" not in make_response(bye, 200).headers
    tagged = parse_message(basic_invite().replace(b"To: <sip:srs@10.0.0.1>", b"To: <sip:srs@10.0.0.1>;tag=old"))
    assert make_response(tagged, 486, to_tag="new").headers.get("To") == "<sip:srs@10.0.0.1>;tag=old"


@pytest.mark.parametrize("status,reason", [
    (180, "Ringing"), (400, "Bad Request"), (403, "Forbidden"), (404, "Not Found"), (405, "Method Not Allowed"),
    (408, "Request Timeout"), (415, "Unsupported Media Type"), (420, "Bad Extension"),
    (481, "Call/Transaction Does Not Exist"), (486, "Busy Here"), (487, "Request Terminated"),
    (488, "Not Acceptable Here"), (491, "Request Pending"), (500, "Server Internal Error"), (501, "Not Implemented"),
    (503, "Service Unavailable"), (513, "Message Too Large"), (299, "OK"), (699, "Global Failure"),
])
def test_default_reason_phrases(status, reason):
    assert make_response(parse_message(basic_invite()), status).reason == reason


def test_make_response_rejects_bad_arguments_and_tags_are_random():
    inv = parse_message(basic_invite())
    with pytest.raises(ValueError):
        make_response(inv, 99)
    with pytest.raises(ValueError):
        make_response(inv, 200, to_tag="bad tag")
    assert make_response(inv, 503, "Busy, try later", headers=[("Retry-After", "5")]).reason == "Busy, try later"
    tags = {new_tag() for _ in range(50)}
    assert len(tags) == 50 and all(len(t) >= 8 for t in tags)
    assert all(b.startswith("z9hG4bK") and len(b) > 16 for b in {new_branch() for _ in range(10)})


# --- RFC 4475 torture cases --------------------------------------------------------------------------

WSINV_SDP = ("v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\n"
             "m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n").encode()
WSINV = "\r\n".join([
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0",
    "TO :",
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>',
    "  ;",
    "  tag = 98asjd8",
    "MaX-fOrWaRdS: 0068",
    "Call-ID: wsinv.ndaksdj@192.0.2.1",
    "Content-Length   : 150",
    "cseq: 0009",
    "  INVITE",
    "Via  : SIP  /   2.0",
    " /UDP",
    "    192.0.2.2;branch=390skdjuw",
    "s :",
    "NewFangledHeader:   newfangled value",
    " continued newfangled value",
    "UnknownHeaderWithUnusualValue: ;;,,;;,;",
    "Content-Type: application/sdp",
    "Route:",
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;",
    "  branch  =   z9hG4bK9ikj8  ,",
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=",
    " z9hG4bK30239",
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =',
    "      newvalue ;",
    "  secondparam ; q = 0.33",
    "", "",
]).encode() + WSINV_SDP


def test_rfc4475_wsinv_short_tortuous_invite():
    assert len(WSINV_SDP) == 150
    msg = parse_message(WSINV)
    assert msg.uri == "sip:vivekg@chair-dnrc.example.com;unknownparam" and msg.cseq == (9, "INVITE")
    assert msg.to_tag == "1918181833n" and msg.from_tag == "98asjd8"
    assert parse_name_addr(msg.headers.get("From")).display == 'J Rosenberg \\"'
    assert msg.headers.get("Max-Forwards") == "0068" and msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"), ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239")]
    contact = parse_name_addr(msg.headers.get("Contact"))
    assert contact.display == 'Quoted string ""' and contact.uri == "sip:jdrosen@example.com"
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert msg.headers.get("Route") == "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    offer = parse_sdp(msg.body)  # 'a=rtpmap:31 LPC' is malformed: tolerated, not fatal
    assert [c.accepted for c in negotiate(offer)] == [True, False] and 31 not in offer.media[1].rtpmap


def test_rfc4475_intmeth_wide_range_of_valid_characters():
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    uri = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    raw = "\r\n".join([
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~",
        'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@example.com>',
        "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-.",
        "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
        f"CSeq: 139122385 {method}",
        "Max-Forwards: 255",
        "extensionHeader-!.%*+_`'~:\ufeff大停電",
        "Content-Length: 0", "", "",
    ]).encode()
    msg = parse_message(raw)
    assert msg.method == method and msg.uri == uri and msg.cseq == (139122385, method)
    u = parse_uri(msg.uri)
    assert u.host == "example.com" and u.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert parse_name_addr(msg.headers.get("To")).display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    frm = parse_name_addr(msg.headers.get("From"))
    assert frm.display == "token1~` token2'+_ token3*%!.-" and frm.params["fromparam''~+*_!.-%"] == "работающий"
    assert msg.from_tag == "_token~1'+`*%!-." and msg.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert parse_message(msg.to_bytes()).headers == msg.headers


def test_rfc4475_escapes_unknown_schemes_and_odd_but_valid_forms():
    esc01 = parse_message(crlf(
        "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0",
        "To: sip:%75se%72@example.com", "From: <sip:I%20have%20spaces@example.net>;tag=938", "Max-Forwards: 87",
        "i: esc01.239409asdfakjkn23onasd0-3234", "CSeq: 234234 INVITE",
        "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw", "C: application/sdp",
        "Contact:", "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>",
        f"Content-Length: {len(WSINV_SDP)}", body=WSINV_SDP))
    assert parse_uri(esc01.uri).user == "sips:user@example.com" and parse_uri(esc01.uri).host == "example.net"
    assert parse_uri(parse_name_addr(esc01.headers.get("To")).uri).user == "user"
    contact = parse_uri(parse_name_addr(esc01.headers.get("Contact")).uri)
    assert contact.user == "caller" and contact.params == {"lr": None, "name": "value%41"}

    esc02 = parse_message(crlf(
        "RE%47IST%45R sip:registrar.example.com SIP/2.0", 'To: "%Z%45" <sip:resource@example.com>',
        'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23', "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
        "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234", "CSeq: 29344 RE%47IST%45R",
        "Max-Forwards: 70", "Contact: <sip:alias1@host1.example.com>", "C%6Fntact: <sip:alias2@host2.example.com>",
        "Contact: <sip:alias3@host3.example.com>", "l: 0"))
    assert esc02.method == "RE%47IST%45R" and esc02.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert esc02.headers.get_all("Contact") == ["<sip:alias1@host1.example.com>", "<sip:alias3@host3.example.com>"]
    assert parse_name_addr(esc02.headers.get("To")).display == "%Z%45"

    unkscm = parse_message(crlf(
        "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0", "To: isbn:2983792873",
        "From: <http://www.example.com>;tag=3234233", "Call-ID: unksm2.daksdj@hyphenated-host.example.com",
        "CSeq: 234902 OPTIONS", "Max-Forwards: 3", "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw",
        "Contact: <name:John_Smith>", "l: 0"))
    assert unkscm.uri == "nobodyKnowsThisScheme:totallyopaquecontent" and parse_name_addr(unkscm.headers.get("To")).uri == "isbn:2983792873"

    # inv2543: an RFC 2543 client: no From tag, no branch, no Max-Forwards, no Content-Length
    old = parse_message(crlf(
        "INVITE sip:UserB@example.com SIP/2.0", "Via: SIP/2.0/UDP iftgw.example.com",
        "From: <sip:+13035551111@ift.client.example.net;user=phone>",
        "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>",
        "To: sip:+16505552222@ss1.example.net;user=phone", "Call-ID: inv2543.1717@ift.client.example.com",
        "CSeq: 56 INVITE", "Content-Type: application/sdp", body=BASIC_SDP))
    assert old.from_tag is None and old.branch is None and old.body == BASIC_SDP
    assert parse_name_addr(old.headers.get("To")).params == {"user": "phone"}  # bare form: a header param

    trws = basic_invite(method="OPTIONS", body=b"").replace(b"SIP/2.0\r\n", b"SIP/2.0  \r\n", 1)
    assert parse_message(trws).uri == "sip:srs@10.0.0.1"  # trailing SP after the version: be liberal
    zeromf = parse_message(basic_invite().replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    assert zeromf.headers.get("Max-Forwards") == "0"
    escnull = parse_message(basic_invite(("Contact: <sip:%00@host5.example.com>", "Contact: <sip:%00%00@host5.example.com>")))
    assert parse_uri(parse_name_addr(escnull.headers.get_all("Contact")[1]).uri).user == "\x00\x00"


def test_long_values_and_many_vias():
    vias = [f"Via: SIP/2.0/UDP host{i}.example.com;branch=z9hG4bK{i:04d}" for i in range(60)]
    longname = "I have a user name of " + "extreme" * 100 + " proportion"
    tag = "12982" * 60
    raw = crlf(
        "INVITE sip:user@example.com SIP/2.0",
        f'To: "{longname}"<sip:user@example.com:6000;unknownparam1=very{"long" * 40}value;'
        f'longparam{"name" * 40}=shortvalue;very{"long" * 40}ParameterNameWithNoValue>',
        f"F: sip:amazinglylongcallername@example.net;tag={tag};unknownheaderparam{'name' * 30}=unknowheaderparamvalue",
        "Call-ID: longreq.one" + "really" * 100 + "longcallid", "CSeq: 3882340 INVITE", "Max-Forwards: 70", *vias,
        "X-Extremely-Long: " + "a" * 20000, "l: 0")
    msg = parse_message(raw)
    assert len(msg.vias) == 60 and msg.vias[-1].branch == "z9hG4bK0059" and msg.from_tag == tag
    to = parse_name_addr(msg.headers.get("To"))
    assert to.display == longname and parse_uri(to.uri).port == 6000
    assert len(msg.headers.get("X-Extremely-Long")) == 20000


CL = f"Content-Length: {len(BASIC_SDP)}".encode()
INVALID = {
    "badinv01 empty Via params": basic_invite().replace(b"branch=z9hG4bK-1;rport", b";,;,,"),
    "badcseq": basic_invite().replace(b"CSeq: 1 INVITE", b"CSeq: fhdjkgfhdkjhgkj"),
    "clerr body shorter than Content-Length": basic_invite().replace(CL, b"Content-Length: 9999"),
    "ncl negative Content-Length": basic_invite().replace(CL, b"Content-Length: -999"),
    "mcl01 two Content-Lengths": basic_invite(("Content-Length: 3",)),
    "scalar02 CSeq over 2**31": basic_invite().replace(b"CSeq: 1 INVITE", b"CSeq: 36893488147419103232 INVITE"),
    "Max-Forwards over 255": basic_invite().replace(b"Max-Forwards: 70", b"Max-Forwards: 300"),
    "ltgtruri": basic_invite().replace(b"INVITE sip:srs@10.0.0.1", b"INVITE <sip:srs@10.0.0.1>"),
    "lwsruri": basic_invite().replace(b"sip:srs@10.0.0.1 SIP", b"sip:srs@10.0.0.1; lr SIP"),
    "lwsstart": basic_invite().replace(b"INVITE sip:srs@10.0.0.1 SIP/2.0", b"INVITE  sip:srs@10.0.0.1  SIP/2.0"),
    "escruri headers in Request-URI": basic_invite().replace(b"sip:srs@10.0.0.1 SIP", b"sip:srs@10.0.0.1?Route=%3Csip:example.com%3E SIP"),
    "badaspec spaces inside <>": basic_invite().replace(b"To: <sip:srs@10.0.0.1>", b'To: "Watson, Thomas" < sip:srs@10.0.0.1 >'),
    "baddn unquoted comma": basic_invite().replace(b"From: <sip:src", b"From: Bell, Alexander <sip:src"),
    "quotbal": basic_invite().replace(b"To: <sip:srs@10.0.0.1>", b'To: "Mr. J. User <sip:srs@10.0.0.1>'),
    "multi01 two Call-IDs": basic_invite(("Call-ID: other@10.0.0.9",)),
    "two From": basic_invite(("From: <sip:x@y>;tag=2",)),
    "mismatch01 CSeq method": basic_invite().replace(b"CSeq: 1 INVITE", b"CSeq: 1 OPTIONS"),
    "no blank line": basic_invite().split(b"\r\n\r\n")[0],
    "header line without colon": basic_invite(("This is not a header",)),
    "fold before any header": basic_invite().replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n folded\r\n", 1),
    "stray CR": basic_invite(("X-A: b\rc",)),
    "non-UTF-8 header": basic_invite(("X-Name: placeholder",)).replace(b"placeholder", b"\xff\xfe"),
    "HTTP": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bigcode": crlf("SIP/2.0 4294967301 better not break the receiver", "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
                    "Call-ID: b", "CSeq: 1 INVITE", "From: <sip:a@b>;tag=1", "To: <sip:c@d>", "l: 0"),
    "status below 100": crlf("SIP/2.0 099 Nope", "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "Call-ID: b", "CSeq: 1 INVITE",
                             "From: <sip:a@b>;tag=1", "To: <sip:c@d>", "l: 0"),
    "response without Via": crlf("SIP/2.0 200 OK", "Call-ID: b", "CSeq: 1 INVITE", "From: <sip:a@b>;tag=1", "To: <sip:c@d>"),
    "bad Request-URI port": basic_invite().replace(b"sip:srs@10.0.0.1 SIP", b"sip:srs@10.0.0.1:99999 SIP"),
    "empty": b"",
    "only CRLF": b"\r\n\r\n\r\n",
}


# the reason phrase of the 400 names what failed, so the peer's own log says it
INVALID_REASON = {
    "HTTP": "Bad Request-Line", "Max-Forwards over 255": "Bad Max-Forwards", "bad Request-URI port": "Bad Request-URI",
    "badaspec spaces inside <>": "Bad To", "badcseq": "Bad CSeq", "baddn unquoted comma": "Bad From",
    "badinv01 empty Via params": "Bad Via", "clerr body shorter than Content-Length": "Bad Content-Length",
    "escruri headers in Request-URI": "Bad Request-URI", "fold before any header": "Bad Header",
    "header line without colon": "Bad Header", "ltgtruri": "Bad Request-URI", "lwsruri": "Bad Request-Line",
    "lwsstart": "Bad Request-Line", "mcl01 two Content-Lengths": "Bad Content-Length", "mismatch01 CSeq method": "Bad CSeq",
    "multi01 two Call-IDs": "Bad Call-ID", "ncl negative Content-Length": "Bad Content-Length",
    "non-UTF-8 header": "Bad Header Encoding", "quotbal": "Bad To", "response without Via": "Missing Via",
    "scalar02 CSeq over 2**31": "Bad CSeq", "stray CR": "Bad Header", "two From": "Bad From",
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_messages_raise_sip_parse_error(name):
    with pytest.raises(SipParseError) as e:
        parse_message(INVALID[name])
    assert e.value.status == 400 and e.value.reason == INVALID_REASON.get(name, "Bad Request")


@pytest.mark.parametrize("header,value,reason", [
    ("CSeq", f"{2 ** 40} INVITE", "Bad CSeq"),
    ("CSeq", f"{2 ** 31} INVITE", "Bad CSeq"),
    ("CSeq", "9" * 5000 + " INVITE", "Bad CSeq"),  # int() of it would raise ValueError (digit limit)
    ("Content-Length", "99999999", "Bad Content-Length"),
    ("Content-Length", "9" * 5000, "Bad Content-Length"),
    ("Content-Length", "-5", "Bad Content-Length"),
    ("Content-Length", "65536", "Bad Content-Length"),  # over the 65535-byte message limit
    ("Max-Forwards", "256", "Bad Max-Forwards"),
    ("Max-Forwards", "-1", "Bad Max-Forwards"),
    ("Max-Forwards", "9" * 5000, "Bad Max-Forwards"),
    ("Expires", str(2 ** 32), "Bad Expires"),
    ("Expires", "-1", "Bad Expires"),
    ("Expires", "soon", "Bad Expires"),
    ("Session-Expires", "0", "Bad Session-Expires"),
    ("Session-Expires", "abc;refresher=uac", "Bad Session-Expires"),
    ("Min-SE", str(2 ** 32), "Bad Min-SE"),
])
def test_numeric_header_bounds(header, value, reason):
    raw = basic_invite()
    if header in ("CSeq", "Content-Length", "Max-Forwards"):
        start = raw.index(header.encode() + b": ")
        end = raw.index(b"\r\n", start)
        raw = raw[:start] + f"{header}: {value}".encode() + raw[end:]
    else:
        raw = basic_invite((f"{header}: {value}",))
    with pytest.raises(SipParseError) as e:
        parse_message(raw)
    assert (e.value.status, e.value.reason) == (400, reason)


def test_numeric_headers_at_their_bounds_parse():
    ok = basic_invite(("Expires: 4294967295", "Session-Expires: 1800;refresher=uac", "Min-SE: 90"))
    ok = ok.replace(b"Max-Forwards: 70", b"Max-Forwards: 255").replace(b"CSeq: 1 INVITE", b"CSeq: 2147483647 INVITE")
    msg = parse_message(ok)
    assert msg.cseq == (2**31 - 1, "INVITE") and msg.headers.get("Expires") == "4294967295"
    assert parse_message(basic_invite().replace(b"CSeq: 1 INVITE", b"CSeq: 0000000001 INVITE")).cseq[0] == 1


def test_error_response_from_raw_lines():
    raw = basic_invite().replace(b"CSeq: 1 INVITE", f"CSeq: {2 ** 40} INVITE".encode())
    text = error_response(raw, 400, "Bad CSeq", to_tag="t1", headers=[("Server", "x")]).decode()
    assert text == ("SIP/2.0 400 Bad CSeq\r\nVia: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-1;rport\r\n"
                    "From: <sip:src@10.0.0.9>;tag=abc\r\nTo: <sip:srs@10.0.0.1>;tag=t1\r\nCall-ID: c1@10.0.0.9\r\n"
                    f"CSeq: {2 ** 40} INVITE\r\nServer: x\r\nContent-Length: 0\r\n\r\n")  # echoed: the client matches it
    compact = b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h:5;branch=z9hG4bKc\r\nf: <sip:x@y>;tag=1\r\nt: <sip:a@b>;tag=2\r\ni: c1\r\nCSeq: 7 OPTIONS\r\n\r\n"
    r2 = parse_message(error_response(compact, 400, "Bad Thing", to_tag="t9"))
    assert r2.to_tag == "2" and r2.call_id == "c1" and r2.cseq == (7, "OPTIONS")  # an existing To tag is kept
    # not answerable: a response, an ACK, no Call-ID, a Via that is not SIP/2.0/..., a CSeq without method
    assert error_response(b"SIP/2.0 200 OK\r\n" + compact.split(b"\r\n", 1)[1], 400, "x") is None
    assert error_response(compact.replace(b"OPTIONS sip", b"ACK sip"), 400, "x") is None
    assert error_response(compact.replace(b"i: c1\r\n", b""), 400, "x") is None
    assert error_response(compact.replace(b"v: SIP/2.0/UDP", b"v: HTTP/1.1"), 400, "x") is None
    assert error_response(compact.replace(b"CSeq: 7 OPTIONS", b"CSeq: 7"), 400, "x") is None
    assert error_response(b"\x00\xff garbage", 400, "x") is None and error_response(b"", 400, "x") is None


def test_errors_name_the_header_and_carry_the_status():
    insuf = crlf("INVITE sip:user@example.com SIP/2.0", "CSeq: 193942 INVITE",
                 "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf", "l: 0")
    with pytest.raises(SipParseError, match="From, To, Call-ID"):
        parse_message(insuf)
    with pytest.raises(SipParseError, match="CSeq method 'OPTIONS' does not match"):
        parse_message(INVALID["mismatch01 CSeq method"])
    with pytest.raises(SipParseError, match="Via"):
        parse_message(INVALID["badinv01 empty Via params"])
    with pytest.raises(SipParseError) as e:
        parse_message(basic_invite().replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1))
    assert (e.value.status, e.value.reason) == (505, "Version Not Supported")
    with pytest.raises(SipParseError) as e:
        parse_message(basic_invite(("X-Pad: " + "x" * 70000,)))
    assert (e.value.status, e.value.reason) == (513, "Message Too Large")
    assert parse_message(basic_invite(("X-Pad: " + "x" * 70000,)), max_size=100000).method == "INVITE"
    hand_built = SipRequest("INVITE", "sip:a@b", Headers([("CSeq", "x INVITE")]))
    with pytest.raises(SipParseError):
        hand_built.cseq
    with pytest.raises(SipParseError):
        hand_built.call_id
    with pytest.raises(SipParseError):
        hand_built.top_via
    assert hand_built.branch is None and hand_built.from_tag is None and hand_built.content_type is None


# --- addresses ---------------------------------------------------------------------------------------


def test_parse_name_addr_forms():
    a = parse_name_addr('"Doe, John \\"JD\\"" <sip:jdoe@example.com;transport=tcp>;tag=abc;expires=60')
    assert (a.display, a.uri, a.params, a.tag) == ('Doe, John "JD"', "sip:jdoe@example.com;transport=tcp",
                                                    {"tag": "abc", "expires": "60"}, "abc")
    assert parse_name_addr("Bob  Smith <sip:bob@b.com>").display == "Bob Smith"
    assert parse_name_addr("caller<sip:caller@example.com>;tag=323").display == "caller"
    bare = parse_name_addr("sip:x@y;tag=z;lr")
    assert (bare.display, bare.uri, bare.params) == (None, "sip:x@y", {"tag": "z", "lr": None})
    assert parse_name_addr("<tel:+4930123>").uri == "tel:+4930123"
    assert parse_name_addr(str(a)) == a
    assert parse_name_addr('"Jürgen Müller" <sip:jm@example.de>').display == "Jürgen Müller"


@pytest.mark.parametrize("bad", ["", "   ", '"unterminated <sip:a@b>', "<sip:a@b", "Bell, Alexander <sip:a@b>",
                                 "< sip:a@b >", "sip:a@b;;", "<sip:a@b>;tag x", "not a uri", "<sip:a@b> junk",
                                 '"x" sip:a@b', "<>", "<sip:a@b>;tag=", "<sip:a@b>;=x"])
def test_parse_name_addr_rejects(bad):
    with pytest.raises(SipParseError):
        parse_name_addr(bad)


def test_parse_uri_forms():
    u = parse_uri("sip:alice:secret@atlanta.com:5061;transport=tls;lr?subject=project%20x&priority=urgent")
    assert (u.scheme, u.user, u.password, u.host, u.port) == ("sip", "alice", "secret", "atlanta.com", 5061)
    assert u.params == {"transport": "tls", "lr": None} and u.headers == {"subject": "project x", "priority": "urgent"}
    v6 = parse_uri("sips:[2001:db8::1]:5061")
    assert (v6.scheme, v6.user, v6.host, v6.port) == ("sips", None, "2001:db8::1", 5061)
    tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert (tel.scheme, tel.user, tel.host, tel.params) == ("tel", "+1-201-555-0123", "", {"phone-context": "example.com"})
    assert parse_uri("SIP:%2B4930123@Example.COM").user == "+4930123"
    assert parse_uri("<sip:8001@pbx.example.com>").user == "8001"


@pytest.mark.parametrize("bad", ["http://example.com/", "sip:", "sip:@host", "sip:host:99999", "sip:ho st", "tel:",
                                 "tel:xyz", "sip:a@[zz::1]", "mailto:a@b", "sip:a@b:5060x", "nocolon"])
def test_parse_uri_rejects(bad):
    with pytest.raises(SipParseError):
        parse_uri(bad)


def test_parse_via_forms():
    v = parse_via("SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bK1;received=192.0.2.1;rport=5062")
    assert (v.transport, v.host, v.port, v.branch, v.received, v.rport, v.rport_requested) == (
        "UDP", "2001:db8::9", 5060, "z9hG4bK1", "192.0.2.1", 5062, True)
    assert v.sent_by == "[2001:db8::9]:5060" and parse_via(str(v)) == v
    flag = parse_via("SIP/2.0/tls proxy.example.com ; branch = z9hG4bKx ; rport")
    assert (flag.transport, flag.port, flag.rport, flag.rport_requested) == ("TLS", None, None, True)
    assert parse_via("SIP/2.0/UDP h : 5070").port == 5070
    assert Via("WS", "h", None, {"branch": "z9hG4bKq"}).branch == "z9hG4bKq"


@pytest.mark.parametrize("bad", ["SIP/2.0/UDP", "HTTP/1.1/TCP h", "SIP/2.0/UDP h;;", "SIP/2.0/UDP h:port",
                                 "SIP/2.0/UDP h:70000", "SIP/3.0/UDP h", "SIP/2.0/UDP h;branch=a b", ""])
def test_parse_via_rejects(bad):
    with pytest.raises(SipParseError):
        parse_via(bad)


# --- TCP framing -------------------------------------------------------------------------------------

BYE = crlf("BYE sip:src@10.0.0.9:5070 SIP/2.0", "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK-bye",
           "From: <sip:srs@10.0.0.1>;tag=srs1", "To: <sip:src@10.0.0.9>;tag=abc", "Call-ID: c1@10.0.0.9",
           "CSeq: 2 BYE", "Max-Forwards: 70", "Content-Length: 0")
OK = crlf("SIP/2.0 200 OK", "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK-bye", "From: <sip:srs@10.0.0.1>;tag=srs1",
          "To: <sip:src@10.0.0.9>;tag=abc", "Call-ID: c1@10.0.0.9", "CSeq: 2 BYE", "l: 0")


def _stream() -> tuple[bytes, list]:
    msgs = [load("asterisk_invite.sip"), BYE, OK]
    data = msgs[0] + b"\r\n\r\n" + msgs[1] + b"\r\n" + msgs[2]  # a ping, then a lone CRLF (a pong)
    return data, [parse_message(m) for m in msgs]


def test_stream_framer_split_at_every_byte_boundary():
    data, expected = _stream()
    for cut in range(len(data) + 1):
        f = StreamFramer()
        got = f.feed(data[:cut]) + f.feed(data[cut:])
        assert got == expected, cut
        assert f.pings == 1 and f.buffered == 0


def test_stream_framer_byte_by_byte_and_many_per_chunk():
    data, expected = _stream()
    big = load("siprec_cube.sip")
    f = StreamFramer()
    got = []
    for i in range(len(big)):
        got += f.feed(big[i:i + 1])
        assert (len(got) == 1) == (i == len(big) - 1)
    assert got[0] == parse_message(big)
    f = StreamFramer()
    assert f.feed(data * 3) == expected * 3 and f.take_pings() == 3 and f.pings == 0


def test_stream_framer_keepalives():
    f = StreamFramer()
    assert f.feed(b"\r\n\r\n\r\n\r\n") == [] and f.pings == 2
    assert f.feed(b"\r\n") == [] and f.feed(b"\r\n") == [] and f.pings == 3  # a ping split in two
    assert f.feed(b"\r\n" + BYE) == [parse_message(BYE)] and f.pings == 3  # a lone CRLF is no ping


def test_stream_framer_requires_content_length_and_breaks_on_garbage():
    f = StreamFramer()
    no_cl = BYE.replace(b"Content-Length: 0\r\n", b"")
    with pytest.raises(SipParseError, match="Content-Length is required"):
        f.feed(no_cl)
    assert f.broken
    with pytest.raises(SipParseError):
        f.feed(BYE)  # the connection must be closed
    g = StreamFramer()
    with pytest.raises(SipParseError):
        g.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n")  # a TLS hello on the plain port, first line
    assert g.broken
    h = StreamFramer(max_size=2000)
    with pytest.raises(SipParseError) as e:
        h.feed(b"OPTIONS sip:a@b SIP/2.0\r\nX-Pad: " + b"x" * 3000)
    assert e.value.status == 513
    k = StreamFramer(max_size=2000)
    with pytest.raises(SipParseError) as e:
        k.feed(BYE.replace(b"Content-Length: 0", b"Content-Length: 5000"))
    # a Content-Length beyond the size limit is itself invalid: 400 (answered from the head), then close
    assert (e.value.status, e.value.reason) == (400, "Bad Content-Length") and k.broken
    assert k.error_data.startswith(b"BYE ") and k.error_data.endswith(b"\r\n\r\n")


def test_stream_framer_skips_a_framed_but_invalid_message():
    bad = BYE.replace(b"Call-ID: c1@10.0.0.9\r\n", b"")
    f = StreamFramer()
    with pytest.raises(SipParseError, match="Call-ID"):
        f.feed(BYE + bad + OK)
    assert not f.broken
    assert f.feed(b"") == [parse_message(BYE), parse_message(OK)]


# --- SDP ---------------------------------------------------------------------------------------------


def test_parse_sdp_tolerates_lf_and_reads_session_level_values():
    sdp = parse_sdp("v=0\no=- 5 6 IN IP4 192.0.2.1\ns=Call\nc=IN IP4 224.2.1.1/127/3\nt=0 0\na=sendonly\n"
                    "m=audio 5004/2 RTP/AVP 96 0\nc=IN IP6 2001:db8::2\na=rtpmap:96 opus/48000/2\na=fmtp:96 useinbandfec=1\n"
                    "a=ptime:20.0\na=label:caller\nb=AS:64\nm=audio 5008 RTP/AVP 8\n\n")
    assert (sdp.origin, sdp.session_name, sdp.connection, sdp.direction) == ("- 5 6 IN IP4 192.0.2.1", "Call", "224.2.1.1", "sendonly")
    a, b = sdp.media
    assert (a.port, a.port_count, a.rtpmap[96], a.fmtp[96], a.ptime, a.label) == (5004, 2, ("OPUS", 48000, 2), "useinbandfec=1", 20, "caller")
    assert sdp.media_address(0) == "2001:db8::2" and sdp.media_address(1) == "224.2.1.1"
    assert a.direction is None and sdp.effective_direction(0) == "sendonly"
    assert a.attribute("label") == "caller" and a.attribute("nope") is None
    assert [c.codec for c in negotiate(sdp, ("OPUS", "PCMA"))] == ["OPUS", "PCMA"]
    assert negotiate(sdp, ("OPUS",))[0].clock_rate == 48000


@pytest.mark.parametrize("bad", [b"", b"o=- 1 1 IN IP4 h\r\n", b"v=1\r\n", b"v=0\r\nm=audio\r\n",
                                 b"v=0\r\nm=audio abc RTP/AVP 0\r\n", b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
                                 b"v=0\r\nm=audio 5/0 RTP/AVP 0\r\n", b"v=0\r\nc=IN IP4\r\n", b"v=0\r\nc=ATM NSAP x\r\n",
                                 b"v=0\r\nm =video 3227 RTP/AVP 31\r\n", b"v=0\r\nthis is not sdp\r\n", b"\xff\xfe"])
def test_parse_sdp_rejects_garbage(bad):
    with pytest.raises(SdpError):
        parse_sdp(bad)


def test_negotiate_rules():
    sdp = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 1000 RTP/SAVP 0\r\n"              # 0: SRTP: no keys, not accepted
        "m=video 1002 RTP/AVP 31\r\n"              # 1: not audio
        "m=audio 0 RTP/AVP 0\r\n"                  # 2: disabled
        "m=audio 1004 RTP/AVP 0\r\na=inactive\r\n"  # 3: inactive
        "m=audio 1006 RTP/AVP 97 18 0\r\n"         # 4: 97 has no rtpmap, 18 is G729: PCMU
        "m=audio 1008 RTP/AVPF 9 8\r\n"            # 5: AVPF is fine; G722 only if we take it
        "m=audio 1010 RTP/AVP 96 101\r\na=rtpmap:96 PCMU/16000\r\na=rtpmap:101 telephone-event/8000\r\n"  # 6: bogus rate
        "m=audio 1012 RTP/AVP 98 100 101\r\na=rtpmap:98 PCMA/8000\r\na=rtpmap:100 telephone-event/16000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"     # 7: dynamic PCMA; the 8 kHz event type matches
        "m=audio 1014 UDP/TLS/RTP/SAVPF 0\r\n"     # 8: DTLS-SRTP
    )
    choices = negotiate(sdp)
    assert [c.accepted for c in choices] == [False, False, False, False, True, True, False, True, False]
    assert (choices[4].codec, choices[4].payload_type) == ("PCMU", 0) and choices[5].codec == "PCMA"
    assert (choices[7].payload_type, choices[7].dtmf_payload_type) == (98, 101)
    assert all(c.reason for c in choices if not c.accepted) and choices[0].codec is None
    assert negotiate(sdp, ("G722", "PCMA"))[5].codec == "G722"
    assert [c.index for c in choices] == list(range(9))


def test_build_answer_directions_rejections_and_ports():
    sdp = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 2000 RTP/AVP 0\r\na=sendonly\r\n"
        "m=video 2002 RTP/AVP 31 34\r\n"
        "m=audio 2004 RTP/AVP 8\r\na=recvonly\r\n"
        "m=audio 2006 RTP/AVP 0\r\n")
    choices = negotiate(sdp)
    media = answer_media(build_answer(sdp, choices, "2001:db8::5", [3000, 0, 3004, 3006], session_id=7, session_version=8))
    assert [m[0] for m in media] == ["m=audio 3000 RTP/AVP 0", "m=video 0 RTP/AVP 31 34", "m=audio 3004 RTP/AVP 8",
                                     "m=audio 3006 RTP/AVP 0"]
    assert [m[-1] for m in media] == ["a=recvonly", "m=video 0 RTP/AVP 31 34", "a=inactive", "a=recvonly"]
    whole = build_answer(sdp, choices, "2001:db8::5", [3000, 3004, 3006], session_id=7, session_version=8)
    assert b"o=callscribe 7 8 IN IP6 2001:db8::5\r\n" in whole and b"c=IN IP6 2001:db8::5\r\n" in whole
    assert answer_media(whole) == media
    assert answer_media(build_answer(sdp, choices, "10.0.0.1", [1, 2, 3], direction="sendrecv"))[3][-1] == "a=sendrecv"
    assert len(parse_sdp(whole).media) == 4
    with pytest.raises(ValueError):
        build_answer(sdp, choices, "10.0.0.1", [1, 2])
    with pytest.raises(ValueError):
        build_answer(sdp, choices, "10.0.0.1", [0, 2, 3])
    with pytest.raises(ValueError):
        build_answer(sdp, choices, "10.0.0.1\r\nm=audio", [1, 2, 3])


# --- SIPREC bodies -----------------------------------------------------------------------------------


def test_split_multipart_variants():
    body = (b"preamble to ignore\n--b1\nContent-Type: application/sdp\n\nv=0\n\n--b1\n"
            b"Content-Type: multipart/alternative; boundary=\"inner b\"\n\n--inner b\nContent-Type: text/plain\n\nhi\n"
            b"--inner b\ncontent-type: Application/RS-Metadata+XML; charset=utf-8\ncontent-id: <m1@x>\n"
            b"Content-Transfer-Encoding: base64\n\nPHJlY29yZGluZy8+\n--inner b--\n"
            b"--b1\n\nno headers at all\n--b1--\nepilogue")
    parts = split_multipart('multipart/mixed ; boundary="b1"', body)
    assert [p.content_type for p in parts] == ["application/sdp", "text/plain", "application/rs-metadata+xml", "text/plain"]
    assert [p.body for p in parts] == [b"v=0\n", b"hi", b"<recording/>", b"no headers at all"]
    assert parts[2].headers["Content-ID"] == "<m1@x>"
    assert split_multipart("multipart/mixed;boundary=x", b"--x\r\nContent-Type: a/b\r\n\r\nbody")[0].body == b"body"
    assert split_multipart("multipart/mixed;boundary=x", b"--x\r\n\r\n\r\n--x--")[0].body == b""


@pytest.mark.parametrize("ctype,body", [
    ("multipart/mixed", b"--x\r\n\r\nhi\r\n--x--"),
    ("multipart/mixed;boundary=", b"--x\r\n\r\nhi\r\n--x--"),
    ("application/sdp", b"v=0"),
    ("multipart/mixed;boundary=zz", b"--x\r\n\r\nhi\r\n--x--"),
    ("multipart/mixed;boundary=x", b"--x--\r\n"),
    ("multipart/mixed;boundary=x", b"--x\r\nthis is not a header\r\n--x--"),
    ("multipart/mixed;boundary=x", b"--x\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--x--"),
    ("multipart/mixed;boundary=\"x", b"--x\r\n\r\nhi"),
    ("", b""),
])
def test_split_multipart_rejects(ctype, body):
    with pytest.raises(SiprecError):
        split_multipart(ctype, body)


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>&lol3;</datamode></recording>"""


@pytest.mark.parametrize("doc", [
    BOMB,
    b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///etc/passwd"><recording/>',
    b'<?xml version="1.0"?><!doctype recording><recording/>',
    BOMB.decode().encode("utf-16"),
    b"<recording xmlns='urn:ietf:params:xml:ns:recording:1'>&xxe;</recording>",
    b"<recording><unclosed></recording>",
    b"<notrecording/>",
    b"",
    b"\xff\xfe\x00",
    b"<recording>" + b"x" * 1_000_001 + b"</recording>",
])
def test_parse_rs_metadata_refuses_dtds_and_garbage(doc):
    with pytest.raises(SiprecError):
        parse_rs_metadata(doc)


def test_parse_rs_metadata_without_namespace_and_odd_extensions():
    meta = parse_rs_metadata(b"""<recording>
      <session session_id="s1"><sipSessionID> abc ;remote=def </sipSessionID><sipSessionID>ghi</sipSessionID></session>
      <participant participant_id="p1"><nameID aor="tel:+4930123"/><role>caller</role></participant>
      <participant participant_id="p2"><aor>sip:8001@pbx</aor><name>Eve</name><send>s2</send></participant>
      <stream stream_id="s2"><label>b</label></stream><stream stream_id="orphan"/>
      <participantstreamassoc participant_id="p1"><send>s1</send><send>s1</send></participantstreamassoc>
      <stream stream_id="s1" session_id="s1"><label> a </label></stream>
      <agentId>7</agentId><x:deep xmlns:x="urn:v"><x:a><x:b>1</x:b></x:a><x:c/></x:deep>
    </recording>""")
    assert meta.sip_session_ids == ("abc;remote=def", "ghi") and meta.recording_session_id == "s1"
    p1, p2 = meta.participants
    assert (p1.aor, p1.name, p1.send, p1.role) == ("tel:+4930123", None, ("s1",), "customer")
    assert (p2.aor, p2.name, p2.send, p2.role) == ("sip:8001@pbx", "Eve", ("s2",), None)
    assert [s.label for s in meta.streams] == ["b", "a"]
    assert meta.extensions == {"role": "caller", "agentId": "7", "b": "1"}
    assert assign_channels(meta, ["a", "b"], RoleRules()) == {"a": "customer", "b": "agent"}


def _meta(*participants: tuple[str, str | None, str | None]) -> RecordingMetadata:
    """Metadata where participant i (aor, role) sends the stream labelled by the third item."""
    ps = tuple(Participant(f"p{i}", aor, None, (f"s{i}",) if label else (), (), role)
               for i, (aor, role, label) in enumerate(participants))
    ss = tuple(MediaStream(f"s{i}", label) for i, (_, _, label) in enumerate(participants) if label)
    return RecordingMetadata("r", None, ps, ss, (), {})


EMPTY = RecordingMetadata(None, None, (), (), (), {})
AGENTS = RoleRules(agent_patterns=("sip:10*@*", "*@agents.example.com"), customer_patterns=("sip:+*",))


@pytest.mark.parametrize("meta,labels,rules,expected", [
    (EMPTY, ["1", "2"], RoleRules(), {"1": "customer", "2": "agent"}),              # nothing known: label order
    (EMPTY, ["7"], RoleRules(), {"7": "customer"}),
    (EMPTY, [], RoleRules(), {}),
    (_meta(("sip:a@x", None, "1"), ("sip:b@x", None, "2")), ["2", "1"], RoleRules(), {"1": "customer", "2": "agent"}),
    (_meta(("sip:1001@pbx", None, "1"), ("sip:+4930@gw", None, "2")), ["1", "2"], AGENTS, {"1": "agent", "2": "customer"}),
    (_meta(("sip:bob@agents.example.com", None, "1"), ("sip:x@y", None, "2")), ["1", "2"], AGENTS, {"1": "agent", "2": "customer"}),
    (_meta(("sip:1001@pbx", None, "1"), ("sip:1002@pbx", None, "2")), ["1", "2"], AGENTS, {"1": "agent", "2": "customer"}),  # never both agent
    (_meta(("sip:a@x", "agent", "1"), ("sip:b@x", None, "2")), ["1", "2"], RoleRules(), {"1": "agent", "2": "customer"}),
    (_meta(("sip:a@x", None, "1"), ("sip:b@x", "customer", "2")), ["1", "2"], RoleRules(), {"1": "agent", "2": "customer"}),
    (_meta(("sip:a@x", "agent", "1"), ("sip:+49@x", None, "2")), ["1", "2"], AGENTS, {"1": "agent", "2": "customer"}),
    (_meta(("sip:1001@x", "customer", "1"), ("sip:b@x", "agent", "2")), ["1", "2"], AGENTS, {"1": "agent", "2": "customer"}),  # rule > hint
    (_meta(("sip:a@x", None, None), ("sip:b@x", None, "2")), ["1", "2"], RoleRules(), {"1": "customer", "2": "agent"}),
    (_meta(("sip:a@x", None, None), ("sip:b@x", None, "2")), ["2"], RoleRules(), {"2": "agent"}),  # 2nd participant
    (_meta(("sip:a@x", None, "1"), ("sip:b@x", None, "2"), ("sip:c@x", None, "3")), ["1", "2", "3"], RoleRules(),
     {"1": "customer", "2": "agent", "3": "agent2"}),
    (EMPTY, ["a", "b", "c", "d"], RoleRules(), {"a": "customer", "b": "agent", "c": "agent2", "d": "agent3"}),
    (_meta(("Jane", None, "1"), ("sip:x@y", None, "2")), ["1", "2"], RoleRules(agent_patterns=("JANE",)), {"1": "agent", "2": "customer"}),
])
def test_assign_channels(meta, labels, rules, expected):
    assert assign_channels(meta, labels, rules) == expected


# --- fuzzing: only typed errors ever escape ---------------------------------------------------------

SEED_MESSAGES = [load("asterisk_invite.sip"), load("siprec_rfc7866.sip"), load("siprec_cube.sip"), WSINV, BYE, OK,
                 basic_invite(("Record-Route: <sip:p1;lr>", "Contact: \"A, B\" <sip:a@b>;q=0.5, <sip:c@d>"))]
SNIPPETS = [b"\r\n", b"\n", b"\r", b"\r\n ", b"\r\n\r\n", b":", b";", b",", b"<", b">", b'"', b"\\", b"=", b"@",
            b"/", b" ", b"\t", b"\x00", b"\xff", b"\xc3", b"%", b"[", b"]", b"--", b"SIP/2.0", b"Content-Length: 9\r\n",
            b"l: 99999999999\r\n", b"tag=", b"branch=", b"9" * 12, "\u2028".encode(), "ä".encode()]


def _mutate(data: bytes, rnd: random.Random, rounds: int) -> bytes:
    buf = bytearray(data)
    for _ in range(rounds):
        if not buf:
            buf += rnd.choice(SNIPPETS)
            continue
        i = rnd.randrange(len(buf))
        op = rnd.randrange(6)
        if op == 0:
            buf[i] = rnd.randrange(256)
        elif op == 1:
            del buf[i:i + rnd.randrange(1, 64)]
        elif op == 2:
            buf[i:i] = rnd.choice(SNIPPETS)
        elif op == 3:
            j = min(len(buf), i + rnd.randrange(1, 80))
            buf[i:i] = buf[i:j]
        elif op == 4:
            del buf[i:]
        else:
            buf[i:i + 1] = rnd.choice(SNIPPETS)
    return bytes(buf)


def mutations(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(lambda seed, s, rounds: _mutate(seed, random.Random(s), rounds),
                     st.sampled_from(seeds), st.integers(0, 2**32), st.integers(1, 6))


def _exercise_message(msg: SipRequest | SipResponse) -> None:
    """Everything the transaction/dialog layers read must work on a parsed message; a re-parse of our own
    serialisation must give the same message."""
    assert msg.call_id and isinstance(msg.cseq[0], int)
    msg.from_tag, msg.to_tag, msg.branch, msg.top_via, msg.content_type  # noqa: B018 - must not raise
    again = parse_message(msg.to_bytes(), max_size=1 << 20)
    assert again.body == msg.body and type(again) is type(msg)
    assert [(n, v) for n, v in again.headers.items() if n != "Content-Length"] == \
        [(n, v) for n, v in msg.headers.items() if n != "Content-Length"]
    if isinstance(msg, SipRequest):
        assert (again.method, again.uri) == (msg.method, msg.uri)
        make_response(msg, 200, to_tag="t1").to_bytes()
        make_response(msg, 100).to_bytes()
    else:
        assert (again.status, again.reason) == (msg.status, msg.reason)


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_parse_message_arbitrary_bytes(data):
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    _exercise_message(msg)


@settings(FUZZ, max_examples=400)
@given(mutations(SEED_MESSAGES))
def test_fuzz_parse_message_mutated(data):
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    _exercise_message(msg)
    try:
        msg.vias, [parse_name_addr(c) for c in msg.headers.get_all("Contact")]  # noqa: B018
    except SipParseError:
        pass


@FUZZ
@given(mutations([b"".join(SEED_MESSAGES[:1] + SEED_MESSAGES[4:6]), BYE + b"\r\n\r\n" + OK]),
       st.lists(st.integers(1, 400), min_size=1, max_size=12))
def test_fuzz_stream_framer(data, cuts):
    f = StreamFramer()
    pos = 0
    for size in cuts + [len(data)]:
        chunk, pos = data[pos:pos + size], pos + size
        try:
            for msg in f.feed(chunk):
                assert msg.call_id
        except SipParseError:
            if f.broken:
                with pytest.raises(SipParseError):
                    f.feed(b"x")
                return


@FUZZ
@given(st.data())
def test_fuzz_stream_framer_random_chunking_of_valid_stream(data):
    msgs = data.draw(st.lists(st.sampled_from(SEED_MESSAGES[:3] + SEED_MESSAGES[4:]), min_size=1, max_size=5))
    pings = data.draw(st.lists(st.sampled_from([b"", b"\r\n\r\n"]), min_size=len(msgs), max_size=len(msgs)))
    stream = b"".join(p + m for p, m in zip(pings, msgs))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    f = StreamFramer()
    got = []
    prev = 0
    for c in cuts + [len(stream)]:
        got += f.feed(stream[prev:c])
        prev = c
    assert got == [parse_message(m) for m in msgs] and f.pings == sum(1 for p in pings if p)


SEED_SDP = [parse_message(load("asterisk_invite.sip")).body, parts_of(parse_message(load("siprec_cube.sip")))[0],
            WSINV_SDP, b"v=0\no=- 1 1 IN IP6 ::1\ns=-\nc=IN IP6 ::1\nt=0 0\nm=audio 5004/2 RTP/AVPF 96 0\n"
            b"a=rtpmap:96 opus/48000/2\na=ptime:20\na=label:x\na=recvonly\n"]


def _exercise_sdp(offer) -> None:
    choices = negotiate(offer, ("PCMU", "PCMA", "G722", "OPUS"))
    assert len(choices) == len(offer.media)
    ports = [10000 + 2 * i for i, c in enumerate(choices) if c.accepted]
    answer = build_answer(offer, choices, "192.0.2.1", ports, session_id=1)
    assert len(parse_sdp(answer).media) == len(offer.media)


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300), mutations(SEED_SDP)))
def test_fuzz_parse_sdp(body):
    try:
        offer = parse_sdp(body)
    except SdpError:
        return
    _exercise_sdp(offer)


SEED_MULTIPART = [(m.headers.get("Content-Type"), m.body) for m in
                  (parse_message(load("siprec_rfc7866.sip")), parse_message(load("siprec_cube.sip")))]


@FUZZ
@given(st.sampled_from(SEED_MULTIPART), st.integers(0, 2**32), st.integers(1, 6), st.booleans(), st.text(max_size=40))
def test_fuzz_split_multipart(seed, s, rounds, mutate_type, junk_type):
    ctype, body = seed
    if mutate_type:
        ctype = _mutate(ctype.encode(), random.Random(s), 2).decode("utf-8", "replace") if s % 3 else junk_type
    try:
        parts = split_multipart(ctype, _mutate(body, random.Random(s + 1), rounds))
    except SiprecError:
        return
    assert parts and all(isinstance(p.body, bytes) and p.content_type == p.content_type.lower() for p in parts)


SEED_XML = [parts_of(parse_message(load("siprec_rfc7866.sip")))[1], parts_of(parse_message(load("siprec_cube.sip")))[1],
            (DATA / "siprec_draft_metadata.xml").read_bytes(), BOMB]


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutations(SEED_XML)), st.lists(st.sampled_from(["1", "2", "10", "11", "x"]), max_size=4))
def test_fuzz_parse_rs_metadata(xml, labels):
    try:
        meta = parse_rs_metadata(xml)
    except SiprecError:
        return
    channels = assign_channels(meta, labels, AGENTS)
    assert set(channels) == set(labels) and len(set(channels.values())) == len(channels)


@FUZZ
@given(st.text(max_size=120))
def test_fuzz_address_parsers(text):
    for fn in (parse_name_addr, parse_uri, parse_via):
        try:
            fn(text)
        except SipParseError:
            pass
