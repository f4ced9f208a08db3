"""Agent assist (keyword/assist/): scenario packs -> guided steps, knowledge cards, offers and one-click tickets.

Pure core, no Redis (STYLE.md section 9): :class:`Assist` (shared packs) and :class:`AssistSession` (one call)
take finals plus the call analyzer's state and return typed events (callscribe/events.py). docs/assist.md
describes the pack format and the measured scores.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Iterable

from .packs import AssistPackStore, bundled_assist_paths, load_assist_pack, load_assist_packs
from .schema import AssistPack, AssistPackError
from .session import Assist, AssistSession, CallState
from .ticket import CallOutcome, draft_ticket, ticket_json

__all__ = [
    "Assist", "AssistPack", "AssistPackError", "AssistPackStore", "AssistSession", "CallOutcome", "CallState",
    "assist_for", "attach", "bundled_assist_paths", "draft_ticket", "load_assist_pack", "load_assist_packs",
    "ticket_json",
]

_BY_ANALYTICS: "weakref.WeakKeyDictionary[Any, Assist]" = weakref.WeakKeyDictionary()


def attach(analytics: Any, assist: Assist) -> Assist:
    """Use ``assist`` for every call of ``analytics`` (keyword/analyzer.py ``Analytics``): where the packs of
    ``Config.assist_packs`` are wired in (``Assist(cfg.assist_packs, ...)``)."""
    _BY_ANALYTICS[analytics] = assist
    return assist


def assist_for(analytics: Any, pack_paths: Iterable[str | os.PathLike[str]] = ()) -> Assist:
    """The Assist attached to ``analytics``, or one over ``pack_paths`` (default: the bundled packs) built
    with the analytics' intent classifier (its IDF for the cards, its scores for the key utterances)."""
    found = _BY_ANALYTICS.get(analytics)
    if found is None:
        clf = getattr(analytics, "classifier", None)
        found = attach(analytics, Assist(pack_paths, idf=getattr(clf, "idf", None), relevance=clf))
    return found
