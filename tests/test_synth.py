"""callscribe-synth: the pure parts (number reading, timeline, channel layout, band limit) without Kokoro, and
one real round trip (Kokoro -> stereo 8 kHz FLAC -> the streaming pipeline with whisper-base) when the
``synth`` extra is installed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from callscribe.keyword.dialogue import parse_dialogue
from callscribe.synth import (
    LEAD_S, OUTPUT_RATE_HZ, TAIL_S, VOICE_POOLS, build_timeline, choose_voices, dialogue_language,
    en_text_for_speech, render_call, telephone_band, zh_integer, zh_text_for_speech,
)

DIALOGUE = """caller: 13800138000
agent\t您好，请问有什么可以帮您？
customer\t我的宽带又断了
agent\t[hold 3s]
agent\t好的，我帮您查一下
customer\t谢谢
"""


def test_import_does_not_load_kokoro():
    code = "import sys, callscribe.synth; sys.exit(int('kokoro_onnx' in sys.modules or 'misaki' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("n, said", [
    (0, "零"), (2, "二"), (10, "十"), (11, "十一"), (24, "二十四"), (105, "一百零五"), (110, "一百一十"),
    (1005, "一千零五"), (1050, "一千零五十"), (10086, "一万零八十六"), (100000, "十万"), (120000, "十二万"),
    (100000005, "一亿零五"),
])
def test_zh_integer(n, said):
    assert zh_integer(n) == said


@pytest.mark.parametrize("text, said", [
    ("中国移动10086，工号3721", "中国移动一零零八六，工号三七二一"),       # identifiers: digit by digit
    ("手机号13912345678", "手机号一三九一二三四五六七八"),
    ("号码138-0013-8000", "号码一三八，零零一三，八零零零"),            # grouped: a pause per group
    ("身份证后四位是3512", "身份证后四位是三五一二"),
    ("２０２４年", "二零二四年"),                                       # years too (full-width digits fine)
    ("二十四小时内", "二十四小时内"),
    ("24小时内", "二十四小时内"),                                       # short numbers are quantities
    ("第3次", "第三次"),
    ("2个月", "两个月"),
    ("费用128.5元", "费用一百二十八点五元"),
    ("共100元", "共一百元"),                                            # a unit after 3+ digits: a price
    ("300分钟", "三百分钟"),
    ("￥199", "一百九十九元"),
    ("涨了30%", "涨了百分之三十"),
])
def test_zh_numbers_read_as_spoken(text, said):
    assert zh_text_for_speech(text) == said


@pytest.mark.parametrize("text, said", [
    ("call 415-555-0187 now", "call 4 1 5, 5 5 5, 0 1 8 7 now"),
    ("account 12345678, thanks", "account 1 2 3 4 5 6 7 8, thanks"),
    ("forty dollars, $40.50 in 1985, 20 times", "forty dollars, $40.50 in 1985, 20 times"),  # left to espeak
    ("1,234,567 and 3.14159", "1,234,567 and 3.14159"),
])
def test_en_long_digit_runs_read_digit_by_digit(text, said):
    assert en_text_for_speech(text) == said


def test_dialogue_language():
    assert dialogue_language(["您好", "ok"]) == "zh"
    assert dialogue_language(["Hello there", "我"]) == "en"


def test_voices_stable_one_female_one_male():
    for lang in ("zh", "en"):
        for call in ("a", "b", "call-0001", "demo_zh"):
            v = choose_voices(call, lang)
            assert v == choose_voices(call, lang)
            pools = VOICE_POOLS[lang]
            genders = {g for ch in v for g, pool in pools.items() if v[ch] in pool}
            assert genders == {"female", "male"}
    assert len({tuple(choose_voices(f"c{i}", "en").values()) for i in range(40)}) > 5


def test_timeline_order_pauses_and_gaps():
    d = parse_dialogue(DIALOGUE, "t1")
    rate = 1000  # 1 sample = 1 ms, for readable numbers
    timeline, total = build_timeline(d.utterances, [800, 1200, 500, 300], "t1", rate)
    assert [(t.channel, t.text) for t in timeline] == [(u.channel, u.text) for u in d.utterances]
    spoken = [t for t in timeline if t.text]
    assert spoken[0].start == LEAD_S * rate
    assert [t.end - t.start for t in spoken] == [800, 1200, 500, 300]
    pauses = [b.start - a.end for a, b in zip(timeline, timeline[1:]) if a.text and b.text]
    assert len(pauses) == 2 and all(400 <= p <= 600 for p in pauses)
    hold = timeline[2]
    assert hold.text == "" and hold.end - hold.start == 3000
    assert hold.start - timeline[1].end >= 400  # the turn pause, then the hold
    assert timeline[3].start - hold.end >= 400  # the hold ends in silence, then the next turn's pause
    assert total == timeline[-1].end + TAIL_S * rate
    assert build_timeline(d.utterances, [800, 1200, 500, 300], "t1", rate) == (timeline, total)  # reproducible
    with pytest.raises(ValueError):
        build_timeline(d.utterances, [1, 2, 3, 4, 5], "t1", rate)


def test_render_puts_each_side_on_its_channel():
    d = parse_dialogue(DIALOGUE, "t2")
    rate = OUTPUT_RATE_HZ

    def speak(channel: str, text: str) -> np.ndarray:  # a fake voice: a tone per side, 0.1 s per character
        f = 500 if channel == "customer" else 1500
        return np.sin(2 * np.pi * f * np.arange(len(text) * rate // 10) / rate).astype(np.float32)

    audio, timeline = render_call(d, speak, rate)
    assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[1] == 2
    active = np.abs(audio) > 1e-3
    for u in timeline:
        seg = slice(u.start, u.end)
        if not u.text:
            assert not active[seg].any()  # a hold is silent on both legs
            continue
        own, other = (0, 1) if u.channel == "customer" else (1, 0)
        frames = audio[u.start : u.start + (u.end - u.start) // 80 * 80, own].reshape(-1, 80)  # 10 ms frames
        assert (np.sqrt(np.mean(frames**2, axis=1)) > 0.01).mean() > 0.95
        assert not active[seg, other].any()
        rms = float(np.sqrt(np.mean(audio[seg, own] ** 2)))
        assert 0.05 < rms < 0.15  # levelled to about -20 dBFS
    gaps = np.ones(audio.shape[0], bool)
    for u in timeline:
        if u.text:
            gaps[u.start : u.end] = False
    assert not active[gaps].any()  # nothing outside the utterances: times in the JSON are exact
    assert timeline[0].ms(rate) == (500, 500 + round(len(timeline[0].text) * 100))


def test_telephone_band():
    rate = OUTPUT_RATE_HZ
    t = np.arange(rate) / rate
    for f, kept in ((100, False), (200, False), (1000, True), (3000, True), (3800, False)):
        y = telephone_band(np.sin(2 * np.pi * f * t).astype(np.float32), rate)
        ratio = float(np.std(y[800:-800]) / np.std(np.sin(2 * np.pi * f * t)))
        assert (ratio > 0.95) if kept else (ratio < 0.05), (f, ratio)


def test_missing_extra_names_the_install_command(monkeypatch):
    import importlib.util

    from callscribe import synth

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "kokoro_onnx" else real(name, *a))
    with pytest.raises(synth.SynthUnavailable, match=r"callscribe\[synth\]"):
        synth.KokoroVoice()


def test_resume_skips_rendered_calls(tmp_path):
    from callscribe import synth

    src = tmp_path / "c1.txt"
    src.write_text("agent\thello\ncustomer\thi\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "c1.flac").write_bytes(b"done")
    (out / "c1.json").write_text("{}")
    assert synth.synthesize_paths([tmp_path], out) == [out / "c1.flac"]  # no model needed: nothing to do


@pytest.mark.integration
async def test_synthesized_call_transcribes(tmp_path, engine, asr_config):
    """Kokoro speaks a two-line call; whisper-base, through the same streaming pipeline as live calls, hears
    each side's key words on that side's channel, where the sidecar says they are."""
    pytest.importorskip("kokoro_onnx")
    pytest.importorskip("misaki")
    from callscribe import synth
    from callscribe.events import Transcript
    from callscribe.filerun import load_call_audio, run_call
    from callscribe.pipeline import Pipeline

    src = tmp_path / "refund_call.txt"
    src.write_text("customer\tI would like a refund for my broken phone, please.\n"
                   "agent\tOf course, I can send the refund to your credit card today.\n", encoding="utf-8")
    try:
        audio_path = synth.synthesize_dialogue(src, tmp_path / "out", cache_dir=asr_config.cache_path)
    except synth.VoicesUnavailable as exc:  # offline and no voices cached yet
        pytest.skip(str(exc))
    reference = json.loads(audio_path.with_suffix(".json").read_text(encoding="utf-8"))
    assert [u["channel"] for u in reference["utterances"]] == ["customer", "agent"]
    assert reference["sample_rate_hz"] == 8000 and reference["generator"]["name"] == "callscribe-synth"
    assert set(reference["voices"]) == {"customer", "agent"}

    channels, names = load_call_audio(audio_path, asr_config)
    assert names == ("customer", "agent")
    pipeline = Pipeline(asr_config, engine)
    await pipeline.start()
    events: list = []
    await run_call(pipeline, channels, names, language="auto", listener=events.append)
    await pipeline.stop()
    finals = [e for e in events if isinstance(e, Transcript) and e.is_final and e.text]
    heard = {ch: " ".join(f.text for f in finals if f.channel == ch).lower() for ch in names}
    assert "refund" in heard["customer"] and "phone" in heard["customer"], heard
    assert "refund" in heard["agent"] and "credit card" in heard["agent"], heard
    for f in finals:  # each final lies within its utterance's reference time (VAD margins allowed)
        ref = next(u for u in reference["utterances"] if u["channel"] == f.channel)
        assert ref["start_ms"] - 500 <= f.start_ms and f.end_ms <= ref["end_ms"] + 800
