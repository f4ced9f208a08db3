"""The reading side: find a call's recording, make its redacted rendition, pick the rendition for a role.

What the gateway calls (replay, later): :func:`find_recording` (call id + start time -> manifest), then
:func:`rendition_for` (manifest + the caller's role -> the store key to serve, by the one PII policy in
callscribe/pii.py), then the store's ``read_range`` for HTTP range requests. A role that must hear redacted
audio never falls back to the original: without a redacted rendition it gets RenditionNotReady.
"""

from __future__ import annotations

from collections.abc import Iterable

from callscribe.errors import RenditionNotReady
from callscribe.events import Transcript
from callscribe.pii import audio_for

from .keys import MANIFEST, REDACTED, call_prefix, object_key
from .manifest import Manifest
from .redaction import Mode, redaction_spans, render_redacted
from .store import RecordingStore


def read_manifest(store: RecordingStore, prefix: str) -> Manifest:
    """The manifest under ``prefix`` (RecordingNotFound when the call has none; SchemaError when it is newer)."""
    with store.open(object_key(prefix, MANIFEST)) as f:
        return Manifest.from_json(f.read())


def write_manifest(store: RecordingStore, manifest: Manifest) -> None:
    store.put(object_key(manifest.prefix, MANIFEST), manifest.to_json())


def find_recording(store: RecordingStore, call_id: str, started_at_ms: int) -> Manifest:
    """The manifest of a call from its id and start time (what the gateway's store has for every call).
    ``CallEnded.recording`` names the prefix directly when the call ended on a recording node."""
    return read_manifest(store, call_prefix(call_id, started_at_ms))


def rendition_for(manifest: Manifest, role: str, stored_redacted: bool = True) -> str:
    """The store key ``role`` may play: the original or the redacted rendition (callscribe/pii.py
    ``audio_for``). Raises RenditionNotReady rather than ever handing the original to a redacted role."""
    if audio_for(role, stored_redacted) == "original":
        return manifest.original
    if manifest.redacted:
        return manifest.redacted
    raise RenditionNotReady(f"the redacted recording of call {manifest.call_id} is not ready "
                            f"(recording {manifest.state}); retry in a moment")


def render_redacted_rendition(store: RecordingStore, manifest: Manifest, finals: Iterable[Transcript],
                              mode: Mode = "silence") -> Manifest:
    """Make and store the redacted rendition from the call's finals (their word times), record it in the
    manifest, and return the new manifest. With nothing to mask, the rendition *is* the original (no copy).
    Store errors propagate (RecordingStoreError); the manifest is then left without a rendition."""
    spans = redaction_spans(finals, manifest.channels, manifest.time_map, manifest.duration_ms)
    if not spans:
        updated = manifest.replace(redacted=manifest.original, redaction=mode, redacted_spans=())
    else:
        key = object_key(manifest.prefix, REDACTED, manifest.format)
        store.delete_object(key)  # a rendition left by an earlier attempt that failed half-way
        with store.open(manifest.original) as src, store.create(key) as dst:
            render_redacted(src, dst, manifest.format, spans, mode)
        updated = manifest.replace(redacted=key, redaction=mode, redacted_spans=spans)
    write_manifest(store, updated)
    return updated


def ensure_redacted(store: RecordingStore, prefix: str, finals: Iterable[Transcript], mode: Mode = "silence") -> Manifest:
    """The manifest with a redacted rendition, rendering it now if the recording has none (a call cut by a
    crash: give it the finals from Redis or the transcript store)."""
    manifest = read_manifest(store, prefix)
    if manifest.redacted:
        return manifest
    if manifest.state == "recording":
        raise RenditionNotReady(f"call {manifest.call_id} is still being recorded")
    return render_redacted_rendition(store, manifest, finals, mode)


__all__ = ["read_manifest", "write_manifest", "find_recording", "rendition_for", "render_redacted_rendition",
           "ensure_redacted"]
