"""Reading call events back from Redis (tests, the CLI, later the keyword workers)."""

from __future__ import annotations

import logging

from callscribe.config import Config
from callscribe.errors import SchemaError
from callscribe.events import Event, Transcript, from_fields

from . import keys

log = logging.getLogger(__name__)


def _parse(entries) -> list[Event]:
    out: list[Event] = []
    for entry_id, fields in entries:
        try:
            out.append(from_fields(fields))
        except SchemaError as exc:  # a newer writer or a foreign entry: skip it, say so
            log.warning("skipping stream entry %s: %s", entry_id, exc)
    return out


async def read_call(client, cfg: Config, call_id: str) -> list[Event]:
    """Every event of one call, in order (XRANGE of its stream)."""
    return _parse(await client.xrange(keys.call_stream(cfg, call_id)))


async def read_finals(client, cfg: Config, call_id: str | None = None) -> list[Transcript | Event]:
    """The global stream (call start/end and finals), optionally of one call."""
    events = _parse(await client.xrange(keys.finals_stream(cfg)))
    return [e for e in events if call_id is None or e.call_id == call_id]
