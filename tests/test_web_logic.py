"""Pure logic of the web gateway: tokens and roles (auth.py) and the live board (board.py), no Redis."""

from __future__ import annotations

import time

import jwt
import pytest

from callscribe.config import Config
from callscribe.errors import ConfigError
from callscribe.events import Alert, CallbackDone, CallEnded, CallFlag, CallStarted, CallSummary, IntentUpdate, Quote, Surge, Transcript
from callscribe.gateway.web.auth import AuthError, TokenAuthority
from callscribe.gateway.web import board as board_mod
from callscribe.gateway.web.board import RECENT_ENDED_S, BoardState, mask_caller

SECRET = b"k" * 64


def test_minted_tokens_verify_with_role_and_agent():
    auth = TokenAuthority(SECRET)
    token, exp = auth.mint("agent", "a7", ttl_h=1)
    who = auth.verify(token)
    assert (who.sub, who.role, who.agent_id) == ("a7", "agent", "a7") and exp > time.time() + 3500
    sup = auth.verify(auth.mint("supervisor", "sue")[0])
    assert (sup.role, sup.agent_id) == ("supervisor", "")


FUTURE, PAST = 3600, -60  # expiry offsets, applied when the test runs (not at collection: the suite takes minutes)


@pytest.mark.parametrize("claims, key, alg, why", [
    (None, None, None, "no token"),
    ("", None, None, "no token"),
    ("not-a-jwt", None, None, "invalid token"),
    ({"sub": "x", "role": "admin", "exp": FUTURE, "iss": "callscribe"}, b"o" * 64, "HS256", "invalid token"),
    ({"sub": "x", "role": "admin", "exp": PAST, "iss": "callscribe"}, SECRET, "HS256", "expired"),
    ({"sub": "x", "role": "root", "exp": FUTURE, "iss": "callscribe"}, SECRET, "HS256", "unknown role"),
    ({"sub": "x", "role": "agent", "exp": FUTURE, "iss": "callscribe"}, SECRET, "HS256", "without agent_id"),
    ({"sub": "x", "role": "admin", "iss": "callscribe"}, SECRET, "HS256", "invalid token"),
    ({"sub": "x", "role": "admin", "exp": FUTURE}, SECRET, "HS256", "invalid token"),
    ({"sub": "x", "role": "admin", "exp": FUTURE, "iss": "callscribe"}, SECRET, "HS512", "invalid token"),
], ids=["none", "empty", "garbage", "other-secret", "expired", "unknown-role", "agent-without-id", "no-exp", "no-issuer", "other-alg"])
def test_bad_tokens_are_refused_with_a_reason(claims, key, alg, why):
    token = claims
    if isinstance(claims, dict):
        body = {**claims, **({"exp": int(time.time()) + claims["exp"]} if "exp" in claims else {})}
        token = jwt.encode(body, key, algorithm=alg)
    with pytest.raises(AuthError, match=why):
        TokenAuthority(SECRET).verify(token)


def test_unsigned_token_is_refused():
    header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # {"alg":"none"}
    body = jwt.utils.base64url_encode(b'{"sub":"x","role":"admin","exp":9999999999,"iss":"callscribe"}').decode()
    with pytest.raises(AuthError):
        TokenAuthority(SECRET).verify(f"{header}.{body}.")


def test_static_tokens_and_mint_errors():
    auth = TokenAuthority(SECRET, ("qa:wall-1:0123456789abcdef0123", "agent:a9:fedcba9876543210fedc"))
    assert auth.verify("0123456789abcdef0123").role == "qa"
    assert auth.verify("fedcba9876543210fedc").agent_id == "a9"
    for role, sub, ttl in (("root", "x", 1), ("qa", " ", 1), ("qa", "x", 0), ("qa", "x", 10**6)):
        with pytest.raises(AuthError):
            auth.mint(role, sub, ttl_h=ttl)
    with pytest.raises(AuthError):
        TokenAuthority(b"short")


def test_secret_file_is_created_once_and_private(tmp_path):
    cfg = Config(data_dir=str(tmp_path))
    a, b = TokenAuthority.from_config(cfg), TokenAuthority.from_config(cfg)
    assert b.verify(a.mint("qa", "q")[0]).role == "qa"
    secret = tmp_path / "auth.secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["auth.secret"]  # no temp files left behind


def test_config_checks_static_tokens():
    with pytest.raises(ConfigError, match="api_tokens"):
        Config(api_tokens=("boss:x:0123456789abcdef",))
    with pytest.raises(ConfigError, match="api_tokens"):
        Config(api_tokens=("qa:x:short",))
    assert Config(api_tokens=("qa:x:0123456789abcdef",)).api_tokens


# --- board ---------------------------------------------------------------------------------------------------
class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


NAMES = {"billing_dispute": {"zh": "话费争议", "en": "Billing dispute"}}


def started(call_id: str, agent: str, at_ms: int) -> CallStarted:
    return CallStarted(call_id, ("customer", "agent"), "zh", metadata={"agent_id": agent, "queue": "q1", "caller": "13812345678"},
                       started_at_ms=at_ms)


def test_mask_caller():
    assert mask_caller("13812345678") == "138****5678"
    assert mask_caller("+1 (415) 555-0100") == "141****0100"
    assert mask_caller("12345") == "*****" and mask_caller("") == ""


def test_board_follows_a_call_from_start_to_callback_done():
    clock = Clock(1_000_000.0)
    b = BoardState(NAMES, clock)
    t0 = 1_000_000_000
    msgs = b.apply("1-0", started("c1", "a7", t0))
    assert msgs[0]["type"] == "call" and msgs[0]["call"]["caller"] == "13812345678"  # masked at each exit, per role
    assert b.agent_call("a7")["call_id"] == "c1"
    assert b.apply("2-0", Transcript("c1", "customer", "c1/customer/0", 0, False, "我", 0, 500, "zh", 0.5)) == []  # partials: no board change
    [m] = b.apply("3-0", IntentUpdate("c1", 1, "billing_dispute", "Billing dispute", 0.4, "other", 0.1, 2))
    assert m["call"]["intent_name"] == NAMES["billing_dispute"] and m["call"]["intent_score"] == 0.4
    alert = Alert("c1", "c1/alert/r", "r", "escalation", "high", "customer", "我要投诉", 0, 900, trigger_at_ms=5, emitted_at_ms=9)
    seen = []
    b.observe_alert_latency = seen.append
    am, cm = b.apply("4-0", alert)
    assert am["type"] == "alert" and am["alert"]["id"] == "4-0" and am["alert"]["agent_id"] == "a7"
    assert cm["call"]["alerts"] == ["escalation"] and cm["call"]["alert_count"] == 1 and seen == [0.004]
    flag = CallFlag("c1", 2, True, True, ("no_resolution",), (Quote("customer", "还是没好", 0, 1),), "billing_dispute", "13812345678")
    msgs = b.apply("5-0", flag)
    assert [m["type"] for m in msgs] == ["call", "callback"] and msgs[1]["callback"]["id"] == "5-0"
    assert b.apply("6-0", CallEnded("c1", 60_000, "hangup", ended_at_ms=t0 + 60_000))[0]["call"]["state"] == "ended"
    assert b.apply("7-0", CallbackDone("c1", "sue")) == [{"type": "callback_done", "call_id": "c1"}]
    assert b.callback_list() == []
    assert b.apply("8-0", flag)[-1]["type"] == "call"  # a redelivered flag does not reopen a handled callback
    assert b.callback_list() == []


def test_handled_callbacks_are_remembered_a_day_and_at_most_done_kept(monkeypatch):
    clock = Clock(50_000.0)
    b = BoardState(NAMES, clock)
    b.apply("1-0", CallbackDone("early", "sue"))  # "done" replayed before the call's final flag
    clock.t += 3600
    flag = CallFlag("early", 2, True, True, ("no_resolution",))
    assert [m["type"] for m in b.apply("2-0", flag)] == ["call"] and b.callback_list() == []
    b.prune()
    assert "early" in b.callbacks_done  # an hour later: still remembered
    clock.t += board_mod.DONE_KEEP_S
    b.prune()
    assert "early" not in b.callbacks_done
    monkeypatch.setattr(board_mod, "DONE_KEPT", 3)
    for i in range(5):
        b.apply(f"{3 + i}-0", CallbackDone(f"c{i}", "sue"))
    assert list(b.callbacks_done) == ["c2", "c3", "c4"]


def test_summary_sets_the_verdict_and_a_resolved_final_flag_closes_the_callback():
    b = BoardState(NAMES, Clock(2_000.0))
    b.apply("1-0", started("c2", "a8", 1_000_000))
    b.apply("2-0", CallFlag("c2", 1, True, True, ("x",)))
    assert len(b.callbacks) == 1
    assert b.apply("3-0", CallFlag("c2", 2, False, True))[-1] == {"type": "callback_done", "call_id": "c2"}
    [m] = b.apply("4-0", CallSummary("c2", "billing_dispute", 0.5, ("abuse",), False, (), repeat_of=("c0",)))
    assert m["call"]["unresolved"] is False and m["call"]["alerts"] == ["abuse"] and m["call"]["repeat_of"] == ["c0"]


def test_agent_current_call_is_the_latest_started_and_ended_calls_age_out():
    clock = Clock(10_000.0)
    b = BoardState(clock=clock)
    b.apply("1-0", started("old", "a7", 9_000_000))
    b.apply("2-0", started("new", "a7", 9_500_000))
    b.apply("3-0", started("late-replayed", "a7", 9_100_000))  # an older call seen later does not take over
    assert b.agent_call("a7")["call_id"] == "new"
    b.apply("4-0", CallEnded("old", 1000, "hangup", ended_at_ms=9_600_000))
    b.apply("5-0", CallEnded("new", 1000, "hangup", ended_at_ms=9_700_000))
    clock.t = 9_700 + RECENT_ENDED_S + 1
    removed = {m["call_id"] for m in b.prune()}
    assert removed == {"old", "new"} and b.agent_call("a7") is None
    assert [c["call_id"] for c in b.live_calls()] == ["late-replayed"]


def test_events_of_a_call_started_before_the_replay_window_still_show():
    b = BoardState(clock=Clock(50.0))
    [m] = b.apply("1-0", IntentUpdate("ghost", 1, "x", "x", 0.3, "", 0.0, 1))
    assert m["call"]["call_id"] == "ghost" and m["call"]["intent"] == "x"


def test_intent_series_counts_calls_per_bucket_by_latest_intent():
    now_s = 1_000_000.0
    b = BoardState(NAMES, Clock(now_s))
    base = int(now_s * 1000)
    b.apply("1-0", started("c1", "a", base - 1_000))
    b.apply("2-0", started("c2", "b", base - 400_000))
    b.apply("3-0", IntentUpdate("c1", 1, "billing_dispute", "", 0.5, "", 0, 1))
    b.apply("4-0", IntentUpdate("c1", 2, "billing_dispute", "", 0.6, "", 0, 2))
    series = b.intent_series(3600, 300)
    assert series["bucket_s"] == 300 and len(series["buckets"]) in (12, 13)
    counts = [bk["counts"] for bk in series["buckets"] if bk["counts"]]
    assert counts == [{"unknown": 1}, {"billing_dispute": 1}]
    assert [bk["t_ms"] for bk in series["buckets"]] == sorted(bk["t_ms"] for bk in series["buckets"])


def test_snapshot_has_everything_a_wallboard_needs():
    b = BoardState(clock=Clock(100.0))
    b.apply("1-0", started("c1", "a7", 99_000))
    b.apply("2-0", Surge("s1", "intent", "billing_dispute", 600, 9, 1.5, 6.0, ("c1",)))
    snap = b.snapshot()
    assert snap["type"] == "snapshot" and set(snap) == {"type", "calls", "alerts", "surges", "callbacks", "intent_series"}
    assert snap["surges"][0]["id"] == "2-0" and snap["surges"][0]["topic"] == "billing_dispute"
    assert b.apply("3-0", Transcript("c1", "agent", "c1/agent/0", 0, True, "您好", 0, 900, "zh", 0.9)) == []


async def test_a_viewer_that_falls_behind_is_marked_not_buffered_without_limit():
    from callscribe.gateway.web.board import Subscription

    sub = Subscription(maxsize=3)
    for i in range(10):
        sub.offer({"n": i})
    assert sub.overflowed and sub.queue.qsize() == 3  # the handler closes it with 1013; the page gets a fresh snapshot


async def test_a_subscription_filter_keeps_other_agents_calls_out():
    from callscribe.gateway.web.board import Subscription

    sub = Subscription(accept=lambda m: m.get("agent") == "a7")
    for agent in ("a7", "a8", "a7"):
        sub.offer({"agent": agent})
    assert sub.queue.qsize() == 2
