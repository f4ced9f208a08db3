"""vad.endpointer.Endpointer: per-frame speech flags in, utterance boundaries out (pure logic, synthetic frames).

Default config: 20 ms frames (320 samples), onset 120 ms voiced within 200 ms, 200 ms pre-roll, 500 ms
hangover, 200 ms tail kept, 250 ms minimum speech.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscribe.vad import Endpointer, EndpointerConfig, SpeechAborted, SpeechEnded, SpeechStarted

FRAME = 320  # samples per 20 ms frame at 16 kHz


def make_audio(n_frames: int, seed: int = 0, quiet=(), gain: float = 1e-3) -> np.ndarray:
    """Distinct random samples per frame (so any misplaced frame shows); frames in ``quiet`` scaled by ``gain``."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 0.5, n_frames * FRAME).astype(np.float32)
    for i in quiet:
        x[i * FRAME : (i + 1) * FRAME] *= gain
    return x


def quiet_where_unvoiced(flags: list[bool], seed: int = 0) -> np.ndarray:
    return make_audio(len(flags), seed=seed, quiet=[i for i, f in enumerate(flags) if not f])


def run(flags: list[bool], audio: np.ndarray | None = None, cfg: EndpointerConfig | None = None, flush: bool = True):
    """Push every frame; return [(frame_index, event)] with frame_index None for flush events."""
    audio = make_audio(len(flags)) if audio is None else audio
    ep = Endpointer(cfg)
    out = []
    for i, flag in enumerate(flags):
        for ev in ep.push(audio[i * FRAME : (i + 1) * FRAME], flag):
            out.append((i, ev))
    if flush:
        out.extend((None, ev) for ev in ep.flush())
    return out, audio


def pattern(*runs: tuple[bool, int]) -> list[bool]:
    return [flag for flag, n in runs for _ in range(n)]


def span(audio: np.ndarray, start_ms: int, end_ms: int) -> np.ndarray:
    return audio[start_ms * 16 : end_ms * 16]


# --- onset ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags,onset_frame",
    [
        (pattern((False, 20), (True, 5), (False, 40)), None),  # 100 ms voiced: not enough
        (pattern((False, 20), (True, 6), (False, 40)), 25),  # 120 ms voiced in a row: onset on the 6th
        (pattern((False, 20), (True, 1), (False, 1)) * 5 + [False] * 40, None),  # 5 of 10 voiced
        (pattern((False, 20), (True, 2), (False, 1), (True, 2), (False, 1), (True, 2), (False, 40)), 27),
        (pattern((True, 1), (False, 5)) * 10 + [False] * 30, None),  # sparse clicks never add up
        (pattern((True, 6), (False, 40)), 5),  # speech from the very first frame
    ],
    ids=["100ms", "120ms", "5-of-10", "6-of-8", "sparse", "at-start"],
)
def test_onset_needs_start_ms_voiced_in_window(flags, onset_frame):
    events, _ = run(flags, flush=False)
    starts = [(i, ev) for i, ev in events if isinstance(ev, SpeechStarted)]
    if onset_frame is None:
        assert events == []
    else:
        assert starts[0][0] == onset_frame


def test_pre_roll_starts_segment_before_first_voiced_frame():
    flags = pattern((False, 20), (True, 50), (False, 40))
    events, audio = run(flags)
    started = [ev for _, ev in events if isinstance(ev, SpeechStarted)]
    ended = [ev for _, ev in events if isinstance(ev, SpeechEnded)]
    assert len(started) == len(ended) == 1
    first_voiced_ms = 20 * 20
    # the segment starts pre_roll_ms (200) before the first voiced frame
    assert started[0].start_ms == ended[0].start_ms == first_voiced_ms - 200
    assert ended[0].start_ms < first_voiced_ms
    np.testing.assert_array_equal(ended[0].audio, span(audio, ended[0].start_ms, ended[0].end_ms))


def test_pre_roll_at_stream_start_is_what_there_is():
    events, audio = run(pattern((False, 2), (True, 30), (False, 40)))
    ended = [ev for _, ev in events if isinstance(ev, SpeechEnded)][0]
    assert ended.start_ms == 0
    np.testing.assert_array_equal(ended.audio, span(audio, 0, ended.end_ms))


# --- endpoint ---------------------------------------------------------------------------------------
def test_hangover_ends_segment_with_tail_kept():
    flags = pattern((False, 20), (True, 50), (False, 60))
    events, audio = run(flags, flush=False)
    assert [type(ev) for _, ev in events] == [SpeechStarted, SpeechEnded]
    frame, ended = events[1]
    last_voiced_end_ms = 70 * 20
    assert frame == 70 + 25 - 1  # 500 ms of silence after the last voiced frame
    assert ended.reason == "silence"
    assert ended.end_ms == last_voiced_end_ms + 200  # 200 ms tail kept, the rest of the hangover dropped
    assert ended.voiced_ms == 50 * 20
    assert ended.audio.dtype == np.float32
    np.testing.assert_array_equal(ended.audio, span(audio, ended.start_ms, ended.end_ms))


def test_pause_shorter_than_hangover_keeps_one_segment():
    flags = pattern((False, 20), (True, 30), (False, 24), (True, 30), (False, 40))
    events, audio = run(flags)
    ended = [ev for _, ev in events if isinstance(ev, SpeechEnded)]
    assert len(ended) == 1
    assert ended[0].voiced_ms == 60 * 20
    assert ended[0].end_ms == (20 + 30 + 24 + 30) * 20 + 200


def test_two_utterances_two_segments_in_order():
    flags = pattern((False, 20), (True, 30), (False, 40), (True, 30), (False, 40))
    events, audio = run(flags)
    ended = [ev for _, ev in events if isinstance(ev, SpeechEnded)]
    assert len(ended) == 2
    assert ended[0].end_ms <= ended[1].start_ms
    assert ended[1].start_ms < (20 + 30 + 40) * 20  # second pre-roll reaches back before its speech
    for ev in ended:
        np.testing.assert_array_equal(ev.audio, span(audio, ev.start_ms, ev.end_ms))


@pytest.mark.parametrize("n_voiced", [6, 8, 11])
def test_short_blip_aborted(n_voiced):
    flags = pattern((False, 20), (True, n_voiced), (False, 40))
    events, _ = run(flags)
    assert [type(ev) for _, ev in events] == [SpeechStarted, SpeechAborted]
    started, aborted = events[0][1], events[1][1]
    assert aborted.start_ms == started.start_ms
    assert aborted.reason == "too_short"


def test_just_enough_speech_is_kept():
    events, _ = run(pattern((False, 20), (True, 12), (False, 40)))
    kinds = [type(ev) for _, ev in events]
    assert kinds == [SpeechStarted, SpeechEnded]  # 12 voiced frames is the minimum (250 ms // 20 ms)


# --- max length ---------------------------------------------------------------------------------------
def test_over_long_speech_cut_at_quietest_frame_in_second_half():
    cfg = EndpointerConfig(max_segment_ms=2000)  # 100 frames
    flags = pattern((False, 20), (True, 300), (False, 40))
    quiet = [*range(40, 45), *range(90, 95)]  # the first dip is in the first half: must not be used
    events, audio = run(flags, audio=make_audio(len(flags), quiet=quiet), cfg=cfg)
    ended = [ev for _, ev in events if isinstance(ev, SpeechEnded)]
    first = ended[0]
    assert first.reason == "max_length"
    assert first.start_ms == 10 * 20  # 200 ms pre-roll before the first voiced frame (frame 20)
    assert first.end_ms == 92 * 20  # middle of the quiet dip in the second half
    # the cut and the next segment's start are one instant; the next SpeechStarted says so
    idx = [ev for _, ev in events].index(first)
    nxt = events[idx + 1][1]
    assert isinstance(nxt, SpeechStarted) and nxt.start_ms == first.end_ms
    assert ended[1].start_ms == first.end_ms


def test_cut_ignores_the_zero_padded_edge():
    """Evenly loud speech with a slightly softer stretch: the cut goes there, not to the segment's last frames.

    Regression: the 5-frame smoothing used zero padding, so the last two frames scored 60-80 % of their energy
    and won over any real dip shallower than that, cutting words at the end of every max-length segment.
    """
    cfg = EndpointerConfig(max_segment_ms=2000)
    flags = pattern((False, 20), (True, 300), (False, 40))
    audio = make_audio(len(flags), seed=3, quiet=range(88, 97), gain=0.85)
    events, _ = run(flags, audio=audio, cfg=cfg)
    first = next(ev for _, ev in events if isinstance(ev, SpeechEnded))
    assert first.reason == "max_length"
    assert 88 * 20 <= first.end_ms <= 96 * 20


def test_over_long_speech_audio_is_continuous():
    cfg = EndpointerConfig(max_segment_ms=2000)
    flags = pattern((False, 20), (True, 470), (False, 40))
    events, audio = run(flags, audio=quiet_where_unvoiced(flags), cfg=cfg)
    ended = [ev for _, ev in events if isinstance(ev, SpeechEnded)]
    assert len(ended) >= 5
    assert all(ev.reason == "max_length" for ev in ended[:-1]) and ended[-1].reason == "silence"
    for a, b in zip(ended, ended[1:]):
        assert a.end_ms == b.start_ms
    for ev in ended:
        assert 0 < ev.end_ms - ev.start_ms <= 2000
        assert ev.end_ms - ev.start_ms >= 1000 or ev is ended[-1]  # cut in the second half
    joined = np.concatenate([ev.audio for ev in ended])
    np.testing.assert_array_equal(joined, span(audio, ended[0].start_ms, ended[-1].end_ms))
    assert ended[-1].end_ms == (20 + 470) * 20 + 200


# --- flush / state -------------------------------------------------------------------------------------
def test_flush_closes_open_segment():
    flags = pattern((False, 20), (True, 40), (False, 5))
    events, audio = run(flags, flush=True)
    i, ended = events[-1]
    assert i is None and isinstance(ended, SpeechEnded)
    assert ended.reason == "flush"
    assert ended.end_ms == 60 * 20 + 5 * 20  # trailing silence (100 ms) is within the 200 ms tail
    np.testing.assert_array_equal(ended.audio, span(audio, ended.start_ms, ended.end_ms))


def test_flush_trims_long_trailing_silence():
    events, _ = run(pattern((False, 20), (True, 40), (False, 20)), flush=True)
    assert events[-1][1].end_ms == 60 * 20 + 200


def test_flush_in_mid_speech_keeps_everything():
    events, audio = run(pattern((False, 20), (True, 40)), flush=True)
    ended = events[-1][1]
    assert ended.end_ms == 60 * 20
    np.testing.assert_array_equal(ended.audio, span(audio, ended.start_ms, 60 * 20))


def test_flush_when_idle_is_empty_and_flush_of_blip_aborts():
    ep = Endpointer()
    assert ep.flush() == []
    events, _ = run(pattern((False, 20), (True, 7)), flush=True)
    assert isinstance(events[-1][1], SpeechAborted)


def test_current_audio_and_clock():
    ep = Endpointer()
    audio = make_audio(60)
    assert ep.current_audio().size == 0
    for i in range(60):
        ep.push(audio[i * FRAME : (i + 1) * FRAME], 20 <= i)
    assert ep.in_speech
    assert ep.now_ms == 1200
    assert ep.segment_start_ms == 10 * 20  # 200 ms before the first voiced frame (frame 20)
    np.testing.assert_array_equal(ep.current_audio(), audio[10 * FRAME : 60 * FRAME])


# --- fuzzing ------------------------------------------------------------------------------------------
@st.composite
def scenarios(draw):
    runs = draw(st.lists(st.tuples(st.booleans(), st.integers(1, 60)), min_size=1, max_size=25))
    flags = [flag for flag, n in runs for _ in range(n)]
    cfg = EndpointerConfig(
        start_ms=draw(st.sampled_from([20, 60, 120, 200])),
        start_window_ms=draw(st.sampled_from([100, 200, 300])),
        hangover_ms=draw(st.sampled_from([100, 300, 500, 800])),
        pre_roll_ms=draw(st.sampled_from([0, 200, 400])),
        tail_ms=draw(st.sampled_from([0, 100, 200])),
        min_speech_ms=draw(st.sampled_from([20, 250, 600])),
        max_segment_ms=draw(st.sampled_from([600, 1000, 2000, 20_000])),
    )
    quiet = [i for i, f in enumerate(flags) if not f] if draw(st.booleans()) else draw(
        st.lists(st.integers(0, max(0, len(flags) - 1)), max_size=20))
    return flags, cfg, draw(st.integers(0, 2**16)), quiet


@settings(max_examples=250, deadline=None)
@given(scenarios())
def test_fuzz_segments_are_ordered_bounded_and_faithful(scenario):
    flags, cfg, seed, quiet = scenario
    audio = make_audio(len(flags), seed=seed, quiet=quiet)
    events, _ = run(flags, audio=audio, cfg=cfg)
    total_ms = len(flags) * 20

    # every SpeechStarted is answered by exactly one SpeechEnded / SpeechAborted with the same start
    open_start = None
    for _, ev in events:
        if isinstance(ev, SpeechStarted):
            assert open_start is None
            open_start = ev.start_ms
        else:
            assert open_start is not None and ev.start_ms == open_start
            open_start = None
    assert open_start is None  # flush closed everything

    segments = [ev for _, ev in events if isinstance(ev, SpeechEnded)]
    closed = [ev for _, ev in events if not isinstance(ev, SpeechStarted)]
    for a, b in zip(closed, closed[1:]):
        assert a.start_ms < b.start_ms
    for a, b in zip(segments, segments[1:]):
        assert a.end_ms <= b.start_ms  # never overlap
    for ev in segments:
        assert 0 <= ev.start_ms < ev.end_ms <= total_ms
        assert ev.end_ms - ev.start_ms <= cfg.max_segment_ms
        assert ev.audio.size == (ev.end_ms - ev.start_ms) * 16
        np.testing.assert_array_equal(ev.audio, span(audio, ev.start_ms, ev.end_ms))
        assert 0 <= ev.voiced_ms <= ev.end_ms - ev.start_ms
        if ev.reason != "max_length":
            assert ev.voiced_ms >= (cfg.min_speech_ms // 20) * 20
    if not any(flags):
        assert events == []
