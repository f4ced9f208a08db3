"""Which recording, and which rendition of it, a role may play; the redacted rendition of a crash-cut call made
on first request; reads from the recording store (callscribe/recording) off the event loop.

The policy is the one of callscribe/pii.py: ``audio_for(role)`` says original or redacted, and
``rendition_for`` never hands the original to a role that must hear the redacted rendition. A recording whose
redacted rendition is missing (the process died mid-call, so the recorder never made it; or rendering failed)
gets it here, from the call's finals: the call's Redis stream (finals with word times) and the transcript store
for segments the stream no longer holds (no word times: a final whose text holds PII is silenced whole), plus
the end of an interrupted recording that no final covers (``untranscribed_tail``). With no transcript at all the
request is refused (409): silence cannot be told from a transcript that is gone, and the original is never the
fallback.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from redis.exceptions import RedisError

from callscribe.config import Config
from callscribe.errors import RecordingError, RecordingNotFound, RenditionNotReady, SchemaError
from callscribe.events import Transcript, from_fields
from callscribe.pii import audio_for
from callscribe.recording import MEDIA_TYPES, Manifest, RecordingStore, call_prefix, ensure_redacted, open_store
from callscribe.recording import read_manifest, rendition_for
from callscribe.recording.store import StoredObject
from callscribe.stream import keys

log = logging.getLogger(__name__)

HEARS = ("qa", "supervisor", "admin")
"""Roles that may play recordings. The agent desk plays none (not even the agent's own calls): an agent's
token gets 403 from every audio route."""
PLAYABLE_STATES = ("complete", "interrupted", "failed")
"""``failed``: the audio up to the write failure is there; ``recording``: the call is live (409)."""

FinalsLoader = Callable[[], Awaitable[list[Transcript]]]


class ReplayError(Exception):
    """Why a recording cannot be played: ``status`` (404 none, 409 not playable yet, 503 store down) and ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Playable:
    manifest: Manifest
    rendition: str
    """original | redacted: what the role hears (callscribe/pii.py ``audio_for``)."""
    key: str
    """The store object to serve (the redacted rendition is the original itself when nothing was masked)."""

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(self.manifest.format, "application/octet-stream")


class Replay:
    """The recordings of one gateway. ``store``: a recording store (default: the one the config names, opened on
    first use: the gateway may run where recording is off, reading what the recording nodes wrote)."""

    def __init__(self, cfg: Config, store: RecordingStore | None = None) -> None:
        self.cfg = cfg
        self._store = store
        self._store_lock = asyncio.Lock()
        self._render_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def store(self) -> RecordingStore:
        async with self._store_lock:
            if self._store is None:
                try:
                    self._store = await asyncio.to_thread(open_store, self.cfg)
                except RecordingError as exc:
                    raise ReplayError(503, f"recording store unavailable: {exc}") from exc
        return self._store

    async def manifest(self, call_id: str, started_at_ms: int) -> Manifest | None:
        """The call's recording manifest; None when it has none (not recorded, opted out, deleted by retention)."""
        if not started_at_ms:
            return None
        store = await self.store()
        try:
            return await asyncio.to_thread(read_manifest, store, call_prefix(call_id, started_at_ms))
        except RecordingNotFound:
            return None
        except SchemaError as exc:
            log.warning("recording of %s: unreadable manifest: %s", call_id, exc)
            raise ReplayError(409, f"the recording's manifest cannot be read by this gateway: {exc}") from exc
        except RecordingError as exc:
            raise ReplayError(503, f"recording store unavailable: {exc}") from exc

    async def summary(self, call_id: str, started_at_ms: int) -> dict[str, Any] | None:
        """What the call detail says of the recording (no link): state, format, length, channels; None when none."""
        try:
            m = await self.manifest(call_id, started_at_ms)
        except ReplayError as exc:
            return {"state": "unavailable", "detail": exc.detail, "playable": False}
        if m is None:
            return None
        return {"state": m.state, "format": m.format, "duration_ms": m.duration_ms, "channels": list(m.channels),
                "playable": m.state in PLAYABLE_STATES}

    async def playable(self, role: str, call_id: str, started_at_ms: int, finals: FinalsLoader) -> Playable:
        """The rendition ``role`` hears of the call's recording, made now if it is the redacted one and missing.
        ReplayError: 404 no recording, 409 still recording / no transcript to redact from, 503 store down."""
        m = await self.manifest(call_id, started_at_ms)
        if m is None:
            raise ReplayError(404, "this call has no recording (recording off or its queue opted out when it ran, "
                                   "or deleted by retention)")
        if m.state not in PLAYABLE_STATES:
            raise ReplayError(409, "the call is still being recorded: replay it once it has ended (a recording left "
                                   "open by a node that stopped is closed when that node starts again)")
        rendition = audio_for(role, self.cfg.redact_stored_text)
        if rendition == "redacted" and not m.redacted:
            m = await self._render(m, finals)
        try:
            key = rendition_for(m, role, self.cfg.redact_stored_text)
        except RenditionNotReady as exc:
            raise ReplayError(409, str(exc)) from exc
        return Playable(m, rendition, key)

    async def _render(self, m: Manifest, finals: FinalsLoader) -> Manifest:
        """The pending piece of docs/recording.md: the redacted rendition of a recording that has none."""
        lock = self._render_locks.setdefault(m.prefix, asyncio.Lock())
        async with lock:  # one rendering per call; whoever waited finds it made
            store = await self.store()
            fresh = await asyncio.to_thread(read_manifest, store, m.prefix)
            if fresh.redacted:
                return fresh
            got = await finals()
            if not got:
                raise ReplayError(409, "the redacted recording cannot be made: no transcript of this call is left to find "
                                       "its card, ID and phone numbers (the original is never played instead)")
            try:
                made = await asyncio.to_thread(ensure_redacted, store, m.prefix, got, self.cfg.recording_redaction)
            except RenditionNotReady as exc:
                raise ReplayError(409, str(exc)) from exc
            except RecordingError as exc:
                raise ReplayError(503, f"the redacted recording could not be made: {exc}") from exc
            log.info("recording of %s: redacted rendition made on request from %d finals (%s, %d span(s))",
                     m.call_id, len(got), made.state, len(made.redacted_spans))
            return made

    async def stat(self, key: str) -> StoredObject:
        store = await self.store()
        try:
            return await asyncio.to_thread(store.stat, key)
        except RecordingNotFound as exc:
            raise ReplayError(404, "the recording's audio is gone (deleted by retention?)") from exc
        except RecordingError as exc:
            raise ReplayError(503, f"recording store unavailable: {exc}") from exc

    async def read(self, key: str, start: int, length: int) -> bytes:
        store = await self.store()
        return await asyncio.to_thread(store.read_range, key, start, length)


async def call_finals(redis: Any, cfg: Config, transcripts: Any, call_id: str) -> list[Transcript]:
    """Every final of a call: from its Redis stream (with word times) while it is kept, and from the transcript
    store for the segments the stream no longer holds (``transcripts``: the gateway's TranscriptStore)."""
    finals: dict[str, Transcript] = {}
    try:
        entries = await redis.xrange(keys.call_stream(cfg, call_id), count=cfg.call_stream_maxlen)
    except RedisError as exc:
        log.warning("recording of %s: Redis unavailable, finals from the transcript store only: %s", call_id, exc)
        entries = []
    for _, fields in entries:
        try:
            e = from_fields(fields)
        except SchemaError:
            continue
        if isinstance(e, Transcript) and e.is_final and e.text:
            finals[e.segment_id] = e
    stored = await asyncio.to_thread(transcripts.call, call_id)
    for u in stored[1] if stored else ():
        if u.segment_id not in finals and u.text:
            finals[u.segment_id] = Transcript(call_id, u.channel, u.segment_id, 0, True, u.text, u.start_ms, u.end_ms, "", 0.0)
    return sorted(finals.values(), key=lambda f: (f.start_ms, f.segment_id))


__all__ = ["HEARS", "PLAYABLE_STATES", "Playable", "Replay", "ReplayError", "call_finals"]
