"""All settings in one frozen object, read once at start-up.

Sources, later ones win: built-in defaults < TOML file (CALLSCRIBE_CONFIG or ``--config``) < environment
(`CALLSCRIBE_<FIELD>` in upper case, plus plain `REDIS_URL`) < explicit overrides (CLI flags). Every value is
validated here, with errors that name the setting, so no other module reads ``os.environ``.

:class:`Config` is a pydantic-settings ``BaseSettings``. Every field carries a constraint (finite numbers,
ranges, enumerations, URL schemes, distinct list entries) and rules between fields are checked after them;
any failure is one :class:`~callscribe.errors.ConfigError` whose message names the setting and its
environment variable, e.g. ``setting max_calls (CALLSCRIBE_MAX_CALLS): must be >= 1``. ``Config(**values)``
validates the same way but reads nothing: only :meth:`Config.load` looks at the file and the environment.
An unknown key in the file or an unknown override is an error; an unknown ``CALLSCRIBE_`` variable is
logged as a warning naming the closest setting (it may belong to a newer or older version).
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import ipaddress
import logging
import os
import string
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from .errors import ConfigError

log = logging.getLogger(__name__)

ENV_PREFIX = "CALLSCRIBE_"
# CALLSCRIBE_ variables that are not settings: the config file, the token `callscribe stream` sends, and
# switches the test suite and tools read
_NOT_SETTINGS = frozenset({"CONFIG", "TOKEN", "ARTIFACTS", "CHROMIUM", "REQUIRE_BROWSER", "REQUIRE_POSTGRES", "REQUIRE_S3"})
_CHANNELS = ("customer", "agent", "mixed")
_ROLES = ("agent", "supervisor", "qa", "admin", "ingest", "integration")
# Whisper's languages (faster_whisper.tokenizer._LANGUAGE_CODES; yue came with large-v3)
_WHISPER_LANGUAGES = frozenset(
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi hr ht hu "
    "hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl ps pt ro "
    "ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh yue".split()
)


def default_data_dir() -> str:
    """The per-user data directory: ``$XDG_DATA_HOME/callscribe``, else ``~/.local/share/callscribe``.

    Absolute, so every command (``serve``, ``token``, ``gateway``) finds the same secret and data wherever it
    is started. Read from the process environment when a Config is built."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative value is ignored
        return str(Path(xdg) / "callscribe")
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no HOME and no passwd entry
        home = Path()
    if not home.is_absolute():  # still per user, still absolute
        return str(Path(tempfile.gettempdir()) / f"callscribe-{os.getuid()}")
    return str(home / ".local" / "share" / "callscribe")


# --- constraints ---------------------------------------------------------------------------------
def _invalid(why: str, setting: str | None = None) -> PydanticCustomError:
    """An error pydantic reports at the field (or, with ``setting``, for that setting from a model check)."""
    return PydanticCustomError("callscribe", "{why}", {"why": why, **({"setting": setting} if setting else {})})


def _no_bool(v: Any) -> Any:
    if isinstance(v, bool):  # TOML true where a number belongs (pydantic would read it as 1)
        raise _invalid("must be a number, not true/false")
    return v


def _text(v: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise _invalid("must not contain control characters (newline, tab, NUL, ...)")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the environment (surrogate escapes)
        raise _invalid("must be valid UTF-8 text") from None
    return v


def _no_space(v: str) -> str:
    if any(c.isspace() for c in v):
        raise _invalid("must not contain spaces")
    return v


def _split(v: Any) -> Any:
    """A list from TOML, or a comma-separated string (environment, CLI); blank entries are dropped."""
    if isinstance(v, str):
        return tuple(x.strip() for x in v.split(",") if x.strip())
    if isinstance(v, (list, tuple)):
        return tuple(x.strip() if isinstance(x, str) else x for x in v if not (isinstance(x, str) and not x.strip()))
    return v


def _distinct(v: tuple) -> tuple:
    seen: set = set()
    for x in v:
        if x in seen:
            raise _invalid(f"lists {x!r} twice")
        seen.add(x)
    return v


def _frame_ms(v: int) -> int:
    if v not in (10, 20, 30):
        raise _invalid("must be 10, 20 or 30")
    return v


def _language_code(v: str) -> str:
    code = v.lower()
    if code not in _WHISPER_LANGUAGES:
        raise _invalid(f"{v!r} is not a Whisper language code (zh, en, yue, ja, ...)")
    return code


def _language(v: str) -> str:
    return "auto" if v.lower() == "auto" else _language_code(v)


def _scheme(v: str) -> str:
    return v.partition("://")[0].lower() if "://" in v else ""


def _check_url(v: str) -> None:
    try:
        urlsplit(v).port  # noqa: B018 - raises on a port that is not a number in 0..65535
    except ValueError as exc:
        raise _invalid(f"not a valid URL ({exc})") from None


def _redis_url(v: str) -> str:
    if not v:
        return v
    scheme = _scheme(v)
    if scheme not in ("redis", "rediss", "unix"):
        got = f"scheme {scheme!r}" if scheme else "no scheme"
        raise _invalid(f"must be a redis://, rediss:// or unix:// URL, or empty for the bundled server; got {got}")
    _check_url(v)
    if scheme == "unix" and not urlsplit(v).path:
        raise _invalid("a unix:// URL needs the socket path, e.g. unix:///run/redis/redis.sock")
    return v


def _store_url(v: str) -> str:
    scheme = _scheme(v)
    if not scheme:  # empty ({data_dir}/transcripts.sqlite3), a SQLite file path, or :memory:
        return v
    if scheme not in ("postgresql", "postgres", "sqlite"):
        raise _invalid(f"must be empty, a SQLite file path or a postgresql:// (postgres://) URL; got scheme {scheme!r}")
    _check_url(v)
    return v


def _secret(v: str) -> str:
    if v and len(v) < 32:  # HS256 wants a key of at least its 256-bit output (RFC 7518 section 3.2)
        raise _invalid(f"must be at least 32 characters (got {len(v)}), or empty to generate one")
    return v


def _network(v: str) -> str:
    try:
        ipaddress.ip_network(v, strict=False)
    except ValueError:
        raise _invalid(f"{v!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8, 2001:db8::/32)") from None
    return v


def _distinct_networks(v: tuple[str, ...]) -> tuple[str, ...]:
    seen: dict = {}
    for x in v:
        net = ipaddress.ip_network(x, strict=False)
        if net in seen:
            raise _invalid(f"{x!r} repeats {seen[net]!r}")
        seen[net] = x
    return v


def _api_tokens(v: tuple[str, ...]) -> tuple[str, ...]:
    tokens: set[str] = set()
    for i, entry in enumerate(v, 1):
        role, _, rest = entry.partition(":")
        subject, sep, token = rest.partition(":")
        if role not in _ROLES or not sep or not subject.strip() or len(token) < 16:
            raise _invalid(f"entry {i}: each entry is role:subject:token with a role of {', '.join(_ROLES)}, "
                           "a subject, and a token of 16+ characters")
        if token in tokens:
            raise _invalid(f"entry {i}: repeats the token of an earlier entry")
        tokens.add(token)
    return v


_WEBHOOK_KIND = frozenset(string.ascii_letters + string.digits + "._-")


def _webhook(v: str) -> str:
    """One ``kind=url`` entry of ``webhooks`` (gateway/webhooks): an output kind, or ``*`` for every kind."""
    kind, sep, url = v.partition("=")
    if not sep or not kind or not url:
        raise _invalid("each entry is kind=url, e.g. ticket=https://crm.example.com/hooks/callscribe (kind * = every kind)")
    if kind != "*" and (len(kind) > 64 or not set(kind) <= _WEBHOOK_KIND):
        raise _invalid(f"kind {kind[:64]!r} must be * or up to 64 letters, digits, '.', '_' or '-'")
    scheme = _scheme(url)
    if scheme not in ("http", "https"):  # the URL itself may hold a token: never echo it
        raise _invalid(f"the {kind} URL must be http:// or https://; got {f'scheme {scheme!r}' if scheme else 'no scheme'}")
    _check_url(url)
    if not urlsplit(url).hostname:
        raise _invalid(f"the {kind} URL needs a host")
    return v


def _recording_store(v: str) -> str:
    """Empty (files under recording_dir) or an S3-compatible store URL; never echoes it (it holds a secret)."""
    if not v:
        return v
    scheme = _scheme(v)
    if scheme not in ("s3+http", "s3+https"):
        raise _invalid("must be empty (local files) or s3+http(s)://ACCESS_KEY:SECRET_KEY@host[:port]/bucket[/prefix]"
                       f"; got {f'scheme {scheme!r}' if scheme else 'no scheme'}")
    _check_url(v)
    u = urlsplit(v)
    if not u.hostname or not (u.username and u.password) or not u.path.strip("/"):
        raise _invalid("an S3 store URL needs ACCESS_KEY:SECRET_KEY@, a host and a bucket: s3+http://KEY:SECRET@host:8333/bucket")
    return v


def _distinct_webhooks(v: tuple[str, ...]) -> tuple[str, ...]:
    """Like ``_distinct``, without echoing the URL (it may carry a token)."""
    for i, x in enumerate(v):
        if x in v[:i]:
            raise _invalid(f"entry {i + 1} repeats entry {v.index(x) + 1}")
    return v


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]  # finite: allow_inf_nan=False below
Text = Annotated[str, AfterValidator(_text)]
NonEmpty = Annotated[Text, Field(min_length=1)]
Word = Annotated[NonEmpty, AfterValidator(_no_space)]
Address = Annotated[Text, AfterValidator(_no_space)]  # a host name or address; may be empty
Dir = NonEmpty
Port = Annotated[Int, Field(ge=0, le=65535)]
RedisUrl = Annotated[Address, AfterValidator(_redis_url)]
StoreUrl = Annotated[Text, AfterValidator(_store_url)]
RecordingStoreUrl = Annotated[Address, AfterValidator(_recording_store)]
Secret = Annotated[Text, AfterValidator(_secret)]
ComputeType = Literal["auto", "default", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                      "float16", "bfloat16", "float32"]
Language = Annotated[Word, AfterValidator(_language)]
# lists: a TOML array, or comma-separated text from the environment or the command line (NoDecode: not JSON)
Languages = Annotated[tuple[Annotated[Word, AfterValidator(_language_code)], ...], NoDecode, BeforeValidator(_split),
                      AfterValidator(_distinct)]
Temperatures = Annotated[tuple[Annotated[Float, Field(ge=0, le=1)], ...], NoDecode, BeforeValidator(_split),
                         AfterValidator(_distinct)]
Channels = Annotated[tuple[Literal["customer", "agent", "mixed"], ...], NoDecode, BeforeValidator(_split),
                     Field(min_length=1), AfterValidator(_distinct)]
Transports = Annotated[tuple[Literal["udp", "tcp", "tls"], ...], NoDecode, BeforeValidator(_split),
                       Field(min_length=1), AfterValidator(_distinct)]
Codecs = Annotated[tuple[Literal["PCMU", "PCMA", "G722", "OPUS"], ...], NoDecode, BeforeValidator(_split),
                   Field(min_length=1), AfterValidator(_distinct)]
Patterns = Annotated[tuple[NonEmpty, ...], NoDecode, BeforeValidator(_split), AfterValidator(_distinct)]
Paths = Annotated[tuple[NonEmpty, ...], NoDecode, BeforeValidator(_split), AfterValidator(_distinct)]
Networks = Annotated[tuple[Annotated[Word, AfterValidator(_network)], ...], NoDecode, BeforeValidator(_split),
                     AfterValidator(_distinct_networks)]
ApiTokens = Annotated[tuple[Word, ...], NoDecode, BeforeValidator(_split), AfterValidator(_api_tokens)]
Webhooks = Annotated[tuple[Annotated[Word, AfterValidator(_webhook)], ...], NoDecode, BeforeValidator(_split),
                     AfterValidator(_distinct_webhooks)]


@dataclass
class _Load:
    """What one :meth:`Config.load` reads, and where each value came from (for error messages)."""

    path: str | None
    env: Mapping[str, str]
    overrides: frozenset[str]
    from_env: dict[str, str] = field(default_factory=dict)  # setting -> variable
    from_file: set[str] = field(default_factory=set)


_LOADING: contextvars.ContextVar[_Load | None] = contextvars.ContextVar("callscribe_config_load", default=None)


def _zone(value: str) -> str:
    """An IANA time zone name (or empty)."""
    if value:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise PydanticCustomError("zone", "not a known time zone (IANA name like Asia/Shanghai)") from exc
    return value


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,  # nan and inf are no setting's value
        use_attribute_docstrings=True,  # each field's docstring is its description
        validate_default=True,
        protected_namespaces=(),  # model, model_dir
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        env_ignore_empty=False,
    )

    # --- Redis -----------------------------------------------------------------------------------
    redis_url: RedisUrl = Field("", repr=False)
    """Redis URL. Empty: start the bundled valkey-server (or redis-server on PATH) on a free port."""
    data_dir: Dir = Field(default_factory=default_data_dir)
    """Where the embedded Redis keeps its append-only file (``<data_dir>/redis``)."""
    cache_dir: Dir = "~/.cache/callscribe"
    """Where split model packages are joined once (``<cache_dir>/models``) and reused."""
    key_prefix: Annotated[Word, Field(max_length=100)] = "callscribe"
    """Prefix of every Redis key (see stream/keys.py)."""
    call_stream_maxlen: Annotated[Int, Field(ge=1)] = 10_000
    """Approximate MAXLEN of each per-call stream (partials included)."""
    global_stream_maxlen: Annotated[Int, Field(ge=1)] = 1_000_000
    """Approximate MAXLEN of the global finals stream."""
    call_stream_ttl_s: Annotated[Int, Field(ge=1)] = 7 * 24 * 3600
    """Per-call streams expire this long after the call's last event (retention)."""
    final_buffer_max: Annotated[Int, Field(ge=1)] = 100_000
    """Finals held in memory while Redis is down; past this, producers wait (backpressure)."""

    # --- Model / ASR -------------------------------------------------------------------------------
    model: NonEmpty = "base"
    """`base` (multilingual), `tiny.en`, or a path to a CTranslate2 Whisper model directory."""
    model_dir: Text = ""
    """A CTranslate2 Whisper model directory; wins over `model` when set."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto` (CUDA when ctranslate2 sees a GPU, else CPU), `cpu` or `cuda`."""
    compute_type: ComputeType = "auto"
    """`auto` (float16 on CUDA, int8 on CPU) or any ctranslate2 compute type."""
    cpu_threads: Annotated[Int, Field(ge=0, le=1024)] = 0
    """ctranslate2 intra-op threads on CPU; 0 = number of cores."""
    language: Language = "auto"
    """Default language of calls: `zh`, `en`, another Whisper code, or `auto` (detected per call)."""
    language_candidates: Languages = ("zh", "en")
    """With language `auto`, detection picks among these only (a contact center knows its languages);
    empty = any Whisper language."""
    language_lock: bool = True
    """With `auto`, the first confident detection (>= 0.8 on >= 2 s of speech) fixes the call's language."""
    beam_size_final: Annotated[Int, Field(ge=1, le=64)] = 5
    """Beam size for finals (5 = faster-whisper's default; 1 = greedy, cheaper)."""
    beam_size_partial: Annotated[Int, Field(ge=1, le=64)] = 1
    """Beam size for partials (greedy: they are replaced anyway)."""
    temperature_fallback: Temperatures = (0.2, 0.4, 0.6, 0.8, 1.0)
    """Sampling temperatures retried for a final whose greedy/beam result fails the quality checks."""
    no_speech_threshold: Annotated[Float, Field(ge=0, le=1)] = 0.6
    """With log_prob_threshold: a segment above this no-speech probability and below that log-prob is silence."""
    log_prob_threshold: Annotated[Float, Field(le=0)] = -1.0
    """Average token log-probability below which a final is retried at higher temperature."""
    compression_ratio_threshold: Annotated[Float, Field(ge=1)] = 2.4
    """gzip ratio above which text is a repetition loop (retried, then collapsed)."""
    word_timestamps: bool = True
    """Word times for finals (cross-attention alignment, batched)."""
    final_window: Literal["full", "dynamic"] = "full"
    """Encoder input for finals: `full` (30 s, what Whisper was trained on) or `dynamic` (segment length)."""
    final_context: bool = True
    """Decode each final with the channel's previous utterance before it in the window, its text forced as the
    transcript's start and stripped from the result (acoustic context: the speaker and the line; issue 21)."""
    final_context_max_s: Annotated[Float, Field(ge=0, le=25)] = 10.0
    """Most seconds of the previous utterance put before a final (cut at a word boundary; 0 = none)."""
    final_lead_ms: Annotated[Int, Field(ge=0, le=2_000)] = 200
    """Audio before a segment's pre-roll that its final is decoded with (so Whisper hears 400 ms before the onset,
    the padding faster-whisper's own VAD gives); segment times and VAD are unchanged. Issue 21."""
    partial_window: Literal["full", "dynamic"] = "dynamic"
    """Encoder input for partials: `dynamic` (segment length, cheaper) or `full`."""
    dynamic_min_window_s: Annotated[Float, Field(ge=1, le=30)] = 10.0
    """Shortest encoder window with `dynamic`: Whisper repeats itself on very short windows (measured:
    10 of 84 short clips looped at 3 s, none at 10 s; benchmarks/README.md)."""
    max_batch_size: Annotated[Int, Field(ge=1, le=1024)] = 16
    """Most segments decoded in one batch (across all calls)."""
    partial_interval_s: Annotated[Float, Field(gt=0, le=30)] = 0.8
    """A live segment is re-decoded (a partial) this often while speech goes on; under load the scheduler
    stretches it. 0.8 s keeps captions arriving at least about every second."""
    partials: bool = True
    """Decode partials at all (`transcribe` turns them off unless --partials)."""
    partial_batch_budget_s: Annotated[Float, Field(gt=0, le=30)] = 0.15
    """A batch of partials is sized to take about this long, so a final arriving meanwhile waits little."""
    max_pending_finals: Annotated[Int, Field(ge=1)] = 256
    """Finals queued for decoding; past this, audio intake for new segments waits (backpressure)."""

    # --- scale-out (ASR workers over Redis Streams) -------------------------------------------------
    remote_asr: bool = False
    """`serve` sends decode work to `callscribe worker` processes through Redis instead of a local model."""
    claim_idle_s: Annotated[Float, Field(gt=0)] = 15.0
    """A job a worker has held this long without answering is taken over by another worker."""
    partial_max_age_s: Annotated[Float, Field(gt=0)] = 2.0
    """Workers skip partial jobs older than this (their audio has moved on)."""

    # --- VAD ---------------------------------------------------------------------------------------
    vad_aggressiveness: Annotated[Int, Field(ge=0, le=3)] = 2
    """webrtcvad mode 0-3 (3 = most aggressive at calling audio non-speech)."""
    vad_frame_ms: Annotated[Int, AfterValidator(_frame_ms)] = 20
    """VAD frame: 10, 20 or 30 ms."""
    vad_start_ms: Annotated[Int, Field(gt=0, le=30_000)] = 120
    """Voiced audio needed within `vad_start_window_ms` to open a segment."""
    vad_start_window_ms: Annotated[Int, Field(gt=0, le=30_000)] = 200
    """Window in which `vad_start_ms` of voiced frames open a segment."""
    vad_hangover_ms: Annotated[Int, Field(gt=0, le=30_000)] = 400
    """Trailing silence that ends a segment (the endpoint)."""
    vad_pre_roll_ms: Annotated[Int, Field(ge=0, le=30_000)] = 400
    """Audio kept before the detected onset, so first syllables are not clipped. 400 ms, as faster-whisper's own
    VAD pads speech: over a mu-law line webrtcvad finds Mandarin onsets late, and 200 ms cost 4 points of CER
    there (benchmarks/results/accuracy-*.json)."""
    vad_tail_ms: Annotated[Int, Field(ge=0, le=30_000)] = 200
    """Audio kept after the last voiced frame of a segment (at most `vad_hangover_ms`: it adds no latency)."""
    vad_min_speech_ms: Annotated[Int, Field(ge=0, le=30_000)] = 250
    """Segments with less voiced audio are dropped (clicks, coughs)."""
    vad_max_segment_s: Annotated[Float, Field(ge=2, le=29)] = 20.0
    """Longer speech is cut at its quietest point (every segment fits one 30 s window)."""
    silero: bool = True
    """Gate each segment with Silero VAD (ships inside faster-whisper) to drop noise, music and tones."""
    silero_threshold: Annotated[Float, Field(ge=0, le=1)] = 0.5
    """Silero speech probability that counts as speech."""
    silero_min_speech_ms: Annotated[Int, Field(ge=0, le=30_000)] = 150
    """Audio with Silero probability >= threshold needed for a segment to be decoded."""
    silero_gate_threshold: Annotated[Float, Field(ge=0, le=1)] = 0.4
    """Silero probability that counts as speech for the gate of a finished segment (partials and the endpoint use
    silero_threshold). 0.4, not 0.5: over an 8 kHz line Silero scores some voices low (on 8 synthesized calls the
    gate dropped 6 of 137 segments of speech at 0.5, 4 at 0.4); at 0.3 synthetic hold music got through."""

    # --- Ingest / gateway --------------------------------------------------------------------------
    host: Word = "127.0.0.1"
    """WebSocket ingest bind address."""
    port: Port = 8765
    """WebSocket ingest port (0 = any free port)."""
    max_calls: Annotated[Int, Field(ge=1, le=1_000_000)] = 200
    """Live calls per worker; more are refused (close 1013)."""
    max_frame_bytes: Annotated[Int, Field(ge=320, le=16 * 1024 * 1024)] = 64_000
    """Largest binary audio frame accepted (about 2 s of 16 kHz PCM16 stereo)."""
    idle_timeout_s: Annotated[Float, Field(gt=0)] = 30.0
    """A call that sends nothing for this long is ended with reason `timeout`."""
    channel_map: Channels = ("customer", "agent")
    """Role of each channel of a stereo recording, in channel order."""
    ingest_auth: bool = True
    """WebSocket ingest and SIP need credentials: a bearer token with role `ingest` (or admin) on the WebSocket, an allowed source address for SIP. Off only for closed test set-ups (`demo` keeps it on and mints its own token)."""
    source_max_calls: Annotated[Int, Field(ge=0, le=1_000_000)] = 0
    """Most live calls one source (an ingest token's subject, or a SIP peer address) may hold; 0 = 80% of max_calls (rounded up), so one source never takes every slot."""
    http_header_timeout_s: Annotated[Float, Field(gt=0, le=3600)] = 10.0
    """A client must send its request headers (HTTP and the WebSocket handshake) within this time."""
    http_keepalive_s: Annotated[Float, Field(gt=0, le=3600)] = 5.0
    """Idle keep-alive connections are closed after this."""
    http_max_connections: Annotated[Int, Field(ge=1, le=1_000_000)] = 1000
    """Open connections per listener; more get 503."""

    # --- SIP / SIPREC / RTP (gateway/sip, gateway/rtp; docs/sip.md) ---------------------------------
    sip: bool = True
    """`serve` also listens for SIP calls and SIPREC recording sessions."""
    sip_host: Address = ""
    """SIP and RTP bind address; empty = `host`."""
    sip_port: Port = 5060
    """SIP port for UDP and TCP (0 = any free port)."""
    sip_transports: Transports = ("udp", "tcp")
    """SIP transports to listen on: udp, tcp, and tls (needs sip_tls_cert and sip_tls_key)."""
    sip_tls_port: Port = 5061
    """SIP over TLS port (with `tls` in sip_transports; 0 = any free port)."""
    sip_tls_cert: Text = ""
    """PEM certificate chain for SIP over TLS."""
    sip_tls_key: Text = ""
    """PEM private key for SIP over TLS."""
    sip_advertised_address: Address = ""
    """Address put in SDP answers and Contact (the one SBCs send media to); empty = the bind address, or
    the machine's outbound address when bound to 0.0.0.0."""
    sip_retry_after_s: Annotated[Int, Field(ge=1, le=86_400)] = 30
    """Retry-After sent with 503 when a call is refused for capacity."""
    sip_user_agent: Annotated[NonEmpty, Field(max_length=200)] = "callscribe"
    """Server / User-Agent header value."""
    sip_codecs: Codecs = ("PCMU", "PCMA", "G722", "OPUS")
    """Codecs we accept (the offerer's order decides among them); G722 only when the optional `g722`
    package is installed, OPUS only with `opuslib-next` and the system libopus (Debian `libopus0`). On
    lossy networks prefer Opus with in-band FEC: see docs/sip.md."""
    siprec_agent_patterns: Patterns = ()
    """SIPREC: participants whose AoR or name matches one of these globs are the agent (e.g. `sip:8*@*`,
    `*@agents.example.com`); the rest are customers. Without a match the metadata's role hints decide,
    then order (the first participant, the caller, is the customer)."""
    siprec_customer_patterns: Patterns = ()
    """SIPREC: participants matching these globs are the customer."""
    rtp_port_min: Annotated[Int, Field(ge=1024, le=65535)] = 20000
    """Lowest RTP port (even). Each stream takes an RTP/RTCP pair; a call's streams get adjacent pairs."""
    rtp_port_max: Annotated[Int, Field(ge=1024, le=65535)] = 29999
    """Highest RTP port."""
    rtp_timeout_s: Annotated[Float, Field(gt=0)] = 60.0
    """A call whose media stops for this long (and is not on hold) is ended with reason `timeout` and a BYE."""
    jitter_depth_ms: Annotated[Int, Field(ge=20, le=1000)] = 80
    """Playout delay of the per-stream jitter buffer: covers this much network jitter without loss."""
    sip_allow: Networks = ("127.0.0.0/8", "::1/128")
    """Addresses or CIDR networks that may send SIP (the SBCs and recording clients); others get 403. Empty with ingest_auth = nobody."""
    sip_recv_buffer_bytes: Annotated[Int, Field(ge=65536, le=2**31 - 1)] = 4_194_304
    """SO_RCVBUF of the SIP UDP socket, so a burst of INVITEs waits in the kernel instead of being dropped."""

    # --- analytics (keyword/: alerts, intent, unresolved flag, surges, repeat callers) ---------------
    redact_stored_text: bool = True
    """Transcripts are PII-redacted (keyword/redact.py: phones, IDs, cards, emails, addresses, long digit
    runs) before they are written to Redis, where QA, supervisors and analytics read them. The live
    WebSocket connection that sent the audio still receives them verbatim."""
    analytics: bool = True
    """`serve` and `demo` also run the analytics worker on the transcript streams."""
    analytics_group: NonEmpty = "analytics"
    """Redis consumer group of the analytics workers on the finals stream."""
    analytics_consumer: Text = ""
    """This worker's consumer name in the group; empty = host name and process id. Keep it stable across
    restarts so a restarted worker resumes its own pending entries first."""
    rule_packs: Paths = ()
    """YAML rule pack files or directories (keyword/packs.py); empty = the bundled zh and en packs.
    Edited packs are reloaded by running workers within seconds."""
    intent_catalog: Text = ""
    """YAML intent catalog with example questions per intent; empty = the bundled telecom example."""
    scorecard_form: Text = ""
    """YAML evaluation form every call is scored against (keyword/qa/, docs/qa.md); empty = the bundled telecom
    form (keyword/packs/scorecard.yaml)."""
    disclosure_threshold: Annotated[Float, Field(ge=0, le=1)] = 0.7
    """An agent turn the learned model gives at least this probability of reading out or changing account data
    counts as a disclosure where no rule named it (docs/analytics.md, round 4); 0 = rules only."""
    end_sentiment_model: bool = True
    """The customer's sentiment at the end of a call is decided by the learned stacker over the rules' answer;
    false = the rules' answer alone."""
    unresolved_model: bool = True
    """The final unresolved flag may be overruled by the learned stacker trained on the rules' first-run flags
    (docs/analytics.md); false = the rules' flag alone."""
    assist_packs: Paths = ()
    """YAML scenario packs for agent assist (keyword/assist/: guided steps, knowledge answers, offers, ticket
    templates), files or directories of `assist-*.yaml`; empty = the bundled zh and en telecom packs. Edited
    packs are reloaded within seconds."""
    assist_history_days: Annotated[Int, Field(ge=1, le=366)] = 30
    """The agent desk's caller history (服务无缝衔接) lists the same number's calls from this many days before
    the call: a repeat caller's last promise is in it, and the list stays one screen (at most 20 calls). Keep it
    within how long the store keeps calls; a year at most (the query is a range scan on the caller's index)."""
    silence_alert_s: Annotated[Float, Field(gt=0)] = 30.0
    """Nobody speaking for this long (hold, dead air) raises a `silence` alert."""
    overtalk_alert_count: Annotated[Int, Field(ge=1)] = 3
    """The customer starting to talk inside an agent's turn this many times raises an `overtalk` alert."""
    repeat_window_h: Annotated[Float, Field(gt=0)] = 72.0
    """A call from the same number within this many hours, about the same intent, marks a repeat caller."""
    fcr_window_days: Annotated[Float, Field(gt=0, le=90)] = 7.0
    """Reports: a call is resolved first time when it is not flagged unresolved and the same number does not call
    again about the same intent within this many days (docs/reports.md). A change applies to calls filed after it;
    `callscribe report rebuild` relinks the stored ones."""
    report_timezone: Annotated[Text, AfterValidator(_zone)] = ""
    """IANA time zone in which reports cut days and hours (`Asia/Shanghai`); empty = the machine's local zone."""
    sentiment_alert: bool = True
    """Raise a `sentiment` alert when the customer's mood falls over the call and ends negative (keyword/sentiment.py)."""
    surge_window_s: Annotated[Float, Field(gt=0)] = 600.0
    """Surge detection: calls on one topic are counted over this sliding window ..."""
    surge_baseline_s: Annotated[Float, Field(gt=0)] = 21600.0
    """... and compared with their rate over this much time before it."""
    surge_min_calls: Annotated[Int, Field(ge=1)] = 5
    """A surge needs at least this many calls on the topic in the window ..."""
    surge_ratio: Annotated[Float, Field(ge=1)] = 3.0
    """... and at least this many times the baseline rate."""

    # --- web gateway (gateway/web: HTTP + WebSocket API, the agent / wallboard / QA pages) ------------
    web: bool = True
    """`serve` and `demo` also run the web gateway (pages, API, search store). `callscribe gateway` runs it alone."""
    web_host: Word = "127.0.0.1"
    """Interface the web gateway listens on."""
    web_port: Port = 8080
    """HTTP port of the web gateway (pages, REST, WebSockets, /metrics); 0 = any free port."""
    store_url: StoreUrl = Field("", repr=False)
    """Transcript store for search: a SQLite path, or `postgresql://user@host/db` (needs the `postgres`
    extra). Empty = SQLite at `{data_dir}/transcripts.sqlite3`."""
    store_group: NonEmpty = "store"
    """Redis consumer group that fills the store. Gateways sharing one PostgreSQL store share the group;
    give each gateway with its own SQLite file a group of its own."""
    auth_secret: Secret = Field("", repr=False)
    """HMAC secret signing API tokens (JWT HS256). Empty = generated once into `{data_dir}/auth.secret`.
    Set the same value on every gateway behind a load balancer."""
    api_tokens: ApiTokens = Field((), repr=False)
    """Static tokens, each `role:subject:token` (for an agent the subject is the agent id), e.g. for a
    wallboard screen. Prefer signed tokens from `callscribe token`, which expire."""
    token_ttl_h: Annotated[Float, Field(gt=0, le=24 * 366)] = 12.0
    """Lifetime of tokens minted by `callscribe token` and `POST /api/v1/tokens` unless asked otherwise."""
    metrics_public: bool = False
    """Serve `/metrics` without a token (for a Prometheus on a private network); else an admin token."""
    board_replay_s: Annotated[Float, Field(ge=0)] = 7200.0
    """On start the gateway rebuilds its live board (calls, alerts, callbacks, chart) from this much Redis
    history, so a restarted gateway shows the same wallboard."""

    # --- webhooks (gateway/webhooks: tickets, alerts and reports POSTed to other systems; docs/webhooks.md) --
    webhooks: Webhooks = Field((), repr=False)
    """Receivers of outbound webhooks, each `kind=url` (kind `ticket`, `alert`, `report`, ... or `*` for
    every kind), e.g. `ticket=https://crm.example.com/hooks/callscribe`; http or https only. Each delivery is
    signed with webhook_secret, retried, and dead-lettered when it cannot be delivered."""
    webhook_secret: Secret = Field("", repr=False)
    """HMAC-SHA256 key signing every webhook (`X-Callscribe-Signature`), 32+ characters. Empty = generated once
    into `{data_dir}/webhook.secret` (mode 0600); give receivers that file's content."""
    webhook_timeout_s: Annotated[Float, Field(gt=0, le=300)] = 10.0
    """One webhook POST (connect, send, answer) gets this long; a timeout is retried."""
    webhook_max_attempts: Annotated[Int, Field(ge=1, le=1000)] = 20
    """A delivery still failing after this many attempts goes to the dead-letter stream."""
    webhook_max_age_s: Annotated[Float, Field(gt=0, le=30 * 86_400)] = 86_400.0
    """A delivery still failing this long after it was enqueued goes to the dead-letter stream."""

    # --- call recording (recording/: both legs written while the call runs; docs/recording.md) ------------
    recording: bool = True
    """`serve` records both legs of every call (stereo: customer, agent; a mixed call mono) while it runs, plus
    a redacted rendition with the PII spans silenced."""
    recording_format: Literal["opus", "flac"] = "opus"
    """`opus` (Ogg Opus, about 150 KB per stereo minute, plays in browsers) or `flac` (lossless, about 10x larger)."""
    recording_dir: Text = ""
    """Where recordings are kept (files 0600, folders 0700); empty = `{data_dir}/recordings`."""
    recording_store: RecordingStoreUrl = Field("", repr=False)
    """An S3-compatible object store for recordings instead of recording_dir:
    `s3+https://ACCESS_KEY:SECRET_KEY@host[:port]/bucket[/prefix][?region=...]` (AWS S3, SeaweedFS, MinIO, Ceph RGW).
    Live calls are spooled to `{data_dir}/recordings-spool` and uploaded when they end."""
    recording_retention_days: Annotated[Int, Field(ge=0, le=36_500)] = 90
    """Recordings older than this many days are deleted by a sweep every hour; 0 = keep for ever."""
    recording_optout_queues: Patterns = ()
    """Queues (the call metadata's `queue`) whose calls are not recorded; globs allowed (`vip-*`)."""
    recording_redaction: Literal["silence", "beep"] = "silence"
    """What replaces a masked span (card, ID, phone numbers) in the redacted rendition: silence or a 1 kHz beep."""

    def __init__(self, **values: Any) -> None:
        """Validated settings: ``values`` over the defaults (only :meth:`load` reads the file and environment)."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, _LOADING.get())) from None
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}: Config is frozen, use cfg.replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}: Config is frozen")

    @model_validator(mode="before")
    @classmethod
    def _strip(cls, data: Any) -> Any:
        """Surrounding blanks are never part of a value (`` 3 ``, `` On ``, ``cuda ``)."""
        if isinstance(data, dict):
            return {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _between_fields(self) -> "Config":
        """Rules that involve more than one setting; the error names the one to change."""
        if "tls" in self.sip_transports and not (self.sip_tls_cert and self.sip_tls_key):
            raise _invalid("tls in sip_transports needs sip_tls_cert and sip_tls_key", "sip_tls_cert")
        if {"tcp", "tls"} <= set(self.sip_transports) and self.sip_port and self.sip_port == self.sip_tls_port:
            raise _invalid(f"must differ from sip_port ({self.sip_port}): TCP and TLS listen on both", "sip_tls_port")
        if not self.rtp_port_min < self.rtp_port_max:
            raise _invalid(f"need rtp_port_min ({self.rtp_port_min}) < rtp_port_max ({self.rtp_port_max})", "rtp_port_min")
        if self.rtp_port_max - self.rtp_port_min < 3:
            raise _invalid("the RTP range must hold at least one stream pair (4 ports)", "rtp_port_max")
        if self.vad_start_ms > self.vad_start_window_ms:
            raise _invalid(f"must be <= vad_start_window_ms ({self.vad_start_window_ms})", "vad_start_ms")
        if self.vad_min_speech_ms > self.vad_max_segment_s * 1000:
            raise _invalid(f"must be <= vad_max_segment_s ({self.vad_max_segment_s:g} s)", "vad_min_speech_ms")
        if self.web and self.port and self.port == self.web_port and self.host == self.web_host:
            raise _invalid(f"must differ from port ({self.port}) on the same host", "web_port")
        return self

    # ---------------------------------------------------------------------------------------------
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest priority first: overrides (init arguments), environment, TOML file. Outside
        :meth:`load` only the arguments count: ``Config(...)`` never reads the process environment."""
        load = _LOADING.get()
        if load is None:
            return (init_settings,)
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvSource(settings_cls, load)]
        if load.path:
            sources.append(_TomlSource(settings_cls, load))
        return tuple(sources)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> "Config":
        """Build the config from file, environment and overrides (in that order of precedence)."""
        env = os.environ if env is None else env
        path = path or env.get("CALLSCRIBE_CONFIG") or None
        given = {key: raw for key, raw in overrides.items() if raw is not None}  # None: not given
        for key in given:
            if key not in cls.model_fields:
                raise ConfigError(f"--{key.replace('_', '-')}: unknown setting {key!r}{_did_you_mean(key)}")
        _warn_unknown_env(env)
        token = _LOADING.set(_Load(os.fspath(path) if path else None, env, frozenset(given)))
        try:
            return cls(**given)
        finally:
            _LOADING.reset(token)

    def replace(self, **changes: Any) -> "Config":
        """A copy with ``changes``, validated like the original."""
        for key in changes:
            if key not in type(self).model_fields:
                raise ConfigError(f"unknown setting {key!r}{_did_you_mean(key)}")
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})

    @property
    def data_path(self) -> Path:
        """``data_dir`` with ``~`` expanded; nothing is created (see :func:`ensure_data_dir`)."""
        return Path(self.data_dir).expanduser()

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser()

    @property
    def source_quota(self) -> int:
        """Live calls one source may hold: ``source_max_calls``, or 80% of ``max_calls`` rounded up when 0;
        never more than ``max_calls`` and at least 1."""
        quota = self.source_max_calls or -(-self.max_calls * 4 // 5)
        return max(1, min(quota, self.max_calls))


# --- sources (pydantic-settings) -----------------------------------------------------------------
class _EnvSource(EnvSettingsSource):
    """``CALLSCRIBE_<FIELD>`` from the mapping :meth:`Config.load` was given, plus plain ``REDIS_URL``.
    Lists stay comma-separated text (the fields are ``NoDecode``), split by the field's validator."""

    def __init__(self, settings_cls: type[BaseSettings], load: _Load) -> None:
        self._load = load
        super().__init__(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX, env_ignore_empty=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._load.env, case_sensitive=False, ignore_empty=False)

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        for name in data:
            self._load.from_env[name] = ENV_PREFIX + name.upper()
        if "redis_url" not in data and self._load.env.get("REDIS_URL"):  # an empty REDIS_URL is not set
            data["redis_url"] = self._load.env["REDIS_URL"]
            self._load.from_env["redis_url"] = "REDIS_URL"
        return data


class _TomlSource(TomlConfigSettingsSource):
    """The TOML file: keys at the top level, or in a ``[callscribe]`` table (other tools' tables beside it)."""

    def __init__(self, settings_cls: type[BaseSettings], load: _Load) -> None:
        self._load = load
        path = Path(load.path or "").expanduser()
        if not path.is_file():  # pydantic-settings skips a missing file; a file asked for must exist
            raise ConfigError(f"config file {load.path}: no such file")
        super().__init__(settings_cls, toml_file=path)

    def _read_file(self, file_path: Path) -> dict[str, Any]:
        where = self._load.path
        try:
            with open(file_path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {where}: {exc}") from None
        table = data.get("callscribe", data)
        if not isinstance(table, dict):
            raise ConfigError(f"config file {where}: callscribe must be a table ([callscribe])")
        for key in table:
            if key not in Config.model_fields:
                raise ConfigError(f"{where}: unknown setting {key!r}{_did_you_mean(key)}")
        self._load.from_file.update(table)
        return table


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(str(name).lower(), Config.model_fields, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _warn_unknown_env(env: Mapping[str, str]) -> None:
    """Log each ``CALLSCRIBE_`` variable that is no setting, with the closest one: a misspelt name must not
    be silently ignored (it is not an error: the variable may be meant for another version)."""
    for key in env:
        if not key.upper().startswith(ENV_PREFIX):
            continue
        rest = key[len(ENV_PREFIX):]
        if rest.lower() in Config.model_fields or rest.upper() in _NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(rest.lower(), Config.model_fields, n=1, cutoff=0.5)
        hint = f"; did you mean {ENV_PREFIX}{close[0].upper()} (setting {close[0]})?" if close else ""
        log.warning("%s is not a callscribe setting and is ignored%s", key, hint)


# --- errors --------------------------------------------------------------------------------------
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}
_PARSE = {"int_parsing": "a whole number", "int_parsing_size": "a whole number", "int_type": "a whole number",
          "int_from_float": "a whole number", "float_parsing": "a number", "float_type": "a number",
          "bool_parsing": "true or false (also yes/no, on/off, 1/0)", "bool_type": "true or false",
          "string_type": "text", "tuple_type": "a list (comma-separated in the environment)"}
_SECRET_FIELDS = frozenset({"auth_secret", "api_tokens", "redis_url", "store_url", "webhooks", "webhook_secret"})


def _env_var(name: str, load: _Load | None) -> str:
    if load is not None and load.from_env.get(name) == "REDIS_URL" and name not in load.overrides:
        return "REDIS_URL"
    return ENV_PREFIX + name.upper()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _why(err: Any, name: str) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        bound = ctx.get(key)
        return f"must be {op} {bound:g}" if isinstance(bound, float) else f"must be {op} {bound}"
    if kind == "finite_number":
        return "must be a finite number (not nan or inf)"
    if kind in _PARSE:
        shown = "" if name in _SECRET_FIELDS else f", not {_show(err.get('input'))}"
        return f"must be {_PARSE[kind]}{shown}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}" + ("" if name in _SECRET_FIELDS else f", not {_show(err.get('input'))}")
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"needs at least {ctx.get('min_length')} entries"
    msg = str(err.get("msg", kind))
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _describe(exc: ValidationError, load: _Load | None) -> str:
    """One line naming each failing setting and its environment variable (and the file, for a file's value)."""
    parts: list[str] = []
    for err in exc.errors(include_url=False):
        loc = err.get("loc") or ()
        name = str((err.get("ctx") or {}).get("setting") or (loc[0] if loc else "config"))
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown setting {name!r}{_did_you_mean(name)}")
            continue
        why = _why(err, name)
        if len(loc) > 1 and isinstance(loc[1], int):
            why = f"entry {loc[1] + 1}: {why}"
        where = ""
        if load is not None and name in load.from_file and name not in load.from_env and name not in load.overrides:
            where = f" in {load.path}"
        parts.append(f"setting {name} ({_env_var(name, load)}){where}: {why}")
    return "; ".join(dict.fromkeys(parts)) or str(exc)


# --- the data directory --------------------------------------------------------------------------
def ensure_data_dir(cfg: Config) -> Path:
    """Create ``cfg.data_path`` (mode 0700) if missing and check that files can be written in it.

    Called by the commands that keep data (serve, demo, token, gateway) before anything else uses it, so an
    unwritable directory is one line naming the setting, not a traceback from deep inside."""
    path = cfg.data_path
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"setting data_dir (CALLSCRIBE_DATA_DIR): {path} is not writable: {exc.strerror or exc}") from None
    return path


__all__ = ["Config", "default_data_dir", "ensure_data_dir"]
