"""The recorder: what :class:`~callscribe.pipeline.Pipeline` holds to record every call (loop side).

``CallSession`` (the one call lifecycle of every ingest path: WebSocket, SIP, SIPREC, files) asks
:meth:`Recorder.open` for a :class:`CallRecording` when the call opens, hands it every chunk of audio it
receives (``write``, before VAD), every final (``note``: word times for the redacted rendition) and, when
the call has ended, ``finish``. Each of those returns at once and never raises: the loop only copies the
samples and appends to a writer thread's queue (callscribe/recording/writer.py). When the audio is closed the
redacted rendition is rendered on a separate thread and stored beside the original.

The recorder also closes recordings that a crash left open (``interrupted``) at start-up, and deletes
recordings older than ``recording_retention_days`` every hour (callscribe/recording/retention.py).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import socket
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

import numpy as np

from callscribe.audio import TARGET_RATE_HZ
from callscribe.config import Config
from callscribe.errors import RecordingError
from callscribe.events import CallStarted, Transcript

from .keys import ORIGINAL, call_prefix, object_key
from .manifest import Manifest
from .renditions import render_redacted_rendition
from .retention import prune, recover_interrupted
from .store import RecordingStore, open_store
from .writer import CallWriter, Op, WriteBudget, WriterThread

log = logging.getLogger(__name__)

WRITER_THREADS = 2
"""Threads encoding and writing recordings; each call sticks to one (by a hash of its id)."""
MAX_BUFFER_BYTES = 128 * 1024 * 1024
"""Audio queued to the writers at most (float32: about 17 minutes of one 16 kHz channel, or 5 s of 200
stereo calls); past it new audio is dropped and written as silence, so a stalled disk costs audio, not memory."""
SWEEP_INTERVAL_S = 3600.0


def should_record(cfg: Config, metadata: Mapping[str, str]) -> bool:
    """Recording on, and the call's queue in none of ``recording_optout_queues`` (globs, any case)."""
    if not cfg.recording:
        return False
    queue = str(metadata.get("queue", "")).lower()
    return not (queue and any(fnmatch.fnmatchcase(queue, p.lower()) for p in cfg.recording_optout_queues))


def channel_layout(channels: Sequence[str]) -> tuple[tuple[str, ...], list[int]] | None:
    """The recording's channels and, per pipeline channel, its channel in the file: a two-leg call is
    ``customer, agent`` in that order whatever order the ingest used (channel 0 customer, 1 agent, as every
    stereo file of callscribe); one channel is mono. None for more than two (not recorded)."""
    if len(channels) == 1:
        return (channels[0],), [0]
    if len(channels) == 2:
        if set(channels) == {"customer", "agent"}:
            order = ("customer", "agent")
            return order, [order.index(c) for c in channels]
        return tuple(channels), [0, 1]
    return None


def node_id() -> str:
    """``host:pid`` of this process: recovery closes only recordings whose process is gone."""
    return f"{socket.gethostname()}:{os.getpid()}"


class CallRecording:
    """One call's recording, as the call's session sees it. Every method returns at once and never raises."""

    def __init__(self, recorder: "Recorder", writer: CallWriter, thread: WriterThread, index: list[int],
                 done: asyncio.Future[Manifest]) -> None:
        self.recorder = recorder
        self.prefix = writer.manifest.prefix
        self.call_id = writer.manifest.call_id
        self._writer = writer
        self._thread = thread
        self._index = index
        self._lost = [0] * len(writer.manifest.channels)
        self._finals: list[Transcript] = []
        self._finished = False
        self._warned = False
        self.done = done
        """Resolves with the final manifest once the audio is closed and the redacted rendition stored."""

    @property
    def failed(self) -> bool:
        return self._writer.failed

    def write(self, channel: int, samples: np.ndarray) -> None:
        """Audio of pipeline channel ``channel`` (16 kHz float32), as pushed into the call."""
        if self._finished or self._writer.failed:
            return
        try:
            ch = self._index[channel]
            data = np.array(samples, dtype=np.float32, copy=True).reshape(-1)
            if not data.size:
                return
            if not self.recorder.budget.take(data.nbytes):
                self._lost[ch] += data.size
                self.recorder.dropped_chunks += 1
                if not self._warned:
                    self._warned = True
                    log.warning("recording %s: the recording writers are behind (disk slow?); dropping audio, "
                                "written as silence", self.call_id)
                return
            op = Op("audio", self._writer, ch, data, time.monotonic(), self._lost[ch], data.nbytes)
            self._lost[ch] = 0
            self._thread.submit(op)
        except Exception:  # never into the pipeline
            log.exception("recording %s: dropped a chunk", self.call_id)

    def note(self, event: object) -> None:
        """A final of the call (unredacted, with word times): the redacted rendition is made from these."""
        if isinstance(event, Transcript) and event.is_final and event.text and not self._finished:
            self._finals.append(event)

    def finish(self) -> None:
        """The call has ended (every final noted): close the audio, then render the redacted rendition."""
        if self._finished:
            return
        self._finished = True
        self._thread.submit(Op("finish", self._writer, now_s=time.monotonic(), finals=self._finals,
                               lost_by_channel=list(self._lost)))


class Recorder:
    """Records calls into ``store`` (default: :class:`LocalStore` at ``recording_dir`` or
    ``{data_dir}/recordings``). ``start`` before the first call, ``stop`` after the last."""

    def __init__(self, cfg: Config, store: RecordingStore | None = None, *, writers: int = WRITER_THREADS,
                 max_buffer_bytes: int = MAX_BUFFER_BYTES, sweep_interval_s: float = SWEEP_INTERVAL_S) -> None:
        self.cfg = cfg
        self.store = store
        self.budget = WriteBudget(max_buffer_bytes)
        self.sweep_interval_s = sweep_interval_s
        self.node = node_id()
        self.open_dir = cfg.data_path / "recordings-open"
        """This node's markers of open recordings (crash recovery reads only these)."""
        self.opened = 0
        self.skipped = 0
        self.dropped_chunks = 0
        self.deleted = 0
        self._threads = [WriterThread(f"recording-writer-{i}", self.budget) for i in range(writers)]
        self._render = ThreadPoolExecutor(1, thread_name_prefix="recording-render")
        self._pending: set[asyncio.Future[Manifest]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def root(self) -> str:
        """Where recordings go, for messages (an S3 store's URL without its keys)."""
        if self.cfg.recording_store:
            from .s3 import S3Location

            loc = S3Location.parse(self.cfg.recording_store)
            return f"{loc.endpoint}/{loc.bucket}/{loc.prefix}"
        return self.cfg.recording_dir or str(self.cfg.data_path / "recordings")

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.store is None:
            self.store = await asyncio.to_thread(open_store, self.cfg)
        for t in self._threads:
            t.start()
        try:
            uploaded = await asyncio.to_thread(self.store.resume_uploads)
            if uploaded:
                log.warning("recordings: stored %d recording(s) an earlier run left spooled", len(uploaded))
        except Exception as exc:
            log.warning("recordings: spooled recordings not stored yet (%s); retried at the next start", exc)
        try:
            closed = await asyncio.to_thread(recover_interrupted, self.store, self.open_dir)
            if closed:
                log.warning("recordings: closed %d recording(s) cut by an earlier crash: %s", len(closed), ", ".join(closed[:5]))
        except Exception:
            log.exception("recordings: recovery of interrupted recordings failed")
        if self.cfg.recording_retention_days:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="recording-retention")

    def open(self, started: CallStarted) -> CallRecording | None:
        """A recording for a call that just opened, or None (recording off, queue opted out, not recordable)."""
        try:
            if self.store is None or self._loop is None:
                raise RecordingError("recorder used before start()")
            if not should_record(self.cfg, started.metadata):
                self.skipped += 1
                return None
            layout = channel_layout(started.channels)
            if layout is None:
                log.warning("recording %s: %d channels, recordings have 1 or 2; not recorded", started.call_id, len(started.channels))
                return None
            channels, index = layout
            prefix = call_prefix(started.call_id, started.started_at_ms)
            fmt = self.cfg.recording_format
            manifest = Manifest(call_id=started.call_id, prefix=prefix, started_at_ms=started.started_at_ms, format=fmt,
                                sample_rate_hz=TARGET_RATE_HZ, channels=channels, original=object_key(prefix, ORIGINAL, fmt),
                                node=self.node)
            done: asyncio.Future[Manifest] = self._loop.create_future()
            writer = CallWriter(self.store, manifest, time.monotonic(), lambda m, finals: self._closed(m, finals, done),
                                self.open_dir)
            thread = self._threads[zlib.crc32(started.call_id.encode()) % len(self._threads)]
            rec = CallRecording(self, writer, thread, index, done)
            self._pending.add(done)
            done.add_done_callback(self._pending.discard)
            thread.submit(Op("open", writer))
            self.opened += 1
            return rec
        except Exception:
            log.exception("recording %s: not recorded", started.call_id)
            return None

    # --- after the call -------------------------------------------------------------------------------
    def _closed(self, manifest: Manifest, finals: list[Transcript], fut: asyncio.Future[Manifest]) -> None:
        """On the writer thread: the audio is closed; render the redacted rendition on the render thread."""
        def render() -> None:
            result = manifest
            if manifest.state == "complete":
                try:
                    assert self.store is not None
                    result = render_redacted_rendition(self.store, manifest, finals, self.cfg.recording_redaction)
                except Exception as exc:
                    log.warning("recording %s: no redacted rendition (%s); redacted roles cannot play it", manifest.call_id, exc)
            self._resolve(fut, result)

        try:
            self._render.submit(render)
        except RuntimeError:  # shutting down
            self._resolve(fut, manifest)

    def _resolve(self, fut: asyncio.Future[Manifest], manifest: Manifest) -> None:
        if self._loop is None:
            return
        def set_result() -> None:
            if not fut.done():
                fut.set_result(manifest)
        try:
            self._loop.call_soon_threadsafe(set_result)
        except RuntimeError:  # the loop is closed
            pass

    async def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until every finished call's recording is closed and rendered; False on timeout."""
        pending = [f for f in self._pending if not f.done()]
        if not pending:
            return True
        done, not_done = await asyncio.wait(pending, timeout=timeout_s)
        return not not_done

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Close every recording already finished (calls still open are closed by Pipeline.stop first)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except (asyncio.CancelledError, Exception):
                pass
        if not await self.drain(timeout_s):
            log.warning("recordings: some recordings were not closed within %.0f s of stopping", timeout_s)
        for t in self._threads:
            if t.is_alive():
                t.stop()
        await asyncio.to_thread(lambda: [t.join(timeout_s) for t in self._threads if t.is_alive()])
        await asyncio.to_thread(self._render.shutdown, True)

    # --- retention -------------------------------------------------------------------------------------
    async def sweep(self, now_s: float | None = None) -> list[str]:
        """Delete recordings older than ``recording_retention_days`` now; returns the deleted call prefixes."""
        if not self.cfg.recording_retention_days or self.store is None:
            return []
        deleted = await asyncio.to_thread(prune, self.store, self.cfg.recording_retention_days,
                                          time.time() if now_s is None else now_s)
        self.deleted += len(deleted)
        if deleted:
            log.info("recordings: retention deleted %d recording(s) older than %d days", len(deleted),
                     self.cfg.recording_retention_days)
        return deleted

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("recordings: retention sweep failed; retrying in %.0f s", self.sweep_interval_s)
            await asyncio.sleep(self.sweep_interval_s)


__all__ = ["Recorder", "CallRecording", "should_record", "channel_layout", "node_id", "WRITER_THREADS",
           "MAX_BUFFER_BYTES", "SWEEP_INTERVAL_S"]
