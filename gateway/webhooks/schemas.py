"""JSON Schema (draft 2020-12) of every webhook payload, generated from the typed classes that make them: the events of
callscribe/events.py (``alert``, ``surge``, ``call_summary``, ``ticket_status``), the stored ticket
(gateway/store/base.py ``TicketRecord``: ``ticket``) and the report (``report``, the shape of
callscribe/reports/metrics.py). ``python -m callscribe.gateway.webhooks.schemas docs/schemas`` writes them; a test checks
the files in docs/schemas are what this module generates, and that real payloads validate against them.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from callscribe.events import SCHEMA_VERSION, Alert, CallSummary, Quote, Surge, TicketStatus

from .policy import SCHEMA_VERSION as ENVELOPE_VERSION

__all__ = ["payload_schemas", "envelope_schema", "write"]

BASE = "https://callscribe.invalid/schemas/"  # an identifier, not a location: nothing is fetched
_SCALARS = {"str": {"type": "string"}, "int": {"type": "integer"}, "float": {"type": "number"}, "bool": {"type": "boolean"},
            "float | None": {"type": ["number", "null"]}, "bool | None": {"type": ["boolean", "null"]}}


def _field_schema(kind: str) -> dict[str, Any]:
    kind = kind.replace("typing.", "")
    if kind in _SCALARS:
        return dict(_SCALARS[kind])
    if kind in ("tuple[str, ...]", "list[str]"):
        return {"type": "array", "items": {"type": "string"}}
    if kind in ("Mapping[str, str]", "dict[str, str]"):
        return {"type": "object", "additionalProperties": {"type": "string"}}
    if kind == "tuple[Quote, ...]":
        return {"type": "array", "items": _dataclass_schema(Quote)}
    if kind.startswith("Literal"):
        return {"type": "string"}
    raise ValueError(f"no JSON Schema mapping for field type {kind!r}")


def _dataclass_schema(cls: type, event: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if event:
        props["type"] = {"const": cls.TYPE}
        props["v"] = {"type": "integer", "minimum": 1, "maximum": SCHEMA_VERSION}
    for f in dataclasses.fields(cls):
        props[f.name] = _field_schema(str(f.type))
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": True}


def _ticket_schema() -> dict[str, Any]:
    from callscribe.gateway.store.base import TicketRecord

    s = _dataclass_schema(TicketRecord)
    s["properties"]["status"] = {"enum": ["open", "in_progress", "resolved", "closed"]}
    s["properties"]["caller"]["description"] = "masked (138****5678): a number never leaves in full"
    return s


def _report_schema() -> dict[str, Any]:
    rates = {"type": "object", "required": ["calls", "fcr_rate", "repeat_rate", "unresolved_rate"],
             "properties": {"calls": {"type": "integer"}, "fcr": {"type": "integer"},
                            "fcr_rate": {"type": ["number", "null"]}, "repeat_rate": {"type": ["number", "null"]},
                            "unresolved_rate": {"type": ["number", "null"]}, "aht_s": {"type": ["number", "null"]},
                            "talk_ratio": {"type": ["number", "null"]}, "silence_ratio": {"type": ["number", "null"]},
                            "overtalk_ratio": {"type": ["number", "null"]}, "sentiment_avg": {"type": ["number", "null"]},
                            "qa_avg": {"type": ["number", "null"]}, "tickets": {"type": "integer"},
                            "alert_rate": {"type": ["number", "null"]}}}
    rows = {"type": "array", "items": rates}
    return {"type": "object",
            "required": ["since_ms", "until_ms", "timezone", "fcr_window_days", "totals", "by_intent", "by_queue", "by_agent",
                         "by_day", "by_hour", "alerts", "reasons"],
            "properties": {"since_ms": {"type": "integer"}, "until_ms": {"type": "integer"}, "timezone": {"type": "string"},
                           "fcr_window_days": {"type": "number"}, "fcr_final_before_ms": {"type": "integer"},
                           "totals": rates, "by_intent": rows, "by_queue": rows, "by_agent": rows, "by_day": rows, "by_hour": rows,
                           "alerts": {"type": "array", "items": {"type": "object", "required": ["category", "calls", "rate"]}},
                           "reasons": {"type": "array", "items": {"type": "object", "required": ["reason", "calls"]}},
                           "movers": {"type": "array", "items": {"type": "object",
                                                                 "required": ["intent", "calls", "previous_calls", "z", "q", "direction"]}},
                           "topics": {"type": ["array", "null"], "items": {"type": "object", "required": ["text", "calls", "call_ids"]}}}}


def payload_schemas() -> dict[str, dict[str, Any]]:
    """``kind -> JSON Schema`` of the ``data`` each kind carries."""
    out = {"alert": _dataclass_schema(Alert, True), "surge": _dataclass_schema(Surge, True),
           "call_summary": _dataclass_schema(CallSummary, True), "ticket_status": _dataclass_schema(TicketStatus, True),
           "ticket": _ticket_schema(), "report": _report_schema()}
    titles = {"alert": "A supervisor alert (callscribe.events.Alert); quote redacted, numbers masked",
              "surge": "A surge of calls on one topic (callscribe.events.Surge)",
              "call_summary": "What analytics concluded about a finished call (callscribe.events.CallSummary); caller masked",
              "ticket_status": "A ticket's status as the ticketing system reported it (callscribe.events.TicketStatus); note redacted",
              "ticket": "A ticket submitted from the agent desk (the store's TicketRecord); text redacted, caller masked",
              "report": "A report of a period (callscribe.reports.metrics.build_report), sent by `callscribe report --webhook`"}
    for kind, s in out.items():
        s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        s["$id"] = f"{BASE}{kind}.schema.json"
        s["title"] = titles[kind]
    return out


def envelope_schema() -> dict[str, Any]:
    """The request body of every webhook: the envelope around ``data``."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{BASE}envelope.schema.json",
            "title": "Webhook request body (gateway/webhooks/policy.py Delivery.body)", "type": "object",
            "required": ["v", "id", "kind", "key", "created_ms", "data"],
            "properties": {"v": {"const": ENVELOPE_VERSION}, "id": {"type": "string", "pattern": r"^\d+-\d+$"},
                           "kind": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$"},
                           "key": {"type": "string", "minLength": 1, "maxLength": 200},
                           "created_ms": {"type": "integer"}, "data": {"type": "object"}}}


def write(folder: str | Path) -> list[Path]:
    """Write ``envelope.schema.json`` and ``{kind}.schema.json`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, schema in (("envelope", envelope_schema()), *payload_schemas().items()):
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(schema, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        files.append(path)
    return files


if __name__ == "__main__":
    for p in write(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas"):
        print(p)
