"""Redis key names. Everything lives under ``Config.key_prefix`` (default ``callscribe``).

| key | type | holds |
|---|---|---|
| ``{prefix}:call:{call_id}`` | stream | every event of one call in order: call_started, partials, finals, call_ended. MAXLEN ~ ``call_stream_maxlen``; expires ``call_stream_ttl_s`` after its last write |
| ``{prefix}:finals`` | stream | every call's call_started, finals and call_ended (no partials). MAXLEN ~ ``global_stream_maxlen`` |
| ``{prefix}:dedup:{segment_id}:{revision}`` | string | write-once marker that makes retried writes idempotent; expires with the call stream |

Entry fields are ``callscribe.events.to_fields(event)``: ``type``, ``v`` and the event's fields as strings.
"""

from __future__ import annotations

from callscribe.config import Config


def call_stream(cfg: Config, call_id: str) -> str:
    return f"{cfg.key_prefix}:call:{call_id}"


def finals_stream(cfg: Config) -> str:
    return f"{cfg.key_prefix}:finals"


def dedup_key(cfg: Config, segment_id: str, revision: int | str) -> str:
    return f"{cfg.key_prefix}:dedup:{segment_id}:{revision}"
