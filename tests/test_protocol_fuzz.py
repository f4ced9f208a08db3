"""Property tests of the ingest protocol (gateway/protocol.py, docs/protocol.md): whatever a client sends,
the parser answers a typed request or a ProtocolError carrying a close code the protocol names, never any
other exception (which the server could only answer with 1011). Call ids with control characters (a trailing
newline first of all) are refused; valid starts round-trip. Then a few fixed nasty cases end to end against
a real IngestServer (real Pipeline, real RedisPublisher on an embedded Redis; no audio with speech is sent,
so no model is loaded).

Hypothesis runs derandomized (the same examples on every run) with bounded example counts."""

from __future__ import annotations

import asyncio
import json
import math
import string

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from callscribe.audio import ENCODINGS, SAMPLE_RATES_HZ
from callscribe.errors import ProtocolError
from callscribe.gateway import protocol as proto

CLOSE_CODES = {1003, 1007, 1008, 1009, 1013, 4409}
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink], suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
ID_ALPHABET = string.ascii_letters + string.digits + "._:@+-"
ROLES = ("customer", "agent", "mixed")


def _outcome(message: str):
    """parse_text's answer, or its ProtocolError; anything else propagates and fails the test."""
    try:
        return proto.parse_text(message)
    except ProtocolError as exc:
        assert exc.close_code in CLOSE_CODES, (exc.close_code, str(exc))
        assert str(exc), "a ProtocolError says what was wrong"
        return exc


def _check_typed(req) -> None:
    if isinstance(req, ProtocolError):
        return
    assert isinstance(req, (proto.StartRequest, proto.EndRequest)), req
    if isinstance(req, proto.EndRequest):
        assert isinstance(req.reason, str) and len(req.reason) <= 64
        req.reason.encode("utf-8")  # it goes into call_ended in Redis
        return
    assert proto._CALL_ID.fullmatch(req.call_id)
    assert 1 <= len(req.channels) <= 2 and set(req.channels) <= set(ROLES) and len(set(req.channels)) == len(req.channels)
    assert req.encoding in ENCODINGS and req.sample_rate_hz in SAMPLE_RATES_HZ and type(req.sample_rate_hz) is int
    assert req.layout in proto.LAYOUTS and isinstance(req.language, str)
    assert len(req.metadata) <= 64
    for k, v in req.metadata.items():
        assert isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 256
        (k + v).encode("utf-8")  # metadata goes into call_started in Redis


# --- arbitrary input ----------------------------------------------------------------------------------------------
# any text, lone surrogates and control characters included (JSON can escape them: "\ud800")
TEXT = st.text(st.characters(exclude_categories=[]), max_size=20) | st.text(st.sampled_from(["\ud800", "\udfff", "a", "\n", "\x00", "é", "汉"]), max_size=6)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
# start messages whose fields are each sometimes valid, sometimes anything at all
FIELD = {
    "call_id": st.text(alphabet=ID_ALPHABET, min_size=1, max_size=130) | st.text(max_size=10) | JSON,
    "channels": st.sampled_from([["customer", "agent"], ["agent", "customer"], ["mixed"], 1, 2, ["customer", "customer"], [], 3, True])
    | st.lists(st.sampled_from([*ROLES, "x"]), max_size=3) | JSON,
    "encoding": st.sampled_from([*ENCODINGS, "opus", "PCM16"]) | JSON,
    "sample_rate": st.sampled_from([8000, 16000, 8000.0, 16000.5, 44100, True, "8000"]) | JSON,
    "language": st.sampled_from(["auto", "zh", "en", "yue", "ZH", "zh\n", "auto "]) | JSON,
    "layout": st.sampled_from([*proto.LAYOUTS, "planar"]) | JSON,
    "metadata": st.dictionaries(st.text(max_size=70) | TEXT, st.text(max_size=300) | TEXT | st.integers() | st.floats() | JSON, max_size=70) | JSON,
}
START = st.fixed_dictionaries({"type": st.just("start")}, optional=FIELD)


@FUZZ
@given(st.text() | TEXT)
def test_any_text_is_a_request_or_a_protocol_error(message):
    _check_typed(_outcome(message))


@FUZZ
@given(JSON | START | st.fixed_dictionaries({"type": st.sampled_from(["end", "start", "END", "audio"])}, optional={"reason": JSON}))
def test_any_json_value_is_a_request_or_a_protocol_error(value):
    _check_typed(_outcome(json.dumps(value)))  # json.dumps writes NaN / Infinity, which json.loads takes back


@FUZZ
@given(START)
def test_start_fields_are_checked_one_by_one(value):
    out = _outcome(json.dumps(value))
    _check_typed(out)
    if not isinstance(out, ProtocolError):  # what came through was asked for (or defaulted)
        assert out.call_id == value["call_id"]
        assert out.encoding == value.get("encoding", "pcm16") and out.layout == value.get("layout", "interleaved")


@FUZZ
@given(st.binary(max_size=64), st.sampled_from(proto.LAYOUTS), st.integers(1, 2))
def test_any_frame_splits_or_is_refused(data, layout, n_channels):
    try:
        index, payload = proto.split_frame(data, layout, n_channels)
    except ProtocolError as exc:
        assert exc.close_code in CLOSE_CODES
        assert layout == "channel_prefixed" and (not data or data[0] >= n_channels)
        return
    if layout == "interleaved":
        assert (index, payload) == (None, data)
    else:
        assert 0 <= index < n_channels and payload == data[1:]


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_as_text_are_a_request_or_a_protocol_error(data):
    # a WebSocket text frame is UTF-8, but whatever str reaches the parser must not break it
    for text in (data.decode("utf-8", "replace"), data.decode("latin-1"), data.decode("utf-8", "surrogateescape")):
        _check_typed(_outcome(text))


@FUZZ
@given(st.text(alphabet=ID_ALPHABET, min_size=1, max_size=20), st.dictionaries(TEXT, TEXT | JSON, max_size=6))
def test_metadata_is_storable_or_refused(call_id, metadata):
    out = _outcome(json.dumps({"type": "start", "call_id": call_id, "metadata": metadata}))
    _check_typed(out)  # accepted metadata encodes as UTF-8 (Redis, the client's call_started)
    if isinstance(out, ProtocolError):
        assert out.close_code == 1007 and "metadata" in str(out)


# --- call ids ------------------------------------------------------------------------------------------------------------
VALID_ID = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=120)
CONTROL = st.sampled_from(["\n", "\r", "\r\n", "\t", "\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", " ",
                           "\ufeff", "\u200b", "/", "\\", "%0a"]) | st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs"])


@FUZZ
@given(VALID_ID, CONTROL, st.sampled_from(["end", "start", "middle"]))
def test_call_ids_with_control_characters_are_refused(call_id, bad, where):
    cut = len(call_id) // 2
    candidate = {"end": call_id + bad, "start": bad + call_id, "middle": call_id[:cut] + bad + call_id[cut:]}[where]
    out = _outcome(json.dumps({"type": "start", "call_id": candidate}))
    assert isinstance(out, ProtocolError) and out.close_code == 1007 and "call_id" in str(out), (candidate, out)


def test_call_id_edge_cases():
    for bad in ("abc\n", "abc\r\n", "\nabc", "a" * 129, "", "c\x00", "c\u2028", "通话1", "ｃ1", "c 1", "c/1", None, 7, ["c"]):
        out = _outcome(json.dumps({"type": "start", "call_id": bad}))
        assert isinstance(out, ProtocolError) and out.close_code == 1007, bad
    assert proto.parse_text(json.dumps({"type": "start", "call_id": "a" * 128})).call_id == "a" * 128


# --- valid starts round-trip ----------------------------------------------------------------------------------------
METADATA = st.dictionaries(st.text(min_size=1, max_size=64), st.text(max_size=256) | st.integers(-10**12, 10**12), max_size=64)


@FUZZ
@given(VALID_ID, st.sampled_from([("customer", "agent"), ("agent", "customer"), ("mixed",), 1, 2]), st.sampled_from(ENCODINGS),
       st.sampled_from(SAMPLE_RATES_HZ), st.sampled_from(["auto", "zh", "en", "yue"]), st.sampled_from(proto.LAYOUTS), METADATA)
def test_valid_starts_round_trip(call_id, channels, encoding, rate, language, layout, metadata):
    msg = {"type": "start", "call_id": call_id, "channels": list(channels) if isinstance(channels, tuple) else channels,
           "encoding": encoding, "sample_rate": rate, "language": language, "layout": layout, "metadata": metadata}
    req = proto.parse_text(json.dumps(msg, ensure_ascii=bool(len(call_id) % 2)))
    expected_channels = {1: ("mixed",), 2: ("customer", "agent")}.get(channels, channels)  # type: ignore[call-overload]
    assert req == proto.StartRequest(call_id, expected_channels, encoding, rate, language, layout,
                                     {k: str(v) for k, v in metadata.items()})
    # and the same request back out of its own JSON: the parse is a fixed point
    again = proto.parse_text(json.dumps({"type": "start", "call_id": req.call_id, "channels": list(req.channels),
                                         "encoding": req.encoding, "sample_rate": req.sample_rate_hz, "language": req.language,
                                         "layout": req.layout, "metadata": req.metadata}))
    assert again == req


@FUZZ
@given(st.one_of(st.none(), st.text(max_size=100), TEXT, st.integers(), st.floats()))
def test_end_round_trips(reason):
    msg = {"type": "end"} if reason is None else {"type": "end", "reason": reason}
    out = _outcome(json.dumps(msg))
    _check_typed(out)
    if isinstance(reason, str):  # as sent, cut to 64 characters, unless Redis could not store it
        sent = json.loads(json.dumps(reason))[:64]  # (JSON joins two lone surrogates that form a pair)
        assert out.reason == sent if isinstance(out, proto.EndRequest) else not proto._utf8(sent)


# --- the 1011s found, pinned ----------------------------------------------------------------------------------------
def test_json_the_decoder_cannot_take_is_a_1007_not_an_internal_error():
    """Found by this file: nesting deeper than the recursion limit (a 64 kB frame holds 64,000 '[') raised
    RecursionError, and an integer past Python's 4,300-digit limit a ValueError without ``.msg`` (so the
    handler itself raised AttributeError): both reached the server as 1011 internal error."""
    for message in ("[" * 60_000, '{"type": "start", "call_id": "c", "metadata": {"a": ' + "1" * 5000 + "}}",
                    '{"type": "end", "reason": ' + "9" * 4301 + "}", "-" + "1" * 10_000):
        out = _outcome(message)
        assert isinstance(out, ProtocolError) and out.close_code == 1007, message[:40]


def test_text_redis_cannot_store_is_refused():
    """Found by this file: JSON may escape a lone surrogate ("\\ud800"); in metadata or an end reason it was
    accepted, and the event could then not be written to Redis (UTF-8)."""
    for msg in ({"type": "start", "call_id": "c", "metadata": {"queue": "\ud800"}},
                {"type": "start", "call_id": "c", "metadata": {"\udc80": "x"}},
                {"type": "end", "reason": "bye\udfff"}):
        out = _outcome(json.dumps(msg))
        assert isinstance(out, ProtocolError) and out.close_code == 1007, msg


def test_floats_that_are_not_rates_are_refused():
    for rate in (math.nan, math.inf, -math.inf, 16000.5, 7999.999):
        out = _outcome(json.dumps({"type": "start", "call_id": "c", "sample_rate": rate}))
        assert isinstance(out, ProtocolError) and out.close_code == 1003, rate
    assert proto.parse_text(json.dumps({"type": "start", "call_id": "c", "sample_rate": 8000.0})).sample_rate_hz == 8000


# --- end to end: a few fixed nasty cases against a real IngestServer ------------------------------------------------------
@pytest.fixture
async def ingest(redis_server, tmp_path):
    from callscribe.config import Config
    from callscribe.gateway.ingest import IngestServer
    from callscribe.pipeline import Pipeline
    from callscribe.stream import RedisPublisher

    cfg = Config(data_dir=str(tmp_path), redis_url=redis_server.url, port=0, ingest_auth=False, partials=False, sip=False,
                 analytics=False, web=False, idle_timeout_s=5.0, key_prefix="pfuzz")
    publisher = RedisPublisher(cfg, redis_server.url)
    await publisher.start()
    pipeline = Pipeline(cfg, None, publisher)  # no engine: these cases never carry speech to decode
    await pipeline.start()
    server = IngestServer(cfg, pipeline)
    await server.start(host="127.0.0.1", port=0)
    try:
        yield server, f"ws://127.0.0.1:{server.port}/v1/ingest", publisher
    finally:
        await server.stop()
        await pipeline.stop()
        await publisher.stop()


async def _session(url: str, messages: list[str | bytes]) -> tuple[int | None, list[dict]]:
    """Send ``messages``, then read until the server closes: (close code, JSON messages received)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    got: list[dict] = []
    async with connect(url, open_timeout=5, max_size=None) as ws:
        try:
            for m in messages:
                await ws.send(m)
            while True:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        except ConnectionClosed:
            pass
        return (ws.close_code, got)


START_OK = json.dumps({"type": "start", "call_id": "e2e-ok", "channels": ["customer", "agent"], "sample_rate": 8000})


@pytest.mark.integration
async def test_nasty_sessions_end_to_end(ingest):
    server, url, publisher = ingest
    start = lambda call_id, **kw: json.dumps({"type": "start", "call_id": call_id, "sample_rate": 8000, **kw})  # noqa: E731
    cases = [  # (what, messages, close code)
        ("audio before start", [b"\x00\x00\x00\x00"], 1003),
        ("call id with a trailing newline", [start("e2e-a\n")], 1007),
        ("call id with a NUL", [start("e2e\x00b")], 1007),
        ("JSON nested past the recursion limit", ["[" * 60_000], 1007),
        ("an integer past the digit limit", ['{"type": "start", "call_id": "e2e-c", "metadata": {"n": ' + "1" * 5000 + "}}"], 1007),
        ("a lone surrogate in metadata", [start("e2e-d", metadata={"queue": "\ud800"})], 1007),
        ("start twice", [start("e2e-e"), start("e2e-e2")], 1008),
        ("an odd number of pcm16 bytes", [start("e2e-f"), b"\x01\x02\x03"], 1007),
        ("a channel index past the call's", [start("e2e-g", layout="channel_prefixed"), b"\x05" + b"\x00" * 160], 1007),
        ("end before start", ['{"type": "end"}'], 1008),
        ("a frame over max_frame_bytes", [start("e2e-h"), b"\x00" * (server.cfg.max_frame_bytes + 4)], 1009),
        ("a lone surrogate in the end reason", [start("e2e-i"), json.dumps({"type": "end", "reason": "x\udfff"})], 1007),
        ("silence then end", [START_OK, b"\x00" * 1280, b"\x00" * 1280, '{"type": "end", "reason": "done"}'], 1000),
        ("a used call id", [START_OK], 4409),
    ]
    failures = []
    for what, messages, code in cases:
        got_code, got = await _session(url, messages)
        errors = [m for m in got if m.get("type") == "error"]
        if got_code != code or (code not in (1000, 1009) and [e["code"] for e in errors] != [code]):
            failures.append(f"{what}: closed {got_code} (expected {code}); messages {got}")
    assert not failures, "\n".join(failures)
    _, ok = await _session(url, [json.dumps({"type": "start", "call_id": "e2e-ok2", "sample_rate": 8000}), '{"type": "end"}'])
    assert [m["type"] for m in ok] == ["call_started", "call_ended"] and ok[-1]["reason"] == "client_end"
    assert await publisher.flush(10)
    assert not publisher.degraded  # nothing the clients sent broke the writer
