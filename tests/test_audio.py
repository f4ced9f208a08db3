"""callscribe.audio: G.711 tables against ITU values, codecs, resampling, decoding of frames and files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscribe import audio
from callscribe.audio import (
    ALAW_TO_PCM16,
    MULAW_TO_PCM16,
    StreamDecoder,
    StreamResampler,
    decode_bytes,
    encode_g711,
    load_file,
    resample,
)
from callscribe.errors import AudioFormatError

from .conftest import AUDIO_DIR, load_clip, load_manifest

DEMO_ZH = audio.Path(audio.__file__).parent / "data" / "demo_call_zh.wav"


# --- G.711 decoding tables -------------------------------------------------------------------------
# ITU-T G.711 decoder outputs on the 16-bit scale; each checked against CPython's audioop.ulaw2lin/alaw2lin
# (the Sun g711.c reference) and against the spec formulas below.
@pytest.mark.parametrize(
    "code,pcm",
    [(0xFF, 0), (0x7F, 0), (0x00, -32124), (0x80, 32124), (0xFE, 8), (0x7E, -8), (0xF0, 120), (0xEF, 132),
     (0x8F, 16764), (0x0F, -16764), (0x70, -120), (0xC0, 1884)],
)
def test_mulaw_known_values(code, pcm):
    assert MULAW_TO_PCM16[code] == pcm


@pytest.mark.parametrize(
    "code,pcm",
    [(0xD5, 8), (0x55, -8), (0x2A, -32256), (0xAA, 32256), (0xD4, 24), (0xC5, 264), (0xC4, 280), (0xF5, 528),
     (0x80, 5504), (0x00, -5504)],
)
def test_alaw_known_values(code, pcm):
    assert ALAW_TO_PCM16[code] == pcm


def _itu_mulaw(code: int) -> int:
    """G.711 mu-law expansion written from the spec: 14-bit magnitude (2q+33)*2^s - 33, times 4."""
    c = ~code & 0xFF
    s, q = (c >> 4) & 7, c & 0x0F
    mag = 4 * ((2 * q + 33) * 2**s - 33)
    return -mag if c & 0x80 else mag


def _itu_alaw(code: int) -> int:
    """G.711 A-law expansion from the spec: 13-bit magnitude 2q+1 (s=0) or (2q+33)*2^(s-1), times 8."""
    c = code ^ 0x55
    s, q = (c >> 4) & 7, c & 0x0F
    mag = 8 * (2 * q + 1 if s == 0 else (2 * q + 33) * 2 ** (s - 1))
    return mag if c & 0x80 else -mag


def test_tables_match_spec_formula_for_all_codes():
    assert [int(v) for v in MULAW_TO_PCM16] == [_itu_mulaw(c) for c in range(256)]
    assert [int(v) for v in ALAW_TO_PCM16] == [_itu_alaw(c) for c in range(256)]


def test_tables_match_stdlib_audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # gone in 3.13 unless audioop-lts is installed
        codes = bytes(range(256))
        ulaw = np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2")
        alaw = np.frombuffer(audioop.alaw2lin(codes, 2), "<i2")
    np.testing.assert_array_equal(MULAW_TO_PCM16, ulaw)
    np.testing.assert_array_equal(ALAW_TO_PCM16, alaw)


def test_tables_are_odd_symmetric_and_monotonic():
    # the sign bit mirrors the value; within one sign the codes are ordered by magnitude
    for table, flip in ((MULAW_TO_PCM16, 0x80), (ALAW_TO_PCM16, 0x80)):
        for code in range(256):
            assert int(table[code]) == -int(table[code ^ flip]) or table[code] == 0
    assert len(set(MULAW_TO_PCM16.tolist())) == 255  # +0 and -0 are both 0
    assert len(set(ALAW_TO_PCM16.tolist())) == 256


# --- G.711 encoding ----------------------------------------------------------------------------------
ALL_PCM16 = np.arange(-32768, 32768, dtype=np.int16)


@pytest.mark.parametrize("encoding,table", [("mulaw", MULAW_TO_PCM16), ("alaw", ALAW_TO_PCM16)])
def test_encode_picks_nearest_code_for_every_sample(encoding, table):
    codes = np.frombuffer(encode_g711(ALL_PCM16, encoding), np.uint8)
    assert codes.size == ALL_PCM16.size
    decoded = table[codes].astype(np.int32)
    x = ALL_PCM16.astype(np.int32)
    err = np.abs(decoded - x)
    best = np.abs(table.astype(np.int32)[None, :] - x[::97, None]).min(axis=1)
    np.testing.assert_array_equal(err[::97], best)
    # quantisation error: at most 8 near zero, about 1/32 of the magnitude elsewhere (plus clipping at the ends)
    assert err[np.abs(x) < 256].max() <= 8
    assert np.all(err <= np.ceil(np.abs(x) * 0.04) + 8)


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_every_code_survives_decode_encode(encoding):
    table = MULAW_TO_PCM16 if encoding == "mulaw" else ALAW_TO_PCM16
    codes = np.arange(256, dtype=np.uint8)
    again = np.frombuffer(encode_g711(table[codes], encoding), np.uint8)
    np.testing.assert_array_equal(table[again], table[codes])  # same value (mu-law has two zeros)


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_g711_round_trip_of_real_speech_keeps_snr(encoding):
    x = audio.float_to_pcm16(load_clip("en/en_ljspeech_LJ001-0001.wav"))
    y = decode_bytes(encode_g711(x, encoding), encoding)
    noise = (y.astype(np.float64) - x) ** 2
    snr_db = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(noise))
    assert snr_db > 30  # G.711 gives ~35-38 dB on speech


def test_encode_rejects_other_encodings():
    with pytest.raises(AudioFormatError):
        encode_g711(np.zeros(4, np.int16), "pcm16")


# --- decode_bytes ----------------------------------------------------------------------------------------
def test_decode_pcm16_little_endian():
    data = np.array([0, 1, -1, 32767, -32768], "<i2").tobytes()
    np.testing.assert_array_equal(decode_bytes(data, "pcm16"), [0, 1, -1, 32767, -32768])
    assert decode_bytes(b"\x01\x02", "pcm16")[0] == 0x0201


@pytest.mark.parametrize("n", [1, 3, 321])
def test_decode_pcm16_odd_byte_count_rejected(n):
    with pytest.raises(AudioFormatError, match="odd"):
        decode_bytes(b"\x00" * n, "pcm16")


@pytest.mark.parametrize("encoding", ["ulaw", "PCM16", "opus", "", "g729"])
def test_decode_unknown_encoding_rejected(encoding):
    with pytest.raises(AudioFormatError, match="unknown encoding"):
        decode_bytes(b"\x00\x00", encoding)


def test_decode_g711_bytes():
    np.testing.assert_array_equal(decode_bytes(bytes([0xFF, 0x00, 0x80]), "mulaw"), [0, -32124, 32124])
    np.testing.assert_array_equal(decode_bytes(bytes([0xD5, 0x55, 0x2A]), "alaw"), [8, -8, -32256])
    assert decode_bytes(b"", "mulaw").size == 0


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048), encoding=st.sampled_from(["pcm16", "mulaw", "alaw", "ulaw", "", "pcm8"]))
def test_fuzz_decode_bytes_only_raises_audio_format_error(data, encoding):
    try:
        out = decode_bytes(data, encoding)
    except AudioFormatError:
        assert encoding not in ("mulaw", "alaw")
        return
    assert out.dtype == np.int16
    assert out.size == (len(data) // 2 if encoding == "pcm16" else len(data))


# --- float conversion ------------------------------------------------------------------------------------
def test_float_pcm16_conversion():
    assert audio.pcm16_to_float(np.array([-32768, 0, 16384], np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert audio.float_to_pcm16(np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0])).tolist() == [
        -32767, -32767, 0, 16383, 32767, 32767]


# --- resampling ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 37, 160, 1000, 8000])
def test_stream_resampler_chunked_equals_one_shot(chunk):
    x8 = resample(load_clip("en/en_cmu_arctic_aew_a0001.wav"), 16000, 8000)
    one_shot = resample(x8, 8000, 16000)
    rs = StreamResampler(8000)
    parts = [rs.process(x8[i : i + chunk]) for i in range(0, x8.size, chunk)]
    parts.append(rs.process(np.zeros(0, np.float32), last=True))
    chunked = np.concatenate(parts)
    assert chunked.dtype == np.float32
    assert chunked.size == one_shot.size == 2 * x8.size
    np.testing.assert_allclose(chunked, one_shot, atol=1e-5)


def test_resample_8k_to_16k_keeps_a_tone():
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    up = resample(tone, 8000, 16000)
    assert up.size == 16000
    spectrum = np.abs(np.fft.rfft(up[2000:14000]))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 1000) < 5
    assert 0.45 < np.max(np.abs(up[1000:-1000])) < 0.55


def test_resampler_same_rate_is_identity():
    x = np.linspace(-1, 1, 999, dtype=np.float32)
    assert StreamResampler(16000).process(x) is x
    assert resample(x, 16000) is x


# --- StreamDecoder --------------------------------------------------------------------------------------
def test_stream_decoder_splits_interleaved_stereo():
    left = np.array([100, 200, 300, 400], np.int16)
    right = np.array([-5, -6, -7, -8], np.int16)
    frame = np.stack([left, right], axis=1).reshape(-1).astype("<i2").tobytes()
    ch0, ch1 = StreamDecoder("pcm16", 16000, 2).decode(frame)
    np.testing.assert_allclose(ch0, left / 32768.0)
    np.testing.assert_allclose(ch1, right / 32768.0)


def test_stream_decoder_mulaw_8k_mono_upsamples():
    dec = StreamDecoder("mulaw", 8000, 1)
    x = audio.float_to_pcm16(resample(load_clip("zh/zh_aishell1_BAC009S0724W0123.wav"), 16000, 8000))
    data = encode_g711(x, "mulaw")
    outs = [dec.decode(data[i : i + 160])[0] for i in range(0, len(data), 160)]
    outs.append(dec.decode(b"", last=True)[0])
    y = np.concatenate(outs)
    assert y.size == 2 * x.size


@pytest.mark.parametrize(
    "args",
    [("opus", 16000, 1), ("pcm16", 44100, 1), ("pcm16", 16000, 3), ("pcm16", 16000, 0)],
)
def test_stream_decoder_rejects_unsupported_formats(args):
    with pytest.raises(AudioFormatError):
        StreamDecoder(*args)


@pytest.mark.parametrize("encoding,channels,nbytes", [("pcm16", 1, 3), ("pcm16", 2, 6), ("mulaw", 2, 3)])
def test_stream_decoder_rejects_partial_sample_groups(encoding, channels, nbytes):
    with pytest.raises(AudioFormatError, match="whole number"):
        StreamDecoder(encoding, 16000, channels).decode(b"\x00" * nbytes)


# --- files -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("row", [r for r in load_manifest() if r["file"].endswith(("W0121.wav", "a0003.wav"))],
                         ids=lambda r: r["file"])
def test_load_file_real_wav(row):
    f = load_file(AUDIO_DIR / row["file"])
    assert f.sample_rate_hz == 16000
    assert f.channels == 1
    assert f.samples.dtype == np.float32
    assert f.duration_s == pytest.approx(float(row["duration_s"]), abs=0.01)
    assert 0.01 < np.max(np.abs(f.samples)) <= 1.0


def test_load_file_stereo_demo_call():
    f = load_file(DEMO_ZH)
    assert f.channels == 2 and f.sample_rate_hz == 16000


def test_load_file_missing_path(tmp_path):
    with pytest.raises(AudioFormatError, match="no such audio file"):
        load_file(tmp_path / "missing.wav")


def test_load_file_not_audio(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really" * 20)
    with pytest.raises(AudioFormatError):
        load_file(bad)
