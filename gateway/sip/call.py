"""One SIP/SIPREC call once accepted: its dialog, its RTP streams and its pipeline session.

The media loop moves decoded audio from each stream's jitter buffer into the pipeline every
``TICK_S`` (one task per call, so a call whose pipeline push waits under backpressure delays nobody
else), watches for media inactivity, and on hang-up drains the buffers before ending the session so
every final of the call reaches Redis before CallEnded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from callscribe.pipeline import CallSession

from ..rtp.receiver import RtpStream
from .callplan import CallPlan
from .dialog import Dialog

log = logging.getLogger(__name__)
TICK_S = 0.06  # 60 ms: adds at most that to a final's latency, and keeps per-call wakeups cheap


class SipCall:
    def __init__(self, dialog: Dialog, plan: CallPlan, streams: list[RtpStream], port_base: int,
                 rtp_timeout_s: float, on_timeout: Callable[["SipCall"], None]) -> None:
        self.dialog = dialog
        self.plan = plan
        self.streams = streams  # parallel to plan.streams; index = pipeline channel index
        self.port_base = port_base
        self.rtp_timeout_s = rtp_timeout_s
        self.on_timeout = on_timeout
        self.session: CallSession | None = None
        self.held = False
        self.answer: bytes = b""  # our current SDP answer (re-sent on a re-INVITE without changes)
        self.started_at = time.monotonic()
        self.end_reason: str | None = None
        self._media: asyncio.Task[None] | None = None
        self._done = asyncio.Event()

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    def start_media(self, session: CallSession) -> None:
        self.session = session
        self._media = asyncio.create_task(self._media_loop(), name=f"media-{self.call_id}")

    async def _media_loop(self) -> None:
        assert self.session is not None
        try:
            while self.end_reason is None:
                await asyncio.sleep(TICK_S)
                now = time.monotonic()
                await self._move(now)
                if not self.held and self._idle_for(now) > self.rtp_timeout_s and self.end_reason is None:
                    log.info("call %s: no RTP for %.0f s, ending it", self.call_id, self.rtp_timeout_s)
                    self.on_timeout(self)
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # a failure in one call's media must not take the server down
            log.exception("call %s: media loop failed", self.call_id)

    async def _move(self, now: float | None) -> None:
        assert self.session is not None
        for i, stream in enumerate(self.streams):
            for digit in stream.take_digits():
                self.session.dtmf(i, digit)
            audio = stream.take_audio(now) if now is not None else stream.drain()
            if audio.size:
                await self.session.push(i, audio)

    def _idle_for(self, now: float) -> float:
        last = max((s.last_packet_at or 0.0 for s in self.streams), default=0.0)
        return now - max(last, self.started_at)

    async def finish(self, reason: str) -> None:
        """Stop media, push what the jitter buffers still hold, end the session (flushing every final),
        close the sockets. Idempotent; later calls wait for the first."""
        if self.end_reason is not None:
            await self._done.wait()
            return
        self.end_reason = reason
        try:
            if self._media is not None and self._media is not asyncio.current_task():
                self._media.cancel()
                try:
                    await self._media
                except (asyncio.CancelledError, Exception):
                    pass
            if self.session is not None:
                try:
                    await self._move(None)
                except Exception:
                    log.exception("call %s: draining media failed", self.call_id)
                await self.session.end(reason)
        finally:
            for s in self.streams:
                s.close()
            self._done.set()

    def stats(self) -> dict[str, object]:
        return {
            s.label or str(i): {
                "packets": s.stats.packets, "malformed": s.stats.malformed, "rtcp": s.stats.rtcp,
                "lost": s.jitter.stats.lost, "late": s.jitter.stats.late, "duplicates": s.jitter.stats.duplicates,
                "concealed_ms": round(s.decoder.stats.concealed_ms), "fec_ms": round(s.decoder.stats.fec_ms),
            }
            for i, s in enumerate(self.streams)
        }


__all__ = ["SipCall", "TICK_S"]
