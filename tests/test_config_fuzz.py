"""callscribe.config under random input (hypothesis).

Whatever the environment, the TOML file or the overrides hold, ``Config.load`` either returns a Config or
raises ``ConfigError`` (never a pydantic ``ValidationError``, ``ValueError`` or ``TypeError``), and the
message names a setting and its environment variable. Random *valid* values always load, and read back as
given. Every test passes ``env={...}``: the real environment of the test run never leaks in.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import re
import string
import tempfile
import typing
from pathlib import Path

import annotated_types
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callscribe.config import Config
from callscribe.errors import ConfigError

FIELDS = tuple(Config.model_fields)
ENV_NAMES = tuple("CALLSCRIBE_" + name.upper() for name in FIELDS) + ("REDIS_URL",)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# "setting max_calls (CALLSCRIBE_MAX_CALLS): ..." or "... (REDIS_URL) in /path/file.toml: ..."
NAMED = re.compile(r"setting ([a-z0-9_]+) \((CALLSCRIBE_[A-Z0-9_]+|REDIS_URL)\)")


def assert_names_a_setting(exc: ConfigError) -> None:
    msg = str(exc)
    assert "\n" not in msg, msg
    found = NAMED.findall(msg)
    assert found and msg.startswith("setting "), msg
    for name, var in found:
        assert name in FIELDS, msg
        assert var in ("CALLSCRIBE_" + name.upper(), "REDIS_URL"), msg


def load_or_config_error(*args, **kwargs) -> Config | None:
    try:
        return Config.load(*args, **kwargs)
    except ConfigError as exc:
        assert_names_a_setting(exc)
        return None
    # anything else (pydantic ValidationError, ValueError, TypeError, ...) fails the test by propagating


# --- arbitrary input -------------------------------------------------------------------------------
# text as the environment holds it: no NUL (execve cannot pass one), no lone surrogates
env_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
    st.sampled_from(["", " ", "0", "-1", "1", "nan", "inf", "-inf", "1e309", "true", "off", "3.5", "0x10", "1_000",
                     "agent,agent", "customer,,agent", "mysql://x", "notaurl", "redis://", "unix://", ",", "9" * 400,
                     "zh,en", "udp,tls", "PCMU,PCMU", "::1/128", "10.0.0.0/33", "qa:x:0123456789abcdef"]),
)


@FUZZ
@given(st.dictionaries(st.sampled_from(ENV_NAMES), env_text, max_size=6))
def test_random_environment_gives_a_config_or_a_config_error(env):
    load_or_config_error(env=env)


toml_scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.dates(),
    st.times(),
)
toml_value = st.one_of(
    toml_scalar,
    st.lists(toml_scalar, max_size=4),
    st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), toml_scalar, max_size=2),
)


def toml_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):  # a TOML basic string: JSON's escapes, plus DEL, which TOML wants escaped
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_literal(v)}" for k, v in value.items()) + "}"
    raise AssertionError(type(value))


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), toml_value, max_size=5), st.booleans())
def test_random_toml_values_give_a_config_or_a_config_error(values, in_table):
    text = ("[callscribe]\n" if in_table else "") + "".join(f"{k} = {toml_literal(v)}\n" for k, v in values.items())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "callscribe.toml"
        path.write_text(text, encoding="utf-8")
        try:
            Config.load(path, env={})
        except ConfigError as exc:
            assert_names_a_setting(exc)
            assert str(path) in str(exc)  # a value from the file: the message says which file


python_value = st.one_of(toml_value, st.none(), st.binary(max_size=4), st.tuples(st.integers(), st.text(max_size=3)),
                         st.builds(object), st.decimals(allow_nan=True), st.fractions())


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), python_value, max_size=4))
def test_random_overrides_give_a_config_or_a_config_error(overrides):
    load_or_config_error(env={}, **overrides)


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), python_value, min_size=1, max_size=3))
def test_random_replace_gives_a_config_or_a_config_error(changes):
    try:
        Config().replace(**changes)
    except ConfigError as exc:
        assert_names_a_setting(exc)


# --- valid input -----------------------------------------------------------------------------------
def _bounds(name: str) -> dict:
    """ge/gt/le/lt of a numeric field, from its pydantic metadata."""
    out = {}
    for m in Config.model_fields[name].metadata:
        for key in ("ge", "gt", "le", "lt"):
            if isinstance(m, getattr(annotated_types, key.capitalize())):
                out[key] = getattr(m, key)
    return out


def _number(name: str, kind: type):
    b = _bounds(name)
    if kind is int:
        low = b.get("ge", b.get("gt", -(10**9) - 1) + 1)
        high = b.get("le", b.get("lt", 10**9 + 1) - 1)
        return st.integers(min_value=low, max_value=high)
    low = b.get("ge", b.get("gt", -1e9))
    high = b.get("le", b.get("lt", 1e9))
    return st.floats(min_value=low, max_value=high, exclude_min="gt" in b, exclude_max="lt" in b,
                     allow_nan=False, allow_infinity=False)


def _words(alphabet=string.ascii_letters + string.digits + "._-/:@*", min_size=1, max_size=12):
    return st.text(alphabet, min_size=min_size, max_size=max_size)


CODES = ["zh", "en", "yue", "ja", "ko", "fr", "de", "es", "haw", "ar"]
LISTS = {
    "language_candidates": st.lists(st.sampled_from(CODES), unique=True, max_size=4),
    "temperature_fallback": st.lists(st.floats(0, 1), unique=True, max_size=5),
    "channel_map": st.lists(st.sampled_from(["customer", "agent", "mixed"]), unique=True, min_size=1),
    "sip_transports": st.lists(st.sampled_from(["udp", "tcp", "tls"]), unique=True, min_size=1),
    "sip_codecs": st.lists(st.sampled_from(["PCMU", "PCMA", "G722", "OPUS"]), unique=True, min_size=1),
    "siprec_agent_patterns": st.lists(_words(), unique=True, max_size=3),
    "siprec_customer_patterns": st.lists(_words(), unique=True, max_size=3),
    "rule_packs": st.lists(_words(), unique=True, max_size=3),
    "assist_packs": st.lists(_words(), unique=True, max_size=3),
    "recording_optout_queues": st.lists(_words(), unique=True, max_size=3),
    "sip_allow": st.lists(st.one_of(st.ip_addresses().map(str),
                                    st.ip_addresses(v=4).map(lambda a: f"{a}/{int(str(a).split('.')[0]) % 33}")),
                          unique_by=lambda s: ipaddress.ip_network(s, strict=False), max_size=4),
    "api_tokens": st.lists(st.tuples(st.sampled_from(["agent", "supervisor", "qa", "admin", "ingest"]),
                                     _words(string.ascii_letters + string.digits + "-_.", max_size=6),
                                     st.text(string.ascii_letters + string.digits, min_size=16, max_size=24)),
                           unique_by=lambda t: t[2], max_size=3).map(lambda ts: [":".join(t) for t in ts]),
    "webhooks": st.lists(st.tuples(st.sampled_from(["ticket", "alert", "report", "*"]),
                                   st.sampled_from(["http://127.0.0.1:9/h", "https://crm.example.com/hooks/cs?t=x"])),
                         unique=True, max_size=3).map(lambda ts: [f"{k}={u}" for k, u in ts]),
}
TEXT = {
    "redis_url": st.sampled_from(["", "redis://localhost:6379/0", "rediss://u:p@cache.example:6380", "unix:///run/r.sock"]),
    "store_url": st.sampled_from(["", "transcripts.sqlite3", "/srv/x.db", "postgresql://cs@db/calls", "postgres://db:5432/c",
                                  "sqlite:///rel.db"]),
    "auth_secret": st.one_of(st.just(""), st.text(string.ascii_letters + string.digits, min_size=32, max_size=64)),
    "webhook_secret": st.one_of(st.just(""), st.text(string.ascii_letters + string.digits, min_size=32, max_size=64)),
    "language": st.sampled_from(["auto", *CODES]),
    "key_prefix": _words(max_size=30),
    "recording_store": st.sampled_from(["", "s3+http://k:s@127.0.0.1:8333/rec", "s3+https://AK:SK@s3.example.com/b/p?region=eu-west-1"]),
    "host": st.sampled_from(["127.0.0.1", "0.0.0.0", "::", "localhost"]),
    "web_host": st.sampled_from(["127.0.0.1", "0.0.0.0", "::", "localhost"]),
    "report_timezone": st.sampled_from(["", "Asia/Shanghai", "UTC", "America/New_York", "Asia/Kolkata"]),
}
# free text: printable, surrounding blanks are stripped on load
free_text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20)


def _strategy(name: str):
    info = Config.model_fields[name]
    kind = info.annotation
    if name in LISTS:
        return LISTS[name]
    if name == "vad_frame_ms":
        return st.sampled_from([10, 20, 30])
    if name in TEXT:
        return TEXT[name]
    if kind is bool:
        return st.booleans()
    if kind in (int, float):
        return _number(name, kind)
    if typing.get_origin(kind) is typing.Literal:
        return st.sampled_from(typing.get_args(kind))
    required = name in ("data_dir", "cache_dir", "model", "analytics_group", "store_group", "sip_user_agent")
    if name in ("sip_host", "sip_advertised_address"):
        return _words(min_size=0)
    return free_text.filter(lambda s: bool(s.strip()) or not required)


def test_every_field_has_a_valid_strategy():
    for name in FIELDS:
        assert _strategy(name) is not None, name


def _repair(values: dict) -> dict:
    """The rules between fields, so a random pick of valid values is valid together."""
    v = {**Config().model_dump(), **values}
    if "tls" in v["sip_transports"]:
        for name in ("sip_tls_cert", "sip_tls_key"):
            if not str(values.get(name, "")).strip():
                values[name] = name.removeprefix("sip_tls_") + ".pem"
        if "tcp" in v["sip_transports"] and v["sip_port"] and v["sip_port"] == v["sip_tls_port"]:
            values["sip_tls_port"] = 0
    low, high = v["rtp_port_min"], v["rtp_port_max"]
    if not high - low >= 3:
        low = min(low, high, 65532)
        values["rtp_port_min"], values["rtp_port_max"] = low, max(high, low + 3)
    if v["vad_start_ms"] > v["vad_start_window_ms"]:
        values["vad_start_window_ms"] = v["vad_start_ms"]
    if v["vad_min_speech_ms"] > v["vad_max_segment_s"] * 1000:
        values["vad_min_speech_ms"] = int(v["vad_max_segment_s"] * 1000)
    if v["web"] and v["port"] and v["port"] == v["web_port"] and v["host"] == v["web_host"]:
        values["web_port"] = 0
    return values


def _env_text(value, rnd) -> str:
    if isinstance(value, bool):
        return rnd.choice(["true", "1", "yes", "on", "TRUE"] if value else ["false", "0", "no", "off", "False"])
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ",".join(_env_text(x, rnd) for x in value)
    return str(value)


def _expected(name: str, value):
    if isinstance(value, list):
        return tuple(_expected(name, x) for x in value)
    if isinstance(value, str):
        return value.strip()
    return value


@st.composite
def valid_values(draw):
    names = draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=12))
    return _repair({name: draw(_strategy(name)) for name in names})


@FUZZ
@given(valid_values(), st.randoms(use_true_random=False))
def test_random_valid_environment_loads(values, rnd):
    env = {"CALLSCRIBE_" + k.upper(): _env_text(v, rnd) for k, v in values.items()}
    cfg = Config.load(env=env)
    for name, value in values.items():
        assert getattr(cfg, name) == _expected(name, value), name


@FUZZ
@given(valid_values())
def test_random_valid_toml_loads(values):
    text = "".join(f"{k} = {toml_literal(v)}\n" for k, v in values.items())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_text(text, encoding="utf-8")
        cfg = Config.load(path, env={})
    for name, value in values.items():
        assert getattr(cfg, name) == _expected(name, value), name


@FUZZ
@given(valid_values())
def test_random_valid_overrides_load_and_replace(values):
    cfg = Config.load(env={}, **values)
    assert cfg == Config().replace(**values)
    assert hash(cfg) == hash(Config(**values))
    for name, value in values.items():
        assert getattr(cfg, name) == _expected(name, value), name


FLOAT_FIELDS = [n for n in FIELDS if Config.model_fields[n].annotation is float]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "NaN", "inf", "-Infinity", "1e309"])
@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_no_float_setting_takes_nan_or_inf(name, value):
    with pytest.raises(ConfigError, match=rf"^setting {name} \(CALLSCRIBE_{name.upper()}\): must be a finite number"):
        Config.load(env={}, **{name: value})
    if isinstance(value, str):
        with pytest.raises(ConfigError, match=rf"^setting {name} \(CALLSCRIBE_{name.upper()}\): must be a finite number"):
            Config.load(env={f"CALLSCRIBE_{name.upper()}": value})


def test_float_fields_exist():
    assert len(FLOAT_FIELDS) > 20
