"""The evaluation form (keyword/qa/form.py) and the evaluators that answer it (keyword/qa/evaluate.py), on calls
written for the test: what each question answers, with which evidence, and when it does not apply."""

from __future__ import annotations

import pytest

from callscribe.keyword.analyzer import Analytics
from callscribe.keyword.dialogue import analyze_dialogue, parse_dialogue
from callscribe.keyword.qa import AUTO_RULES, FormError, load_form


@pytest.fixture(scope="module")
def analytics() -> Analytics:
    return Analytics()


def card(analytics: Analytics, *turns: tuple[str, str]) -> dict:
    r = analyze_dialogue(analytics, parse_dialogue("\n".join(f"{w}\t{t}" for w, t in turns), "t"))
    return r["scorecard"]


def test_the_bundled_form_names_the_issue_questions_and_every_evaluator():
    form = load_form()
    ids = [q.id for q in form.questions]
    assert {"greeting", "verification", "closing"} <= set(ids)
    assert {q.auto for q in form.questions} == set(AUTO_RULES)
    assert form.ref == "telecom-standard@1"


@pytest.mark.parametrize("body, where", [
    ("id: f\nname: {zh: a, en: b}\nsections: []\n", "sections"),
    ("id: f\nname: {zh: a, en: b}\nsections:\n  - id: s\n    title: {zh: a, en: b}\n    questions:\n"
     "      - {id: q, text: {zh: a, en: b}, auto: telepathy}\n", "auto"),
    ("id: f\nname: {zh: a, en: b}\nsections:\n  - id: s\n    title: {zh: a, en: b}\n    questions:\n"
     "      - {id: q, text: {zh: a, en: b}, auto: greeting}\n      - {id: q, text: {zh: a, en: b}, auto: closing}\n",
     "twice"),
    ("- not a mapping\n", "mapping"),
])
def test_a_bad_form_is_a_clear_error_naming_the_key(tmp_path, body, where):
    path = tmp_path / "form.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(FormError, match=where):
        load_form(path)


HELLO = ("agent", "Hi, thanks for calling Northside, this is Sam.")


def test_a_well_handled_call_scores_full_marks_with_evidence(analytics):
    c = card(analytics, HELLO, ("customer", "I want the 20 gig data add-on."),
             ("agent", "Sure, can you confirm your date of birth first?"), ("customer", "Third of May."),
             ("agent", "Thanks, that matches. The 20 gig add-on is ten dollars a month, I've added it now."),
             ("customer", "Perfect, thanks."), ("agent", "Is there anything else I can help with today?"),
             ("customer", "No, that's all."))
    a = c["answers"]
    assert a["greeting"]["answer"] is True and a["greeting"]["evidence"]["quote"].startswith("Hi")
    assert a["verification"]["answer"] is True
    assert a["closing"]["answer"] is True and "anything else" in a["closing"]["evidence"]["quote"]
    assert a["fee_disclosed"]["answer"] is True
    assert a["hold"]["answer"] is None and a["empathy"]["answer"] is None
    assert c["score"] == c["raw_score"] == 100.0 and c["failed_critical"] == []


def test_a_disclosure_before_verification_fails_the_call(analytics):
    c = card(analytics, HELLO, ("customer", "Why is my bill so high?"),
             ("agent", "I can see your balance is one hundred and twelve dollars, with a roaming charge of forty."),
             ("customer", "Oh."))
    assert c["answers"]["verification"]["answer"] is False
    assert c["failed_critical"] == ["verification"] and c["score"] == 0.0 and c["raw_score"] > 0


def test_hold_announced_and_thanked_and_empathy_for_an_upset_customer(analytics):
    c = card(analytics, ("agent", "您好，很高兴为您服务。"), ("customer", "你们这宽带三天两头断，太气人了，我要投诉！"),
             ("agent", "非常抱歉给您添麻烦了，我帮您查一下，请您稍等。"), ("agent", "[hold 40s]"),
             ("agent", "感谢您的耐心等待，您那边线路有故障，已经派单了。"), ("customer", "行吧。"))
    a = c["answers"]
    assert a["empathy"]["answer"] is True and "抱歉" in a["empathy"]["evidence"]["quote"]
    assert a["hold"]["answer"] is True
    c = card(analytics, ("agent", "您好。"), ("customer", "你们这宽带三天两头断，太气人了，我要投诉！"),
             ("agent", "[hold 40s]"), ("agent", "线路有故障，已经派单了。"), ("customer", "行吧。"))
    assert c["answers"]["hold"]["answer"] is False and c["answers"]["empathy"]["answer"] is False
