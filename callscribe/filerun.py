"""Run a recorded call through the same streaming pipeline: ``callscribe transcribe`` and the demo.

The file is cut into chunks that are pushed into one CallSession, all channels in lockstep, either as fast
as the pipeline accepts them (backpressure from the scheduler paces it) or at ``speed`` x real time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from .audio import TARGET_RATE_HZ, load_file, resample
from .config import Config
from .errors import AudioFormatError
from .events import CallEnded, CallStarted
from .pipeline import Listener, Pipeline

CHUNK_MS = 100


def channel_names(n_channels: int, cfg: Config) -> tuple[str, ...]:
    if n_channels == 1:
        return ("mixed",)
    if n_channels == 2:
        return tuple(cfg.channel_map[:2]) if len(cfg.channel_map) >= 2 else ("customer", "agent")
    raise AudioFormatError(f"{n_channels}-channel audio: calls have 1 (mixed) or 2 (customer, agent) channels")


def load_call_audio(path: str | Path, cfg: Config) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """Decode a recording into one float32 16 kHz array per channel, with the channel roles."""
    f = load_file(path)
    names = channel_names(f.channels, cfg)
    return [resample(f.samples[:, i], f.sample_rate_hz, TARGET_RATE_HZ) for i in range(f.channels)], names


async def run_call(
    pipeline: Pipeline,
    channels: list[np.ndarray],
    names: tuple[str, ...],
    call_id: str | None = None,
    language: str = "auto",
    metadata: dict[str, str] | None = None,
    speed: float | None = None,
    listener: Listener | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> CallEnded:
    """Stream ``channels`` into a new call; ``speed`` None = as fast as possible, 1.0 = real time."""
    call_id = call_id or uuid.uuid4().hex[:12]
    started = CallStarted(call_id, names, language, TARGET_RATE_HZ, "pcm16", metadata or {})
    session = await pipeline.open_call(started, listener)
    chunk = TARGET_RATE_HZ * CHUNK_MS // 1000
    total = max(c.size for c in channels)
    t0 = time.monotonic()
    try:
        for pos in range(0, total, chunk):
            for i, samples in enumerate(channels):
                part = samples[pos : pos + chunk]
                if part.size:
                    await session.push(i, part)
            if on_progress is not None:
                on_progress(min(total, pos + chunk) / TARGET_RATE_HZ)
            if speed:
                due = t0 + (pos + chunk) / TARGET_RATE_HZ / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # let the emitter and scheduler run
    except BaseException:
        await session.end("error")
        raise
    return await session.end("eof")
