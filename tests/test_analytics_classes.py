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


# ======================================= round 3: dialogues_tune4 classes ===========================================
def alerts(r: dict) -> set[str]:
    return {a["category"] for a in r["alerts"]}


# --- personal data read out of the account that the caller never said is a disclosure, whatever frames it --------
@pytest.mark.parametrize("readout", [
    "Okay, found you. So the handset on the line is IMEI 490154203237518, is that the one playing up?",
    "Right, so that's the broadband at Flat 2, 17 Juniper Road, Leeds, yeah?",
    "我查了一下，这个号码的机主身份证是一一零一零五一九九零零三零七一二三九，对吧？",
    "好的，那张卡绑定的是招商银行的卡，卡号四五三九一四八八零三四三六四六七。",
])
def test_account_data_the_caller_did_not_give_is_a_disclosure(analytics, readout):
    hello = HELLO_ZH if any("\u4e00" <= c <= "\u9fff" for c in readout) else HELLO_EN
    r = run(analytics, hello, ("customer", "Hi, I need some help with my account please."), ("agent", readout))
    assert "compliance" in alerts(r), r["alerts"]


@pytest.mark.parametrize("turns", [
    # the caller's own number read back, a shop address, a ticket number: nothing from the account
    [("customer", "It's 0161 496 0734."), ("agent", "Okay, 0161 496 0734, let me bring that up.")],
    [("customer", "Where's the nearest shop?"), ("agent", "Our store is at 12 Market Street, open till six.")],
    [("customer", "我家宽带断了。"), ("agent", "好的，已经给您报修了，工单号是二零二六一二零七零零三一。")],
])
def test_read_back_shop_addresses_and_ticket_numbers_are_not_disclosures(analytics, turns):
    hello = HELLO_ZH if any("\u4e00" <= c <= "\u9fff" for t in turns for c in t[1]) else HELLO_EN
    r = run(analytics, hello, *turns)
    assert "compliance" not in alerts(r), r["alerts"]


@pytest.mark.parametrize("turn", [
    "我帮您查一下……这个号的机主是王芳，身份证号码是三五零二零三一九九三零四一六一二八六。",
    "登记的机主姓名是李强，身份证是110105199003071239。",
    "看到了，机主身份证号码为四四零三零四一九七二零六一五零八九五。",
])
def test_a_credential_read_out_is_no_verification(analytics, turn):
    r = run(analytics, HELLO_ZH, ("customer", "我想问一下这个号是谁的名字。"), ("agent", turn))
    assert "compliance" in alerts(r), r["alerts"]


@pytest.mark.parametrize("turn", [
    "好的，我查到了，您这个号码上个月订了一个音乐包，每月十元。",
    "系统显示，您名下还有一条宽带在用。",
    "您现在还有五千六百个积分，可以换话费。",
    "好的，已经兑换成功了，话费已经到账。",
    "Alright, so you're paying sixty-five a month on that one.",
])
def test_read_outs_after_a_lookup_are_disclosures(analytics, turn):
    hello = HELLO_ZH if any("\u4e00" <= c <= "\u9fff" for c in turn) else HELLO_EN
    r = run(analytics, hello, ("customer", "Hi, quick question about my account."), ("agent", turn))
    assert "compliance" in alerts(r), r["alerts"]


# --- threats without the textbook words ------------------------------------------------------------------------
@pytest.mark.parametrize("threat", [
    "Honestly, if nobody sorts this by Friday I'm cancelling the lot.",
    "Unless the engineer turns up tomorrow, we're switching, simple as that.",
    "I'll be going with someone else if this carries on.",
    "My cousin's a barrister, so we'll see about that.",
    "Well, my daughter's a journalist, let's see what she makes of this.",
])
def test_conditional_and_veiled_threats_are_escalations(analytics, threat):
    r = run(analytics, HELLO_EN, ("customer", "My line's been dead since Monday."), ("agent", "I'm sorry about that."),
            ("customer", threat))
    assert "escalation" in alerts(r), r["alerts"]


def test_a_calm_cancellation_for_a_move_abroad_is_no_threat(analytics):
    r = run(analytics, HELLO_EN, ("customer", "If I'm moving abroad next month, I'm cancelling the broadband, right?"))
    assert "escalation" not in alerts(r), r["alerts"]


# --- not abuse: an insult at oneself, my mum's ------------------------------------------------------------------
@pytest.mark.parametrize("turn", [
    "Ugh, I'm such an idiot, I left the router unplugged.",
    "Silly me, I typed the wrong number, stupid me.",
    "I felt like an idiot standing in the shop.",
    "我妈的，还有我爸的，两个号都要改。",
    "俺妈的呢？也是这个套餐吗？",
])
def test_self_directed_insults_and_first_person_possessives_are_not_abuse(analytics, turn):
    hello = HELLO_ZH if any("\u4e00" <= c <= "\u9fff" for c in turn) else HELLO_EN
    r = run(analytics, hello, ("customer", turn))
    assert "abuse" not in alerts(r), r["alerts"]


def test_a_curse_is_still_abuse(analytics):
    r = run(analytics, HELLO_ZH, ("customer", "妈的，又断网了。"))
    assert "abuse" in alerts(r)


# --- the customer defers or the delay is restated: open; choosing the other option or the next step: settled ------
@pytest.mark.parametrize("turn", [
    "这个月钱紧，改天再说吧。",
    "那等发工资再交吧。",
    "Another fortnight. Brilliant.",
    "Fine, I'll sort it out later I suppose.",
])
def test_deferring_leaves_the_call_open(analytics, turn):
    hello = HELLO_ZH if any("\u4e00" <= c <= "\u9fff" for c in turn) else HELLO_EN
    r = run(analytics, hello, ("customer", "My number can't be ported out."), ("agent", "The balance has to be cleared first."),
            ("customer", turn))
    assert r["unresolved"], r["reasons"]


@pytest.mark.parametrize("turn", [
    "算了，那我还是等合约到期吧。",
    "算了，那我就先留着这个套餐吧。",
    "那我下午就去营业厅办一下。",
    "行，我明天跑一趟门店。",
])
def test_choosing_the_alternative_or_the_next_step_settles_it(analytics, turn):
    r = run(analytics, HELLO_ZH, ("customer", "我想提前解约可以吗？"),
            ("agent", "合约期内解约需要去营业厅，按剩余月份收违约金。"), ("customer", turn))
    assert not r["unresolved"], r["reasons"]


def test_a_next_step_said_in_anger_settles_nothing(analytics):
    r = run(analytics, HELLO_ZH, ("customer", "我的卡被别人补办了！"), ("agent", "已经给您停机了，三个工作日内给您回复核查结果。"),
            ("customer", "我现在就去营业厅，你们最好给我个说法。"))
    assert r["unresolved"], r["reasons"]


@pytest.mark.parametrize("closing", ["You're all set.", "Okay, that's done.", "Great, you're good to go."])
def test_a_closing_formula_does_not_settle_a_pending_fix(analytics, closing):
    r = run(analytics, HELLO_EN, ("customer", "My order never arrived."), VERIFY_EN,
            ("agent", "I've re-submitted it, it should ship within three to five business days."),
            ("customer", "Okay."), ("agent", closing))
    assert r["unresolved"], r["reasons"]


@pytest.mark.parametrize("last", [
    "Thank you. You've been very patient, at least.",
    "Okay. You were very kind about it, at least.",
    "Well, you've been really helpful, I suppose.",
])
def test_concessive_praise_neither_settles_nor_warms(analytics, last):
    r = run(analytics, HELLO_EN, ("customer", "I want to give some feedback about a shop visit."),
            ("agent", "I've logged it, someone will call you within five working days."), ("customer", last))
    assert r["unresolved"], r["reasons"]
    assert r["sentiment"]["end"] == "neutral", r["sentiment"]["end_score"]


# --- sentiment: accepting an explanation is not warmth; declining "anything else?" is not a mood -----------------
@pytest.mark.parametrize("turns", [
    [("customer", "Fair enough, I'll pop into the store on Monday."), ("agent", "Great. Anything else?"),
     ("customer", "No, that's it. Cheers.")],
    [("customer", "Makes sense. I'll get her to go into a shop then."), ("agent", "Lovely.")],
    [("customer", "明白了，那我周末去营业厅。"), ("agent", "好的。")],
])
def test_accepting_an_explanation_ends_neutral(analytics, turns):
    hello = HELLO_ZH if any("\u4e00" <= c <= "\u9fff" for t in turns for c in t[1]) else HELLO_EN
    r = run(analytics, hello, ("customer", "Can I reset my dad's password?"),
            ("agent", "Only the account holder can, in a store with photo ID."), *turns)
    assert r["sentiment"]["end"] == "neutral", r["sentiment"]


@pytest.mark.parametrize("reply", ["No, I guess not. I'll look at the app.", "Nope, that's all.", "没有了。"])
def test_declining_anything_else_is_not_negative(analytics, reply):
    hello = HELLO_ZH if any("\u4e00" <= c <= "\u9fff" for c in reply) else HELLO_EN
    r = run(analytics, hello, ("customer", "I want to move to the cheaper plan."), VERIFY_EN,
            ("agent", "I've switched you to the cheaper plan from today. Anything else?"), ("customer", reply))
    assert r["sentiment"]["end"] != "negative", r["sentiment"]


@pytest.mark.parametrize("after", [["Wow. Okay.", "Fine."], ["Right.", "Okay. No."], ["好吧。", "嗯。"]])
def test_terse_turns_after_the_agent_insulted_the_customer_are_hurt(analytics, after):
    r = run(analytics, HELLO_EN, ("customer", "How many points do I have?"), VERIFY_EN,
            ("agent", "Shut up and let me finish."), ("customer", after[0]), ("agent", "Done, ten off your bill."),
            ("customer", after[1]))
    assert r["sentiment"]["end"] == "negative", r["sentiment"]


@pytest.mark.parametrize("text,label", [
    ("Oh, thank goodness. Thanks, honestly.", "positive"),
    ("Phew. Thank you, seriously.", "positive"),
    ("I keep getting spam calls about a parcel, how do I block them?", "neutral"),
    ("嗯，希望他们这次能给个说法。", "neutral"),
    ("幸亏你们处理得及时。", "positive"),
])
def test_relief_topic_words_and_hope(text, label):
    from callscribe.keyword.sentiment import score_utterance
    assert score_utterance(text, "").label == label


# --- round 4 (dialogues_tune5, first run then tuned on): classes in wording found in no set ----------------
def test_a_change_before_the_identity_question_in_the_same_turn_is_a_disclosure(analytics):
    r = run(analytics, HELLO_EN, ("customer", "Someone's been logging into my account!"),
            ("agent", "Okay, I've removed the roaming bolt-on from the line and logged everyone out. "
                      "Oh, and can you give me your date of birth?"),
            ("customer", "Ninth of June."))
    assert "compliance" in alerts(r), r["alerts"]


def test_a_verification_sentence_about_the_account_is_not_a_disclosure(analytics):
    r = run(analytics, HELLO_ZH, ("customer", "我想查下我的话费。"),
            ("agent", "好的，为了您的账户安全，先请您说一下机主姓名和服务密码。"), ("customer", "王芳，密码是……"))
    assert "compliance" not in alerts(r), r["alerts"]


@pytest.mark.parametrize("line", ["那个不归我们这边管，您找装维吧。", "这事不归我们前台管。"])
def test_zh_dismissive_with_words_in_between(analytics, line):
    r = run(analytics, HELLO_ZH, ("customer", "师傅说好今天来修的，人呢？"), ("agent", line))
    assert "compliance" in alerts(r), r["alerts"]


def test_en_promise_and_talking_down_and_ready_to_cancel(analytics):
    r = run(analytics, ("agent", "Hiya, Northside Telecom, Lee speaking."), ("customer", "Will my bonus data roll over?"),
            ("agent", "I can promise you it'll never be lost."))
    assert alerts(r) == {"compliance"}, r["alerts"]  # "Hiya" greets: the only compliance is the promise
    r = run(analytics, HELLO_EN, ("customer", "This is the third time, honestly I'm about ready to cancel everything."),
            ("agent", "Sir, you're being ridiculous."))
    assert {"escalation", "abuse"} <= alerts(r), r["alerts"]


def test_a_bad_review_online_is_a_threat_and_the_spam_folder_is_no_insult(analytics):
    r = run(analytics, HELLO_ZH, ("customer", "你们再这样我就去网上给你们打差评。"))
    assert "escalation" in alerts(r), r["alerts"]
    r = run(analytics, HELLO_ZH, ("customer", "我没收到验证码。"), ("agent", "您看一下手机的垃圾信息箱，可能被拦截了。"))
    assert "abuse" not in alerts(r), r["alerts"]


def test_public_service_numbers_said_in_words_are_not_account_data(analytics):
    r = run(analytics, HELLO_ZH, ("customer", "老有骚扰短信怎么办？"),
            ("agent", "您可以把短信转发到幺零零八六九九九，或者打幺二三二一举报。"))
    assert "compliance" not in alerts(r), r["alerts"]


def test_a_booked_appointment_and_a_conditional_callback_leave_it_open(analytics):
    r = run(analytics, HELLO_EN, ("customer", "The internet's been down since Monday."), VERIFY_EN,
            ("agent", "I've set up an appointment for Thursday afternoon and put a goodwill credit on the account."),
            ("customer", "Fine. If nobody turns up by four I'm calling again."))
    assert r["unresolved"], r["reasons"]


def test_zh_waiting_for_the_text_and_a_parting_threat(analytics):
    r = run(analytics, HELLO_ZH, ("customer", "我订的流量包怎么还没生效？"), VERIFY_ZH,
            ("agent", "我帮您催一下，生效了会短信告诉您。"), ("customer", "那行，我等你们短信吧。"))
    assert r["unresolved"], r["reasons"]
    r = run(analytics, HELLO_ZH, ("customer", "装机的人放我鸽子两次了！"), ("agent", "这个我也没办法。"),
            ("customer", "行，你工号多少？"), ("agent", "工号一二三。"), ("customer", "好，你给我等着。"))
    assert "escalation" in alerts(r) and r["unresolved"], (r["alerts"], r["reasons"])
    # the customer asking the agent to wait while they fetch something is no threat
    r = run(analytics, HELLO_ZH, ("customer", "身份证号我看一下啊，你等着，我去拿。"))
    assert "escalation" not in alerts(r), r["alerts"]
