"""The pure RTP layer: packet parsing (RFC 3550), RTCP demux (RFC 5761), telephone-events (RFC 4733), the
jitter buffer (order, loss, duplicates, wraps, stream changes, bounded memory) and payload decoding with
loss concealment. No sockets: packets and arrival times are simulated."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callscribe.audio import encode_g711, float_to_pcm16, load_file, resample
from callscribe.errors import AudioFormatError, RtpError
from callscribe.gateway.rtp import codecs, jitter
from callscribe.gateway.rtp.codecs import PCMA, PCMU, SUPPORTED, Codec, StreamAudioDecoder, codec_for
from callscribe.gateway.rtp.jitter import MAX_HELD, JitterBuffer, Playout
from callscribe.gateway.rtp.packet import (
    DTMF_SYMBOLS,
    DtmfDetector,
    RtpPacket,
    TelephoneEvent,
    build_rtp,
    build_telephone_event,
    is_rtcp,
    parse_rtp,
    parse_telephone_event,
)

AUDIO_EN = Path(__file__).parent / "data" / "audio" / "en"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ================================================================================================
# packets
# ================================================================================================
def test_parse_known_packet():
    # PCMU, marker, seq 0x1234, ts 0xDEADBEEF, ssrc 0x01020304, 4 payload bytes
    data = bytes.fromhex("80801234deadbeef01020304") + b"\xff\x7f\x00\x80"
    p = parse_rtp(data)
    assert p == RtpPacket(0, 0x1234, 0xDEADBEEF, 0x01020304, True, b"\xff\x7f\x00\x80", ())


def test_parse_csrc_extension_padding():
    data = build_rtp(96, 7, 1000, 42, b"hello", csrc=(1, 2), extension=(0xBEDE, b"\x10\x20\x30\x40"), padding=3)
    assert len(data) == 12 + 8 + 4 + 4 + 5 + 3
    p = parse_rtp(data)
    assert (p.payload, p.csrc, p.payload_type, p.sequence, p.timestamp, p.ssrc) == (b"hello", (1, 2), 96, 7, 1000, 42)


@FAST
@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    marker=st.booleans(),
    payload=st.binary(max_size=200),
    csrc=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
    ext=st.none() | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4])),
    padding=st.integers(0, 255),
)
def test_build_parse_round_trip(pt, seq, ts, ssrc, marker, payload, csrc, ext, padding):
    p = parse_rtp(build_rtp(pt, seq, ts, ssrc, payload, marker, csrc=csrc, extension=ext, padding=padding))
    assert p == RtpPacket(pt, seq, ts, ssrc, marker, payload, csrc)


@pytest.mark.parametrize(
    "data,fragment",
    [
        (b"", "too short"),
        (bytes.fromhex("8000000100000001000000"), "too short"),  # 11 bytes
        (bytes.fromhex("4000000100000001000000ff"), "version 1"),
        (bytes.fromhex("0000000100000001000000ff"), "version 0"),
        (bytes.fromhex("c000000100000001000000ff"), "version 3"),
        (bytes.fromhex("82000001000000010000000100000002"), "CSRC"),  # CC=2, only one CSRC present
        (bytes.fromhex("900000010000000100000001bede"), "extension"),  # X, truncated extension header
        (bytes.fromhex("900000010000000100000001bede0002abcd0000"), "extension"),  # 2 words announced, 1 there
        (bytes.fromhex("a00000010000000100000001"), "padding"),  # P, nothing after the header
        (bytes.fromhex("a0000001000000010000000100000000"), "padding"),  # pad count 0
        (bytes.fromhex("a0000001000000010000000100000005"), "padding"),  # pad count 5 > 4 bytes
    ],
)
def test_malformed_packets_raise_rtp_error(data, fragment):
    with pytest.raises(RtpError, match=fragment):
        parse_rtp(data)


def test_padding_may_fill_the_whole_payload():
    assert parse_rtp(bytes.fromhex("a0000001000000010000000100000004")).payload == b""


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80) | st.binary(min_size=12, max_size=40).map(lambda b: bytes([0x80 | (b[0] & 0x3F)]) + b[1:]))
def test_parse_rtp_fuzz_only_rtp_error(data):
    try:
        p = parse_rtp(data)
    except RtpError:
        return
    assert isinstance(p, RtpPacket) and len(p.payload) <= len(data) - 12


def test_parse_rejects_non_bytes_with_rtp_error():
    with pytest.raises(RtpError):
        parse_rtp("not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("pt", [192, 193, 200, 201, 202, 203, 204, 205, 206, 207, 223])
def test_rtcp_demux_true(pt):
    assert is_rtcp(bytes([0x80, pt]) + bytes(6))


@pytest.mark.parametrize("second", [0, 8, 0x80, 0x80 | 8, 96, 101, 0x80 | 101, 127, 191, 224, 255])
def test_rtcp_demux_false(second):
    assert not is_rtcp(bytes([0x80, second]) + bytes(10))


def test_rtcp_demux_real_packets():
    rr = bytes.fromhex("80c9000100000001")  # empty receiver report
    assert is_rtcp(rr) and not is_rtcp(build_rtp(0, 1, 160, 1, bytes(160), marker=True))
    assert not is_rtcp(b"\x80") and not is_rtcp(b"")


def test_build_rejects_out_of_range():
    with pytest.raises(ValueError):
        build_rtp(128, 0, 0, 0, b"")
    with pytest.raises(ValueError):
        build_rtp(0, 65536, 0, 0, b"")
    with pytest.raises(ValueError):
        build_telephone_event(1, False, 64, 0)


# --- telephone-events ---------------------------------------------------------------------------
def test_telephone_event_round_trip_and_redundancy():
    ev = TelephoneEvent(event=11, end=True, volume=10, duration=800)
    payload = build_telephone_event(11, True, 10, 800)
    assert payload == bytes([11, 0x80 | 10, 0x03, 0x20])
    assert parse_telephone_event(payload) == ev
    assert parse_telephone_event(payload + build_telephone_event(5, True, 10, 480)) == ev  # redundant block ignored
    with pytest.raises(RtpError):
        parse_telephone_event(b"\x01\x02\x03")


def _event_packets(code, ts, seq0, ssrc=7, updates=6, ends=3, step=160):
    out = []
    for k in range(updates + ends):
        end = k >= updates
        payload = build_telephone_event(code, end, 10, step * min(k + 1, updates))
        out.append(RtpPacket(101, (seq0 + k) % 65536, ts, ssrc, k == 0, payload))
    return out


def test_dtmf_one_event_reported_once():
    det = DtmfDetector()
    got = [det.feed(p) for p in _event_packets(5, 1000, 10)]
    assert [d for d in got if d] == ["5"] and got[0] == "5"


def test_dtmf_same_digit_twice_and_all_symbols():
    det = DtmfDetector()
    digits = []
    for i, code in enumerate([1, 1] + list(range(16))):
        digits += [d for p in _event_packets(code, 10_000 + i * 4000, i * 10) if (d := det.feed(p))]
    assert digits == ["1", "1"] + list(DTMF_SYMBOLS)


def test_dtmf_late_end_retransmission_not_reported_again():
    det = DtmfDetector()
    first, second = _event_packets(3, 1000, 0), _event_packets(4, 9000, 9)
    seq = first[:7] + second[:2] + first[7:] + second[2:]  # end packets of '3' arrive after '4' began
    assert [d for p in seq if (d := det.feed(p))] == ["3", "4"]


def test_dtmf_new_ssrc_is_new_event_and_junk_is_counted():
    det = DtmfDetector()
    assert det.feed(_event_packets(9, 500, 0, ssrc=1)[0]) == "9"
    assert det.feed(_event_packets(9, 500, 0, ssrc=2)[0]) == "9"
    assert det.feed(RtpPacket(101, 5, 700, 2, False, b"\x01")) is None and det.malformed == 1
    assert det.feed(_event_packets(16, 900, 6, ssrc=2)[0]) is None and det.ignored == 1  # flash: not DTMF


def test_dtmf_long_event_continuation_not_a_second_press():
    det = DtmfDetector()
    a = RtpPacket(101, 1, 1000, 7, True, build_telephone_event(0, False, 10, 0xFFFF))
    b = RtpPacket(101, 2, 1000 + 0xFFFF, 7, False, build_telephone_event(0, False, 10, 800))
    assert det.feed(a) == "0" and det.feed(b) is None


# ================================================================================================
# jitter buffer
# ================================================================================================
def _payload(i: int, n: int = 160) -> bytes:
    return struct.pack("!I", i) + bytes(n - 4)


def _index(slot: Playout) -> int:
    return struct.unpack("!I", slot.payload[:4])[0]


def _stream(n, seq0=1000, ts0=50_000, ssrc=0xABC, t0=0.0, first=0, ptime_s=0.02, pt=0):
    """[(send time, packet)]: n 20 ms PCMU packets; payload carries the packet index."""
    return [
        (t0 + k * ptime_s, RtpPacket(pt, (seq0 + k) % 65536, (ts0 + k * 160) % 2**32, ssrc, k == 0, _payload(first + k)))
        for k in range(n)
    ]


def _run(jb: JitterBuffer, arrivals, tick_s=0.01, flush=True):
    """Push packets at their arrival times, pop every tick; returns all slots (flushed at the end)."""
    arrivals = sorted(arrivals, key=lambda x: x[0])
    out: list[Playout] = []
    t = arrivals[0][0] if arrivals else 0.0
    i = 0
    end = (arrivals[-1][0] if arrivals else 0.0) + 1.0
    while t <= end:
        while i < len(arrivals) and arrivals[i][0] <= t:
            jb.push(arrivals[i][1], arrivals[i][0])
            i += 1
        out += jb.pop(t)
        t += tick_s
    if flush:
        out += jb.flush()
    return out


def _kinds(slots):
    return [s.kind for s in slots]


def _audio(slots):
    return [_index(s) for s in slots if s.kind == "audio"]


def test_in_order_stream():
    jb = JitterBuffer()
    slots = _run(jb, _stream(100))
    assert _audio(slots) == list(range(100)) and _kinds(slots) == ["audio"] * 100
    assert all(s.duration == 160 and s.payload_type == 0 for s in slots)
    assert jb.stats.received == 100 and jb.stats.lost == 0 and jb.held == 0


def test_playout_waits_depth_then_follows_timestamps():
    jb = JitterBuffer(depth_ms=80)
    pkts = _stream(10)
    for t, p in pkts[:4]:
        jb.push(p, 100.0 + t)
    assert jb.pop(100.079) == []
    assert _audio(jb.pop(100.080)) == [0]
    assert _audio(jb.pop(100.1405)) == [1, 2, 3]
    for t, p in pkts[4:]:
        jb.push(p, 100.0 + t)
    assert _audio(jb.pop(100.2405)) == [4, 5, 6, 7, 8]


def test_reordered_packets_come_out_in_order():
    pkts = _stream(60)
    arrivals = []
    for k, (t, p) in enumerate(pkts):  # swap every pair: odd packets arrive 5 ms before their predecessors
        arrivals.append((t + (0.025 if k % 2 == 0 else 0.0), p))
    jb = JitterBuffer()
    slots = _run(jb, arrivals)
    assert _audio(slots) == list(range(60)) and jb.stats.lost == 0 and jb.stats.reordered == 30


def test_duplicates_dropped_and_counted():
    pkts = _stream(50)
    arrivals = [(t, p) for t, p in pkts] + [(t + 0.003, p) for t, p in pkts] + [(t + 0.5, p) for t, p in pkts[:10]]
    jb = JitterBuffer()
    slots = _run(jb, arrivals)
    assert _audio(slots) == list(range(50))
    assert jb.stats.duplicates == 60 and jb.stats.late == 0 and jb.stats.lost == 0


def test_loss_becomes_lost_slots_of_the_missing_duration():
    pkts = [x for k, x in enumerate(_stream(40)) if k not in (10, 11, 25)]
    jb = JitterBuffer()
    slots = _run(jb, pkts)
    kinds = _kinds(slots)
    assert kinds[10:12] == ["lost", "lost"] and kinds[25] == "lost" and kinds.count("lost") == 3
    assert [s.duration for s in slots if s.kind == "lost"] == [160, 160, 160]
    assert sum(s.duration for s in slots) == 40 * 160
    assert jb.stats.lost == 3 and jb.stats.lost_ms == pytest.approx(60)


def test_late_packet_after_its_slot_is_dropped():
    pkts = _stream(40)
    arrivals = [(t + (0.3 if k == 10 else 0.0), p) for k, (t, p) in enumerate(pkts)]
    jb = JitterBuffer()
    slots = _run(jb, arrivals)
    assert _kinds(slots)[10] == "lost" and 10 not in _audio(slots)
    assert _audio(slots) == [k for k in range(40) if k != 10]
    assert jb.stats.late == 1 and sum(s.duration for s in slots) == 40 * 160


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_60ms_jitter_with_80ms_depth_loses_nothing(seed):
    rng = random.Random(seed)
    pkts = _stream(500)  # 10 s
    arrivals = [(t + rng.uniform(0, 0.060), p) for t, p in pkts]
    order = [_index(RtpPacket(0, 0, 0, 0, False, p.payload)) for _, p in sorted(arrivals, key=lambda x: x[0])]
    assert order != sorted(order)  # the jitter really reorders
    jb = JitterBuffer(depth_ms=80)
    slots = _run(jb, arrivals, flush=False)
    assert jb.stats.lost == 0 and jb.stats.late == 0
    assert _audio(slots + jb.flush()) == list(range(500))


def test_sequence_wrap_is_seamless():
    jb = JitterBuffer()
    slots = _run(jb, _stream(200, seq0=65_450))
    assert _audio(slots) == list(range(200)) and jb.stats.lost == 0 and jb.stats.restarts == 0


def test_timestamp_wrap_is_seamless():
    jb = JitterBuffer()
    rng = random.Random(4)
    arrivals = [(t + rng.uniform(0, 0.04), p) for t, p in _stream(200, ts0=2**32 - 160 * 50)]
    slots = _run(jb, arrivals)
    assert _audio(slots) == list(range(200)) and jb.stats.lost == 0 and sum(s.duration for s in slots) == 200 * 160


def test_loss_across_both_wraps():
    pkts = [x for k, x in enumerate(_stream(100, seq0=65_500, ts0=2**32 - 160 * 40)) if k not in (35, 36, 40)]
    jb = JitterBuffer()
    slots = _run(jb, pkts)
    assert _kinds(slots).count("lost") == 3 and sum(s.duration for s in slots) == 100 * 160


def test_ssrc_change_flushes_old_and_continues():
    a = _stream(100, ssrc=1)
    b = _stream(100, seq0=40_000, ts0=3_000_000_000, ssrc=2, t0=2.0, first=100)  # next 20 ms slot, new SSRC
    jb = JitterBuffer()
    slots = _run(jb, a + b)
    assert _audio(slots) == list(range(200))
    assert jb.stats.ssrc_changes == 1 and jb.stats.lost == 0
    assert jb.stats.silence_ms <= 20  # no gap invented


def test_ssrc_change_after_a_pause_inserts_the_wall_time_gap():
    a = _stream(50, ssrc=1)
    b = _stream(50, seq0=7, ts0=123, ssrc=2, t0=1.0 + 0.5, first=50)  # 500 ms of nothing between them
    jb = JitterBuffer()
    slots = _run(jb, a + b)
    gap = [s for s in slots if s.kind == "silence"]
    assert len(gap) == 1 and abs(gap[0].duration - 4000) <= 16  # 500 ms at 8 kHz
    assert _audio(slots) == list(range(100))


def test_one_stray_packet_of_another_ssrc_is_ignored():
    pkts = _stream(100, ssrc=1)
    stray = (0.9905, RtpPacket(0, 5, 99, 666, False, _payload(9999)))
    jb = JitterBuffer()
    slots = _run(jb, pkts + [stray])
    assert _audio(slots) == list(range(100)) and jb.stats.ssrc_changes == 0 and jb.stats.strays == 1


def test_late_packets_of_the_old_ssrc_do_not_switch_back():
    a = _stream(100, ssrc=1)
    b = _stream(100, seq0=9, ts0=77, ssrc=2, t0=2.0, first=100)
    arrivals = a[:97] + [(t + 0.1, p) for t, p in a[97:]] + b  # the old stream's last 3 arrive after the switch
    jb = JitterBuffer()
    slots = _run(jb, arrivals)
    assert jb.stats.ssrc_changes == 1 and jb.stats.late == 3
    assert _audio(slots) == list(range(97)) + list(range(100, 200))


def test_large_sequence_jump_is_a_restart_not_loss():
    a = _stream(50)
    b = _stream(50, seq0=(1000 + 50 + 10_000) % 65536, ts0=50_000 + 50 * 160, t0=1.0, first=50)
    jb = JitterBuffer()
    slots = _run(jb, a + b)
    assert jb.stats.restarts == 1 and jb.stats.lost == 0 and _audio(slots) == list(range(100))


def test_sender_pause_is_capped_at_max_gap():
    a = _stream(50)
    b = _stream(50, seq0=1050, ts0=50_000 + 50 * 160 + 10 * 8000, t0=1.0 + 10.0, first=50)  # 10 s pause
    jb = JitterBuffer(max_gap_ms=2000)
    slots = _run(jb, a + b)
    assert [s.duration for s in slots if s.kind != "audio"] == [16000]
    assert _audio(slots) == list(range(100)) and jb.stats.capped_gaps == 1


def test_timestamp_jump_without_a_pause_adds_no_time():
    a = _stream(50)
    b = _stream(50, seq0=1050, ts0=50_000 + 50 * 160 + 3600 * 8000, t0=1.0, first=50)  # ts +1 h, no wall gap
    jb = JitterBuffer()
    slots = _run(jb, a + b)
    assert _audio(slots) == list(range(100)) and sum(s.duration for s in slots if s.kind != "audio") <= 160


def test_marker_bit_gap_is_silence():
    a = _stream(30)
    b = _stream(30, seq0=1040, ts0=50_000 + 30 * 160 + 3200, t0=0.6 + 0.4, first=30)  # 400 ms; seq also jumps
    jb = JitterBuffer()
    slots = _run(jb, a + b)
    assert jb.stats.lost == 0 and sum(s.duration for s in slots if s.kind == "silence") == 3200
    assert _audio(slots) == list(range(60))


def test_consecutive_sequence_across_timestamp_gap_is_silence():
    a = _stream(30)
    b = [(t, RtpPacket(0, p.sequence, p.timestamp, p.ssrc, False, p.payload))
         for t, p in _stream(30, seq0=1030, ts0=50_000 + 30 * 160 + 2400, t0=0.6 + 0.3, first=30)]
    jb = JitterBuffer()
    slots = _run(jb, a + b)
    assert jb.stats.lost == 0 and sum(s.duration for s in slots if s.kind == "silence") == 2400


def test_lost_talkspurt_start_is_silence_then_lost():
    a = _stream(30)
    b = _stream(30, seq0=1030, ts0=50_000 + 30 * 160 + 2400, t0=0.6 + 0.3, first=30)[1:]  # marker packet lost
    jb = JitterBuffer()
    slots = _run(jb, a + b)
    gap = [(s.kind, s.duration) for s in slots if s.kind != "audio"]
    assert sum(d for k, d in gap if k == "silence") == 2400 and gap[-1] == ("lost", 160) and jb.stats.lost == 1


def test_non_audio_sequence_numbers_make_silence_not_loss():
    # 40 audio packets; packets 20..25 replaced by 9 telephone-event packets (as the pcap generator does)
    jb = JitterBuffer()
    seq, out = 0, []
    for k in range(40):
        if 20 <= k < 26:
            if k == 20:
                for j in range(9):
                    ev = RtpPacket(101, seq, 20 * 160, 5, j == 0, build_telephone_event(1, j >= 6, 10, 160))
                    jb.mark_non_audio(ev)
                    seq += 1
            continue
        jb.push(RtpPacket(0, seq, k * 160, 5, False, _payload(k)), k * 0.02)
        seq += 1
        out += jb.pop(k * 0.02)
    out += jb.flush()
    assert jb.stats.lost == 0 and sum(s.duration for s in out if s.kind == "silence") == 6 * 160


def test_far_future_packet_does_not_stall_the_stream():
    pkts = _stream(100)
    t, p = pkts[40]
    pkts[40] = (t, RtpPacket(0, p.sequence, (p.timestamp + 3600 * 8000) % 2**32, p.ssrc, False, p.payload))
    jb = JitterBuffer()
    slots = _run(jb, pkts)
    assert _audio(slots)[:40] == list(range(40)) and set(range(41, 100)) <= set(_audio(slots))
    assert sum(s.duration for s in slots if s.kind != "audio") <= 2 * 160


@pytest.mark.parametrize("ts_step", [160, 3_600_000])
def test_held_packets_are_bounded_when_nobody_pops(ts_step):
    jb = JitterBuffer()
    for k in range(5 * MAX_HELD):  # a sender 20x faster than real time, or one hour apart per packet
        jb.push(RtpPacket(0, k % 65536, (k * ts_step) % 2**32, 1, False, bytes(160)), 0.001 * k)
        assert jb.held <= MAX_HELD
    assert jb.stats.overflows == 4 * MAX_HELD
    out = jb.pop(2.5) + jb.flush()
    assert [s.kind for s in out].count("audio") == 5 * MAX_HELD and all(s.duration > 0 for s in out)
    assert sum(s.duration for s in out if s.kind != "audio") <= 16000  # a 2 s wall-time: never more than that


def test_far_future_packets_with_pops_play_at_their_arrival():
    jb = JitterBuffer()
    out = []
    for k in range(1000):  # each packet one hour of timestamps after the last: every gap is capped and re-anchored
        jb.push(RtpPacket(0, k % 65536, (k * 3_600_000) % 2**32, 1, False, bytes(160)), 0.02 * k)
        out += jb.pop(0.02 * k)
        assert jb.held <= 6
    out += jb.flush()
    assert jb.stats.capped_gaps == 999 and [s.kind for s in out].count("audio") == 1000
    assert sum(s.duration for s in out if s.kind != "audio") == 0  # wall time says: no pause at all


def test_flood_of_random_packets_stays_bounded():
    rng = random.Random(9)
    jb = JitterBuffer()
    n = 0
    for k in range(20_000):
        p = RtpPacket(rng.choice([0, 8]), rng.randrange(65536), rng.randrange(2**32), rng.choice([1, 2, rng.randrange(2**32)]),
                      rng.random() < 0.5, bytes(rng.randrange(0, 300)))
        jb.push(p, k * 0.0005)
        assert jb.held <= MAX_HELD and len(jb._probation) < jitter.PROBATION_PACKETS
        if k % 50 == 0:
            n += len(jb.pop(k * 0.0005))
    assert len(jb._played) <= jitter._MEMORY + 1 and len(jb._transit) <= jitter._MEMORY + 1


# --- properties ---------------------------------------------------------------------------------
_packet = st.builds(
    RtpPacket,
    payload_type=st.sampled_from([0, 8, 9, 13]),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 2**32 - 1),
    ssrc=st.sampled_from([1, 2, 3]),
    marker=st.booleans(),
    payload=st.binary(max_size=400),
)


@st.composite
def _near_packets(draw):
    """Packets near one stream's line (small perturbations), which reach the deeper paths more often."""
    n = draw(st.integers(1, 80))
    seq0, ts0 = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 2**32 - 1))
    out = []
    for k in range(n):
        ds = draw(st.integers(-5, 5) | st.integers(-40_000, 40_000))
        dt = draw(st.integers(-800, 800) | st.integers(-(2**31), 2**31))
        out.append(RtpPacket(draw(st.sampled_from([0, 8])), (seq0 + k + ds) % 65536, (ts0 + 160 * k + dt) % 2**32,
                             draw(st.sampled_from([1, 1, 1, 2])), draw(st.booleans()), bytes(draw(st.sampled_from([0, 1, 80, 160, 160])))))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    packets=st.lists(_packet, max_size=60) | _near_packets(),
    steps=st.lists(st.floats(0, 0.5), min_size=1, max_size=60),
    pops=st.lists(st.booleans(), min_size=1, max_size=60),
    depth_ms=st.sampled_from([0, 20, 80]),
)
def test_jitter_buffer_invariants_for_any_input(packets, steps, pops, depth_ms):
    jb = JitterBuffer(depth_ms=depth_ms, max_gap_ms=500)
    now, out = 0.0, []
    for k, p in enumerate(packets):
        now += steps[k % len(steps)]
        jb.push(p, now)
        if pops[k % len(pops)]:
            out += jb.pop(now)
        assert jb.held <= MAX_HELD
    out += jb.pop(now + 10.0) + jb.flush()
    max_gap = 8000 * 500 // 1000
    assert all(s.kind in ("audio", "lost", "silence") and s.duration > 0 for s in out)
    assert all(s.payload == b"" for s in out if s.kind != "audio")
    audio = [s for s in out if s.kind == "audio"]
    assert len(audio) <= len(packets) and sum(s.duration for s in audio) <= sum(len(p.payload) for p in packets)
    between = 0  # stream time filled between two audio slots: one gap, or a stream change (old gap + wall gap)
    for s in out:
        between = 0 if s.kind == "audio" else between + s.duration
        assert between <= 2 * max_gap
    assert jb.flush() == [] and jb.held == 0


@st.composite
def _impaired_stream(draw):
    n = draw(st.integers(2, 150))
    seq0, ts0 = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 2**32 - 1))
    jitter_s = draw(st.sampled_from([0.0, 0.03, 0.06, 0.2]))
    rng = random.Random(draw(st.integers(0, 2**32)))
    loss, dup = draw(st.sampled_from([0.0, 0.05, 0.3])), draw(st.sampled_from([0.0, 0.1]))
    arrivals = []
    for k, (t, p) in enumerate(_stream(n, seq0=seq0, ts0=ts0)):
        if 0 < k < n - 1 and rng.random() < loss:
            continue
        d = rng.uniform(0, jitter_s)
        arrivals.append((t + d, p))
        if rng.random() < dup:
            arrivals.append((t + d + rng.uniform(0, 0.1), p))
    return arrivals, n


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_impaired_stream(), st.sampled_from([0.005, 0.02, 0.05]))
def test_impaired_stream_timeline_is_exact(case, tick_s):
    arrivals, n = case
    jb = JitterBuffer()
    slots = _run(jb, arrivals, tick_s=tick_s)
    audio = _audio(slots)
    assert audio == sorted(set(audio)) and audio[-1] == n - 1  # in order, no duplicate, the last one played
    first = audio[0]
    # every slot from the first played packet to the end: exactly the timestamp range covered
    assert sum(s.duration for s in slots) == (n - first) * 160
    assert all(s.duration == 160 for s in slots) and "silence" not in _kinds(slots)
    assert len(audio) + jb.stats.lost == n - first


# ================================================================================================
# decoding
# ================================================================================================
def _speech_8k(name="en_ljspeech_LJ001-0001.wav", seconds=4.0):
    f = load_file(AUDIO_EN / name)
    x = resample(f.samples[:, 0], f.sample_rate_hz, 8000)[: int(8000 * seconds)]
    return x.astype(np.float32)


def _best_corr(ref: np.ndarray, out: np.ndarray, lag0: int, search: int = 48) -> float:
    best = -1.0
    n = len(ref) - 2 * search
    for lag in range(max(0, lag0 - search), lag0 + search):
        seg = out[lag: lag + n]
        if len(seg) < n:
            break
        best = max(best, float(np.corrcoef(ref[:n], seg)[0, 1]))
    return best


def _packetize(encoded: bytes, pt: int, step=160):
    return [Playout("audio", encoded[i: i + step], pt, len(encoded[i: i + step])) for i in range(0, len(encoded), step)]


@pytest.mark.parametrize("codec,encoding", [(PCMU, "mulaw"), (PCMA, "alaw")])
def test_g711_round_trip_of_real_speech(codec, encoding):
    x8 = _speech_8k()
    encoded = encode_g711(float_to_pcm16(x8), encoding)
    dec = StreamAudioDecoder(codec)
    parts = [dec.decode(s) for s in _packetize(encoded, codec.payload_type)]
    assert all(len(p) == 2 * len(s.payload) and p.dtype == np.float32 for p, s in zip(parts, _packetize(encoded, 0)))
    out = np.concatenate(parts + [dec.flush()])
    assert len(out) == 2 * len(x8) + dec.latency_samples
    ref = resample(x8, 8000, 16000)
    assert _best_corr(ref, out, dec.latency_samples) > 0.98


def test_real_speech_through_jitter_and_loss():
    x8 = _speech_8k(seconds=5.0)
    encoded = encode_g711(float_to_pcm16(x8), "mulaw")
    rng = random.Random(3)
    arrivals = []
    for k in range(len(encoded) // 160):
        if rng.random() < 0.03:
            continue
        arrivals.append((k * 0.02 + rng.uniform(0, 0.06), RtpPacket(0, (60_000 + k) % 65536, k * 160, 1, k == 0, encoded[k * 160:(k + 1) * 160])))
    jb = JitterBuffer()
    dec = StreamAudioDecoder(PCMU)
    slots = _run(jb, arrivals)
    out = np.concatenate([dec.decode(s) for s in slots] + [dec.flush()])
    assert len(out) == 2 * sum(s.duration for s in slots) + dec.latency_samples
    assert jb.stats.lost > 0 and np.abs(out).max() <= 1.0
    assert _best_corr(resample(x8, 8000, 16000), out, dec.latency_samples) > 0.9


def test_concealment_continues_then_fades_to_zero():
    x8 = _speech_8k()
    encoded = encode_g711(float_to_pcm16(x8), "mulaw")
    frames = _packetize(encoded, 0)
    # find a voiced stretch: the loudest 20 ms frame
    loud = int(np.argmax([np.sqrt(np.mean(x8[i * 160:(i + 1) * 160] ** 2)) for i in range(len(frames))]))
    dec = StreamAudioDecoder(PCMU)
    out = [dec.decode(s) for s in frames[: loud + 1]]
    lost = [dec.decode(Playout("lost", b"", 0, 160)) for _ in range(8)]
    resumed = [dec.decode(s) for s in frames[loud + 9: loud + 20]]
    tail = np.concatenate(out + lost + resumed + [dec.flush()])
    assert all(len(x) == 320 for x in lost) and np.abs(tail).max() <= 1.0 and np.isfinite(tail).all()
    # the output is delayed by latency_samples: locate the concealed stretch in the stream
    start = sum(len(x) for x in out) + dec.latency_samples
    conceal = tail[start: start + 8 * 320]
    rms = lambda a: float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))  # noqa: E731
    before = rms(tail[start - 320: start])
    assert rms(conceal[:320]) > 0.5 * before  # the first 20 ms go on like speech
    assert rms(conceal[960 + 64:]) < 1e-3  # zero after 60 ms (plus resampler ringing)
    assert np.abs(np.diff(tail[start - 64: start + 64])).max() < 0.5  # no click where the loss starts
    assert dec.stats.concealed_ms == pytest.approx(160)


def test_silence_unknown_payload_and_loss_without_history_are_zeros():
    dec = StreamAudioDecoder(PCMU)
    out = np.concatenate([
        dec.decode(Playout("lost", b"", 0, 160)),
        dec.decode(Playout("silence", b"", 0, 8000)),
        dec.decode(Playout("audio", b"\x00" * 160, 111, 160)),  # an undecodable payload type
        dec.decode(Playout("audio", b"\x40", 13, 1)),  # comfort noise
        dec.flush(),
    ])
    assert len(out) == 2 * (160 + 8000 + 160 + 1) + dec.latency_samples and not out.any()
    assert dec.stats.unknown_payloads == 1


def test_payload_type_switch_mid_stream():
    x8 = _speech_8k(seconds=2.0)
    pcm = float_to_pcm16(x8)
    half = len(pcm) // 2 // 160 * 160
    slots = _packetize(encode_g711(pcm[:half], "mulaw"), 0) + _packetize(encode_g711(pcm[half:], "alaw"), 8)
    dec = StreamAudioDecoder(PCMU)
    out = np.concatenate([dec.decode(s) for s in slots] + [dec.flush()])
    assert dec.stats.unknown_payloads == 0
    assert _best_corr(resample(x8, 8000, 16000), out, dec.latency_samples) > 0.98


def test_codec_lookup():
    assert codec_for("pcmu", 0) == PCMU and codec_for("PCMA", 8) == PCMA
    assert codec_for("PCMU", 96) == Codec("PCMU", 96, 8000, 8000)
    with pytest.raises(AudioFormatError, match="G729"):
        codec_for("G729", 18)
    assert codecs.STATIC_PAYLOAD_TYPES == {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000)}


@pytest.mark.skipif("G722" not in SUPPORTED, reason="optional `g722` package not installed")
def test_g722_round_trip_of_real_speech():
    import G722

    f = load_file(AUDIO_EN / "en_ljspeech_LJ001-0001.wav")
    x16 = resample(f.samples[:, 0], f.sample_rate_hz, 16000)[: 16000 * 3].astype(np.float32)
    encoded = G722.G722(16000, 64000).encode(float_to_pcm16(x16))
    assert len(encoded) == len(x16) // 2
    dec = StreamAudioDecoder(codec_for("G722", 9))
    slots = _packetize(encoded, 9)  # 160 bytes = 20 ms = 160 units of the 8 kHz RTP clock
    parts = [dec.decode(s) for s in slots]
    assert all(len(p) == 320 for p in parts) and dec.latency_samples == 0
    out = np.concatenate(parts + [dec.decode(Playout("lost", b"", 9, 160))])
    assert _best_corr(x16, out, 22) > 0.95
