"""Matching that understands context (issue 17), as pure logic: whole words for curses (jieba), a threat is the
customer's own intention toward the company, verification questions are not disclosures, dismissive agent lines
are compliance, ASR near-homophones; sentiment wired into the analyzer; evaluation of sentiment and PII."""

from __future__ import annotations

import pytest

from callscribe.events import CallSummary, SentimentUpdate
from callscribe.keyword.analyzer import Analytics
from callscribe.keyword.dialogue import analyze_dialogue, parse_dialogue, to_events
from callscribe.keyword.evaluate import score
from callscribe.keyword.packs import RulePackError, load_pack
from callscribe.keyword.redact import redact


@pytest.fixture(scope="module")
def analytics() -> Analytics:
    return Analytics()


def _rules(analytics: Analytics, text: str, channel: str = "customer") -> set[str]:
    return {h.rule.id for h in analytics.matcher.match(text, channel) if h.rule.is_alert}


@pytest.mark.parametrize("text, alert", [
    ("我妈的手机打不通了", False),         # a possessive, not 妈的
    ("我想给我妈的号码充值", False),
    ("他妈妈的手机欠费了", False),
    ("滚动条不动了", False),               # 滚 inside a word
    ("妈的，怎么又断了", True),
    ("他妈的什么破网", True),
    ("你给我滚", True),
    ("你们就是一群骗子", True),
    ("垃圾短信太多了", False),
])
def test_curses_are_whole_words(analytics, text, alert):
    assert bool({r for r in _rules(analytics, text) if r.startswith("zh.abuse")}) is alert


@pytest.mark.parametrize("text, threat", [
    ("我在律师事务所上班，想问下宽带能不能开发票", False),
    ("我单位是明正律师事务所", False),
    ("帮我举报一个骚扰电话", False),
    ("我同事之前投诉过，后来解决了", False),
    ("我同事后来打了投诉才给退的", False),
    ("再不给我解决我就找律师起诉你们", True),
    ("我要举报你们乱扣费", True),
    ("我去网上曝光你们", True),
    ("你们市公司的人我也认识几个，我直接找他们去", True),
    ("I work at a law firm downtown, can I get an invoice", False),
    ("My daughter is a journalist, she told me to call", False),
    ("How do I report a scam number", False),
    ("I'll take this to the papers", True),
    ("If that money's not back, I'm filing with the CCTS", True),
    ("my brother-in-law's an attorney, and I think he'd find this really interesting", True),
    ("If this isn't sorted by next week I'm going elsewhere", True),
    ("I need my PAC code please, I'm moving to another network", False),
    ("I'm gonna leave you a five-star review", False),
])
def test_a_threat_is_the_customers_own_intention(analytics, text, threat):
    assert bool({r for r in _rules(analytics, text) if ".escalation." in r}) is threat


@pytest.mark.parametrize("text, category", [
    ("这不归我管", "compliance"), ("您去投诉吧，我这边也处理不了", "compliance"), ("that's not my department", "compliance"),
    ("not my problem, complain if you like", "compliance"), ("你是不是脑子不太灵光啊", "abuse"), ("are you stupid", "abuse"),
])
def test_one_category_per_agent_behaviour(analytics, text, category):
    cats = {h.rule.category for h in analytics.matcher.match(text, "agent") if h.rule.is_alert}
    assert cats == {category}


def _alerts(analytics: Analytics, dialogue: str) -> set[str]:
    return {a["rule"] for a in analyze_dialogue(analytics, parse_dialogue(dialogue, "c"))["alerts"]}


@pytest.mark.parametrize("agent_line, alert", [
    ("请问您是机主本人吗？", False),
    ("机主是您婆婆本人是吧？", False),
    ("我这边看到您所在的小区有线路故障，正在抢修", False),
    ("行，我这边直接给您改成一百零三的了，下个月生效", True),
    ("您的余额还有五十元", True),
    ("I can see an outage in your area, engineers are on it", False),
    ("Can you confirm the address on file?", False),
    ("Done, I've activated the four forty-nine plan on this number", True),
    ("Your card on file expired in March, so you're at ninety-four ninety-five owing", True),
])
def test_verification_questions_and_area_faults_are_not_disclosures(analytics, agent_line, alert):
    d = f"agent\t您好 hello\ncustomer\t你好 hi\nagent\t{agent_line}\n"
    assert ("compliance.no_verification" in _alerts(analytics, d)) is alert


def test_asr_near_homophone_of_a_three_character_word(analytics):
    # whisper-base on 8 kHz audio: 工信部 -> 公信不 (and the 不 must not negate the 投诉 after it)
    assert "zh.escalation.regulator" in _rules(analytics, "再不解决我就去公信不投诉你们")


def test_sentiment_updates_summary_and_the_analyze_json(analytics):
    d = parse_dialogue("agent\t您好\ncustomer\t我家宽带又断了，第三次了，太气人了\nagent\t给您提交工单\n"
                       "customer\t每次都这样，没用，我要投诉\n", "s")
    started, finals, ended = to_events(d)
    call = analytics.call(started)
    out = [e for t in finals for e in call.on_final(t)] + call.on_end(ended)
    updates = [e for e in out if isinstance(e, SentimentUpdate)]
    assert updates and updates[-1].label == "negative"
    summary = next(e for e in out if isinstance(e, CallSummary))
    assert summary.sentiment == "negative" and summary.sentiment_score < 0
    r = analyze_dialogue(analytics, d)
    assert r["sentiment"]["end"] == "negative" and len(r["sentiment"]["per_utterance"]) == 4


def test_a_closing_thanks_reads_by_the_outcome(analytics):
    fixed = "agent\tHello\ncustomer\tMy internet is down\nagent\tI've reset it, it should be working now\ncustomer\tYes it works now. Thanks.\n"
    open_ = "agent\tHello\ncustomer\tMy internet is down\nagent\tI'll open a ticket, a technician will call you\ncustomer\tOkay. Thanks.\n"
    assert analyze_dialogue(analytics, parse_dialogue(fixed, "a"))["sentiment"]["end"] == "positive"
    assert analyze_dialogue(analytics, parse_dialogue(open_, "b"))["sentiment"]["end"] == "neutral"


def test_evaluate_scores_end_sentiment_and_pii_exposure():
    results = [{"call_id": "a", "alerts": [], "intent": "other", "unresolved": False, "sentiment": {"end": "neutral"},
                "utterances": [{"text": "call me on [PHONE]"}, {"text": "I live at 12 Elm Street"}]}]
    labels = {"a": {"intent": "other", "alerts": [], "unresolved": False, "end_sentiment": "negative",
                    "pii": ["138 0013 8000", "12 Elm Street"]}}
    s = score(results, labels)
    assert s["sentiment_accuracy"] == 0.0 and s["sentiment_calls"] == 1
    assert s["pii_cases"] == 2 and s["pii_masked"] == 0.5
    assert {"call_id": "a", "what": "pii", "exposed": "12 Elm Street"} in s["errors"]


@pytest.mark.parametrize("text, pii", [
    ("Seven two zero... four four one... nine zero six", "Seven two zero"),
    ("It is nine eight four five, six zero, seven seven one two.", "nine eight four five"),
    ("oh seven seven double-oh, nine double-oh, eight four four", "double-oh"),
    ("It's jess dot nguyen ninety-four at bluewren mail dot com", "bluewren"),
    ("Eleven Moorfield Road", "Moorfield"),
    ("twenty-two eighteen Larkspur Lane, Boise", "Larkspur"),
    ("Flat three, twenty-seven Cromwell Street", "Cromwell"),
    ("我屋头在青龙村四组十七号", "青龙村"),
])
def test_spoken_pii_is_masked(text, pii):
    assert pii not in redact(text)


@pytest.mark.parametrize("text", ["five blocks down the street", "I paid forty-four ten dollars",
                                  "two or three times a day, maybe five or six", "one two three four five six seven"])
def test_ordinary_numbers_stay(text):
    assert redact(text) == text


def test_pack_frames_are_validated(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("version: 1\nlanguage: en\nnot_a_threat: ['(unclosed']\nrules:\n"
                 "  - {id: x, category: escalation, phrases: [lawyer], threat: true}\n", encoding="utf-8")
    with pytest.raises(RulePackError, match="not_a_threat"):
        load_pack(f)
    f.write_text("version: 1\nlanguage: en\nnot_a_thread: []\nrules:\n  - {id: x, category: escalation, phrases: [a]}\n",
                 encoding="utf-8")
    with pytest.raises(RulePackError, match="unknown keys"):
        load_pack(f)
