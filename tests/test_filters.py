"""asr.filters: Whisper's known failure modes (credits on silence, repetition loops) as pure text functions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscribe.asr import filters
from callscribe.asr.filters import (
    clean,
    collapse_repetitions,
    compression_ratio,
    is_hallucination,
    normalize,
    strip_credits,
)


# --- hallucinated credits dropped -------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "Thank you for watching.",
        "Thank you for watching!",
        "  THANKS FOR WATCHING  ",
        "Please subscribe.",
        "字幕由Amara.org社区提供",
        "字幕由 Amara.org 社区提供",
        "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
        "请不吝点赞订阅转发打赏支持明镜与点点栏目",
        "中文字幕志愿者",
        "谢谢大家观看！",
        "",
        "   ",
        "。。。",
    ],
)
@pytest.mark.parametrize("weak", [False, True])
def test_hallucinated_phrases_dropped(text, weak):
    assert clean(text, weak=weak) == ""


# --- credits stripped, real speech before them kept ------------------------------------------------------
@pytest.mark.parametrize(
    "text,kept",
    [
        ("我想查一下我的账单。字幕由Amara.org社区提供", "我想查一下我的账单。"),
        ("我想查一下我的账单。请不吝点赞 订阅 转发 打赏支持明镜与点点栏目", "我想查一下我的账单。"),
        ("你好，我的宽带断了！谢谢观看。字幕由Amara.org社区提供", "你好，我的宽带断了！谢谢观看。"),
        ("I want to cancel my order. Thank you for watching!", "I want to cancel my order."),
        ("My card was charged twice. Thanks for watching. Please subscribe.", "My card was charged twice."),
        ("Is it 3.5 dollars? Thank you for watching.", "Is it 3.5 dollars?"),
    ],
)
def test_credits_stripped_speech_kept(text, kept):
    assert clean(text, weak=False) == kept
    assert strip_credits(text) == kept


def test_strip_credits_leaves_text_without_markers_untouched():
    text = "Hello.  How are you?  Fine!"
    assert strip_credits(text) is text


# --- repetition loops collapsed ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,expected",
    [
        ("好的好的好的好的好的", "好的好的"),
        ("好好好好好好好好", "好好"),
        ("我要退款我要退款我要退款我要退款", "我要退款我要退款"),
        ("对，对，对，对，对，对，", "对，对，"),
        ("我的网络断了断了断了断了断了断了", "我的网络断了断了"),
        ("no no no no no no", "no no"),
        ("I need help I need help I need help I need help please", "I need help I need help please"),
        ("hello. hello. hello. hello. hello.", "hello. hello."),
        ("the the the the the the the the the the cat", "the the cat"),
    ],
)
def test_repetition_loops_collapsed(text, expected):
    assert collapse_repetitions(text) == expected
    assert clean(text, weak=False) == expected


@pytest.mark.parametrize(
    "text",
    [
        "好的好的",  # said twice: kept
        "no no",
        "我的验证码是888888",
        "卡号尾号1111对吧",
        "我的验证码是八八八八八八",
        "my pin is 1 1 1 1",
        "转账100000元",
    ],
)
def test_short_repeats_and_numbers_kept(text):
    """Two copies are ordinary speech; a run of one digit is a code or an amount, not a loop.

    Regression: "我的验证码是888888" came out as "我的验证码是88" (digits collapsed like a decoding loop).
    """
    assert collapse_repetitions(text) == text
    assert clean(text, weak=False) == text


def test_absurd_digit_loop_still_collapsed():
    assert collapse_repetitions("好的" * 20 + "0" * 30) == "好的好的00"


# --- ordinary text unchanged ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "我要投诉你们的服务",
        "It costs 3.5 dollars.",
        "您好，请问有什么可以帮您？",
        "My order number is A B 1 2 3.",
        "谢谢你，再见。",
        "Thank you for calling, how can I help?",
        "scotturb 403 路公共汽车定期发车前往辛特拉 sintra 在罗卡角停靠",
        "For the twentieth time that evening the two men shook hands.",
    ],
)
@pytest.mark.parametrize("weak", [False, True])
def test_ordinary_text_unchanged(text, weak):
    assert clean(text, weak=weak) == text
    assert not is_hallucination(text, weak=weak)


def test_clean_strips_surrounding_whitespace():
    assert clean("  我要投诉你们的服务 \n", weak=False) == "我要投诉你们的服务"


# --- weak-only phrases ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["Thank you.", "thank you!", "You", "谢谢观看", "字幕"])
def test_weak_only_phrases_kept_when_not_weak_dropped_when_weak(text):
    assert clean(text, weak=False) == text
    assert clean(text, weak=True) == ""
    assert is_hallucination(text, weak=True)
    assert not is_hallucination(text, weak=False)


# --- helpers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,expected",
    [("Thank you for watching.", "thankyouforwatching"), ("字幕由 Amara.org 社区提供", "字幕由amaraorg社区提供"),
     ("ＡＢＣ，１２３！", "abc123"), ("  ", "")],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_compression_ratio_flags_loops_not_speech():
    assert compression_ratio("") == 0.0
    assert compression_ratio("好的" * 50) > 2.4
    assert compression_ratio("I want to cancel my order because it arrived broken.") < 2.4
    assert compression_ratio("同时他还担任过政治作战学校副教授中国文化学院教授等") < 2.4


def test_every_listed_hallucination_is_caught_when_weak():
    for phrase in filters.HALLUCINATIONS:
        assert clean(phrase, weak=True) == "", phrase


# --- fuzzing ------------------------------------------------------------------------------------------------
_PIECES = list("好的我要退款 no yes 1 8.。，!?") + ["thank you", "字幕由Amara.org", "Thanks for watching."]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.booleans())
def test_fuzz_clean_is_total_and_never_grows(text, weak):
    out = clean(text, weak=weak)
    assert isinstance(out, str)
    assert len(out) <= len(text)
    assert clean(out, weak=weak) == out or out == ""  # idempotent on its own output


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("好的对嗯啊") + ["a", "b", " "]), max_size=80))
def test_fuzz_collapse_leaves_no_long_runs(text):
    out = collapse_repetitions(text)
    assert len(out) <= len(text)
    if filters._is_mostly_cjk(text):
        for i in range(len(out) - 2):
            assert not (out[i] == out[i + 1] == out[i + 2] and out[i].strip())
