"""Transcript store for search (issue #7): every final and every call summary, searchable in Chinese and
English. :class:`~.base.TranscriptStore` is the interface; :mod:`.sqlite` the default backend (SQLite FTS5
over Chinese character bigrams, no setup); :mod:`.postgres` the same over PostgreSQL (``callscribe[postgres]``);
:func:`open_store` picks one from a URL; :mod:`.ingest` the consumer group that fills it from Redis. Beside the
calls and their finals it keeps the tickets submitted from the agent desk, the desk's assist-card telemetry and the
QA scorecards with their overrides and appeals (:mod:`.scores`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (AssistEvent, CallRecord, Hit, SearchPage, SearchQuery, StoreError, TicketRecord, TranscriptStore, Utterance,
                   adoption_report, masked)
from .query import QueryError, parse_query
from .scores import ScoreQuery, ScoreTables
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = ["AssistEvent", "TicketRecord", "adoption_report", "CallRecord", "Hit", "SearchPage", "SearchQuery", "TranscriptStore", "Utterance", "QueryError",
           "StoreError", "ScoreQuery", "ScoreTables", "parse_query", "open_store", "SqliteStore", "PostgresStore"]


def open_store(url: str) -> TranscriptStore:
    """The store ``url`` names: ``postgresql://...`` or ``postgres://...`` (:class:`PostgresStore`, tables in
    the ``callscribe`` schema); ``sqlite:///relative.db``, ``sqlite:////absolute.db`` (SQLAlchemy's
    convention), a file path or ``:memory:`` (:class:`SqliteStore`). Raises :class:`StoreError` for any
    other scheme, a missing psycopg, or a PostgreSQL server that cannot be reached."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return SqliteStore(url)
    if scheme.lower() in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(f"{masked(url)}: PostgreSQL needs psycopg: pip install 'callscribe[postgres]'") from exc
        return PostgresStore(url)
    if scheme.lower() == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        return SqliteStore(path or ":memory:")
    raise StoreError(f"unsupported store URL {masked(url)}: use postgresql://..., sqlite:///path or a file path")


def __getattr__(name: str) -> Any:
    """``PostgresStore`` is imported on first use, so importing this package never needs psycopg."""
    if name == "PostgresStore":
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
