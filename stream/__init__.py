"""Redis Streams: the embedded server, the ordered idempotent publisher, readers. Keys: :mod:`.keys`."""

from . import keys
from .publisher import PublisherStats, RedisPublisher
from .reader import read_call, read_finals
from .server import EmbeddedRedis, ensure_redis

__all__ = ["keys", "RedisPublisher", "PublisherStats", "read_call", "read_finals", "EmbeddedRedis", "ensure_redis"]
