"""All settings in one frozen object, read once at start-up.

Sources, later ones win: built-in defaults < TOML file (CALLSCRIBE_CONFIG or ``--config``) < environment
(`CALLSCRIBE_<FIELD>` in upper case, plus plain `REDIS_URL`) < explicit overrides (CLI flags). Every value is
validated here, with errors that name the setting, so no other module reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

_CHANNELS = ("customer", "agent", "mixed")


@dataclass(frozen=True, slots=True)
class Config:
    # --- Redis -----------------------------------------------------------------------------------
    redis_url: str = ""
    """Redis URL. Empty: start the bundled valkey-server (or redis-server on PATH) on a free port."""
    data_dir: str = "var"
    """Where the embedded Redis keeps its append-only file (``<data_dir>/redis``)."""
    cache_dir: str = "~/.cache/callscribe"
    """Where split model packages are joined once (``<cache_dir>/models``) and reused."""
    key_prefix: str = "callscribe"
    """Prefix of every Redis key (see stream/keys.py)."""
    call_stream_maxlen: int = 10_000
    """Approximate MAXLEN of each per-call stream (partials included)."""
    global_stream_maxlen: int = 1_000_000
    """Approximate MAXLEN of the global finals stream."""
    call_stream_ttl_s: int = 7 * 24 * 3600
    """Per-call streams expire this long after the call's last event (retention)."""
    final_buffer_max: int = 100_000
    """Finals held in memory while Redis is down; past this, producers wait (backpressure)."""

    # --- Model / ASR -------------------------------------------------------------------------------
    model: str = "base"
    """`base` (multilingual), `tiny.en`, or a path to a CTranslate2 Whisper model directory."""
    model_dir: str = ""
    """A CTranslate2 Whisper model directory; wins over `model` when set."""
    device: str = "auto"
    """`auto` (CUDA when ctranslate2 sees a GPU, else CPU), `cpu` or `cuda`."""
    compute_type: str = "auto"
    """`auto` (float16 on CUDA, int8 on CPU) or any ctranslate2 compute type."""
    cpu_threads: int = 0
    """ctranslate2 intra-op threads on CPU; 0 = number of cores."""
    language: str = "auto"
    """Default language of calls: `zh`, `en`, another Whisper code, or `auto` (detected per call)."""
    language_candidates: tuple[str, ...] = ("zh", "en")
    """With language `auto`, detection picks among these only (a contact center knows its languages);
    empty = any Whisper language."""
    language_lock: bool = True
    """With `auto`, the first confident detection (>= 0.8 on >= 2 s of speech) fixes the call's language."""
    beam_size_final: int = 5
    """Beam size for finals (5 = faster-whisper's default; 1 = greedy, cheaper)."""
    beam_size_partial: int = 1
    """Beam size for partials (greedy: they are replaced anyway)."""
    temperature_fallback: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    """Sampling temperatures retried for a final whose greedy/beam result fails the quality checks."""
    no_speech_threshold: float = 0.6
    """With log_prob_threshold: a segment above this no-speech probability and below that log-prob is silence."""
    log_prob_threshold: float = -1.0
    """Average token log-probability below which a final is retried at higher temperature."""
    compression_ratio_threshold: float = 2.4
    """gzip ratio above which text is a repetition loop (retried, then collapsed)."""
    word_timestamps: bool = True
    """Word times for finals (cross-attention alignment, batched)."""
    final_window: str = "full"
    """Encoder input for finals: `full` (30 s, what Whisper was trained on) or `dynamic` (segment length)."""
    partial_window: str = "dynamic"
    """Encoder input for partials: `dynamic` (segment length, cheaper) or `full`."""
    dynamic_min_window_s: float = 10.0
    """Shortest encoder window with `dynamic`: Whisper repeats itself on very short windows (measured:
    10 of 84 short clips looped at 3 s, none at 10 s; benchmarks/README.md)."""
    max_batch_size: int = 16
    """Most segments decoded in one batch (across all calls)."""
    partial_interval_s: float = 0.8
    """A live segment is re-decoded (a partial) this often while speech goes on; under load the scheduler
    stretches it. 0.8 s keeps captions arriving at least about every second."""
    partials: bool = True
    """Decode partials at all (`transcribe` turns them off unless --partials)."""
    partial_batch_budget_s: float = 0.15
    """A batch of partials is sized to take about this long, so a final arriving meanwhile waits little."""
    max_pending_finals: int = 256
    """Finals queued for decoding; past this, audio intake for new segments waits (backpressure)."""

    # --- scale-out (ASR workers over Redis Streams) -------------------------------------------------
    remote_asr: bool = False
    """`serve` sends decode work to `callscribe worker` processes through Redis instead of a local model."""
    claim_idle_s: float = 15.0
    """A job a worker has held this long without answering is taken over by another worker."""
    partial_max_age_s: float = 2.0
    """Workers skip partial jobs older than this (their audio has moved on)."""

    # --- VAD ---------------------------------------------------------------------------------------
    vad_aggressiveness: int = 2
    """webrtcvad mode 0-3 (3 = most aggressive at calling audio non-speech)."""
    vad_frame_ms: int = 20
    """VAD frame: 10, 20 or 30 ms."""
    vad_start_ms: int = 120
    """Voiced audio needed within `vad_start_window_ms` to open a segment."""
    vad_start_window_ms: int = 200
    """Window in which `vad_start_ms` of voiced frames open a segment."""
    vad_hangover_ms: int = 400
    """Trailing silence that ends a segment (the endpoint)."""
    vad_pre_roll_ms: int = 200
    """Audio kept before the detected onset, so first syllables are not clipped."""
    vad_min_speech_ms: int = 250
    """Segments with less voiced audio are dropped (clicks, coughs)."""
    vad_max_segment_s: float = 20.0
    """Longer speech is cut at its quietest point (every segment fits one 30 s window)."""
    silero: bool = True
    """Gate each segment with Silero VAD (ships inside faster-whisper) to drop noise, music and tones."""
    silero_threshold: float = 0.5
    """Silero speech probability that counts as speech."""
    silero_min_speech_ms: int = 150
    """Audio with Silero probability >= threshold needed for a segment to be decoded."""

    # --- Ingest / gateway --------------------------------------------------------------------------
    host: str = "127.0.0.1"
    """WebSocket ingest bind address."""
    port: int = 8765
    """WebSocket ingest port (0 = any free port)."""
    max_calls: int = 200
    """Live calls per worker; more are refused (close 1013)."""
    max_frame_bytes: int = 64_000
    """Largest binary audio frame accepted (about 2 s of 16 kHz PCM16 stereo)."""
    idle_timeout_s: float = 30.0
    """A call that sends nothing for this long is ended with reason `timeout`."""
    channel_map: tuple[str, ...] = ("customer", "agent")
    """Role of each channel of a stereo recording, in channel order."""

    # --- SIP / SIPREC / RTP (gateway/sip, gateway/rtp; docs/sip.md) ---------------------------------
    sip: bool = True
    """`serve` also listens for SIP calls and SIPREC recording sessions."""
    sip_host: str = ""
    """SIP and RTP bind address; empty = `host`."""
    sip_port: int = 5060
    """SIP port for UDP and TCP (0 = any free port)."""
    sip_transports: tuple[str, ...] = ("udp", "tcp")
    """SIP transports to listen on: udp, tcp, and tls (needs sip_tls_cert and sip_tls_key)."""
    sip_tls_port: int = 5061
    """SIP over TLS port (with `tls` in sip_transports; 0 = any free port)."""
    sip_tls_cert: str = ""
    """PEM certificate chain for SIP over TLS."""
    sip_tls_key: str = ""
    """PEM private key for SIP over TLS."""
    sip_advertised_address: str = ""
    """Address put in SDP answers and Contact (the one SBCs send media to); empty = the bind address, or
    the machine's outbound address when bound to 0.0.0.0."""
    sip_retry_after_s: int = 30
    """Retry-After sent with 503 when a call is refused for capacity."""
    sip_user_agent: str = "callscribe"
    """Server / User-Agent header value."""
    sip_codecs: tuple[str, ...] = ("PCMU", "PCMA", "G722", "OPUS")
    """Codecs we accept (the offerer's order decides among them); G722 only when the optional `g722`
    package is installed, OPUS only with `opuslib-next` and the system libopus (Debian `libopus0`). On
    lossy networks prefer Opus with in-band FEC: see docs/sip.md."""
    siprec_agent_patterns: tuple[str, ...] = ()
    """SIPREC: participants whose AoR or name matches one of these globs are the agent (e.g. `sip:8*@*`,
    `*@agents.example.com`); the rest are customers. Without a match the metadata's role hints decide,
    then order (the first participant, the caller, is the customer)."""
    siprec_customer_patterns: tuple[str, ...] = ()
    """SIPREC: participants matching these globs are the customer."""
    rtp_port_min: int = 20000
    """Lowest RTP port (even). Each stream takes an RTP/RTCP pair; a call's streams get adjacent pairs."""
    rtp_port_max: int = 29999
    """Highest RTP port."""
    rtp_timeout_s: float = 60.0
    """A call whose media stops for this long (and is not on hold) is ended with reason `timeout` and a BYE."""
    jitter_depth_ms: int = 80
    """Playout delay of the per-stream jitter buffer: covers this much network jitter without loss."""

    # --- analytics (keyword/: alerts, intent, unresolved flag, surges, repeat callers) ---------------
    redact_stored_text: bool = True
    """Transcripts are PII-redacted (keyword/redact.py: phones, IDs, cards, emails, addresses, long digit
    runs) before they are written to Redis, where QA, supervisors and analytics read them. The live
    WebSocket connection that sent the audio still receives them verbatim."""
    analytics: bool = True
    """`serve` and `demo` also run the analytics worker on the transcript streams."""
    analytics_group: str = "analytics"
    """Redis consumer group of the analytics workers on the finals stream."""
    analytics_consumer: str = ""
    """This worker's consumer name in the group; empty = host name and process id. Keep it stable across
    restarts so a restarted worker resumes its own pending entries first."""
    rule_packs: tuple[str, ...] = ()
    """YAML rule pack files or directories (keyword/packs.py); empty = the bundled zh and en packs.
    Edited packs are reloaded by running workers within seconds."""
    intent_catalog: str = ""
    """YAML intent catalog with example questions per intent; empty = the bundled telecom example."""
    silence_alert_s: float = 30.0
    """Nobody speaking for this long (hold, dead air) raises a `silence` alert."""
    overtalk_alert_count: int = 3
    """The customer starting to talk inside an agent's turn this many times raises an `overtalk` alert."""
    repeat_window_h: float = 72.0
    """A call from the same number within this many hours, about the same intent, marks a repeat caller."""
    sentiment_alert: bool = True
    """Raise a `sentiment` alert when the customer's mood falls over the call and ends negative (keyword/sentiment.py)."""
    surge_window_s: float = 600.0
    """Surge detection: calls on one topic are counted over this sliding window ..."""
    surge_baseline_s: float = 21600.0
    """... and compared with their rate over this much time before it."""
    surge_min_calls: int = 5
    """A surge needs at least this many calls on the topic in the window ..."""
    surge_ratio: float = 3.0
    """... and at least this many times the baseline rate."""

    # --- web gateway (gateway/web: HTTP + WebSocket API, the agent / wallboard / QA pages) ------------
    web: bool = True
    """`serve` and `demo` also run the web gateway (pages, API, search store). `callscribe gateway` runs it alone."""
    web_host: str = "127.0.0.1"
    """Interface the web gateway listens on."""
    web_port: int = 8080
    """HTTP port of the web gateway (pages, REST, WebSockets, /metrics); 0 = any free port."""
    store_url: str = ""
    """Transcript store for search: a SQLite path, or `postgresql://user@host/db` (needs the `postgres`
    extra). Empty = SQLite at `{data_dir}/transcripts.sqlite3`."""
    store_group: str = "store"
    """Redis consumer group that fills the store. Gateways sharing one PostgreSQL store share the group;
    give each gateway with its own SQLite file a group of its own."""
    auth_secret: str = ""
    """HMAC secret signing API tokens (JWT HS256). Empty = generated once into `{data_dir}/auth.secret`.
    Set the same value on every gateway behind a load balancer."""
    api_tokens: tuple[str, ...] = ()
    """Static tokens, each `role:subject:token` (for an agent the subject is the agent id), e.g. for a
    wallboard screen. Prefer signed tokens from `callscribe token`, which expire."""
    token_ttl_h: float = 12.0
    """Lifetime of tokens minted by `callscribe token` and `POST /api/v1/tokens` unless asked otherwise."""
    metrics_public: bool = False
    """Serve `/metrics` without a token (for a Prometheus on a private network); else an admin token."""
    board_replay_s: float = 7200.0
    """On start the gateway rebuilds its live board (calls, alerts, callbacks, chart) from this much Redis
    history, so a restarted gateway shows the same wallboard."""

    def __post_init__(self) -> None:
        _check(self.device in ("auto", "cpu", "cuda"), "device", "must be auto, cpu or cuda")
        _check(self.final_window in ("full", "dynamic"), "final_window", "must be full or dynamic")
        _check(self.partial_window in ("full", "dynamic"), "partial_window", "must be full or dynamic")
        _check(0 <= self.vad_aggressiveness <= 3, "vad_aggressiveness", "must be 0..3")
        _check(self.vad_frame_ms in (10, 20, 30), "vad_frame_ms", "must be 10, 20 or 30")
        _check(self.beam_size_final >= 1 and self.beam_size_partial >= 1, "beam_size_*", "must be >= 1")
        _check(self.max_batch_size >= 1, "max_batch_size", "must be >= 1")
        _check(self.partial_interval_s > 0, "partial_interval_s", "must be > 0")
        _check(1.0 <= self.dynamic_min_window_s <= 30.0, "dynamic_min_window_s", "must be 1..30")
        _check(self.vad_max_segment_s <= 29.0, "vad_max_segment_s", "must be <= 29 (one Whisper window)")
        _check(self.vad_max_segment_s >= 2.0, "vad_max_segment_s", "must be >= 2")
        _check(self.max_calls >= 1, "max_calls", "must be >= 1")
        _check(1 <= self.port <= 65535 or self.port == 0, "port", "must be a TCP port")
        _check(0 <= self.sip_port <= 65535 and 0 <= self.sip_tls_port <= 65535, "sip_port", "must be a port or 0")
        for t in self.sip_transports:
            _check(t in ("udp", "tcp", "tls"), "sip_transports", f"unknown transport {t!r}; use udp, tcp, tls")
        if "tls" in self.sip_transports:
            _check(bool(self.sip_tls_cert and self.sip_tls_key), "sip_tls_cert", "tls needs sip_tls_cert and sip_tls_key")
        _check(1024 <= self.rtp_port_min < self.rtp_port_max <= 65535, "rtp_port_min", "need 1024 <= rtp_port_min < rtp_port_max <= 65535")
        _check(self.rtp_port_max - self.rtp_port_min >= 3, "rtp_port_max", "the RTP range must hold at least one stream pair")
        _check(self.rtp_timeout_s > 0, "rtp_timeout_s", "must be > 0")
        _check(20 <= self.jitter_depth_ms <= 1000, "jitter_depth_ms", "must be 20..1000")
        _check(self.silence_alert_s > 0, "silence_alert_s", "must be > 0")
        _check(self.overtalk_alert_count >= 1, "overtalk_alert_count", "must be >= 1")
        _check(self.repeat_window_h > 0, "repeat_window_h", "must be > 0")
        _check(self.surge_window_s > 0 and self.surge_baseline_s > 0, "surge_window_s", "windows must be > 0")
        _check(self.surge_min_calls >= 1 and self.surge_ratio >= 1.0, "surge_min_calls", "need min_calls >= 1 and ratio >= 1")
        _check(bool(self.analytics_group.strip()), "analytics_group", "must not be empty")
        _check(0 <= self.web_port <= 65535, "web_port", "must be a TCP port or 0")
        _check(self.token_ttl_h > 0, "token_ttl_h", "must be > 0")
        _check(self.board_replay_s >= 0, "board_replay_s", "must be >= 0")
        _check(bool(self.store_group.strip()), "store_group", "must not be empty")
        for entry in self.api_tokens:
            role, _, rest = entry.partition(":")
            _check(role in ("agent", "supervisor", "qa", "admin") and ":" in rest and len(rest.split(":", 1)[1]) >= 16,
                   "api_tokens", "each entry is role:subject:token with a role of agent, supervisor, qa, admin and a token of 16+ characters")
        for ch in self.channel_map:
            _check(ch in _CHANNELS, "channel_map", f"unknown channel {ch!r}; use {', '.join(_CHANNELS)}")

    # ---------------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> "Config":
        """Build the config from file, environment and overrides (in that order of precedence)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        path = path or env.get("CALLSCRIBE_CONFIG")
        if path:
            try:
                with open(path, "rb") as f:
                    data = tomllib.load(f)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"config file {path}: {exc}") from exc
            data = data.get("callscribe", data)
            for key, raw in data.items():
                values[key] = _coerce(key, raw, source=f"{path}: {key}")
        if env.get("REDIS_URL"):
            values["redis_url"] = env["REDIS_URL"]
        for f in fields(cls):
            name = "CALLSCRIBE_" + f.name.upper()
            if name in env:
                values[f.name] = _coerce(f.name, env[name], source=name)
        for key, raw in overrides.items():
            if raw is not None:
                values[key] = _coerce(key, raw, source=f"--{key.replace('_', '-')}")
        try:
            return cls(**values)
        except TypeError as exc:  # unknown key
            raise ConfigError(str(exc)) from exc

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser()


_FIELD_TYPES = {f.name: f.type for f in fields(Config)}


def _check(ok: bool, name: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"setting {name} (CALLSCRIBE_{name.upper()}): {why}")


def _coerce(key: str, raw: Any, source: str) -> Any:
    """Turn a string (env) or TOML value into the field's type; errors name the source."""
    if key not in _FIELD_TYPES:
        raise ConfigError(f"{source}: unknown setting {key!r}")
    kind = _FIELD_TYPES[key]
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            s = str(raw).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if kind == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(f"not an integer: {raw!r}")
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("tuple[float"):
            items = raw if isinstance(raw, (list, tuple)) else [x for x in str(raw).split(",") if x.strip()]
            return tuple(float(x) for x in items)
        if kind.startswith("tuple[str"):
            items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
            return tuple(str(x).strip() for x in items if str(x).strip())
        return str(raw)
    except (ValueError, TypeError) as exc:  # TypeError: a TOML list/table where a number belongs
        raise ConfigError(f"{source}: {exc}") from exc


__all__ = ["Config"]
