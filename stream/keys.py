"""Redis key names. Everything lives under ``Config.key_prefix`` (default ``callscribe``).

| key | type | holds |
|---|---|---|
| ``{prefix}:call:{call_id}`` | stream | every event of one call in order: call_started, partials, finals, call_ended. MAXLEN ~ ``call_stream_maxlen``; expires ``call_stream_ttl_s`` after its last write |
| ``{prefix}:finals`` | stream | every call's call_started, finals, dtmf and call_ended, never partials. MAXLEN ~ ``global_stream_maxlen``; no expiry |
| ``{prefix}:dedup:{segment_id}:{revision}`` | string ``1`` | write-once marker of one transcript revision; makes a retried write a no-op. Expires after ``call_stream_ttl_s`` |
| ``{prefix}:dedup:{call_id}/call:started`` / ``...:ended`` | string ``1`` | the same marker for a call's call_started / call_ended |
| ``{prefix}:dedup:{call_id}/dtmf:{seq}`` | string ``1`` | the same marker for a call's DTMF events (they go to both streams) |

Segment ids are ``{call_id}/{channel}/{seq}`` (see the pipeline), so markers of different calls never collide
and ``{call_id}/call`` is never a segment id. Entry fields are ``callscribe.events.to_fields(event)``:
``type``, ``v`` and the event's fields as strings; entry ids are Redis's own (``<ms>-<seq>``).
"""

from __future__ import annotations

from callscribe.config import Config
from callscribe.events import CallEnded, CallStarted, Dtmf, Event, Transcript


def call_stream(cfg: Config, call_id: str) -> str:
    """The per-call stream: every event of ``call_id``."""
    return f"{cfg.key_prefix}:call:{call_id}"


def finals_stream(cfg: Config) -> str:
    """The global stream: call start/end and finals of every call."""
    return f"{cfg.key_prefix}:finals"


def dedup_key(cfg: Config, segment_id: str, revision: int | str) -> str:
    """Write-once marker of (segment_id, revision)."""
    return f"{cfg.key_prefix}:dedup:{segment_id}:{revision}"


def event_dedup_key(cfg: Config, event: Event) -> str:
    """The marker that makes writing ``event`` idempotent (a call's start and end count as segments too)."""
    if isinstance(event, Transcript):
        return dedup_key(cfg, event.segment_id, event.revision)
    if isinstance(event, CallStarted):
        return dedup_key(cfg, f"{event.call_id}/call", "started")
    if isinstance(event, CallEnded):
        return dedup_key(cfg, f"{event.call_id}/call", "ended")
    if isinstance(event, Dtmf):
        return dedup_key(cfg, f"{event.call_id}/dtmf", event.seq)
    raise TypeError(f"not a callscribe event: {event!r}")


__all__ = ["call_stream", "finals_stream", "dedup_key", "event_dedup_key"]
