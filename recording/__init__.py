"""Call recording: both legs of every call written while it runs, a redacted rendition, a recording store.

The pipeline's :class:`~callscribe.pipeline.CallSession` feeds a :class:`Recorder` (the one call lifecycle
of every ingest path, so every path records); the gateway finds a call's recording with
:func:`find_recording` and picks what a role may hear with :func:`rendition_for`. docs/recording.md has the
formats, crash safety, retention and the store.
"""

from .keys import MEDIA_TYPES, call_prefix
from .manifest import MANIFEST_VERSION, Manifest, RedactedSpan
from .recorder import CallRecording, Recorder, channel_layout, should_record
from .redaction import pii_spans, redaction_spans, render_redacted
from .renditions import ensure_redacted, find_recording, read_manifest, rendition_for
from .retention import prune, recover_interrupted
from .store import LocalStore, RecordingStore, StoredObject, open_store
from .timeline import LegTimeline, TimeMap

__all__ = [
    "Recorder", "CallRecording", "should_record", "channel_layout",
    "RecordingStore", "LocalStore", "StoredObject", "open_store",
    "Manifest", "RedactedSpan", "MANIFEST_VERSION",
    "LegTimeline", "TimeMap",
    "pii_spans", "redaction_spans", "render_redacted",
    "find_recording", "read_manifest", "rendition_for", "ensure_redacted",
    "prune", "recover_interrupted", "call_prefix", "MEDIA_TYPES",
]
