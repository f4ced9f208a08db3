"""callscribe.vad.ChannelVad on real audio: webrtcvad endpointing gated by Silero (the model inside faster-whisper).

Speech: the real recordings in tests/data/audio, padded with silence, must come out as segments that cover
the speech (the reference regions are Silero's own timestamps from faster-whisper, run on the whole clip).
Non-speech a contact center line carries (silence, line noise, DTMF digits, hold music) must give none.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from callscribe import audio as audio_mod
from callscribe.config import Config
from callscribe.vad import ChannelVad, SpeechAborted, SpeechEnded, SpeechStarted, silero

from .conftest import load_clip, load_manifest

SR = 16000
PAD_MS = 1000
DEMO_DIR = Path(audio_mod.__file__).parent / "data"


def run_vad(x: np.ndarray, cfg: Config | None = None, chunk: int = 320) -> list:
    vad = ChannelVad(cfg or Config())
    events = []
    for i in range(0, x.size, chunk):
        events += vad.push(x[i : i + chunk])
    return events + vad.flush()


def ended(events) -> list[SpeechEnded]:
    return [ev for ev in events if isinstance(ev, SpeechEnded)]


def silero_regions_ms(x: np.ndarray) -> list[tuple[int, int]]:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(x, VadOptions(min_silence_duration_ms=300, speech_pad_ms=0))
    return [(t["start"] // 16, t["end"] // 16) for t in stamps]


def covered_fraction(segments: list[SpeechEnded], regions: list[tuple[int, int]], total_ms: int) -> float:
    mask = np.zeros(total_ms, bool)
    for ev in segments:
        mask[ev.start_ms : ev.end_ms] = True
    return min(mask[s:e].mean() for s, e in regions)


# --- real speech ------------------------------------------------------------------------------------------
CLIPS = [row["file"] for row in load_manifest()]


@pytest.mark.parametrize("name", CLIPS)
def test_real_speech_padded_with_silence_gives_segments_covering_it(name):
    clip = load_clip(name)
    pad = np.zeros(SR * PAD_MS // 1000, np.float32)
    x = np.concatenate([pad, clip, pad])
    total_ms = x.size // 16
    chunk = [160, 320, 1234, 4000][CLIPS.index(name) % 4]  # any chunking: the VAD frames internally
    segments = ended(run_vad(x, chunk=chunk))

    assert segments, f"{name}: no speech found"
    clip_end_ms = PAD_MS + clip.size // 16
    for ev in segments:
        assert ev.audio.size == (ev.end_ms - ev.start_ms) * 16
        np.testing.assert_array_equal(ev.audio, x[ev.start_ms * 16 : ev.end_ms * 16])
        assert PAD_MS - Config().vad_pre_roll_ms <= ev.start_ms < ev.end_ms <= clip_end_ms + 500  # pre-roll / tail, no more
        assert ev.reason in ("silence", "flush")
    for a, b in zip(segments, segments[1:]):
        assert a.end_ms <= b.start_ms
    regions = silero_regions_ms(x)
    assert regions
    assert covered_fraction(segments, regions, total_ms) >= 0.95


@pytest.mark.parametrize("name", ["zh/zh_aishell1_BAC009S0724W0125.wav", "en/en_librivox_sns01_0920.wav"])
@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_telephone_quality_speech_still_found(name, encoding):
    """8 kHz G.711, as a SIP trunk delivers it, decoded and upsampled by the audio front."""
    clip = load_clip(name)
    x8 = audio_mod.resample(np.concatenate([np.zeros(SR, np.float32), clip, np.zeros(SR, np.float32)]), SR, 8000)
    decoder = audio_mod.StreamDecoder(encoding, 8000, 1)
    wire = audio_mod.encode_g711(audio_mod.float_to_pcm16(x8), encoding)
    x = np.concatenate([decoder.decode(wire[i : i + 160])[0] for i in range(0, len(wire), 160)]
                       + [decoder.decode(b"", last=True)[0]])
    segments = ended(run_vad(x))
    assert segments
    speech_ms = sum(ev.end_ms - ev.start_ms for ev in segments)
    assert speech_ms >= 0.8 * clip.size / 16


def test_speech_confirmed_during_real_speech():
    clip = load_clip("en/en_ljspeech_LJ001-0001.wav")
    x = np.concatenate([np.zeros(SR, np.float32), clip, np.zeros(SR, np.float32)])
    vad = ChannelVad(Config())
    confirmed_at_ms = None
    for i in range(0, x.size, 320):
        vad.push(x[i : i + 320])
        if vad.in_speech and confirmed_at_ms is None and vad.speech_confirmed():
            confirmed_at_ms = vad.now_ms
    assert confirmed_at_ms is not None
    assert confirmed_at_ms < PAD_MS + 1500  # partials may start within the first words


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_demo_call_turns_found_on_the_right_channel(lang):
    """The bundled demo call: every turn in its .json is covered on its own channel, nothing on the other."""
    f = audio_mod.load_file(DEMO_DIR / f"demo_call_{lang}.wav")
    turns = json.loads((DEMO_DIR / f"demo_call_{lang}.json").read_text(encoding="utf-8"))
    assert f.channels == 2 and f.sample_rate_hz == SR
    for ch, role in enumerate(("customer", "agent")):
        segments = ended(run_vad(np.ascontiguousarray(f.samples[:, ch]), chunk=640))
        mine = [t for t in turns if t["channel"] == role]
        for turn in mine:
            start_ms, end_ms = int(turn["start_s"] * 1000), int(turn["end_s"] * 1000)
            overlap = [ev for ev in segments if ev.start_ms < end_ms and ev.end_ms > start_ms]
            assert overlap, f"{role} turn {turn['file']} not found"
        for ev in segments:  # every segment lies on one of this channel's turns (pre-roll/tail slack)
            assert any(ev.start_ms >= t["start_s"] * 1000 - Config().vad_pre_roll_ms - 50 and ev.end_ms <= t["end_s"] * 1000 + 600 for t in mine)


# --- non-speech -----------------------------------------------------------------------------------------------
ROWS_HZ = (697, 770, 852, 941)
COLS_HZ = (1209, 1336, 1477, 1633)
KEYPAD = "123A456B789C*0#D"  # row-major: key k has row k // 4, column k % 4


def dtmf(digits: str, seed: int, amplitude: float) -> np.ndarray:
    """DTMF key presses (ITU-T Q.23 row + column tone pair), 100-250 ms each with 50-120 ms gaps."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(SR // 2, np.float32)]
    for key in digits:
        k = KEYPAD.index(key)
        t = np.arange(int(SR * rng.uniform(0.10, 0.25))) / SR
        tone = amplitude * (np.sin(2 * np.pi * ROWS_HZ[k // 4] * t) + np.sin(2 * np.pi * COLS_HZ[k % 4] * t))
        parts += [tone.astype(np.float32), np.zeros(int(SR * rng.uniform(0.05, 0.12)), np.float32)]
    parts.append(np.zeros(SR // 2, np.float32))
    return np.concatenate(parts)


def hold_music(seconds: float, seed: int, amplitude: float) -> np.ndarray:
    """A looping melody of harmonic notes (6 partials) over a major-triad pad, with attack and decay."""
    rng = np.random.default_rng(seed)
    melody = [60, 64, 67, 72, 67, 64, 62, 65, 69, 74, 69, 65, 59, 62, 67, 71]  # MIDI note numbers
    parts, n_total = [], 0
    while n_total < seconds * SR:
        midi = melody[len(parts) % len(melody)]
        t = np.arange(int(SR * rng.choice([0.25, 0.5, 0.5, 0.75]))) / SR
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        note = sum(0.6**h * np.sin(2 * np.pi * f0 * (h + 1) * t) for h in range(6))
        pad = 0.3 * sum(np.sin(2 * np.pi * 440.0 * 2 ** ((midi - 12 + iv - 69) / 12) * t) for iv in (0, 4, 7))
        envelope = np.minimum(1.0, t / 0.02) * np.exp(-2.5 * t)
        parts.append((amplitude * (note + pad) * envelope / 2.5).astype(np.float32))
        n_total += t.size
    return np.concatenate(parts)


def white_noise(seconds: float, seed: int, std: float) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).normal(0, std, int(SR * seconds)), -1, 1).astype(np.float32)


NON_SPEECH = {
    "digital-silence": lambda: np.zeros(SR * 5, np.float32),
    "dither": lambda: white_noise(5, seed=1, std=1e-4),
    "white-noise-low": lambda: white_noise(6, seed=7, std=0.01),
    "white-noise-mid": lambda: white_noise(6, seed=8, std=0.05),
    "white-noise-loud": lambda: white_noise(6, seed=9, std=0.3),
    "dtmf-phone-number": lambda: dtmf("13800138000#", seed=1, amplitude=0.2),
    "dtmf-all-keys": lambda: dtmf(KEYPAD * 2, seed=2, amplitude=0.25),
    "dtmf-loud": lambda: dtmf("0123456789*#", seed=3, amplitude=0.45),
    "dtmf-quiet": lambda: dtmf("5551234", seed=4, amplitude=0.08),
    "hold-music": lambda: hold_music(12, seed=0, amplitude=0.3),
    "hold-music-loud": lambda: hold_music(12, seed=5, amplitude=0.6),
    "hold-music-long": lambda: hold_music(25, seed=6, amplitude=0.3),  # past vad_max_segment_s: cut, each gated
}


@pytest.mark.parametrize("name", list(NON_SPEECH))
def test_non_speech_gives_no_segment(name):
    x = NON_SPEECH[name]()
    events = run_vad(x)
    assert ended(events) == []
    for ev in events:  # webrtcvad may open segments on tones and noise; Silero must refuse every one
        assert isinstance(ev, (SpeechStarted, SpeechAborted))
        if isinstance(ev, SpeechAborted):
            assert ev.reason in ("not_speech", "too_short")


@pytest.mark.parametrize("name", ["white-noise-mid", "dtmf-phone-number", "hold-music"])
def test_non_speech_is_rejected_by_the_silero_gate(name):
    """Without Silero, webrtcvad alone lets these through: the gate is what keeps them from Whisper."""
    x = NON_SPEECH[name]()
    assert ended(run_vad(x, Config(silero=False)))
    assert ended(run_vad(x)) == []


@pytest.mark.parametrize("name", ["dtmf-phone-number", "hold-music"])
def test_speech_never_confirmed_during_non_speech(name):
    x = NON_SPEECH[name]()
    vad = ChannelVad(Config())
    for i in range(0, x.size, 320):
        vad.push(x[i : i + 320])
        if vad.in_speech:
            assert not vad.speech_confirmed()


def test_silero_does_not_modify_its_input():
    """Regression: faster-whisper's Silero wrapper zeroed the last 64 samples of a whole-chunk input in place,
    so the segment audio handed on to Whisper lost its last 4 ms whenever its length was a multiple of 512."""
    x = np.random.default_rng(0).uniform(-0.5, 0.5, silero.CHUNK * 10).astype(np.float32)
    before = x.copy()
    silero.speech_probabilities(x)
    np.testing.assert_array_equal(x, before)


def test_silero_stream_matches_whole_signal_scoring():
    """Scoring audio piece by piece (state carried) gives the probabilities of faster-whisper's own wrapper
    scoring it whole."""
    from faster_whisper.vad import get_vad_model

    from callscribe.vad import silero

    clip = load_clip("zh/zh_cv_18567452.wav")
    clip = clip[: clip.size // silero.CHUNK * silero.CHUNK]
    whole = np.asarray(get_vad_model()(clip.copy()), np.float32).reshape(-1)
    np.testing.assert_allclose(silero.speech_probabilities(clip), whole, atol=1e-3)
    stream = silero.SileroStream()
    pieces = np.concatenate([stream.process(clip[i : i + 3 * silero.CHUNK]) for i in range(0, clip.size, 3 * silero.CHUNK)])
    np.testing.assert_allclose(pieces, whole, atol=1e-3)


@pytest.mark.parametrize("name", ["en/en_fleurs_008.wav", "en/en_fleurs_001.wav", "zh/zh_cv_18585207.wav"])
def test_endpoint_follows_speech_end_despite_noisy_tail(name):
    """Clips whose room noise keeps webrtcvad firing: Silero ends the segment ~hangover after the words."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    clip = load_clip(name)
    x = np.concatenate([clip, np.zeros(SR * 2, np.float32)])
    speech_end_s = get_speech_timestamps(clip, VadOptions(min_silence_duration_ms=300, speech_pad_ms=0))[-1]["end"] / SR
    vad = ChannelVad(Config())
    detected_at = None
    for i in range(0, x.size, 320):
        if any(isinstance(ev, SpeechEnded) for ev in vad.push(x[i : i + 320])) and detected_at is None:
            detected_at = (i + 320) / SR
    assert detected_at is not None
    assert detected_at - speech_end_s <= Config().vad_hangover_ms / 1000 + 0.2
