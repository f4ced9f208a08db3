"""callscribe.config: defaults, TOML file, environment, overrides, and errors that name the setting.

Every test passes ``env={...}`` so the real environment of the test run never leaks in.
"""

from __future__ import annotations

import dataclasses

import pytest

from callscribe.config import Config
from callscribe.errors import ConfigError


def write_toml(tmp_path, text: str):
    path = tmp_path / "callscribe.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults():
    cfg = Config.load(env={})
    assert cfg == Config()
    assert cfg.redis_url == ""
    assert cfg.beam_size_final == 5
    assert cfg.beam_size_partial == 1
    assert cfg.language == "auto"
    assert cfg.language_candidates == ("zh", "en")
    assert cfg.channel_map == ("customer", "agent")
    assert cfg.temperature_fallback == (0.2, 0.4, 0.6, 0.8, 1.0)
    assert cfg.partials is True and cfg.silero is True and cfg.word_timestamps is True
    assert cfg.vad_frame_ms == 20
    assert cfg.vad_max_segment_s == 20.0


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.beam_size_final = 1  # type: ignore[misc]
    changed = cfg.replace(beam_size_final=2)
    assert changed.beam_size_final == 2 and cfg.beam_size_final == 5


@pytest.mark.parametrize(
    "env,field,expected",
    [
        ({"CALLSCRIBE_BEAM_SIZE_FINAL": "3"}, "beam_size_final", 3),
        ({"CALLSCRIBE_BEAM_SIZE_FINAL": " 3 "}, "beam_size_final", 3),
        ({"REDIS_URL": "redis://10.0.0.5:6380/2"}, "redis_url", "redis://10.0.0.5:6380/2"),
        ({"CALLSCRIBE_REDIS_URL": "redis://a:1"}, "redis_url", "redis://a:1"),
        ({"REDIS_URL": "redis://plain:1", "CALLSCRIBE_REDIS_URL": "redis://ours:2"}, "redis_url", "redis://ours:2"),
        ({"REDIS_URL": ""}, "redis_url", ""),
        ({"CALLSCRIBE_CHANNEL_MAP": "agent,customer"}, "channel_map", ("agent", "customer")),
        ({"CALLSCRIBE_CHANNEL_MAP": " agent , customer ,"}, "channel_map", ("agent", "customer")),
        ({"CALLSCRIBE_CHANNEL_MAP": "mixed"}, "channel_map", ("mixed",)),
        ({"CALLSCRIBE_LANGUAGE_CANDIDATES": "zh,en,yue"}, "language_candidates", ("zh", "en", "yue")),
        ({"CALLSCRIBE_LANGUAGE_CANDIDATES": ""}, "language_candidates", ()),
        ({"CALLSCRIBE_TEMPERATURE_FALLBACK": "0.5,1"}, "temperature_fallback", (0.5, 1.0)),
        ({"CALLSCRIBE_PARTIAL_INTERVAL_S": "0.25"}, "partial_interval_s", 0.25),
        ({"CALLSCRIBE_VAD_MAX_SEGMENT_S": "15"}, "vad_max_segment_s", 15.0),
        ({"CALLSCRIBE_DEVICE": "cuda"}, "device", "cuda"),
        ({"CALLSCRIBE_MODEL_DIR": "/models/whisper-small"}, "model_dir", "/models/whisper-small"),
        ({"CALLSCRIBE_PORT": "0"}, "port", 0),
    ],
)
def test_env_overrides(env, field, expected):
    assert getattr(Config.load(env=env), field) == expected


@pytest.mark.parametrize(
    "raw,expected",
    [("1", True), ("true", True), ("TRUE", True), ("yes", True), ("on", True), (" On ", True),
     ("0", False), ("false", False), ("False", False), ("no", False), ("off", False)],
)
@pytest.mark.parametrize("field", ["partials", "silero", "word_timestamps", "language_lock"])
def test_env_booleans(field, raw, expected):
    assert getattr(Config.load(env={f"CALLSCRIBE_{field.upper()}": raw}), field) is expected


def test_unrelated_env_ignored():
    cfg = Config.load(env={"HOME": "/root", "CALLSCRIBE_NOT_A_SETTING": "1", "BEAM_SIZE_FINAL": "9"})
    assert cfg == Config()


TOML_TOP_LEVEL = """
beam_size_final = 4
redis_url = "redis://cache:6379/0"
language = "zh"
language_candidates = ["zh"]
channel_map = ["agent", "customer"]
temperature_fallback = [0.4, 0.8]
partials = false
vad_hangover_ms = 700
vad_max_segment_s = 12
"""

TOML_TABLE = """
# other tools may keep their settings in the same file
[other_tool]
beam_size_final = 99

[callscribe]
beam_size_final = 4
redis_url = "redis://cache:6379/0"
language = "zh"
language_candidates = ["zh"]
channel_map = ["agent", "customer"]
temperature_fallback = [0.4, 0.8]
partials = false
vad_hangover_ms = 700
vad_max_segment_s = 12
"""


@pytest.mark.parametrize("text", [TOML_TOP_LEVEL, TOML_TABLE], ids=["top-level", "callscribe-table"])
def test_toml_file(tmp_path, text):
    cfg = Config.load(write_toml(tmp_path, text), env={})
    assert cfg.beam_size_final == 4
    assert cfg.redis_url == "redis://cache:6379/0"
    assert cfg.language == "zh"
    assert cfg.language_candidates == ("zh",)
    assert cfg.channel_map == ("agent", "customer")
    assert cfg.temperature_fallback == (0.4, 0.8)
    assert cfg.partials is False
    assert cfg.vad_hangover_ms == 700
    assert cfg.vad_max_segment_s == 12.0 and isinstance(cfg.vad_max_segment_s, float)
    assert cfg.beam_size_partial == 1  # untouched settings keep their defaults


def test_toml_path_from_env(tmp_path):
    path = write_toml(tmp_path, "beam_size_final = 2\n")
    assert Config.load(env={"CALLSCRIBE_CONFIG": str(path)}).beam_size_final == 2


def test_precedence_file_env_override(tmp_path):
    path = write_toml(tmp_path, "beam_size_final = 2\nbeam_size_partial = 2\nmax_calls = 7\n")
    env = {"CALLSCRIBE_BEAM_SIZE_FINAL": "3", "CALLSCRIBE_BEAM_SIZE_PARTIAL": "3"}
    cfg = Config.load(path, env=env, beam_size_final=4, max_calls=None)
    assert cfg.beam_size_final == 4  # explicit override beats env beats file
    assert cfg.beam_size_partial == 3  # env beats file
    assert cfg.max_calls == 7  # an override of None means "not given"


def test_overrides_are_coerced():
    cfg = Config.load(env={}, port="9000", partials="off", channel_map="agent,customer")
    assert cfg.port == 9000 and cfg.partials is False and cfg.channel_map == ("agent", "customer")


@pytest.mark.parametrize(
    "env,names",
    [
        ({"CALLSCRIBE_BEAM_SIZE_FINAL": "three"}, "CALLSCRIBE_BEAM_SIZE_FINAL"),
        ({"CALLSCRIBE_BEAM_SIZE_FINAL": "0"}, "beam_size"),
        ({"CALLSCRIBE_PARTIALS": "maybe"}, "CALLSCRIBE_PARTIALS"),
        ({"CALLSCRIBE_PARTIAL_INTERVAL_S": "soon"}, "CALLSCRIBE_PARTIAL_INTERVAL_S"),
        ({"CALLSCRIBE_PARTIAL_INTERVAL_S": "0"}, "partial_interval_s"),
        ({"CALLSCRIBE_TEMPERATURE_FALLBACK": "0.2,hot"}, "CALLSCRIBE_TEMPERATURE_FALLBACK"),
        ({"CALLSCRIBE_CHANNEL_MAP": "agent,caller"}, "channel_map"),
        ({"CALLSCRIBE_DEVICE": "tpu"}, "device"),
        ({"CALLSCRIBE_FINAL_WINDOW": "half"}, "final_window"),
        ({"CALLSCRIBE_VAD_AGGRESSIVENESS": "4"}, "vad_aggressiveness"),
        ({"CALLSCRIBE_VAD_FRAME_MS": "25"}, "vad_frame_ms"),
        ({"CALLSCRIBE_VAD_MAX_SEGMENT_S": "30"}, "vad_max_segment_s"),
        ({"CALLSCRIBE_VAD_MAX_SEGMENT_S": "1"}, "vad_max_segment_s"),
        ({"CALLSCRIBE_MAX_CALLS": "0"}, "max_calls"),
        ({"CALLSCRIBE_MAX_BATCH_SIZE": "0"}, "max_batch_size"),
        ({"CALLSCRIBE_PORT": "70000"}, "port"),
    ],
)
def test_bad_env_value_names_the_setting(env, names):
    with pytest.raises(ConfigError, match=names):
        Config.load(env=env)


@pytest.mark.parametrize(
    "text,names",
    [
        ("beam_size_final = \"many\"\n", "beam_size_final"),
        ("beam_size_final = [1, 2]\n", "beam_size_final"),
        ("port = {a = 1}\n", "port"),
        ("partials = 3\n", "partials"),
        ("device = \"gpu\"\n", "device"),
        ("[callscribe]\nchannel_map = [\"customer\", \"robot\"]\n", "channel_map"),
    ],
)
def test_bad_toml_value_names_the_setting(tmp_path, text, names):
    with pytest.raises(ConfigError, match=names):
        Config.load(write_toml(tmp_path, text), env={})


@pytest.mark.parametrize("text", ["beam_sise_final = 3\n", "[callscribe]\nredis = \"redis://x\"\n"])
def test_unknown_toml_key_rejected(tmp_path, text):
    with pytest.raises(ConfigError, match="unknown setting"):
        Config.load(write_toml(tmp_path, text), env={})


def test_unknown_override_rejected():
    with pytest.raises(ConfigError, match="unknown setting 'beam'"):
        Config.load(env={}, beam=3)


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml"):
        Config.load(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="callscribe.toml"):
        Config.load(write_toml(tmp_path, "beam_size_final = = 3\n"), env={})


def test_direct_construction_is_validated():
    with pytest.raises(ConfigError, match="vad_frame_ms"):
        Config(vad_frame_ms=15)
    with pytest.raises(ConfigError, match="channel_map"):
        Config(channel_map=("customer", "supervisor"))


def test_data_path_expands_user(monkeypatch):
    monkeypatch.setenv("HOME", "/home/tester")
    assert str(Config(data_dir="~/callscribe").data_path) == "/home/tester/callscribe"
