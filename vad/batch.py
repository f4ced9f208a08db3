"""One VAD tick for many channels: each channel's new audio through webrtcvad and its endpointer, then Silero
for all of them in one ONNX call, then each channel's events. Pure: no asyncio, no I/O (the pipeline's
ticker, callscribe/pipeline.py, is the shell that feeds it).

A channel's events are exactly those ``ChannelVad.push`` gives for the same audio: a channel's rows in the
batch see only its own audio and LSTM state, a silent channel adds no rows at all, and a channel whose audio
cannot be processed gets its exception back while the others carry on.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import silero
from .channel import ChannelVad
from .endpointer import VadEvent


def step(vads: Sequence[ChannelVad], samples: Sequence[np.ndarray]) -> list[list[VadEvent] | Exception]:
    """Feed ``samples[i]`` to ``vads[i]`` (each channel at most once per step), score every Silero job in one
    call, settle. Returns each channel's events, or the exception that channel raised."""
    return finish(vads, *prepare(vads, samples))


def prepare(vads: Sequence[ChannelVad], samples: Sequence[np.ndarray]) -> tuple[list[Exception | None], list[silero.SileroJob]]:
    """Phase one (webrtcvad, endpointer): each channel's errors, and the Silero jobs of them all."""
    errors: list[Exception | None] = []
    jobs: list[silero.SileroJob] = []
    for vad, x in zip(vads, samples):
        try:
            vad.feed(x)
            jobs.extend(vad.jobs())
            errors.append(None)
        except Exception as exc:  # this channel's audio only: the others carry on
            vad.abandon()
            errors.append(exc)
    return errors, jobs


def score(jobs: list[silero.SileroJob]) -> int:
    """Phase two, the one that may run off the event loop (ONNX Runtime releases the GIL)."""
    return silero.score_jobs(jobs)


def finish(vads: Sequence[ChannelVad], errors: list[Exception | None], jobs: list[silero.SileroJob] | None = None,
           scored: bool = False) -> list[list[VadEvent] | Exception]:
    """Phase three: each channel's events (gates decided, Silero's endpoint checked). ``jobs`` are scored here
    unless ``scored``."""
    if jobs and not scored:
        silero.score_jobs(jobs)
    out: list[list[VadEvent] | Exception] = []
    for vad, err in zip(vads, errors):
        if err is not None:
            out.append(err)
            continue
        try:
            out.append(vad.settle())
        except Exception as exc:
            vad.abandon()
            out.append(exc)
    return out
