"""A call recording's manifest: what the gateway (replay, rendition choice) and retention need to know.

One small JSON object per call (``<prefix>/manifest.json``), written when the recording opens (state
``recording``), when the audio is closed (``complete``, or ``failed`` with the reason) and when the redacted
rendition is stored. Versioned like callscribe/events.py: ``v`` is :data:`MANIFEST_VERSION`; a reader upgrades
older versions and refuses newer ones with :class:`~callscribe.errors.SchemaError`, so a rolling upgrade
never misreads a manifest. It holds no PII: no numbers, no text, only ids, times and offsets.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from callscribe.errors import SchemaError

from .timeline import TimeMap

MANIFEST_VERSION = 1
State = Literal["recording", "complete", "interrupted", "failed"]
STATES = ("recording", "complete", "interrupted", "failed")


@dataclass(frozen=True, slots=True)
class RedactedSpan:
    """A stretch of the recording replaced in the redacted rendition, in recording ms (all channels)."""

    start_ms: int
    end_ms: int
    kind: str  # phone | id_card | bank_card | email | address | digits | masked | segment


@dataclass(frozen=True, slots=True)
class Manifest:
    """``state``: ``recording`` while the call runs; ``complete`` once the audio is closed; ``interrupted``
    when the process died mid-call (found and closed at the next start: the audio up to about a second before
    the cut is there); ``failed`` when writing failed (disk full): the audio up to the failure is there.

    ``channels`` are the recording's channels in file order (``customer, agent`` for a two-leg call, ``mixed``
    for a mono one). ``time_map`` maps each channel's transcript time to recording time. ``redacted`` is the key
    of the redacted rendition ("" until it is made); it equals ``original`` when nothing had to be masked."""

    call_id: str
    prefix: str
    started_at_ms: int
    format: str
    sample_rate_hz: int
    channels: tuple[str, ...]
    original: str
    node: str = ""
    state: State = "recording"
    duration_ms: int = 0
    bytes: int = 0
    dropped_ms: int = 0
    """Audio lost because the writer fell behind (a disk too slow): written as silence, so times still hold."""
    error: str = ""
    ended_at_ms: int = 0
    time_map: TimeMap = field(default_factory=TimeMap)
    redacted: str = ""
    redaction: str = ""
    """silence | beep: what replaced the spans in the redacted rendition."""
    redacted_spans: tuple[RedactedSpan, ...] = ()
    v: int = MANIFEST_VERSION

    def replace(self, **changes: Any) -> "Manifest":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> bytes:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        d["time_map"] = self.time_map.to_json()
        d["redacted_spans"] = [[s.start_ms, s.end_ms, s.kind] for s in self.redacted_spans]
        d["v"] = MANIFEST_VERSION
        return json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> "Manifest":
        try:
            d = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise SchemaError(f"recording manifest is not JSON: {exc}") from exc
        if not isinstance(d, dict):
            raise SchemaError("recording manifest must be a JSON object")
        try:
            version = int(d.get("v", 1))
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"recording manifest has a bad version: {exc}") from exc
        if version > MANIFEST_VERSION:
            raise SchemaError(f"recording manifest v{version} is newer than this reader (v{MANIFEST_VERSION}); upgrade callscribe")
        d = _upgrade(d, version)
        try:
            state = str(d.get("state", "recording"))
            if state not in STATES:
                raise ValueError(f"unknown state {state!r}")
            return cls(
                call_id=str(d["call_id"]),
                prefix=str(d["prefix"]),
                started_at_ms=int(d["started_at_ms"]),
                format=str(d["format"]),
                sample_rate_hz=int(d["sample_rate_hz"]),
                channels=tuple(str(c) for c in d["channels"]),
                original=str(d["original"]),
                node=str(d.get("node", "")),
                state=state,  # type: ignore[arg-type]
                duration_ms=int(d.get("duration_ms", 0)),
                bytes=int(d.get("bytes", 0)),
                dropped_ms=int(d.get("dropped_ms", 0)),
                error=str(d.get("error", "")),
                ended_at_ms=int(d.get("ended_at_ms", 0)),
                time_map=TimeMap.from_json(d.get("time_map", [])),
                redacted=str(d.get("redacted", "")),
                redaction=str(d.get("redaction", "")),
                redacted_spans=tuple(RedactedSpan(int(a), int(b), str(k)) for a, b, k in d.get("redacted_spans", [])),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise SchemaError(f"bad recording manifest: {exc!r}") from exc

    def channel_index(self, channel: str) -> int:
        """The file channel of a transcript channel (``mixed`` and unknown names: 0)."""
        return self.channels.index(channel) if channel in self.channels else 0


def _upgrade(d: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring an older manifest up to MANIFEST_VERSION. v1 is the first version: nothing to do yet."""
    return d


__all__ = ["Manifest", "RedactedSpan", "MANIFEST_VERSION", "STATES"]
