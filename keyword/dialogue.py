"""Offline analytics of dialogue files (``callscribe analyze``): the same CallAnalyzer the live worker runs.

A dialogue file is one call, one utterance per line::

    caller: 13800138000            optional first line
    agent<TAB>您好，请问有什么可以帮您？
    customer<TAB>我的宽带又断了
    agent<TAB>[hold 90s]           a gap marker: that side on hold / silent that long

Roles: ``customer`` / ``agent`` (also ``客户``/``用户`` and ``坐席``/``客服``); a ``role: text`` line is
accepted too. A gap marker is ``[hold N]`` or ``[silence N]`` with N in seconds (``90s``, ``90 秒``,
``2m``, ``1m30s``). Files are read as UTF-8 (a BOM is fine).

The file becomes the events a live call would produce: a CallStarted, one final Transcript per utterance
on an estimated timeline (Chinese ~4.5 characters/s, English ~2.7 words/s, 0.4 s between turns; a gap
marker advances the clock by its length, which is what the VAD would have measured), and a CallEnded.
A directory is many calls, analysed in name order against one shared repeat-caller index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from callscribe.errors import CallscribeError
from callscribe.events import CallEnded, CallFlag, CallStarted, CallSummary, Alert, IntentUpdate, Transcript

from .analyzer import Analytics, PriorCall
from .assist import Assist, assist_for
from .qa import evaluate as evaluate_form
from .assist.bridge import outcome_of, state_of
from .normalize import is_han
from .redact import redact
from .repeat import RepeatIndex, caller_hash
from .surge import SurgeDetector

__all__ = ["DialogueError", "Utterance", "Dialogue", "parse_dialogue", "analyze_call", "analyze_dialogue", "analyze_paths", "to_events"]

ROLES = {"customer": "customer", "客户": "customer", "用户": "customer", "caller": "customer",
         "agent": "agent", "坐席": "agent", "客服": "agent"}
_GAP = re.compile(
    r"^\[\s*(hold|silence|静音|保持|等待)\s*[:：]?\s*(?:(\d+(?:\.\d+)?)\s*(?:m|min|分钟?)\s*)?(?:(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds|秒)?)?\s*\]$",
    re.IGNORECASE,
)
_EN_WORD = re.compile(r"[A-Za-z0-9']+")
TURN_GAP_MS = 400
BASE_EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: offline calls get a fixed, reproducible clock


class DialogueError(CallscribeError):
    """A dialogue file that cannot be read or parsed (the message names file and line)."""


@dataclass(frozen=True, slots=True)
class Utterance:
    channel: str
    text: str  # "" for a gap
    gap_s: float = 0.0
    line: int = 0


@dataclass(frozen=True, slots=True)
class Dialogue:
    call_id: str
    caller: str
    utterances: tuple[Utterance, ...]


def parse_dialogue(text: str, call_id: str, source: str = "<text>") -> Dialogue:
    caller = ""
    utterances: list[Utterance] = []
    for n, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(caller|caller number|主叫|主叫号码|来电号码)\s*[:：]\s*(\+?[0-9][0-9 ()\-]*)$", line, re.IGNORECASE)
        if m and not utterances:
            caller = re.sub(r"[^0-9+]", "", m.group(2))
            continue
        if "\t" in raw:
            role, _, content = raw.partition("\t")
        else:
            m = re.match(r"^([^:：\s]+)\s*[:：]\s*(.*)$", line)
            if not m:
                raise DialogueError(f"{source}:{n}: expected 'customer<TAB>text' or 'agent<TAB>text'")
            role, content = m.group(1), m.group(2)
        channel = ROLES.get(role.strip().lower())
        if channel is None:
            raise DialogueError(f"{source}:{n}: unknown role {role.strip()!r} (use customer or agent)")
        content = content.strip()
        gap = _GAP.match(content)
        if gap:
            seconds = float(gap.group(2) or 0) * 60 + float(gap.group(3) or 0)
            utterances.append(Utterance(channel, "", seconds, n))
        elif content:
            utterances.append(Utterance(channel, content, 0.0, n))
    if not any(u.text for u in utterances):
        raise DialogueError(f"{source}: no utterances")
    return Dialogue(call_id, caller, tuple(utterances))


def read_dialogue(path: str | Path) -> Dialogue:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise DialogueError(f"{p}: {exc}") from exc
    return parse_dialogue(text, p.stem, str(p))


def _duration_ms(text: str) -> int:
    han = sum(1 for c in text if is_han(c))
    words = len(_EN_WORD.findall(text))
    return max(600, int(han / 4.5 * 1000 + words / 2.7 * 1000))


def _language(d: Dialogue) -> str:
    text = "".join(u.text for u in d.utterances)
    han = sum(1 for c in text if is_han(c))
    latin = sum(1 for c in text if c.isascii() and c.isalpha())
    return "zh" if han * 2 >= latin else "en"


def to_events(d: Dialogue, started_at_ms: int = BASE_EPOCH_MS) -> tuple[CallStarted, list[Transcript], CallEnded]:
    """The events a live call with this dialogue would produce (see the module docstring)."""
    lang = _language(d)
    started = CallStarted(
        call_id=d.call_id, channels=("customer", "agent"), language=lang,
        metadata={"caller": d.caller} if d.caller else {}, started_at_ms=started_at_ms,
    )
    clock = 0
    seq = {"customer": 0, "agent": 0}
    finals: list[Transcript] = []
    for u in d.utterances:
        if not u.text:
            clock += int(u.gap_s * 1000)
            continue
        dur = _duration_ms(u.text)
        segment = f"{d.call_id}/{u.channel}/{seq[u.channel]}"
        seq[u.channel] += 1
        finals.append(Transcript(
            call_id=d.call_id, channel=u.channel, segment_id=segment, revision=0, is_final=True, text=u.text,
            start_ms=clock, end_ms=clock + dur, language=lang, confidence=1.0,
            emitted_at_ms=started_at_ms + clock + dur, speech_end_at_ms=started_at_ms + clock + dur,
        ))
        clock += dur + TURN_GAP_MS
    ended = CallEnded(call_id=d.call_id, duration_ms=clock, reason="eof", finals=len(finals),
                      ended_at_ms=started_at_ms + clock)
    return started, finals, ended


def _mask_caller(number: str) -> str:
    digits = re.sub(r"\D", "", number)
    if len(digits) >= 7:
        return digits[:3] + "****" + digits[-4:]  # 138****8000: how carriers show a number to staff
    return "*" * len(number)


def analyze_dialogue(
    analytics: Analytics, d: Dialogue, repeat: RepeatIndex | None = None, surge: SurgeDetector | None = None,
    started_at_ms: int = BASE_EPOCH_MS,
) -> dict[str, Any]:
    """Run one dialogue through a CallAnalyzer; the JSON-ready result (see ``callscribe analyze``)."""
    started, finals, ended = to_events(d, started_at_ms)
    return analyze_call(analytics, started, finals, ended, repeat, surge)


def analyze_call(
    analytics: Analytics, started: CallStarted, finals: list[Transcript], ended: CallEnded,
    repeat: RepeatIndex | None = None, surge: SurgeDetector | None = None, assist: Assist | None = None,
) -> dict[str, Any]:
    """One call's events (from a dialogue file or from transcribing a recording) through a CallAnalyzer,
    in call-time order, against the shared repeat-caller index; the JSON-ready result.

    Agent assist (keyword/assist/) runs beside the analyzer on the same finals: ``assist`` (default: the one
    attached to ``analytics``, else the bundled scenario packs) adds ``"assist"`` and ``"ticket"`` (null when
    the call is resolved)."""
    caller = started.metadata.get("caller", "")
    started_at_ms = started.started_at_ms
    finals = sorted(finals, key=lambda t: (t.start_ms, t.end_ms))
    history: list[PriorCall] = repeat.lookup(caller, started_at_ms) if (repeat and caller) else []
    call = analytics.call(started, history)
    masked = _mask_caller(caller) if caller else ""
    session = (assist or assist_for(analytics)).session(started.call_id, started.language, masked)
    events: list[Any] = []
    for t in finals:
        new = call.on_final(t)
        events += new
        session.on_final(t, state_of(call, new, t.channel))
    events += call.on_end(ended)
    session.on_end(ended, outcome_of(call, events, masked))
    summary = next(e for e in events if isinstance(e, CallSummary))
    flag = next(e for e in events if isinstance(e, CallFlag) and e.final)
    if repeat is not None and caller:
        repeat.record(caller, PriorCall(started.call_id, started_at_ms, summary.intent, summary.unresolved))
    if surge is not None:
        surge.observe("intent", summary.intent, started.call_id, ended.ended_at_ms)
    alerts = [e for e in events if isinstance(e, Alert)]
    intent_updates = [e for e in events if isinstance(e, IntentUpdate)]
    repeat_alert = next((a for a in alerts if a.category == "repeat_caller"), None)
    return {
        "call_id": started.call_id,
        "caller": _mask_caller(caller) if caller else "",
        "caller_hash": caller_hash(caller) if caller else "",
        "started_at_ms": started_at_ms,
        "language": summary.language,
        "intent": summary.intent,
        "intent_name": analytics.classifier.names.get(summary.intent, ("", ""))[0 if summary.language == "zh" else 1],
        "intent_score": summary.intent_score,
        "intent_history": [{"intent": u.intent, "score": u.score, "after_finals": u.finals} for u in intent_updates],
        "alerts": [
            {"category": a.category, "rule": a.rule, "severity": a.severity, "channel": a.channel,
             "quote": a.quote, "start_ms": a.start_ms, "end_ms": a.end_ms, **({"details": dict(a.details)} if a.details else {})}
            for a in alerts if a.category != "repeat_caller"
        ],
        "unresolved": flag.unresolved,
        "reasons": list(flag.reasons),
        "quotes": [{"channel": q.channel, "text": q.text, "start_ms": q.start_ms, "end_ms": q.end_ms} for q in flag.quotes],
        "repeat_caller": (
            {"previous_calls": repeat_alert.details.get("previous_calls", "").split(","),
             "last_unresolved": repeat_alert.details.get("last_unresolved") == "true"}
            if repeat_alert else None
        ),
        "sentiment": {**call.end_sentiment(flag.unresolved).to_json(),
                      "rules_end": call.sentiment.end(call.outcome()).end, "flags": call.sentiment_flags()},
        "duration_ms": ended.duration_ms,
        "utterances": [
            {"channel": t.channel, "text": redact(t.text), "start_ms": t.start_ms, "end_ms": t.end_ms} for t in finals
        ],
        "assist": session.to_json(),
        "ticket": session.ticket_json(),
        "scorecard": evaluate_form(analytics.form, call.qa).to_json(),
    }


def analyze_paths(analytics: Analytics, paths: Iterable[str | Path], spacing_s: float = 300.0) -> dict[str, Any]:
    """Files and directories -> one result (a single file) or {"calls": [...], "surges": [...]}."""
    paths = [Path(p) for p in paths]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(f for f in path.iterdir() if f.is_file() and f.suffix in (".txt", ".tsv", "")))
        elif path.exists():
            files.append(path)
        else:
            raise DialogueError(f"{path}: no such file or directory")
    single = len(files) == 1 and not paths[0].is_dir()
    repeat = RepeatIndex(window_s=analytics.settings.repeat_window_s)
    surge = SurgeDetector()
    results = []
    for i, f in enumerate(files):
        results.append(analyze_dialogue(analytics, read_dialogue(f), repeat, surge, BASE_EPOCH_MS + int(i * spacing_s * 1000)))
    if single:
        return results[0]
    return {"calls": results, "surges": [_surge_json(s) for s in surge.fired]}


def _surge_json(s) -> dict[str, Any]:
    return {"topic_kind": s.topic_kind, "topic": s.topic, "window_s": s.window_s, "count": s.count,
            "baseline": s.baseline, "ratio": s.ratio, "call_ids": list(s.call_ids)}
