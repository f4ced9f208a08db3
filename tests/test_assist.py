"""Agent assist (keyword/assist/): scenario pack validation and reload, step recognition (zh, en), prompts,
offers and their guards, knowledge-card threshold, ticket drafts, the analyze JSON and event round-trips.
Dialogues here are written for these tests (paraphrases in no labelled set)."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from callscribe import events
from callscribe.events import (
    KnowledgeCard, Offer, Quote, ScenarioCard, StepDone, StepPrompt, TicketDraft, Transcript,
)
from callscribe.keyword.analyzer import Analytics
from callscribe.keyword.assist import (
    Assist, AssistPackError, AssistPackStore, CallOutcome, CallState, assist_for, load_assist_pack, load_assist_packs,
)
from callscribe.keyword.assist.packs import field_labels, unlabelled_fields
from callscribe.keyword.dialogue import analyze_dialogue, parse_dialogue
from callscribe.keyword.evaluate import score

MINIMAL = """\
version: 1
language: en
knowledge_threshold: 0.4
closing: [anything else]
scenarios:
  - id: en.data_plan
    intent: data_plan
    title: Data
    steps:
      - id: verify
        title: Verify
        say: Can I take your security answer?
        required: true
        done_when: {signal: verification}
      - id: add_pack
        title: Add a pack
        say: I'll add a data pack.
        required: true
        after: [verify]
        done_when: {phrases: [i've added the data pack]}
    answers:
      - id: kb.reset
        title: When data resets
        answer: On the bill date.
        source: KB-1
        questions: [when does my data reset]
    offers: []
    ticket: {type: data_service, title: Data follow-up}
"""


@pytest.fixture(scope="module")
def analytics() -> Analytics:
    return Analytics()


@pytest.fixture(scope="module")
def assist(analytics) -> Assist:
    return assist_for(analytics)


def run(analytics, text: str, call_id: str = "t1") -> dict:
    return analyze_dialogue(analytics, parse_dialogue(textwrap.dedent(text).strip(), call_id))


# --- schema ---------------------------------------------------------------------------------------------
def test_bundled_packs_cover_the_catalog(analytics):
    packs = load_assist_packs()
    assert {p.pack.language for p in packs} == {"zh", "en"}
    for p in packs:
        intents = {s.intent for s in p.pack.scenarios}
        assert intents == set(analytics.classifier.ids), p.path
        for s in p.pack.scenarios:
            assert s.steps and 1 <= len(s.answers) <= 3 and s.ticket.type
            assert all(a.source for a in s.answers)


@pytest.mark.parametrize("edit, where", [
    (lambda t: t.replace("    title: Data\n", "    title: Data\n    colour: red\n"), "scenarios[0].colour: unknown key"),
    (lambda t: t.replace("say: I'll add a data pack.", "sai: I'll add a data pack."), "scenarios[0].steps[1]"),
    (lambda t: t.replace("[i've added the data pack]", "[]"), "scenarios[0].steps[1].done_when"),
    (lambda t: t.replace("after: [verify]", "after: [nope]"), "unknown step 'nope'"),
    (lambda t: t.replace("{signal: verification}", "{patterns: ['(unclosed']}"), "done_when.patterns"),
    (lambda t: t.replace("        source: KB-1\n", ""), "scenarios[0].answers[0].source"),
    (lambda t: t.replace("version: 1", "version: 2"), "version"),
    (lambda t: t.replace("ticket: {type: data_service, title: Data follow-up}",
                         "ticket: {type: x, title: y, priority: asap}"), "ticket.priority"),
    (lambda t: t.replace("ticket: {type: data_service, title: Data follow-up}",
                         "ticket: {type: x, title: y, fields: [{name: problem, from: summary, label: {}}]}"),
     "ticket.fields[0].label: Value error, needs zh or en"),
    (lambda t: t.replace("ticket: {type: data_service, title: Data follow-up}",
                         "ticket: {type: x, title: y, fields: [{name: problem, from: summary, label: {fr: Problème}}]}"),
     "ticket.fields[0].label.fr: unknown key"),
    (lambda t: t + "field_labels: {problem: {en: Problem}}\n", "field_labels.problem: no ticket template has a field"),
    (lambda t: t + "field_labels: {problem: Problem}\n", "field_labels.problem"),
])
def test_validation_errors_name_file_and_key(tmp_path, edit, where):
    path = tmp_path / "assist-en.yaml"
    path.write_text(edit(MINIMAL), encoding="utf-8")
    with pytest.raises(AssistPackError) as err:
        load_assist_pack(path)
    assert str(path) in str(err.value) and where in str(err.value)


LABELLED = MINIMAL.replace("ticket: {type: data_service, title: Data follow-up}", """ticket:
      type: data_service
      title: Data follow-up
      fields:
        - {name: caller, from: caller}
        - {name: problem, from: summary, label: {en: What went wrong}}
        - {name: symptom, from: match, match: {slow: [slow]}}
field_labels:
  caller: {en: Caller, zh: 来电号码(en pack)}
  problem: {en: Problem, zh: 问题}""")


def test_field_labels_own_over_shared_native_language_first(tmp_path, caplog):
    en = tmp_path / "assist-en.yaml"
    en.write_text(LABELLED, encoding="utf-8")
    zh = tmp_path / "assist-zh.yaml"
    zh.write_text(LABELLED.replace("language: en", "language: zh").replace("en.data_plan", "zh.data_plan")
                  .replace("{en: Caller, zh: 来电号码(en pack)}", "{zh: 来电号码, en: Caller (zh pack)}"), encoding="utf-8")
    with caplog.at_level("INFO", logger="callscribe.keyword.assist.packs"):
        packs = load_assist_packs([en, zh])
    labels = field_labels(packs)["data_service"]
    assert labels["caller"] == {"en": "Caller", "zh": "来电号码"}  # each language from its own pack
    assert labels["problem"] == {"en": "What went wrong", "zh": "问题"}  # a field's own label over the shared one
    assert "symptom" not in labels  # no label anywhere: the page shows the id
    assert [unlabelled_fields(p.pack) for p in packs] == [["scenarios[0].ticket.fields[2] (symptom)"]] * 2
    assert "have no en label and show by their id: scenarios[0].ticket.fields[2] (symptom)" in caplog.text


def test_bundled_packs_label_every_ticket_field_in_both_languages():
    packs = load_assist_packs()
    assert [unlabelled_fields(p.pack) for p in packs] == [[], []]
    labels = field_labels(packs)
    for p in packs:
        for sc in p.pack.scenarios:
            for f in sc.ticket.fields:
                got = labels[sc.ticket.type][f.name]
                assert set(got) == {"zh", "en"} and all(got.values()), (p.path, sc.id, f.name)
    # the zh pack's words in Chinese, the en pack's in English, wherever both template the type
    assert labels["broadband_repair"]["install_address"] == {"zh": "装机地址", "en": "Installation address"}


def test_duplicate_intent_across_files_rejected(tmp_path):
    (tmp_path / "assist-a.yaml").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "assist-b.yaml").write_text(MINIMAL.replace("id: en.data_plan", "id: en.data_plan2"), encoding="utf-8")
    with pytest.raises(AssistPackError, match="data_plan"):
        load_assist_packs([tmp_path])


def test_reload_on_edit_keeps_previous_on_error(tmp_path):
    path = tmp_path / "assist-en.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    store = AssistPackStore([path], check_every_s=0)
    assert store.get()[0].pack.scenarios[0].title == "Data"
    path.write_text(MINIMAL.replace("title: Data\n", "title: Mobile data\n"), encoding="utf-8")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert store.get()[0].pack.scenarios[0].title == "Mobile data" and store.generation == 1
    path.write_text("version: 1\nlanguage: en\nscenarios: nope\n", encoding="utf-8")
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert store.get()[0].pack.scenarios[0].title == "Mobile data" and store.generation == 1  # typo: kept


def test_assist_recompiles_after_reload(tmp_path):
    path = tmp_path / "assist-en.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    a = Assist([path], check_every_s=0)
    assert a.compiled.scenario("en", "data_plan").spec.title == "Data"
    path.write_text(MINIMAL.replace("title: Data\n", "title: Data 2\n"), encoding="utf-8")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert a.compiled.scenario("en", "data_plan").spec.title == "Data 2"


# --- steps and prompts ------------------------------------------------------------------------------------
ZH_DATA = """
    caller: 13912345678
    agent\t您好，很高兴为您服务，请问有什么可以帮您？
    customer\t你好，我这个月手机流量又用完了，现在网速慢得不行，刷个网页都打不开。
    agent\t好的，查询前先核实一下身份，请您按键输入服务密码。
    customer\t好，输好了。
    agent\t验证通过。您本月套餐内二十G流量已经用了二十点五G，超出后限速到一兆。
    customer\t难怪，那流量不够用怎么办？
    agent\t可以加一个流量加油包，十元五G，当月有效，办理后马上恢复正常速度。
    customer\t行，那就加一个吧。
    agent\t已经帮您办好了，您开关一下数据就能恢复。
    customer\t好了好了，网速快了，太好了，谢谢你。
    agent\t不客气，请问还有什么可以帮您？
    customer\t没有了，再见。
"""


def test_steps_recognised_zh_and_offer_after_resolution(analytics):
    r = run(analytics, ZH_DATA)
    a = r["assist"]
    assert a["scenario"] == "zh.data_plan"
    done = {d["step"]: d["by"] for d in a["steps_done"]}
    assert done["verify_identity"] == "signal:verification"  # the analyzer's verification, not a second list
    assert {"check_usage", "propose_fix", "state_fee"} <= set(done)
    assert a["steps_missed"] == []
    made = [o for o in a["offers"] if o["status"] == "made"]
    assert [o["offer"] for o in made] == ["offer.zh.data_addon"] and made[0]["moment"] == "after_resolution"
    assert r["ticket"] is None  # resolved


EN_PLAN = """
    agent\tThanks for calling, this is Sam, how can I help?
    customer\tHi, I'd like to switch to a cheaper plan, I barely use my phone these days.
    agent\tSure. I've switched you over to the fifteen dollar plan, that's done.
    customer\tOh okay, great.
    agent\tFor security, could I get the answer to your security question?
    customer\tIt's Rover.
    agent\tThanks, you're verified. It's fifteen a month starting from your next bill.
    customer\tPerfect, thanks.
    agent\tAnything else I can help with today?
    customer\tNo, that's all.
"""


def test_prompt_for_verification_missing_before_account_change_en(analytics):
    r = run(analytics, EN_PLAN)
    a = r["assist"]
    assert a["scenario"] == "en.package_change"
    prompts = {p["step"]: p["reason"] for p in a["prompts"]}
    assert prompts.get("verify_identity") in ("before:apply_change", "account_access")
    assert any(d["step"] == "apply_change" for d in a["steps_done"])


def test_session_events_in_order(assist):
    """Driven directly with analyzer states: the scenario card once the intent holds, steps, a prompt."""
    s = assist.session("c9", "en")

    def final(i, channel, text):
        return Transcript("c9", channel, f"c9/{channel}/{i}", 0, True, text, i * 1000, i * 1000 + 900, "en", 1.0,
                          emitted_at_ms=10_000 + i)

    out = s.on_final(final(0, "customer", "I want to cancel my broadband contract"),
                     CallState("cancel_service", 0.2, customer_turns=1))
    assert not any(isinstance(e, ScenarioCard) for e in out)  # one turn, low score: not yet
    out = s.on_final(final(1, "customer", "yes cancel it please"), CallState("cancel_service", 0.25, customer_turns=2))
    card = next(e for e in out if isinstance(e, ScenarioCard))
    assert card.scenario == "en.cancel_service" and card.lines["verify_identity"] and card.trigger_at_ms == 10_001
    # each step's title and line ride on the card: a reader of the stream needs no pack
    assert list(card.titles) == list(card.steps) == list(card.lines) and all(card.titles.values())
    spec = assist.compiled.scenario("en", "cancel_service").spec
    assert card.titles == {st.id: st.title for st in spec.steps}
    out = s.on_final(final(2, "agent", "Okay, the service ends on the thirtieth and you'll get a final bill."),
                     CallState("cancel_service", 0.25, customer_turns=2))
    assert [e.step for e in out if isinstance(e, StepDone)] == ["explain_process"]
    assert [(e.step, e.reason) for e in out if isinstance(e, StepPrompt)] == [("verify_identity", "before:explain_process")]


# --- offers ---------------------------------------------------------------------------------------------------
def _offer_states(assist, escalated: bool, mood: str):
    s = assist.session("o1", "zh")
    t = lambda i, ch, text: Transcript("o1", ch, f"o1/{i}", 0, True, text, i * 1000, i * 1000 + 500, "zh", 1.0)
    alerts = (events.Alert("o1", "o1/alert/x", "zh.escalation.regulator", "escalation", "critical", "customer",
                           "我要投诉", 0, 500),) if escalated else ()
    s.on_final(t(0, "customer", "我流量不够用，网速太慢了"), CallState("data_plan", 0.5, 1, alerts=alerts))
    s.on_final(t(1, "agent", "已经帮您加好流量包了"), CallState("data_plan", 0.5, 1, issue="resolved"))
    score = -0.6 if mood == "negative" else 0.3
    out = s.on_final(t(2, "customer", "嗯"), CallState("data_plan", 0.5, 2, issue="resolved", sentiment=mood,
                                                       last_customer_score=score))
    return [e for e in out if isinstance(e, Offer)]


@pytest.mark.parametrize("escalated, mood, status, reason", [
    (False, "positive", "made", ""),
    (True, "positive", "suppressed", "escalation"),
    (False, "negative", "suppressed", "negative_sentiment"),
])
def test_offer_guards(assist, escalated, mood, status, reason):
    offers = _offer_states(assist, escalated, mood)
    assert [(o.offer, o.status, o.reason) for o in offers] == [("offer.zh.data_addon", status, reason)]
    assert (offers[0].line != "") == (status == "made")


def test_no_offer_when_call_escalates(analytics):
    r = run(analytics, """
        agent\t您好，请问有什么可以帮您？
        customer\t我手机流量又用完了，网速特别慢，流量不够用。
        agent\t好的，先帮您核实身份，请输入服务密码。
        customer\t输了。你们这流量每个月都不够用，再这样我就去工信部投诉你们！
        agent\t验证通过。已经帮您加了十元五G的加油包，马上生效。
        customer\t行吧，能用了。
        agent\t还有什么可以帮您？
        customer\t没了。
    """)
    assert not [o for o in r["assist"]["offers"] if o["status"] == "made"]
    assert any(o["reason"] == "escalation" for o in r["assist"]["offers"])


# --- knowledge ------------------------------------------------------------------------------------------------
def test_knowledge_card_above_threshold_only(assist):
    s = assist.session("k1", "zh")
    t = lambda i, text: Transcript("k1", "customer", f"k1/{i}", 0, True, text, i, i + 1, "zh", 1.0)
    cards = [e for e in s.on_final(t(0, "授权码怎么获取啊？"), CallState("number_porting", 0.5, 1))
             if isinstance(e, KnowledgeCard)]
    assert [c.card for c in cards] == ["kb.zh.port_code"] and cards[0].score >= cards[0].threshold
    assert cards[0].source == "KB-MNP-0507"
    again = [e for e in s.on_final(t(1, "授权码怎么获取？"), CallState("number_porting", 0.5, 2))
             if isinstance(e, KnowledgeCard)]
    assert not any(c.card == "kb.zh.port_code" for c in again)  # once per call
    none = [e for e in s.on_final(t(2, "今天天气怎么样？"), CallState("number_porting", 0.5, 3))
            if isinstance(e, KnowledgeCard)]
    assert none == []  # nothing similar enough
    assert [e for e in s.on_final(t(3, "我要授权码"), CallState("number_porting", 0.5, 4))
            if isinstance(e, KnowledgeCard)] == []  # not a question


def test_knowledge_threshold_from_pack(tmp_path):
    path = tmp_path / "assist-en.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    t = Transcript("k2", "customer", "k2/0", 0, True, "sorry, when does my data reset again on this plan?", 0, 1, "en", 1.0)
    cards = [e for e in Assist([path]).session("k2", "en").on_final(t, CallState("data_plan", 0.5, 1))
             if isinstance(e, KnowledgeCard)]
    assert cards and cards[0].card == "kb.reset" and 0.4 <= cards[0].score < 1.0 and cards[0].threshold == 0.4
    above = min(1.0, cards[0].score + 0.01)
    path.write_text(MINIMAL.replace("knowledge_threshold: 0.4", f"knowledge_threshold: {above}"), encoding="utf-8")
    assert not [e for e in Assist([path]).session("k3", "en").on_final(t, CallState("data_plan", 0.5, 1))
                if isinstance(e, KnowledgeCard)]


# --- tickets --------------------------------------------------------------------------------------------------
ZH_OUTAGE = """
    caller: 13800138000
    agent\t您好，请问有什么可以帮您？
    customer\t喂，我家宽带从昨天晚上就断了，光猫上的红灯一直在闪，我身份证号是110101199003071234。
    agent\t请问您家是哪个小区？我看一下有没有区域故障。
    customer\t阳光花园三期。
    agent\t您那边没有区域故障，我给您派一个维修工单，师傅二十四小时内联系您上门。
    customer\t还要等二十四小时？我明天要在家办公，这个问题一直没解决我很着急。
    agent\t理解您，我给您备注加急。
    customer\t好吧，那我等着。
"""


def test_ticket_for_unresolved_call_is_extractive(analytics):
    r = run(analytics, ZH_OUTAGE)
    assert r["unresolved"] is True
    t = r["ticket"]
    assert t["type"] == "broadband_repair" and t["intent"] == "broadband_outage"
    assert t["caller"] == "138****8000" and t["fields"]["caller"] == "138****8000"
    customer_redacted = [u["text"] for u in r["utterances"] if u["channel"] == "customer"]
    assert t["summary"] and all(line in customer_redacted for line in t["summary"])  # verbatim, redacted
    assert not any("110101199003071234" in line for line in t["summary"])
    assert t["summary"][0].startswith("喂，我家宽带")  # why they called comes first
    assert all({"channel", "text", "start_ms", "end_ms"} <= set(q) for q in t["quotes"])
    assert t["fields"]["fault_type"] in ("完全断网", "光猫异常")
    assert "install_address" in t["missing"]  # the agent fills it in
    # every field of the template comes with its label in both page languages (the desk needs no pack)
    assert t["labels"]["install_address"] == {"zh": "装机地址", "en": "Installation address"}
    assert set(t["labels"]) >= set(t["fields"]) | set(t["missing"])
    assert "locate_area" in t["steps_done"] and t["priority"] in ("medium", "high", "urgent")


def test_no_ticket_for_resolved_call_but_one_on_click(analytics, assist):
    r = run(analytics, ZH_DATA)
    assert r["unresolved"] is False and r["ticket"] is None
    s = assist.session("c2", "zh", "139****5678")
    draft = s.ticket(CallOutcome(intent="data_plan", unresolved=False, caller="139****5678"), trigger="agent")
    assert draft.trigger == "agent" and draft.ticket_type == "data_service" and draft.caller == "139****5678"


def test_ticket_priority_and_subtype_from_reasons(assist):
    s = assist.session("p1", "en")
    alert = events.Alert("p1", "p1/alert/x", "en.escalation.regulator", "escalation", "critical", "customer",
                         "I'm going to the ombudsman", 0, 1)
    draft = s.ticket(CallOutcome(intent="billing_dispute", unresolved=True, reasons=("call ends on an escalation",),
                                 alerts=(alert,), sentiment="negative"), trigger="unresolved")
    assert draft.priority == "urgent" and draft.subtype == "escalation" and draft.ticket_type == "billing_review"
    plain = s.ticket(CallOutcome(intent="payment", unresolved=True, reasons=("left pending: ticket, callback or wait for notice",)))
    assert plain.priority == "medium" and plain.subtype == "follow_up"


# --- analyze JSON and scores -------------------------------------------------------------------------------------
def test_analyze_json_has_assist_and_ticket(analytics):
    r = run(analytics, EN_PLAN)
    assert set(r["assist"]) >= {"scenario", "steps_done", "steps_missed", "answers_shown", "offers", "prompts"}
    assert "ticket" in r


def test_evaluate_ticket_and_offer_scores():
    calls = [
        {"call_id": "a", "alerts": [], "intent": "payment", "unresolved": True, "ticket": {"intent": "payment"},
         "assist": {"offers": []}},
        {"call_id": "b", "alerts": [], "intent": "data_plan", "unresolved": False, "ticket": None,
         "assist": {"offers": [{"offer": "x", "status": "made", "at_ms": 5}]}},
        {"call_id": "c", "alerts": [{"category": "escalation", "start_ms": 1}], "intent": "roaming", "unresolved": False,
         "ticket": None, "assist": {"offers": [{"offer": "y", "status": "made", "at_ms": 9}]}},
    ]
    labels = {"a": {"intent": "payment", "unresolved": True}, "b": {"intent": "data_plan", "unresolved": False,
                                                                    "end_sentiment": "negative"},
              "c": {"intent": "roaming", "unresolved": True, "alerts": ["escalation"]}}
    s = score(calls, labels)
    assert s["ticket_precision"] == 1.0 and s["ticket_recall"] == 0.5 and s["ticket_type_accuracy"] == 1.0
    assert s["offers_made"] == 2 and s["offer_violations_negative_end"] == 1 and s["offer_violations_escalation"] == 1


# --- events -----------------------------------------------------------------------------------------------------
ASSIST_EVENTS = [
    ScenarioCard("c", 0, "zh.data_plan", "data_plan", "流量", "zh", ("a", "b"), ("a",), {"a": "请说", "b": "再说"}, 0.4, 3, 7),
    StepDone("c", "zh.data_plan", "a", "核实", "signal:verification", "验证通过", 1, 2, "c/agent/1", 9),
    StepPrompt("c", "zh.data_plan", "a", "before:b", "核实", "请输入服务密码", "c/agent/2", 9),
    KnowledgeCard("c", "kb.1", "t", "answer", "KB-1", 0.52, 0.45, "zh.data_plan", "多久到账？", "退款多久到账", "s", 3),
    Offer("c", "offer.1", "zh.data_plan", "suppressed", "escalation", "加油包", "", "after_resolution", "s", 4),
    TicketDraft("c", "broadband_repair", "high", "broadband_outage", "工单", "follow_up", "unresolved", ("喂", "断网了"),
                (Quote("customer", "断网了", 1, 2),), {"fault_type": "完全断网"}, ("install_address",),
                ("left pending",), "138****8000", ("c0",), ("locate_area",)),
    ScenarioCard("c", 1, "zh.data_plan", "data_plan", "流量", "zh", ("a",), (), {"a": "请说"}, 0.4, 3, 7, 8,
                 titles={"a": "核实身份"}),
    TicketDraft("c", "broadband_repair", "high", "broadband_outage", fields={"fault_type": "完全断网"},
                labels={"fault_type": {"zh": "故障类型", "en": "Fault type"}, "caller": {"en": "Caller"}}),
]


@pytest.mark.parametrize("event", ASSIST_EVENTS, ids=lambda e: type(e).__name__)
def test_assist_events_round_trip(event):
    assert events.from_fields(events.to_fields(event)) == event
    raw = {k.encode(): v.encode() for k, v in events.to_fields(event).items()}
    assert events.from_fields(raw) == event
    assert events.from_json(events.to_json(event)) == event
    assert events.to_dict(event)["type"] == event.TYPE


def test_step_titles_and_field_labels_are_added_within_v1():
    """An entry written before titles / labels existed still reads (empty); a bad labels value is a SchemaError."""
    card, draft = ASSIST_EVENTS[-2], ASSIST_EVENTS[-1]
    for e, name in ((card, "titles"), (draft, "labels")):
        old = {k: v for k, v in events.to_fields(e).items() if k != name}
        assert getattr(events.from_fields(old), name) == {}
        assert events.to_dict(e)["v"] == 1
    for bad in ('{"caller": "Caller"}', '["caller"]'):
        with pytest.raises(events.SchemaError):
            events.from_fields({**events.to_fields(draft), "labels": bad})


def test_assist_events_within_schema_v1():
    d = events.to_dict(ASSIST_EVENTS[0])
    assert d["v"] == 1 == events.SCHEMA_VERSION
    with pytest.raises(events.SchemaError if hasattr(events, "SchemaError") else Exception):
        events.from_dict({**d, "v": events.SCHEMA_VERSION + 1})
