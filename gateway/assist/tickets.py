"""Tickets submitted from the agent desk (智能化快捷派单, the second half: the draft is keyword/assist/ticket.py).

A submission becomes a typed :class:`~callscribe.events.Ticket` written once (marker ``{prefix}:ticket:{id}``, the
``{prefix}:tickets`` entry and, while it exists, an entry in the call's own stream, in one Lua script, so a
resubmission with the same ticket id is a no-op). From that
stream the store ingest files it (gateway/store/ingest.py) and every gateway's board puts it in the supervisor's
callback queue (gateway/web/board.py). The outbound webhook is enqueued by :func:`send_ticket_webhook`, the one
call site for it, after the ticket is in its stream; the sender drops a repeat by the ticket id, so a client retry
after a failure re-sends safely.

Text the agent typed (summary, field values) is stored redacted when the deployment stores transcripts redacted
(``redact_stored_text``), and always leaves in a webhook redacted, with the caller's number masked.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from callscribe.config import Config
from callscribe.events import Ticket, to_fields
from callscribe.gateway.store.base import TicketRecord, ticket_record
from callscribe.gateway.webhooks import aenqueue_webhook
from callscribe.keyword.redact import redact
from callscribe.pii import for_role, mask_number, text_for
from callscribe.stream import keys

from .text import clean_text

__all__ = ["TICKET_ID", "TicketBody", "build_ticket", "send_ticket_webhook", "submit_ticket", "ticket_id_for",
           "ticket_json", "webhook_payload"]

TICKET_ID = r"^[A-Za-z0-9_.:@+-]{1,160}$"
"""Ticket ids: ASCII without spaces (they are the webhook's idempotency key, an HTTP header)."""
TICKET_TYPE = r"^[a-z0-9][a-z0-9_.-]{0,63}$"

# KEYS: marker, tickets stream, the call's stream; ARGV: ttl_s, maxlen, call maxlen, call id, field, value, ...
# The call's stream gets it only while it exists (a ticket on an old call must not recreate it without its TTL).
# The marker holds the call id: a status report arriving before the store has the ticket finds its call there.
SUBMIT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 5))
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 5))
end
redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[1])
return 1
"""

Line = Annotated[str, Field(max_length=2000), AfterValidator(lambda v: clean_text(v, multiline=True))]
FieldName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Short = Annotated[str, Field(max_length=200), AfterValidator(clean_text)]


class TicketBody(BaseModel):
    """A ticket as the agent submits it (usually the draft's ``submit`` object, edited)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=TICKET_TYPE, description="the ticket type, e.g. the draft's (broadband_repair, billing_review)")
    priority: Literal["low", "medium", "high", "urgent"]
    fields: dict[FieldName, Line] = Field(default_factory=dict, max_length=50, description="field name -> value")
    summary: list[Line] | Line = Field(default_factory=list, description="lines (or one text) of the summary")
    ticket_id: str | None = Field(None, pattern=TICKET_ID, description="idempotency: default {call_id}:{type}")
    title: Short = ""
    subtype: Short = ""

    def summary_lines(self) -> tuple[str, ...]:
        lines = self.summary.splitlines() if isinstance(self.summary, str) else self.summary
        return tuple(line.strip() for line in lines if line.strip())[:20]


def ticket_id_for(call_id: str, body: TicketBody) -> str:
    """The ticket's identity: the client's, else ``{call_id}:{type}`` (one ticket of a type per call; a second
    one of the same type needs its own id)."""
    return body.ticket_id or f"{call_id}:{body.type}"


def build_ticket(cfg: Config, call_id: str, body: TicketBody, by: str, agent_id: str = "", caller: str = "",
                 intent: str = "") -> Ticket:
    """The typed ticket of a submission (text redacted when transcripts are stored redacted)."""
    scrub = redact if cfg.redact_stored_text else (lambda s: s)
    return Ticket(
        ticket_id=ticket_id_for(call_id, body), call_id=call_id, ticket_type=body.type, priority=body.priority,
        summary=tuple(scrub(line) for line in body.summary_lines()),
        fields={k: scrub(v) for k, v in body.fields.items() if v.strip()}, title=body.title, subtype=body.subtype, intent=intent,
        caller=caller, agent_id=agent_id, by=by,
    )


async def submit_ticket(redis: Any, cfg: Config, ticket: Ticket) -> bool:
    """Write the ticket once to the tickets stream (and to its call's stream, so the agent desk following the call
    sees it); False when its id was submitted before (nothing written)."""
    argv: list[str] = [str(cfg.call_stream_ttl_s), str(cfg.global_stream_maxlen), str(cfg.call_stream_maxlen), ticket.call_id]
    for k, v in to_fields(ticket).items():
        argv += [k, v]
    written = await redis.eval(SUBMIT_LUA, 3, keys.ticket_marker(cfg, ticket.ticket_id), keys.tickets_stream(cfg),
                               keys.call_stream(cfg, ticket.call_id), *argv)
    return bool(int(written))


def ticket_json(t: TicketRecord | Ticket, role: str, stored_redacted: bool = True,
                labels: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """A ticket as ``role`` may see it: numbers masked (callscribe/pii.py), the typed text (summary, field
    values, the ticketing system's status note) as that role reads text; ``labels`` (field name -> {language: label}, gateway/assist/labels.py) of its
    fields, so the page names them in the viewer's language."""
    d = (ticket_record(t) if isinstance(t, Ticket) else t).to_dict()
    d["summary"] = [text_for(role, line, stored_redacted) for line in d["summary"]]
    d["fields"] = {k: text_for(role, v, stored_redacted) for k, v in d["fields"].items()}
    d["status_note"] = text_for(role, d["status_note"], stored_redacted)
    d["labels"] = {k: dict(labels[k]) for k in d["fields"] if labels and k in labels}
    return for_role(role, d, stored_redacted)


def webhook_payload(t: Ticket) -> dict[str, Any]:
    """What the ticket webhook carries: the ticket with its text redacted and numbers masked (it leaves the
    building; the callback team's own tools read the number from the store)."""
    d = ticket_record(t).to_dict()
    d["summary"] = [redact(line) for line in d["summary"]]
    d["fields"] = {k: redact(v) for k, v in d["fields"].items()}
    d["caller"] = mask_number(d["caller"]) if d["caller"] else ""
    return for_role("webhook", d, True)


async def send_ticket_webhook(redis: Any, cfg: Config, ticket: Ticket, sender: Any = None) -> str:
    """THE call site of the outbound ticket webhook (gateway/webhooks, the one sender): enqueue kind ``ticket``
    keyed by the ticket id, durably in Redis, through the gateway's ``WebhookSender`` when it runs one, else with
    the gateway's Redis client; returns the delivery id (the first one's on a repeat)."""
    if sender is not None:
        return await sender.enqueue("ticket", webhook_payload(ticket), ticket.ticket_id)
    return await aenqueue_webhook(redis, cfg, "ticket", webhook_payload(ticket), ticket.ticket_id)
