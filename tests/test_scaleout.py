"""Scale-out: ASR workers as separate processes behind a Redis consumer group; one killed mid-call."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from callscribe.asr.jobs import GROUP, jobs_stream
from callscribe.events import CallEnded, Transcript
from callscribe.gateway.client import IngestClient
from callscribe.service import Service
from callscribe.stream import read_call

pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[1] / "callscribe" / "data"


async def start_worker(url: str) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "CALLSCRIBE_CLAIM_IDLE_S": "3", "CALLSCRIBE_MAX_BATCH_SIZE": "4", "CALLSCRIBE_CPU_THREADS": "1"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "callscribe.cli", "worker", "--redis-url", url,
                                                env=env, stderr=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(proc.stderr.readline(), 120)
    assert line.startswith(b"callscribe worker "), line
    return proc, line.split()[2].decode().rstrip(":")


async def test_two_workers_one_killed_mid_call(redis_server, asr_config, tmp_path):
    (w1, name1), (w2, name2) = await asyncio.gather(start_worker(redis_server.url), start_worker(redis_server.url))
    cfg = asr_config.replace(redis_url=redis_server.url, remote_asr=True, partials=True, port=0, data_dir=str(tmp_path))
    service = Service(cfg)
    await service.start()
    r = aioredis.from_url(redis_server.url)
    try:
        client = IngestClient(service.ingest.url)
        call = asyncio.create_task(client.stream_file(DEMO / "demo_call_en.wav", call_id="scale-1", speed=2.0))
        # kill worker 1 while it holds jobs (read from the group's pending list), so they must be taken over
        killed_with_pending = 0
        for _ in range(400):
            await asyncio.sleep(0.05)
            pending = await r.xpending_range(jobs_stream(cfg), GROUP, min="-", max="+", count=100, consumername=name1)
            if pending and any(True for _ in pending):
                killed_with_pending = len(pending)
                w1.send_signal(signal.SIGKILL)
                break
        assert killed_with_pending, "worker 1 never held a job"
        result = await asyncio.wait_for(call, 180)
        await service.publisher.flush(15)
        events = await read_call(r, cfg, "scale-1")
        finals = [e for e in events if isinstance(e, Transcript) and e.is_final]
        assert isinstance(events[-1], CallEnded)
        assert len(finals) == len({f.segment_id for f in finals})  # none duplicated
        assert [f for f in finals if f.text] == result.finals and len(result.finals) >= 6  # none lost
        assert "clubs" in " ".join(f.text for f in result.finals).lower()
        stderr2 = b""
    finally:
        await service.stop()
        w2.send_signal(signal.SIGTERM)
        _, stderr2 = await asyncio.wait_for(w2.communicate(), 60)
        if w1.returncode is None:
            w1.kill()
        await w1.wait()
        await r.aclose()
    assert b"took over" in stderr2  # the survivor reclaimed the dead worker's jobs
