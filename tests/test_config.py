"""callscribe.config: defaults, TOML file, environment, overrides, and errors that name the setting.

Every test passes ``env={...}`` so the real environment of the test run never leaks in.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys

import pytest

from callscribe.config import Config, default_data_dir, ensure_data_dir
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


def test_unrelated_env_ignored(caplog):
    with caplog.at_level(logging.WARNING, logger="callscribe.config"):
        cfg = Config.load(env={"HOME": "/root", "CALLSCRIBE_NOT_A_SETTING": "1", "BEAM_SIZE_FINAL": "9"})
    assert cfg == Config()
    # an unknown CALLSCRIBE_ variable is not an error, but it is not silent either
    assert [r.getMessage() for r in caplog.records] == ["CALLSCRIBE_NOT_A_SETTING is not a callscribe setting and is ignored"]


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


# --- every field is constrained: the bugs seen before pydantic-settings ---------------------------------
@pytest.mark.parametrize(
    "env,message",
    [
        ({"CALLSCRIBE_NO_SPEECH_THRESHOLD": "nan"},
         "setting no_speech_threshold (CALLSCRIBE_NO_SPEECH_THRESHOLD): must be a finite number"),
        ({"CALLSCRIBE_SILENCE_ALERT_S": "inf"}, "setting silence_alert_s (CALLSCRIBE_SILENCE_ALERT_S): must be a finite number"),
        ({"CALLSCRIBE_TEMPERATURE_FALLBACK": "0.2,nan"},
         "setting temperature_fallback (CALLSCRIBE_TEMPERATURE_FALLBACK): entry 2: must be a finite number"),
        ({"CALLSCRIBE_MAX_CALLS": "-1"}, "setting max_calls (CALLSCRIBE_MAX_CALLS): must be >= 1"),
        ({"CALLSCRIBE_MAX_CALLS": "0"}, "setting max_calls (CALLSCRIBE_MAX_CALLS): must be >= 1"),
        ({"CALLSCRIBE_IDLE_TIMEOUT_S": "0"}, "setting idle_timeout_s (CALLSCRIBE_IDLE_TIMEOUT_S): must be > 0"),
        ({"CALLSCRIBE_CALL_STREAM_TTL_S": "-1"}, "setting call_stream_ttl_s (CALLSCRIBE_CALL_STREAM_TTL_S): must be >= 1"),
        ({"CALLSCRIBE_WEB_PORT": "-1"}, "setting web_port (CALLSCRIBE_WEB_PORT): must be >= 0"),
        ({"CALLSCRIBE_SIP_PORT": "65536"}, "setting sip_port (CALLSCRIBE_SIP_PORT): must be <= 65535"),
        ({"CALLSCRIBE_CHANNEL_MAP": "agent,agent"}, "setting channel_map (CALLSCRIBE_CHANNEL_MAP): lists 'agent' twice"),
        ({"CALLSCRIBE_CHANNEL_MAP": "mixed,mixed"}, "setting channel_map (CALLSCRIBE_CHANNEL_MAP): lists 'mixed' twice"),
        ({"CALLSCRIBE_CHANNEL_MAP": ""}, "setting channel_map (CALLSCRIBE_CHANNEL_MAP): must not be empty"),
        ({"CALLSCRIBE_STORE_URL": "mysql://x"}, "setting store_url (CALLSCRIBE_STORE_URL): must be empty, a SQLite file path"),
        ({"CALLSCRIBE_REDIS_URL": "mysql://x"}, "setting redis_url (CALLSCRIBE_REDIS_URL): must be a redis://, rediss://"),
        ({"CALLSCRIBE_REDIS_URL": "notaurl"}, "setting redis_url (CALLSCRIBE_REDIS_URL): must be a redis://"),
        ({"REDIS_URL": "notaurl"}, "setting redis_url (REDIS_URL): must be a redis://"),
        ({"CALLSCRIBE_REDIS_URL": "redis://host:99999/0"}, "setting redis_url (CALLSCRIBE_REDIS_URL): not a valid URL"),
        ({"CALLSCRIBE_SIP_TRANSPORTS": "udp,udp"}, "setting sip_transports (CALLSCRIBE_SIP_TRANSPORTS): lists 'udp' twice"),
        ({"CALLSCRIBE_SIP_CODECS": "PCMU,GSM"}, "setting sip_codecs (CALLSCRIBE_SIP_CODECS): entry 2: must be 'PCMU', 'PCMA', 'G722' or 'OPUS'"),
        ({"CALLSCRIBE_LANGUAGE": "xx"}, "setting language (CALLSCRIBE_LANGUAGE): 'xx' is not a Whisper language code"),
        ({"CALLSCRIBE_LANGUAGE_CANDIDATES": "zh,en,zh"}, "setting language_candidates (CALLSCRIBE_LANGUAGE_CANDIDATES): lists 'zh' twice"),
        ({"CALLSCRIBE_COMPUTE_TYPE": "int4"}, "setting compute_type (CALLSCRIBE_COMPUTE_TYPE): must be 'auto', "),
        ({"CALLSCRIBE_KEY_PREFIX": "a b"}, "setting key_prefix (CALLSCRIBE_KEY_PREFIX): must not contain spaces"),
        ({"CALLSCRIBE_SIP_USER_AGENT": "x\r\nInjected: 1"}, "setting sip_user_agent (CALLSCRIBE_SIP_USER_AGENT): must not contain control"),
        ({"CALLSCRIBE_AUTH_SECRET": "hunter2"}, "setting auth_secret (CALLSCRIBE_AUTH_SECRET): must be at least 32 characters"),
        ({"CALLSCRIBE_PORT": "true"}, "setting port (CALLSCRIBE_PORT): must be a whole number"),
        ({"CALLSCRIBE_VAD_START_MS": "500"}, "setting vad_start_ms (CALLSCRIBE_VAD_START_MS): must be <= vad_start_window_ms"),
        ({"CALLSCRIBE_WEB_PORT": "8765"}, "setting web_port (CALLSCRIBE_WEB_PORT): must differ from port (8765)"),
        ({"CALLSCRIBE_SIP_TRANSPORTS": "tcp,tls", "CALLSCRIBE_SIP_TLS_CERT": "c", "CALLSCRIBE_SIP_TLS_KEY": "k",
          "CALLSCRIBE_SIP_TLS_PORT": "5060"}, "setting sip_tls_port (CALLSCRIBE_SIP_TLS_PORT): must differ from sip_port"),
        ({"CALLSCRIBE_RTP_PORT_MIN": "29998"}, "setting rtp_port_max (CALLSCRIBE_RTP_PORT_MAX): the RTP range must hold"),
    ],
)
def test_seen_bugs_are_one_error_naming_the_setting(env, message):
    with pytest.raises(ConfigError) as info:
        Config.load(env=env)
    assert str(info.value).startswith(message), str(info.value)


def test_store_url_accepts_paths_and_postgres():
    for url in ("", "transcripts.sqlite3", "/srv/callscribe/t.db", "notaurl", "postgresql://cs@db/calls",
                "postgres://db:5432/calls", "sqlite:///t.db"):
        assert Config.load(env={"CALLSCRIBE_STORE_URL": url}).store_url == url
    for url in ("", "redis://a:1/0", "rediss://u:p@a:6380", "unix:///run/redis.sock"):
        assert Config.load(env={"CALLSCRIBE_REDIS_URL": url}).redis_url == url


def test_secrets_are_not_echoed():
    with pytest.raises(ConfigError) as info:
        Config.load(env={"CALLSCRIBE_API_TOKENS": "qa:x:sup3rs3cr3t"})
    assert "sup3rs3cr3t" not in str(info.value) and "api_tokens" in str(info.value)
    cfg = Config(auth_secret="s" * 40, api_tokens=("qa:x:0123456789abcdef",), redis_url="redis://:pw@h:1/0")
    assert "s" * 40 not in repr(cfg) and "0123456789abcdef" not in repr(cfg) and ":pw@" not in repr(cfg)


def test_errors_name_the_file_for_a_file_value(tmp_path):
    path = write_toml(tmp_path, "[callscribe]\nmax_calls = 0\n")
    with pytest.raises(ConfigError) as info:
        Config.load(path, env={})
    assert str(info.value) == f"setting max_calls (CALLSCRIBE_MAX_CALLS) in {path}: must be >= 1"
    # the environment wins, so an error in its value names the variable alone
    with pytest.raises(ConfigError) as info:
        Config.load(path, env={"CALLSCRIBE_MAX_CALLS": "-5"})
    assert str(info.value) == "setting max_calls (CALLSCRIBE_MAX_CALLS): must be >= 1"


def test_several_errors_in_one_message():
    with pytest.raises(ConfigError) as info:
        Config.load(env={"CALLSCRIBE_MAX_CALLS": "0", "CALLSCRIBE_PORT": "x"})
    assert "setting max_calls (CALLSCRIBE_MAX_CALLS)" in str(info.value) and "setting port (CALLSCRIBE_PORT)" in str(info.value)


def test_unknown_env_variable_warns_with_the_closest_setting(caplog):
    with caplog.at_level(logging.WARNING, logger="callscribe.config"):
        cfg = Config.load(env={"CALLSCRIBE_MAX_CALL": "3", "CALLSCRIBE_CONFIG": "", "CALLSCRIBE_REQUIRE_POSTGRES": "1"})
    assert cfg.max_calls == 200
    assert [r.getMessage() for r in caplog.records] == [
        "CALLSCRIBE_MAX_CALL is not a callscribe setting and is ignored; did you mean CALLSCRIBE_MAX_CALLS (setting max_calls)?"]


def test_unknown_toml_key_suggests_the_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown setting 'beam_sise_final' \(did you mean 'beam_size_final'\?\)"):
        Config.load(write_toml(tmp_path, "beam_sise_final = 3\n"), env={})


def test_toml_callscribe_must_be_a_table(tmp_path):
    with pytest.raises(ConfigError, match="must be a table"):
        Config.load(write_toml(tmp_path, "callscribe = 3\n"), env={})


def test_replace_validates():
    with pytest.raises(ConfigError, match="setting max_calls"):
        Config().replace(max_calls=0)
    with pytest.raises(ConfigError, match="unknown setting 'max_call'"):
        Config().replace(max_call=3)


def test_config_is_hashable_and_compares_by_value():
    assert hash(Config()) == hash(Config()) and Config(max_calls=3) == Config().replace(max_calls=3)
    assert len({Config(), Config(), Config(max_calls=3)}) == 2


# --- new settings --------------------------------------------------------------------------------------
def test_new_ingest_and_sip_settings():
    cfg = Config.load(env={})
    assert cfg.ingest_auth is True and cfg.source_max_calls == 0
    assert (cfg.http_header_timeout_s, cfg.http_keepalive_s, cfg.http_max_connections) == (10.0, 5.0, 1000)
    assert cfg.sip_allow == ("127.0.0.0/8", "::1/128") and cfg.sip_recv_buffer_bytes == 4_194_304
    cfg = Config.load(env={"CALLSCRIBE_INGEST_AUTH": "off", "CALLSCRIBE_SIP_ALLOW": "10.1.0.0/16, 192.0.2.7 ,2001:db8::/32",
                           "CALLSCRIBE_SIP_RECV_BUFFER_BYTES": "65536", "CALLSCRIBE_SOURCE_MAX_CALLS": "7"})
    assert cfg.ingest_auth is False and cfg.sip_allow == ("10.1.0.0/16", "192.0.2.7", "2001:db8::/32")
    assert cfg.sip_recv_buffer_bytes == 65536 and cfg.source_quota == 7
    assert Config.load(env={"CALLSCRIBE_SIP_ALLOW": ""}).sip_allow == ()
    for name, value, why in [("sip_allow", "10.0.0.0/8,example.com", "entry 2: 'example.com' is not an IP address"),
                             ("sip_allow", "10.0.0.300", "entry 1:"), ("sip_allow", "192.0.2.1,192.0.2.1/32", "repeats"),
                             ("sip_recv_buffer_bytes", "65535", "must be >= 65536"), ("source_max_calls", "-1", "must be >= 0"),
                             ("http_header_timeout_s", "0", "must be > 0"), ("http_keepalive_s", "nan", "finite"),
                             ("http_max_connections", "0", "must be >= 1"), ("ingest_auth", "sometimes", "true or false")]:
        with pytest.raises(ConfigError, match=f"setting {name} \\(CALLSCRIBE_{name.upper()}\\): .*{why}"):
            Config.load(env={f"CALLSCRIBE_{name.upper()}": value})


@pytest.mark.parametrize("max_calls,source_max_calls,quota", [(200, 0, 160), (1, 0, 1), (2, 0, 2), (3, 0, 3), (10, 0, 8),
                                                               (11, 0, 9), (10, 4, 4), (10, 50, 10)])
def test_source_quota(max_calls, source_max_calls, quota):
    assert Config(max_calls=max_calls, source_max_calls=source_max_calls).source_quota == quota


def test_ingest_role_in_api_tokens():
    assert Config(api_tokens=("ingest:sbc-1:0123456789abcdef",)).api_tokens == ("ingest:sbc-1:0123456789abcdef",)
    with pytest.raises(ConfigError, match="api_tokens .*ingest"):
        Config(api_tokens=("robot:x:0123456789abcdef",))
    with pytest.raises(ConfigError, match="entry 2: repeats the token"):
        Config(api_tokens=("qa:a:0123456789abcdef", "agent:b:0123456789abcdef"))


def test_integration_role_in_api_tokens():
    """A ticketing system's static token (it reports ticket status back: gateway/assist/status.py)."""
    from callscribe.gateway.web.auth import TokenAuthority

    cfg = Config(api_tokens=("integration:crm:0123456789abcdef",))
    who = TokenAuthority(b"s" * 32, cfg.api_tokens).verify("0123456789abcdef")
    assert (who.role, who.sub) == ("integration", "crm")


def test_every_field_has_a_docstring():
    for name, info in Config.model_fields.items():
        assert info.description and info.description.strip(), name


# --- data_dir: a per-user absolute default; created (0700) only by the commands that keep data -----------
def test_data_dir_defaults_to_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Config.load(env={}).data_dir == str(tmp_path / "xdg" / "callscribe")
    assert Config().data_path == tmp_path / "xdg" / "callscribe"
    assert not (tmp_path / "xdg").exists()  # data_path creates nothing


@pytest.mark.parametrize("xdg", [None, "", "relative/dir"])  # unset, empty or relative: ignored (XDG spec)
def test_data_dir_defaults_to_local_share(monkeypatch, xdg):
    monkeypatch.setenv("HOME", "/home/tester")
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    assert default_data_dir() == "/home/tester/.local/share/callscribe"
    assert Config().data_dir == "/home/tester/.local/share/callscribe" and os.path.isabs(Config().data_dir)


def test_data_dir_is_the_same_from_any_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    here = Config.load(env={}).data_path
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert Config.load(env={}).data_path == here


def test_ensure_data_dir_creates_a_private_directory(tmp_path):
    cfg = Config(data_dir=str(tmp_path / "a" / "b"))
    assert not cfg.data_path.exists()
    assert ensure_data_dir(cfg) == tmp_path / "a" / "b"
    assert cfg.data_path.is_dir() and cfg.data_path.stat().st_mode & 0o777 == 0o700
    assert list(cfg.data_path.iterdir()) == []  # its write check leaves nothing behind
    ensure_data_dir(cfg)  # again: fine


def test_ensure_data_dir_unwritable_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("x")
    cfg = Config(data_dir=str(tmp_path / "file" / "sub"))
    with pytest.raises(ConfigError) as info:
        ensure_data_dir(cfg)
    assert str(info.value) == f"setting data_dir (CALLSCRIBE_DATA_DIR): {tmp_path / 'file' / 'sub'} is not writable: Not a directory"


@pytest.mark.parametrize("command", [["token", "--role", "qa", "--sub", "x"], ["gateway"], ["serve"], ["demo"]])
def test_cli_unwritable_data_dir_is_one_line_and_exit_2(tmp_path, command):
    (tmp_path / "file").write_text("x")
    env = {**os.environ, "CALLSCRIBE_DATA_DIR": str(tmp_path / "file" / "sub"), "REDIS_URL": "redis://127.0.0.1:9/0"}
    env.pop("CALLSCRIBE_AUTH_SECRET", None)
    env.pop("CALLSCRIBE_CONFIG", None)
    proc = subprocess.run([sys.executable, "-m", "callscribe.cli", *command], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"callscribe: setting data_dir (CALLSCRIBE_DATA_DIR): {tmp_path / 'file' / 'sub'} is not writable: Not a directory"]
    assert "Traceback" not in proc.stderr


def test_cli_token_uses_the_same_secret_from_any_directory(tmp_path):
    from callscribe.gateway.web import TokenAuthority

    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    for name in ("CALLSCRIBE_DATA_DIR", "CALLSCRIBE_AUTH_SECRET", "CALLSCRIBE_CONFIG"):
        env.pop(name, None)
    tokens = []
    for cwd in ("a", "b"):
        (tmp_path / cwd).mkdir()
        proc = subprocess.run([sys.executable, "-m", "callscribe.cli", "token", "--role", "qa", "--sub", "q"], cwd=tmp_path / cwd,
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        tokens.append(proc.stdout.strip())
    secret_dir = tmp_path / "xdg" / "callscribe"
    assert secret_dir.stat().st_mode & 0o777 == 0o700 and (secret_dir / "auth.secret").exists()
    authority = TokenAuthority.from_config(Config(data_dir=str(secret_dir)))
    assert [authority.verify(t).sub for t in tokens] == ["q", "q"]
    assert not (tmp_path / "a" / "var").exists() and not (tmp_path / "b" / "var").exists()
