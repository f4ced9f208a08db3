"""The reaper's pure decision (stream/liveness.py) and the publisher's outage classification."""

from __future__ import annotations

from redis.exceptions import BusyLoadingError, ConnectionError, OutOfMemoryError, ReadOnlyError, ResponseError

from callscribe.stream.liveness import lost_calls, parse_live
from callscribe.stream.publisher import is_permanent


def test_parse_live_values():
    assert parse_live("host-1-ab12|1700000000000") == ("host-1-ab12", 1700000000000)
    assert parse_live("a|b|123") == ("a|b", 123)
    assert parse_live("garbage") == ("", 0)


def test_a_missing_node_is_reaped_on_its_second_missing_scan_only():
    live = {"c1": "dead|100", "c2": "alive|200", "c3": "me|300"}
    first, missing = lost_calls(live, alive={"alive"}, me="me", missing_before=set(), is_local=lambda c: True)
    assert first == [] and missing == {"dead"}  # seen missing once: not yet (a Redis restart, a slow node)
    second, missing = lost_calls(live, alive={"alive"}, me="me", missing_before=missing, is_local=lambda c: True)
    assert second == [("c1", 100)] and missing == {"dead"}


def test_a_node_that_comes_back_is_not_reaped():
    live = {"c1": "flaky|100"}
    _, missing = lost_calls(live, alive=set(), me="me", missing_before=set(), is_local=lambda c: False)
    out, missing = lost_calls(live, alive={"flaky"}, me="me", missing_before=missing, is_local=lambda c: False)
    assert out == [] and missing == set()


def test_own_calls_are_reaped_only_when_this_process_no_longer_has_them():
    live = {"mine": "me|1", "gone": "me|2"}
    out, _ = lost_calls(live, alive=set(), me="me", missing_before=set(), is_local=lambda c: c == "mine")
    assert out == [("gone", 2)]


def test_only_replies_about_the_entry_itself_are_permanent():
    outage = [
        ResponseError("MISCONF Errors writing to the AOF file: No space left on device script: on @user_script:9."),
        OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."),
        ReadOnlyError("READONLY You can't write against a read only replica."),
        BusyLoadingError("LOADING Redis is loading the dataset in memory"),
        ResponseError("NOAUTH Authentication required."),
        ResponseError("NOPERM this user has no permissions to run the 'evalsha' command"),
        ConnectionError("Connection refused"),
    ]
    assert not any(is_permanent(e) for e in outage)
    assert is_permanent(ResponseError("WRONGTYPE callscribe:call:x holds a string, not a stream"))
    assert is_permanent(ResponseError("ERR wrong number of arguments for 'xadd' command"))
