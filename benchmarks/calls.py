"""Synthetic-but-real calls for benchmarks: real speech clips arranged as two-channel conversations.

Each call alternates customer and agent turns (one side at a time, 0.6-1.5 s pauses), built from the
recordings in tests/data/audio, looped with a per-call offset so concurrent calls do not speak in lockstep.
Every turn knows its reference text and where its speech really ends (Silero timestamps of the clip), so a
benchmark can measure latency from the end of speech and score accuracy.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

AUDIO_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "audio"
RATE = 16000


@dataclass(frozen=True, slots=True)
class Clip:
    file: str
    language: str
    reference: str
    audio: np.ndarray
    speech_start_s: float
    speech_end_s: float


@dataclass(frozen=True, slots=True)
class Turn:
    channel: int
    start_s: float  # where the clip starts in the call
    speech_start_s: float  # first speech in the call (Silero)
    speech_end_s: float  # last speech in the call (Silero)
    end_s: float
    clip: Clip


@dataclass(frozen=True, slots=True)
class Call:
    call_id: str
    language: str
    channels: tuple[np.ndarray, np.ndarray]
    turns: tuple[Turn, ...]

    @property
    def duration_s(self) -> float:
        return self.channels[0].size / RATE


@lru_cache(maxsize=2)
def load_clips(language: str) -> tuple[Clip, ...]:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    rows = list(csv.DictReader(open(AUDIO_DIR / "manifest.tsv", encoding="utf-8"), delimiter="\t"))
    clips = []
    for r in rows:
        if r["language"] != language:
            continue
        audio, rate = sf.read(AUDIO_DIR / r["file"], dtype="float32")
        assert rate == RATE
        ts = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=300, speech_pad_ms=0))  # true speech, no padding
        start = ts[0]["start"] / RATE if ts else 0.0
        end = ts[-1]["end"] / RATE if ts else audio.size / RATE
        clips.append(Clip(r["file"], language, r["reference_text"], audio, start, end))
    return tuple(clips)


def build_call(call_id: str, language: str, duration_s: float, seed: int) -> Call:
    """A call of at least ``duration_s`` seconds: alternating turns, starting with a random clip and side."""
    clips = load_clips(language)
    rng = np.random.default_rng(seed)
    offset = int(rng.integers(len(clips)))
    lead = float(rng.uniform(0.2, 2.0))  # calls do not start in lockstep
    parts: list[list[np.ndarray]] = [[np.zeros(int(lead * RATE), np.float32)], [np.zeros(int(lead * RATE), np.float32)]]
    pos = lead
    turns: list[Turn] = []
    side = int(rng.integers(2))
    k = 0
    while pos < duration_s:
        clip = clips[(offset + k) % len(clips)]
        pause = float(rng.uniform(0.6, 1.5))
        gap = np.zeros(int(pause * RATE), np.float32)
        parts[side] += [clip.audio, gap]
        parts[1 - side] += [np.zeros_like(clip.audio), gap]
        turns.append(Turn(side, pos, pos + clip.speech_start_s, pos + clip.speech_end_s, pos + clip.audio.size / RATE, clip))
        pos += clip.audio.size / RATE + gap.size / RATE
        side = 1 - side
        k += 1
    a, b = np.concatenate(parts[0]), np.concatenate(parts[1])
    return Call(call_id, language, (a, b), tuple(turns))
