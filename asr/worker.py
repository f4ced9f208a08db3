"""ASR worker process: reads segment jobs from the Redis consumer group, decodes them in batches, answers.

Start as many as the GPUs/CPUs allow (``callscribe worker``, on any machine that reaches Redis); ingest
nodes started with ``--remote-asr`` send them work. Each batch: jobs this worker claimed from dead peers
(XAUTOCLAIM, idle > ``claim_idle_s``) first, then new jobs (XREADGROUP), finals before partials; stale
partials are answered "skipped" without decoding. Answers go to each job's ``reply_to`` stream before the job
is acknowledged, so a crash at any point leaves the job pending for another worker, never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis

from callscribe.config import Config
from callscribe.errors import SchemaError

from .jobs import GROUP, SegmentJob, SegmentResult, jobs_stream
from .remote import ensure_group, node_name
from .scheduler import SchedulerStats

log = logging.getLogger(__name__)


class AsrWorker:
    def __init__(self, cfg: Config, redis_url: str, engine, name: str | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.name = name or node_name()
        self.stats = SchedulerStats()
        self.claimed = 0
        self._redis = aioredis.Redis.from_url(redis_url, socket_timeout=30, socket_connect_timeout=2)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await ensure_group(self._redis, self.cfg)
        log.info("ASR worker %s ready (%s)", self.name, getattr(self.engine, "description", ""))
        next_claim = 0.0
        try:
            while not self._stop.is_set():
                entries: list[tuple[bytes, dict]] = []
                if time.monotonic() >= next_claim:
                    entries += await self._claim()
                    next_claim = time.monotonic() + max(0.5, self.cfg.claim_idle_s / 4)
                room = self.cfg.max_batch_size - len(entries)
                if room > 0:
                    resp = await self._redis.xreadgroup(GROUP, self.name, {jobs_stream(self.cfg): ">"}, count=room,
                                                        block=200 if not entries else None)
                    for _, got in resp or []:
                        entries += got
                if entries:
                    await self._process(entries)
        finally:
            await self._redis.aclose()

    async def _claim(self) -> list:
        try:
            resp = await self._redis.xautoclaim(jobs_stream(self.cfg), GROUP, self.name,
                                                min_idle_time=int(self.cfg.claim_idle_s * 1000), start_id="0-0",
                                                count=self.cfg.max_batch_size)
        except aioredis.ResponseError as exc:
            log.warning("XAUTOCLAIM failed: %s", exc)
            return []
        claimed = [e for e in resp[1] if e[1]]  # entries deleted meanwhile come back empty
        if claimed:
            self.claimed += len(claimed)
            log.warning("worker %s took over %d jobs from a stalled worker", self.name, len(claimed))
        return claimed

    async def _process(self, entries: list) -> None:
        jobs: list[tuple[bytes, SegmentJob]] = []
        answers: list[tuple[bytes, SegmentJob | None, SegmentResult | None]] = []
        now_ms = time.time() * 1000
        for entry_id, fields in entries:
            try:
                job = SegmentJob.from_fields(fields)
            except SchemaError as exc:
                log.warning("dropping bad job %s: %s", entry_id, exc)
                answers.append((entry_id, None, None))
                continue
            if not job.is_final and now_ms - job.created_at_ms > self.cfg.partial_max_age_s * 1000:
                answers.append((entry_id, job, SegmentResult(job.job_id, None, self.name)))
                self.stats.partials_skipped += 1
                continue
            jobs.append((entry_id, job))
        jobs.sort(key=lambda x: not x[1].is_final)  # finals first
        if jobs:
            t0 = time.perf_counter()
            results = await asyncio.to_thread(self.engine.decode, [j.to_request() for _, j in jobs])
            n_final = sum(j.is_final for _, j in jobs)
            s = self.stats
            s.batches += 1
            s.finals_decoded += n_final
            s.partials_decoded += len(jobs) - n_final
            s.decode_s += time.perf_counter() - t0
            s.batch_sizes[len(jobs)] = s.batch_sizes.get(len(jobs), 0) + 1
            answers += [(eid, job, SegmentResult(job.job_id, res, self.name)) for (eid, job), res in zip(jobs, results)]
        pipe = self._redis.pipeline(transaction=False)
        for _, job, answer in answers:
            if job is not None and answer is not None:
                pipe.xadd(job.reply_to, answer.to_fields(), maxlen=100_000, approximate=True)
                pipe.expire(job.reply_to, 3600)
        ids = [eid for eid, _, _ in answers]
        pipe.xack(jobs_stream(self.cfg), GROUP, *ids)
        pipe.xdel(jobs_stream(self.cfg), *ids)
        await pipe.execute()
