"""The spine: per-call audio -> VAD -> the shared batch scheduler -> ordered events -> sinks.

:class:`Pipeline` owns what every call shares (the engine's scheduler and the event sink, usually the Redis
publisher). :class:`CallSession` is one live call: it runs VAD per channel, asks the scheduler for partials
while speech goes on and submits finals at each endpoint, and emits the call's events strictly in order
through one emitter task, so a partial never lands after its own final and finals keep their order.

VAD runs batched across calls: ``push`` leaves the audio in the channel's inbox and :class:`VadTicker` takes
the oldest push of every channel that has one, runs webrtcvad and the endpointer per channel and Silero for all
of them in one ONNX call (vad/batch.py), and hands each call its events in push order. A channel's events are
the same as if it ran alone; a push that fails is logged with its call and dropped, the other channels carry on.

Backpressure: ``push`` awaits when its channel's inbox is full, which happens when the ticker waits for the
scheduler (``max_pending_finals`` finals held); the emitter awaits the sink. Partials are best-effort
everywhere; finals are never dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, Protocol

import numpy as np

from callscribe.asr.engine import DecodeRequest, DecodeResult
from callscribe.asr.scheduler import BatchScheduler, PartialTicket, PendingContext
from callscribe.vad import ChannelVad, SpeechAborted, SpeechEnded, SpeechStarted
from callscribe.vad import batch as vad_batch

from .config import Config
from .errors import CallIdInUse, CapacityError, SourceQuotaError
from .events import CallEnded, CallStarted, Dtmf, Event, Transcript, now_ms

if TYPE_CHECKING:  # the recorder is optional: the pipeline never imports it at run time
    from callscribe.recording import CallRecording, Recorder

log = logging.getLogger(__name__)

Listener = Callable[[Event], "Awaitable[None] | None"]
MIN_PARTIAL_AUDIO_MS = 500
LOCK_MIN_AUDIO_MS = 2000
LOCK_MIN_PROBABILITY = 0.8
LOCK_AGREEING = 2
INBOX_MAX = 8
"""Pushes a channel may have waiting for the VAD ticker before ``push`` waits (backpressure)."""
INLINE_SILERO_CHUNKS = 256
"""A round's Silero work up to this many 32 ms chunks (about 5 ms of CPU) runs on the event loop; more runs in the
ticker's thread (ONNX Runtime releases the GIL), so ingest keeps reading sockets meanwhile. Below that, handing
the work to a thread and back costs more than it frees."""


class EventSink(Protocol):
    async def publish(self, event: Event) -> None: ...


class NullSink:
    """A sink that keeps nothing (``transcribe`` without Redis)."""

    async def publish(self, event: Event) -> None:
        return None


@dataclass(slots=True)
class _Channel:
    name: str
    vad: ChannelVad
    inbox: deque = field(default_factory=deque)  # pushes (arrays) and DTMF (callables) the ticker has not run yet
    pushed_samples: int = 0
    seq: int = 0  # segment counter
    open_seq: int = -1  # segment in progress, -1 when none
    open_start_ms: int = -1  # where it starts (partials check that the VAD still holds that segment)
    revision: int = 0  # next revision of the open segment
    partials_emitted: int = 0
    last_partial_req_ms: int = -10_000
    speech_end_wall_ms: int = 0
    finals: int = 0
    last_final: tuple | None = None  # (end of its audio, its call time, all of it?, its result future): next context


@dataclass(slots=True)
class VadStats:
    rounds: int = 0
    channel_steps: int = 0
    silero_calls: int = 0
    silero_chunks: int = 0
    failed_pushes: int = 0
    largest_round: int = 0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


class VadTicker:
    """The shell around vad.batch for one pipeline. Each round takes the oldest push of every channel with one
    waiting, runs them as one batch (Silero in one ONNX call; in the ticker's thread when large) and awaits each
    call's handling of its events, in order. Rounds follow one another while pushes wait, so under load a round
    batches everything that arrived during the previous one. DTMF queued behind a channel's audio runs when the
    audio before it has been handled, keeping the call's order."""

    def __init__(self) -> None:
        self.stats = VadStats()
        self._ready: dict[tuple[CallSession, int], None] = {}  # channels with something in their inbox, FIFO
        self._busy: set[CallSession] = set()  # calls in the round in progress
        self._wake = asyncio.Event()
        self._round_end: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    def submit(self, session: CallSession, index: int, item) -> None:
        session.channels[index].inbox.append(item)
        self._ready[(session, index)] = None
        self._wake.set()
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="vad-ticker")

    def idle(self, session: CallSession, index: int) -> bool:
        """Nothing of this channel waits or runs (so a DTMF can be emitted at once)."""
        return not session.channels[index].inbox and session not in self._busy

    def _running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait_room(self, session: CallSession, index: int) -> None:
        while len(session.channels[index].inbox) >= INBOX_MAX and self._running():
            await self._next_round()

    async def drain(self, session: CallSession) -> None:
        """Wait until every push of ``session`` has been run and its events handled (at once when the ticker is
        gone: a stopped loop cancelled it)."""
        while (any(ch.inbox for ch in session.channels) or session in self._busy) and self._running():
            await self._next_round()

    async def stop(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            try:
                await self._task
            except asyncio.CancelledError:
                if not self._task.cancelled():  # we are the ones cancelled: pass it on
                    raise
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _next_round(self) -> None:
        """Until the round in progress ends, or the ticker does (never waits on a round that cannot come)."""
        if self._round_end is None or self._round_end.done():
            self._round_end = asyncio.get_running_loop().create_future()
        assert self._task is not None
        await asyncio.wait([self._round_end, self._task], return_when=asyncio.FIRST_COMPLETED)

    async def _run(self) -> None:
        while True:
            if not self._ready:
                self._end_round()
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._round()
            except Exception:  # the ticker must survive anything: a stopped ticker would stall every call
                log.exception("VAD round failed")
            finally:
                self._busy.clear()
                self._end_round()

    def _end_round(self) -> None:
        if self._round_end is not None and not self._round_end.done():
            self._round_end.set_result(None)

    def _take(self) -> list[tuple[CallSession, int, np.ndarray]]:
        """The oldest push of every channel that has one (DTMF queued before it runs now)."""
        work = []
        for key in list(self._ready):
            session, index = key
            inbox = session.channels[index].inbox
            while inbox and callable(inbox[0]):
                try:
                    inbox.popleft()()
                except Exception:
                    log.exception("call %s: queued event failed", session.call_id)
            if inbox:
                work.append((session, index, inbox.popleft()))
            if not inbox:
                del self._ready[key]
        return work

    async def _round(self) -> None:
        work = self._take()
        if not work:
            return
        self._busy.update(s for s, _, _ in work)
        vads = [s.channels[i].vad for s, i, _ in work]
        errors, jobs = vad_batch.prepare(vads, [x for _, _, x in work])
        chunks = sum(j.steps for j in jobs)
        st = self.stats
        st.rounds += 1
        st.channel_steps += len(work)
        st.silero_chunks += chunks
        st.largest_round = max(st.largest_round, len(work))
        if chunks > INLINE_SILERO_CHUNKS:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad")
            st.silero_calls += await asyncio.get_running_loop().run_in_executor(self._executor, vad_batch.score, jobs)
        elif jobs:
            st.silero_calls += vad_batch.score(jobs)
        results = vad_batch.finish(vads, errors, jobs, scored=True)
        for (session, index, _), events in zip(work, results):
            if isinstance(events, Exception):
                st.failed_pushes += 1
                log.warning("call %s channel %s: VAD failed on a push, dropped: %r", session.call_id, index, events)
                continue
            try:
                if events:
                    await session._after_vad(index, events)
                else:  # most pushes: no event, only the partial cadence to keep
                    session._partial_due(index)
            except Exception:  # one call's failure must not hold up the others' events
                log.exception("call %s: handling VAD events failed", session.call_id)


@dataclass(slots=True)
class CallStats:
    partials: int = 0
    finals: int = 0
    dropped_segments: int = 0
    aborted_segments: int = 0


class Pipeline:
    def __init__(self, cfg: Config, engine=None, sink: EventSink | None = None, scheduler=None,
                 recorder: "Recorder | None" = None) -> None:
        """``scheduler``: a :class:`~callscribe.asr.remote.RemoteScheduler` to decode on ASR workers;
        default: a local BatchScheduler over ``engine``. ``recorder``: records every call's audio
        (callscribe/recording; ``serve`` passes one, offline runs of recordings do not)."""
        self.cfg = cfg
        self.engine = engine
        self.sink: EventSink = sink or NullSink()
        self.recorder = recorder
        self.scheduler = scheduler or BatchScheduler(engine, cfg.max_batch_size, cfg.max_pending_finals, cfg.partial_batch_budget_s)
        self.vad = VadTicker()
        self.calls: dict[str, CallSession] = {}
        self.sources: dict[str, str] = {}  # call_id -> source (ingest token subject, SIP peer), for quotas
        self._opening: set[str] = set()

    def source_calls(self, source: str) -> int:
        """Live calls (and calls being opened) of one source."""
        return sum(1 for s in self.sources.values() if s == source)

    async def start(self) -> None:
        await self.scheduler.start()

    async def stop(self) -> None:
        for call in list(self.calls.values()):
            await call.end("shutdown")
        await self.vad.stop()
        await self.scheduler.stop()

    async def open_call(self, started: CallStarted, listener: Listener | None = None, source: str = "") -> "CallSession":
        """Register a call and emit its CallStarted: the one call lifecycle of every ingest path.

        Refuses with CapacityError at ``max_calls``, SourceQuotaError when ``source`` already holds its
        quota (``cfg.source_quota``) while others may still get in, and CallIdInUse when the id names another
        call, live here or elsewhere, or ended while its data is kept (checked with Redis through the sink's
        ``claim_call``). Metadata keys are normalised here once (``caller_number`` -> ``caller``)."""
        call_id = started.call_id
        if call_id in self.calls or call_id in self._opening:
            raise CallIdInUse(f"call id {call_id!r} is already live; a call id is used once")
        if len(self.calls) + len(self._opening) >= self.cfg.max_calls:
            raise CapacityError(f"worker at capacity ({self.cfg.max_calls} live calls); retry later or add workers")
        quota = self.cfg.source_quota
        if source and self.source_calls(source) >= quota:
            raise SourceQuotaError(f"source {source!r} holds its quota of {quota} live calls; retry later")
        self._opening.add(call_id)
        if source:
            self.sources[call_id] = source
        try:
            claim = getattr(self.sink, "claim_call", None)
            if claim is not None and not await claim(call_id):
                raise CallIdInUse(f"call id {call_id!r} was already used by another call; use a new id for each call")
            session = CallSession(self, normalize_started(started), listener)
            self.calls[call_id] = session
        except BaseException:
            self.sources.pop(call_id, None)
            raise
        finally:
            self._opening.discard(call_id)
        await session.start()
        return session


CONTEXT_LEAD_MS = 100
"""Audio kept before the first context word (word starts from alignment are a little late)."""


def final_context(req: DecodeRequest, audio: np.ndarray, start_ms: int, res: DecodeResult, whole: bool, max_s: float) -> None:
    """Put the channel's previous utterance before ``req``'s audio: ``audio`` (its end, from call time
    ``start_ms``; ``whole`` if that is all of it) decoded as ``res``. As much of it as fits ``max_s`` and the 30 s
    window goes in, cut where a word starts so that the text matches the audio. No context when the previous
    final has no text, or no word times to cut at."""
    if not res.text or res.dropped:
        return
    room_ms = min(max_s * 1000, 30_000 - req.audio.size * 1000 // 16000 - 500)
    text = res.text
    if not whole or audio.size * 1000 // 16000 > room_ms:
        cut_ms = start_ms + audio.size * 1000 // 16000 - room_ms  # call time the context may start at
        first = next((k for k, w in enumerate(res.words) if w.start_ms - CONTEXT_LEAD_MS >= max(cut_ms, start_ms)), None)
        if first is None or room_ms < 1000:
            return
        text = "".join(w.text for w in res.words[first:])
        audio = audio[(res.words[first].start_ms - CONTEXT_LEAD_MS - start_ms) * 16 :]
    if text.strip() and audio.size:
        req.context_audio, req.context_text = audio, text.strip()


METADATA_ALIASES = {"caller_number": "caller", "caller_id": "caller"}
"""Metadata keys clients use for the same thing, mapped to the one key every reader uses."""


def normalize_started(started: CallStarted) -> CallStarted:
    """``started`` with its metadata keys normalised (``METADATA_ALIASES``; an explicit key wins)."""
    md = dict(started.metadata or {})
    changed = False
    for alias, key in METADATA_ALIASES.items():
        if alias in md:
            value = md.pop(alias)
            changed = True
            if not md.get(key):
                md[key] = value
    return dataclasses.replace(started, metadata=md) if changed else started


class CallSession:
    def __init__(self, pipeline: Pipeline, started: CallStarted, listener: Listener | None) -> None:
        self.pipeline = pipeline
        self.cfg = pipeline.cfg
        self.started = started
        self.call_id = started.call_id
        self.listener = listener
        lang = started.language if started.language and started.language != "auto" else self.cfg.language
        self.language: str | None = None if lang == "auto" else lang
        self.channels = [_Channel(name, ChannelVad(self.cfg)) for name in started.channels]
        self.stats = CallStats()
        self._out: asyncio.Queue[tuple] = asyncio.Queue()
        self._emitter: asyncio.Task[None] | None = None
        self._ended: CallEnded | None = None
        self._ending: asyncio.Task[CallEnded] | None = None
        self._closing = False
        self._confident: dict[str, int] = {}  # language -> confident detections so far
        self._dtmf_seq = 0
        self.recording: CallRecording | None = pipeline.recorder.open(started) if pipeline.recorder is not None else None

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._emitter = asyncio.create_task(self._emit_loop(), name=f"emit-{self.call_id}")
        self._out.put_nowait(("event", self.started))

    async def push(self, channel: int, samples: np.ndarray) -> None:
        """Feed 16 kHz float32 audio of one channel (any chunk size). Awaits under backpressure."""
        if self._closing:
            return
        if self.recording is not None:  # before VAD: the recording has exactly the audio the call received
            self.recording.write(channel, samples)
        ch = self.channels[channel]
        ch.pushed_samples += samples.size
        self.pipeline.vad.submit(self, channel, samples)
        if len(ch.inbox) >= INBOX_MAX:
            await self.pipeline.vad.wait_room(self, channel)

    async def _after_vad(self, index: int, events: list) -> None:
        """The VAD events of one push of channel ``index`` (from the pipeline's VadTicker), in order."""
        for ev in events:
            await self._on_vad(index, ev)
        self._partial_due(index)

    def _partial_due(self, index: int) -> None:
        if self.cfg.partials and self.channels[index].open_seq >= 0:
            self._maybe_request_partial(index)

    def dtmf(self, channel: int, digit: str, at_ms: int | None = None) -> None:
        """Record a key press on ``channel`` (RFC 4733 from RTP). It is emitted in order with the call's
        other events; ``at_ms`` defaults to the channel's audio position now."""
        if self._closing:
            return
        ch = self.channels[channel]
        if at_ms is None:  # the position of the audio pushed so far, whether or not VAD has run on it yet
            at_ms = ch.pushed_samples // ch.vad.endpointer.frame_len * ch.vad.endpointer.cfg.frame_ms
        event = Dtmf(self.call_id, ch.name, digit, self._dtmf_seq, at_ms)
        self._dtmf_seq += 1
        item = ("event", event)
        if self.pipeline.vad.idle(self, channel):
            self._out.put_nowait(item)
        else:  # after the events of the audio pushed before it
            self.pipeline.vad.submit(self, channel, lambda: self._out.put_nowait(item))

    async def end(self, reason: str = "hangup") -> CallEnded:
        """Flush VAD, wait for every final of the call to be emitted, then emit CallEnded. Idempotent.

        The ending runs as its own task, shielded: a caller that is cancelled meanwhile (a connection handler
        torn down, a SIP server stopping) neither loses the call's last finals nor leaves a later ``end()``
        (the pipeline's shutdown) waiting for an ending that will never finish."""
        if self._ending is None:
            self._closing = True
            self._ending = asyncio.create_task(self._end(reason), name=f"end-{self.call_id}")
        return await asyncio.shield(self._ending)

    async def _end(self, reason: str) -> CallEnded:
        await self.pipeline.vad.drain(self)  # every push so far through VAD first
        for i, ch in enumerate(self.channels):
            self.pipeline.scheduler.cancel_partial((self.call_id, i))
            for ev in ch.vad.flush():
                await self._on_vad(i, ev)
        duration_ms = max((ch.vad.now_ms for ch in self.channels), default=0)
        recording = self.recording.prefix if self.recording is not None and not self.recording.failed else ""
        ended = CallEnded(self.call_id, duration_ms, reason, finals=0, recording=recording)
        self._out.put_nowait(("end", ended))
        if self._emitter is not None:
            await self._emitter
        if self.recording is not None:  # every final is noted now: close the audio, render the redacted copy
            self.recording.finish()
        self._ended = ended = CallEnded(self.call_id, duration_ms, reason, finals=self.stats.finals, ended_at_ms=ended.ended_at_ms,
                                        recording=recording)
        self.pipeline.calls.pop(self.call_id, None)
        self.pipeline.sources.pop(self.call_id, None)
        return ended

    # --- VAD events -> scheduler -------------------------------------------------------------------
    async def _on_vad(self, index: int, ev) -> None:
        ch = self.channels[index]
        if isinstance(ev, SpeechStarted):
            ch.open_seq = ch.seq
            ch.open_start_ms = ev.start_ms
            ch.seq += 1
            ch.revision = 0
            ch.partials_emitted = 0
            ch.last_partial_req_ms = -10**9  # first partial as soon as MIN_PARTIAL_AUDIO_MS of speech is in
        elif isinstance(ev, SpeechAborted):
            self.stats.aborted_segments += 1
            await self._close_open(index, ch, None, ev)
        elif isinstance(ev, SpeechEnded):
            await self._close_open(index, ch, ev, ev)

    async def _close_open(self, index: int, ch: _Channel, final_audio: SpeechEnded | None, ev) -> None:
        seq = ch.open_seq if ch.open_seq >= 0 else ch.seq
        ch.open_seq = -1
        self.pipeline.scheduler.cancel_partial((self.call_id, index))
        if final_audio is None:
            if ch.partials_emitted:  # retract captions of an utterance that turned out not to be speech
                self._out.put_nowait(("retract", index, seq, ch.revision, ev.start_ms))
            return
        ch.speech_end_wall_ms = now_ms()
        await self._submit_final(index, ch, seq, final_audio)

    async def _submit_final(self, index: int, ch: _Channel, seq: int, ev: SpeechEnded) -> None:
        if ev.lead is not None and ev.lead.size:  # final_lead_ms of lead-in before the pre-roll, for Whisper only
            req = DecodeRequest(np.concatenate([ev.lead, ev.audio]), True, self.language, ev.start_ms - ev.lead.size // 16)
        else:
            req = DecodeRequest(ev.audio, True, self.language, ev.start_ms)
        max_s = self.cfg.final_context_max_s if self.cfg.final_context else 0.0
        if max_s > 0 and ch.last_final is not None:
            audio, start_ms, whole, prev = ch.last_final
            req.pending_context = PendingContext(prev, lambda res: final_context(req, audio, start_ms, res, whole, max_s))
        fut = await self.pipeline.scheduler.submit_final(req)
        if max_s > 0:  # keep only what a context can use (memory: one utterance's end per channel)
            keep = int(max_s * 16000)
            tail = ev.audio[-keep:].copy() if ev.audio.size > keep else ev.audio
            ch.last_final = (tail, ev.start_ms + (ev.audio.size - tail.size) // 16, tail.size == ev.audio.size, fut)
        self._out.put_nowait(("final", index, seq, ch.revision, ev, fut, ch.speech_end_wall_ms, ch.partials_emitted))

    def _maybe_request_partial(self, index: int) -> None:
        ch = self.channels[index]
        now = ch.vad.now_ms
        if now - ch.last_partial_req_ms < self.cfg.partial_interval_s * 1000:
            return
        if now - ch.vad.endpointer.segment_start_ms < MIN_PARTIAL_AUDIO_MS or not ch.vad.speech_confirmed():
            return
        ch.last_partial_req_ms = now
        seq = ch.open_seq

        start_ms = ch.open_start_ms

        def snapshot() -> DecodeRequest | None:
            # the VAD may be a push ahead of the events handled so far: the segment must still be the same one
            if ch.open_seq != seq or self._closing or not ch.vad.in_speech or ch.vad.endpointer.segment_start_ms != start_ms:
                return None
            return DecodeRequest(ch.vad.current_audio(), False, self.language, start_ms)

        def deliver(res: DecodeResult) -> None:
            self._out.put_nowait(("partial", index, seq, res, start_ms, ch.vad.now_ms))

        self.pipeline.scheduler.request_partial((self.call_id, index), PartialTicket(snapshot, deliver))

    # --- ordered emission --------------------------------------------------------------------------
    async def _emit_loop(self) -> None:
        while True:
            item = await self._out.get()
            kind = item[0]
            try:
                if kind == "event":
                    await self._emit(item[1])
                elif kind == "partial":
                    await self._emit_partial(*item[1:])
                elif kind == "final":
                    await self._emit_final(*item[1:])
                elif kind == "retract":
                    _, index, seq, revision, start_ms = item
                    await self._emit(self._transcript(index, seq, revision, True, "", start_ms, start_ms, None, ()))
                elif kind == "end":
                    ended: CallEnded = item[1]
                    await self._emit(CallEnded(self.call_id, ended.duration_ms, ended.reason, self.stats.finals, ended.ended_at_ms,
                                               ended.recording))
                    return
            except Exception:  # one bad event must not stop the call's other events
                log.exception("call %s: emitting %s failed", self.call_id, kind)

    async def _emit_partial(self, index: int, seq: int, res: DecodeResult, start_ms: int, end_ms: int) -> None:
        ch = self.channels[index]
        if ch.open_seq != seq or not res.text:
            return  # its final is already on the way, or nothing to show
        t = self._transcript(index, seq, ch.revision, False, res.text, start_ms, end_ms, res, ())
        ch.revision += 1
        ch.partials_emitted += 1
        self.stats.partials += 1
        await self._emit(t)

    async def _emit_final(self, index, seq, revision, ev: SpeechEnded, fut, speech_end_wall_ms, partials_emitted) -> None:
        ch = self.channels[index]
        try:
            res: DecodeResult = await fut
        except Exception:
            log.exception("call %s: final decode failed for segment %s", self.call_id, seq)
            return
        revision = max(revision, ch.revision)
        if not res.text:
            self.stats.dropped_segments += 1
            if ch.partials_emitted or partials_emitted:
                await self._emit(self._transcript(index, seq, revision, True, "", ev.start_ms, ev.end_ms, res, (), speech_end_wall_ms))
                self.stats.finals += 1
            return
        self._maybe_lock_language(res, ev)
        t = self._transcript(index, seq, revision, True, res.text, ev.start_ms, ev.end_ms, res, res.words, speech_end_wall_ms)
        self.stats.finals += 1
        ch.finals += 1
        await self._emit(t)

    def _maybe_lock_language(self, res: DecodeResult, ev: SpeechEnded) -> None:
        """Fix the call's language once LOCK_AGREEING confident detections agree and none disagreed.

        One confident detection is not enough: a Mandarin call may open with "Hello", an English one with a
        Chinese name. Until the lock, every segment is detected on its own (among language_candidates)."""
        if self.language is not None or not self.cfg.language_lock or not res.language:
            return
        if res.language_probability < LOCK_MIN_PROBABILITY or ev.end_ms - ev.start_ms < LOCK_MIN_AUDIO_MS:
            return
        self._confident[res.language] = self._confident.get(res.language, 0) + 1
        if len(self._confident) == 1 and self._confident[res.language] >= LOCK_AGREEING:
            self.language = res.language
            log.info("call %s: language locked to %s", self.call_id, res.language)

    def _transcript(self, index, seq, revision, is_final, text, start_ms, end_ms, res, words, speech_end_at_ms=0) -> Transcript:
        ch = self.channels[index]
        return Transcript(
            call_id=self.call_id,
            channel=ch.name,
            segment_id=f"{self.call_id}/{ch.name}/{seq}",
            revision=revision,
            is_final=is_final,
            text=text,
            start_ms=start_ms,
            end_ms=end_ms,
            language=(res.language if res else "") or (self.language or ""),
            confidence=res.confidence if res else 0.0,
            words=tuple(words),
            speech_end_at_ms=speech_end_at_ms,
        )

    async def _emit(self, event: Event) -> None:
        if self.recording is not None:
            self.recording.note(event)
        stored = _redacted(event) if self.pipeline.cfg.redact_stored_text else event
        await self.pipeline.sink.publish(stored)
        if self.listener is not None:
            try:
                r = self.listener(event)
                if inspect.isawaitable(r):
                    await r
            except Exception:
                log.exception("call %s: listener failed", self.call_id)


def _redacted(event: Event) -> Event:
    """The copy of a transcript that may be stored: PII masked in the text and in the word tokens."""
    if not isinstance(event, Transcript) or not event.text:
        return event
    from callscribe.keyword.redact import redact, redact_words

    text = redact(event.text)
    if text == event.text:
        return event
    tokens = redact_words([w.text for w in event.words])
    words = tuple(dataclasses.replace(w, text=t) for w, t in zip(event.words, tokens))
    return dataclasses.replace(event, text=text, words=words)
