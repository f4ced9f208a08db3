"""The one PII policy: what each role sees of phone numbers and of transcript text, at every exit.

Every route, socket and export of the gateway passes what it sends through :func:`for_role` (events and
dicts) or the two primitives under it, so no exit decides on its own. The rule:

* **Numbers** (the caller's and the called number, wherever they sit: call metadata, ``caller`` fields of
  flags and summaries, call records): every role but ``admin`` sees them masked (``138****5678``: enough to
  recognise a repeat caller, not to dial). The raw number stays in Redis (password-protected) and in the store
  (a 0600 file), where the callback team's own tools read it.
* **Text** (captions, quotes, search hits): stored redacted by default (``redact_stored_text``), so every
  role reads redacted text. When an operator stores raw text, QA still reads it redacted here; the agent on
  the call, the supervisor listening in and admin read it as stored.
* **Audio** (call recordings, callscribe/recording): the same rule as text (:func:`audio_for`): whoever reads
  redacted text hears the redacted rendition, with the PII spans silenced.

Roles that never read call data (``ingest``) get nothing from the API in the first place (app.py).
"""

from __future__ import annotations

from typing import Any

from callscribe.keyword.redact import redact

SEES_NUMBERS = frozenset({"admin"})
"""Roles that see phone numbers unmasked."""
READS_RAW_TEXT = frozenset({"admin", "agent", "supervisor"})
"""Roles that read text as stored when it is stored unredacted."""
NUMBER_KEYS = frozenset({
    "caller", "called", "caller_number", "called_number", "callee", "caller_id", "ani", "dnis", "phone", "msisdn",
})
"""Keys that hold phone numbers, in metadata and in events."""
_TEXT_KEYS = ("text", "quote")


def mask_number(number: str) -> str:
    """Show enough of a phone number to recognise it, not to dial it: 13812345678 -> 138****5678.
    Idempotent: a number already masked (it has a ``*``) is returned as it is."""
    if "*" in str(number):
        return str(number)
    digits = [c for c in str(number) if c.isdigit()]
    if len(digits) < 7:
        return "*" * len(digits) if digits else ""
    keep_head = 3 if len(digits) >= 10 else 2
    return "".join(digits[:keep_head]) + "*" * (len(digits) - keep_head - 4) + "".join(digits[-4:])


def number_for(role: str, number: str) -> str:
    """A phone number as ``role`` may see it."""
    return number if role in SEES_NUMBERS else mask_number(number)


def text_for(role: str, text: str, stored_redacted: bool = True) -> str:
    """Transcript text as ``role`` may read it (``stored_redacted``: the text was redacted before storage)."""
    if stored_redacted or role in READS_RAW_TEXT:
        return text
    return redact(text)


def audio_for(role: str, stored_redacted: bool = True) -> str:
    """Which rendition of a call recording ``role`` may hear: ``"original"`` or ``"redacted"`` (PII spans
    silenced, callscribe/recording/redaction.py). The rule of :func:`text_for`: a role that reads redacted
    text hears redacted audio. With text stored redacted (the default) that is every role; with raw text
    stored, the roles in READS_RAW_TEXT hear the original and QA the redacted rendition."""
    return "original" if not stored_redacted and role in READS_RAW_TEXT else "redacted"


def for_role(role: str, obj: Any, stored_redacted: bool = True) -> Any:
    """A copy of ``obj`` (an event dict, a call record dict, a list of them) as ``role`` may see it: every
    number under a ``NUMBER_KEYS`` key masked, every ``text`` / ``quote`` string redacted per ``text_for``."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k in NUMBER_KEYS and isinstance(v, (str, int)) and not isinstance(v, bool):
                out[k] = number_for(role, str(v)) if v != "" else v
            elif k in _TEXT_KEYS and isinstance(v, str):
                out[k] = text_for(role, v, stored_redacted)
            else:
                out[k] = for_role(role, v, stored_redacted)
        return out
    if isinstance(obj, (list, tuple)):
        return [for_role(role, v, stored_redacted) for v in obj]
    return obj


__all__ = ["for_role", "number_for", "text_for", "audio_for", "mask_number", "NUMBER_KEYS", "SEES_NUMBERS", "READS_RAW_TEXT"]
