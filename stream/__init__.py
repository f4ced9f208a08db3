"""Redis Streams: the embedded server, the ordered idempotent publisher, readers. Key names: :mod:`.keys`."""

from . import keys
from .keys import call_stream, dedup_key, event_dedup_key, finals_stream
from .publisher import PublisherStats, RedisPublisher
from .reader import read_call, read_finals, read_global
from .server import EmbeddedRedis, ensure_redis

__all__ = [
    "EmbeddedRedis", "ensure_redis",
    "RedisPublisher", "PublisherStats",
    "keys", "call_stream", "finals_stream", "dedup_key", "event_dedup_key",
    "read_call", "read_finals", "read_global",
]
