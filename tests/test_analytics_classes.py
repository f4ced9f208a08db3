"""The issue-17 failure classes found by error analysis on the tuning sets (docs/analytics.md, "Error classes"),
each asserted on calls written for the test in wording that appears in no labelled set: a class is fixed by a
general rule, so a paraphrase must behave the same."""

from __future__ import annotations

import pytest

from callscribe.keyword.analyzer import Analytics
from callscribe.keyword.dialogue import analyze_dialogue, parse_dialogue


@pytest.fixture(scope="module")
def analytics() -> Analytics:
    return Analytics()


def run(analytics: Analytics, *turns: tuple[str, str]) -> dict:
    text = "\n".join(f"{who}\t{what}" for who, what in turns)
    return analyze_dialogue(analytics, parse_dialogue(text, "t"))


HELLO_EN = ("agent", "Hi, thanks for calling, this is Jo.")
HELLO_ZH = ("agent", "您好，很高兴为您服务。")
VERIFY_EN = ("agent", "Thanks, that matches, you're verified.")
VERIFY_ZH = ("agent", "核实通过了。")


# --- a fix promised for later in general words is pending ------------------------------------------------
@pytest.mark.parametrize("promise", [
    "I'll arrange a technician to come and look at the line, earliest slot is Friday morning.",
    "I'm going to book one of our engineers for you, they'll test the socket.",
    "Once the returns team finish checking the handset, the replacement goes out.",
    "It normally takes two to three business days for the porting desk to reply.",
])
def test_fix_promised_for_later_leaves_the_call_unresolved(analytics, promise):
    r = run(analytics, HELLO_EN, ("customer", "My broadband keeps dropping every evening."), VERIFY_EN,
            ("agent", promise), ("customer", "Right. Okay then. Bye."))
    assert r["unresolved"], r["reasons"]


@pytest.mark.parametrize("promise", [
    "我给您安排维修师傅过去看一下，最早后天上午。",
    "我给您提交了，两到三个工作日内会有专人联系您。",
    "已经给您催单了，有结果会第一时间短信通知您。",
])
def test_zh_fix_promised_for_later_leaves_the_call_unresolved(analytics, promise):
    r = run(analytics, HELLO_ZH, ("customer", "我家宽带老是掉线。"), VERIFY_ZH, ("agent", promise), ("customer", "行吧。"))
    assert r["unresolved"], r["reasons"]


@pytest.mark.parametrize("turns", [
    # money already processed: the time frame is when it shows, not a fix to come
    [("agent", "已经帮您退订了，押金会在三个工作日内原路退回。"), ("customer", "好的。")],
    # a validity period, a confirmation letter, a conditional notice on a fixed line
    [("agent", "I've sent the code by text, it's valid for seven days."), ("customer", "Got it, thanks.")],
    [("agent", "I've removed the late fee. You'll get a confirmation letter within three working days."),
     ("customer", "Okay, thanks.")],
    [("agent", "I've reset the line and it's back up. If it ever drops again the router tells us and we'll text you."),
     ("customer", "Okay, that works, cheers.")],
])
def test_time_frames_that_promise_no_fix_are_not_pending(analytics, turns):
    r = run(analytics, HELLO_EN, ("customer", "Hi, I need help with my account."), VERIFY_EN, *turns)
    assert not r["unresolved"], r["reasons"]


# --- the agent cannot do it, in general words --------------------------------------------------------------
@pytest.mark.parametrize("turns", [
    [("agent", "We're not able to refund charges from outside providers, you'd have to contact them."),
     ("customer", "Okay. Bye.")],
    [("agent", "I'm sorry, I can't reverse a top-up once it has gone through."), ("customer", "Right.")],
    [("agent", "这个月的费用退不了，已经扣了。"), ("customer", "哦。")],
])
def test_agent_cannot_leaves_it_open(analytics, turns):
    r = run(analytics, HELLO_EN, ("customer", "I want my money back for that charge."), VERIFY_EN, *turns)
    assert r["unresolved"], r["reasons"]


# --- satisfied in the customer's own words -----------------------------------------------------------------
@pytest.mark.parametrize("close", [
    "Oh that's so much better, pages are flying now. You've been a star.",
    "哎呀，这下太好了，靠谱！",
])
def test_customer_clearly_satisfied_settles_a_side_ticket(analytics, close):
    r = run(analytics, HELLO_EN, ("customer", "My data stopped after the SIM swap."), VERIFY_EN,
            ("agent", "I've pushed the settings. I've also logged a ticket for the app error you mentioned."),
            ("customer", close))
    assert not r["unresolved"], r["reasons"]


@pytest.mark.parametrize("close", [
    "So I'm just out eleven bucks. Great. Fine.",        # sarcasm: VADER reads it as warm
    "Thank you so much, really appreciate it.",         # heartfelt thanks for a visit still to come
    "Fine. Thursday. Someone better actually turn up.",
])
def test_thanks_or_sarcasm_does_not_settle_a_pending_visit(analytics, close):
    r = run(analytics, HELLO_EN, ("customer", "My broadband is down."), VERIFY_EN,
            ("agent", "I've booked an engineer for Thursday between eight and one."), ("customer", close))
    assert r["unresolved"], r["reasons"]


# --- end sentiment ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("close", ["Alright. I'll wait then.", "那行，我就等着吧。"])
def test_calm_waiting_on_an_open_problem_is_neutral(analytics, close):
    r = run(analytics, HELLO_EN, ("customer", "My phone has no service since this morning."), VERIFY_EN,
            ("agent", "There's a mast fault near you."), ("customer", "Oh, okay. Do you know when it'll be back?"),
            ("agent", "The crews estimate this evening around six."), ("customer", close))
    assert r["unresolved"]
    assert r["sentiment"]["end"] == "neutral"


@pytest.mark.parametrize("close", ["行，我去营业厅，真是服了你们了。", "五到七天……行吧，我是真没辙了。",
                                   "So I'm just out eleven bucks. Great.", "Wow. You could at least say sorry."])
def test_exasperation_without_complaint_words_is_negative(analytics, close):
    r = run(analytics, HELLO_ZH, ("customer", "我想问一下这个扣费。"), ("agent", "这个我们这边处理不了。"), ("customer", close))
    assert r["sentiment"]["end"] == "negative"


def test_bare_thanks_after_a_finished_errand_is_neutral_and_warmth_is_positive(analytics):
    done = [HELLO_ZH, ("customer", "我想开通国际漫游。"), ("agent", "请您报一下机主姓名和身份证后四位。"),
            ("customer", "刘洋，五五六七。"), ("agent", "核实通过，已经为您开通国际漫游了。")]
    assert run(analytics, *done, ("customer", "好的，谢谢。"))["sentiment"]["end"] == "neutral"
    assert run(analytics, *done, ("customer", "太好了，谢谢你啊，真贴心。"))["sentiment"]["end"] == "positive"


# --- account read-outs before verification -----------------------------------------------------------------
@pytest.mark.parametrize("readout", [
    "Sure, I can see it. You've got two thousand one hundred and twenty reward points on there.",
    "His data was suspended on Monday because the account has an unpaid balance of ninety dollars.",
    "Looks like the account has an overdue bill from March.",
])
def test_en_readout_before_verification_is_compliance(analytics, readout):
    r = run(analytics, HELLO_EN, ("customer", "Hi, calling about my husband's line."), ("agent", readout))
    assert "compliance" in {a["category"] for a in r["alerts"]}
    r = run(analytics, HELLO_EN, ("customer", "Hi, calling about my line."), VERIFY_EN, ("agent", readout))
    assert "compliance" not in {a["category"] for a in r["alerts"]}


@pytest.mark.parametrize("readout", ["您这个号码现在是欠费停机状态。", "您的余额是负三十二块五。", "您的积分还有三千二。"])
def test_zh_readout_before_verification_is_compliance(analytics, readout):
    r = run(analytics, HELLO_ZH, ("customer", "我手机打不出去了。"), ("agent", readout))
    assert "compliance" in {a["category"] for a in r["alerts"]}
    r = run(analytics, HELLO_ZH, ("customer", "我手机打不出去了。"), ("agent", "请您报一下服务密码。"),
            ("customer", "好了。"), VERIFY_ZH, ("agent", readout))
    assert "compliance" not in {a["category"] for a in r["alerts"]}
