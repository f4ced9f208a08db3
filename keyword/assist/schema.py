"""The scenario pack schema (``version: 1``): what an operator writes in ``keyword/packs/assist-*.yaml``.

A scenario pack is data, like a rule pack (keyword/packs.py): operators edit it, running workers reload it
(:class:`~callscribe.keyword.assist.packs.AssistPackStore`), nothing is deployed. One file per language::

    version: 1
    language: zh                          # zh | en: which calls its scenarios serve
    closing: [还有什么可以帮您]             # agent phrases that open the closing moment (offers, last prompts)
    knowledge_threshold: 0.45             # an answer card is shown at or above this similarity
    scenarios:
      - id: zh.billing_dispute            # unique across all loaded packs
        intent: billing_dispute           # the catalog intent (keyword/packs/intents.yaml) it serves
        title: 话费争议核查
        steps:                            # guided steps (流程导引), in the order they should happen
          - id: verify_identity
            title: 核实身份
            say: 为了保护您的账户安全，请问您是机主本人吗？   # the line to say (话术)
            required: true                # missing at the closing moment / call end = prompted / missed
            after: []                     # steps that must be done first (else a StepPrompt for them)
            done_when:                    # how the transcript shows it done (any of):
              signal: verification        #   the analyzer's own state: verification | resolved | pending
              channel: agent              #   whose words count (agent | customer | any)
              phrases: [核实通过]          #   folded literal phrases (Aho-Corasick, whole words in English)
              patterns: ['退.{0,6}原路']   #   regular expressions on the folded text
        answers:                          # knowledge answers: similar questions -> one answer card
          - id: kb.zh.refund_time
            title: 退费多久到账
            answer: 退费一般三个工作日内原路退回话费账户。
            source: KB-BIL-0012           # the knowledge-base article it comes from
            questions: [多扣的钱什么时候退给我, 退款多久能到账]
            threshold: 0.5                # optional: overrides knowledge_threshold
        offers:                           # 场景化营销
          - id: offer.zh.data_addon
            title: 流量加油包
            say: 看您流量用得比较多，现在有一个10元5GB的加油包 ...
            moment: after_resolution      # after_resolution | before_closing
            customer_said: [不够用]        # optional: one of these in the customer's words so far
            requires_resolved: true       # the call's issue is resolved at the moment (default true)
        ticket:                           # 智能化快捷派单
          type: billing_review
          title: 话费争议复核
          priority: medium                # low | medium | high | urgent (raised by escalation, mood, repeats)
          fields:
            - name: disputed_amount
              label: {zh: 争议金额, en: Disputed amount}   # what the draft and QA show (viewer's language)
              required: true
              from: regex                 # caller | intent | reasons | summary | steps | previous_calls |
              pattern: '(\\d+(?:\\.\\d+)?)\\s*(?:块|元)'  #  sentiment | regex | match | value | agent
            - name: fault_type
              from: match
              match: {no_signal: [没信号], slow: [网速慢]}
    field_labels:                         # labels of field names many templates share (a field's own label wins)
      caller: {zh: 来电号码, en: Caller}

Field labels: a ticket template names its fields by id (``install_address``); the agent's draft and QA's call detail
show each by its label in the viewer's language (``zh`` / ``en``: a Mandarin call may be reviewed in English), else
by the id. keyword/assist/packs.py checks that every ``field_labels`` entry names a field of the pack and reports
fields left without a label in the pack's own language.

Every key is checked; an unknown key, a wrong type or a bad regex is an :class:`AssistPackError` that names
the file and the key path (``scenarios[3].steps[1].done_when.patterns[0]``). Offers are never made during an
escalation, nor when the customer's mood is negative or a complaint is open: those guards are the engine's,
not a pack option, so no pack can switch them off.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from callscribe.errors import CallscribeError

__all__ = [
    "ASSIST_PACK_VERSION", "AnswerCard", "AssistPack", "AssistPackError", "DoneWhen", "FieldLabel", "LABEL_LANGUAGES",
    "OfferSpec", "PRIORITIES", "ScenarioSpec", "StepSpec", "TicketField", "TicketTemplate", "format_validation_error",
]

ASSIST_PACK_VERSION = 1
PRIORITIES = ("low", "medium", "high", "urgent")
LABEL_LANGUAGES = ("zh", "en")
"""The languages of the pages (gateway/web/static/common.js), so the languages a label can be written in."""
Id = str


class AssistPackError(CallscribeError):
    """A scenario pack that cannot be used: unreadable, not YAML, or failing validation (file and key named)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, coerce_numbers_to_str=True)


def _regexes(values: tuple[str, ...]) -> tuple[str, ...]:
    for i, p in enumerate(values):
        try:
            re.compile(p)
        except re.error as exc:
            raise ValueError(f"[{i}] {p!r} is not a regular expression: {exc}") from exc
    return values


def _nonempty_items(values: tuple[str, ...]) -> tuple[str, ...]:
    if any(not v for v in values):
        raise ValueError("items must not be empty")
    return values


class DoneWhen(_Strict):
    signal: Literal["verification", "resolved", "pending", ""] = ""
    channel: Literal["agent", "customer", "any"] = "agent"
    phrases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @field_validator("patterns")
    @classmethod
    def _p(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _regexes(v)

    @field_validator("phrases")
    @classmethod
    def _n(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _nonempty_items(v)

    @model_validator(mode="after")
    def _something(self) -> "DoneWhen":
        if not (self.signal or self.phrases or self.patterns):
            raise ValueError("needs a signal, phrases or patterns")
        return self


class StepSpec(_Strict):
    id: Id = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    title: str = Field(min_length=1)
    say: str = Field(min_length=1)
    required: bool = False
    after: tuple[str, ...] = ()
    done_when: DoneWhen


class AnswerCard(_Strict):
    id: Id = Field(min_length=1)
    title: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    source: str = Field(min_length=1)
    questions: tuple[str, ...] = Field(min_length=1)
    threshold: float | None = Field(None, gt=0, le=1)

    @field_validator("questions")
    @classmethod
    def _n(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _nonempty_items(v)


class OfferSpec(_Strict):
    id: Id = Field(min_length=1)
    title: str = Field(min_length=1)
    say: str = Field(min_length=1)
    moment: Literal["after_resolution", "before_closing"] = "after_resolution"
    customer_said: tuple[str, ...] = ()
    requires_resolved: bool = True
    source: str = ""

    @field_validator("customer_said")
    @classmethod
    def _n(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _nonempty_items(v)


class FieldLabel(_Strict):
    """A ticket field's name as people read it, per page language. Both are optional (a zh pack may label in
    Chinese only), one is needed; the page falls back to the field's id for a language left out."""

    zh: str = ""
    en: str = ""

    @model_validator(mode="after")
    def _one(self) -> "FieldLabel":
        if not (self.zh or self.en):
            raise ValueError("needs zh or en (or both)")
        return self

    def as_dict(self) -> dict[str, str]:
        return {lang: text for lang, text in (("zh", self.zh), ("en", self.en)) if text}


class TicketField(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_]+$")
    label: FieldLabel | None = None
    """How the draft and QA name this field; else the pack's ``field_labels`` entry for the name; else the id."""
    required: bool = False
    source: Literal["caller", "intent", "reasons", "summary", "steps", "previous_calls", "sentiment", "regex",
                    "match", "value", "agent"] = Field(alias="from")
    """Where the value comes from; ``agent``: the agent fills it in (a required one is always ``missing``)."""
    pattern: str = ""
    match: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    value: str = ""

    @model_validator(mode="after")
    def _args(self) -> "TicketField":
        if self.source == "regex":
            if not self.pattern:
                raise ValueError("from: regex needs a pattern")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r}: {exc}") from exc
        if self.source == "match" and not self.match:
            raise ValueError("from: match needs match: {label: [phrases]}")
        if self.source == "value" and not self.value:
            raise ValueError("from: value needs a value")
        return self


class TicketTemplate(_Strict):
    type: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    title: str = Field(min_length=1)
    priority: Literal["low", "medium", "high", "urgent"] = "medium"
    fields: tuple[TicketField, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> "TicketTemplate":
        names = [f.name for f in self.fields]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"field names repeated: {sorted(dup)}")
        return self


class ScenarioSpec(_Strict):
    id: Id = Field(min_length=1)
    intent: str = Field(min_length=1)
    title: str = Field(min_length=1)
    steps: tuple[StepSpec, ...] = ()
    answers: tuple[AnswerCard, ...] = ()
    offers: tuple[OfferSpec, ...] = ()
    ticket: TicketTemplate

    @model_validator(mode="after")
    def _refs(self) -> "ScenarioSpec":
        ids = [s.id for s in self.steps]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"step ids repeated: {sorted(dup)}")
        for s in self.steps:
            for a in s.after:
                if a not in ids:
                    raise ValueError(f"step {s.id}: after names an unknown step {a!r}")
                if ids.index(a) >= ids.index(s.id):
                    raise ValueError(f"step {s.id}: after {a!r}, which is listed later (list steps in their order)")
        return self


class AssistPack(_Strict):
    version: Literal[1]
    language: Literal["zh", "en"]
    closing: tuple[str, ...] = ()
    knowledge_threshold: float = Field(0.45, gt=0, le=1)
    max_offers_per_call: int = Field(1, ge=0, le=5)
    scenarios: tuple[ScenarioSpec, ...] = Field(min_length=1)
    description: str = ""
    field_labels: dict[str, FieldLabel] = Field(default_factory=dict)
    """Labels of ticket field names shared by many templates (caller, problem, reasons, ...), so each template
    does not repeat them; a field's own ``label`` wins. Every key must name a field of some template here."""

    @model_validator(mode="after")
    def _unique(self) -> "AssistPack":
        seen: set[str] = set()
        intents: set[str] = set()
        for s in self.scenarios:
            if s.id in seen:
                raise ValueError(f"scenario id {s.id!r} repeated")
            if s.intent in intents:
                raise ValueError(f"two scenarios for intent {s.intent!r} (one per intent and language)")
            seen.add(s.id)
            intents.add(s.intent)
        return self


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "function_", "literal[")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_validation_error(path: str, exc: ValidationError) -> str:
    """One line per problem: ``FILE: scenarios[2].steps[0].say: Field required``."""
    lines = []
    for err in exc.errors():
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{path}: {_where(tuple(err.get('loc', ())))}: {msg}")
    return "; ".join(lines)
