"""Wire form of decode work between ingest nodes and ASR workers (scale-out over Redis Streams).

A :class:`SegmentJob` carries one segment's audio (PCM16 little-endian, 16 kHz) from the ingest node that
runs the call's VAD to whichever worker reads it from the consumer group; the worker answers with a
:class:`SegmentResult` on the ingest node's own results stream. Both carry ``v`` = SCHEMA_VERSION like the
public events, and parse with SchemaError on anything unexpected.

Keys: ``{prefix}:asr:jobs`` (stream, consumer group ``asr``) and ``{prefix}:asr:results:{node}`` (stream).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from callscribe.audio import float_to_pcm16, pcm16_to_float
from callscribe.config import Config
from callscribe.errors import SchemaError
from callscribe.events import SCHEMA_VERSION, Word

from .engine import DecodeRequest, DecodeResult

GROUP = "asr"


def jobs_stream(cfg: Config) -> str:
    return f"{cfg.key_prefix}:asr:jobs"


def results_stream(cfg: Config, node: str) -> str:
    return f"{cfg.key_prefix}:asr:results:{node}"


@dataclass(frozen=True, slots=True)
class SegmentJob:
    job_id: str
    reply_to: str  # the results stream of the ingest node that waits for it
    is_final: bool
    language: str  # "" = detect
    offset_ms: int
    audio_pcm16: bytes
    created_at_ms: int
    context_pcm16: bytes = b""  # a final's acoustic context (DecodeRequest.context_audio), optional
    context_text: str = ""

    @classmethod
    def from_request(cls, job_id: str, reply_to: str, req: DecodeRequest, created_at_ms: int) -> "SegmentJob":
        pcm = float_to_pcm16(req.audio).astype("<i2", copy=False).tobytes()
        ctx = b""
        if req.context_audio is not None and req.context_audio.size and req.context_text:
            ctx = float_to_pcm16(req.context_audio).astype("<i2", copy=False).tobytes()
        return cls(job_id, reply_to, req.is_final, req.language or "", req.offset_ms, pcm, created_at_ms, ctx,
                   req.context_text if ctx else "")

    def to_request(self) -> DecodeRequest:
        audio = pcm16_to_float(np.frombuffer(self.audio_pcm16, dtype="<i2"))
        req = DecodeRequest(audio, self.is_final, self.language or None, self.offset_ms)
        if self.context_pcm16 and self.context_text:
            req.context_audio = pcm16_to_float(np.frombuffer(self.context_pcm16, dtype="<i2"))
            req.context_text = self.context_text
        return req

    def to_fields(self) -> dict[str, str | bytes]:
        return {
            "v": str(SCHEMA_VERSION), "job_id": self.job_id, "reply_to": self.reply_to, "is_final": "1" if self.is_final else "0",
            "language": self.language, "offset_ms": str(self.offset_ms), "created_at_ms": str(self.created_at_ms),
            "audio": self.audio_pcm16,
            **({"context_audio": self.context_pcm16, "context_text": self.context_text} if self.context_pcm16 else {}),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> "SegmentJob":
        try:
            f = {k.decode() if isinstance(k, bytes) else k: v for k, v in fields.items()}
            _check_version(f)
            audio = f["audio"]
            if len(audio) % 2 or len(audio) > 16000 * 2 * 30:
                raise ValueError(f"audio of {len(audio)} bytes")
            context = f.get("context_audio", b"")  # optional (added after v1 without a bump: older readers ignore it)
            if len(context) % 2 or len(context) + len(audio) > 16000 * 2 * 30:
                raise ValueError(f"context audio of {len(context)} bytes")
            return cls(_s(f["job_id"]), _s(f["reply_to"]), _s(f["is_final"]) == "1", _s(f.get("language", b"")),
                       int(_s(f["offset_ms"])), bytes(audio), int(_s(f["created_at_ms"])), bytes(context),
                       _s(f.get("context_text", b"")))
        except (KeyError, ValueError, UnicodeDecodeError, TypeError) as exc:
            raise SchemaError(f"bad segment job: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class SegmentResult:
    job_id: str
    result: DecodeResult | None  # None: skipped (a partial that was stale when a worker got to it)
    worker: str

    def to_fields(self) -> dict[str, str]:
        out = {"v": str(SCHEMA_VERSION), "job_id": self.job_id, "worker": self.worker}
        if self.result is not None:
            r = self.result
            out["result"] = json.dumps({
                "text": r.text, "language": r.language, "language_probability": r.language_probability,
                "confidence": r.confidence, "avg_logprob": r.avg_logprob, "no_speech_prob": r.no_speech_prob,
                "compression_ratio": r.compression_ratio, "temperature": r.temperature, "dropped": r.dropped,
                "words": [[w.text, w.start_ms, w.end_ms, w.probability] for w in r.words],
            }, ensure_ascii=False)
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> "SegmentResult":
        try:
            f = {k.decode() if isinstance(k, bytes) else k: _s(v) for k, v in fields.items()}
            _check_version(f)
            result = None
            if "result" in f:
                d = json.loads(f["result"])
                result = DecodeResult(
                    text=str(d["text"]), language=str(d["language"]), language_probability=float(d["language_probability"]),
                    confidence=float(d["confidence"]), avg_logprob=float(d["avg_logprob"]), no_speech_prob=float(d["no_speech_prob"]),
                    compression_ratio=float(d["compression_ratio"]), temperature=float(d["temperature"]),
                    words=tuple(Word(str(w[0]), int(w[1]), int(w[2]), float(w[3])) for w in d["words"]), dropped=str(d["dropped"]),
                )
            return cls(f["job_id"], result, f.get("worker", ""))
        except (KeyError, ValueError, UnicodeDecodeError, TypeError, IndexError) as exc:
            raise SchemaError(f"bad segment result: {exc!r}") from exc


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _check_version(f: Mapping[str, object]) -> None:
    v = int(_s(f.get("v", b"1")))  # type: ignore[arg-type]
    if v > SCHEMA_VERSION:
        raise SchemaError(f"job schema v{v} is newer than this reader (v{SCHEMA_VERSION}); upgrade callscribe")
