"""The caller's history window (gateway/assist/history.py over a real SQLite store): the same number's calls
from the ``assist_history_days`` before the call, the edges of the window, and the setting's bounds. Pure and fast:
an in-memory store, no Redis (the live path through the gateway is tests/test_assist_live.py)."""

from __future__ import annotations

import pytest

from callscribe.config import Config, ConfigError
from callscribe.gateway.assist import HISTORY_DAYS, caller_history
from callscribe.gateway.store import CallRecord, SqliteStore
from callscribe.gateway.store.base import TicketRecord

DAY = 86_400_000
NOW = 1_790_000_000_000
CALLER = "13800138000"


@pytest.fixture
def store():
    s = SqliteStore(":memory:")
    # the same number in other forms, 29 and 31 days back, and a call one minute inside the 7-day edge
    s.upsert_call(CallRecord("d29", started_at_ms=NOW - 29 * DAY, caller="+86 138-0013-8000", intent="billing_dispute"))
    s.upsert_call(CallRecord("d31", started_at_ms=NOW - 31 * DAY, caller="138 0013 8000", intent="data_plan"))
    s.upsert_call(CallRecord("d7", started_at_ms=NOW - 7 * DAY + 60_000, caller=CALLER, intent="roaming",
                             unresolved=True, reasons=("left pending",)))
    s.upsert_call(CallRecord("other", started_at_ms=NOW - DAY, caller="13900000000"))
    s.add_ticket(TicketRecord("d31:data_service", "d31", "data_service", "medium", created_at_ms=NOW - 31 * DAY))
    yield s
    s.close()


def _ids(h: dict) -> list[str]:
    return [c["call_id"] for c in h["calls"]]


def test_default_window_is_30_days_a_call_31_days_old_is_left_out(store):
    assert HISTORY_DAYS == Config().assist_history_days == 30
    h = caller_history(store, "now", CALLER, NOW)
    assert _ids(h) == ["d7", "d29"]  # newest first; d31 and the other number's call are out
    assert h["window_days"] == 30 and h["banner"]["previous_calls"] == 2 and h["banner"]["open_tickets"] == 0


@pytest.mark.parametrize("days, expected", [(7, ["d7"]), (6, []), (45, ["d7", "d29", "d31"])])
def test_a_configured_window_is_honoured(store, days, expected):
    cfg = Config(assist_history_days=days)
    h = caller_history(store, "now", CALLER, NOW, days=cfg.assist_history_days)
    assert _ids(h) == expected and h["window_days"] == days
    if "d31" in expected:  # the old call's ticket comes with it
        assert [t["ticket_id"] for t in h["calls"][-1]["tickets"]] == ["d31:data_service"]
    assert (h["last"] or {}).get("call_id") == (expected[0] if expected else None)


def test_the_window_ends_at_the_call_start_and_excludes_the_call_itself(store):
    store.upsert_call(CallRecord("now", started_at_ms=NOW, caller=CALLER))
    store.upsert_call(CallRecord("later", started_at_ms=NOW + 1, caller=CALLER))
    assert _ids(caller_history(store, "now", CALLER, NOW)) == ["d7", "d29"]


@pytest.mark.parametrize("bad", [0, -1, 367, "thirty"])
def test_the_setting_is_bounded(bad):
    with pytest.raises(ConfigError, match="assist_history_days"):
        Config(assist_history_days=bad)


def test_the_setting_is_read_from_the_environment():
    assert Config.load(env={"CALLSCRIBE_ASSIST_HISTORY_DAYS": "90"}).assist_history_days == 90
