"""The SIP transaction layer on a fake clock (pure logic: no sockets), the UAS dialog, and call planning."""

from __future__ import annotations

from pathlib import Path

import pytest

from callscribe.errors import SipError
from callscribe.gateway.rtp.ports import PortPool
from callscribe.gateway.sip.callplan import plan_call
from callscribe.gateway.sip.dialog import Dialog
from callscribe.gateway.sip.message import make_response, parse_message
from callscribe.gateway.sip.siprec import RoleRules
from callscribe.gateway.sip.transaction import AckTimeout, ClientResult, Deliver, Peer, Send, TransactionLayer

UDP = Peer("udp", ("10.0.0.9", 5070))
TCP = Peer("tcp", ("10.0.0.9", 40000), conn=1)
SCENARIOS = Path(__file__).resolve().parents[1] / "docs" / "sipp"

SDP = (b"v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
       b"m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")


def request(method: str = "INVITE", branch: str = "z9hG4bK-1", cseq: int = 1, to_tag: str = "", body: bytes = b"",
            ctype: str = "application/sdp", call_id: str = "c1@10.0.0.9", extra: str = "") -> bytes:
    to = "<sip:srs@10.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    head = (f"{method} sip:srs@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5070;branch={branch}\r\n"
            f"From: <sip:src@10.0.0.9>;tag=abc\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:src@10.0.0.9:5070>\r\nMax-Forwards: 70\r\n{extra}")
    if body:
        head += f"Content-Type: {ctype}\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def sends(outs) -> list[bytes]:
    return [o.data for o in outs if isinstance(o, Send)]


def delivered(outs):
    return [o for o in outs if isinstance(o, Deliver)]


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def test_invite_gets_100_and_a_retransmission_is_absorbed():
    layer = TransactionLayer()
    inv = parse_message(request(body=SDP))
    outs = layer.on_request(inv, UDP, 0.0)
    assert [status_of(d) for d in sends(outs)] == [100]
    assert len(delivered(outs)) == 1
    again = layer.on_request(parse_message(request(body=SDP)), UDP, 0.5)
    assert [status_of(d) for d in sends(again)] == [100] and not delivered(again)
    assert layer.absorbed == 1


def test_2xx_is_retransmitted_until_the_ack_then_stops():
    layer = TransactionLayer()
    inv = parse_message(request(body=SDP))
    layer.on_request(inv, UDP, 0.0)
    ok = make_response(inv, 200, to_tag="srs1", body=SDP, content_type="application/sdp")
    assert [status_of(d) for d in sends(layer.respond(inv, ok, 0.0))] == [200]
    times = []
    for i in range(1, 61):
        t = i / 20
        if sends(layer.poll(t)):
            times.append(t)
    assert times == [0.5, 1.5]  # T1, then doubling (next at 3.5)
    # a retransmitted INVITE now gets the 200 again, never a second delivery
    again = layer.on_request(parse_message(request(body=SDP)), UDP, 3.1)
    assert [status_of(d) for d in sends(again)] == [200] and not delivered(again)
    ack = parse_message(request("ACK", branch="z9hG4bK-ack", to_tag="srs1"))
    assert len(delivered(layer.on_request(ack, UDP, 3.2))) == 1
    assert not sends(layer.poll(10.0)) and not [o for o in layer.poll(40.0) if isinstance(o, AckTimeout)]


def test_unacked_2xx_times_out():
    layer = TransactionLayer()
    inv = parse_message(request(body=SDP))
    layer.on_request(inv, UDP, 0.0)
    layer.respond(inv, make_response(inv, 200, to_tag="t"), 0.0)
    outs = []
    for i in range(1, 70):
        outs += layer.poll(float(i))
    assert [o for o in outs if isinstance(o, AckTimeout)][0].request.call_id == "c1@10.0.0.9"
    assert len(sends(outs)) <= 12  # capped at T2 intervals


def test_error_final_is_retransmitted_and_its_ack_absorbed():
    layer = TransactionLayer()
    inv = parse_message(request(body=SDP))
    layer.on_request(inv, UDP, 0.0)
    layer.respond(inv, make_response(inv, 486, to_tag="x"), 0.0)
    assert [status_of(d) for d in sends(layer.poll(0.6))] == [486]
    ack = parse_message(request("ACK", branch="z9hG4bK-1", to_tag="x"))  # same branch: the non-2xx ACK
    assert layer.on_request(ack, UDP, 0.7) == []
    assert not sends(layer.poll(5.0))
    layer.poll(100.0)
    assert len(layer) == 0


def test_bye_retransmission_replays_the_final_and_tcp_never_retransmits():
    layer = TransactionLayer()
    bye = parse_message(request("BYE", branch="z9hG4bK-b", cseq=2, to_tag="t"))
    assert len(delivered(layer.on_request(bye, UDP, 0.0))) == 1
    layer.respond(bye, make_response(bye, 200), 0.0)
    again = layer.on_request(parse_message(request("BYE", branch="z9hG4bK-b", cseq=2, to_tag="t")), UDP, 1.0)
    assert [status_of(d) for d in sends(again)] == [200] and not delivered(again)
    layer.poll(33.0)
    assert len(layer) == 0
    tcp_layer = TransactionLayer()
    inv = parse_message(request(body=SDP))
    tcp_layer.on_request(inv, TCP, 0.0)
    tcp_layer.respond(inv, make_response(inv, 488, to_tag="z"), 0.0)
    assert not sends(tcp_layer.poll(10.0))


def test_cancel_matches_the_open_invite_or_gets_481():
    layer = TransactionLayer()
    inv = parse_message(request(body=SDP))
    layer.on_request(inv, UDP, 0.0)
    cancel = parse_message(request("CANCEL", branch="z9hG4bK-1"))
    outs = layer.on_request(cancel, UDP, 0.1)
    assert delivered(outs)[0].invite is not None and delivered(outs)[0].invite.call_id == inv.call_id
    stray = parse_message(request("CANCEL", branch="z9hG4bK-nope", call_id="other"))
    assert [status_of(d) for d in sends(layer.on_request(stray, UDP, 0.2))] == [481]


def test_our_bye_is_retransmitted_until_answered_or_timer_f():
    layer = TransactionLayer()
    inv = parse_message(request(body=SDP))
    d = Dialog.from_invite(inv, "srs1", UDP)
    bye = d.make_request("BYE", "10.0.0.1", 5060, "<sip:callscribe@10.0.0.1:5060>", "callscribe")
    assert bye.uri == "sip:src@10.0.0.9:5070" and bye.cseq == (1, "BYE")
    assert bye.from_tag == "srs1" and bye.to_tag == "abc"
    assert len(sends(layer.send_request(bye, UDP, 0.0))) == 1
    assert len(sends(layer.poll(0.5))) == 1
    ok = parse_message(make_response(bye, 200).to_bytes())
    res = layer.on_response(ok, 0.6)
    assert isinstance(res[0], ClientResult) and res[0].response.status == 200
    assert not sends(layer.poll(3.0))
    bye2 = d.make_request("BYE", "10.0.0.1", 5060, "<sip:callscribe@10.0.0.1:5060>", "callscribe")
    layer.send_request(bye2, UDP, 100.0)
    outs = []
    for i in range(1, 40):
        outs += layer.poll(100.0 + i)
    assert [o.response for o in outs if isinstance(o, ClientResult)] == [None]


def test_dialog_matching_and_cseq_order():
    inv = parse_message(request(body=SDP))
    d = Dialog.from_invite(inv, "srs1", UDP)
    assert d.matches(parse_message(request("BYE", cseq=2, to_tag="srs1")))
    assert not d.matches(parse_message(request("BYE", cseq=2, to_tag="other")))
    assert d.accepts_cseq(parse_message(request("UPDATE", cseq=3, to_tag="srs1")))
    assert not d.accepts_cseq(parse_message(request("UPDATE", cseq=2, to_tag="srs1")))


def _scenario_invite(name: str) -> bytes:
    """The INVITE of a docs/sipp scenario, with sipp's keywords filled in as sipp would."""
    text = (SCENARIOS / name).read_text()
    msg = text.split("<![CDATA[", 1)[1].split("]]>", 1)[0].strip("\n")
    subs = {"[remote_ip]": "127.0.0.1", "[remote_port]": "5060", "[transport]": "UDP", "[local_ip]": "127.0.0.1",
            "[local_port]": "5061", "[branch]": "z9hG4bK-s1", "[pid]": "1", "[call_number]": "1", "[call_id]": "1-1@127.0.0.1",
            "[local_ip_type]": "4", "[media_ip_type]": "4", "[media_ip]": "127.0.0.1", "[media_port]": "6000",
            "[media_port+2]": "6002", "@AGENT@": "8001", "@CALLER@": "13800138000",
            "@FORMATS@": "0 8 101"}
    for k, v in subs.items():
        msg = msg.replace(k, v)
    head, body = msg.split("\n\n", 1)
    body = body.replace("\n", "\r\n")
    head = head.replace("[len]", str(len(body.encode())))
    return head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body.encode()


def test_plan_of_the_siprec_scenario():
    plan = plan_call(parse_message(_scenario_invite("siprec_uac.xml")), ("PCMU", "PCMA"), RoleRules())
    assert plan.kind == "siprec" and plan.channels == ("customer", "agent")
    assert [s.label for s in plan.streams] == ["1", "2"]
    assert plan.streams[0].choice.codec == "PCMU" and plan.streams[0].choice.dtmf_payload_type == 101
    md = plan.metadata
    assert md["caller"] == "13800138000" and md["called"] == "8001" and md["queue"] == "billing"
    assert md["recording_session_id"] == "hVpd7YQgRW2nD22h7q60JQ==" and md["x-customer-tier"] == "gold"
    # rules win over order: the first participant declared an agent by pattern swaps the channels
    swapped = plan_call(parse_message(_scenario_invite("siprec_uac.xml")), ("PCMU",), RoleRules(agent_patterns=("sip:1380*",)))
    assert swapped.channels == ("agent", "customer")


def test_plan_of_the_plain_scenario_and_refusals():
    plan = plan_call(parse_message(_scenario_invite("plain_uac.xml")), ("PCMU", "PCMA"))
    assert plan.kind == "sip" and plan.channels == ("mixed",)
    assert plan.streams[0].choice.codec == "PCMA"  # the offerer's preference among ours
    assert plan.metadata["caller"] == "13800138000" and plan.metadata["agent_id"] == "8001"
    with pytest.raises(SipError) as e:
        plan_call(parse_message(_scenario_invite("plain_uac.xml")), ("G722",))
    assert e.value.status == 488
    with pytest.raises(SipError) as e:
        plan_call(parse_message(request(body=b"hello", ctype="text/plain")), ("PCMU",))
    assert e.value.status == 415
    with pytest.raises(SipError) as e:
        plan_call(parse_message(request()), ("PCMU",))
    assert e.value.status == 488


def test_port_pool_gives_adjacent_pairs_rotates_and_frees():
    pool = PortPool(20000, 20015)  # 8 pairs
    a = pool.allocate(2)
    b = pool.allocate(2)
    assert a == 20000 and b == 20004
    pool.release(a)
    assert pool.allocate(1) == 20008  # freed ports are not reused at once
    assert pool.allocate(2, skip={20010}) == 20012
    with pytest.raises(Exception):
        pool.allocate(3)
    assert pool.free_pairs == 8 - 2 - 1 - 2
