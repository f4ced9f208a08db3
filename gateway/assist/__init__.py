"""The gateway's side of agent assist: what the agent desk sends and asks for beyond the live cards.

keyword/assist/ is the pure core and keyword/worker.py writes its live cards to the streams; here are the outputs
the desk drives: tickets submitted from a call (:mod:`.tickets`: stream, store, callback queue, webhook), their status
reported back by the ticketing system (:mod:`.status`), a ticket draft on the agent's click (:mod:`.draft`), the
caller's history at call start (:mod:`.history`), the ticket field labels the pages show (:mod:`.labels`) and the
desk's card telemetry with its adoption report (:mod:`.telemetry`). Routes in gateway/web/app.py call these; who may call
is app.py's business and what each role sees is callscribe/pii.py's (``Api.view``).
"""

from __future__ import annotations

from .draft import draft_now
from .history import HISTORY_DAYS, caller_history
from .labels import TicketLabels, labels_for
from .status import TICKET_STATUSES, StatusBody, TicketRef, find_ticket, record_status, status_event
from .telemetry import CARD_KINDS, TelemetryBody, adoption, record_telemetry
from .tickets import TICKET_ID, TicketBody, build_ticket, send_ticket_webhook, submit_ticket, ticket_json, ticket_id_for

__all__ = ["CARD_KINDS", "HISTORY_DAYS", "TICKET_ID", "TICKET_STATUSES", "StatusBody", "TelemetryBody", "TicketBody",
           "TicketLabels", "TicketRef", "adoption", "build_ticket", "caller_history", "draft_now", "find_ticket",
           "labels_for", "record_status", "record_telemetry", "send_ticket_webhook", "status_event", "submit_ticket",
           "ticket_id_for", "ticket_json"]
