"""Build the bundled demo calls (callscribe/data/demo_call_{zh,en}.wav) from real recordings.

Two-channel 16 kHz PCM16: channel 0 customer, channel 1 agent; turns alternate, one side speaks at a time,
with pauses between turns. The clips are real human speech from shared/audio (licenses in
callscribe/data/README.md). Usage: python benchmarks/make_demo_call.py [SOURCE_DIR] [OUT_DIR]
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

# (file, channel) in call order; customers open, agents answer.
TURNS = {
    "zh": [
        ("zh/zh_cv_18536155.wav", 0), ("zh/zh_aishell1_BAC009S0724W0121.wav", 1), ("zh/zh_cv_18536592.wav", 0),
        ("zh/zh_aishell1_BAC009S0724W0123.wav", 1), ("zh/zh_speechrecognition_chinese.wav", 0),
        ("zh/zh_aishell1_BAC009S0724W0125.wav", 1), ("zh/zh_cv_18567452.wav", 0), ("zh/zh_aishell3_SSB00050002.wav", 1),
    ],
    "en": [
        ("en/en_pocketsphinx_cards_001.wav", 0), ("en/en_ljspeech_LJ001-0001.wav", 1),
        ("en/en_cmu_arctic_aew_a0001.wav", 0), ("en/en_ljspeech_LJ001-0003.wav", 1),
        ("en/en_pocketsphinx_cards_003.wav", 0), ("en/en_cmu_arctic_axb_a0005.wav", 1),
        ("en/en_librispeech_1995-1837-0001.wav", 0),
    ],
}
PAUSES_S = (0.8, 1.1, 0.7, 1.2, 0.9, 1.0, 0.8, 0.9)
ROLES = ("customer", "agent")


def build(source: Path, out: Path, language: str) -> None:
    manifest = {r["file"]: r for r in csv.DictReader(open(source / "manifest.tsv", encoding="utf-8"), delimiter="\t")}
    chans: list[list[np.ndarray]] = [[np.zeros(8000, np.float32)], [np.zeros(8000, np.float32)]]
    pos = 8000
    turns = []
    for k, (name, ch) in enumerate(TURNS[language]):
        audio, rate = sf.read(source / name, dtype="float32")
        assert rate == 16000, name
        pause = np.zeros(int(16000 * PAUSES_S[k % len(PAUSES_S)]), np.float32)
        chans[ch] += [audio, pause]
        chans[1 - ch] += [np.zeros_like(audio), pause]
        row = manifest[name]
        turns.append({"channel": ROLES[ch], "start_s": round(pos / 16000, 3), "end_s": round((pos + audio.size) / 16000, 3),
                      "file": name, "reference_text": row["reference_text"], "source": row["source"], "license": row["license"]})
        pos += audio.size + pause.size
    stereo = np.stack([np.concatenate(chans[0]), np.concatenate(chans[1])], axis=1)
    sf.write(out / f"demo_call_{language}.wav", stereo, 16000, subtype="PCM_16")
    (out / f"demo_call_{language}.json").write_text(json.dumps(turns, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"demo_call_{language}.wav: {stereo.shape[0] / 16000:.1f} s, {len(turns)} turns")


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests" / "data" / "audio"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[1] / "callscribe" / "data"
    dst.mkdir(parents=True, exist_ok=True)
    for lang in TURNS:
        build(src, dst, lang)
