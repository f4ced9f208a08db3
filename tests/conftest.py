"""Shared fixtures. Real components: the Whisper model from the installed weight packages, real audio
from tests/data/audio (copied from shared/audio, credited in tests/data/README.md)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

AUDIO_DIR = Path(__file__).parent / "data" / "audio"


def load_manifest() -> list[dict[str, str]]:
    with open(AUDIO_DIR / "manifest.tsv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def load_clip(name: str) -> np.ndarray:
    import soundfile as sf

    audio, rate = sf.read(AUDIO_DIR / name, dtype="float32")
    assert rate == 16000
    return audio


@pytest.fixture(scope="session")
def asr_config(tmp_path_factory):
    from callscribe.config import Config

    # the joined whisper-base model is cached under data_dir; share one across the session
    return Config(data_dir=str(tmp_path_factory.mktemp("var")), partials=False, sip=False, analytics=False)


@pytest.fixture(scope="session")
def engine(asr_config):
    """whisper-base, CPU int8, shared by every test that decodes (loading it once)."""
    from callscribe.asr.engine import WhisperEngine

    eng = WhisperEngine(asr_config)
    eng.warmup()
    return eng


@pytest.fixture
def redis_server(tmp_path):
    """A real Redis-protocol server (the bundled valkey-server) on a free port, AOF on."""
    from callscribe.stream import EmbeddedRedis

    server = EmbeddedRedis(tmp_path)
    server.start()
    yield server
    server.kill()
