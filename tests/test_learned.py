"""The learned layer beside the rules (keyword/learned.py): an n-gram logistic regression over agent turns,
trained on utterances labelled by authors who never saw the rules (tests/data/utterances), used for account
read-outs and changes no rule names. Cross-validated numbers and the call-level comparison with the rules
alone are in docs/analytics.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callscribe.keyword.analyzer import Analytics, AnalyticsSettings
from callscribe.keyword.dialogue import analyze_dialogue, parse_dialogue
from callscribe.keyword.learned import LinearTextModel, ModelError, bundled_model_path, cross_validate, featurize, train

DATA = Path(__file__).parent / "data" / "utterances"


@pytest.fixture(scope="module")
def analytics() -> Analytics:
    return Analytics()


@pytest.fixture(scope="module")
def rules_only() -> Analytics:
    return Analytics(AnalyticsSettings(disclosure_threshold=0.0))


def run(analytics: Analytics, *turns: tuple[str, str]) -> dict:
    return analyze_dialogue(analytics, parse_dialogue("\n".join(f"{w}\t{t}" for w, t in turns), "t"))


def compliance(r: dict) -> list[dict]:
    return [a for a in r["alerts"] if a["rule"] == "compliance.no_verification"]


def test_numbers_are_a_shape_not_a_value():
    assert featurize("您上个月话费一百二十三块") == featurize("您上个月话费58块")
    assert "w:0" in featurize("you owe $45.20") and "w:45" not in featurize("you owe $45.20")


def test_training_is_deterministic_and_the_saved_model_answers_the_same(tmp_path):
    texts = ["您的余额是58块", "请问您是机主本人吗", "我们的套餐是58元", "your balance is $45",
             "can you confirm your date of birth", "our unlimited plan is sixty a month"] * 3
    labels = ["disclosure", "verification", "other"] * 6
    a, b = train(texts, labels, epochs=60), train(texts, labels, epochs=60)
    assert a.proba("your balance is $12") == b.proba("your balance is $12")
    a.save(tmp_path / "m.json")
    loaded = LinearTextModel.load(tmp_path / "m.json")
    assert loaded.labels == a.labels
    assert abs(loaded.proba("你的余额是二十块")["disclosure"] - a.proba("你的余额是二十块")["disclosure"]) < 1e-3


def test_a_broken_model_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.json").write_text("{\"format\": \"other\"}")
    with pytest.raises(ModelError, match="not a"):
        LinearTextModel.load(tmp_path / "bad.json")
    with pytest.raises(ModelError, match="cannot read"):
        LinearTextModel.load(tmp_path / "missing.json")


def test_the_bundled_model_is_trained_on_the_independent_utterances():
    model = LinearTextModel.load(bundled_model_path("agent-turns"))
    assert model.labels == ("disclosure", "other", "verification")
    assert set(model.meta["trained_on"]) == {"agent_zh.jsonl", "agent_en.jsonl"}
    lines = [json.loads(x) for f in ("agent_zh.jsonl", "agent_en.jsonl") for x in (DATA / f).read_text().splitlines()]
    assert model.meta["samples"] == len(lines) >= 1200


def test_cross_validated_disclosure_is_better_than_chance():
    """3 folds of the Mandarin utterances (each predicted by a model that did not see it): the floor is far
    under what docs/analytics.md reports for 5 folds, so it only catches a broken featuriser or trainer."""
    items = [json.loads(x) for x in (DATA / "agent_zh.jsonl").read_text().splitlines()][:300]
    report = cross_validate(items, folds=3, epochs=150)
    assert report["disclosure"]["recall"] >= 0.6 and report["disclosure"]["precision"] >= 0.6


# Read-outs in wording that appears in no labelled set and that no rule names: the model finds them, the
# rules alone do not (the reason it exists); verification first, or a question, stays quiet.
READOUTS = [
    [("agent", "Morning, Skyline Mobile, Dana speaking."), ("customer", "Hi, why is my bill so high?"),
     ("agent", "Okay so what's happened is your account picked up an international calls bolt-on, that's the twelve "
               "pounds, from the fifth.")],
    [("agent", "您好，很高兴为您服务。"), ("customer", "我想问下我这个月怎么扣了这么多钱。"),
     ("agent", "我这边看了下，您这个号码本月多出来的是一个二十块的视频会员，十号订的。")],
]


@pytest.mark.parametrize("turns", READOUTS)
def test_a_readout_no_rule_names_is_found_by_the_model(analytics, rules_only, turns):
    assert compliance(run(analytics, *turns)), "the model should flag the read-out"
    assert not compliance(run(rules_only, *turns)), "a rule names this wording now: pick another paraphrase"


@pytest.mark.parametrize("turns", [
    [("agent", "Morning, Skyline Mobile, Dana speaking."), ("customer", "Hi, why is my bill so high?"),
     ("agent", "Sure, could you confirm your date of birth and the postcode on the account first?"),
     ("customer", "Fourth of May, eighty-one, and it's LS6 2AB."),
     ("agent", "Right, so on my screen there's an international calls bolt-on at twelve pounds that kicked in on the fifth.")],
    [("agent", "您好，很高兴为您服务。"), ("customer", "你们那个五十八的套餐包含多少流量？"),
     ("agent", "五十八元的套餐每个月包含三十G通用流量，还有三百分钟通话。")],
    [("agent", "您好，很高兴为您服务。"), ("customer", "我家宽带断了。"),
     ("agent", "好的，已经给您报修了，工单号是二零二六一二零七零零三一。")],
])
def test_verified_first_general_prices_and_tickets_stay_quiet(analytics, turns):
    assert not compliance(run(analytics, *turns))


def test_the_unresolved_model_is_trained_on_first_run_flags_and_can_be_turned_off():
    """The final flag's stacker learned where the rules' FIRST-RUN flags were wrong (tests/data/first_run), so it
    corrects the rules on authors they were not fitted to; leave-one-set-out numbers in docs/analytics.md."""
    model = LinearTextModel.load(bundled_model_path("unresolved"))
    assert model.labels == ("False", "True")
    first_runs = sorted(p.name for p in (DATA.parent / "first_run").glob("*.json"))
    assert model.meta["trained_on"] == [n[:-5] for n in first_runs] and len(first_runs) >= 6
    for path in (DATA.parent / "first_run").glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["commit"] and data["calls"], path
    assert Analytics(AnalyticsSettings(unresolved_model=False)).unresolved_model is None
    assert Analytics().unresolved_model is not None


def test_a_flag_the_model_overrules_says_so(analytics):
    """Whatever the model decides, a flagged call carries a reason and an unflagged one none."""
    r = run(analytics, ("agent", "您好，很高兴为您服务。"), ("customer", "我家宽带又断了。"),
            ("agent", "给您报修了，师傅明天上午上门。"), ("customer", "又要等，行吧。"))
    assert r["unresolved"] and r["reasons"]
