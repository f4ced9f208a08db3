"""One channel's VAD: sample chunks of any size in, endpointing events out, Silero-gated.

Two ways to drive it, with the same events for the same pushes:
- ``push(samples)`` -> events: the channel scores its own Silero chunks (one ONNX call of its own);
- ``feed(samples)``; :func:`~.silero.score_jobs` over the ``jobs()`` of many channels (one ONNX call for all);
  ``settle()`` -> events. :func:`~.batch.step` does that for every live channel of a process once per tick.

Silero scores the open segment incrementally (only the chunks added since the last feed, its LSTM state carried
over); the same probabilities decide the endpoint, confirm speech for partials and gate each finished segment.
The gate is the segment's Silero speech time, counted on the chunks already scored wherever that decides it
(almost always), and otherwise on the missing chunks scored with the rest of the tick's work: the verdict is the
one a fresh pass over the finished segment gives, without scoring the segment twice.
"""

from __future__ import annotations

import logging

import numpy as np

from callscribe.config import Config

from . import silero
from .endpointer import Endpointer, EndpointerConfig, SpeechAborted, SpeechEnded, SpeechStarted, VadEvent
from .silero import CHUNK, CONTEXT, HIDDEN, SileroJob
from .webrtc import WebRtcClassifier

log = logging.getLogger(__name__)
CHUNK_MS = CHUNK * 1000 // 16000  # 32
NONSPEECH_MARGIN = 0.15  # hysteresis: below threshold - margin counts as silence for the endpoint


class _Gate:
    """A finished segment waiting for the Silero chunks its verdict still needs (``job``)."""

    __slots__ = ("event", "counted", "job")

    def __init__(self, event: SpeechEnded, counted: int, job: SileroJob) -> None:
        self.event, self.counted, self.job = event, counted, job


class ChannelVad:
    """Frames 16 kHz float32 audio into VAD frames, endpoints it, and drops segments Silero calls non-speech.

    ``speech_confirmed`` tells whether the open segment has passed the Silero gate yet (partials wait for
    that, so a burst of noise never shows as a caption).
    """

    def __init__(self, config: Config) -> None:
        self.cfg = config
        self.endpointer = Endpointer(
            EndpointerConfig(
                frame_ms=config.vad_frame_ms,
                start_ms=config.vad_start_ms,
                start_window_ms=config.vad_start_window_ms,
                hangover_ms=config.vad_hangover_ms,
                pre_roll_ms=config.vad_pre_roll_ms,
                tail_ms=config.vad_tail_ms,
                lead_ms=config.final_lead_ms,
                min_speech_ms=config.vad_min_speech_ms,
                max_segment_ms=int(config.vad_max_segment_s * 1000),
            )
        )
        self.classifier = WebRtcClassifier(config.vad_aggressiveness)
        self._frame_len = self.endpointer.frame_len
        self._rest = np.zeros(0, np.float32)
        self._threshold = config.silero_threshold
        self._gate_threshold = config.silero_gate_threshold
        self._pending: list[VadEvent | _Gate] = []  # events of the last feed, in order, until settle
        self._open_job: SileroJob | None = None  # the open segment's new chunks, until settle
        self._fed = False
        self._reset_stream()

    @property
    def now_ms(self) -> int:
        return self.endpointer.now_ms

    @property
    def in_speech(self) -> bool:
        return self.endpointer.in_speech

    # --- one channel on its own --------------------------------------------------------------------
    def push(self, samples: np.ndarray) -> list[VadEvent]:
        self.feed(samples)
        silero.score_jobs(self.jobs())
        return self.settle()

    def flush(self) -> list[VadEvent]:
        """End of stream: close the open segment (gated like any other). Call after the last ``settle``."""
        return [self._decide_now(self._raw(ev)) for ev in self.endpointer.flush()]

    def current_audio(self) -> np.ndarray:
        return self.endpointer.current_audio()

    def speech_confirmed(self) -> bool:
        """Has Silero heard enough speech in the open segment (partials wait for that)?"""
        if not self.cfg.silero:
            return True
        return self._gate_speech_ms >= self.cfg.silero_min_speech_ms

    # --- many channels, one Silero call: feed, score the jobs, settle ----------------------------------
    def feed(self, samples: np.ndarray) -> None:
        """Run ``samples`` through webrtcvad and the endpointer; what Silero must score is in ``jobs()``."""
        if self._pending or self._open_job is not None or self._fed:
            raise RuntimeError("ChannelVad.feed called again before settle()")
        buf = np.concatenate([self._rest, samples.astype(np.float32, copy=False)]) if self._rest.size else samples
        n = buf.size // self._frame_len
        if n:
            self._fed = True
            frames = buf[: n * self._frame_len].reshape(n, self._frame_len)
            for ev in self.endpointer.push_many(frames, self.classifier.classify(frames)):
                self._pending.append(self._raw(ev))
            if self.cfg.silero and self.endpointer.in_speech:
                self._open_job = self._job_for_open_segment()
        self._rest = buf[n * self._frame_len :].copy()

    def jobs(self) -> list[SileroJob]:
        out = [g.job for g in self._pending if isinstance(g, _Gate)]
        if self._open_job is not None:
            out.append(self._open_job)
        return out

    def settle(self) -> list[VadEvent]:
        """The events of the last ``feed``, once its jobs are scored (gates decided, Silero's endpoint checked)."""
        events = [self._verdict(g) if isinstance(g, _Gate) else g for g in self._pending]
        self._pending = []
        job, self._open_job = self._open_job, None
        if job is not None:
            self._take(job)
        if self._fed:
            self._fed = False
            events += self._silero_endpoint()
        return events

    def abandon(self) -> None:
        """Drop a feed that cannot be settled (its scoring failed as a whole); the channel carries on."""
        self._pending, self._open_job, self._fed = [], None, False

    # --- internals ---------------------------------------------------------------------------------
    def _reset_stream(self, onset_ms: int = 0) -> None:
        """A new segment: Silero starts from a fresh state at its onset (its first voiced frame), not at the
        pre-roll before it. From a fresh state, silence first makes Silero deaf to the speech that follows: on a
        quiet line 400 ms of pre-roll took a 4.6 s utterance from 83 chunks >= 0.5 to none (the official v6
        model scores the same), and the gate dropped it."""
        self._skip = onset_ms * 16  # 16 kHz: samples of pre-roll Silero does not score
        self._h = np.zeros(HIDDEN, np.float32)
        self._c = np.zeros(HIDDEN, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._probs: list[float] = []  # one per scored chunk of the open segment
        self._scored = 0  # samples of the open segment scored (whole chunks)
        self._gate_speech_ms = 0
        self._trailing_nonspeech_ms = 0  # Silero's view of the open segment's end

    def _raw(self, ev: VadEvent) -> VadEvent | _Gate:
        if isinstance(ev, SpeechStarted):
            self._reset_stream(ev.onset_ms)
            return ev
        if isinstance(ev, SpeechEnded) and self.cfg.silero:
            return self._gate(ev)
        return ev

    def _is_speech(self, chunks: int) -> bool:
        return chunks * CHUNK_MS >= self.cfg.silero_min_speech_ms

    def _gate(self, ev: SpeechEnded) -> VadEvent | _Gate:
        """Verdict on a finished segment: speech if Silero hears >= silero_min_speech_ms in it, scored from its
        onset with a fresh state, its last partial chunk zero-padded. The open segment's probabilities are those
        of the same chunks; only chunks they lack (or a partial last chunk that tips the count) need scoring."""
        audio = ev.audio[self._skip :]
        whole, tail = divmod(audio.size, CHUNK)
        scored = len(self._probs)
        if scored >= whole:
            counted = int(np.count_nonzero(np.asarray(self._probs[:whole]) >= self._gate_threshold))
            if self._is_speech(counted):
                return ev
            if not tail or not self._is_speech(counted + 1):
                return SpeechAborted(ev.start_ms, "not_speech")
            last = np.zeros(CHUNK, np.float32)
            last[:tail] = audio[whole * CHUNK :]
            if scored == whole:  # the state after the last whole chunk is the stream's state now
                return _Gate(ev, counted, SileroJob(last, self._context, self._h, self._c))
            return _Gate(ev, 0, SileroJob.fresh(_padded(audio)))  # that state is gone: score it afresh (rare)
        counted = int(np.count_nonzero(np.asarray(self._probs) >= self._gate_threshold))
        start = scored * CHUNK
        context = audio[start - CONTEXT : start] if scored else np.zeros(CONTEXT, np.float32)
        return _Gate(ev, counted, SileroJob(_padded(audio[start:]), context, self._h, self._c))

    def _verdict(self, gate: _Gate) -> VadEvent:
        job = gate.job
        if job.probs is None:  # scoring failed for this channel: keep the segment (Whisper's own guards follow)
            log.warning("silero gate failed (%s); segment at %d ms kept", job.error, gate.event.start_ms)
            return gate.event
        counted = gate.counted + int(np.count_nonzero(job.probs >= self._gate_threshold))
        return gate.event if self._is_speech(counted) else SpeechAborted(gate.event.start_ms, "not_speech")

    def _decide_now(self, item: VadEvent | _Gate) -> VadEvent:
        if isinstance(item, _Gate):
            silero.score_jobs([item.job])
            return self._verdict(item)
        return item

    def _job_for_open_segment(self) -> SileroJob | None:
        new = self.endpointer.audio_since(self._skip + self._scored)
        whole = (new.size // CHUNK) * CHUNK
        if not whole:
            return None
        return SileroJob(new[:whole], self._context, self._h, self._c)

    def _take(self, job: SileroJob) -> None:
        """Carry the open segment's stream over the chunks just scored."""
        if job.probs is None:  # failed: those chunks are scored again with the next feed
            log.warning("silero scoring failed (%s); retried with the next audio", job.error)
            return
        probs = job.probs
        self._probs.extend(probs.tolist())
        self._scored += job.steps * CHUNK
        self._context = job.audio[-CONTEXT:].copy()
        self._h, self._c = job.h_out, job.c_out
        self._gate_speech_ms += int(np.count_nonzero(probs >= self._threshold)) * CHUNK_MS
        voiced = np.flatnonzero(probs >= self._threshold - NONSPEECH_MARGIN)
        if voiced.size:
            self._trailing_nonspeech_ms = (probs.size - 1 - int(voiced[-1])) * CHUNK_MS
        else:
            self._trailing_nonspeech_ms += probs.size * CHUNK_MS

    def _silero_endpoint(self) -> list[VadEvent]:
        """End the segment when Silero hears ``vad_hangover_ms`` of non-speech at its end, even where webrtcvad
        still fires (line noise, breathing, a noisy room): finals then come 0.4 s after the words, not 1-2 s."""
        if not (self.cfg.silero and self.endpointer.in_speech):
            return []
        if self._gate_speech_ms >= self.cfg.silero_min_speech_ms and self._trailing_nonspeech_ms >= self.cfg.vad_hangover_ms:
            return [self._decide_now(self._raw(ev)) for ev in self.endpointer.end_now(self._trailing_nonspeech_ms)]
        return []


def _padded(audio: np.ndarray) -> np.ndarray:
    """``audio`` zero-padded to a whole number of chunks."""
    pad = (-audio.size) % CHUNK
    return np.pad(audio, (0, pad)) if pad else audio
