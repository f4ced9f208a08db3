"""``callscribe analyze`` on recordings and folders (callscribe/batch.py): discovery, sidecars, one JSON per call,
resuming, failures that stay one call's, and the real path: synthesized call audio through the streaming
pipeline (whisper-base) and the analyzer; plus the demo, which plays the synthesized calls end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from callscribe.batch import BatchError, analyze_inputs, discover, sidecar_metadata
from callscribe.config import Config
from callscribe.keyword.analyzer import Analytics

CALLS = Path(__file__).parents[1] / "callscribe" / "data" / "calls"
ZH = "caller: 13912345678\nagent\t您好，请问有什么可以帮您？\ncustomer\t我家宽带又断了，你们再不修我就打12315投诉\nagent\t给您提交工单了\n"
ZH_AGAIN = "caller: 13912345678\nagent\t您好\ncustomer\t我家宽带还是断的，昨天打过电话了\nagent\t已经帮您派师傅上门了\n"


def _cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callscribe.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "CALLSCRIBE_DATA_DIR": str(cwd or ".")})


@pytest.fixture(scope="module")
def analytics() -> Analytics:
    return Analytics()


def test_discover_walks_folders_in_name_order_and_skips_sidecars_and_output(tmp_path):
    (tmp_path / "day2").mkdir()
    (tmp_path / "day2" / "b.wav").write_bytes(b"")
    (tmp_path / "a.flac").write_bytes(b"")
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "README.md").write_text("x")
    (tmp_path / "c.txt").write_text(ZH, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text(ZH, encoding="utf-8")
    items = discover([tmp_path], exclude=out)
    assert [(i.call_id, i.kind) for i in items] == [("a", "audio"), ("c", "dialogue"), ("b", "audio")]


def test_discover_refuses_two_calls_with_one_id_and_missing_paths(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "call.wav").write_bytes(b"")
    (tmp_path / "x" / "call.flac").write_bytes(b"")
    with pytest.raises(BatchError, match="two calls named 'call'"):
        discover([tmp_path])
    with pytest.raises(BatchError, match="no such file"):
        discover([tmp_path / "missing"])


def test_sidecar_gives_caller_and_start_and_ignores_the_rest(tmp_path):
    rec = tmp_path / "r.ogg"
    rec.write_bytes(b"")
    (tmp_path / "r.json").write_text(json.dumps({"caller": 13800138000, "started_at_ms": 5, "utterances": [1],
                                                 "metadata": {"queue": "vip"}}))
    assert sidecar_metadata(rec) == ({"queue": "vip", "caller": "13800138000"}, 5)
    (tmp_path / "r.json").write_text("{not json")
    assert sidecar_metadata(rec) == ({}, None)


async def test_a_folder_writes_one_json_per_call_and_resumes_with_repeat_callers_linked(tmp_path, analytics):
    src = tmp_path / "calls"
    src.mkdir()
    (src / "a.txt").write_text(ZH, encoding="utf-8")
    (src / "b.txt").write_text(ZH_AGAIN, encoding="utf-8")
    out = tmp_path / "out"
    first = await analyze_inputs(discover([src]), analytics, Config(), out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "b.json", "summary.json"]
    a = json.loads((out / "a.json").read_text(encoding="utf-8"))
    assert a["unresolved"] is True and "escalation" in {x["category"] for x in a["alerts"]}
    assert "13912345678" not in (out / "a.json").read_text(encoding="utf-8") and a["caller_hash"]
    assert first.summary["calls"] == 2 and first.summary["resumed"] == 0 and first.summary["unresolved"] >= 1
    # an interrupted run: b's result is gone; the rerun reads a back (no work) and still links b to a
    (out / "b.json").unlink()
    second = await analyze_inputs(discover([src]), analytics, Config(), out_dir=out)
    assert second.summary["resumed"] == 1 and second.summary["analysed_now"] == 1
    b = json.loads((out / "b.json").read_text(encoding="utf-8"))
    assert b["repeat_caller"] is not None and b["repeat_caller"]["previous_calls"] == ["a"]
    assert json.loads((out / "summary.json").read_text())["calls"] == 2


async def test_a_bad_file_is_one_failed_call_not_a_failed_folder(tmp_path, analytics):
    src = tmp_path / "calls"
    src.mkdir()
    (src / "good.txt").write_text(ZH, encoding="utf-8")
    (src / "bad.txt").write_text("manager\thello\n", encoding="utf-8")
    out = tmp_path / "out"
    result = await analyze_inputs(discover([src]), analytics, Config(), out_dir=out)
    assert [c["call_id"] for c in result.calls] == ["good"]
    assert result.summary["failed"][0]["call_id"] == "bad" and "unknown role" in result.summary["failed"][0]["error"]
    assert not (out / "bad.json").exists()  # so the next run tries it again


@pytest.mark.integration
def test_recordings_folder_through_the_real_pipeline_then_resumed(tmp_path):
    """Two synthesized two-leg calls (8 kHz FLAC) and a broken file: transcribed by whisper-base through the
    streaming pipeline, analysed; the rerun transcribes nothing."""
    src = tmp_path / "recordings"
    src.mkdir()
    for name in ("demo_zh", "demo_en"):
        shutil.copy(CALLS / f"{name}.flac", src / f"{name}.flac")
        shutil.copy(CALLS / f"{name}.json", src / f"{name}.json")  # its caller number is read from here
    (src / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    p = _cli("analyze", str(src), "--jobs", "2", "--compact", cwd=tmp_path)
    assert p.returncode == 1, p.stderr  # one file failed: said, and the exit status says so
    assert "broken.wav" in p.stderr
    out = tmp_path / "recordings-analysis"
    summary = json.loads(p.stdout)
    assert summary["calls"] == 2 and summary["x_real_time"] > 0 and summary["failed"][0]["call_id"] == "broken"
    zh = json.loads((out / "demo_zh.json").read_text(encoding="utf-8"))
    en = json.loads((out / "demo_en.json").read_text(encoding="utf-8"))
    # the timed transcript: both legs, in call time, with text
    assert {u["channel"] for u in zh["utterances"]} == {"customer", "agent"}
    assert all(u["end_ms"] > u["start_ms"] for u in zh["utterances"]) and zh["audio_s"] > 60
    assert zh["language"] == "zh" and en["language"] == "en"
    assert zh["intent"] == "broadband_outage" and zh["unresolved"] is True
    assert "escalation" in {a["category"] for a in zh["alerts"]}
    assert zh["caller"] == "139****5678" and zh["sentiment"]["end"] == "negative"
    assert en["intent"] == "billing_dispute" and en["unresolved"] is False and en["sentiment"]["end"] == "positive"
    assert not {a["category"] for a in en["alerts"]} & {"escalation", "abuse", "compliance"}
    p = _cli("analyze", str(src), "--compact", cwd=tmp_path)
    again = json.loads(p.stdout)
    assert again["resumed"] == 2 and again["audio_s_transcribed_now"] == 0


@pytest.mark.integration
def test_demo_plays_the_synthesized_calls_and_shows_alert_flag_and_callback(tmp_path):
    p = _cli("demo", "--speed", "8", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    out = " ".join(p.stdout.split())
    assert "alert: demo-zh-" in out and "escalation (zh.escalation." in out
    assert "callback: demo-zh-" in out and "caller 139****5678 intent broadband_outage" in out
    assert "callback queue callscribe:callbacks: 1 entries" in out
