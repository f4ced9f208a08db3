"""Batched Whisper decoding across calls: a list of segments in, a list of results out. Blocking.

One :class:`WhisperEngine` per process holds the CTranslate2 model that every call shares. ``decode`` is
called by the scheduler's single inference thread with a batch that may mix calls, channels, languages,
finals and partials. It builds log-mel features, encodes each window-size group in one batch, detects the
language where the call has none yet, decodes (beam search for finals, greedy for partials), retries finals
that fail Whisper's quality checks at higher temperatures (the same rule as faster-whisper), aligns words
for finals, converts Chinese to Simplified, and applies the hallucination guards in :mod:`.filters`.

We reuse faster-whisper's model loading, feature extractor and tokenizer, and call CTranslate2 directly for
the batched encode/generate/align, which faster-whisper's per-file API does not batch across streams.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from callscribe.config import Config
from callscribe.errors import ConfigError
from callscribe.events import Word
from callscribe.models import ResolvedModel, resolve

from . import filters

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16000
HOP = 160  # samples per mel frame (10 ms)
FULL_FRAMES = 3000  # one 30 s window
N_SAMPLES = SAMPLE_RATE_HZ * 30
BEST_OF = 5
TOKENS_PER_S = 20  # generous: fast Mandarin is ~7 characters (<= 14 tokens) a second
MIN_NEW_TOKENS = 16


@dataclass(slots=True)
class DecodeRequest:
    """One segment to decode. ``audio`` is float32 16 kHz mono, at most 30 s; ``language`` None = detect."""

    audio: np.ndarray
    is_final: bool
    language: str | None = None
    offset_ms: int = 0
    """Where the segment starts in the call, so word times come out in call time."""
    fallback: bool = True
    """Allow the temperature-fallback retries; the scheduler turns this off under load (a final that
    waits for retries holds up every final queued behind it)."""
    context_audio: np.ndarray | None = None
    """Finals: the channel's previous utterance (float32 16 kHz), put in the window before ``audio`` so the
    model hears the speaker and the line first. Segment and context together fit one 30 s window."""
    context_text: str = ""
    """What ``context_audio`` said: forced as the start of the transcript, then stripped from the result."""
    pending_context: object | None = None
    """Set by the pipeline while the previous final is still being decoded (asr.scheduler.PendingContext);
    schedulers fill ``context_audio``/``context_text`` from it before the request is decoded."""


@dataclass(frozen=True, slots=True)
class DecodeResult:
    text: str
    language: str
    language_probability: float
    confidence: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    words: tuple[Word, ...] = ()
    dropped: str = ""
    """Why the text was suppressed ("no_speech", "hallucination"), empty if kept."""


@dataclass(slots=True)
class _Item:
    req: DecodeRequest
    index: int
    features: np.ndarray
    num_frames: int
    language: str = ""
    language_probability: float = 1.0
    tokens: list[int] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    text: str = ""
    ratio: float = 0.0
    temperature: float = 0.0
    prefix: list[int] = field(default_factory=list)  # forced transcript start: <|0.00|> context text <|its end|>
    covered_ms: int = 0  # with a prefix: where the model's last timestamp put the end of what it transcribed
    context_ms: int = 0  # audio before the segment in the window


def pick_device(cfg: Config) -> tuple[str, str]:
    """(device, compute_type): CUDA float16 when ctranslate2 sees a GPU and device is auto, else CPU int8."""
    import ctranslate2

    device = cfg.device
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise ConfigError("setting device (CALLSCRIBE_DEVICE): cuda requested but ctranslate2 sees no GPU")
    compute = cfg.compute_type
    if compute == "auto":
        compute = "float16" if device == "cuda" else "int8"
    return device, compute


class WhisperEngine:
    """The shared model. Not thread-safe by design: one scheduler thread calls ``decode``."""

    def __init__(self, cfg: Config, model: ResolvedModel | None = None) -> None:
        from faster_whisper import WhisperModel

        self.cfg = cfg
        self.resolved = model or resolve(cfg.model, cfg.model_dir, cfg.cache_path)
        self.device, self.compute_type = pick_device(cfg)
        threads = cfg.cpu_threads or (os.cpu_count() or 1)
        self._fw = WhisperModel(
            str(self.resolved.path),
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=threads if self.device == "cpu" else 0,
            num_workers=1,
        )
        self.model = self._fw.model
        self.multilingual = self.model.is_multilingual
        self.fe = self._fw.feature_extractor
        self._suppress = self._suppressed_tokens()
        self._opencc = None
        self.domain_prompts: dict[str, list[int]] = {}
        log.info("whisper %s on %s/%s", self.resolved.name, self.device, self.compute_type)

    # --- public ------------------------------------------------------------------------------------
    @property
    def description(self) -> str:
        return f"whisper-{self.resolved.name} {self.device}/{self.compute_type}"

    def decode(self, requests: list[DecodeRequest]) -> list[DecodeResult]:
        if not requests:
            return []
        items = [self._prepare(r, i) for i, r in enumerate(requests)]
        # one group per (kind, window size): beam size is per generate call, and a batch shares one shape
        groups: dict[tuple[bool, int], list[_Item]] = {}
        for it in items:
            groups.setdefault((it.req.is_final, it.features.shape[1]), []).append(it)
        results: list[DecodeResult | None] = [None] * len(items)
        retry: list[_Item] = []
        for group in groups.values():
            for it, res in zip(group, self._decode_group(group)):
                results[it.index] = res
                if self._context_failed(it):
                    retry.append(it)
        if retry:  # once, without context (a request without context never comes back here)
            log.debug("%d finals decoded again without context", len(retry))
            plain = [dataclasses.replace(it.req, context_audio=None, context_text="", pending_context=None) for it in retry]
            for it, res in zip(retry, self.decode(plain)):
                results[it.index] = res
        return [r for r in results if r is not None]

    def warmup(self) -> None:
        """One tiny decode so the first real batch does not pay for lazy initialisation."""
        self.decode([DecodeRequest(np.zeros(SAMPLE_RATE_HZ, np.float32), is_final=False, language=self._default_language())])

    # --- stages ------------------------------------------------------------------------------------
    def _prepare(self, req: DecodeRequest, index: int) -> _Item:
        audio = req.audio[:N_SAMPLES].astype(np.float32, copy=False)
        prefix: list[int] = []
        context = req.context_audio
        if req.is_final and context is not None and context.size and req.context_text.strip() and context.size + audio.size <= N_SAMPLES:
            # as one timestamped piece, <|0.00|> text <|end of context|>: with <|notimestamps|> a forced sentence
            # often makes the model stop right after it (2 of 4 clip pairs came back empty); in timestamp mode
            # it goes on with the segment (4 of 4). Where it still stops (the text missed words of the context
            # audio, say), decode() retries the segment without context.
            ts = self._tokenizer("en").timestamp_begin
            prefix = [ts] + self._text_tokens(req.context_text) + [ts + min(1500, round(context.size / SAMPLE_RATE_HZ / 0.02))]
            audio = np.concatenate([context.astype(np.float32, copy=False), audio])
        else:
            context = None
        window = self.cfg.final_window if req.is_final else self.cfg.partial_window
        num_frames = max(1, math.ceil(audio.size / HOP))
        frames = FULL_FRAMES if window == "full" else _bucket(num_frames, int(self.cfg.dynamic_min_window_s * 100))
        # faster-whisper computes features of (audio + 30 s of zeros) and keeps the first window; padding only
        # up to the window gives identical values (the log-mel floor is set by the loudest frame, never by the
        # zeros) for a fraction of the STFT work: 2 ms instead of 11 ms for a 10 s window.
        feats = self.fe(audio, padding=max(HOP, frames * HOP - audio.size + 400))[:, :frames]
        if feats.shape[1] < frames:
            feats = np.pad(feats, ((0, 0), (0, frames - feats.shape[1])), constant_values=feats.min())
        language = req.language if (req.language and self.multilingual) else ("" if self.multilingual else "en")
        item = _Item(req, index, np.ascontiguousarray(feats), min(num_frames, frames), language)
        if context is not None:
            item.prefix, item.context_ms = prefix, context.size * 1000 // SAMPLE_RATE_HZ
        return item

    def _decode_group(self, group: list[_Item]) -> list[DecodeResult]:
        """Decode items of one kind (all finals or all partials) and one window size: one encode."""
        import ctranslate2

        finals = group[0].req.is_final
        feats = np.stack([it.features for it in group])
        enc = self.model.encode(ctranslate2.StorageView.from_array(feats), to_cpu=False)
        self._detect_languages(group, enc)
        self._generate(group, enc, self.cfg.beam_size_final if finals else self.cfg.beam_size_partial)
        words: dict[int, tuple[Word, ...]] = {}
        if finals:
            self._fallback([it for it in group if it.req.fallback and self._needs_fallback(it)], feats, group)
            if self.cfg.word_timestamps:
                words = self._align(group, enc)
        return [self._finish(it, words.get(id(it), ())) for it in group]

    def _encode_rows(self, feats: np.ndarray, rows: list[int]):
        import ctranslate2

        return self.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[rows])), to_cpu=False)

    def _detect_languages(self, group: list[_Item], enc) -> None:
        if not any(not it.language for it in group):
            return
        detected = self.model.detect_language(enc)
        allowed = set(self.cfg.language_candidates)
        for it, langs in zip(group, detected):
            if it.language:
                continue
            ranked = [(tok[2:-2], float(p)) for tok, p in langs]
            if allowed:
                ranked = [lp for lp in ranked if lp[0] in allowed] or ranked
                total = sum(p for _, p in ranked) or 1.0
                ranked = [(lang, p / total) for lang, p in ranked]  # probability among the candidates
            it.language, it.language_probability = ranked[0]

    def _generate(self, items: list[_Item], enc, beam_size: int, temperature: float = 0.0) -> None:
        # CTranslate2 batches prompts of different lengths as long as <|startoftranscript|> sits at the same place
        # and the same number of task tokens follows it: so no previous-text prompts, and all finals of a batch
        # in one mode. With final_context, finals decode in timestamp mode (what faster-whisper does), with or
        # without a context; the forced prefix (the context's text) may differ in length per item.
        timestamps = items[0].req.is_final and self._final_timestamps
        prompts = [self._prompt(it.language, timestamps) + it.prefix for it in items]
        if items[0].req.is_final and self.domain_prompts:  # experiment (benchmarks/accuracy.py): a previous-text prompt
            before = [self.domain_prompts.get(it.language, []) for it in items]
            if len({len(b) for b in before}) == 1 and before[0]:
                sot_prev = self._tokenizer("en").sot_prev
                prompts = [[sot_prev] + b + p for b, p in zip(before, prompts)]
        # No speech yields more than ~20 tokens a second: bounding the length bounds a looping decode's cost.
        longest_s = max(it.req.audio.size for it in items) / SAMPLE_RATE_HZ
        extra = int(math.ceil(longest_s / 2)) + 4 if timestamps else 0  # a pair of timestamps every few seconds
        max_length = min(448, max(len(p) for p in prompts) + MIN_NEW_TOKENS + extra + int(math.ceil(longest_s * TOKENS_PER_S)))
        kwargs: dict = {"beam_size": beam_size}
        if temperature > 0:
            kwargs = {"beam_size": 1, "num_hypotheses": BEST_OF, "sampling_topk": 0, "sampling_temperature": temperature}
        results = self.model.generate(
            enc,
            prompts,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=list(self._suppress),
            **kwargs,
        )
        for it, res in zip(items, results):
            seq = res.sequences_ids[0]
            if it.prefix:
                seq = self._after_context(it, seq)
            tokens = [t for t in seq if t < self._eot]  # timestamps (> eot) go too
            seq_len = len(tokens)
            avg_logprob = res.scores[0] * seq_len / (seq_len + 1) if res.scores else -10.0
            text = self._tokenizer(it.language).decode(tokens).strip()
            it.tokens, it.avg_logprob, it.text = tokens, float(avg_logprob), text
            it.no_speech_prob = float(res.no_speech_prob) if temperature == 0 else it.no_speech_prob
            it.ratio, it.temperature = filters.compression_ratio(text), temperature

    def _after_context(self, it: _Item, seq: list[int]) -> list[int]:
        """The tokens of a context-prefixed result that belong to the segment: the forced prefix stripped, and
        so is any piece that ends inside the context's time (the model transcribing the context again). A piece
        that starts in the context and runs into the segment is kept (it holds the segment's first words: dropping
        it deleted whole utterances, 2 of 15 English clips), less any words it repeats from the context's end.
        Notes how far its timestamps reach."""
        if seq[: len(it.prefix)] == it.prefix:
            seq = seq[len(it.prefix) :]
        ts = self._tokenizer("en").timestamp_begin
        context_end = it.context_ms // 20  # in 20 ms timestamp steps
        tail = self._context_words(it)
        out: list[int] = []
        piece: list[int] = []
        start: int | None = None
        it.covered_ms = it.context_ms

        def keep(words: list[int], begin: int | None) -> None:
            if begin is not None and begin < context_end - 10:  # starts in the context: drop a repeated tail
                for k in range(min(len(words), len(tail)), 0, -1):
                    if words[:k] == tail[-k:]:
                        words = words[k:]
                        break
            out.extend(words)

        for t in seq:
            if t < ts:
                piece.append(t)
            elif start is None:  # pieces come as <|start|> text <|end|>
                start = t - ts
            else:
                end = t - ts
                it.covered_ms = max(it.covered_ms, end * 20)
                if end > context_end + 10:  # 0.2 s of slack: a piece ending by then is the context's own
                    keep(piece, start)
                piece, start = [], None
        if piece:  # cut off before its end timestamp (length limit): keep it
            keep(piece, start)
        return out

    def _context_words(self, it: _Item) -> list[int]:
        return [t for t in it.prefix if t < self._eot]

    def _context_failed(self, it: _Item) -> bool:
        """The model stopped after the context instead of transcribing the segment (no text, or its timestamps
        end before half the segment): that final is decoded again without context."""
        segment_ms = it.req.audio.size * 1000 // SAMPLE_RATE_HZ
        return bool(it.prefix) and (not it.tokens or it.covered_ms < it.context_ms + segment_ms // 2)

    def _needs_fallback(self, it: _Item) -> bool:
        cfg = self.cfg
        if it.no_speech_prob > cfg.no_speech_threshold and it.avg_logprob < cfg.log_prob_threshold:
            return False  # silence: nothing to retry
        return it.ratio > cfg.compression_ratio_threshold or it.avg_logprob < cfg.log_prob_threshold

    def _fallback(self, failing: list[_Item], feats: np.ndarray, group: list[_Item]) -> None:
        """faster-whisper's temperature fallback, batched: retry failing finals, keep each one's best try."""
        if not failing or not self.cfg.temperature_fallback:
            return
        best = {id(it): (it.tokens, it.avg_logprob, it.text, it.ratio, it.temperature) for it in failing}
        rows = {id(it): i for i, it in enumerate(group)}
        for temperature in self.cfg.temperature_fallback:
            enc = self._encode_rows(feats, [rows[id(it)] for it in failing])
            self._generate(failing, enc, 1, temperature)
            still = []
            for it in failing:
                prev = best[id(it)]
                prev_ok = prev[3] <= self.cfg.compression_ratio_threshold
                cur_ok = it.ratio <= self.cfg.compression_ratio_threshold
                if (cur_ok and not prev_ok) or (cur_ok == prev_ok and it.avg_logprob > prev[1]):
                    best[id(it)] = (it.tokens, it.avg_logprob, it.text, it.ratio, it.temperature)
                if self._needs_fallback(it):
                    still.append(it)
            failing = still
            if not failing:
                break
        for it in group:
            if id(it) in best:
                it.tokens, it.avg_logprob, it.text, it.ratio, it.temperature = best[id(it)]

    def _align(self, group: list[_Item], enc) -> dict[int, tuple[Word, ...]]:
        """Word times from cross-attention (CTranslate2 ``align``), for finals that have text."""
        wanted = [it for it in group if it.req.is_final and it.tokens]
        if not wanted:
            return {}
        languages = [it.language for it in wanted]
        main = max(set(languages), key=languages.count)
        tok_main = self._tokenizer(main)
        # the context's words are aligned too (its audio is in the window), then dropped; not its timestamps
        text_tokens = [self._context_words(it) + it.tokens if (it.req.is_final and it.tokens) else [self._eot] for it in group]
        try:
            aligned = self.model.align(enc, tok_main.sot_sequence, text_tokens, [it.num_frames for it in group], median_filter_width=7)
        except Exception as exc:  # alignment is a nicety: never lose the text over it
            log.warning("word alignment failed: %s", exc)
            return {}
        out: dict[int, tuple[Word, ...]] = {}
        tps = SAMPLE_RATE_HZ / HOP / 2  # encoder tokens per second (50)
        for it, res in zip(group, aligned):
            if not (it.req.is_final and it.tokens):
                continue
            tok = self._tokenizer(it.language)
            context_words = self._context_words(it)
            words_txt, word_tokens = tok.split_to_word_tokens(context_words + it.tokens + [self._eot])
            if len(word_tokens) <= 1:
                continue
            text_idx = np.array([p[0] for p in res.alignments])
            time_idx = np.array([p[1] for p in res.alignments])
            if text_idx.size == 0:
                continue
            jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
            jump_times = time_idx[jumps] / tps
            bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
            if len(jump_times) < bounds[-1] + 1:
                continue
            probs = res.text_token_probs
            words = []
            start_ms = it.req.offset_ms - it.context_ms  # the window starts with the context, before the segment
            for w, i, j in zip(words_txt[:-1], bounds[:-1], bounds[1:]):
                if not w.strip() or i < len(context_words):  # the context's own words are not this segment's
                    continue
                text = self._to_simplified(w) if it.language == "zh" else w
                words.append(
                    Word(
                        text,
                        max(it.req.offset_ms, start_ms + int(round(jump_times[i] * 1000))),
                        max(it.req.offset_ms, start_ms + int(round(jump_times[j] * 1000))),
                        round(float(np.mean(probs[i:j])) if j > i else 0.0, 3),
                    )
                )
            out[id(it)] = tuple(words)
        return out

    def _finish(self, it: _Item, words: tuple[Word, ...]) -> DecodeResult:
        cfg = self.cfg
        text = it.text
        dropped = ""
        if it.no_speech_prob > cfg.no_speech_threshold and it.avg_logprob < cfg.log_prob_threshold:
            dropped = "no_speech"
        else:
            if it.language == "zh":
                text = self._to_simplified(text)
            weak = it.no_speech_prob > 0.3 or it.avg_logprob < -0.8 or it.req.audio.size < SAMPLE_RATE_HZ
            cleaned = filters.clean(text, weak=weak)
            if not cleaned:
                dropped = "hallucination"
            elif cleaned != text:
                words = ()  # word list no longer matches the cleaned text
            text = cleaned
        if dropped:
            text, words = "", ()
        return DecodeResult(
            text=text,
            language=it.language,
            language_probability=round(it.language_probability, 3),
            confidence=round(math.exp(min(0.0, it.avg_logprob)), 3),
            avg_logprob=round(it.avg_logprob, 4),
            no_speech_prob=round(it.no_speech_prob, 4),
            compression_ratio=round(it.ratio, 3),
            temperature=it.temperature,
            words=words,
            dropped=dropped,
        )

    # --- helpers -----------------------------------------------------------------------------------
    def _default_language(self) -> str:
        return "en" if not self.multilingual else (self.cfg.language if self.cfg.language != "auto" else "en")

    @property
    def _final_timestamps(self) -> bool:
        return self.cfg.final_context

    @property
    def _eot(self) -> int:
        return self._tokenizer(self._default_language()).eot

    def _prompt(self, language: str, timestamps: bool = False) -> list[int]:
        tok = self._tokenizer(language)
        return list(tok.sot_sequence) + ([] if timestamps else [tok.no_timestamps])

    def _text_tokens(self, text: str) -> list[int]:
        """Tokens of a transcript as the model writes it (English words start with a space)."""
        text = text.strip()
        if text and text[0].isascii():
            text = " " + text
        return list(self._tokenizer("en").encode(text))

    def _tokenizer(self, language: str):
        return _tokenizer(self._fw.hf_tokenizer, self.multilingual, language or "en")

    def _suppressed_tokens(self) -> tuple[int, ...]:
        from faster_whisper.transcribe import get_suppressed_tokens

        return tuple(get_suppressed_tokens(self._tokenizer(self._default_language()), [-1]))

    def _to_simplified(self, text: str) -> str:
        if self._opencc is None:
            import opencc

            self._opencc = opencc.OpenCC("t2s")
        return self._opencc.convert(text)


@lru_cache(maxsize=256)
def _tokenizer(hf_tokenizer, multilingual: bool, language: str):
    from faster_whisper.tokenizer import Tokenizer

    return Tokenizer(hf_tokenizer, multilingual, task="transcribe", language=language if multilingual else None)


def _bucket(num_frames: int, min_frames: int) -> int:
    """Dynamic encoder window: the segment plus >= 0.5 s, rounded up to 2 s (few distinct shapes to batch),
    never shorter than ``min_frames``."""
    return min(FULL_FRAMES, max(min_frames, int(math.ceil((num_frames + 50) / 200.0)) * 200))
