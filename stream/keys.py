"""Redis key names. Everything lives under ``Config.key_prefix`` (default ``callscribe``).

| key | type | holds |
|---|---|---|
| ``{prefix}:call:{call_id}`` | stream | every event of one call in order: call_started, partials, finals, call_ended. MAXLEN ~ ``call_stream_maxlen``; expires ``call_stream_ttl_s`` after its last write |
| ``{prefix}:finals`` | stream | every call's call_started, finals, dtmf and call_ended, never partials. MAXLEN ~ ``global_stream_maxlen``; no expiry |
| ``{prefix}:dedup:{segment_id}:{revision}`` | string ``1`` | write-once marker of one transcript revision; makes a retried write a no-op. Expires after ``call_stream_ttl_s`` |
| ``{prefix}:dedup:{call_id}/call:started`` / ``...:ended`` | string ``1`` | the same marker for a call's call_started / call_ended |
| ``{prefix}:dedup:{call_id}/dtmf:{seq}`` | string ``1`` | the same marker for a call's DTMF events (they go to both streams) |
| ``{prefix}:alerts`` | stream | supervisor alerts of every call and surge warnings (keyword/worker.py). MAXLEN ~ ``global_stream_maxlen`` |
| ``{prefix}:insights`` | stream | intent updates, provisional and final unresolved flags, call summaries of every call |
| ``{prefix}:callbacks`` | stream | the callback queue: final flags of calls left unresolved, with reasons and quotes |
| ``{prefix}:webhooks`` | stream | outbound webhook deliveries (gateway/webhooks): ``v``, ``kind``, ``key``, ``payload`` (JSON); the entry id is the delivery id. One consumer group ``webhooks:{endpoint_id}`` per configured receiver. MAXLEN ~ ``global_stream_maxlen`` |
| ``{prefix}:webhook:{kind}:{key}`` | string | write-once marker of one delivery (holds its delivery id): enqueueing the same kind and idempotency key again is a no-op. Expires after ``call_stream_ttl_s`` (at least ``webhook_max_age_s``) |
| ``{prefix}:webhooks:attempts`` | hash | ``{endpoint_id}/{delivery_id} -> {attempts}|{last error}`` of deliveries waiting for a retry; removed when delivered or dead-lettered |
| ``{prefix}:webhooks:dead`` | stream | webhook dead letters: deliveries refused for good (4xx) or out of attempts / age, with endpoint, attempts and the last error. MAXLEN ~ ``global_stream_maxlen`` |
| ``{prefix}:out:{identity}`` | string ``1`` | write-once marker of one analytics output (alert id, ``{call_id}/intent/{seq}``, ...) |
| ``{prefix}:live`` | hash | ``call_id -> {node_id}|{started_at_ms}`` of every live call: set with its call_started, removed with its call_ended (the same Lua script); the reaper (stream/liveness.py) ends calls whose node stopped heartbeating |
| ``{prefix}:node:{node_id}`` | string | a serving node's heartbeat; expires ``liveness.NODE_TTL_S`` after its last refresh |
| ``{prefix}:callid:{call_id}`` | string | claim of a call id (node id) taken before the call starts: a call id names one call for the life of its data (expires with ``call_stream_ttl_s``) |
| ``{prefix}:caller:{digits}`` | sorted set | a caller's recent calls (JSON) scored by start time, for repeat-caller detection; expires after the window |
| ``{prefix}:assist`` | stream | agent-assist cards of every call (scenario, step done, step prompt, knowledge, offer, ticket draft; keyword/worker.py, write-once as ``{call_id}/assist/{kind}/{seq}``); each also goes to its call's stream |
| ``{prefix}:tickets`` | stream | tickets submitted from the agent desk (``ticket`` events; gateway/assist/tickets.py) and the status the ticketing system reports for them (``ticket_status``; gateway/assist/status.py) |
| ``{prefix}:ticket:{ticket_id}`` | string | write-once marker of one submitted ticket, holding its call id (``1`` in markers written before status reports; a resubmission is a no-op); expires after ``call_stream_ttl_s`` |
| ``{prefix}:ticket_status:{ticket_id}`` | hash | ``digest``, ``at_ms``: the last status reported for the ticket, so a repeated report is a no-op and an older one is refused; expires ``call_stream_ttl_s`` after the last report |
| ``{prefix}:assist_telemetry`` | stream | what the agent desk did with each assist card (shown, clicked, used, dismissed) |
| ``{prefix}:scores`` | stream | QA: each finished call's ``scorecard`` (keyword/worker.py, write-once as ``{call_id}/scorecard``; also in the call's stream), reviewers' ``score_override``s and agents' ``score_appeal``s with their decisions (gateway/qa) |

Analytics outputs of a call (alerts, intent updates, flags, summary) and its assist cards are also appended to its
per-call stream, so a page following one call reads captions, insights and cards from one place.

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


def alerts_stream(cfg: Config) -> str:
    """Supervisor alerts and surge warnings."""
    return f"{cfg.key_prefix}:alerts"


def insights_stream(cfg: Config) -> str:
    """Intent updates, unresolved flags and call summaries."""
    return f"{cfg.key_prefix}:insights"


def callbacks_stream(cfg: Config) -> str:
    """The callback queue (final flags of unresolved calls)."""
    return f"{cfg.key_prefix}:callbacks"


def webhooks_stream(cfg: Config) -> str:
    """Outbound webhook deliveries (gateway/webhooks), one entry per enqueued delivery."""
    return f"{cfg.key_prefix}:webhooks"


def webhooks_dead_stream(cfg: Config) -> str:
    """Webhook deliveries given up on, with their last error."""
    return f"{cfg.key_prefix}:webhooks:dead"


def webhook_marker(cfg: Config, kind: str, key: str) -> str:
    """Write-once marker of the delivery of ``kind`` with idempotency key ``key`` (holds its delivery id)."""
    return f"{cfg.key_prefix}:webhook:{kind}:{key}"


def webhook_attempts(cfg: Config) -> str:
    """Hash of failed attempts of deliveries waiting for a retry."""
    return f"{cfg.key_prefix}:webhooks:attempts"


def output_marker(cfg: Config, identity: str) -> str:
    """Write-once marker of one analytics output."""
    return f"{cfg.key_prefix}:out:{identity}"


def caller_history(cfg: Config, caller_digits: str) -> str:
    """A caller's recent calls (sorted set)."""
    return f"{cfg.key_prefix}:caller:{caller_digits}"


def assist_stream(cfg: Config) -> str:
    """Agent-assist cards of every call."""
    return f"{cfg.key_prefix}:assist"


def tickets_stream(cfg: Config) -> str:
    """Tickets submitted from the agent desk."""
    return f"{cfg.key_prefix}:tickets"


def ticket_marker(cfg: Config, ticket_id: str) -> str:
    """Write-once marker of one submitted ticket."""
    return f"{cfg.key_prefix}:ticket:{ticket_id}"


def ticket_status_key(cfg: Config, ticket_id: str) -> str:
    """The last status reported for one ticket (not under ``ticket:``: a ticket id may itself end in ``:status``)."""
    return f"{cfg.key_prefix}:ticket_status:{ticket_id}"


def assist_telemetry_stream(cfg: Config) -> str:
    """The agent desk's card telemetry (shown / clicked / used / dismissed)."""
    return f"{cfg.key_prefix}:assist_telemetry"


def scores_stream(cfg: Config) -> str:
    """QA scorecards of finished calls, and the overrides and appeals of their answers."""
    return f"{cfg.key_prefix}:scores"


def live_calls(cfg: Config) -> str:
    """Hash of live calls: call_id -> ``{node_id}|{started_at_ms}``."""
    return f"{cfg.key_prefix}:live"


def node_heartbeat(cfg: Config, node_id: str) -> str:
    """A serving node's heartbeat key (expires when the node stops refreshing it)."""
    return f"{cfg.key_prefix}:node:{node_id}"


def call_claim(cfg: Config, call_id: str) -> str:
    """Claim of ``call_id`` for the life of its data."""
    return f"{cfg.key_prefix}:callid:{call_id}"


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


__all__ = [
    "call_stream", "finals_stream", "dedup_key", "event_dedup_key", "alerts_stream", "insights_stream",
    "callbacks_stream", "output_marker", "caller_history", "live_calls", "node_heartbeat", "call_claim",
    "webhooks_stream", "webhooks_dead_stream", "webhook_marker", "webhook_attempts",
    "assist_stream", "tickets_stream", "ticket_marker", "ticket_status_key", "assist_telemetry_stream",
    "scores_stream",
]
