"""Validation of the free text the agent desk sends (shared by the request models)."""

from __future__ import annotations


def clean_text(v: str, multiline: bool = False) -> str:
    """``v`` if it can be stored and sent on: valid UTF-8 (JSON may carry lone surrogates, which Redis and the
    webhook payload cannot encode) and printable (newlines and tabs allowed in ``multiline`` text)."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid UTF-8 (no lone surrogates)") from exc
    allowed = "\n\t" if multiline else ""
    if not all(c.isprintable() or c in allowed for c in v):
        raise ValueError("text must be printable (no control characters)")
    return v
