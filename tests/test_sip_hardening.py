"""SIP ingest hardening over real UDP/TCP sockets against a running service (real pipeline and Redis):
malformed requests answered 400 with a reason phrase, the source allow list (403), the per-source call
quota (503 + Retry-After while another source still gets in), and a 250-INVITE UDP burst in which every
INVITE gets a final answer (nothing dropped in the socket buffer).

The second source address is 127.0.0.2: Linux routes all of 127.0.0.0/8 to lo, so a client socket can
bind it without any set-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import pytest

from callscribe.errors import SipParseError
from callscribe.gateway.sip.message import Headers, SipResponse, StreamFramer, parse_message
from callscribe.service import Service

pytestmark = pytest.mark.integration

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def _second_loopback_ok() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


needs_127_0_0_2 = pytest.mark.skipif(not _second_loopback_ok(), reason="cannot bind 127.0.0.2 (not Linux lo?)")


async def start_service(redis_server, engine, asr_config, tmp_path, ports: int = 40, **overrides) -> Service:
    low = 44000 + (os.getpid() % 40) * 400
    cfg = asr_config.replace(redis_url=redis_server.url, port=0, data_dir=str(tmp_path), sip=True, sip_port=0,
                             rtp_port_min=low, rtp_port_max=low + ports - 1, rtp_timeout_s=30)
    cfg = cfg.replace(**overrides)
    s = Service(cfg, engine=engine)
    await s.start()
    return s


@pytest.fixture
async def svc(redis_server, engine, asr_config, tmp_path):
    s = await start_service(redis_server, engine, asr_config, tmp_path, max_calls=3)
    yield s
    await s.stop()


def request(method: str, server_port: int, local: tuple[str, int], *, call_id: str, cseq: str = "1", branch: str,
            to_tag: str = "", body: str = "", extra: str = "", transport: str = "UDP",
            content_length: str | None = None) -> bytes:
    host, port = local
    to = f"<sip:srs@127.0.0.1:{server_port}>" + (f";tag={to_tag}" if to_tag else "")
    head = (f"{method} sip:srs@127.0.0.1:{server_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} {host}:{port};branch=z9hG4bK{branch};rport\r\n"
            f"From: <sip:13800138000@{host}>;tag=peer1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\nContact: <sip:peer@{host}:{port}>\r\nMax-Forwards: 70\r\n{extra}")
    if body:
        head += "Content-Type: application/sdp\r\n"
    cl = str(len(body.encode())) if content_length is None else content_length
    return (head + f"Content-Length: {cl}\r\n\r\n" + body).encode()


def lenient(data: bytes):
    """Parse what the server sent; a 400 echoing a CSeq we sent out of range is read line by line."""
    try:
        return parse_message(data)
    except SipParseError:
        lines = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        version, status, reason = lines[0].split(" ", 2)
        assert version == "SIP/2.0", lines[0]
        return SipResponse(int(status), reason, Headers(tuple(p.strip() for p in ln.split(":", 1)) for ln in lines[1:]))


class UdpPeer(asyncio.DatagramProtocol):
    """A SIP client socket on UDP (from ``host``); keeps every datagram it receives."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> "UdpPeer":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)  # a burst's answers must not be lost here
        sock.bind((host, 0))
        p = cls()
        p.transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: p, sock=sock)
        p.local = sock.getsockname()
        return p

    def datagram_received(self, data, addr) -> None:
        self.inbox.put_nowait(data)

    def send(self, data: bytes, port: int) -> None:
        self.transport.sendto(data, ("127.0.0.1", port))

    async def final(self, timeout: float = 5.0) -> SipResponse:
        """The next final response (1xx skipped)."""
        while True:
            m = lenient(await asyncio.wait_for(self.inbox.get(), timeout))
            if isinstance(m, SipResponse) and m.status >= 200:
                return m

    async def nothing(self, wait: float = 0.4) -> None:
        await asyncio.sleep(wait)
        assert self.inbox.empty(), f"unexpected answer {self.inbox.get_nowait()[:80]!r}"

    def close(self) -> None:
        self.transport.close()


# --- 1. malformed requests: 400 with a reason phrase -----------------------------------------------------

MALFORMED = [  # (what, request overrides, expected reason phrase)
    ("Content-Length 99999999", dict(content_length="99999999"), "Bad Content-Length"),
    ("Content-Length -5", dict(content_length="-5"), "Bad Content-Length"),
    ("Content-Length not a number", dict(content_length="ten"), "Bad Content-Length"),
    ("CSeq 2**40", dict(cseq=str(2 ** 40)), "Bad CSeq"),
    ("CSeq 2**31", dict(cseq=str(2 ** 31)), "Bad CSeq"),
    ("CSeq of 5000 digits", dict(cseq="9" * 5000), "Bad CSeq"),
    ("Max-Forwards 256", dict(extra="Max-Forwards: 256\r\n"), "Bad Max-Forwards"),  # also a second one
    ("Max-Forwards -1", dict(extra="X-Dummy: 1\r\n", swap=("Max-Forwards: 70", "Max-Forwards: -1")), "Bad Max-Forwards"),
    ("Expires 2**32", dict(extra=f"Expires: {2 ** 32}\r\n"), "Bad Expires"),
    ("Expires -1", dict(extra="Expires: -1\r\n"), "Bad Expires"),
    ("Session-Expires 0", dict(extra="Session-Expires: 0;refresher=uac\r\n"), "Bad Session-Expires"),
    ("Via port 99999", dict(swap=(";branch", ":99999;branch"), via_port=True), "Bad Via"),
    ("From without URI", dict(swap=("From: <sip:13800138000@127.0.0.1>;tag=peer1", "From: nobody")), "Bad From"),
]


def _malformed(case: dict, port: int, local, call_id: str, transport: str = "UDP") -> bytes:
    case = dict(case)
    swap = case.pop("swap", None)
    via_port = case.pop("via_port", False)
    extra = case.pop("extra", "")
    if extra.startswith("Max-Forwards"):  # replace ours rather than add a second one
        swap, extra = ("Max-Forwards: 70", extra.strip()), ""
    raw = request("OPTIONS", port, local, call_id=call_id, branch=call_id, extra=extra, transport=transport, **case).decode()
    if swap:
        old, new = swap
        if via_port:
            old, new = f"{local[0]}:{local[1]};branch", f"{local[0]}:99999;branch"
        assert old in raw
        raw = raw.replace(old, new, 1)
    return raw.encode()


async def test_malformed_options_over_udp_answered_400_with_reason(svc, caplog):
    caplog.set_level(logging.INFO, logger="callscribe.gateway.sip.server")
    port, peer = svc.sip.ports["udp"], await UdpPeer.open()
    for i, (what, case, reason) in enumerate(MALFORMED):
        peer.send(_malformed(case, port, peer.local, f"bad-{i}"), port)
        r = await peer.final()
        assert (r.status, r.reason) == (400, reason), what
        assert r.call_id == f"bad-{i}" and r.headers.get("Via").startswith("SIP/2.0/UDP"), what
        assert r.headers.get("CSeq").split()[-1] == "OPTIONS" and r.to_tag, what
    # a good OPTIONS still works afterwards, and every refusal was logged
    peer.send(request("OPTIONS", port, peer.local, call_id="ok-1", branch="ok1"), port)
    assert (await peer.final()).status == 200
    assert svc.sip.stats.malformed >= len(MALFORMED)
    assert sum("400" in rec.getMessage() for rec in caplog.records) >= len(MALFORMED)
    peer.close()


async def test_unanswerable_requests_are_logged_as_warnings(svc, caplog):
    caplog.set_level(logging.WARNING, logger="callscribe.gateway.sip.server")
    port, peer = svc.sip.ports["udp"], await UdpPeer.open()
    no_call_id = request("OPTIONS", port, peer.local, call_id="x", branch="nc").replace(b"Call-ID: x\r\n", b"")
    bad_via = request("OPTIONS", port, peer.local, call_id="y", branch="bv").replace(b"Via: SIP/2.0/UDP", b"Via: garbage")
    no_method = request("OPTIONS", port, peer.local, call_id="z", branch="nm").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1")
    for data in (no_call_id, bad_via, no_method, b"\x00\xff not SIP at all\r\n\r\n"):
        peer.send(data, port)
    await peer.nothing()
    dropped = [r for r in caplog.records if r.levelno >= logging.WARNING and "cannot be answered" in r.getMessage()]
    assert len(dropped) == 4, [r.getMessage() for r in caplog.records]
    peer.close()


async def test_malformed_over_tcp_answered_400_then_the_connection_goes_on_or_closes(svc):
    port = svc.sip.ports["tcp"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    local = writer.get_extra_info("sockname")
    framer = StreamFramer()

    async def final():
        while True:
            for m in framer.feed(b""):
                if isinstance(m, SipResponse) and m.status >= 200:
                    return m
            data = await asyncio.wait_for(reader.read(65536), 5)
            if not data:
                return None
            for m in framer.feed(data):
                if isinstance(m, SipResponse) and m.status >= 200:
                    return m

    # framed fine but invalid: 400 and the connection stays usable
    writer.write(_malformed(dict(extra="Max-Forwards: 256\r\n"), port, local, "tcp-bad-1", transport="TCP"))
    r = await final()
    assert (r.status, r.reason) == (400, "Bad Max-Forwards")
    writer.write(request("OPTIONS", port, local, call_id="tcp-ok", branch="tok", transport="TCP"))
    assert (await final()).status == 200
    # a Content-Length that cannot frame the stream: 400, then the connection is closed
    writer.write(_malformed(dict(content_length="99999999"), port, local, "tcp-bad-2", transport="TCP"))
    r = await final()
    assert (r.status, r.reason) == (400, "Bad Content-Length")
    assert await asyncio.wait_for(reader.read(65536), 5) == b""
    writer.close()


# --- 2. a burst of 250 INVITEs over UDP: every one answered ---------------------------------------------

async def burst(peer: UdpPeer, port: int, n: int, prefix: str, timeout: float = 15.0) -> dict[str, int]:
    """Send ``n`` INVITEs back to back (no yielding to the loop: the server reads them only afterwards,
    the worst case for its socket buffer); return the final status per Call-ID."""
    body = SDP.format(port=40000)
    for i in range(n):
        peer.send(request("INVITE", port, peer.local, call_id=f"{prefix}-{i}", branch=f"{prefix}{i}", body=body), port)
    finals: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while len(finals) < n and time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(peer.inbox.get(), max(0.01, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        m = parse_message(data)
        if isinstance(m, SipResponse) and m.status >= 200:
            finals.setdefault(m.call_id, m.status)
    return finals


def _rmem_max() -> int:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


async def test_burst_of_250_udp_invites_every_one_answered(redis_server, engine, asr_config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="callscribe.gateway.sip.server")
    s = await start_service(redis_server, engine, asr_config, tmp_path, ports=80, max_calls=20)
    want = s.cfg.sip_recv_buffer_bytes
    assert any(f"receive buffer {s.sip.udp_recv_buffer} bytes granted" in r.getMessage() for r in caplog.records)
    if _rmem_max() >= want:
        assert s.sip.udp_recv_buffer >= want  # Linux reports twice the size set
    try:
        peer = await UdpPeer.open()
        t0 = time.monotonic()
        finals = await burst(peer, s.sip.ports["udp"], 250, "burst")
        took = time.monotonic() - t0
        counts = {st: sum(1 for v in finals.values() if v == st) for st in sorted(set(finals.values()))}
        print(f"250-INVITE burst: {len(finals)} answered in {took:.2f} s: {counts}; "
              f"udp receive buffer {s.sip.udp_recv_buffer} bytes")
        assert len(finals) == 250, counts
        assert set(finals.values()) <= {200, 503, 486}
        assert 1 <= counts.get(200, 0) <= 20 and counts.get(503, 0) >= 230
        peer.close()
    finally:
        await s.stop()


async def test_burst_sheds_with_stateless_503_when_too_many_calls_are_being_set_up(redis_server, engine, asr_config, tmp_path):
    s = await start_service(redis_server, engine, asr_config, tmp_path, ports=400, max_calls=150, source_max_calls=150)
    s.sip.max_setups = 4  # so that the burst outruns the call set-ups
    try:
        peer = await UdpPeer.open()
        finals = await burst(peer, s.sip.ports["udp"], 250, "shed")
        counts = {st: sum(1 for v in finals.values() if v == st) for st in sorted(set(finals.values()))}
        print(f"250-INVITE burst, at most 4 set-ups at once: {len(finals)} answered: {counts}; shed {s.sip.stats.shed}")
        assert len(finals) == 250 and set(finals.values()) <= {200, 503}, counts
        assert s.sip.stats.shed > 0 and counts.get(200, 0) >= 4
        assert len(s.sip.calls) == counts[200] and not s.sip.pending
        # a new INVITE after the burst is set up normally again
        peer.send(request("INVITE", s.sip.ports["udp"], peer.local, call_id="after", branch="after",
                          body=SDP.format(port=40000)), s.sip.ports["udp"])
        assert (await peer.final()).status == 200
        peer.close()
    finally:
        await s.stop()


def test_shed_503_is_stateless_and_carries_retry_after():
    """No sockets: the server's message path with a stub pipeline and a capturing transmit."""
    from callscribe.config import Config
    from callscribe.gateway.sip.server import SipServer

    class Pipeline:
        calls: dict = {}

    sent: list[bytes] = []
    server = SipServer(Config(sip_port=0), Pipeline())
    server._transmit = lambda data, peer: sent.append(data)  # type: ignore[method-assign]
    server.max_setups = 0  # every new INVITE meets a burst
    src = ("127.0.0.1", 5999)
    server.on_datagram(request("INVITE", 5060, src, call_id="s-1", branch="s1", body=SDP.format(port=40000)), src)
    assert len(sent) == 1 and len(server.txn) == 0 and not server.pending  # no 100 Trying, no transaction
    r = parse_message(sent[0])
    assert r.status == 503 and r.headers.get("Retry-After") == str(server.cfg.sip_retry_after_s) and r.to_tag
    assert server.stats.shed == 1 and server.admission.sources == {}
    server.on_datagram(request("OPTIONS", 5060, src, call_id="s-2", branch="s2"), src)  # not an INVITE: served
    assert parse_message(sent[-1]).status == 200 and server.stats.shed == 1


# --- 3. source allow list and per-source quota ----------------------------------------------------------

@needs_127_0_0_2
async def test_allow_list_403_for_a_source_outside_it_on_udp_and_tcp(redis_server, engine, asr_config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="callscribe.gateway.sip.server")
    s = await start_service(redis_server, engine, asr_config, tmp_path, sip_allow=("127.0.0.2/32", "::1/128"),
                            ingest_auth=True)
    try:
        port = s.sip.ports["udp"]
        denied, allowed = await UdpPeer.open("127.0.0.1"), await UdpPeer.open("127.0.0.2")
        denied.send(request("OPTIONS", port, denied.local, call_id="deny-1", branch="dn1"), port)
        r = await denied.final()
        assert (r.status, r.reason) == (403, "Forbidden")
        denied.send(request("INVITE", port, denied.local, call_id="deny-2", branch="dn2", body=SDP.format(port=40000)), port)
        assert (await denied.final()).status == 403
        assert not s.sip.calls and not s.sip.pending
        allowed.send(request("OPTIONS", port, allowed.local, call_id="allow-1", branch="al1"), port)
        assert (await allowed.final()).status == 200
        # TCP: the same list
        reader, writer = await asyncio.open_connection("127.0.0.1", s.sip.ports["tcp"])
        local = writer.get_extra_info("sockname")
        writer.write(request("OPTIONS", port, local, call_id="deny-tcp", branch="dt", transport="TCP"))
        framer, got = StreamFramer(), []
        while not got:
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data
            got = framer.feed(data)
        assert got[0].status == 403
        writer.close()
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", s.sip.ports["tcp"], local_addr=("127.0.0.2", 0))
        local2 = writer2.get_extra_info("sockname")
        writer2.write(request("OPTIONS", port, local2, call_id="allow-tcp", branch="at", transport="TCP"))
        framer, got = StreamFramer(), []
        while not got:
            got = framer.feed(await asyncio.wait_for(reader2.read(65536), 5))
        assert got[0].status == 200
        writer2.close()
        assert any("not in sip_allow" in r.getMessage() for r in caplog.records)
        denied.close(), allowed.close()
    finally:
        await s.stop()


@needs_127_0_0_2
async def test_allow_list_off_without_ingest_auth(redis_server, engine, asr_config, tmp_path):
    s = await start_service(redis_server, engine, asr_config, tmp_path, sip_allow=("10.0.0.0/8",), ingest_auth=False)
    try:
        port, peer = s.sip.ports["udp"], await UdpPeer.open("127.0.0.2")
        peer.send(request("OPTIONS", port, peer.local, call_id="open-1", branch="op1"), port)
        assert (await peer.final()).status == 200
        peer.close()
    finally:
        await s.stop()


@needs_127_0_0_2
async def test_per_source_quota(redis_server, engine, asr_config, tmp_path):
    s = await start_service(redis_server, engine, asr_config, tmp_path, max_calls=10, source_max_calls=2,
                            sip_allow=("127.0.0.0/8",))
    assert s.sip.admission.quota == 2
    try:
        port = s.sip.ports["udp"]
        a, b = await UdpPeer.open("127.0.0.1"), await UdpPeer.open("127.0.0.2")
        tags = []
        for i in range(2):
            a.send(request("INVITE", port, a.local, call_id=f"qa-{i}", branch=f"qa{i}", body=SDP.format(port=40000 + 2 * i)), port)
            ok = await a.final()
            assert ok.status == 200
            tags.append(ok.to_tag)
            a.send(request("ACK", port, a.local, call_id=f"qa-{i}", branch=f"qaa{i}", to_tag=ok.to_tag), port)
        a.send(request("INVITE", port, a.local, call_id="qa-2", branch="qa2", body=SDP.format(port=40004)), port)
        r = await a.final()
        assert r.status == 503 and r.headers.get("Retry-After") == str(s.cfg.sip_retry_after_s)
        b.send(request("INVITE", port, b.local, call_id="qb-0", branch="qb0", body=SDP.format(port=40010)), port)
        ok_b = await b.final()
        assert ok_b.status == 200  # the other source still gets in
        b.send(request("ACK", port, b.local, call_id="qb-0", branch="qba0", to_tag=ok_b.to_tag), port)
        # a's call ends: a may open one again
        a.send(request("BYE", port, a.local, call_id="qa-0", cseq="2", branch="qab0", to_tag=tags[0]), port)
        assert (await a.final()).status == 200
        for _ in range(50):
            if "qa-0" not in s.sip.calls:
                break
            await asyncio.sleep(0.1)
        a.send(request("INVITE", port, a.local, call_id="qa-3", branch="qa3", body=SDP.format(port=40006)), port)
        assert (await a.final()).status == 200
        assert s.sip.admission.live("127.0.0.1") == 2 and s.sip.admission.live("127.0.0.2") == 1
        a.close(), b.close()
    finally:
        await s.stop()
    assert s.sip.admission.live("127.0.0.1") == 0 and s.sip.admission.live("127.0.0.2") == 0


# --- every answerable request is answered, whatever one header holds (no sockets) -------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FUZZ_HEADERS = ["CSeq", "Content-Length", "Max-Forwards", "Expires", "Session-Expires", "Min-SE", "From", "To",
                 "Call-ID", "Via", "Require", "Content-Type"]
_VALUE = st.one_of(
    st.integers(-2**70, 2**70).map(str),
    st.text(alphabet="0123456789 -+;=.,xX\t", max_size=30),
    st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=40),
    st.integers(0, 6000).map(lambda n: "9" * n),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["OPTIONS", "BYE", "INFO", "UPDATE", "MESSAGE", "REGISTER", "SUBSCRIBE"]),
       header=st.sampled_from(_FUZZ_HEADERS), value=_VALUE, cseq_value=st.booleans())
def test_any_answerable_request_gets_exactly_one_final_answer(method, header, value, cseq_value):
    from callscribe.config import Config
    from callscribe.gateway.sip.message import error_response
    from callscribe.gateway.sip.server import SipServer

    class Pipeline:
        calls: dict = {}

    sent: list[bytes] = []
    server = SipServer(Config(sip_port=0), Pipeline())
    server._transmit = lambda data, peer: sent.append(data)  # type: ignore[method-assign]
    src = ("127.0.0.1", 5999)
    raw = request(method, 5060, src, call_id="fz-1", branch="fz1").decode()
    lines = raw.split("\r\n")
    if header == "CSeq" and not cseq_value:
        value = f"{value} {method}"  # a bad number, a good method: still answerable
    i = next((k for k, ln in enumerate(lines) if ln.lower().startswith(header.lower() + ":")), None)
    if i is None:
        lines.insert(1, f"{header}: {value}")
    else:
        lines[i] = f"{header}: {value}"
    data = "\r\n".join(lines).encode("utf-8")
    server.on_datagram(data, src)  # never raises
    finals = [d for d in sent if d[8:11].isdigit() and int(d[8:11]) >= 200]
    if error_response(data, 400, "x") is not None:
        assert len(finals) == 1, (data, sent)
        status, reason = finals[0].split(b"\r\n", 1)[0].split(b" ", 2)[1:]
        assert int(status) != 500, finals[0]  # refused for what it is, never an internal error
        assert reason.strip()
    else:
        assert finals == []
