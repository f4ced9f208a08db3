"""The writing side of the recorder: threads that place, encode and store each call's audio.

Nothing here runs on the event loop. The loop hands each chunk of audio to one of a few :class:`WriterThread`
s (a call always to the same one, so its chunks stay in order) through an unbounded deque guarded by a shared
byte budget (:class:`WriteBudget`): when the writers fall behind (a slow or stalled disk) new audio is dropped
*and counted* instead of queued without end or blocking the loop, and the writer writes the dropped stretch as
silence, so the recording keeps the call's timeline. Each call's state lives in one :class:`CallWriter`,
touched only by its thread.

A failing store (disk full, permission, I/O error) fails that one recording: logged once with the call id,
the manifest marked ``failed`` when it still can be written, later audio of the call ignored. It never raises
into the pipeline, so transcription goes on. The audio written up to the failure stays playable.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from callscribe.events import Transcript, now_ms

from .codec import AudioEncoder
from .manifest import Manifest
from .renditions import write_manifest
from .retention import mark_open
from .store import RecordingStore
from .timeline import LegTimeline

log = logging.getLogger(__name__)

BLOCK_MS = 100
"""Audio is encoded in blocks of at least this much (every channel), or what is left at the call's end."""


class WriteBudget:
    """Bytes of audio queued to the writers, across every call. ``take`` fails past ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.max_bytes:
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.used -= n


@dataclass(slots=True)
class Op:
    """One instruction for a call's writer, in call order. ``lost``: samples of this channel dropped before
    these (the budget was spent), written as silence; at ``finish`` one count per channel."""

    kind: str  # "open" | "audio" | "finish"
    writer: "CallWriter"
    channel: int = 0
    samples: np.ndarray | None = None
    now_s: float = 0.0
    lost: int = 0
    nbytes: int = 0
    finals: list[Transcript] = field(default_factory=list)
    lost_by_channel: list[int] = field(default_factory=list)


class WriterThread(threading.Thread):
    """Runs the ops of the calls assigned to it, in order. ``submit`` never blocks."""

    def __init__(self, name: str, budget: WriteBudget) -> None:
        super().__init__(name=name, daemon=True)
        self.budget = budget
        self._ops: collections.deque[Op | None] = collections.deque()
        self._cond = threading.Condition()

    def submit(self, op: Op | None) -> None:
        with self._cond:
            self._ops.append(op)
            self._cond.notify()

    def stop(self) -> None:
        """Finish what is queued, then end (join it after)."""
        self.submit(None)

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._ops:
                    self._cond.wait()
                op = self._ops.popleft()
            if op is None:
                return
            try:
                op.writer.apply(op)
            except Exception:  # CallWriter handles its own errors; this is a bug, and must not kill the thread
                log.exception("recording %s: writer failed on %s", op.writer.manifest.call_id, op.kind)
            finally:
                if op.nbytes:
                    self.budget.give(op.nbytes)


class CallWriter:
    """One call's recording as its writer thread sees it: timeline, per-channel buffers, encoder, file.

    ``on_closed(manifest, finals)`` is called (on the writer thread) once the audio is closed, whatever the
    outcome; the recorder then renders the redacted rendition elsewhere."""

    def __init__(self, store: RecordingStore, manifest: Manifest, start_s: float,
                 on_closed: Callable[[Manifest, list[Transcript]], None], open_dir: Path | None = None) -> None:
        self.store = store
        self.open_dir = open_dir
        self._marker: Path | None = None
        self.manifest = manifest
        self.rate_hz = manifest.sample_rate_hz
        self.n_channels = len(manifest.channels)
        self.timeline = LegTimeline(self.n_channels, self.rate_hz, start_s=start_s)
        self.on_closed = on_closed
        self.failed = False
        """Set (from the writer thread) when the recording failed: the loop side stops sending audio."""
        self.lost_samples = 0
        self._buf: list[collections.deque[np.ndarray]] = [collections.deque() for _ in range(self.n_channels)]
        self._buffered = [0] * self.n_channels
        self._file = None
        self._encoder: AudioEncoder | None = None
        self._block = self.rate_hz * BLOCK_MS // 1000

    # --- ops ---------------------------------------------------------------------------------------
    def apply(self, op: Op) -> None:
        if op.kind == "open":
            self._open()
        elif op.kind == "audio":
            if not self.failed:
                self._audio(op)
        elif op.kind == "finish":
            self._finish(op)

    def _open(self) -> None:
        try:
            if self.open_dir is not None:
                self._marker = mark_open(self.open_dir, self.manifest.prefix)
            write_manifest(self.store, self.manifest)
            self._file = self.store.create(self.manifest.original)
            self._encoder = AudioEncoder(self._file, self.manifest.format, self.rate_hz, self.n_channels)
        except Exception as exc:
            self._fail("cannot start the recording", exc)

    def _audio(self, op: Op) -> None:
        assert op.samples is not None
        n = op.lost + op.samples.size
        pad = self.timeline.place(op.channel, n, op.now_s)
        if pad:
            self._queue(op.channel, np.zeros(pad, np.float32))
        if op.lost:
            self.lost_samples += op.lost
            self._queue(op.channel, np.zeros(op.lost, np.float32))
        self._queue(op.channel, op.samples)
        for ch, silence in self.timeline.catch_up(op.now_s):
            self._queue(ch, np.zeros(silence, np.float32))
        self._encode(final=False)

    def _finish(self, op: Op) -> None:
        manifest = self.manifest
        if not self.failed:
            try:
                for ch, lost in enumerate(op.lost_by_channel):
                    if lost:
                        self.timeline.place(ch, lost, op.now_s)
                        self.lost_samples += lost
                        self._queue(ch, np.zeros(lost, np.float32))
                for ch, silence in self.timeline.finish():
                    self._queue(ch, np.zeros(silence, np.float32))
                self._encode(final=True)
                assert self._encoder is not None and self._file is not None
                self._encoder.close()
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
                manifest = manifest.replace(state="complete")
            except Exception as exc:
                self._fail("cannot finish the recording", exc)
        manifest = (self.manifest if self.failed else manifest).replace(
            duration_ms=self.timeline.length * 1000 // self.rate_hz,
            dropped_ms=self.lost_samples * 1000 // self.rate_hz,
            time_map=self.timeline.time_map(),
            ended_at_ms=now_ms(),
        )
        try:
            manifest = manifest.replace(bytes=self.store.stat(manifest.original).size)
        except Exception:  # no file at all (failed at open)
            pass
        self.manifest = manifest
        try:
            write_manifest(self.store, manifest)
            if self._marker is not None:
                self._marker.unlink(missing_ok=True)
        except Exception as exc:  # the marker stays: the next start closes the recording as interrupted
            log.warning("recording %s: cannot write its manifest: %s", manifest.call_id, exc)
        self.on_closed(manifest, op.finals)

    # --- buffers -> encoder --------------------------------------------------------------------------
    def _queue(self, channel: int, samples: np.ndarray) -> None:
        if samples.size:
            self._buf[channel].append(samples)
            self._buffered[channel] += samples.size

    def _take(self, channel: int, n: int) -> np.ndarray:
        parts: list[np.ndarray] = []
        need = n
        dq = self._buf[channel]
        while need:
            head = dq[0]
            if head.size <= need:
                parts.append(dq.popleft())
                need -= head.size
            else:
                parts.append(head[:need])
                dq[0] = head[need:]
                need = 0
        self._buffered[channel] -= n
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _encode(self, final: bool) -> None:
        m = min(self._buffered)
        if m == 0 or (m < self._block and not final) or self._encoder is None:
            return
        block = np.stack([self._take(ch, m) for ch in range(self.n_channels)], axis=1)
        try:
            self._encoder.write(block)
        except Exception as exc:
            self._fail("cannot write the recording", exc)

    def _fail(self, what: str, exc: BaseException) -> None:
        if self.failed:
            return
        self.failed = True
        reason = f"{what}: {exc}"
        log.warning("recording %s: %s; the call goes on unrecorded from here (%s kept)", self.manifest.call_id,
                    reason, self.manifest.original)
        if self._encoder is not None:
            self._encoder.abort()
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        for dq in self._buf:
            dq.clear()
        self._buffered = [0] * self.n_channels
        self.manifest = self.manifest.replace(state="failed", error=reason[:500])
        try:
            write_manifest(self.store, self.manifest)
        except Exception:  # the same full disk, most likely: the manifest on disk still says "recording"
            pass


__all__ = ["WriteBudget", "WriterThread", "CallWriter", "Op", "BLOCK_MS"]
