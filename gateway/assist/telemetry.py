"""The agent desk's card telemetry: what it did with each assist card (shown, clicked, used, dismissed), to the
``{prefix}:assist_telemetry`` stream (the store ingest files it, one row per call, card and action), and the
adoption report over the store (gateway/store/base.py ``adoption_report``: used / shown per card and per agent)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from callscribe.config import Config
from callscribe.events import AssistTelemetry, to_fields
from callscribe.gateway.store.base import TranscriptStore, adoption_report
from callscribe.stream import keys

from .text import clean_text

__all__ = ["CARD_KINDS", "TelemetryBody", "adoption", "record_telemetry"]

CARD_KINDS = ("scenario", "step_done", "step_prompt", "knowledge", "offer", "ticket", "history")
"""An assist card's event type without ``assist_``, and ``history`` for the caller-history banner."""


class TelemetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(pattern=r"^[A-Za-z0-9_.:@+-]{1,128}$")
    card_kind: Literal["scenario", "step_done", "step_prompt", "knowledge", "offer", "ticket", "history"]
    card_id: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(clean_text)] = Field(
        description="scenario id, step id, knowledge card id, offer id, ticket type, or the call id for history")
    action: Literal["shown", "clicked", "used", "dismissed"]


async def record_telemetry(redis: Any, cfg: Config, event: AssistTelemetry) -> None:
    await redis.xadd(keys.assist_telemetry_stream(cfg), to_fields(event), maxlen=cfg.global_stream_maxlen, approximate=True)


def adoption(store: TranscriptStore, since_ms: int | None = None, until_ms: int | None = None) -> dict[str, Any]:
    return {"since_ms": since_ms, "until_ms": until_ms, **adoption_report(store.assist_counts(since_ms, until_ms))}
