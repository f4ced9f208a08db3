"""The dead-letter stream (``{prefix}:webhooks:dead``): list it, and replay dead letters once the receiver is fixed.

A replay writes the dead letter's delivery back to the webhooks stream as a new entry addressed to the endpoint that
gave up on it (``endpoint`` field: only that endpoint's group takes it; other receivers of the kind, which already
got it, do not get it again), with the same kind, payload and **idempotency key**, and deletes the dead letter, in one
Redis transaction. The delivery id (``X-Callscribe-Delivery``) is new, and so is its age: a replayed delivery gets the
full ``webhook_max_attempts`` / ``webhook_max_age_s`` again. Receivers that already processed the key (they answered
after the sender gave up, say) see a repeat key and acknowledge it.

A dead letter whose endpoint is no longer configured (its URL changed: a new endpoint id) is left where it is, unless
``to_all`` asks to send it to every receiver of its kind now configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callscribe.config import Config
from callscribe.stream import keys

from .policy import SCHEMA_VERSION, check_key, check_kind, parse_endpoints

__all__ = ["DeadLetter", "dead_letters", "replay"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    delivery: str
    kind: str
    key: str
    endpoint: str
    endpoint_id: str
    attempts: int
    status: str
    error: str
    reason: str
    dead_at_ms: int
    payload: str

    @classmethod
    def from_entry(cls, entry_id: Any, fields: dict) -> "DeadLetter":
        f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in fields.items()}
        return cls(entry_id.decode() if isinstance(entry_id, bytes) else entry_id, f.get("delivery", ""), f.get("kind", ""),
                   f.get("key", ""), f.get("endpoint", ""), f.get("endpoint_id", ""), int(f.get("attempts") or 0),
                   f.get("status", ""), f.get("error", ""), f.get("reason", ""), int(f.get("dead_at_ms") or 0), f.get("payload", "{}"))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "delivery": self.delivery, "kind": self.kind, "key": self.key, "endpoint": self.endpoint,
                "endpoint_id": self.endpoint_id, "attempts": self.attempts, "status": self.status, "error": self.error,
                "reason": self.reason, "dead_at_ms": self.dead_at_ms}


def dead_letters(client: Any, cfg: Config, count: int = 1000) -> list[DeadLetter]:
    """The oldest ``count`` dead letters (a synchronous redis-py client)."""
    return [DeadLetter.from_entry(i, f) for i, f in client.xrange(keys.webhooks_dead_stream(cfg), count=count)]


def replay(client: Any, cfg: Config, ids: list[str] | None = None, kind: str | None = None, to_all: bool = False,
           count: int = 1000) -> dict[str, Any]:
    """Replay dead letters (all, or those with the given entry ids, or of one kind): ``{"replayed": [{"dead",
    "delivery", "key", "endpoint"}], "left": [{"dead", "reason"}]}``."""
    configured = {e.id: e for e in parse_endpoints(cfg.webhooks)}
    wanted = set(ids or ())
    replayed, left = [], []
    for d in dead_letters(client, cfg, count):
        if (wanted and d.id not in wanted) or (kind and d.kind != kind):
            continue
        try:
            check_kind(d.kind)
            check_key(d.key)
        except ValueError as exc:
            left.append({"dead": d.id, "reason": str(exc)})
            continue
        target = d.endpoint_id if d.endpoint_id in configured else ""
        if not target and not to_all:
            left.append({"dead": d.id, "reason": f"endpoint {d.endpoint} ({d.endpoint_id}) is no longer configured; "
                                                 "replay with --all to send it to every receiver of its kind"})
            continue
        fields = {"v": str(SCHEMA_VERSION), "kind": d.kind, "key": d.key, "payload": d.payload}
        if target:
            fields["endpoint"] = target
        pipe = client.pipeline(transaction=True)
        pipe.xadd(keys.webhooks_stream(cfg), fields, maxlen=cfg.global_stream_maxlen, approximate=True)
        pipe.xdel(keys.webhooks_dead_stream(cfg), d.id)
        new_id, _ = pipe.execute()
        new_id = new_id.decode() if isinstance(new_id, bytes) else new_id
        replayed.append({"dead": d.id, "delivery": new_id, "key": d.key, "kind": d.kind,
                         "endpoint": configured[target].safe_url if target else "*"})
    return {"replayed": replayed, "left": left}
