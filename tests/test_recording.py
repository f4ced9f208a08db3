"""callscribe/recording, the pure parts and the writer against real files (no model, no network).

Timeline placement of separately arriving legs, the PII spans of finals, the redacted rendition (Opus packet
surgery and FLAC), the store (keys, modes, range reads, retention), the recorder's failure handling (a really
full disk: a tmpfs, as root) and crash recovery (a writer process killed with SIGKILL mid-call).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from callscribe.config import Config
from callscribe.errors import RecordingNotFound, RenditionNotReady, SchemaError
from callscribe.events import CallStarted, Transcript, Word
from callscribe.pii import audio_for
from callscribe.recording import (LegTimeline, LocalStore, Manifest, Recorder, RedactedSpan, TimeMap, call_prefix,
                                  channel_layout, pii_spans, prune, read_manifest, recover_interrupted, redaction_spans,
                                  rendition_for, should_record)
from callscribe.recording.codec import AudioEncoder, decode, probe_duration_ms
from callscribe.recording.keys import safe_segment
from callscribe.recording.redaction import apply_spans, redact_bytes
from callscribe.recording.retention import mark_open

RATE = 16000


def tone(seconds: float, hz: float = 440.0, level: float = 0.3, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


# --- timeline --------------------------------------------------------------------------------------------
def test_lockstep_legs_get_no_silence_even_in_big_bursts():
    tl = LegTimeline(2, RATE)
    now = 0.0
    for _ in range(50):  # 4 s interleaved frames, faster than real time: pushed microseconds apart
        assert tl.place(0, 4 * RATE, now) == 0
        assert tl.catch_up(now) == []
        assert tl.place(1, 4 * RATE, now) == 0
        now += 0.001
    assert tl.finish() == [] and tl.length == 200 * RATE
    assert tl.time_map().shifts == ((), ())


def test_a_leg_that_starts_late_is_placed_at_the_call_time_it_started():
    tl = LegTimeline(2, RATE, start_s=0.0)
    pads: list[tuple[int, int]] = []
    for tick in range(1, 101):  # 60 ms RTP ticks; the agent's first packets come at 3.0 s
        now = tick * 0.06
        tl.place(0, 960, now)
        pads += tl.catch_up(now)
        if now >= 3.0:
            pad = tl.place(1, 960, now)
            if pad:
                pads.append((1, pad))
    inserted = sum(p for ch, p in pads if ch == 1)
    assert abs(inserted - 2.94 * RATE) <= 0.1 * RATE, inserted / RATE  # its first 60 ms end at 3.0 s
    assert all(ch == 1 for ch, _ in pads)
    assert tl.finish() == [] or all(p <= 0.1 * RATE for _, p in tl.finish())
    tm = tl.time_map()  # the agent's transcript time 0 is ~3 s into the recording
    assert abs(tm.to_recording_ms(1, 0) - 3000) <= 100 and tm.to_recording_ms(0, 1234) == 1234


def test_a_paused_leg_resumes_at_the_right_place_and_the_map_follows():
    tl = LegTimeline(2, RATE)
    now = 0.0
    for _ in range(50):  # 3 s both legs, 60 ms ticks
        now += 0.06
        tl.place(0, 960, now)
        tl.place(1, 960, now)
    for _ in range(100):  # 6 s: the customer leg sends nothing
        now += 0.06
        tl.place(1, 960, now)
        tl.catch_up(now)
    assert tl.length - tl.placed[0] <= int(1.0 * RATE) + 960  # padded while silent: never far behind
    now += 0.06
    tl.place(0, 960, now)
    tl.place(1, 960, now)
    assert abs(tl.placed[0] - tl.placed[1]) <= 0.1 * RATE
    # the customer's audio after the pause (channel time 3.0 s) sits ~9 s into the recording
    assert abs(tl.time_map().to_recording_ms(0, 3000) - 9000) <= 100
    assert tl.time_map().to_recording_ms(0, 2990) == 2990


def test_faster_than_real_time_bursts_of_one_leg_get_no_silence():
    tl = LegTimeline(2, RATE)
    now = 0.0
    for _ in range(20):  # a client sending 2 s of one leg, then 2 s of the other, 50x real time
        assert tl.place(0, 2 * RATE, now) == 0
        now += 0.04
        tl.catch_up(now)
        assert tl.place(1, 2 * RATE, now) == 0
    assert tl.time_map().shifts == ((), ())


def test_mono_never_pads_and_the_map_roundtrips_json():
    tl = LegTimeline(1, RATE)
    assert tl.place(0, 100, 5.0) == 0 and tl.catch_up(99.0) == [] and tl.finish() == []
    tm = TimeMap(((( 0, 500), (2000, 1500)), ()))
    assert TimeMap.from_json(json.loads(json.dumps(tm.to_json()))) == tm
    assert [tm.to_recording_ms(0, t) for t in (0, 1999, 2000, 5000)] == [500, 2499, 3500, 6500]


# --- PII spans -------------------------------------------------------------------------------------------
def final(channel: str, words: list[tuple[str, int, int]], text: str | None = None) -> Transcript:
    ws = tuple(Word(t, a, b, 0.9) for t, a, b in words)
    return Transcript("c1", channel, f"c1/{channel}/0", 0, True, text if text is not None else "".join(t for t, _, _ in words),
                      ws[0].start_ms if ws else 0, ws[-1].end_ms if ws else 1000, "en", 0.9, ws)


SPOKEN_PHONE = [(" It's", 500, 800), (" four", 800, 1000), (" one", 1000, 1200), (" five,", 1200, 1500), (" five", 1500, 1700),
                (" five", 1700, 1900), (" five,", 1900, 2200), (" zero", 2200, 2400), (" one", 2400, 2600),
                (" three", 2600, 2800), (" four.", 2800, 3100), (" Thanks", 3300, 3700)]


@pytest.mark.parametrize("words, expected", [
    (SPOKEN_PHONE, [(800, 3100, "phone")]),  # spoken digits over ten tokens: one span
    ([(" my", 0, 200), (" card", 200, 500), (" is", 500, 600), (" 6225", 700, 1500), (" 8219", 1500, 2300),
      (" 9351", 2300, 3100), (" 8195", 3100, 3900), (" thanks", 4000, 4400)], [(700, 3900, "bank_card")]),
    ([("是", 0, 200), ("一三八", 200, 900), ("零零一三", 900, 1800), ("八零零零", 1800, 2600), ("。", 2600, 2700)], [(200, 2600, "phone")]),
    ([(" I", 0, 100), (" paid", 100, 400), (" 45", 400, 700), (" dollars", 700, 1200)], []),  # money is not PII
    ([(" It's", 500, 800), (" [PHONE]", 800, 1500), ("", 1500, 2000), ("", 2000, 3100), (" Thanks", 3300, 3700)],
     [(800, 3100, "masked")]),  # a final read back from Redis, already redacted
])
def test_pii_spans_follow_the_masked_words(words, expected):
    got = [(s.start_ms, s.end_ms, s.kind) for s in pii_spans(final("customer", words))]
    assert got == expected


def test_a_final_without_word_times_is_redacted_whole():
    f = Transcript("c1", "agent", "c1/agent/3", 0, True, "call me on 13800138000", 4000, 7000, "en", 0.9, ())
    assert [(s.start_ms, s.end_ms, s.kind) for s in pii_spans(f)] == [(4000, 7000, "segment")]
    partial = Transcript("c1", "agent", "c1/agent/3", 0, False, "13800138000", 0, 1, "en", 0.9, ())
    assert pii_spans(partial) == []


def test_redaction_spans_are_mapped_widened_clipped_and_merged():
    finals = [final("customer", SPOKEN_PHONE), final("agent", [(" so", 100, 300), (" 13800138000", 400, 2000)])]
    tm = TimeMap(((), ((0, 2000),)))  # the agent leg started 2 s late
    spans = redaction_spans(finals, ("customer", "agent"), tm, duration_ms=3600, margin_ms=250)
    assert spans == (RedactedSpan(550, 3600, "phone"),)  # customer 550-3350 and agent 2150-4250 merged, clipped
    assert redaction_spans([final("mixed", SPOKEN_PHONE)], ("mixed",), TimeMap(), 10_000) == (RedactedSpan(550, 3350, "phone"),)


def test_apply_spans_silences_with_ramps_and_beeps_at_minus_20_dbfs():
    x = np.stack([tone(2.0), tone(2.0, 660)], axis=1)
    span = (RedactedSpan(500, 1500, "phone"),)
    y = apply_spans(x, 0, RATE, span)
    inner = slice(int(0.51 * RATE), int(1.49 * RATE))
    assert np.all(y[inner] == 0) and np.array_equal(y[: int(0.5 * RATE)], x[: int(0.5 * RATE)])
    assert np.array_equal(y[int(1.5 * RATE):], x[int(1.5 * RATE):])
    b = apply_spans(x, 0, RATE, span, "beep")
    assert abs(rms(b[inner, 0]) - 0.1 / np.sqrt(2)) < 0.005
    # blocks that start mid-recording are redacted at the same absolute times
    z = np.concatenate([apply_spans(x[:7000], 0, RATE, span), apply_spans(x[7000:], 7000, RATE, span)])
    assert np.array_equal(z, y)


# --- codec and redacted renditions ---------------------------------------------------------------------
def speechlike(seconds: float) -> np.ndarray:
    """Two legs of amplitude-modulated tones with pauses (Opus codes them like voice)."""
    t = np.arange(int(seconds * RATE)) / RATE
    env = (np.sin(2 * np.pi * 0.7 * t) > -0.3) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    a = 0.2 * env * (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 1320 * t))
    b = 0.2 * np.roll(env, RATE) * np.sin(2 * np.pi * 330 * t)
    return np.stack([a, b], axis=1).astype(np.float32)


def encode(x: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    enc = AudioEncoder(buf, fmt, RATE, x.shape[1])
    for i in range(0, len(x), 1600):
        enc.write(x[i:i + 1600])
    enc.close()
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["opus", "flac"])
def test_recording_decodes_to_the_exact_length_and_flac_is_lossless(fmt):
    x = speechlike(7.3)
    data = encode(x, fmt)
    y, rate = decode(io.BytesIO(data), RATE)
    assert rate == RATE and y.shape == x.shape
    assert probe_duration_ms(io.BytesIO(data)) == 7300
    if fmt == "flac":
        assert np.abs(y - x).max() <= 2 / 32768  # 16-bit quantisation only
    else:
        assert abs(rms(y) - rms(x)) / rms(x) < 0.1  # lossy, same level
    mono = encode(x[:, :1], fmt)
    assert decode(io.BytesIO(mono), RATE)[0].shape == (len(x), 1)


@pytest.mark.parametrize("fmt", ["opus", "flac"])
@pytest.mark.parametrize("mode", ["silence", "beep"])
def test_redacted_rendition_replaces_the_spans_and_leaves_the_rest_identical(fmt, mode):
    x = speechlike(8.0)
    data = encode(x, fmt)
    spans = (RedactedSpan(2000, 3500, "phone"), RedactedSpan(6000, 6400, "digits"))
    orig, _ = decode(io.BytesIO(data), RATE)
    red, _ = decode(io.BytesIO(redact_bytes(data, fmt, spans, mode)), RATE)
    assert red.shape == orig.shape
    t = np.arange(len(orig)) / RATE
    for s in spans:
        inside = (t >= s.start_ms / 1000 + 0.03) & (t < s.end_ms / 1000 - 0.03)
        if mode == "silence":
            assert rms(red[inside]) < 1e-3, rms(red[inside])
        else:
            assert abs(rms(red[inside]) - 0.1 / np.sqrt(2)) < 0.02
    outside = np.ones(len(t), bool)
    for s in spans:  # Opus: the decoder's predictors re-converge within 0.25 s after a replaced packet
        outside &= ~((t >= s.start_ms / 1000 - 0.03) & (t < s.end_ms / 1000 + 0.25))
        settling = (t >= s.end_ms / 1000 + 0.03) & (t < s.end_ms / 1000 + 0.25)
        assert rms(red[settling]) <= rms(orig[settling]) * 1.12  # meanwhile quieter at worst, never a burst
    assert np.abs(red[outside] - orig[outside]).max() < 1e-4


def test_opus_redaction_copies_every_other_packet_bit_for_bit():
    import av

    x = speechlike(5.0)
    data = encode(x, "opus")
    red = redact_bytes(data, "opus", (RedactedSpan(1000, 2000, "phone"),))

    def packets(b: bytes) -> list[tuple[int, bytes]]:
        with av.open(io.BytesIO(b)) as c:
            return [(p.pts, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.dts is not None]

    a, b = packets(data), packets(red)
    assert [p for p, _ in a] == [p for p, _ in b]
    changed = [pts / 48000 for (pts, x1), (_, x2) in zip(a, b) if x1 != x2]
    assert changed and min(changed) >= 0.98 and max(changed) < 2.0
    assert len(changed) <= 52


def test_a_file_cut_by_kill9_plays_up_to_about_a_second_before_the_cut(tmp_path):
    """A real writer process (the recorder's encoder on the store's unbuffered file) killed with SIGKILL."""
    out = tmp_path / "cut.opus"
    code = f"""
import sys, time, numpy as np
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from callscribe.recording.codec import AudioEncoder
from callscribe.recording.store import LocalStore
store = LocalStore({str(tmp_path)!r})
enc = AudioEncoder(store.create("cut.opus"), "opus", 16000, 2)
t = np.arange(1600) / 16000
block = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)], axis=1).astype(np.float32)
for i in range(10_000):
    enc.write(block)
    print((i + 1) * 0.1, flush=True)
    time.sleep(0.02)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    sent = 0.0
    assert proc.stdout is not None
    for line in proc.stdout:
        sent = float(line)
        if sent >= 6.0:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    audio, _ = decode(str(out), RATE)
    got = len(audio) / RATE
    assert sent - 1.6 <= got <= sent, (sent, got)
    assert rms(audio[-RATE // 2:]) > 0.1  # real audio right up to the end, not silence
    import soundfile as sf

    assert abs(sf.info(str(out)).duration - got) < 0.05  # libsndfile plays it too


# --- store -----------------------------------------------------------------------------------------------
def test_keys_are_day_sharded_and_call_ids_cannot_escape():
    assert call_prefix("abc-1", 1_796_688_000_000).startswith("2026/12/")
    for bad in ("..", ".", "a/../../etc", "x/y", "é 1", "%2E"):
        seg = safe_segment(bad)
        assert "/" not in seg and seg not in (".", "..") and seg.isascii()
    assert safe_segment("call:42@pbx+1_x-y") == "call:42@pbx+1_x-y"
    assert safe_segment("a.b") != safe_segment("a%2Eb")


def test_local_store_modes_ranges_listing_and_deletion(tmp_path):
    store = LocalStore(tmp_path / "rec")
    with store.create("2026/01/02/c1/original.opus") as f:
        f.write(b"0123456789")
    store.put("2026/01/02/c1/manifest.json", b"{}")
    assert store.read_range("2026/01/02/c1/original.opus", 3, 4) == b"3456"
    assert store.read_range("2026/01/02/c1/original.opus", 8, 100) == b"89"
    assert store.stat("2026/01/02/c1/original.opus").size == 10
    for p in (tmp_path / "rec").rglob("*"):
        assert p.stat().st_mode & 0o777 == (0o700 if p.is_dir() else 0o600), p
    with pytest.raises(ValueError):
        store.path("2026/../../x")
    with pytest.raises(RecordingNotFound):
        store.open("2026/01/02/c9/original.opus")
    with pytest.raises(Exception):
        store.create("2026/01/02/c1/original.opus")  # never overwrites a recording
    old = time.time() - 10 * 86400
    for p in (tmp_path / "rec" / "2026/01/02/c1").iterdir():
        os.utime(p, (old, old))
    with store.create("2026/01/02/c2/original.opus") as f:
        f.write(b"new")
    assert list(store.list_older_than(time.time() - 5 * 86400)) == ["2026/01/02/c1"]
    assert prune(store, 5, time.time()) == ["2026/01/02/c1"]
    assert not (tmp_path / "rec/2026/01/02/c1").exists() and (tmp_path / "rec/2026/01/02/c2").exists()
    assert prune(store, 0, time.time() + 1e9) == []  # 0 days: keep for ever
    store.delete_prefix("2026/01/02/c2")
    assert not (tmp_path / "rec/2026").exists()  # empty day/month/year folders go too


# --- manifest, policy, renditions --------------------------------------------------------------------------
def manifest(**kw) -> Manifest:
    base = dict(call_id="c1", prefix="2026/12/08/c1", started_at_ms=1, format="opus", sample_rate_hz=16000,
                channels=("customer", "agent"), original="2026/12/08/c1/original.opus")
    return Manifest(**{**base, **kw})


def test_manifest_is_versioned():
    m = manifest(state="complete", time_map=TimeMap((((0, 300),), ())), redacted_spans=(RedactedSpan(1, 2, "phone"),))
    assert Manifest.from_json(m.to_json()) == m
    newer = json.loads(m.to_json())
    newer["v"] = 99
    with pytest.raises(SchemaError, match="newer"):
        Manifest.from_json(json.dumps(newer))
    with pytest.raises(SchemaError):
        Manifest.from_json(b'{"v": 1}')


def test_roles_hear_what_they_read():
    m = manifest(state="complete", redacted="2026/12/08/c1/redacted.opus")
    for role in ("agent", "supervisor", "qa", "admin", "ingest", "integration"):
        assert rendition_for(m, role) == m.redacted  # text stored redacted (the default): everyone hears redacted
    assert rendition_for(m, "supervisor", stored_redacted=False) == m.original
    assert rendition_for(m, "qa", stored_redacted=False) == m.redacted
    assert audio_for("admin", False) == "original" and audio_for("qa", False) == "redacted"
    with pytest.raises(RenditionNotReady):
        rendition_for(manifest(state="interrupted"), "qa")
    assert rendition_for(manifest(state="interrupted"), "admin", stored_redacted=False).endswith("original.opus")


def test_opt_out_queues_and_channel_layout():
    cfg = Config(recording_optout_queues=("vip-*", "Legal"))
    assert should_record(cfg, {"queue": "billing"}) and should_record(cfg, {})
    assert not should_record(cfg, {"queue": "VIP-gold"}) and not should_record(cfg, {"queue": "legal"})
    assert not should_record(Config(recording=False), {})
    assert channel_layout(("mixed",)) == (("mixed",), [0])
    assert channel_layout(("agent", "customer")) == (("customer", "agent"), [1, 0])
    assert channel_layout(("customer", "agent")) == (("customer", "agent"), [0, 1])


# --- the recorder with real files ------------------------------------------------------------------------
async def record(recorder: Recorder, call_id: str, legs: list[np.ndarray], names: tuple[str, ...],
                 metadata: dict | None = None, finals: list[Transcript] = ()):
    rec = recorder.open(CallStarted(call_id, names, metadata=metadata or {}))
    if rec is None:
        return None
    for i in range(0, max(len(x) for x in legs), 960):
        for ch, x in enumerate(legs):
            rec.write(ch, x[i:i + 960])
    for f in finals:
        rec.note(f)
    rec.finish()
    return await asyncio.wait_for(rec.done, 30)


async def test_recorder_writes_stereo_in_customer_agent_order_and_a_redacted_copy(tmp_path):
    cfg = Config(data_dir=str(tmp_path), recording_optout_queues=("vip",))
    recorder = Recorder(cfg)
    await recorder.start()
    try:
        cust, agent = tone(4.0, 440), tone(4.0, 880)
        m = await record(recorder, "r/1", [agent, cust], ("agent", "customer"),
                         finals=[final("customer", SPOKEN_PHONE)])
        assert m.state == "complete" and m.channels == ("customer", "agent") and m.duration_ms == 4000
        assert m.prefix.endswith("/r%2F1")
        audio, _ = decode(str(recorder.store.path(m.original)), RATE)
        assert audio.shape == (4 * RATE, 2)
        spec0, spec1 = np.abs(np.fft.rfft(audio[:, 0])), np.abs(np.fft.rfft(audio[:, 1]))
        assert abs(np.argmax(spec0) / 4 - 440) < 5 and abs(np.argmax(spec1) / 4 - 880) < 5  # 0 customer, 1 agent
        assert m.redacted_spans == (RedactedSpan(550, 3350, "phone"),) and m.redacted.endswith("redacted.opus")
        red, _ = decode(str(recorder.store.path(m.redacted)), RATE)
        assert rms(red[int(0.6 * RATE):int(3.3 * RATE)]) < 1e-3 and rms(red[: int(0.5 * RATE)]) > 0.1
        assert read_manifest(recorder.store, m.prefix) == m
        clean = await record(recorder, "r2", [tone(1.0)], ("mixed",))
        assert clean.channels == ("mixed",) and clean.redacted == clean.original  # nothing to mask: no copy
        assert await record(recorder, "r3", [tone(1.0)], ("mixed",), metadata={"queue": "vip"}) is None
        assert not any("r3" in str(p) for p in recorder.store.root.rglob("*"))
        assert not list(recorder.open_dir.glob("*.open"))  # closed recordings leave no open marker
    finally:
        await recorder.stop()


async def test_a_writer_behind_drops_audio_as_silence_keeping_the_timeline(tmp_path):
    recorder = Recorder(Config(data_dir=str(tmp_path)), max_buffer_bytes=4 * 960 * 4)
    await recorder.start()
    try:
        m = await record(recorder, "slow", [tone(6.0)], ("mixed",))
        assert m.state == "complete" and m.duration_ms == 6000
        assert recorder.dropped_chunks > 0 and m.dropped_ms > 0
        audio, _ = decode(str(recorder.store.path(m.original)), RATE)
        assert len(audio) == 6 * RATE
    finally:
        await recorder.stop()


async def test_a_full_disk_fails_that_recording_only_and_nothing_raises(tmp_path):
    from .test_faults import Tmpfs

    disk = Tmpfs(tmp_path / "small", size="512k")
    try:
        recorder = Recorder(Config(data_dir=str(tmp_path), recording_dir=str(disk.path), recording_format="flac"))
        await recorder.start()
        try:
            disk.fill()
            m = await record(recorder, "full", [tone(30.0), tone(30.0)], ("customer", "agent"))
            assert m.state == "failed" and m.error
            disk.free()
            ok = await record(recorder, "after", [tone(2.0), tone(2.0)], ("customer", "agent"))
            assert ok.state == "complete"  # the next call records again by itself
        finally:
            await recorder.stop()
    finally:
        disk.unmount()


async def test_recordings_cut_by_a_crash_are_closed_as_interrupted_at_start(tmp_path):
    store = LocalStore(tmp_path / "recordings")
    open_dir = tmp_path / "recordings-open"
    now_ms = int(time.time() * 1000)

    def left_open(call_id: str, pid: int, state: str = "recording") -> Manifest:
        prefix = call_prefix(call_id, now_ms)
        m = manifest(call_id=call_id, prefix=prefix, original=f"{prefix}/original.opus", node=f"{os.uname().nodename}:{pid}",
                     state=state)
        store.put(f"{prefix}/manifest.json", m.to_json())
        mark_open(open_dir, prefix)
        return m

    dead = left_open("dead", 999999)
    with store.create(dead.original) as f:
        f.write(encode(speechlike(3.0), "opus")[:-2000])  # cut mid-page, as a kill leaves it
    alive = left_open("alive", os.getpid())  # a live call of this very process: left alone
    done = left_open("done", 999999, state="complete")  # closed, but its marker outlived it
    assert recover_interrupted(store, open_dir) == ["dead"]
    got = read_manifest(store, dead.prefix)
    assert got.state == "interrupted" and 1000 < got.duration_ms < 3000 and got.bytes > 0
    assert read_manifest(store, alive.prefix).state == "recording" and read_manifest(store, done.prefix).state == "complete"
    assert len(list(open_dir.glob("*.open"))) == 1  # only the live call's marker is left
    assert recover_interrupted(store, tmp_path / "nowhere") == []

def test_cli_recordings_prune(tmp_path, monkeypatch, capsys):
    from callscribe.cli import main

    old = tmp_path / "recordings" / "2020" / "01" / "01" / "x"
    new = tmp_path / "recordings" / "2020" / "01" / "01" / "y"
    for d in (old, new):
        d.mkdir(parents=True)
        (d / "original.opus").write_bytes(b"x")
    os.utime(old / "original.opus", (time.time() - 40 * 86400,) * 2)
    monkeypatch.setenv("CALLSCRIBE_DATA_DIR", str(tmp_path))
    assert main(["recordings", "prune", "--days", "30"]) == 0
    assert capsys.readouterr().out.split() == ["2020/01/01/x"]
    assert not old.exists() and new.exists()
