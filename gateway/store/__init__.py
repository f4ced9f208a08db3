"""Transcript store for search (issue #7): every final and every call summary, searchable in Chinese and
English. :class:`~.base.TranscriptStore` is the interface; :mod:`.sqlite` the default backend (SQLite FTS5
over Chinese character bigrams, no setup); :mod:`.ingest` the consumer group that fills it from Redis."""

from .base import CallRecord, Hit, SearchPage, SearchQuery, TranscriptStore, Utterance
from .query import QueryError, parse_query
from .sqlite import SqliteStore

__all__ = ["CallRecord", "Hit", "SearchPage", "SearchQuery", "TranscriptStore", "Utterance", "QueryError",
           "parse_query", "SqliteStore"]
