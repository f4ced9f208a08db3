"""Keeping recordings tidy: deleting old ones, and closing the ones a crash left open.

:func:`prune` deletes every call whose newest object is older than the retention period (the recorder runs it
every hour; ``callscribe recordings prune`` runs it once). :func:`recover_interrupted` runs at start-up over the
node's markers of open recordings (:func:`mark_open`, ``{data_dir}/recordings-open``: one small file per live
call, so recovery never reads the whole store): a manifest still saying ``recording`` whose process is gone
(this host, a pid that no longer runs) belongs to a call cut by kill -9, a crash or a power cut; its file plays up to about a second before the cut (Ogg pages),
so it is closed as ``interrupted`` with the duration read from the file. Its redacted rendition needs the
call's finals, which the recorder no longer has: ``ensure_redacted`` makes it later from Redis or the store.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from pathlib import Path

from callscribe.errors import CallscribeError, RecordingNotFound

from .codec import probe_duration_ms
from .renditions import read_manifest, write_manifest
from .store import RecordingStore

log = logging.getLogger(__name__)
DAY_S = 86_400


def prune(store: RecordingStore, days: int, now_s: float) -> list[str]:
    """Delete the calls older than ``days`` (by their newest object); returns their prefixes."""
    if days <= 0:
        return []
    deleted = []
    for prefix in list(store.list_older_than(now_s - days * DAY_S)):
        try:
            store.delete_prefix(prefix)
            deleted.append(prefix)
        except CallscribeError as exc:
            log.warning("recordings: retention could not delete %s: %s", prefix, exc)
    return deleted


def _process_gone(node: str) -> bool:
    host, _, pid = node.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's recording: that machine closes it
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def mark_open(open_dir: Path, prefix: str) -> Path:
    """Note on this node's disk that ``prefix`` is being recorded (removed when the recording closes), so
    recovery reads only the recordings that were open, never the whole store."""
    open_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker = open_dir / (hashlib.sha256(prefix.encode()).hexdigest()[:32] + ".open")
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(prefix)
    return marker


def recover_interrupted(store: RecordingStore, open_dir: Path) -> list[str]:
    """Close the recordings this node's markers say were open when its process died; returns their call ids.
    A marker whose recording is closed (or gone) is just removed; one of a live process is left alone."""
    closed = []
    markers = sorted(open_dir.glob("*.open")) if open_dir.is_dir() else []
    for marker in markers:
        try:
            prefix = marker.read_text().strip()
            manifest = read_manifest(store, prefix)
        except RecordingNotFound:
            marker.unlink(missing_ok=True)
            continue
        except (CallscribeError, OSError, ValueError) as exc:  # SchemaError is a CallscribeError
            log.warning("recordings: cannot recover %s: %s", marker.name, exc)
            continue
        if manifest.state != "recording":
            marker.unlink(missing_ok=True)
            continue
        if not _process_gone(manifest.node):
            continue
        try:
            stat = store.stat(manifest.original)
            with store.open(manifest.original) as f:
                duration = probe_duration_ms(f)
            manifest = manifest.replace(state="interrupted", duration_ms=duration, bytes=stat.size,
                                        ended_at_ms=int(stat.modified_s * 1000),
                                        error="the process stopped mid-call (kill -9, crash or power cut)")
        except CallscribeError as exc:
            manifest = manifest.replace(state="interrupted", error=f"the process stopped mid-call; no audio: {exc}")
        try:
            write_manifest(store, manifest)
            marker.unlink(missing_ok=True)
            closed.append(manifest.call_id)
        except CallscribeError as exc:
            log.warning("recordings: cannot close %s: %s", prefix, exc)
    return closed


__all__ = ["prune", "recover_interrupted", "mark_open"]
