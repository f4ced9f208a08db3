"""The reading side: find a call's recording, make its redacted rendition, pick the rendition for a role.

What the gateway's replay calls (gateway/recordings): :func:`find_recording` (call id + start time -> manifest), then
:func:`rendition_for` (manifest + the caller's role -> the store key to serve, by the one PII policy in
callscribe/pii.py), then the store's ``read_range`` for HTTP range requests. A role that must hear redacted
audio never falls back to the original: without a redacted rendition it gets RenditionNotReady, and the gateway
makes the rendition with :func:`ensure_redacted` from the call's finals (a recording cut by a crash).
"""

from __future__ import annotations

from collections.abc import Iterable

from callscribe.errors import RenditionNotReady
from callscribe.events import Transcript
from callscribe.pii import audio_for

from .keys import MANIFEST, REDACTED, call_prefix, object_key
from .manifest import Manifest, RedactedSpan
from .redaction import Mode, redaction_spans, render_redacted
from .store import RecordingStore

_UNKNOWN_END_MS = 10 ** 9


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
                              mode: Mode = "silence", extra: Iterable[RedactedSpan] = ()) -> Manifest:
    """Make and store the redacted rendition from the call's finals (their word times), record it in the
    manifest, and return the new manifest. With nothing to mask, the rendition *is* the original (no copy).
    ``extra``: more spans to replace, in recording time (an interrupted call's untranscribed end).
    Store errors propagate (RecordingStoreError); the manifest is then left without a rendition."""
    spans = _merge((*redaction_spans(finals, manifest.channels, manifest.time_map, manifest.duration_ms), *extra))
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


def untranscribed_tail(manifest: Manifest, finals: Iterable[Transcript]) -> RedactedSpan | None:
    """The end of an interrupted recording that no final covers: from the earliest point where a leg's
    transcript stops (its last final's end, in recording time; 0 for a leg with none) to the recording's end.
    The process died with those legs' last utterances still being transcribed, so whatever they said there
    (a card number read out just before the crash) was never checked for PII: the redacted rendition silences
    it. None for other states (their transcript is complete) or when the finals reach the end."""
    if manifest.state != "interrupted":
        return None
    last = [0] * len(manifest.channels)
    for f in finals:
        if f.is_final and f.text:
            ch = manifest.channel_index(f.channel)
            last[ch] = max(last[ch], manifest.time_map.to_recording_ms(ch, f.end_ms))
    start = min(last, default=0)
    end = manifest.duration_ms or _UNKNOWN_END_MS  # a length not read from the file: to its end, whatever it is
    return RedactedSpan(start, end, "untranscribed") if start < end else None


def ensure_redacted(store: RecordingStore, prefix: str, finals: Iterable[Transcript], mode: Mode = "silence") -> Manifest:
    """The manifest with a redacted rendition, rendering it now if the recording has none (a call cut by a
    crash: give it the finals from Redis or the transcript store, which may lack word times: a final whose
    text holds PII is then silenced whole). An interrupted recording's :func:`untranscribed_tail` is silenced
    too. RenditionNotReady while the call is still being recorded."""
    manifest = read_manifest(store, prefix)
    if manifest.redacted:
        return manifest
    if manifest.state == "recording":
        raise RenditionNotReady(f"call {manifest.call_id} is still being recorded")
    finals = list(finals)
    tail = untranscribed_tail(manifest, finals)
    return render_redacted_rendition(store, manifest, finals, mode, (tail,) if tail else ())


def _merge(spans: Iterable[RedactedSpan]) -> tuple[RedactedSpan, ...]:
    """Spans sorted, overlapping ones merged (kinds joined), as redaction_spans leaves them."""
    out: list[RedactedSpan] = []
    for s in sorted(spans, key=lambda s: (s.start_ms, s.end_ms)):
        if out and s.start_ms <= out[-1].end_ms:
            prev = out[-1]
            kinds = prev.kind.split(",")
            out[-1] = RedactedSpan(prev.start_ms, max(prev.end_ms, s.end_ms),
                                   prev.kind if s.kind in kinds else f"{prev.kind},{s.kind}")
        else:
            out.append(s)
    return tuple(out)


__all__ = ["read_manifest", "write_manifest", "find_recording", "rendition_for", "render_redacted_rendition",
           "ensure_redacted", "untranscribed_tail"]
