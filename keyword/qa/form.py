"""The evaluation form (QA scorecard) as YAML: sections of weighted questions, each answered automatically.

A contact center's checklist is its own, so the form is data (``Config.scorecard_form``; the bundled
``keyword/packs/scorecard.yaml`` is a telecom default). Each question names an ``auto`` rule, one of the
evaluators in evaluate.py (:data:`AUTO_RULES`), and may add phrases for it per language (``phrases: {zh:
[...], en: [...]}``: the center's own empathy or closing wording). A ``critical`` question answered "no"
fails the call whatever the rest scores, as carrier QA forms do for a disclosure before verification.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from callscribe.errors import CallscribeError

__all__ = ["AUTO_RULES", "Form", "FormError", "Question", "Section", "bundled_form_path", "load_form"]

AUTO_RULES = (
    "greeting", "verification", "empathy", "hold", "no_forbidden_promise", "no_dismissive", "no_abuse",
    "fee_disclosed", "closing", "resolved",
)
"""The evaluators a question can name (keyword/qa/evaluate.py)."""


class FormError(CallscribeError):
    """An evaluation form that cannot be used (unreadable, not YAML, failing validation: file and key named)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Text(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, language: str) -> str:
        return self.zh if language == "zh" else self.en


class Phrases(_Strict):
    zh: tuple[str, ...] = ()
    en: tuple[str, ...] = ()


class Question(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    text: Text
    weight: float = Field(1.0, gt=0, le=100)
    auto: Literal[AUTO_RULES]  # type: ignore[valid-type]
    critical: bool = False
    phrases: Phrases = Phrases()


class Section(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    title: Text
    questions: tuple[Question, ...] = Field(min_length=1)


class Form(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    version: int = Field(1, ge=1)
    name: Text
    sections: tuple[Section, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "Form":
        seen: set[str] = set()
        for q in self.questions:
            if q.id in seen:
                raise ValueError(f"question id {q.id!r} is used twice")
            seen.add(q.id)
        return self

    @property
    def questions(self) -> list[Question]:
        return [q for s in self.sections for q in s.questions]

    @property
    def ref(self) -> str:
        """``id@version``: what a stored score was computed with, so a later edit of the form is visible."""
        return f"{self.id}@{self.version}"


def bundled_form_path() -> Path:
    return Path(__file__).resolve().parent.parent / "packs" / "scorecard.yaml"


def load_form(path: str | os.PathLike[str] | None = None) -> Form:
    """Read and validate a form (default: the bundled one); :class:`FormError` names the file and the key."""
    import yaml

    where = str(path or bundled_form_path())
    try:
        with open(where, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeError, yaml.YAMLError) as exc:
        raise FormError(f"evaluation form {where}: {exc}") from exc
    if not isinstance(data, dict):
        raise FormError(f"evaluation form {where}: top level must be a mapping")
    try:
        return Form.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise FormError(f"evaluation form {where}: {loc}: {first['msg']}") from None
