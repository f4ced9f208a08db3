"""Synthetic calls with known answers: for the report tests, the 1,000,000-call benchmark and trying the reports page.

:func:`month` makes a deterministic month of calls (callers who call again, about the same or another intent, some
unresolved, alerts, sentiment, tickets, QA scores, timed finals with Mandarin or English text), and :func:`expected`
says, by the plain definition and nothing shared with the chain logic of :mod:`.facts`, which calls are resolved
first time and which are repeats. :func:`load` files calls into a store through its public interface (call rows,
finals, tickets, then ``store.reports.refresh`` with the call's summary), in any order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

__all__ = ["SampleCall", "month", "expected", "load", "INTENTS", "QUEUES", "EMERGING"]

DAY_MS = 86_400_000

INTENTS = {
    "billing_dispute": ("zh", ["我这个月话费怎么多扣了三十块", "帮我查一下这个增值业务是谁给我开的"],
                        ["why was I charged twice this month", "there is a fee on my bill I never agreed to"]),
    "broadband_outage": ("zh", ["我家宽带又断了", "宽带一直连不上网"], ["my internet keeps dropping", "the broadband has been down since morning"]),
    "roaming": ("en", ["出国漫游怎么开通", "在国外手机没信号"], ["how do I turn on roaming for my trip", "no signal abroad"]),
    "data_plan": ("zh", ["流量不够用想加个流量包", "我的流量怎么这么快就用完了"], ["I need more data this month", "my data ran out early"]),
    "payment": ("en", ["我想交一下话费", "充值没到账"], ["I want to pay my bill", "my top up did not arrive"]),
    "cancel_service": ("zh", ["我要销户", "这个套餐我不想用了帮我取消"], ["I want to cancel my contract", "please close my account"]),
    "package_change": ("zh", ["我想换个便宜点的套餐", "有没有更划算的套餐"], ["can I switch to a cheaper plan", "I want to change my package"]),
    "complaint": ("zh", ["我要投诉你们的服务", "你们这个服务态度太差了"], ["I want to make a complaint", "your service is terrible"]),
}
QUEUES = {"billing_dispute": "billing", "payment": "billing", "broadband_outage": "broadband", "roaming": "mobile",
          "data_plan": "mobile", "cancel_service": "retention", "package_change": "retention", "complaint": "care"}
REASONS = ("customer_not_satisfied", "follow_up_promised", "transferred", "no_solution")
ALERTS = ("escalation", "silence", "overtalk", "compliance", "repeat_caller", "abuse")
EMERGING = ("光猫红灯一直闪", "optical modem red light")
"""A phrase no intent's examples contain, said in more and more broadband calls in the second half of the month:
what the emerging-topics list must find."""


@dataclass
class SampleCall:
    call_id: str
    started_at_ms: int
    caller: str
    queue: str
    agent_id: str
    intent: str
    unresolved: bool
    reasons: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()
    duration_ms: int = 0
    language: str = "zh"
    sentiment: str = ""
    sentiment_score: float = 0.0
    tickets: int = 0
    qa_score: float | None = None
    utterances: list[tuple[str, int, int, str]] = field(default_factory=list)
    """``(channel, start_ms, end_ms, text)``, call-relative."""


def month(start_ms: int, days: int = 30, calls_per_day: int = 40, callers: int = 400, agents: int = 12, seed: int = 22,
          rising: str = "roaming", text: bool = True) -> list[SampleCall]:
    """Calls over ``days`` days from ``start_ms``: about ``calls_per_day`` a day (more on weekdays), from ``callers``
    numbers, office hours weighted; one caller in four calls again within ten days, mostly about the same intent.
    ``rising``: an intent whose share doubles in the second half (a mover). The broadband calls of the last ten days
    more and more often mention :data:`EMERGING`."""
    rng = random.Random(seed)
    intents = list(INTENTS)
    weights = [6, 5, 2, 4, 3, 1, 2, 2]
    out: list[SampleCall] = []
    n = 0
    numbers = [f"138{rng.randrange(10**8):08d}" for _ in range(callers)]
    for day in range(days):
        volume = calls_per_day + rng.randrange(-calls_per_day // 5, calls_per_day // 5 + 1)
        for _ in range(volume):
            w = list(weights)
            if day >= days // 2 and rising in intents:
                w[intents.index(rising)] *= 3
            intent = rng.choices(intents, w)[0]
            hour = rng.choices(range(24), [1] * 8 + [6, 9, 9, 8, 5, 6, 8, 8, 7, 6, 4, 3, 2, 1, 1, 1])[0]
            t = start_ms + day * DAY_MS + hour * 3_600_000 + rng.randrange(3_600_000)
            caller = rng.choice(numbers)
            out.append(_call(rng, f"m{n:06d}", t, caller, intent, day, days, agents, text))
            n += 1
            if rng.random() < 0.25:  # calls again, usually about the same thing, 2 h to 10 days later
                again = intent if rng.random() < 0.8 else rng.choice(intents)
                t2 = t + rng.randrange(2 * 3_600_000, 10 * DAY_MS)
                if t2 < start_ms + days * DAY_MS:
                    fmt = rng.choice([caller, "+86 " + caller, caller[:3] + "-" + caller[3:7] + "-" + caller[7:]])
                    out.append(_call(rng, f"m{n:06d}", t2, fmt, again, (t2 - start_ms) // DAY_MS, days, agents, text))
                    n += 1
    out.sort(key=lambda c: (c.started_at_ms, c.call_id))
    return out


def _call(rng: random.Random, call_id: str, t: int, caller: str, intent: str, day: int, days: int, agents: int,
          text: bool) -> SampleCall:
    lang_default, zh, en = INTENTS[intent]
    language = lang_default if rng.random() < 0.7 else ("en" if lang_default == "zh" else "zh")
    unresolved = rng.random() < (0.3 if intent in ("broadband_outage", "complaint") else 0.15)
    reasons = tuple(rng.sample(REASONS, rng.choice([1, 1, 2]))) if unresolved else ()
    alerts = tuple(a for a in ALERTS if rng.random() < (0.08 if a != "escalation" or not unresolved else 0.4))
    duration = rng.randrange(60_000, 900_000)
    sentiment = rng.choices(["negative", "neutral", "positive"], [3 if unresolved else 1, 4, 1 if unresolved else 4])[0]
    score = {"negative": -0.6, "neutral": 0.0, "positive": 0.6}[sentiment] + rng.uniform(-0.2, 0.2)
    c = SampleCall(call_id, t, caller, QUEUES[intent], f"a{rng.randrange(agents):02d}", intent, unresolved, reasons, alerts,
                   duration, language, sentiment, round(score, 3), tickets=int(unresolved and rng.random() < 0.5),
                   qa_score=round(rng.uniform(55, 100), 1) if rng.random() < 0.6 else None)
    # timed finals: customer and agent turns with gaps, one stretch of talking over each other
    pos, turn = 2_000, 0
    lines = zh if language == "zh" else en
    while pos < duration - 20_000 and turn < 30:
        length = rng.randrange(2_000, 9_000)
        channel = "customer" if turn % 2 == 0 else "agent"
        words = rng.choice(lines) if channel == "customer" else ("好的，我帮您查一下" if language == "zh" else "let me check that for you")
        if channel == "customer" and intent == "broadband_outage" and day >= days - 10 and rng.random() < (day - days + 11) / 11:
            words += "，" + EMERGING[0] if language == "zh" else " and the " + EMERGING[1]
        c.utterances.append((channel, pos, pos + length, words if text else ""))
        pos += length + rng.randrange(-1_000, 6_000)
        turn += 1
    return c


def expected(calls: Sequence[SampleCall], window_days: float = 7.0) -> dict[str, tuple[bool, bool]]:
    """``call_id -> (resolved first time, is a repeat)`` by the definitions themselves (every pair compared)."""
    from callscribe.keyword.repeat import caller_key

    window_ms = int(window_days * DAY_MS)
    by_chain: dict[tuple[str, str], list[SampleCall]] = {}
    for c in calls:
        if caller_key(c.caller) and c.intent:
            by_chain.setdefault((caller_key(c.caller), c.intent), []).append(c)
    out = {}
    for c in calls:
        chain = by_chain.get((caller_key(c.caller), c.intent), [])
        key = (c.started_at_ms, c.call_id)
        called_again = any(key < (o.started_at_ms, o.call_id) and o.started_at_ms - c.started_at_ms <= window_ms for o in chain)
        repeats = any((o.started_at_ms, o.call_id) < key and c.started_at_ms - o.started_at_ms <= window_ms for o in chain)
        out[c.call_id] = (not c.unresolved and not called_again, repeats)
    return out


def load(store: Any, calls: Iterable[SampleCall], window_days: float = 7.0) -> int:
    """File ``calls`` into ``store`` as the ingest would: the call row (start, end, summary fields), its finals, its
    tickets, a scorecard where it has a QA score, then ``store.reports.refresh`` with its summary. Returns how many."""
    from callscribe.events import CallSummary, Scorecard, Ticket
    from callscribe.gateway.store.base import CallRecord, Utterance, ticket_record

    n = 0
    for c in calls:
        store.upsert_call(CallRecord(c.call_id, started_at_ms=c.started_at_ms, agent_id=c.agent_id, queue=c.queue,
                                     caller=c.caller, language=c.language))
        store.add_utterances([Utterance(c.call_id, f"{c.call_id}/{ch}/{i}", ch, s, e, text or "…", c.started_at_ms + s)
                              for i, (ch, s, e, text) in enumerate(c.utterances)])
        store.upsert_call(CallRecord(c.call_id, duration_ms=c.duration_ms, ended=True))
        store.upsert_call(CallRecord(c.call_id, intent=c.intent, intent_score=0.5, unresolved=c.unresolved, alerts=c.alerts,
                                     reasons=c.reasons, language=c.language))
        for k in range(c.tickets):
            store.add_ticket(ticket_record(Ticket(f"{c.call_id}:repair{k}", c.call_id, "repair", "medium", intent=c.intent,
                                                  caller=c.caller, agent_id=c.agent_id, emitted_at_ms=c.started_at_ms + c.duration_ms)))
        if c.qa_score is not None and getattr(store, "scores", None) is not None:
            store.scores.add_scorecard(Scorecard(c.call_id, "sample", c.qa_score, c.qa_score, agent_id=c.agent_id,
                                                 language=c.language, started_at_ms=c.started_at_ms))
        summary = CallSummary(c.call_id, c.intent, 0.5, c.alerts, c.unresolved, c.reasons, caller=c.caller, agent_id=c.agent_id,
                              language=c.language, started_at_ms=c.started_at_ms, duration_ms=c.duration_ms,
                              sentiment=c.sentiment, sentiment_score=c.sentiment_score)
        store.reports.refresh(c.call_id, window_days, summary)
        n += 1
    return n
