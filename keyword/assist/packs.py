"""Loading scenario packs (schema in schema.py) and keeping them current, as keyword/packs.py does for rules.

The bundled packs are ``keyword/packs/assist-zh.yaml`` and ``assist-en.yaml``; ``Config.assist_packs`` names
files or directories instead (a directory: every ``assist-*.yaml`` in it). :class:`AssistPackStore` checks the
files' modification time and size at most every ``check_every_s`` and reloads; a file that fails validation
is logged and the previous packs stay in force, so a typo never takes the agent's cards away.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pydantic import ValidationError

from ..reload import Reloading
from .schema import AssistPack, AssistPackError, format_validation_error

log = logging.getLogger(__name__)

__all__ = ["AssistPackStore", "LoadedPack", "bundled_assist_paths", "load_assist_pack", "load_assist_packs"]

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
    return LoadedPack(where, pack)


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

