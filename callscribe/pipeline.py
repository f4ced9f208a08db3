"""The spine: per-call audio -> VAD -> the shared batch scheduler -> ordered events -> sinks.

:class:`Pipeline` owns what every call shares (the engine's scheduler and the event sink, usually the Redis
publisher). :class:`CallSession` is one live call: it runs VAD per channel, asks the scheduler for partials
while speech goes on and submits finals at each endpoint, and emits the call's events strictly in order
through one emitter task, so a partial never lands after its own final and finals keep their order.

Backpressure: ``push`` awaits when the scheduler holds ``max_pending_finals`` finals; the emitter awaits the
sink. Partials are best-effort everywhere; finals are never dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, Protocol

import numpy as np

from callscribe.asr.engine import DecodeRequest, DecodeResult
from callscribe.asr.scheduler import BatchScheduler, PartialTicket
from callscribe.vad import ChannelVad, SpeechAborted, SpeechEnded, SpeechStarted

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
    seq: int = 0  # segment counter
    open_seq: int = -1  # segment in progress, -1 when none
    revision: int = 0  # next revision of the open segment
    partials_emitted: int = 0
    last_partial_req_ms: int = -10_000
    speech_end_wall_ms: int = 0
    finals: int = 0


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
        self._ended_event = asyncio.Event()
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
        for ev in ch.vad.push(samples):
            await self._on_vad(channel, ev)
        if self.cfg.partials and ch.open_seq >= 0:
            self._maybe_request_partial(channel)

    def dtmf(self, channel: int, digit: str, at_ms: int | None = None) -> None:
        """Record a key press on ``channel`` (RFC 4733 from RTP). It is emitted in order with the call's
        other events; ``at_ms`` defaults to the channel's audio position now."""
        if self._closing:
            return
        ch = self.channels[channel]
        event = Dtmf(self.call_id, ch.name, digit, self._dtmf_seq, ch.vad.now_ms if at_ms is None else at_ms)
        self._dtmf_seq += 1
        self._out.put_nowait(("event", event))

    async def end(self, reason: str = "hangup") -> CallEnded:
        """Flush VAD, wait for every final of the call to be emitted, then emit CallEnded. Idempotent."""
        if self._closing:
            await self._ended_event.wait()
            assert self._ended is not None
            return self._ended
        self._closing = True
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
        self._ended_event.set()
        return ended

    # --- VAD events -> scheduler -------------------------------------------------------------------
    async def _on_vad(self, index: int, ev) -> None:
        ch = self.channels[index]
        if isinstance(ev, SpeechStarted):
            ch.open_seq = ch.seq
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
        req = DecodeRequest(ev.audio, True, self.language, ev.start_ms)
        fut = await self.pipeline.scheduler.submit_final(req)
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

        def snapshot() -> DecodeRequest | None:
            if ch.open_seq != seq or self._closing:
                return None
            return DecodeRequest(ch.vad.current_audio(), False, self.language, ch.vad.endpointer.segment_start_ms)

        def deliver(res: DecodeResult) -> None:
            start_ms = ch.vad.endpointer.segment_start_ms
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
