"""A ticket's status, reported back by the ticketing system (CRM) that received it by webhook.

Tickets leave by the ticket webhook (gateway/assist/tickets.py); the agent who takes the caller's next call needs to
know what became of them (服务无缝衔接: "ticket and its status" in the caller's history). The CRM reports each
change to ``POST /api/v1/tickets/{ticket_id}/status`` (app.py: signed like our webhooks, or an integration token):
``open`` | ``in_progress`` | ``resolved`` | ``closed``, an optional note and its own id for the ticket.

A report becomes a :class:`~callscribe.events.TicketStatus` written, in one Lua script, to the tickets stream (the
store ingest files it after the ticket, which is on the same stream: gateway/store/ingest.py) and to the call's
stream while it exists (a desk following the call sees it). The script keeps the last report of each ticket
(``keys.ticket_status_key``) so that:

* **a repeat changes nothing**: a CRM retries on a lost answer; a report saying what the ticket already says
  (same status, note and external id) is answered ``unchanged`` and written nowhere;
* **an older change never wins**: ``changed_at_ms`` (the CRM's change time; the receive time when absent) older
  than the last report's is answered ``stale`` (a late retry of ``in_progress`` after ``resolved``). The store
  applies the same rule, so a redelivered stream entry cannot regress it either.

Where the Redis key has expired (a ticket older than ``call_stream_ttl_s``) the store's row is the last report.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from callscribe.config import Config
from callscribe.events import TicketStatus, now_ms, to_fields
from callscribe.gateway.store.base import TranscriptStore
from callscribe.keyword.redact import redact
from callscribe.stream import keys

from .text import clean_text

__all__ = ["CLOSED_STATUSES", "TICKET_STATUSES", "StatusBody", "TicketRef", "find_ticket", "record_status", "status_event"]

TICKET_STATUSES = ("open", "in_progress", "resolved", "closed")
CLOSED_STATUSES = ("resolved", "closed")
"""Statuses that take a ticket off the caller history's open list."""

# KEYS: the ticket's status key, the tickets stream, the call's stream
# ARGV: ttl_s, maxlen, call maxlen, digest, at_ms, seed digest, seed at_ms, call known (1/0), field, value, ...
# Returns 1 written, 0 unchanged (same digest as the last report), -1 stale (older than the last report).
STATUS_LUA = """
local last = redis.call('HMGET', KEYS[1], 'digest', 'at_ms')
local digest, at = last[1], last[2]
if not digest then digest, at = ARGV[6], ARGV[7] end
if digest == ARGV[4] then return 0 end
if tonumber(ARGV[5]) < tonumber(at) then return -1 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 9))
if ARGV[8] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 9))
end
redis.call('HSET', KEYS[1], 'digest', ARGV[4], 'at_ms', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

Note = Annotated[str, Field(max_length=2000), AfterValidator(lambda v: clean_text(v, multiline=True))]
ExternalId = Annotated[str, Field(max_length=200), AfterValidator(clean_text)]


class StatusBody(BaseModel):
    """What the ticketing system reports (the JSON body, signed byte for byte when signed)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["open", "in_progress", "resolved", "closed"]
    note: Note = Field("", description="free text shown with the status (the CRM's words)")
    external_id: ExternalId = Field("", description="the ticket's id in the ticketing system (kept once given)")
    changed_at_ms: int | None = Field(None, ge=0, le=10**15,
                                      description="when it changed there, epoch ms; default: when received")


@dataclass(frozen=True, slots=True)
class TicketRef:
    """A known ticket: its call and the last status on record (the store's; defaults while only Redis knows it)."""

    ticket_id: str
    call_id: str
    status: str = "open"
    note: str = ""
    external_id: str = ""
    status_at_ms: int = 0


async def find_ticket(redis: Any, cfg: Config, store: TranscriptStore, ticket_id: str) -> TicketRef | None:
    """The ticket from the store, else from its submission marker (submitted, not filed yet); None if unknown."""
    t = await asyncio.to_thread(store.ticket, ticket_id)
    if t is not None:
        return TicketRef(t.ticket_id, t.call_id, t.status, t.status_note, t.external_id, t.status_at_ms)
    marker = await redis.get(keys.ticket_marker(cfg, ticket_id))
    if marker is None:
        return None
    call_id = marker.decode() if isinstance(marker, bytes) else str(marker)
    return TicketRef(ticket_id, "" if call_id == "1" else call_id)  # "1": a marker from before status reports


def _digest(status: str, note: str, external_id: str) -> str:
    return hashlib.sha256(json.dumps([status, note, external_id], ensure_ascii=False).encode("utf-8")).hexdigest()


def status_event(cfg: Config, ref: TicketRef, body: StatusBody, by: str) -> TicketStatus:
    """The typed report (``changed_at_ms`` defaults to now: the receive time). The note is text from outside
    (a CRM agent may have typed a phone number into it): stored redacted when transcripts are
    (``redact_stored_text``), like the agent's ticket text; QA reads it redacted anyway (``ticket_json``)."""
    note = redact(body.note) if cfg.redact_stored_text else body.note
    return TicketStatus(ref.ticket_id, ref.call_id, body.status, note, body.external_id, by,
                        body.changed_at_ms if body.changed_at_ms is not None else now_ms())


async def record_status(redis: Any, cfg: Config, ref: TicketRef, event: TicketStatus) -> Literal["changed", "unchanged", "stale"]:
    """Write the report once (see the module docstring): ``changed``, ``unchanged`` (a repeat) or ``stale``."""
    seed = _digest(ref.status, ref.note, ref.external_id)
    argv: list[str] = [str(cfg.call_stream_ttl_s), str(cfg.global_stream_maxlen), str(cfg.call_stream_maxlen),
                       _digest(event.status, event.note, event.external_id), str(event.changed_at_ms), seed,
                       str(ref.status_at_ms), "1" if event.call_id else "0"]
    for k, v in to_fields(event).items():
        argv += [k, v]
    result = int(await redis.eval(STATUS_LUA, 3, keys.ticket_status_key(cfg, event.ticket_id), keys.tickets_stream(cfg),
                                  keys.call_stream(cfg, event.call_id), *argv))
    return "changed" if result == 1 else "unchanged" if result == 0 else "stale"
