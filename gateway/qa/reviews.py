"""People reviewing the automatic scorecards: a reviewer overrides an answer (with a reason), an agent appeals an
answer of their own call (with a comment), a reviewer decides the appeal (accept = override, or reject with a reason).

Each review is a typed event (:class:`~callscribe.events.ScoreOverride`, :class:`~callscribe.events.ScoreAppeal`) on
the scores stream, where every gateway's store ingest files it, and in the call's own stream while it is kept; the
gateway that took the request files it in its own store at once as well, so the answer carries the rescored call
(filing is idempotent by the event's id: the ingest filing it again changes nothing). Typed text (reasons, comments)
is stored redacted when transcripts are (``redact_stored_text``) and read back as each role reads text
(callscribe/pii.py).

The checks are here, not in the routes: :class:`ReviewError` carries the HTTP status a route answers with (404 no
scorecard / no such question / appeal, 409 nothing would change or the appeal is decided already).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from callscribe.config import Config
from callscribe.events import ScoreAppeal, ScoreOverride, to_fields
from callscribe.gateway.assist.text import clean_text
from callscribe.gateway.store.base import TranscriptStore
from callscribe.gateway.store.scores import AppealRecord, ScoreRecord
from callscribe.keyword.redact import redact
from callscribe.stream import keys

__all__ = ["AppealBody", "DecisionBody", "OverrideBody", "ReviewError", "appeal", "decide", "override", "publish"]

QUESTION = r"^[A-Za-z0-9_.\-]{1,64}$"
Reason = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(lambda v: clean_text(v, multiline=True))]


class ReviewError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class OverrideBody(BaseModel):
    """A reviewer's answer to one question of a call's scorecard."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(pattern=QUESTION, description="the question id (greeting, verification, closing, ...)")
    answer: bool | None = Field(description="true (yes), false (no) or null (not applicable)")
    reason: Reason = Field(description="why (kept in the audit trail)")


class AppealBody(BaseModel):
    """An agent's appeal of one answer of their call's scorecard."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(pattern=QUESTION)
    comment: Reason = Field(description="why the answer is wrong")
    answer: bool | None = Field(None, description="the answer asked for (default: the other of yes / no)")


class DecisionBody(BaseModel):
    """A reviewer's decision on an open appeal."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "reject"]
    reason: Reason
    answer: bool | None = Field(None, description="accept: the answer to set (default: the one the agent asked for)")


# KEYS: scores stream, the call's stream; ARGV: maxlen, call maxlen, field, value, ... The call's stream gets the
# event only while it exists (a review of an old call must not recreate it without its TTL).
PUBLISH_LUA = """
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return 1
"""


async def publish(redis: Any, cfg: Config, event: ScoreOverride | ScoreAppeal) -> None:
    """The review to the scores stream and (while it exists) the call's stream, in one script."""
    argv: list[str] = [str(cfg.global_stream_maxlen), str(cfg.call_stream_maxlen)]
    for k, v in to_fields(event).items():
        argv += [k, v]
    await redis.eval(PUBLISH_LUA, 2, keys.scores_stream(cfg), keys.call_stream(cfg, event.call_id), *argv)


def _scrub(cfg: Config, text: str) -> str:
    return redact(text) if cfg.redact_stored_text else text


def _answer_of(card: ScoreRecord, question: str) -> bool | None:
    for a in card.answers:
        if a.question == question:
            return a.answer
    raise ReviewError(404, f"the scorecard has no question {question!r}")


async def _card(store: TranscriptStore, call_id: str) -> ScoreRecord:
    card = await asyncio.to_thread(store.scores.scorecard, call_id)
    if card is None:
        raise ReviewError(404, "this call has no scorecard (yet)")
    return card


def _yes_no(answer: bool | None) -> str:
    return {True: "yes", False: "no", None: "not applicable"}[answer]


async def override(redis: Any, cfg: Config, store: TranscriptStore, call_id: str, body: OverrideBody, by: str, role: str,
                   appeal_id: str = "") -> ScoreOverride:
    """Override one answer: published, filed here, the call rescored. 409 when it is already the answer in force."""
    card = await _card(store, call_id)
    old = _answer_of(card, body.question)
    if old == body.answer:
        raise ReviewError(409, f"{body.question} is already answered {_yes_no(old)}")
    event = ScoreOverride(f"ov-{uuid.uuid4().hex}", call_id, body.question, old, body.answer, _scrub(cfg, body.reason),
                          by, role, appeal_id)
    await publish(redis, cfg, event)
    await asyncio.to_thread(store.scores.add_override, event)
    return event


async def appeal(redis: Any, cfg: Config, store: TranscriptStore, call_id: str, body: AppealBody, by: str,
                 agent_id: str) -> ScoreAppeal:
    """An agent's appeal of one answer of their own call (the route checks it is theirs). 409 when an appeal of that
    question is open already, or the answer asked for is the one in force; 422 when none is asked for and the answer
    is not applicable (there is no "other" answer to default to)."""
    card = await _card(store, call_id)
    current = _answer_of(card, body.question)
    wanted = body.answer if "answer" in body.model_fields_set else (None if current is None else not current)
    if "answer" not in body.model_fields_set and current is None:
        raise ReviewError(422, "the answer is 'not applicable': say which answer you ask for (answer: true or false)")
    if wanted == current:
        raise ReviewError(409, f"{body.question} is already answered {_yes_no(current)}")
    open_ones = await asyncio.to_thread(store.scores.appeals, "open", None, call_id)
    if any(a.question == body.question for a in open_ones):
        raise ReviewError(409, f"an appeal of {body.question} on this call is open already")
    event = ScoreAppeal(f"ap-{uuid.uuid4().hex}", call_id, body.question, "open", agent_id, _scrub(cfg, body.comment),
                        wanted, by)
    await publish(redis, cfg, event)
    await asyncio.to_thread(store.scores.add_appeal, event)
    return event


async def decide(redis: Any, cfg: Config, store: TranscriptStore, appeal_id: str, body: DecisionBody, by: str,
                 role: str) -> tuple[ScoreAppeal, ScoreOverride | None]:
    """Decide an open appeal: accept overrides the answer (to ``body.answer``, default the one asked for; no override
    when that is the answer in force by now), reject keeps it; the decision, with the reviewer's reason, closes the
    appeal. 404 unknown appeal, 409 decided already."""
    found: AppealRecord | None = await asyncio.to_thread(store.scores.appeal, appeal_id)
    if found is None:
        raise ReviewError(404, "no such appeal")
    if found.status != "open":
        raise ReviewError(409, f"the appeal was {found.status} already")
    done: ScoreOverride | None = None
    if body.decision == "accept":
        answer = body.answer if "answer" in body.model_fields_set else found.wanted
        card = await _card(store, found.call_id)
        if _answer_of(card, found.question) != answer:
            done = await override(redis, cfg, store, found.call_id,
                                  OverrideBody(question=found.question, answer=answer, reason=body.reason), by, role, appeal_id)
    event = ScoreAppeal(appeal_id, found.call_id, found.question, "accepted" if body.decision == "accept" else "rejected",
                        found.agent_id, found.comment, found.wanted, by, _scrub(cfg, body.reason))
    await publish(redis, cfg, event)
    await asyncio.to_thread(store.scores.add_appeal, event)
    return event, done
