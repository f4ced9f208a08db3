"""The per-call baseline: what streaming Whisper servers such as WhisperLive or whisper_streaming do.

Each segment of each call is decoded on its own with faster-whisper's ``WhisperModel.transcribe`` (30 s
padded window, no cross-call batching), same model, compute type and beam sizes as ours. Plugged into the
same pipeline with ``max_batch_size = 1``, so VAD, partial policy, Redis and the measurements are identical
and only the decoding strategy differs.
"""

from __future__ import annotations

import math

from callscribe.asr.engine import DecodeRequest, DecodeResult, WhisperEngine


class PerCallEngine:
    def __init__(self, engine: WhisperEngine) -> None:
        self.engine = engine  # reuse the loaded model; only ``transcribe`` is used
        self.cfg = engine.cfg
        self.description = engine.description + " per-call transcribe()"

    def decode(self, requests: list[DecodeRequest]) -> list[DecodeResult]:
        out = []
        for req in requests:
            segments, info = self.engine._fw.transcribe(
                req.audio,
                language=req.language,
                beam_size=self.cfg.beam_size_final if req.is_final else self.cfg.beam_size_partial,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
                temperature=0.0 if not req.is_final else (0.0, *self.cfg.temperature_fallback),
            )
            segments = list(segments)
            text = "".join(s.text for s in segments).strip()
            logprob = sum(s.avg_logprob for s in segments) / len(segments) if segments else -10.0
            if info.language == "zh":
                text = self.engine._to_simplified(text)
            out.append(
                DecodeResult(
                    text=text,
                    language=info.language,
                    language_probability=info.language_probability,
                    confidence=round(math.exp(min(0.0, logprob)), 3),
                    avg_logprob=logprob,
                    no_speech_prob=max((s.no_speech_prob for s in segments), default=1.0),
                    compression_ratio=max((s.compression_ratio for s in segments), default=0.0),
                    temperature=max((s.temperature for s in segments), default=0.0),
                )
            )
        return out
