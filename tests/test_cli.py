"""The command line as a user runs it (subprocesses), and model resolution errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from callscribe.errors import ModelNotFound
from callscribe.models import resolve
from callscribe.scoring import error_rate

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "callscribe" / "data"


def run_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callscribe.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.integration
def test_transcribe_json_on_a_stereo_call(tmp_path):
    proc = run_cli("transcribe", str(DEMO / "demo_call_zh.wav"), "--json", env={"CALLSCRIBE_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["type"] == "call_started" and events[-1]["type"] == "call_ended"
    finals = [e for e in events if e["type"] == "transcript" and e["is_final"]]
    turns = json.loads((DEMO / "demo_call_zh.json").read_text())
    assert len(finals) == len(turns)
    for final, turn in zip(finals, turns):
        assert final["channel"] == turn["channel"]
        assert abs(final["start_ms"] / 1000 - turn["start_s"]) < 1.0
        assert final["language"] == "zh" and final["words"]
    hyp = "".join(f["text"] for f in finals)
    assert error_rate("".join(t["reference_text"] for t in turns), hyp, "zh") < 0.25
    assert events[-1]["finals"] == len(finals)


@pytest.mark.integration
def test_transcribe_mp3_through_pyav(tmp_path):
    """Formats soundfile cannot read go through FFmpeg (PyAV)."""
    import av
    import soundfile as sf

    audio, rate = sf.read(ROOT / "tests/data/audio/en/en_ljspeech_LJ001-0001.wav", dtype="int16")
    mp3 = tmp_path / "call.m4a"
    with av.open(str(mp3), "w") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    proc = run_cli("transcribe", str(mp3), "--json", "--language", "en")
    assert proc.returncode == 0, proc.stderr
    finals = [json.loads(x) for x in proc.stdout.splitlines() if '"is_final":true' in x]
    assert "printing" in " ".join(f["text"] for f in finals).lower()


def test_unknown_file_is_a_clear_error():
    proc = run_cli("transcribe", "/nonexistent/call.wav")
    assert proc.returncode == 2
    assert "no such audio file" in proc.stderr


def test_bad_setting_names_itself():
    proc = run_cli("transcribe", str(DEMO / "demo_call_en.wav"), env={"CALLSCRIBE_BEAM_SIZE_FINAL": "many"})
    assert proc.returncode == 2 and "CALLSCRIBE_BEAM_SIZE_FINAL" in proc.stderr


def test_missing_model_names_the_package(tmp_path):
    with pytest.raises(ModelNotFound, match="CALLSCRIBE_MODEL_DIR"):
        resolve(model_dir=str(tmp_path))
    with pytest.raises(ModelNotFound, match="unknown model"):
        resolve("large-v3")
    # the installed base packages join into a verified cache
    m = resolve("base", cache_dir=tmp_path)
    assert (m.path / "model.bin").stat().st_size > 100_000_000 and (m.path / ".verified").exists()


def test_redact_command_masks_pii_and_keeps_the_rest():
    out = run_cli("redact", "--spans", "我的手机是一三八零零一三八零零零，邮箱 zhangsan@qq.com，套餐58元")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "我的手机是[PHONE]，邮箱 [EMAIL]，套餐58元"
    assert "phone\t5-16\t一三八零零一三八零零零" in out.stderr


def test_sip_pcap_builds_a_two_stream_capture(tmp_path):
    wav = ROOT / "tests" / "data" / "audio" / "en" / "en_cmu_arctic_axb_a0005.wav"
    out = run_cli("sip-pcap", "--customer", str(wav), "--agent", str(wav), "--out", str(tmp_path / "c.pcap"),
                  "--loss", "0.05", "--jitter-ms", "60", "--dtmf", "0.5:5")
    assert out.returncode == 0, out.stderr
    data = (tmp_path / "c.pcap").read_bytes()
    assert data[:4] == bytes.fromhex("d4c3b2a1")  # pcap magic, little-endian
    assert "2 stream(s)" in out.stdout and len(data) > 2 * 50 * 160
