"""Silero scored for many channels in one ONNX call (vad/silero.score_jobs, vad/batch.step, the pipeline's
VadTicker) gives each channel exactly what it gets alone, on real speech; one channel's fault, silence or
noise changes nothing for the others."""

from __future__ import annotations

import asyncio
import hashlib

import numpy as np
import pytest

from callscribe.asr.engine import DecodeResult
from callscribe.config import Config
from callscribe.events import Dtmf, Transcript
from callscribe.pipeline import Pipeline
from callscribe.vad import ChannelVad, SpeechEnded, batch, silero
from callscribe.vad.silero import CHUNK, SileroJob

from .conftest import load_clip, load_manifest

SR = 16000


def call_audio(seed: int, seconds: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Two channels of turn-taking real speech (as benchmarks/calls.py builds them)."""
    from benchmarks.calls import build_call

    return build_call(f"t{seed}", "zh" if seed % 2 else "en", seconds, seed).channels


def summary(events) -> list[tuple]:
    out = []
    for ev in events:
        row = (type(ev).__name__, *(getattr(ev, k) for k in ev.__slots__ if k not in ("audio", "lead")))
        if isinstance(ev, SpeechEnded):
            lead = ev.lead.tobytes() if ev.lead is not None else b""
            row += (ev.audio.size, hashlib.sha1(ev.audio.tobytes()).hexdigest(), hashlib.sha1(lead).hexdigest())
        out.append(row)
    return out


def test_batched_model_is_the_shipped_model_per_stream():
    """Streams split into jobs of random lengths, scored together: each stream's probabilities equal the
    shipped model's over that stream alone (SileroStream, the faster-whisper asset)."""
    rng = np.random.default_rng(3)
    clips = [load_clip(r["file"]) for r in load_manifest()[:6]]
    streams = [c[: c.size // CHUNK * CHUNK] for c in clips]
    expected = [silero.SileroStream().process(s) for s in streams]
    states = [SileroJob.fresh(np.zeros(0, np.float32)) for _ in streams]
    pos = [0] * len(streams)
    got: list[list[float]] = [[] for _ in streams]
    while any(p < s.size for p, s in zip(pos, streams)):
        jobs, owners = [], []
        for i, s in enumerate(streams):
            k = int(rng.integers(0, 6)) * CHUNK
            if pos[i] >= s.size or not k:
                continue
            st = states[i]
            jobs.append(SileroJob(s[pos[i] : pos[i] + k], st.context, st.h, st.c))
            owners.append(i)
        silero.score_jobs(jobs)
        for i, j in zip(owners, jobs):
            got[i] += j.probs.tolist()
            states[i] = SileroJob(np.zeros(0, np.float32), j.audio[-silero.CONTEXT :], j.h_out, j.c_out)
            pos[i] += j.audio.size
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.array(g), e, atol=1e-5)


@pytest.mark.parametrize("chunk", [1600, 960])
def test_batched_step_gives_each_channel_its_own_events(chunk):
    """Six channels of real calls (plus one silent and one of line hiss) stepped together, one Silero call per
    tick, give exactly the events each channel gets from ChannelVad.push alone."""
    rng = np.random.default_rng(0)
    channels = [x for seed in (1, 2, 3) for x in call_audio(seed)]
    n = max(x.size for x in channels)
    channels += [np.zeros(n, np.float32), (rng.standard_normal(n) * 0.01).astype(np.float32)]
    cfg = Config()
    alone = []
    for x in channels:
        vad = ChannelVad(cfg)
        evs = []
        for p in range(0, x.size, chunk):
            evs += vad.push(x[p : p + chunk])
        alone.append(summary(evs + vad.flush()))
    vads = [ChannelVad(cfg) for _ in channels]
    together: list[list] = [[] for _ in channels]
    calls = 0
    real = silero._run

    def counting(group):
        nonlocal calls
        calls += 1
        real(group)

    silero._run = counting
    try:
        for p in range(0, n, chunk):
            idx = [i for i, x in enumerate(channels) if x[p : p + chunk].size]
            for i, evs in zip(idx, batch.step([vads[i] for i in idx], [channels[i][p : p + chunk] for i in idx])):
                together[i] += evs
    finally:
        silero._run = real
    together = [summary(evs + vad.flush()) for evs, vad in zip(together, vads)]
    assert together == alone
    assert sum(1 for a in alone[:6] for row in a if row[0] == "SpeechEnded") >= 12
    assert alone[6] == [] and alone[7] == []  # silence and hiss: no segment, no Silero work
    assert calls <= n // chunk + 1 + 12  # one call per tick (plus the rare long re-score after a 20 s cut)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_one_channels_fault_leaves_the_others_alone(monkeypatch):
    """A push that cannot be processed comes back as that channel's exception; a Silero failure on one
    channel's rows (simulated: the model refuses a batch holding a NaN) is retried per channel, so the others
    get their probabilities and the same events as alone."""
    good = [x for seed in (4, 5) for x in call_audio(seed, 20)]
    bad = good[0].copy()
    bad[SR * 3 : SR * 6] = np.nan  # garbage on the wire
    cfg = Config()
    session = silero._batched_session()

    class Picky:
        def run(self, names, feeds):
            if np.isnan(feeds["input"]).any():
                raise RuntimeError("model refused the batch")
            return session.run(names, feeds)

    monkeypatch.setattr(silero, "_batched_session", lambda: Picky())
    alone = []
    for x in good:
        vad = ChannelVad(cfg)
        alone.append(summary([ev for p in range(0, x.size, 1600) for ev in vad.push(x[p : p + 1600])]))
    vads = [ChannelVad(cfg) for _ in range(len(good) + 2)]
    out: list[list] = [[] for _ in vads]
    errors = 0
    for p in range(0, good[0].size, 1600):
        samples = [x[p : p + 1600] for x in good] + [bad[p : p + 1600], "not audio"]
        for i, res in enumerate(batch.step(vads, samples)):
            if isinstance(res, Exception):
                errors += 1
                assert i == len(good) + 1
            else:
                out[i] += res
    assert errors == good[0].size // 1600 + (1 if good[0].size % 1600 else 0)
    assert [summary(o) for o in out[: len(good)]] == alone


class _Engine:
    """Stands in for Whisper: the text says how long the segment was."""

    def decode(self, requests):
        return [DecodeResult(str(r.audio.size), "en", 1.0, 1.0, 0.0, 0.0, 1.0, 0.0) for r in requests]


async def _stream(pipeline: Pipeline, calls: list[tuple[np.ndarray, np.ndarray]], chunk: int = 1600):
    from callscribe.events import CallStarted

    events: list = []
    sessions = [await pipeline.open_call(CallStarted(f"c{i}", ("customer", "agent"), "en", SR, "pcm16", {}), events.append)
                for i in range(len(calls))]
    n = max(c[0].size for c in calls)
    for p in range(0, n, chunk):
        for s, c in zip(sessions, calls):
            for ch in (0, 1):
                if c[ch][p : p + chunk].size:
                    await s.push(ch, c[ch][p : p + chunk])
        await asyncio.sleep(0)
    await asyncio.gather(*(s.end() for s in sessions))
    return events


def _finals(events, call_id):
    return [(e.channel, e.start_ms, e.end_ms, e.text) for e in events if isinstance(e, Transcript) and e.is_final and e.call_id == call_id]


async def test_pipeline_batches_vad_across_calls():
    """Four calls streamed together: VAD runs in rounds over all their channels (one Silero call each), and
    every call's finals are those it gets streamed alone."""
    cfg = Config(partials=False, sip=False, analytics=False, web=False, ingest_auth=False)
    calls = [call_audio(seed, 25) for seed in (6, 7, 8, 9)]
    pipeline = Pipeline(cfg, _Engine())
    await pipeline.start()
    together = await _stream(pipeline, calls)
    stats = pipeline.vad.stats
    await pipeline.stop()
    assert stats.largest_round == 8 and stats.silero_calls < stats.rounds + 4
    assert stats.channel_steps > 4 * stats.rounds  # most rounds carry several channels
    for i, c in enumerate(calls):
        pipeline = Pipeline(cfg, _Engine())
        await pipeline.start()
        alone = await _stream(pipeline, [c])
        await pipeline.stop()
        assert _finals(together, f"c{i}") == _finals(alone, "c0") and _finals(alone, "c0")


async def test_dtmf_keeps_its_place_behind_audio_not_yet_run():
    """A key press after some speech is emitted after that speech's final, as when VAD ran inside push."""
    cfg = Config(partials=False, sip=False, analytics=False, web=False, ingest_auth=False)
    speech = load_clip(load_manifest()[0]["file"])
    audio = np.concatenate([np.zeros(SR // 2, np.float32), speech, np.zeros(SR, np.float32)])
    pipeline = Pipeline(cfg, _Engine())
    await pipeline.start()
    from callscribe.events import CallStarted

    events: list = []
    session = await pipeline.open_call(CallStarted("d1", ("customer",), "en", SR, "pcm16", {}), events.append)
    for p in range(0, audio.size, 1600):
        await session.push(0, audio[p : p + 1600])
    session.dtmf(0, "5")  # the pushes may still wait for the ticker here
    await session.end()
    await pipeline.stop()
    kinds = [type(e).__name__ for e in events if isinstance(e, (Transcript, Dtmf))]
    assert kinds == ["Transcript", "Dtmf"]
    dtmf = next(e for e in events if isinstance(e, Dtmf))
    assert dtmf.at_ms == audio.size // 320 * 20


def test_lead_is_the_audio_just_before_the_segment():
    """final_lead_ms of audio before the pre-roll comes with each segment (for Whisper), outside its times; the
    segment itself is what it was without it."""
    speech = load_clip(load_manifest()[0]["file"])
    x = np.concatenate([np.random.default_rng(1).normal(0, 1e-3, SR).astype(np.float32), speech, np.zeros(SR, np.float32)])
    events = {}
    for lead_ms in (0, 200):
        vad = ChannelVad(Config(final_lead_ms=lead_ms))
        events[lead_ms] = [ev for p in range(0, x.size, 1600) for ev in vad.push(x[p : p + 1600])] + vad.flush()
    (plain,), (led,) = ([ev for ev in events[k] if isinstance(ev, SpeechEnded)] for k in (0, 200))
    assert summary([plain])[0][:-1] == summary([led])[0][:-1] and plain.lead is None
    np.testing.assert_array_equal(led.lead, x[(led.start_ms - 200) * 16 : led.start_ms * 16])


async def test_a_cancelled_end_neither_loses_the_final_nor_stalls_shutdown():
    """The connection handler that ends a call is cancelled mid-ending (a client gone, a server stopping): the
    ending goes on by itself, its final is emitted, and the pipeline's shutdown does not wait forever (the CI
    hang of daa8311 had this shape: a later end() waited on an ending that was never finished)."""
    from callscribe.events import CallEnded, CallStarted

    cfg = Config(partials=False, sip=False, analytics=False, web=False, ingest_auth=False)
    speech = load_clip(load_manifest()[0]["file"])
    audio = np.concatenate([np.zeros(SR // 2, np.float32), speech])  # speech to the end: the final comes from end()
    pipeline = Pipeline(cfg, _Engine())
    await pipeline.start()
    events: list = []
    session = await pipeline.open_call(CallStarted("x1", ("customer",), "en", SR, "pcm16", {}), events.append)
    for p in range(0, audio.size, 1600):
        await session.push(0, audio[p : p + 1600])
    first = asyncio.create_task(session.end("hangup"))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.wait_for(pipeline.stop(), 30)  # ends every call: waits for the same ending
    ended = await asyncio.wait_for(session.end(), 5)
    assert ended.reason == "hangup" and ended.finals == 1
    assert [type(e).__name__ for e in events if isinstance(e, (Transcript, CallEnded))] == ["Transcript", "CallEnded"]


async def test_drain_returns_when_the_ticker_is_gone():
    """A ticker task that died (its loop cancelled it) must not leave drain() waiting for a round."""
    from callscribe.events import CallStarted

    cfg = Config(partials=False, sip=False, analytics=False, web=False, ingest_auth=False)
    pipeline = Pipeline(cfg, _Engine())
    await pipeline.start()
    session = await pipeline.open_call(CallStarted("x2", ("customer",), "en", SR, "pcm16", {}), lambda e: None)
    await session.push(0, np.zeros(1600, np.float32))
    ticker = pipeline.vad._task
    assert ticker is not None
    ticker.cancel()
    session.channels[0].inbox.append(np.zeros(1600, np.float32))  # work the dead ticker will never run
    await asyncio.wait_for(pipeline.vad.drain(session), 5)
    await asyncio.wait_for(pipeline.stop(), 30)
