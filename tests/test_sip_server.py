"""The SIP server's dialog handling against a scripted peer over real UDP/TCP sockets: what sipp scenarios
do not cover well (races, refusals, hold, timeouts, garbage). Pipeline and Redis are real; no speech."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
import redis.asyncio as aioredis

from callscribe.events import CallEnded, CallStarted
from callscribe.gateway.rtp.packet import build_rtp
from callscribe.gateway.sip.message import SipResponse, StreamFramer, parse_message
from callscribe.service import Service
from callscribe.stream import read_global

pytestmark = pytest.mark.integration

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n{extra}")


@pytest.fixture
async def svc(redis_server, engine, asr_config, tmp_path):
    low = 36000 + (os.getpid() % 50) * 40
    cfg = asr_config.replace(redis_url=redis_server.url, port=0, data_dir=str(tmp_path), sip=True, sip_port=0,
                             rtp_port_min=low, rtp_port_max=low + 39, max_calls=3, rtp_timeout_s=30)
    s = Service(cfg, engine=engine)
    await s.start()
    yield s
    await s.stop()


class Peer(asyncio.DatagramProtocol):
    """A minimal SIP UA on UDP: sends what the test writes, queues what arrives."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.transport = None

    def datagram_received(self, data, addr) -> None:
        self.inbox.put_nowait(data)

    @classmethod
    async def open(cls) -> "Peer":
        loop = asyncio.get_running_loop()
        p = cls()
        p.transport, _ = await loop.create_datagram_endpoint(lambda: p, local_addr=("127.0.0.1", 0))
        p.port = p.transport.get_extra_info("sockname")[1]
        return p

    async def expect(self, want=None, timeout: float = 5.0):
        """Next SIP message (skipping 100 Trying unless asked for); ``want``: a status or a method."""
        while True:
            data = await asyncio.wait_for(self.inbox.get(), timeout)
            msg = parse_message(data)
            if isinstance(msg, SipResponse) and msg.status == 100 and want != 100:
                continue
            if want is None or (isinstance(msg, SipResponse) and msg.status == want) or getattr(msg, "method", None) == want:
                return msg
            raise AssertionError(f"expected {want}, got {data[:80]!r}")


def msg(method: str, server_port: int, peer_port: int, *, call_id: str, cseq: int, branch: str, to_tag: str = "",
        body: str = "", extra: str = "", transport: str = "UDP") -> bytes:
    to = f"<sip:srs@127.0.0.1:{server_port}>" + (f";tag={to_tag}" if to_tag else "")
    head = (f"{method} sip:srs@127.0.0.1:{server_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} 127.0.0.1:{peer_port};branch=z9hG4bK{branch};rport\r\n"
            f"From: <sip:13800138000@127.0.0.1>;tag=peer1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\nContact: <sip:peer@127.0.0.1:{peer_port}>\r\nMax-Forwards: 70\r\n{extra}")
    if body:
        head += "Content-Type: application/sdp\r\n"
    return (head + f"Content-Length: {len(body.encode())}\r\n\r\n" + body).encode()


def answer_port(resp) -> int:
    line = next(ln for ln in resp.body.decode().splitlines() if ln.startswith("m=audio"))
    return int(line.split()[1])


async def events_of(svc, call_id):
    r = aioredis.from_url(svc.redis_url)
    try:
        return [e for e in await read_global(r, svc.cfg) if e.call_id == call_id]
    finally:
        await r.aclose()


async def wait_for_end(svc, call_id, timeout=20.0):
    for _ in range(int(timeout * 10)):
        evs = await events_of(svc, call_id)
        if evs and isinstance(evs[-1], CallEnded):
            return evs
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} never ended: {await events_of(svc, call_id)}")


def short_media_timeout(svc, seconds: float = 1.5) -> None:
    """Calls accepted from now on end after ``seconds`` without RTP (the server reads cfg per call)."""
    svc.sip.cfg = svc.sip.cfg.replace(rtp_timeout_s=seconds)


async def test_hold_resume_by_reinvite_then_bye(svc):
    short_media_timeout(svc)
    port, peer = svc.sip.port, await Peer.open()
    send = lambda b: peer.transport.sendto(b, ("127.0.0.1", port))  # noqa: E731
    send(msg("INVITE", port, peer.port, call_id="hold-1", cseq=1, branch="a1", body=SDP.format(port=40000, extra="a=sendonly\r\n")))
    ok = await peer.expect(200)
    tag, rtp_port = ok.to_tag, answer_port(ok)
    assert "a=recvonly" in ok.body.decode() and ok.headers.get("Contact")
    send(msg("ACK", port, peer.port, call_id="hold-1", cseq=1, branch="a2", to_tag=tag))
    send(msg("INVITE", port, peer.port, call_id="hold-1", cseq=2, branch="a3", to_tag=tag,
             body=SDP.format(port=40000, extra="a=inactive\r\n")))
    re_ok = await peer.expect(200)
    assert answer_port(re_ok) == rtp_port and "a=inactive" in re_ok.body.decode()
    send(msg("ACK", port, peer.port, call_id="hold-1", cseq=2, branch="a4", to_tag=tag))
    await asyncio.sleep(2.5)  # longer than rtp_timeout_s: on hold, silence is not a dead call
    assert "hold-1" in svc.sip.calls and svc.sip.calls["hold-1"].held
    send(msg("UPDATE", port, peer.port, call_id="hold-1", cseq=3, branch="a5", to_tag=tag,
             body=SDP.format(port=40000, extra="a=sendonly\r\n")))
    await peer.expect(200)
    assert not svc.sip.calls["hold-1"].held
    send(msg("BYE", port, peer.port, call_id="hold-1", cseq=4, branch="a6", to_tag=tag))
    await peer.expect(200)
    evs = await wait_for_end(svc, "hold-1")
    assert isinstance(evs[0], CallStarted) and evs[-1].reason == "hangup"
    peer.transport.close()


async def test_media_timeout_ends_the_call_with_our_bye(svc):
    short_media_timeout(svc)
    port, peer = svc.sip.port, await Peer.open()
    send = lambda b: peer.transport.sendto(b, ("127.0.0.1", port))  # noqa: E731
    send(msg("INVITE", port, peer.port, call_id="dead-1", cseq=1, branch="b1", body=SDP.format(port=40002, extra="")))
    ok = await peer.expect(200)
    send(msg("ACK", port, peer.port, call_id="dead-1", cseq=1, branch="b2", to_tag=ok.to_tag))
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media = answer_port(ok)
    for i in range(10):  # a little media, then nothing
        rtp.sendto(build_rtp(0, i, i * 160, 0x1234, b"\xff" * 160), ("127.0.0.1", media))
    receiver_report = bytes([0x80, 201, 0, 1]) + (0x1234).to_bytes(4, "big")
    rtp.sendto(receiver_report, ("127.0.0.1", media + 1))  # RTCP on port + 1
    rtp.sendto(receiver_report, ("127.0.0.1", media))  # and muxed (RFC 5761)
    rtp.sendto(b"\x01\x02garbage", ("127.0.0.1", media))
    rtp.close()
    await asyncio.sleep(0.3)
    stream = svc.sip.calls["dead-1"].streams[0]
    assert stream.stats.packets == 10 and stream.stats.rtcp == 2 and stream.stats.malformed == 1
    bye = await peer.expect("BYE", timeout=10)
    assert bye.call_id == "dead-1" and bye.from_tag == ok.to_tag and bye.to_tag == "peer1"
    peer.transport.sendto(_ok_for(bye), ("127.0.0.1", port))
    evs = await wait_for_end(svc, "dead-1")
    assert evs[-1].reason == "timeout"
    assert not svc.sip.calls and svc.sip.pool.free_pairs == svc.sip.pool.pairs
    peer.transport.close()


def _ok_for(req) -> bytes:
    from callscribe.gateway.sip.message import make_response

    return make_response(req, 200).to_bytes()


async def test_cancel_before_answer_gets_487_and_leaves_nothing(svc):
    port, peer = svc.sip.port, await Peer.open()
    invite = msg("INVITE", port, peer.port, call_id="cancel-1", cseq=1, branch="c1", body=SDP.format(port=40004, extra=""))
    cancel = msg("CANCEL", port, peer.port, call_id="cancel-1", cseq=1, branch="c1")
    peer.transport.sendto(invite, ("127.0.0.1", port))
    peer.transport.sendto(cancel, ("127.0.0.1", port))  # same datagram burst: before our answer
    got = {(await peer.expect()).status for _ in range(2)}
    assert got == {200, 487}  # 200 for the CANCEL, 487 for the INVITE
    await asyncio.sleep(0.3)
    assert not svc.sip.calls and not svc.sip.pending and svc.sip.pool.free_pairs == svc.sip.pool.pairs
    assert await events_of(svc, "cancel-1") == []
    peer.transport.close()


async def test_garbage_malformed_and_unknown_requests(svc):
    port, peer = svc.sip.port, await Peer.open()
    send = lambda b: peer.transport.sendto(b, ("127.0.0.1", port))  # noqa: E731
    send(b"\x00\xff garbage that is not SIP")
    send(b"\r\n\r\n")  # keep-alive ping
    pong = await asyncio.wait_for(peer.inbox.get(), 5)
    assert pong == b"\r\n"
    bad = msg("INVITE", port, peer.port, call_id="bad-1", cseq=1, branch="d1", body="v=0\r\nthis is not sdp")
    send(bad)
    assert (await peer.expect()).status == 400
    send(msg("INVITE", port, peer.port, call_id="bad-2", cseq=1, branch="d2", body=SDP.format(port=40006, extra="").replace("RTP/AVP 0 101", "RTP/AVP 18").replace("a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:18 G729/8000\r\n")))
    assert (await peer.expect()).status == 488
    send(msg("INVITE", port, peer.port, call_id="bad-3", cseq=1, branch="d3", body=SDP.format(port=40008, extra=""), extra="Require: magic-ext\r\n"))
    r = await peer.expect()
    assert r.status == 420 and r.headers.get("Unsupported") == "magic-ext"
    send(msg("MESSAGE", port, peer.port, call_id="bad-4", cseq=1, branch="d4"))
    r = await peer.expect()
    assert r.status == 405 and "INVITE" in (r.headers.get("Allow") or "")
    send(msg("BYE", port, peer.port, call_id="nope", cseq=1, branch="d5", to_tag="x"))
    assert (await peer.expect()).status == 481
    # missing Call-ID and CSeq: nothing can route a response, so it is dropped; the server still serves
    send(b"INVITE sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n\r\n")
    send(msg("OPTIONS", port, peer.port, call_id="opt-1", cseq=1, branch="d6"))
    r = await peer.expect()
    assert r.status == 200 and "siprec" in (r.headers.get("Supported") or "")
    assert svc.sip.stats.malformed >= 2 and not svc.sip.calls
    peer.transport.close()


async def test_tcp_transport_and_options_503_when_full(svc):
    port = svc.sip.ports["tcp"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framer = StreamFramer()
    local = writer.get_extra_info("sockname")[1]

    async def next_msg():
        while True:
            got = framer.feed(b"")
            for m in got:
                if not (isinstance(m, SipResponse) and m.status == 100):
                    return m
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data, "connection closed"
            for m in framer.feed(data):
                if not (isinstance(m, SipResponse) and m.status == 100):
                    return m

    tags = []
    for i in range(3):  # fill the worker (max_calls = 3) over TCP
        writer.write(msg("INVITE", port, local, call_id=f"tcp-{i}", cseq=1, branch=f"t{i}", transport="TCP",
                         body=SDP.format(port=41000 + 2 * i, extra="")))
        ok = await next_msg()
        assert ok.status == 200, ok
        tags.append(ok.to_tag)
        writer.write(msg("ACK", port, local, call_id=f"tcp-{i}", cseq=1, branch=f"ta{i}", to_tag=ok.to_tag, transport="TCP"))
    writer.write(msg("OPTIONS", port, local, call_id="tcp-opt", cseq=1, branch="to", transport="TCP"))
    r = await next_msg()
    assert r.status == 503 and r.headers.get("Retry-After") == str(svc.cfg.sip_retry_after_s)
    writer.write(msg("INVITE", port, local, call_id="tcp-x", cseq=1, branch="tx", transport="TCP", body=SDP.format(port=41010, extra="")))
    r = await next_msg()
    assert r.status == 503
    for i, tag in enumerate(tags):
        writer.write(msg("BYE", port, local, call_id=f"tcp-{i}", cseq=2, branch=f"tb{i}", to_tag=tag, transport="TCP"))
        assert (await next_msg()).status == 200
    for i in range(3):
        assert (await wait_for_end(svc, f"tcp-{i}"))[-1].reason == "hangup"
    assert await events_of(svc, "tcp-x") == []
    writer.close()


async def test_sip_over_tls(redis_server, engine, asr_config, tmp_path):
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    low = 38000 + (os.getpid() % 50) * 20
    cfg = asr_config.replace(redis_url=redis_server.url, port=0, data_dir=str(tmp_path), sip=True, sip_port=0,
                             sip_transports=("tls",), sip_tls_port=0, sip_tls_cert=str(cert), sip_tls_key=str(key),
                             rtp_port_min=low, rtp_port_max=low + 19)
    s = Service(cfg, engine=engine)
    await s.start()
    try:
        port = s.sip.ports["tls"]
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        local = writer.get_extra_info("sockname")[1]
        framer = StreamFramer()
        writer.write(msg("INVITE", port, local, call_id="tls-1", cseq=1, branch="s1", transport="TLS",
                         body=SDP.format(port=42000, extra="")))
        got = []
        while not any(isinstance(m, SipResponse) and m.status == 200 for m in got):
            got += framer.feed(await asyncio.wait_for(reader.read(65536), 5))
        ok = next(m for m in got if m.status == 200)
        assert "transport=tls" in ok.headers.get("Contact")
        writer.write(msg("ACK", port, local, call_id="tls-1", cseq=1, branch="s2", to_tag=ok.to_tag, transport="TLS"))
        writer.write(msg("BYE", port, local, call_id="tls-1", cseq=2, branch="s3", to_tag=ok.to_tag, transport="TLS"))
        got = []
        while not any(isinstance(m, SipResponse) and m.cseq[1] == "BYE" for m in got):
            got += framer.feed(await asyncio.wait_for(reader.read(65536), 5))
        assert (await wait_for_end(s, "tls-1"))[-1].reason == "hangup"
        writer.close()
    finally:
        await s.stop()
