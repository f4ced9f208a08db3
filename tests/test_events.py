"""callscribe.events: the one wire form of every event (Redis stream fields and JSON), round trips and rejects."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscribe import events
from callscribe.errors import SchemaError
from callscribe.events import SCHEMA_VERSION, CallEnded, CallStarted, Transcript, Word

TRANSCRIPT_ZH = Transcript(
    call_id="call-0001",
    channel="customer",
    segment_id="customer-3",
    revision=2,
    is_final=True,
    text="我要投诉你们的服务，账单多扣了3.5元。",
    start_ms=12_340,
    end_ms=15_020,
    language="zh",
    confidence=0.8731,
    words=(
        Word("我要", 12_340, 12_600, 0.91),
        Word("投诉", 12_600, 13_010, 0.875),
        Word("你们的服务，", 13_010, 13_900, 0.5),
    ),
    emitted_at_ms=1_700_000_000_123,
    speech_end_at_ms=1_700_000_000_001,
)
TRANSCRIPT_PARTIAL_EN = Transcript(
    call_id="call-0002",
    channel="agent",
    segment_id="agent-0",
    revision=0,
    is_final=False,
    text='He said "hello", then: goodbye\nnew line',
    start_ms=0,
    end_ms=980,
    language="en",
    confidence=0.1,
    emitted_at_ms=1_700_000_000_500,
)
CALL_STARTED = CallStarted(
    call_id="call-0001",
    channels=("customer", "agent"),
    language="auto",
    sample_rate_hz=8000,
    encoding="mulaw",
    metadata={"caller": "+86 138 0000 0000", "queue": "账单", "agent_id": "a-17"},
    started_at_ms=1_700_000_000_000,
)
CALL_ENDED = CallEnded(
    call_id="call-0001", duration_ms=61_480, reason="hangup", finals=14, ended_at_ms=1_700_000_061_480
)

ALL_EVENTS = [TRANSCRIPT_ZH, TRANSCRIPT_PARTIAL_EN, CALL_STARTED, CALL_ENDED]
IDS = ["transcript-zh-final", "transcript-en-partial", "call-started", "call-ended"]


@pytest.mark.parametrize("event", ALL_EVENTS, ids=IDS)
def test_fields_round_trip(event):
    fields = events.to_fields(event)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
    assert fields["type"] == event.TYPE
    assert fields["v"] == str(SCHEMA_VERSION)
    assert events.from_fields(fields) == event


@pytest.mark.parametrize("event", ALL_EVENTS, ids=IDS)
def test_fields_round_trip_as_redis_bytes(event):
    """redis-py without decode_responses hands back bytes keys and values."""
    raw = {k.encode(): v.encode("utf-8") for k, v in events.to_fields(event).items()}
    assert events.from_fields(raw) == event


@pytest.mark.parametrize("event", ALL_EVENTS, ids=IDS)
def test_json_round_trip(event):
    text = events.to_json(event)
    obj = json.loads(text)
    assert obj["type"] == event.TYPE and obj["v"] == SCHEMA_VERSION
    assert events.from_json(text) == event
    assert events.from_json(text.encode("utf-8")) == event


def test_json_keeps_chinese_readable_and_words_as_objects():
    text = events.to_json(TRANSCRIPT_ZH)
    assert "我要投诉你们的服务" in text  # ensure_ascii=False: no \\u escapes on the wire
    obj = json.loads(text)
    assert obj["kind"] == "final"
    assert obj["is_final"] is True
    assert obj["words"][1] == {"text": "投诉", "start_ms": 12_600, "end_ms": 13_010, "probability": 0.875}


def test_fields_encoding():
    fields = events.to_fields(TRANSCRIPT_ZH)
    assert fields["is_final"] == "1"
    assert fields["start_ms"] == "12340"
    assert fields["confidence"] == "0.8731"
    assert fields["kind"] == "final"
    first_word = {"text": "我要", "start_ms": 12_340, "end_ms": 12_600, "probability": 0.91}
    assert json.loads(fields["words"])[0] == first_word
    assert events.to_fields(TRANSCRIPT_PARTIAL_EN)["is_final"] == "0"
    started = events.to_fields(CALL_STARTED)
    assert json.loads(started["channels"]) == ["customer", "agent"]
    assert json.loads(started["metadata"])["queue"] == "账单"


def test_transcript_kind():
    assert TRANSCRIPT_ZH.kind == "final"
    assert TRANSCRIPT_PARTIAL_EN.kind == "partial"


def test_missing_optional_fields_take_defaults():
    fields = events.to_fields(CALL_ENDED)
    del fields["finals"], fields["ended_at_ms"]
    ev = events.from_fields(fields)
    assert ev == CallEnded(call_id="call-0001", duration_ms=61_480, reason="hangup", finals=0, ended_at_ms=0)


def test_entry_without_version_is_read_as_v1():
    fields = events.to_fields(CALL_ENDED)
    del fields["v"]
    assert events.from_fields(fields) == CALL_ENDED


@pytest.mark.parametrize("event", ALL_EVENTS, ids=IDS)
def test_newer_schema_version_rejected(event):
    fields = events.to_fields(event)
    fields["v"] = str(SCHEMA_VERSION + 1)
    with pytest.raises(SchemaError, match="newer"):
        events.from_fields(fields)
    obj = events.to_dict(event)
    obj["v"] = SCHEMA_VERSION + 1
    with pytest.raises(SchemaError, match="newer"):
        events.from_json(json.dumps(obj))


def test_unknown_type_rejected():
    fields = events.to_fields(CALL_ENDED)
    fields["type"] = "call_transferred"
    with pytest.raises(SchemaError, match="call_transferred"):
        events.from_fields(fields)


REQUIRED = {
    "transcript": ("call_id", "channel", "segment_id", "revision", "is_final", "text", "start_ms", "end_ms",
                   "language", "confidence"),
    "call_started": ("call_id", "channels"),
    "call_ended": ("call_id", "duration_ms", "reason"),
}


@pytest.mark.parametrize(
    "event,field_name",
    [(e, f) for e in ALL_EVENTS for f in REQUIRED[e.TYPE] + ("type",)],
    ids=lambda x: x if isinstance(x, str) else x.TYPE,
)
def test_missing_required_field_rejected(event, field_name):
    fields = events.to_fields(event)
    del fields[field_name]
    with pytest.raises(SchemaError):
        events.from_fields(fields)


@pytest.mark.parametrize(
    "event,field_name,bad",
    [
        (TRANSCRIPT_ZH, "start_ms", "twelve"),
        (TRANSCRIPT_ZH, "revision", "1.5"),
        (TRANSCRIPT_ZH, "confidence", "high"),
        (TRANSCRIPT_ZH, "words", "[{\"text\": \"x\"}]"),
        (TRANSCRIPT_ZH, "words", "not json"),
        (TRANSCRIPT_ZH, "words", "[{\"text\":\"x\",\"start_ms\":1e400,\"end_ms\":1,\"probability\":1}]"),
        (TRANSCRIPT_ZH, "words", "[" * 100_000),
        (TRANSCRIPT_ZH, "v", "one"),
        (CALL_STARTED, "channels", "{not json"),
        (CALL_STARTED, "channels", "5"),
        (CALL_STARTED, "metadata", "\"abc\""),
        (CALL_STARTED, "sample_rate_hz", "8k"),
        (CALL_ENDED, "duration_ms", ""),
    ],
    ids=lambda x: x[:24] if isinstance(x, str) else x.TYPE,
)
def test_bad_value_rejected(event, field_name, bad):
    fields = events.to_fields(event)
    fields[field_name] = bad
    with pytest.raises(SchemaError):
        events.from_fields(fields)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        '"call_ended"',
        '{"v": 1}',
        '{"type": [], "v": 1}',
        '{"type": "call_ended", "v": [1]}',
        '{"type": "call_ended", "v": null}',
        '{"type": "call_ended", "v": 1e400}',
        '{"type": "call_ended", "v": 1, "call_id": "c", "duration_ms": 1e400, "reason": "eof"}',
        '{"type": "call_ended", "v": 1, "call_id": "c", "duration_ms": {}, "reason": "eof"}',
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=lambda x: x[:40],
)
def test_bad_json_rejected(text):
    with pytest.raises(SchemaError):
        events.from_json(text)


def test_invalid_utf8_in_redis_entry_rejected():
    raw = {k.encode(): v.encode() for k, v in events.to_fields(CALL_ENDED).items()}
    raw[b"call_id"] = b"\xff\xfe"
    with pytest.raises(SchemaError):
        events.from_fields(raw)


# --- fuzzing ---------------------------------------------------------------------------------------
_KEYS = st.sampled_from(
    ["type", "v", "call_id", "channel", "segment_id", "revision", "is_final", "text", "start_ms", "end_ms",
     "language", "confidence", "words", "channels", "metadata", "duration_ms", "reason", "finals",
     "sample_rate_hz", "emitted_at_ms"]
) | st.text(max_size=8)
_VALUES = (
    st.sampled_from(["transcript", "call_started", "call_ended", "1", "0", "2", "-1", "[]", "{}", "null",
                     '[{"text":"a","start_ms":0,"end_ms":1,"probability":1}]', '["customer"]', "1e400", "NaN"])
    | st.text(max_size=20)
    | st.integers().map(str)
    | st.floats().map(repr)
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=16))
def test_fuzz_from_fields_only_raises_schema_error(fields):
    try:
        ev = events.from_fields(fields)
    except SchemaError:
        return
    assert isinstance(ev, (Transcript, CallStarted, CallEnded))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.binary(max_size=8), st.binary(max_size=16), max_size=8))
def test_fuzz_from_fields_bytes_only_raises_schema_error(fields):
    try:
        events.from_fields(fields)
    except SchemaError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries(
    {"type": st.sampled_from(["transcript", "call_started", "call_ended"])},
    optional={k: _VALUES for k in REQUIRED["transcript"] + ("channels", "duration_ms", "reason", "words", "metadata", "v")},
))
def test_fuzz_typed_entries_only_raise_schema_error(fields):
    """Known type, arbitrary field values: the parser gets past the type check and into field parsing."""
    try:
        ev = events.from_fields(fields)
    except SchemaError:
        return
    assert ev.TYPE == fields["type"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({"type": st.sampled_from(["transcript", "call_started", "call_ended"])},
                             optional={"v": _JSON, "call_id": _JSON, "words": _JSON, "channels": _JSON,
                                       "metadata": _JSON, "duration_ms": _JSON, "reason": _JSON, "start_ms": _JSON}))
def test_fuzz_from_json_only_raises_schema_error(obj):
    try:
        events.from_json(json.dumps(obj))
    except SchemaError:
        pass


@settings(max_examples=100, deadline=None)
@given(
    text=st.text(),
    start_ms=st.integers(0, 10**9),
    dur_ms=st.integers(0, 10**6),
    confidence=st.floats(0, 1),
    words=st.lists(st.tuples(st.text(max_size=6), st.integers(0, 10**6), st.floats(0, 1)), max_size=5),
    is_final=st.booleans(),
)
def test_fuzz_transcript_round_trip(text, start_ms, dur_ms, confidence, words, is_final):
    ev = Transcript(
        call_id="c", channel="agent", segment_id="agent-1", revision=3, is_final=is_final, text=text,
        start_ms=start_ms, end_ms=start_ms + dur_ms, language="zh", confidence=confidence,
        words=tuple(Word(w, s, s + 10, p) for w, s, p in words), emitted_at_ms=5, speech_end_at_ms=4,
    )
    assert events.from_fields(events.to_fields(ev)) == ev
    assert events.from_json(events.to_json(ev)) == ev
