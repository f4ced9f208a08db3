"""The gateway's side of agent assist: what the agent desk sends and asks for beyond the live cards.

keyword/assist/ is the pure core and keyword/worker.py writes its live cards to the streams; here are the outputs
the desk drives: tickets submitted from a call (:mod:`.tickets`: stream, store, callback queue, webhook), a ticket
draft on the agent's click (:mod:`.draft`), the caller's history at call start (:mod:`.history`) and the desk's
card telemetry with its adoption report (:mod:`.telemetry`). Routes in gateway/web/app.py call these; who may call
is app.py's business and what each role sees is callscribe/pii.py's (``Api.view``).
"""

from __future__ import annotations

from .draft import draft_now
from .history import HISTORY_DAYS, caller_history
from .telemetry import CARD_KINDS, TelemetryBody, adoption, record_telemetry
from .tickets import TicketBody, build_ticket, send_ticket_webhook, submit_ticket, ticket_json, ticket_id_for

__all__ = ["CARD_KINDS", "HISTORY_DAYS", "TelemetryBody", "TicketBody", "adoption", "build_ticket", "caller_history",
           "draft_now", "record_telemetry", "send_ticket_webhook", "submit_ticket", "ticket_id_for", "ticket_json"]
