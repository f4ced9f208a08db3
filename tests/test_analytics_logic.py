"""Pure analytics logic (keyword/): rule packs, matching, intent, the per-call analyzer, surges, repeat
callers, dialogue files. No I/O beyond temporary files; the labelled-dialogue scores are in
test_analytics_labelled.py and the live Redis worker in test_analytics_live.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callscribe.events import Alert, CallEnded, CallFlag, CallStarted, CallSummary, IntentUpdate, Transcript, from_fields, to_fields
from callscribe.keyword.analyzer import Analytics, AnalyticsSettings, PriorCall
from callscribe.keyword.dialogue import DialogueError, analyze_dialogue, parse_dialogue, to_events
from callscribe.keyword.intent import IntentClassifier
from callscribe.keyword.matcher import Matcher
from callscribe.keyword.packs import PackStore, RulePackError, load_pack, load_packs
from callscribe.keyword.repeat import RepeatIndex, caller_key
from callscribe.keyword.surge import SurgeDetector


@pytest.fixture(scope="module")
def analytics() -> Analytics:
    return Analytics()


@pytest.fixture(scope="module")
def matcher(analytics) -> Matcher:
    return analytics.matcher


def rules_hit(matcher: Matcher, text: str, channel: str = "customer") -> set[str]:
    return {h.rule.id for h in matcher.match(text, channel)}


# --- matching ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, rule", [
    ("我要投诉你们", "zh.escalation.complaint"),
    ("我要頭訴你們", "zh.escalation.complaint"),           # Traditional + homophone
    ("再不解决我就投诉", "zh.escalation.complaint"),         # conditional threat still counts
    ("我要打１２３１５", "zh.escalation.regulator"),         # full-width digits
    ("我去工新部告你们", "zh.escalation.regulator"),          # homophone 工新部
    ("叫你们零导来", "zh.escalation.supervisor"),            # homophone 零导
    ("我要找你们经理", "zh.escalation.supervisor"),
    ("我会找媒体曝光", "zh.escalation.media"),
    ("我找律师起诉你们", "zh.escalation.legal"),
    ("再这样我就销号", "zh.escalation.cancel_threat"),
    ("你们这帮骗子", "zh.abuse.insult"),
    ("他妈的又断网了", "zh.abuse.profanity"),
    ("I want to speak to your supervisor", "en.escalation.supervisor"),
    ("I'll report you to the FCC", "en.escalation.regulator"),
    ("See you in small claims court", "en.escalation.legal"),
    ("I'm going to post this on Twitter", "en.escalation.media"),
    ("Fix it or I'm cancelling my account", "en.escalation.cancel_threat"),
    ("you useless idiots", "en.abuse.insult"),
])
def test_customer_alert_rules_fire(matcher, text, rule):
    assert rule in rules_hit(matcher, text)


@pytest.mark.parametrize("text", [
    "我不是要投诉，就是问问",
    "我没有要投诉的意思",
    "不是要头诉，我就想问一下",
    "我上次投诉过，后来处理好了",
    "我收到好多垃圾短信",
    "价格是3150元一年",
    "I'm not going to complain, I just want to know",
    "I don't want to file a complaint",
    "My old complaint was resolved last year",
    "I keep getting scam calls",
    "hello, my bill is 315 dollars",
])
def test_negated_or_harmless_text_raises_nothing(matcher, text):
    assert not {r for r in rules_hit(matcher, text) if not r.split(".")[1] == "signal"}


def test_rules_are_per_channel(matcher):
    # the agent offering a supervisor or naming the complaint line is not a customer escalation
    assert "zh.escalation.supervisor" not in rules_hit(matcher, "需要的话我帮您找值班经理", "agent")
    assert "en.escalation.supervisor" not in rules_hit(matcher, "I can get a supervisor for you", "agent")
    # agent-only rules do not fire on the customer's side; a mixed channel applies customer rules
    assert "zh.compliance.forbidden_promise" not in rules_hit(matcher, "我保证", "customer")
    assert "zh.compliance.forbidden_promise" in rules_hit(matcher, "我保证今天一定修好", "agent")
    assert "zh.escalation.complaint" in rules_hit(matcher, "我要投诉", "mixed")


def test_negated_promise_is_not_a_compliance_miss(matcher):
    assert not rules_hit(matcher, "这个我不能保证一定今天修好", "agent") & {"zh.compliance.forbidden_promise"}
    assert not rules_hit(matcher, "I can't guarantee it will be today", "agent") & {"en.compliance.forbidden_promise"}
    assert "en.compliance.forbidden_promise" in rules_hit(matcher, "I guarantee it will be fixed today", "agent")


def test_english_phrases_match_whole_words_only(matcher):
    assert "en.signal.greeting" not in rules_hit(matcher, "this is about my chip", "agent")  # "hi" inside "chip"
    assert "en.signal.greeting" in rules_hit(matcher, "Hi, how can I help?", "agent")


def test_hit_positions_index_the_original_text(matcher):
    text = "喂，我要頭訴你們！"
    hit = next(h for h in matcher.match(text, "customer") if h.rule.id == "zh.escalation.complaint")
    assert text[hit.start:hit.end] == hit.text == "頭訴" and hit.by_sound


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["customer", "agent", "mixed", "any"]))
def test_matcher_never_raises(matcher, text, channel):
    for hit in matcher.match(text, channel):
        assert 0 <= hit.start < hit.end <= len(text)


# --- packs ---------------------------------------------------------------------------------------
def test_bundled_packs_load_with_unique_ids():
    packs = load_packs()
    assert {p.language for p in packs} == {"zh", "en"}
    ids = [r.id for p in packs for r in p.rules]
    assert len(ids) == len(set(ids)) and len(ids) > 30


@pytest.mark.parametrize("body, why", [
    ("version: 2\nlanguage: zh\nrules: []", "version"),
    ("version: 1\nlanguage: fr\nrules: [{id: a, category: abuse, phrases: [x]}]", "language"),
    ("version: 1\nlanguage: zh\nrules: [{id: a, category: weird, phrases: [x]}]", "category"),
    ("version: 1\nlanguage: zh\nrules: [{id: a, category: abuse}]", "phrases or patterns"),
    ("version: 1\nlanguage: zh\nrules: [{id: a, category: abuse, patterns: ['(']}]", "pattern"),
    ("version: 1\nlanguage: zh\nrules: [{id: a, category: signal, phrases: [x]}]", "signal name"),
    ("version: 1\nlanguage: zh\nrules: [{id: a, category: abuse, phrases: [x], colour: red}]", "unknown keys"),
    ("version: 1\nlanguage: zh\nrules: [{id: a, category: abuse, severity: extreme, phrases: [x]}]", "severity"),
    ("{{{", "rule pack"),
])
def test_bad_packs_are_refused_with_the_reason(tmp_path, body, why):
    f = tmp_path / "p.yaml"
    f.write_text(body, encoding="utf-8")
    with pytest.raises(RulePackError, match=why):
        load_pack(f)


def test_duplicate_rule_ids_across_packs_are_refused(tmp_path):
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("version: 1\nlanguage: en\nrules: [{id: same, category: abuse, phrases: [x]}]")
    with pytest.raises(RulePackError, match="same"):
        load_packs([tmp_path])


def test_pack_store_reloads_edits_and_survives_a_broken_edit(tmp_path, caplog):
    f = tmp_path / "custom.yaml"
    f.write_text("version: 1\nlanguage: en\nrules: [{id: t.one, category: escalation, channel: customer, phrases: [blue whale]}]")
    a = Analytics(pack_paths=[f])
    assert {h.rule.id for h in a.matcher.match("a blue whale", "customer")} == {"t.one"}
    a.packs._check_every_s = 0.0
    time.sleep(0.01)
    f.write_text("version: 1\nlanguage: en\nrules: [{id: t.two, category: abuse, phrases: [red fox]}]")
    os.utime(f, (time.time() + 5, time.time() + 5))
    assert {h.rule.id for h in a.matcher.match("a red fox and a blue whale", "customer")} == {"t.two"}
    f.write_text("version: 1\nlanguage: en\nrules: [{id: broken")  # an operator's typo
    os.utime(f, (time.time() + 10, time.time() + 10))
    assert {h.rule.id for h in a.matcher.match("a red fox", "customer")} == {"t.two"}  # old packs kept
    assert "not reloaded" in caplog.text


# --- intent --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, intent", [
    ("我家宽带从昨天开始就上不了网了，光猫红灯一直闪", "broadband_outage"),
    ("我想携号转网到电信，需要什么条件", "number_porting"),
    ("下个月去日本，怎么开通国际漫游", "roaming"),
    ("这个月话费怎么多扣了三十块，我没开通过什么业务", "billing_dispute"),
    ("My home internet has been down since this morning", "broadband_outage"),
    ("I'm travelling to France next week, how much is roaming", "roaming"),
    ("I want to switch to a cheaper monthly plan", "package_change"),
    ("I think someone hacked my account and changed my password", "account_security"),
])
def test_intent_of_a_clear_request(analytics, text, intent):
    assert analytics.classifier.score(text).intent == intent


def test_intent_catalog_has_the_required_ids(analytics):
    assert set(analytics.classifier.ids) >= {
        "billing_dispute", "data_plan", "roaming", "broadband_outage", "number_porting", "cancel_service",
        "package_change", "sim_device", "payment", "account_security", "complaint", "other"}


def test_bad_catalog_is_refused(tmp_path):
    from callscribe.keyword.intent import IntentCatalogError

    f = tmp_path / "i.yaml"
    f.write_text("version: 1\nintents: [{id: a, examples: {}}]")
    with pytest.raises(IntentCatalogError, match="no examples"):
        IntentClassifier.from_yaml(f)


# --- the per-call analyzer -------------------------------------------------------------------------
def run(analytics: Analytics, text: str, call_id: str = "c1", history=()):
    d = parse_dialogue(text, call_id)
    started, finals, ended = to_events(d)
    call = analytics.call(started, history)
    out = []
    for t in finals:
        out += call.on_final(t)
    out += call.on_end(ended)
    return out


def categories(out) -> set[str]:
    return {e.category for e in out if isinstance(e, Alert)}


def final_flag(out) -> CallFlag:
    return next(e for e in out if isinstance(e, CallFlag) and e.final)


@pytest.mark.parametrize("seconds, alerts", [(29, False), (30, True), (95, True)])
def test_silence_threshold_is_inclusive(analytics, seconds, alerts):
    out = run(analytics, f"agent\t您好，请问有什么可以帮您？\ncustomer\t查一下话费\nagent\t[hold {seconds}s]\nagent\t您的话费余额是二十元")
    assert ("silence" in categories(out)) is alerts


def test_trailing_silence_counts_too(analytics):
    out = run(analytics, "agent\tHello, how can I help?\ncustomer\tMy bill is wrong\ncustomer\t[silence 40s]")
    assert "silence" in categories(out)


def test_greeting_and_verification_compliance(analytics):
    out = run(analytics, "agent\t说吧什么事\ncustomer\t我要改套餐")
    assert {a.rule for a in out if isinstance(a, Alert)} == {"compliance.no_greeting"}
    out = run(analytics, "agent\t您好\ncustomer\t我要改密码\nagent\t好的，已经帮您重置了，您名下的余额是二十元")
    assert "compliance.no_verification" in {a.rule for a in out if isinstance(a, Alert)}
    out = run(analytics, "agent\t您好\ncustomer\t我要改密码\nagent\t请提供身份证后四位\ncustomer\t1234\nagent\t已经帮您重置了")
    assert "compliance" not in categories(out)


def test_one_alert_per_call_and_rule_with_quote_and_times(analytics):
    out = run(analytics, "agent\t您好\ncustomer\t我要投诉\ncustomer\t我真的要投诉，我电话13800138000")
    alerts = [a for a in out if isinstance(a, Alert) and a.rule == "zh.escalation.complaint"]
    assert len(alerts) == 1
    a = alerts[0]
    assert a.quote == "我要投诉" and a.channel == "customer" and a.end_ms > a.start_ms >= 0
    assert a.alert_id == "c1/alert/zh.escalation.complaint" and a.segment_id == "c1/customer/0"


def test_quotes_are_redacted(analytics):
    out = run(analytics, "agent\t您好\ncustomer\t我手机号13800138000，我要投诉")
    a = next(a for a in out if isinstance(a, Alert) and a.category == "escalation")
    assert "13800138000" not in a.quote and "投诉" in a.quote


def test_overtalk_from_overlapping_turns(analytics):
    started = CallStarted("ot", ("customer", "agent"), started_at_ms=1)
    call = analytics.call(started)
    out = []
    for i in range(3):
        base = i * 10_000
        out += call.on_final(Transcript("ot", "agent", f"ot/agent/{i}", 0, True, "let me explain the plan", base, base + 5000, "en", 1.0))
        out += call.on_final(Transcript("ot", "customer", f"ot/customer/{i}", 0, True, "no listen", base + 1000, base + 3000, "en", 1.0))
    assert "overtalk" in categories(out)


@pytest.mark.parametrize("dialogue, unresolved", [
    ("agent\t您好\ncustomer\t宽带断了\nagent\t已经帮您重启端口，现在恢复正常了\ncustomer\t好了，能上网了，谢谢", False),
    ("agent\t您好\ncustomer\t宽带断了\nagent\t我给您提交工单，师傅24小时内联系您\ncustomer\t好吧", True),
    ("agent\t您好\ncustomer\t宽带断了\nagent\t您重启一下光猫试试\ncustomer\t好，不行我再打过来", True),
    ("agent\t您好\ncustomer\t宽带断了\nagent\t帮您重启了\ncustomer\t还是不行啊", True),
    ("agent\tHi, how can I help?\ncustomer\tWhat are your store hours?\nagent\tNine to six.\ncustomer\tGreat, thanks", False),
    ("agent\tHi\ncustomer\tMy refund\nagent\tI've raised a ticket, someone will call you back within 48 hours\ncustomer\tOkay", True),
    ("agent\tHi\ncustomer\tMy data\nagent\tI've added 5GB, it's active now\ncustomer\tPerfect, thanks", False),
    ("agent\tHi\ncustomer\tNo signal\nagent\tLet me transfer you\nagent\tHi, I'll transfer you to another department\ncustomer\tThis is ridiculous", True),
])
def test_unresolved_flag(analytics, dialogue, unresolved):
    flag = final_flag(run(analytics, dialogue))
    assert flag.unresolved is unresolved, flag.reasons
    if unresolved:
        assert flag.reasons and flag.quotes


def test_provisional_flag_follows_the_call(analytics):
    out = run(analytics, "agent\t您好\ncustomer\t宽带断了\nagent\t给您提交工单\ncustomer\t好\nagent\t稍等，已经恢复正常了\ncustomer\t好了，能用了")
    provisional = [f.unresolved for f in out if isinstance(f, CallFlag) and not f.final]
    assert provisional == [True, False] and final_flag(out).unresolved is False


def test_intent_updates_and_summary(analytics):
    out = run(analytics, "agent\t您好\ncustomer\t我想办理携号转网，转到联通去\nagent\t好的")
    updates = [e for e in out if isinstance(e, IntentUpdate)]
    assert updates and updates[-1].intent == "number_porting" and [u.seq for u in updates] == list(range(len(updates)))
    summary = next(e for e in out if isinstance(e, CallSummary))
    assert summary.intent == "number_porting" and summary.finals == 3


def test_repeat_caller_same_intent(analytics):
    history = [PriorCall("old-1", 1, "broadband_outage", True)]
    out = run(analytics, "caller: 13800138000\nagent\t您好\ncustomer\t我家宽带又断了，光猫红灯", "c2", history)
    rep = [a for a in out if isinstance(a, Alert) and a.category == "repeat_caller"]
    assert len(rep) == 1 and rep[0].details["previous_calls"] == "old-1" and rep[0].details["last_unresolved"] == "true"
    assert "13800138000" not in rep[0].quote
    out = run(analytics, "caller: 13800138000\nagent\t您好\ncustomer\t我想去日本开漫游", "c3", history)
    assert not [a for a in out if isinstance(a, Alert) and a.category == "repeat_caller"]


def test_repeat_index_window_and_number_forms():
    idx = RepeatIndex(window_s=3600)
    idx.record("+86 138-0013-8000", PriorCall("a", 1_000_000, "roaming", False))
    assert caller_key("008613800138000") == "13800138000"
    assert [c.call_id for c in idx.lookup("13800138000", 1_000_000 + 3_599_000)] == ["a"]
    assert idx.lookup("13800138000", 1_000_000 + 3_601_000) == []
    assert idx.lookup("", 1) == []


def test_analytics_events_round_trip(analytics):
    out = run(analytics, "caller: 13800138000\nagent\t说吧\ncustomer\t我要投诉，宽带还是不行")
    assert out
    for e in out:
        assert from_fields(to_fields(e)) == e


# --- surges --------------------------------------------------------------------------------------
def test_surge_fires_on_a_jump_not_on_steady_traffic():
    det = SurgeDetector(window_s=600, baseline_s=3600, min_calls=5, ratio=3.0)
    t = 0
    fired = []
    for i in range(36):  # steady: one call on the topic every 100 s for an hour = ~6 per window
        t += 100_000
        fired.append(det.observe("intent", "billing_dispute", f"s{i}", t))
    assert not any(fired)
    burst = []
    for i in range(12):  # an outage: 12 broadband calls in two minutes
        burst.append(det.observe("intent", "broadband_outage", f"b{i}", t + i * 10_000))
    surges = [s for s in burst if s]
    # fires at min_calls, then stays quiet within the window unless the count doubles
    assert [s.count for s in surges] == [5, 10] and {s.topic for s in surges} == {"broadband_outage"}
    assert set(surges[0].call_ids) == {f"b{i}" for i in range(5)} and surges[0].ratio >= 3.0
    assert det.observe("intent", "broadband_outage", "b0", t + 200_000) is None  # a call counts once


# --- dialogue files ------------------------------------------------------------------------------
def test_dialogue_parsing_forms():
    d = parse_dialogue(
        "\ufeffcaller: 13800138000\nagent\t您好\n客户：我的宽带\ncustomer\t[hold 1m30s]\nagent\t[silence 45 秒]\n# comment\n",
        "x",
    )
    assert d.caller == "13800138000"
    assert [(u.channel, u.text, u.gap_s) for u in d.utterances] == [
        ("agent", "您好", 0.0), ("customer", "我的宽带", 0.0), ("customer", "", 90.0), ("agent", "", 45.0)]


@pytest.mark.parametrize("text, why", [("boss\thello", "unknown role"), ("just text", "expected"), ("caller: 1\n", "no utterances")])
def test_bad_dialogues_are_refused(text, why):
    with pytest.raises(DialogueError, match=why):
        parse_dialogue(text, "x")


def test_analyze_dialogue_json_shape(analytics):
    d = parse_dialogue("caller: 13800138000\nagent\t您好\ncustomer\t我身份证号是11010519491231002X，我要投诉", "j")
    r = analyze_dialogue(analytics, d)
    assert r["caller"] == "138****8000"
    assert r["alerts"][0]["category"] == "escalation"
    assert "11010519491231002X" not in str(r) and "[ID]" in r["utterances"][1]["text"]
    assert isinstance(r["unresolved"], bool) and r["intent"] in analytics.classifier.ids


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["customer", "agent", "客户", "boss", "caller: 138", ""]),
                          st.sampled_from(["\t", ": ", "："]),
                          st.one_of(st.text(max_size=40), st.sampled_from(["[hold 45s]", "[silence 1m]", "[hold]", "我要投诉", "I guarantee"]))),
                max_size=12))
def test_any_dialogue_text_is_analysed_or_refused_cleanly(analytics, lines):
    text = "\r\n".join(f"{role}{sep}{body}" for role, sep, body in lines)
    try:
        d = parse_dialogue(text, "fuzz")
    except DialogueError:
        return
    r = analyze_dialogue(analytics, d)
    assert isinstance(r["unresolved"], bool) and r["intent"] in analytics.classifier.ids
