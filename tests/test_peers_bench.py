"""benchmarks/peers.py, the pure parts: each peer's message stream -> commits and caption updates, the latency
from end of speech to committed text, caption cadence, the sustained-streams rule and the result JSON shape.
The message sequences are cut from real runs (`python -m benchmarks.peers --dump DIR`); no peer is installed
and no server started here."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.peers import (
    Commit,
    Stream,
    TurnSpan,
    batch_sizes_from_log,
    leg_order,
    max_sustained,
    reduce_callscribe,
    reduce_whisperlive,
    reduce_whisperlivekit,
    summarize_level,
    sustained,
    turn_latencies,
    update_intervals,
)

# One leg of a benchmark call (bench-0000, customer side): three turns, times from the start of the leg.
TURNS = [
    TurnSpan(2.546, 3.956, "seven of clubs"),
    TurnSpan(9.565, 13.285, "Author of the danger trail, Philip Steels, etc."),
    TurnSpan(19.585, 20.958, "Will we ever forget it."),
]

# WhisperLive 0.10.0 (one shared model, tiny.en), arrival seconds after audio time 0 went live. Every message
# re-sends the last segments; the first two turns merged into one segment that was committed only when its
# output had repeated; the last turn was never committed before the stream ended.
WHISPERLIVE = [
    (11.828, {"uid": "u", "segments": [{"start": "2.140", "end": "4.140", "text": " 7 of clubs.", "completed": False}]}),
    (16.36, {"uid": "u", "segments": [{"start": "2.140", "end": "11.700", "text": " 7 of Clobes. Author of the Danger Trail, Philip.", "completed": False}]}),
    (19.296, {"uid": "u", "segments": [{"start": "2.140", "end": "13.160", "text": " 7 of Clobes. Author of the Danger Trail, Phillips deals, et cetera.", "completed": False}]}),
    (22.438, {"uid": "u", "segments": [{"start": "2.140", "end": "13.160", "text": " 7 of Clobes. Author of the Danger Trail, Phillips deals, et cetera.", "completed": False}]}),
    (25.096, {"uid": "u", "segments": [
        {"start": "2.140", "end": "13.160", "text": " 7 of clubs. Author of the danger trail, Philip steals, etc.", "completed": True},
        {"start": "13.160", "end": "20.860", "text": " Will we ever forget it?", "completed": False}]}),
    (28.012, {"uid": "u", "segments": [
        {"start": "2.140", "end": "13.160", "text": " 7 of clubs. Author of the danger trail, Philip steals, etc.", "completed": True},
        {"start": "19.190", "end": "21.190", "text": " Will we ever forget it?", "completed": False}]}),
    (29.968, {"uid": "u", "segments": [
        {"start": "2.140", "end": "13.160", "text": " 7 of clubs. Author of the danger trail, Philip steals, etc.", "completed": True},
        {"start": "19.190", "end": "21.190", "text": " Will we ever forget it?", "completed": False}]}),
]


def test_whisperlive_commits_once_and_updates_on_change():
    red = reduce_whisperlive(WHISPERLIVE)
    assert [(c.start_s, c.end_s, c.t) for c in red.commits] == [(2.14, 13.16, 25.096)]  # re-sent, counted once
    # the visible text changed at these arrivals; the others repeated it (28.012 moved only the timestamps)
    assert red.updates == [11.828, 16.36, 19.296, 25.096]
    assert red.text == "7 of clubs. Author of the danger trail, Philip steals, etc."


def test_whisperlive_latency_per_turn_and_never_committed_turn():
    red = reduce_whisperlive(WHISPERLIVE)
    lat = turn_latencies(TURNS, red.commits, t0=0.0)
    # one commit covers the first two turns: both wait for it; the last turn never got committed text
    assert lat[0] == pytest.approx(25.096 - 3.956)
    assert lat[1] == pytest.approx(25.096 - 13.285)
    assert lat[2] == math.inf


def test_whisperlive_status_messages_become_notes():
    red = reduce_whisperlive([(0.1, {"uid": "u", "status": "WAIT", "message": 0.5}),
                              (0.2, {"uid": "u", "message": "SERVER_READY", "backend": "faster_whisper"})])
    assert red.commits == [] and red.notes == ["WAIT: 0.5"]


# WhisperLiveKit 0.2.26 (faster-whisper backend, LocalAgreement), full mode: "lines" hold the agreed text and
# grow; "buffer_transcription" is the tentative tail.
WHISPERLIVEKIT = [
    (0.05, {"type": "config", "useAudioWorklet": True, "mode": "full"}),
    (3.10, {"status": "active_transcription", "lines": [], "buffer_transcription": " 7 of", "buffer_diarization": ""}),
    (3.90, {"status": "active_transcription", "lines": [], "buffer_transcription": " 7 of clubs.", "buffer_diarization": ""}),
    (3.95, {"status": "active_transcription", "lines": [], "buffer_transcription": " 7 of clubs.", "buffer_diarization": ""}),
    (5.20, {"status": "active_transcription",
            "lines": [{"speaker": 1, "text": " 7 of clubs.", "start": "0:00:02.54", "end": "0:00:03.90"}],
            "buffer_transcription": ""}),
    (12.0, {"status": "active_transcription",
            "lines": [{"speaker": 1, "text": " 7 of clubs.", "start": "0:00:02.54", "end": "0:00:03.90"},
                      {"speaker": -2, "text": None, "start": "0:00:03.90", "end": "0:00:09.50"},
                      {"speaker": 1, "text": " Author of the", "start": "0:00:09.60", "end": "0:00:10.80"}],
            "buffer_transcription": " danger trail"}),
    (14.9, {"status": "active_transcription",
            "lines": [{"speaker": 1, "text": " 7 of clubs.", "start": "0:00:02.54", "end": "0:00:03.90"},
                      {"speaker": -2, "text": None, "start": "0:00:03.90", "end": "0:00:09.50"},
                      {"speaker": 1, "text": " Author of the danger trail, Philip Steels, etc.", "start": "0:00:09.60", "end": "0:00:13.20"}],
            "buffer_transcription": ""}),
    (23.5, {"status": "active_transcription",
            "lines": [{"speaker": 1, "text": " 7 of clubs.", "start": "0:00:02.54", "end": "0:00:03.90"},
                      {"speaker": 1, "text": " Author of the danger trail, Philip Steels, etc.", "start": "0:00:09.60", "end": "0:00:13.20"},
                      {"speaker": 1, "text": " Will we ever forget it?", "start": "0:00:19.60", "end": "0:00:20.90"}],
            "buffer_transcription": ""}),
    (24.0, {"type": "ready_to_stop"}),
]


def test_whisperlivekit_line_growth_is_a_commit_of_the_new_words():
    red = reduce_whisperlivekit(WHISPERLIVEKIT)
    spans = [(round(c.start_s, 2), round(c.end_s, 2), c.text, c.t) for c in red.commits]
    assert spans == [
        (2.54, 3.9, " 7 of clubs.", 5.2),
        (9.6, 10.8, " Author of the", 12.0),
        (10.8, 13.2, " danger trail, Philip Steels, etc.", 14.9),  # only the new words, from where the line ended
        (19.6, 20.9, " Will we ever forget it?", 23.5),
    ]
    assert red.text == "7 of clubs. Author of the danger trail, Philip Steels, etc. Will we ever forget it?"
    assert red.updates == [3.10, 3.90, 5.20, 12.0, 14.9, 23.5]  # 3.95 repeated the visible text
    lat = turn_latencies(TURNS, red.commits, t0=0.0)
    assert lat == pytest.approx([5.2 - 3.956, 14.9 - 13.285, 23.5 - 20.958])


def test_whisperlivekit_rewritten_line_counts_as_a_new_commit():
    msgs = [(1.0, {"lines": [{"speaker": 1, "text": " hello word", "start": "0:00:00.50", "end": "0:00:01.00"}], "buffer_transcription": ""}),
            (2.0, {"lines": [{"speaker": 1, "text": " hello world", "start": "0:00:00.50", "end": "0:00:01.10"}], "buffer_transcription": ""})]
    red = reduce_whisperlivekit(msgs)
    assert [(c.text, c.t) for c in red.commits] == [(" hello word", 1.0), (" hello world", 2.0)]
    assert red.text == "hello world"


# callscribe: the WebSocket ingest's events of a two-channel call; finals are committed, partials update.
CALLSCRIBE = [
    (0.02, {"type": "call_started", "call_id": "c"}),
    (3.30, {"type": "transcript", "channel": "customer", "is_final": False, "text": "Seven of", "start_ms": 2400, "end_ms": 3300}),
    (4.45, {"type": "transcript", "channel": "customer", "is_final": True, "text": "Seven of clubs.", "start_ms": 2400, "end_ms": 4100}),
    (5.10, {"type": "transcript", "channel": "agent", "is_final": False, "text": "Hello", "start_ms": 4300, "end_ms": 5000}),
    (10.4, {"type": "transcript", "channel": "customer", "is_final": False, "text": "Author of", "start_ms": 9400, "end_ms": 10300}),
    (11.2, {"type": "transcript", "channel": "customer", "is_final": False, "text": "Author of the danger", "start_ms": 9400, "end_ms": 11100}),
    (12.0, {"type": "transcript", "channel": "customer", "is_final": False, "text": "Author of the danger trail,", "start_ms": 9400, "end_ms": 11900}),
    (12.8, {"type": "transcript", "channel": "customer", "is_final": False, "text": "Author of the danger trail, Philip", "start_ms": 9400, "end_ms": 12700}),
    (13.95, {"type": "transcript", "channel": "customer", "is_final": True, "text": "Author of the danger trail, Philip Steels, etc.", "start_ms": 9400, "end_ms": 13400}),
    (21.7, {"type": "transcript", "channel": "customer", "is_final": True, "text": "Will we ever forget it?", "start_ms": 19400, "end_ms": 21100}),
    (22.0, {"type": "call_ended", "call_id": "c"}),
]


def test_callscribe_finals_of_one_channel():
    red = reduce_callscribe(CALLSCRIBE, "customer")
    assert [(c.start_s, c.end_s, c.t) for c in red.commits] == [(2.4, 4.1, 4.45), (9.4, 13.4, 13.95), (19.4, 21.1, 21.7)]
    assert 5.10 not in red.updates  # the agent's partial is the other leg's
    assert red.text.startswith("Seven of clubs. Author")
    lat = turn_latencies(TURNS, red.commits, t0=0.0)
    assert lat == pytest.approx([4.45 - 3.956, 13.95 - 13.285, 21.7 - 20.958])
    assert reduce_callscribe(CALLSCRIBE, "agent").commits == []


def test_latency_uses_t0_and_needs_the_end_of_the_turn_covered():
    turn = [TurnSpan(10.0, 14.0, "x")]
    early = [Commit(9.8, 11.5, "first half", 100.0 + 12.0)]  # only the start of a 4 s turn
    assert turn_latencies(turn, early, t0=100.0) == [math.inf]
    both = early + [Commit(11.5, 13.9, "second half", 100.0 + 14.6)]
    assert turn_latencies(turn, both, t0=100.0) == [pytest.approx(0.6)]
    far = [Commit(16.0, 17.0, "next turn's hallucination", 118.0)]  # outside the turn +- 2 s
    assert turn_latencies(turn, both + far, t0=100.0) == [pytest.approx(0.6)]


def test_latency_tolerates_timestamps_a_second_early():
    # WhisperLiveKit (whisper-base): the turn's speech is 33.15-42.14 s, its line says 32.28-40.90 s
    turn = [TurnSpan(33.15, 42.14, "the aspect ratio of this format ...")]
    line = [Commit(32.28, 40.90, " the aspect ratio of this format. ... 3 to 2.", 74.5)]
    assert turn_latencies(turn, line, t0=0.0) == [pytest.approx(74.5 - 42.14)]


def test_update_intervals_cut_the_turn_at_each_update():
    turns = [TurnSpan(0.0, 4.0, "long"), TurnSpan(6.0, 7.5, "short: not measured"), TurnSpan(10.0, 13.0, "silent")]
    iv, first = update_intervals(turns, [0.9, 1.7, 2.5, 3.3, 6.5], t0=0.0)
    assert iv == pytest.approx([0.9, 0.8, 0.8, 0.8, 0.7, 3.0])  # ... to the end of speech; a turn with none = its length
    assert first == pytest.approx([0.9])


def _level(p95, upd, failed=()):
    return {"streams": 1, "latency_p95_s": p95, "update_interval_median_s": upd, "failed_streams": list(failed)}


def test_sustained_rule_and_max_sustained():
    assert sustained(_level(0.95, 0.8))
    assert sustained(_level(1.0, 1.0))
    assert not sustained(_level(1.01, 0.8))
    assert not sustained(_level(0.9, 1.2))
    assert not sustained(_level("inf", 0.8))  # a turn never committed
    assert not sustained(_level(0.5, None))  # no caption updates measured
    assert not sustained(_level(0.5, 0.5, ["bench-0001-a: refused"]))
    levels = [dict(_level(0.7, 0.8), streams=1), dict(_level(0.8, 0.8), streams=2), dict(_level(1.3, 0.9), streams=4),
              dict(_level(0.9, 0.9), streams=8)]
    assert max_sustained(levels) == 8  # the largest N that passed, as benchmarks.load counts
    assert max_sustained([dict(_level("inf", 3.0), streams=1)]) == 0


def test_summarize_level_json_shape():
    import numpy as np

    stream = Stream("bench-0000-c", 0, 0, "en", np.zeros(16000, np.float32), TURNS)
    red = reduce_callscribe(CALLSCRIBE, "customer")
    lv = summarize_level("callscribe", [stream], [red], 0.0, cpu_s=3.0, wall_s=30.0, failures=[], tail_s=0.5)
    assert lv["system"] == "callscribe" and lv["streams"] == 1 and lv["turns"] == 3
    assert lv["turns_never_committed"] == 0
    assert lv["latency_p50_s"] == pytest.approx(0.665, abs=1e-3) and lv["latency_max_s"] == pytest.approx(0.742, abs=1e-3)
    assert lv["cpu_cores"] == 0.1
    assert set(lv["error_rate"]) == {"en"} and lv["error_rate"]["en"] < 0.35
    assert lv["sustained"] is True
    json.dumps(lv)  # plain JSON: infinities are written as "inf"

    failed = summarize_level("whisperlive", [stream], [None], 0.0, None, 30.0, ["bench-0000-c: refused"], 15.0)
    assert failed["latency_p95_s"] == "inf" and failed["turns_never_committed"] == 3
    assert failed["cpu_cores"] is None and failed["sustained"] is False
    json.dumps(failed)


def test_batch_sizes_from_whisperlive_log():
    log = ("INFO:root:[BatchInference] Processing batch of 2\nINFO:faster_whisper:Processing audio\n"
           "INFO:root:[BatchInference] Processing batch of 1\nINFO:root:[BatchInference] Processing batch of 2\n")
    assert batch_sizes_from_log(log) == {1: 1, 2: 2}
    assert batch_sizes_from_log("") == {}


def test_leg_order_mixes_languages_early_and_pairs_legs_into_calls():
    assert [leg_order(i, 1) for i in range(4)] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # en, zh: 2 streams = an English and a Mandarin leg; 4 = both legs of calls 0 (en) and 1 (zh)
    assert [leg_order(i, 2) for i in range(6)] == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0)]
