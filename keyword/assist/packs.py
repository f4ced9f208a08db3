"""Loading scenario packs (schema in schema.py) and keeping them current, as keyword/packs.py does for rules.

The bundled packs are ``keyword/packs/assist-zh.yaml`` and ``assist-en.yaml``; ``Config.assist_packs`` names
files or directories instead (a directory: every ``assist-*.yaml`` in it). :class:`AssistPackStore` checks the
files' modification time and size at most every ``check_every_s`` and reloads; a file that fails validation
is logged and the previous packs stay in force, so a typo never takes the agent's cards away.

Ticket field labels (schema.py ``FieldLabel``) are checked here, across the pack's templates: a ``field_labels``
entry naming no field of the pack is an error (a typo would silently label nothing); a field left without a label
in the pack's own language is only logged (:func:`unlabelled_fields`), since its id still shows and a pack written
before labels existed must keep loading. :func:`field_labels` resolves them for the gateway and the drafts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from pydantic import ValidationError

from ..reload import Reloading
from .schema import AssistPack, AssistPackError, format_validation_error

log = logging.getLogger(__name__)

__all__ = ["AssistPackStore", "FieldLabels", "LoadedPack", "bundled_assist_paths", "field_labels", "load_assist_pack",
           "load_assist_packs", "unlabelled_fields"]

FieldLabels = dict[str, dict[str, dict[str, str]]]
"""ticket type -> field name -> {language: label}."""

PACKS_DIR = Path(__file__).resolve().parent.parent / "packs"


@dataclass(frozen=True, slots=True)
class LoadedPack:
    path: str
    pack: AssistPack


def bundled_assist_paths() -> list[Path]:
    """The scenario packs shipped with callscribe (``keyword/packs/assist-*.yaml``)."""
    return sorted(PACKS_DIR.glob("assist-*.yaml"))


def load_assist_pack(path: str | os.PathLike[str]) -> LoadedPack:
    """Read and validate one YAML scenario pack; :class:`AssistPackError` names the file and key."""
    import yaml

    where = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeError, yaml.YAMLError) as exc:
        raise AssistPackError(f"scenario pack {where}: {exc}") from exc
    if not isinstance(data, dict):
        raise AssistPackError(f"scenario pack {where}: top level must be a mapping")
    try:
        pack = AssistPack.model_validate(data)
    except ValidationError as exc:
        raise AssistPackError(format_validation_error(where, exc)) from None
    _check_labels(where, pack)
    missing = unlabelled_fields(pack)
    if missing:
        log.info("scenario pack %s: %d ticket field(s) have no %s label and show by their id: %s", where, len(missing),
                 pack.language, ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    return LoadedPack(where, pack)


def _check_labels(where: str, pack: AssistPack) -> None:
    """Every ``field_labels`` key names a field of one of the pack's ticket templates."""
    names = {f.name for s in pack.scenarios for f in s.ticket.fields}
    stray = [n for n in pack.field_labels if n not in names]
    if stray:
        raise AssistPackError("; ".join(f"{where}: field_labels.{n}: no ticket template has a field {n!r}" for n in stray))


def unlabelled_fields(pack: AssistPack) -> list[str]:
    """Key paths (``scenarios[3].ticket.fields[2]``, with the field's name) of ticket fields that have no label in
    the pack's own language, neither their own nor in ``field_labels``: the agent sees their id."""
    out = []
    for i, s in enumerate(pack.scenarios):
        for j, f in enumerate(s.ticket.fields):
            own = f.label.as_dict() if f.label else {}
            shared = pack.field_labels[f.name].as_dict() if f.name in pack.field_labels else {}
            if pack.language not in own and pack.language not in shared:
                out.append(f"scenarios[{i}].ticket.fields[{j}] ({f.name})")
    return out


def field_labels(packs: Sequence[LoadedPack]) -> FieldLabels:
    """Labels of every ticket type's fields across the packs: per field and language the field's own label, else
    its pack's ``field_labels``; where packs of several languages template the same type (the bundled zh and en
    packs both have ``broadband_repair``), a language's label comes from that language's pack first, so the
    Chinese name is the zh pack's and the English one the en pack's. Languages no pack labels are left out (the
    page shows the id)."""
    # (type, name, lang) -> (written in its own language, label); the first of the better kind wins
    best: dict[tuple[str, str, str], tuple[bool, str]] = {}
    for lp in packs:
        pack = lp.pack
        for s in pack.scenarios:
            for f in s.ticket.fields:
                labels = {**(pack.field_labels[f.name].as_dict() if f.name in pack.field_labels else {}),
                          **(f.label.as_dict() if f.label else {})}
                for lang, text in labels.items():
                    key, native = (s.ticket.type, f.name, lang), lang == pack.language
                    if key not in best or (native and not best[key][0]):
                        best[key] = (native, text)
    out: FieldLabels = {}
    for (ticket_type, name, lang), (_, text) in sorted(best.items()):
        out.setdefault(ticket_type, {}).setdefault(name, {})[lang] = text
    return out


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(p.glob("assist-*.yaml")) if p.is_dir() else [p])
    return out


def load_assist_packs(paths: Iterable[str | os.PathLike[str]] = ()) -> list[LoadedPack]:
    """Packs from files and/or directories; none given = the bundled ones. Scenario ids must be unique, and
    one scenario per (language, intent) across all files."""
    given = [Path(p).expanduser() for p in paths]
    files = _files(given) if given else bundled_assist_paths()
    if not files:
        raise AssistPackError(f"no scenario packs found in {[str(p) for p in given]}")
    packs = [load_assist_pack(f) for f in files]
    ids: dict[str, str] = {}
    slots: dict[tuple[str, str], str] = {}
    for lp in packs:
        for s in lp.pack.scenarios:
            if s.id in ids:
                raise AssistPackError(f"scenario id {s.id!r} is in both {ids[s.id]} and {lp.path}")
            ids[s.id] = lp.path
            key = (lp.pack.language, s.intent)
            if key in slots:
                raise AssistPackError(f"intent {s.intent!r} ({lp.pack.language}) has scenarios in both {slots[key]} and {lp.path}")
            slots[key] = lp.path
    return packs


class AssistPackStore(Reloading[list[LoadedPack]]):
    """The current scenario packs, reloaded when a file changes (keyword/reload.py, the mechanism rule packs
    use too). ``get()`` is cheap; ``generation`` is bumped on every successful reload so compiled forms can
    cache against it."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]] = (), check_every_s: float = 2.0) -> None:
        self._paths = [Path(p).expanduser() for p in paths]
        super().__init__(
            lambda: _files(self._paths) if self._paths else bundled_assist_paths(),
            lambda: load_assist_packs(self._paths), (AssistPackError,), "scenario packs",
            lambda packs: f"{sum(len(p.pack.scenarios) for p in packs)} scenarios from {len(packs)} files",
            check_every_s)

