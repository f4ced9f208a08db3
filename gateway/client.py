"""Python client for the ingest protocol: stream a call's audio, receive its transcripts.

    async with IngestClient("ws://127.0.0.1:8765/v1/ingest", token=TOKEN) as client:
        result = await client.stream_file("call.wav", speed=1.0, on_event=print)

Audio is sent in ``frame_ms`` frames, paced at ``speed`` x real time (None = as fast as the server reads).
``token``: an ingest token (``callscribe token --role ingest --sub SOURCE``), sent as ``Authorization: Bearer``.
A refused handshake raises :class:`~callscribe.errors.Unauthorized` (401/403) or CapacityError (503).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from callscribe.audio import TARGET_RATE_HZ, encode_g711, float_to_pcm16, resample
from callscribe.config import Config
from callscribe.errors import CapacityError, Unauthorized
from callscribe.events import CallEnded, Event, Transcript, from_dict
from callscribe.filerun import load_call_audio


@dataclass(slots=True)
class StreamResult:
    call_id: str
    events: list[Event] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    errors: list[dict] = field(default_factory=list)
    storage: list[dict] = field(default_factory=list)
    """``storage`` messages: the server's Redis did not take writes (``durable: false``) and, later, did."""

    @property
    def durable(self) -> bool:
        """False when the server's last word on storage was that finals of this call are not written yet."""
        return not self.storage or bool(self.storage[-1].get("durable"))

    @property
    def finals(self) -> list[Transcript]:
        return [e for e in self.events if isinstance(e, Transcript) and e.is_final and e.text]

    @property
    def partials(self) -> list[Transcript]:
        return [e for e in self.events if isinstance(e, Transcript) and not e.is_final]

    @property
    def ended(self) -> CallEnded | None:
        return next((e for e in self.events if isinstance(e, CallEnded)), None)


def encode_frames(channels: list[np.ndarray], encoding: str, sample_rate_hz: int) -> bytes:
    """16 kHz float channels -> interleaved bytes in the wire encoding and rate."""
    chans = [resample(c, TARGET_RATE_HZ, sample_rate_hz) if sample_rate_hz != TARGET_RATE_HZ else c for c in channels]
    n = min(c.size for c in chans)
    pcm = np.stack([float_to_pcm16(c[:n]) for c in chans], axis=1).reshape(-1)
    if encoding == "pcm16":
        return pcm.astype("<i2").tobytes()
    return encode_g711(pcm, encoding)


class IngestClient:
    def __init__(self, url: str, open_timeout_s: float = 10.0, token: str | None = None) -> None:
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.token = token
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> "IngestClient":
        return self

    async def __aexit__(self, *exc) -> None:
        return None

    async def stream_file(self, path: str | Path, **kwargs) -> StreamResult:
        channels, names = load_call_audio(path, Config())
        return await self.stream(channels, names, **kwargs)

    async def stream(
        self,
        channels: list[np.ndarray],
        names: tuple[str, ...],
        call_id: str | None = None,
        speed: float | None = 1.0,
        encoding: str = "pcm16",
        sample_rate_hz: int = 16000,
        language: str = "auto",
        metadata: dict[str, str] | None = None,
        frame_ms: int = 100,
        on_event: Callable[[Event], None] | None = None,
    ) -> StreamResult:
        """Stream 16 kHz float32 channels as one call; returns every event the server sent back."""
        call_id = call_id or uuid.uuid4().hex[:12]
        result = StreamResult(call_id)
        data = encode_frames(channels, encoding, sample_rate_hz)
        bps = (2 if encoding == "pcm16" else 1) * len(channels)
        frame_bytes = sample_rate_hz * frame_ms // 1000 * bps
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            ws_cm = await connect(self.url, open_timeout=self.open_timeout_s, max_size=2**22, additional_headers=headers)
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = (exc.response.body or b"").decode(errors="replace").strip()
            if status in (401, 403):
                raise Unauthorized(f"ingest refused the connection ({status}): {body}") from exc
            if status == 503:
                raise CapacityError(f"ingest busy (503): {body}") from exc
            raise
        async with ws_cm as ws:
            start = {
                "type": "start", "call_id": call_id, "channels": list(names), "encoding": encoding,
                "sample_rate": sample_rate_hz, "language": language, "metadata": metadata or {},
            }
            await ws.send(json.dumps(start))
            receiver = asyncio.create_task(self._receive(ws, result, on_event))
            t0 = time.monotonic()
            try:
                for k, pos in enumerate(range(0, len(data), frame_bytes)):
                    await ws.send(data[pos : pos + frame_bytes])
                    if speed:
                        delay = t0 + (k + 1) * frame_ms / 1000 / speed - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                await ws.send(json.dumps({"type": "end"}))
            except ConnectionClosed:
                pass
            await receiver
        return result

    @staticmethod
    async def _receive(ws: ClientConnection, result: StreamResult, on_event) -> None:
        try:
            async for msg in ws:
                obj = json.loads(msg)
                if obj.get("type") == "error":
                    result.errors.append(obj)
                    continue
                if obj.get("type") == "storage":
                    result.storage.append(obj)
                    continue
                event = from_dict(obj)
                result.events.append(event)
                if on_event is not None:
                    on_event(event)
        except ConnectionClosed:
            pass
        if ws.close_code is not None:
            result.close_code = ws.close_code
            result.close_reason = ws.close_reason or ""
