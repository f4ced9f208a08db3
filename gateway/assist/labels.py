"""Ticket field labels for the pages (QA's call detail and search, the agent's draft): the scenario packs name each
template field in zh and en (keyword/assist/packs.py ``field_labels``), the page picks the viewer's language and
falls back to the field's id.

Its own pack store, not the drafts' :class:`~callscribe.keyword.assist.Assist`: that one comes with the call
analyzer (rule packs, intent catalog: a second or more to load), and QA opening a call detail must not wait for it
nor fail with it. Reloaded when a pack changes, like every pack store; a pack that cannot be loaded gives no labels
(the ids show), never an error page.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Iterable, Mapping

from callscribe.errors import CallscribeError
from callscribe.keyword.assist.packs import AssistPackStore, FieldLabels, field_labels

__all__ = ["TicketLabels", "labels_for"]

log = logging.getLogger(__name__)


class TicketLabels:
    """``get()``: ticket type -> field name -> {language: label}, current with the packs. Blocking (the first call
    reads the YAML, ~0.2 s): call it in a thread."""

    def __init__(self, pack_paths: Iterable[str | os.PathLike[str]] = ()) -> None:
        self._paths = list(pack_paths)
        self._lock = threading.Lock()
        self._store: AssistPackStore | None = None
        self._generation = -1
        self._labels: FieldLabels = {}

    def get(self) -> FieldLabels:
        with self._lock:
            try:
                if self._store is None:
                    self._store = AssistPackStore(self._paths)
                packs = self._store.get()
            except CallscribeError as exc:  # the packs cannot be read: ids instead of labels, said once
                if self._generation != -2:
                    log.warning("ticket field labels unavailable (fields show by id): %s", exc)
                    self._generation = -2
                return {}
            if self._store.generation != self._generation:
                self._labels = field_labels(packs)
                self._generation = self._store.generation
            return self._labels


def labels_for(labels: FieldLabels, ticket_type: str, names: Iterable[str]) -> dict[str, dict[str, str]]:
    """The labels of these fields of a ticket type (fields without one are left out: the page shows the id)."""
    of_type: Mapping[str, Mapping[str, str]] = labels.get(ticket_type, {})
    return {n: dict(of_type[n]) for n in names if n in of_type}
