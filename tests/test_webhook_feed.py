"""Outbound webhooks per event type (gateway/webhooks/feed.py) through the one sender, dead-letter replay
(gateway/webhooks/replay.py) and the JSON Schema of every payload (docs/schemas). The sender's own guarantees (signing,
retries with backoff, a receiver down for a while, restarts) are tests/test_webhooks.py's; its receiver is reused here.
The minute-long outage across every kind is benchmarks/webhook_outage.py --feed (docs/reports.md)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import redis

from callscribe.events import Alert, CallSummary, IntentUpdate, Surge, Ticket, TicketStatus, to_fields
from callscribe.gateway.assist.tickets import webhook_payload
from callscribe.gateway.store import SqliteStore
from callscribe.gateway.webhooks import WebhookFeed, dead_letters, outputs, replay
from callscribe.gateway.webhooks.schemas import envelope_schema, payload_schemas
from callscribe.reports.metrics import build_report
from callscribe.reports.sample import load, month
from callscribe.stream import keys

from .test_webhooks import Receiver, config, sender_for, wait_for

ROOT = Path(__file__).parent.parent
ALERT = Alert("c1", "c1/a1", "escalation.manager", "escalation", "high", "customer", "叫你们经理来 我的电话13812345678", 1000, 2000)
SURGE = Surge("s-1", "intent", "broadband_outage", 600, 14, 2.5, 5.6, ("c1", "c2"))
SUMMARY = CallSummary("c1", "broadband_outage", 0.7, ("escalation",), True, ("follow_up_promised",), caller="13812345678",
                      agent_id="a7", started_at_ms=1_796_659_200_000, duration_ms=120_000, sentiment="negative",
                      sentiment_score=-0.4)
STATUS = TicketStatus("c1:repair", "c1", "in_progress", note="工程师明天上门 电话13812345678", external_id="CRM-1",
                      changed_at_ms=1_796_660_000_000)


def test_outputs_per_event_type_with_numbers_masked_and_text_redacted():
    (kind, key, alert), = outputs(ALERT)
    assert (kind, key) == ("alert", "c1/a1") and "13812345678" not in alert["quote"]
    (kind, key, summary), = outputs(SUMMARY)
    assert (kind, key, summary["caller"]) == ("call_summary", "c1/summary", "138****5678")
    assert outputs(SURGE)[0][:2] == ("surge", "s-1")
    (kind, key, status), = outputs(STATUS)
    assert (kind, key) == ("ticket_status", "c1:repair@1796660000000") and "13812345678" not in status["note"]
    assert outputs(IntentUpdate("c1", 1, "x", "x", 0.5, "", 0.0, 3)) == []


def test_every_payload_has_its_json_schema_in_docs_and_real_payloads_validate(tmp_path):
    schemas = payload_schemas()
    for name, schema in (("envelope", envelope_schema()), *schemas.items()):
        on_disk = json.loads((ROOT / "docs" / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8"))
        assert on_disk == schema, f"docs/schemas/{name}.schema.json is stale: python -m callscribe.gateway.webhooks.schemas"
        jsonschema.Draft202012Validator.check_schema(schema)
    for event in (ALERT, SURGE, SUMMARY, STATUS):
        for kind, _, payload in outputs(event):
            jsonschema.validate(payload, schemas[kind])
    jsonschema.validate(webhook_payload(Ticket("c1:repair", "c1", "repair", "high", summary=("宽带断了",), caller="13812345678")),
                        schemas["ticket"])
    store = SqliteStore(tmp_path / "s.db")
    load(store, month(1_796_659_200_000, days=2, calls_per_day=10, callers=10))
    jsonschema.validate(json.loads(json.dumps(build_report(store.reports, 1_796_659_200_000, 1_796_659_200_000 + 2 * 86_400_000))),
                        schemas["report"])
    store.close()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**outputs(ALERT)[0][2], "start_ms": "soon"}, schemas["alert"])


@pytest.mark.integration
async def test_feed_delivers_each_kind_once_signed_and_a_dead_letter_replays_with_its_key(tmp_path, redis_server):
    """Events on the alerts, insights and tickets streams reach a real receiver as one webhook each (an alert written
    twice, as a redelivered analytics output would be, goes out once). The alert receiver first refuses (400: dead
    letter), a catch-all receiver takes everything; after the fix, `replay` sends the dead letter again to the alert
    receiver only, under the same Idempotency-Key with a new delivery id."""
    refuse = {"on": True}
    alerts_rx = Receiver(lambda req: 400 if refuse["on"] else 200)
    all_rx = Receiver()
    await alerts_rx.start()
    await all_rx.start()
    cfg = config(tmp_path, f"alert={alerts_rx.url('/alerts')}", f"*={all_rx.url('/all')}", redis_url=redis_server.url,
                 key_prefix="wf")
    sender = sender_for(cfg, redis_server)
    feed = WebhookFeed(cfg, redis_server.url, consumer="f1")
    await sender.start()
    await feed.start()
    r = redis.Redis.from_url(redis_server.url)
    try:
        r.xadd(keys.alerts_stream(cfg), to_fields(ALERT))
        r.xadd(keys.alerts_stream(cfg), to_fields(ALERT))  # the same alert again
        r.xadd(keys.alerts_stream(cfg), to_fields(SURGE))
        r.xadd(keys.insights_stream(cfg), to_fields(SUMMARY))
        r.xadd(keys.insights_stream(cfg), to_fields(IntentUpdate("c1", 1, "x", "x", 0.5, "", 0.0, 3)))  # not a webhook
        r.xadd(keys.tickets_stream(cfg), to_fields(STATUS))
        assert await feed.drain(10)
        assert await sender.drain(15)
        got = {(req.headers["x-callscribe-event"], req.headers["idempotency-key"]) for req in all_rx.requests}
        assert got == {("alert", "c1/a1"), ("surge", "s-1"), ("call_summary", "c1/summary"),
                       ("ticket_status", "c1:repair@1796660000000")}
        assert len(all_rx.requests) == 4 and all(req.valid for req in all_rx.requests)
        schemas = payload_schemas()
        for req in all_rx.requests:
            jsonschema.validate(req.json, envelope_schema())
            jsonschema.validate(req.json["data"], schemas[req.json["kind"]])
        first = alerts_rx.requests[0]
        assert len(alerts_rx.requests) == 1 and first.headers["idempotency-key"] == "c1/a1"
        dead = dead_letters(r, cfg)
        assert [(d.kind, d.key, d.status) for d in dead] == [("alert", "c1/a1", "400")]

        refuse["on"] = False  # the receiver is fixed
        result = replay(r, cfg)
        assert len(result["replayed"]) == 1 and not result["left"]
        await wait_for(lambda: len(alerts_rx.requests) == 2, 10)
        again = alerts_rx.requests[1]
        assert again.headers["idempotency-key"] == first.headers["idempotency-key"] == "c1/a1"
        assert again.headers["x-callscribe-delivery"] != first.headers["x-callscribe-delivery"]
        assert again.json["data"] == first.json["data"] and again.valid
        assert await sender.drain(10)
        assert len(all_rx.requests) == 4  # the catch-all receiver, which had it, does not get it again
        assert dead_letters(r, cfg) == []
    finally:
        r.close()
        await feed.stop()
        await sender.stop()
        await alerts_rx.stop()
        await all_rx.stop()
