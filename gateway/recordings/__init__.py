"""The gateway's side of call recordings (callscribe/recording writes them): replay for the QA page.

* :mod:`.replay` - which recording and which rendition a role may play (the one PII policy, callscribe/pii.py
  ``audio_for``), the redacted rendition of a crash-cut recording made on first request from the call's finals
  (never the original instead), reads from the recording store.
* :mod:`.links` - short-lived signed audio links, so a browser's ``<audio>`` element (which cannot send a bearer
  header) fetches the audio without the page's token in a URL.
* :mod:`.ranges` - HTTP range requests (RFC 9110 section 14).

Routes are gateway/web/recordings.py (thin); docs/recording.md "Replay" is the contract.
"""

from __future__ import annotations

from .links import URL_TTL_S, AudioLink, AudioLinks, LinkError
from .ranges import RangeNotSatisfiable, byte_range
from .replay import HEARS, Playable, Replay, ReplayError, call_finals

__all__ = ["AudioLink", "AudioLinks", "LinkError", "URL_TTL_S", "RangeNotSatisfiable", "byte_range", "HEARS", "Playable",
           "Replay", "ReplayError", "call_finals"]
