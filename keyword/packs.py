"""Rule packs: the phrases and patterns analytics look for, as data (YAML), one file per language.

Why data: a contact center changes what it screens for every week (a new regulator hotline, a new
forbidden promise, this month's outage word); operators edit a YAML file and the running workers pick it
up (:class:`PackStore` reloads on change), with no deploy. The shipped packs are ``packs/rules-zh.yaml``
and ``packs/rules-en.yaml``; ``Config.rule_packs`` points at your own files or directory instead.

Schema (``version: 1``)::

    version: 1
    language: zh                     # zh | en: which negation grammar and word-boundary rules apply
    negation:                        # optional; a hit preceded in its clause by a prefix, then only
      prefixes: [不, 没有, ...]       #   fillers (不是要投诉, "not going to complain"), or followed by
      fillers: [是, 要, ...]          #   a suffix (投诉就算了), is negated and dropped for rules with
      suffixes: [就算了, ...]         #   negatable: true (the default)
      max_fillers: 4
    rules:
      - id: zh.escalation.regulator  # unique across all loaded packs
        category: escalation         # escalation | abuse | compliance: a supervisor alert ...
                                     # ... or signal: evidence the analyzer reasons with (greeting,
                                     # verification, pending, resolved, ...; see analyzer.py)
        signal: ""                   # signal name (category signal only)
        severity: critical           # info | low | medium | high | critical
        channel: customer            # customer | agent | any
        phrases: [工信部, 通管局]      # matched on folded text (Simplified, half-width, lower case)
        patterns: ['找.{0,4}领导']    # regular expressions on the folded text
        sound: true                  # zh: also match near-homophones by toneless pinyin (头诉 = 投诉)
        negatable: true
        unless: [上次投诉]            # a clause containing one of these cancels the hit
        word: true                   # zh: the hit must be whole jieba words (滚 is not in 滚动条), and a
                                     #   phrase ending in 的 before a noun is a possessive (我妈的手机)
        threat: true                 # the hit must be the customer's own intention toward the company:
                                     #   the pack's not_a_threat frames (a profession, a third party, a
                                     #   past event, reporting a spam number) overlapping it cancel it
        description: why the rule exists

    not_a_threat:                    # regexes on the folded clause; a match overlapping a threat hit
      - '(?:在|是).{0,6}律师事务所'    #   cancels it (rules with threat: true)

Loading validates everything and raises :class:`RulePackError` naming the file and rule; a running
:class:`PackStore` that fails to reload keeps the packs it had and logs why.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from callscribe.errors import CallscribeError

from .normalize import fold
from .reload import Reloading

log = logging.getLogger(__name__)

__all__ = [
    "ALERT_CATEGORIES", "SEVERITIES", "Negation", "Pack", "PackStore", "Rule", "RulePackError", "bundled_pack_paths",
    "load_pack", "load_packs",
]

ALERT_CATEGORIES = ("escalation", "abuse", "compliance")
"""Categories a rule can raise directly; ``silence`` and ``overtalk`` come from timing, not phrases."""
SEVERITIES = ("info", "low", "medium", "high", "critical")
PACK_VERSION = 1
PACKS_DIR = Path(__file__).parent / "packs"


class RulePackError(CallscribeError):
    """A rule pack file that cannot be used: unreadable, not YAML, or failing validation."""


@dataclass(frozen=True, slots=True)
class Negation:
    prefixes: tuple[str, ...] = ()
    fillers: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    max_fillers: int = 4


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: str
    severity: str
    channel: str
    language: str
    phrases: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    signal: str = ""
    sound: bool = False
    negatable: bool = True
    unless: tuple[str, ...] = ()
    word: bool = False
    threat: bool = False
    description: str = ""

    @property
    def is_alert(self) -> bool:
        return self.category in ALERT_CATEGORIES


@dataclass(frozen=True, slots=True)
class Pack:
    path: str
    language: str
    negation: Negation
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    not_a_threat: tuple[re.Pattern[str], ...] = ()


def bundled_pack_paths() -> list[Path]:
    """The rule packs shipped with callscribe (``keyword/packs/rules-*.yaml``)."""
    return sorted(PACKS_DIR.glob("rules-*.yaml"))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise RulePackError(f"{where}: must be a list of strings")
    out = tuple(fold(str(v).strip()) for v in value if str(v).strip())
    return out


def _patterns(value: Any, where: str) -> tuple[re.Pattern[str], ...]:
    """Regular expressions over folded text (a rule's ``patterns``, the pack's ``not_a_threat``), compiled."""
    out = []
    for p in value or []:
        try:
            out.append(re.compile(fold(str(p))))
        except re.error as exc:
            raise RulePackError(f"{where} {p!r}: {exc}") from exc
    return tuple(out)


def _choice(value: Any, allowed: Iterable[str], where: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    allowed = tuple(allowed)
    if value not in allowed:
        raise RulePackError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def load_pack(path: str | os.PathLike[str]) -> Pack:
    """Read and validate one YAML rule pack."""
    import yaml

    where = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeError, yaml.YAMLError) as exc:
        raise RulePackError(f"rule pack {where}: {exc}") from exc
    if not isinstance(data, dict):
        raise RulePackError(f"rule pack {where}: top level must be a mapping")
    if data.get("version") != PACK_VERSION:
        raise RulePackError(f"rule pack {where}: version must be {PACK_VERSION}, not {data.get('version')!r}")
    language = _choice(data.get("language"), ("zh", "en"), f"{where}: language")
    neg = data.get("negation") or {}
    if not isinstance(neg, dict):
        raise RulePackError(f"{where}: negation must be a mapping")
    try:
        max_fillers = int(neg.get("max_fillers", 4))
    except (TypeError, ValueError) as exc:
        raise RulePackError(f"{where}: negation.max_fillers: {exc}") from exc
    negation = Negation(
        prefixes=_strings(neg.get("prefixes"), f"{where}: negation.prefixes"),
        fillers=_strings(neg.get("fillers"), f"{where}: negation.fillers"),
        suffixes=_strings(neg.get("suffixes"), f"{where}: negation.suffixes"),
        max_fillers=max(0, min(max_fillers, 10)),
    )
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RulePackError(f"rule pack {where}: rules must be a non-empty list")
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            raise RulePackError(f"{where}: rules[{i}] must be a mapping")
        rid = raw.get("id")
        if not isinstance(rid, str) or not rid.strip():
            raise RulePackError(f"{where}: rules[{i}] needs an id")
        at = f"{where}: rule {rid}"
        category = _choice(raw.get("category"), (*ALERT_CATEGORIES, "signal"), f"{at}: category")
        signal = str(raw.get("signal") or "")
        if category == "signal" and not signal:
            raise RulePackError(f"{at}: a signal rule needs a signal name")
        patterns = _patterns(raw.get("patterns"), f"{at}: pattern")
        phrases = _strings(raw.get("phrases"), f"{at}: phrases")
        if not phrases and not patterns:
            raise RulePackError(f"{at}: needs phrases or patterns")
        unknown = set(raw) - {"id", "category", "signal", "severity", "channel", "phrases", "patterns", "sound",
                              "negatable", "unless", "word", "threat", "description"}
        if unknown:
            raise RulePackError(f"{at}: unknown keys {sorted(unknown)}")
        rules.append(Rule(
            id=rid.strip(),
            category=category,
            signal=signal,
            severity=_choice(raw.get("severity"), SEVERITIES, f"{at}: severity", default="medium"),
            channel=_choice(raw.get("channel"), ("customer", "agent", "any"), f"{at}: channel", default="any"),
            language=language,
            phrases=phrases,
            patterns=patterns,
            sound=bool(raw.get("sound", False)) and language == "zh",
            negatable=bool(raw.get("negatable", True)),
            unless=_strings(raw.get("unless"), f"{at}: unless"),
            word=bool(raw.get("word", False)) and language == "zh",
            threat=bool(raw.get("threat", False)),
            description=str(raw.get("description") or ""),
        ))
    frames = _patterns(data.get("not_a_threat"), f"{where}: not_a_threat pattern")
    unknown = set(data) - {"version", "language", "negation", "rules", "not_a_threat"}
    if unknown:
        raise RulePackError(f"rule pack {where}: unknown keys {sorted(unknown)}")
    return Pack(path=where, language=language, negation=negation, rules=tuple(rules), not_a_threat=frames)


def load_packs(paths: Iterable[str | os.PathLike[str]] = ()) -> list[Pack]:
    """Load packs from files and/or directories (every ``*.yaml`` inside); none given = the bundled ones.

    Rule ids must be unique across all of them."""
    files: list[Path] = []
    for p in paths or bundled_pack_paths():
        path = Path(p).expanduser()
        if path.is_dir():
            files.extend(sorted(f for f in path.glob("*.yaml") if f.name != "intents.yaml"))
        else:
            files.append(path)
    if not files:
        raise RulePackError(f"no rule packs found in {[str(p) for p in paths]}")
    packs = [load_pack(f) for f in files]
    seen: dict[str, str] = {}
    for pack in packs:
        for rule in pack.rules:
            if rule.id in seen:
                raise RulePackError(f"rule id {rule.id!r} is in both {seen[rule.id]} and {pack.path}")
            seen[rule.id] = pack.path
    return packs


class PackStore(Reloading[list[Pack]]):
    """The current rule packs, reloaded when a file changes (checked at most every ``check_every_s``; the
    mechanism is keyword/reload.py, shared with the scenario packs).

    ``get()`` is cheap and always returns a usable set: a reload that fails validation logs the error and
    keeps serving the previous packs, so a typo in an edited YAML file never stops alerting."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]] = (), check_every_s: float = 2.0) -> None:
        self._paths = [Path(p).expanduser() for p in paths]
        super().__init__(self._pack_files, lambda: load_packs(self._paths), (RulePackError,), "rule packs",
                         lambda packs: f"{sum(len(p.rules) for p in packs)} rules from {len(packs)} files", check_every_s)

    def _pack_files(self) -> list[Path]:
        out: list[Path] = []
        for p in self._paths or bundled_pack_paths():
            out.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
        return out

