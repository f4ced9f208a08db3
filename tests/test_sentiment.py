"""Customer sentiment (keyword/sentiment.py): utterance scores in both languages, end-of-call weighting,
the negative-trend condition, and fuzzing. Sentences are written for these tests, not taken from data."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscribe.events import Transcript
from callscribe.keyword.sentiment import (
    LABEL_THRESHOLD,
    CallSentiment,
    CallSentimentResult,
    UtteranceSentiment,
    negative_trend,
    score_utterance,
)

ZH_LABELS = [
    # clear positive
    ("太好了，解决了，谢谢", "positive"),
    ("非常满意，你们服务真的很好", "positive"),
    ("现在可以用了，谢谢你啊", "positive"),
    ("已经好了，太感谢了", "positive"),
    ("不错不错，挺专业的", "positive"),
    # clear negative
    ("气死我了", "negative"),
    ("你们太离谱了", "negative"),
    ("什么破服务", "negative"),
    ("还是不行", "negative"),
    ("我要投诉你们", "negative"),
    ("这都第三次了，还没解决", "negative"),
    ("我打了好几次电话了", "negative"),
    ("一直没人管", "negative"),
    ("垃圾，根本没用", "negative"),
    ("我真的很失望", "negative"),
    ("烦死了，网络又断了", "negative"),
    ("我等了半个小时了", "negative"),
    ("我要找你们领导", "negative"),
    ("凭什么扣我钱", "negative"),
    ("服务态度太差了", "negative"),
    ("行了行了", "negative"),
    # neutral task talk and questions
    ("你好，我想查一下话费", "neutral"),
    ("我的账号是一二三四五六", "neutral"),
    ("能不能帮我查一下上个月的账单", "neutral"),
    ("不好意思，我想问一下", "neutral"),
    ("麻烦你帮我看一下", "neutral"),
    ("我想办理退订", "neutral"),
    ("差不多吧", "neutral"),
    ("好的", "neutral"),
    ("嗯", "neutral"),
    ("能解决吗？", "neutral"),
    ("如果还是不行的话我再打过来", "neutral"),
    # negation
    ("不满意", "negative"),
    ("我对这个处理不是很满意", "negative"),
    ("问题还没解决", "negative"),
    ("没有用", "negative"),
    ("不好用", "negative"),
    # Traditional characters fold to Simplified
    ("氣死我了，還是不行", "negative"),
]

EN_LABELS = [
    ("That's great, thank you so much!", "positive"),
    ("Perfect, that fixed it.", "positive"),
    ("It's working now, thanks a lot.", "positive"),
    ("You've been so helpful.", "positive"),
    ("Oh what a relief, the card went through.", "positive"),
    ("It's still not working.", "negative"),
    ("This is the third time I've called about this.", "negative"),
    ("This is ridiculous.", "negative"),
    ("That's unacceptable.", "negative"),
    ("I've been on hold for forty minutes.", "negative"),
    ("I want to speak to a manager.", "negative"),
    ("Nobody ever called me back.", "negative"),
    ("I'm really frustrated with you people.", "negative"),
    ("This is a waste of my time.", "negative"),
    ("My internet is down again!", "negative"),
    ("I'm calling because my internet stopped working.", "negative"),
    ("Great, so it's still broken.", "negative"),
    ("Thanks, but it still doesn't work.", "negative"),
    ("I was promised a refund last week and nothing has happened.", "negative"),
    ("My account number is 4 5 6 7.", "neutral"),
    ("Can you help me with my bill?", "neutral"),
    ("I'd like to change my plan.", "neutral"),
    ("Why is my bill so high?", "neutral"),
    ("Hi, I'm calling about my internet.", "neutral"),
    ("Could you please send me the invoice?", "neutral"),
    ("Yes please.", "neutral"),
    ("Okay.", "neutral"),
    ("Sorry, could you repeat that?", "neutral"),
    ("Is it fixed?", "neutral"),
    ("If it doesn't work I'll call back.", "neutral"),
    ("I'm not happy with this.", "negative"),
]


@pytest.mark.parametrize(("text", "label"), ZH_LABELS)
def test_mandarin_labels(text: str, label: str) -> None:
    result = score_utterance(text, "zh")
    assert result.label == label, (text, result)


@pytest.mark.parametrize(("text", "label"), EN_LABELS)
def test_english_labels(text: str, label: str) -> None:
    result = score_utterance(text, "en")
    assert result.label == label, (text, result)


@pytest.mark.parametrize(
    ("weaker", "stronger", "language"),
    [
        ("满意", "非常满意", "zh"),
        ("失望", "特别失望", "zh"),
        ("有点失望", "失望", "zh"),
        ("不行", "还是不行", "zh"),
        ("慢", "太慢了", "zh"),  # an ambiguous word counts only with a modifier
        ("It's frustrating.", "It's really frustrating!", "en"),
    ],
)
def test_degree_strengthens(weaker: str, stronger: str, language: str) -> None:
    assert abs(score_utterance(stronger, language).score) > abs(score_utterance(weaker, language).score)


@pytest.mark.parametrize(
    ("plain", "negated", "language"),
    [
        ("满意", "不满意", "zh"),
        ("解决了", "没解决", "zh"),
        ("好用", "不好用", "zh"),
        ("It's fixed now.", "It's not fixed.", "en"),
        ("I'm happy with this.", "I'm not happy with this.", "en"),
    ],
)
def test_negation_flips_positive(plain: str, negated: str, language: str) -> None:
    assert score_utterance(plain, language).score > 0 > score_utterance(negated, language).score


def test_double_negation_is_not_negative() -> None:
    assert score_utterance("不是不行", "zh").score > 0 > score_utterance("不行", "zh").score
    # "not very satisfied" is milder than "dissatisfied"
    assert score_utterance("不满意", "zh").score < score_utterance("不太满意", "zh").score < 0


@pytest.mark.parametrize("text", ["好的谢谢", "谢谢", "Thanks.", "okay thanks", "Okay, thank you, bye."])
def test_flat_thanks_is_weak_and_polite(text: str) -> None:
    result = score_utterance(text, "zh" if not text.isascii() else "en")
    assert result.polite
    assert 0 < result.score < 0.4
    assert result.score < score_utterance("太好了，解决了，谢谢", "zh").score


def test_language_hint_loses_to_script() -> None:
    assert score_utterance("还是不行", "en").label == "negative"
    assert score_utterance("This is ridiculous.", "zh").label == "negative"
    assert score_utterance("还是不行", "auto") == score_utterance("还是不行", "zh")


@pytest.mark.parametrize("text", ["", "   ", "？？？", "1234", "...", "\x00", "🙂"])
def test_empty_and_symbols_are_neutral(text: str) -> None:
    assert score_utterance(text, "zh").label == "neutral"
    assert score_utterance(text, "en").label == "neutral"


# --- calls ----------------------------------------------------------------------------------------
def _call(turns: list[tuple[str, str]], language: str) -> CallSentimentResult:
    call = CallSentiment()
    clock = 0
    for channel, text in turns:
        call.add(channel, text, language, clock, clock + 1500)
        clock += 2000
    return call.end()


ANGRY_THEN_RESOLVED_ZH = [
    ("agent", "您好，请问有什么可以帮您"),
    ("customer", "我的宽带又断了，这都第三次了"),
    ("agent", "非常抱歉，我帮您查一下"),
    ("customer", "气死我了，到现在还是不行"),
    ("agent", "我给您重置了一下端口，您再试试"),
    ("customer", "嗯"),
    ("customer", "太好了，解决了，谢谢"),
]
POLITE_CLOSE_ON_NEGATIVE_ZH = [
    ("customer", "我的宽带又断了，这都第三次了"),
    ("customer", "气死我了，还是不行"),
    ("customer", "你们到底能不能解决"),
    ("agent", "我们会安排师傅上门"),
    ("customer", "好的谢谢"),
]
NEUTRAL_INFO_ZH = [
    ("customer", "你好，我想查一下这个月的话费"),
    ("agent", "好的，请提供您的手机号"),
    ("customer", "一三八一二三四五六七八"),
    ("agent", "您本月话费是五十八元"),
    ("customer", "好的"),
    ("customer", "好的谢谢，再见"),
]
ANGRY_THEN_RESOLVED_EN = [
    ("customer", "It's still not working, this is the third time I've called."),
    ("agent", "I'm sorry about that, let me take a look."),
    ("customer", "This is ridiculous."),
    ("agent", "I've reset the line, can you try now?"),
    ("customer", "Oh, it works now! That fixed it, thank you so much."),
]
POLITE_CLOSE_ON_NEGATIVE_EN = [
    ("customer", "It's still not working, this is the third time I've called."),
    ("customer", "Ridiculous. I've been waiting for weeks."),
    ("agent", "I'll raise a ticket and someone will call you back."),
    ("customer", "Okay. Thanks."),
]
NEUTRAL_INFO_EN = [
    ("customer", "Hi, I'd like to check my balance."),
    ("agent", "Sure, can I have your account number?"),
    ("customer", "It's 4 5 6 7."),
    ("agent", "Your balance is twenty dollars."),
    ("customer", "Okay, thanks, bye."),
]
GETTING_WORSE_EN = [
    ("customer", "Hi, I need to change my address."),
    ("customer", "It's 12 Main Street."),
    ("customer", "Wait, why is it still showing the old one?"),
    ("customer", "This is ridiculous, it's the third time I've called."),
    ("customer", "I want to speak to a manager."),
]


@pytest.mark.parametrize(
    ("turns", "language", "ends"),
    [
        (ANGRY_THEN_RESOLVED_ZH, "zh", {"positive"}),
        (ANGRY_THEN_RESOLVED_EN, "en", {"positive"}),
        (POLITE_CLOSE_ON_NEGATIVE_ZH, "zh", {"negative", "neutral"}),
        (POLITE_CLOSE_ON_NEGATIVE_EN, "en", {"negative", "neutral"}),
        (NEUTRAL_INFO_ZH, "zh", {"neutral"}),
        (NEUTRAL_INFO_EN, "en", {"neutral"}),
        (GETTING_WORSE_EN, "en", {"negative"}),
    ],
)
def test_end_of_call(turns: list[tuple[str, str]], language: str, ends: set[str]) -> None:
    result = _call(turns, language)
    assert result.end in ends, result
    assert -1.0 <= result.end_score <= 1.0


def test_resolution_trends_up_and_polite_close_stays_down() -> None:
    resolved = _call(ANGRY_THEN_RESOLVED_ZH, "zh")
    assert resolved.trend > 0.5
    assert resolved.negative_streak == 2
    assert resolved.turns == 4  # the backchannel 嗯 is a turn too
    closed = _call(POLITE_CLOSE_ON_NEGATIVE_ZH, "zh")
    assert closed.end_score < 0
    assert closed.negative_streak == 3
    assert closed.customer_mean < -LABEL_THRESHOLD


def test_agent_is_kept_apart() -> None:
    call = CallSentiment()
    call.add("customer", "你好，我想查一下话费", "zh", 0, 1000)
    call.add("agent", "气死我了，太离谱了", "zh", 1000, 2000)  # never happens, but must not leak
    call.add("agent", "非常感谢您的耐心", "zh", 2000, 3000)
    assert len(call.agent) == 2 and len(call.customer) == 1
    result = call.end()
    assert result.end == "neutral" and result.customer_mean == 0.0 and result.turns == 1


def test_out_of_order_finals_are_sorted_by_start() -> None:
    in_order = CallSentiment()
    shuffled = CallSentiment()
    turns = [(t, text) for t, (_, text) in enumerate(ANGRY_THEN_RESOLVED_EN)]
    for t, text in turns:
        in_order.add("customer", text, "en", t * 1000, t * 1000 + 900)
    for t, text in reversed(turns):
        shuffled.add("customer", text, "en", t * 1000, t * 1000 + 900)
    assert in_order.end() == shuffled.end()


def test_empty_call() -> None:
    result = CallSentiment().end()
    assert (result.end, result.end_score, result.trend) == ("neutral", 0.0, 0.0)
    assert (result.turns, result.negative_streak, result.per_utterance) == (0, 0, ())


def test_to_json() -> None:
    call = CallSentiment()
    for t, (channel, text) in enumerate(ANGRY_THEN_RESOLVED_ZH):
        call.add(channel, text, "zh", t * 1000, t * 1000 + 800)
    data = call.to_json()
    assert set(data) == {"end", "end_score", "trend", "customer_mean", "per_utterance"}
    assert data["end"] == "positive"
    assert len(data["per_utterance"]) == len(ANGRY_THEN_RESOLVED_ZH)
    first = data["per_utterance"][0]
    assert first["channel"] == "agent" and first["start_ms"] == 0 and first["end_ms"] == 800
    assert set(first) == {"channel", "start_ms", "end_ms", "score", "label"}
    assert "text" not in first  # scores only: the transcript (and its PII) stays in the transcript stream


def test_add_transcript_ignores_partials() -> None:
    call = CallSentiment()
    base = dict(call_id="c1", channel="customer", segment_id="s1", start_ms=0, end_ms=900, language="zh",
                confidence=0.9, text="还是不行")
    assert call.add_transcript(Transcript(revision=0, is_final=False, **base)) is None
    assert call.add_transcript(Transcript(revision=1, is_final=True, **base)).label == "negative"
    assert len(call.customer) == 1


@pytest.mark.parametrize(
    ("turns", "language", "alert"),
    [
        (GETTING_WORSE_EN, "en", True),
        (ANGRY_THEN_RESOLVED_EN, "en", False),
        (NEUTRAL_INFO_ZH, "zh", False),
        (POLITE_CLOSE_ON_NEGATIVE_ZH, "zh", False),  # negative all along: no fall
    ],
)
def test_negative_trend(turns: list[tuple[str, str]], language: str, alert: bool) -> None:
    assert negative_trend(_call(turns, language)) is alert


def test_negative_trend_thresholds() -> None:
    result = CallSentimentResult("negative", -0.5, -0.3, -0.2, 4, 2)
    assert not negative_trend(result)
    assert negative_trend(result, min_drop=0.25)
    assert not negative_trend(result, min_drop=0.25, min_turns=5)


# --- fuzzing --------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200), language=st.sampled_from(["zh", "en", "auto", "", "zh-CN", "xx"]))
def test_score_is_bounded_and_never_raises(text: str, language: str) -> None:
    result = score_utterance(text, language)
    assert isinstance(result, UtteranceSentiment)
    assert -1.0 <= result.score <= 1.0 and not math.isnan(result.score)
    assert result.label in {"negative", "neutral", "positive"}


_PIECES = st.sampled_from(
    ["不", "没", "太", "很", "还是", "不行", "满意", "谢谢", "好", "了", "吗", "？", "，", "但是", "如果", "的话",
     "not", "still", "thanks", "great", "but", "working", "?", "!", " ", "third time", "again"]
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=30), language=st.sampled_from(["zh", "en"]))
def test_cue_soup_is_bounded(pieces: list[str], language: str) -> None:
    assert -1.0 <= score_utterance("".join(pieces), language).score <= 1.0


@settings(max_examples=100, deadline=None)
@given(turns=st.lists(st.tuples(st.sampled_from(["customer", "agent", "mixed"]), st.text(max_size=60)), max_size=12))
def test_call_result_is_bounded(turns: list[tuple[str, str]]) -> None:
    call = CallSentiment()
    for i, (channel, text) in enumerate(turns):
        call.add(channel, text, "auto", i * 1000, i * 1000 + 500)
    result = call.end()
    assert -1.0 <= result.end_score <= 1.0
    assert -2.0 <= result.trend <= 2.0
    assert result.end in {"negative", "neutral", "positive"}
    assert result.negative_streak <= result.turns
