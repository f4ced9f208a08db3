"""Reading call events back from Redis (tests, the CLI, later the keyword workers).

Works with any ``redis.asyncio`` client, with or without ``decode_responses``. Streams are read in pages of
``PAGE`` entries so a long global stream never arrives as one huge reply. Entries that do not parse (a newer
schema, a foreign writer) are logged and skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from callscribe.config import Config
from callscribe.errors import SchemaError
from callscribe.events import Event, Transcript, from_fields

from . import keys

log = logging.getLogger(__name__)

PAGE = 1000


async def _xrange_all(client: Any, key: str) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    start: str = "-"
    while True:
        page = await client.xrange(key, min=start, max="+", count=PAGE)
        out.extend(page)
        if len(page) < PAGE:
            return out
        last = page[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else last)


def _parse(key: str, entries: list[tuple[Any, Any]]) -> list[Event]:
    events: list[Event] = []
    for entry_id, fields in entries:
        try:
            events.append(from_fields(fields))
        except SchemaError as exc:
            log.warning("skipping entry %s of %s: %s", entry_id, key, exc)
    return events


async def read_call(client: Any, cfg: Config, call_id: str) -> list[Event]:
    """Every event of one call, in order (its per-call stream); [] once the stream expired."""
    key = keys.call_stream(cfg, call_id)
    return _parse(key, await _xrange_all(client, key))


async def read_global(client: Any, cfg: Config, call_id: str | None = None) -> list[Event]:
    """The whole global stream in order (call_started, finals, call_ended), optionally of one call."""
    key = keys.finals_stream(cfg)
    events = _parse(key, await _xrange_all(client, key))
    return [e for e in events if call_id is None or e.call_id == call_id]


async def read_finals(client: Any, cfg: Config, call_id: str | None = None) -> list[Transcript]:
    """The finals in the global stream, in order, optionally of one call (start/end: :func:`read_global`)."""
    return [e for e in await read_global(client, cfg, call_id) if isinstance(e, Transcript)]


__all__ = ["read_call", "read_global", "read_finals"]
