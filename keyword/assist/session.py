"""Agent assist for one call, sans-I/O: the same finals the CallAnalyzer gets, plus what it concluded, in;
typed cards out (callscribe/events.py: ScenarioCard, StepDone, StepPrompt, KnowledgeCard, Offer, TicketDraft).

:class:`Assist` holds what calls share (the scenario packs, reloaded on edit and compiled once per generation);
:class:`AssistSession` holds one call and is fed, after the analyzer has seen each final::

    events = analyzer.on_final(t)
    cards = session.on_final(t, state_of(analyzer, events))     # keyword/assist/bridge.py
    ...
    cards += session.on_end(ended, outcome_of(analyzer, end_events))

* The **scenario** is fixed when the analyzer's intent holds for two customer turns (or scores high at once);
  a different intent holding for three turns replaces it. Earlier finals are replayed against the new
  scenario's steps, so a verification done before the intent was known counts.
* **Steps** are done when their phrases / patterns occur on their channel, or when the analyzer's own state says
  so (``signal: verification`` is the analyzer's verification rule, not a second list of phrases). A step done
  before a step it comes ``after`` prompts for the missing one (an account change before verification); the
  analyzer's ``compliance.no_verification`` alert (account details read out unverified) prompts for the
  scenario's verification step; the closing moment prompts for required steps still missing.
* **Knowledge**: a customer turn that asks something is matched against the answer cards' similar questions;
  the best card at or above its threshold is shown once per call, with its score.
* **Offers** are judged once, at their moment (``after_resolution``: the customer's first turn after the issue
  was resolved; ``before_closing``: the agent's closing line). Never during or after an escalation or abuse in
  the call, never when the customer's mood is negative, never on an open complaint or an unresolved issue:
  those are engine rules, not pack options. An offer whose moment never came is reported suppressed at the end.
* **Ticket**: at the end of an unresolved call (or on :meth:`AssistSession.ticket`, the agent's click).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from callscribe.events import (
    Alert, CallEnded, KnowledgeCard, Offer, ScenarioCard, StepDone, StepPrompt, TicketDraft, Transcript,
)

from ..redact import redact
from ..sentiment import LABEL_THRESHOLD
from .engine import CompiledPacks, CompiledScenario, is_question
from .packs import AssistPackStore
from .schema import OfferSpec
from .ticket import CallOutcome, draft_ticket, ticket_json

__all__ = ["Assist", "AssistSession", "CallState"]

FIX_TURNS = 2
"""Customer turns the analyzer's intent must hold before its scenario card is shown."""
FIX_SCORE = 0.35
"""... or this intent score after one customer turn (a clear first statement)."""
SWITCH_TURNS = 3
"""Customer turns a different intent must hold to replace the scenario."""
OPEN_COMPLAINT = ("complaint",)


@dataclass(frozen=True, slots=True)
class CallState:
    """What the call analyzer knows right after one final (bridge.state_of builds it from a CallAnalyzer)."""

    intent: str
    intent_score: float = 0.0
    customer_turns: int = 0
    issue: str = "none"
    """none | open | pending | resolved | unconfirmed (keyword/analyzer.py's issue state)."""
    unresolved: bool = False
    verified: bool = False
    sentiment: str = "neutral"
    """The customer's running sentiment label."""
    last_customer_score: float = 0.0
    alerts: tuple[Alert, ...] = ()
    """Alerts this final raised."""


class Assist:
    """Shared, read-mostly: scenario packs (reloaded on change) compiled per generation."""

    def __init__(self, pack_paths: Iterable[str | os.PathLike[str]] = (), idf: Mapping[str, float] | None = None,
                 relevance: Any = None, check_every_s: float = 2.0) -> None:
        """``idf``: the intent classifier's (keyword/intent.py) so the cards' similarity weighs n-grams as the
        catalog does; ``relevance``: a classifier (``IntentClassifier``) to rank the customer's key utterances."""
        self.store = AssistPackStore(pack_paths, check_every_s=check_every_s)
        self._idf = idf
        self.classifier = relevance
        self._compiled = CompiledPacks(self.store.get(), idf)
        self._generation = self.store.generation

    @property
    def compiled(self) -> CompiledPacks:
        packs = self.store.get()  # may reload
        if self.store.generation != self._generation:
            self._compiled = CompiledPacks(packs, self._idf)
            self._generation = self.store.generation
        return self._compiled

    def session(self, call_id: str, language: str, caller_masked: str = "") -> "AssistSession":
        return AssistSession(self, call_id, language, caller_masked)

    def relevance_for(self, intent: str):
        """Similarity of a text to ``intent`` (for picking the customer's key utterances), or None."""
        clf = self.classifier
        if clf is None:
            return None

        def rel(text: str) -> float:
            s = clf.score(text)
            if s.intent == intent:
                return s.score
            if s.runner_up == intent:
                return s.runner_up_score * 0.5
            return 0.0
        return rel


@dataclass(slots=True)
class _OfferState:
    status: str = ""  # "" (moment not reached) | made | suppressed
    reason: str = ""


class AssistSession:
    """One call's assist state; see the module docstring."""

    def __init__(self, assist: Assist, call_id: str, language: str, caller_masked: str = "") -> None:
        self.assist = assist
        self.packs = assist.compiled  # one generation for the whole call: cards never change shape mid-call
        self.call_id = call_id
        self.language = "zh" if language.startswith("zh") else ("en" if language.startswith("en") else "")
        self.caller = caller_masked
        self.finals: list[tuple[Transcript, CallState]] = []
        self.customer: list[Transcript] = []
        self.scenario: CompiledScenario | None = None
        self.scenario_seq = 0
        self._candidate = ""
        self._candidate_turns = 0
        self.done: dict[str, StepDone] = {}
        self.prompted: set[str] = set()
        self.prompts: list[StepPrompt] = []
        self.knowledge: list[KnowledgeCard] = []
        self.offers: dict[str, _OfferState] = {}
        self.offer_events: list[Offer] = []
        self.escalated = False
        self.verify_prompt_due = False
        self.resolved_at_turn = -1
        self.closing_seen = False
        self.ticket_draft: TicketDraft | None = None
        self.ended = False
        self.timings_ms: list[float] = []
        """Processing time of each final here (the assist's share of final-to-card latency)."""
        self._last_state: CallState | None = None

    # -------------------------------------------------------------------------------------------------
    def on_final(self, t: Transcript, state: CallState) -> list:
        if not t.is_final or self.ended or not t.text:
            return []
        began = time.perf_counter()
        if not self.language and t.language:
            self.language = "zh" if t.language.startswith("zh") else "en"
        out: list = []
        turn = len(self.finals)
        self.finals.append((t, state))
        self._last_state = state
        if t.channel != "agent":
            self.customer.append(t)
        if any(a.category in ("escalation", "abuse") for a in state.alerts):
            self.escalated = True
        if any(a.rule == "compliance.no_verification" for a in state.alerts):
            self.verify_prompt_due = True
        resolved_before = self.resolved_at_turn >= 0
        if state.issue == "resolved":
            if not resolved_before:
                self.resolved_at_turn = turn
        else:
            self.resolved_at_turn = -1
        out += self._fix_scenario(t, state)
        sc = self.scenario
        if sc is not None:
            folded, hits = sc.hits(t.text)
            out += self._steps(sc, t, state, folded, hits)
            if self.verify_prompt_due:
                out += self._verify_prompt(sc, t)
            if t.channel == "agent" and ("closing",) in hits:
                self.closing_seen = True
                out += self._closing(sc, t, state)
            if t.channel != "agent" and resolved_before and state.issue == "resolved":
                out += self._offers(sc, t, state, "after_resolution")
        if t.channel != "agent":
            out += self._knowledge(t)
        self.timings_ms.append((time.perf_counter() - began) * 1000)
        return out

    # --- scenario ------------------------------------------------------------------------------------
    def _fix_scenario(self, t: Transcript, state: CallState) -> list:
        if t.channel == "agent" or not state.customer_turns:
            return []
        intent = state.intent
        if intent == self._candidate:
            self._candidate_turns += 1
        else:
            self._candidate, self._candidate_turns = intent, 1
        if self.scenario is not None and intent == self.scenario.intent:
            return []
        if intent == "other":
            need = SWITCH_TURNS  # the catch-all only once nothing else has shown for a while
        elif self.scenario is None:
            need = 1 if state.intent_score >= FIX_SCORE else FIX_TURNS
        else:
            need = SWITCH_TURNS
        if self._candidate_turns < need:
            return []
        return self._set_scenario(intent, t, state)

    def _set_scenario(self, intent: str, t: Transcript | None, state: CallState) -> list:
        sc = self.packs.scenario(self.language or "zh", intent)
        if sc is None:
            return []
        self.scenario = sc
        keep = {sid for sid in self.done if sc.step(sid) is not None}
        self.done = {k: v for k, v in self.done.items() if k in keep}
        out: list = [ScenarioCard(
            call_id=self.call_id, seq=self.scenario_seq, scenario=sc.id, intent=sc.intent, title=sc.spec.title,
            language=sc.language, steps=tuple(s.id for s in sc.steps),
            required=tuple(s.id for s in sc.steps if s.spec.required),
            lines={s.id: s.spec.say for s in sc.steps}, score=round(state.intent_score, 4), finals=len(self.finals),
            trigger_at_ms=t.emitted_at_ms if t else 0, titles={s.id: s.spec.title for s in sc.steps},
        )]
        self.scenario_seq += 1
        # replay what was said before the intent was known (a verification at the start counts)
        for earlier, st in self.finals[:-1] if t is not None else self.finals:
            folded, hits = sc.hits(earlier.text)
            out += self._steps(sc, earlier, st, folded, hits, replay=True)
        return out

    # --- steps -----------------------------------------------------------------------------------------
    def _steps(self, sc: CompiledScenario, t: Transcript, state: CallState, folded: str, hits: set[tuple],
               replay: bool = False) -> list:
        out: list = []
        for step in sc.steps:
            if step.id in self.done:
                continue
            dw = step.spec.done_when
            by = ""
            if dw.signal and (
                (dw.signal == "verification" and state.verified)
                or (dw.signal == "resolved" and state.issue == "resolved")
                or (dw.signal == "pending" and state.issue == "pending")
            ):
                by = f"signal:{dw.signal}"
            elif dw.channel in ("any", t.channel) or (dw.channel == "customer" and t.channel == "mixed"):
                if ("step", step.id) in hits:
                    by = "phrase"
                elif any(p.search(folded) for p in step.patterns):
                    by = "pattern"
            if not by:
                continue
            done = StepDone(
                call_id=self.call_id, scenario=sc.id, step=step.id, title=step.spec.title, by=by,
                quote=redact(t.text), start_ms=t.start_ms, end_ms=t.end_ms, segment_id=t.segment_id,
                trigger_at_ms=t.emitted_at_ms,
            )
            self.done[step.id] = done
            out.append(done)
            if not replay:
                for before in step.spec.after:
                    if before not in self.done:
                        out += self._prompt(sc, before, f"before:{step.id}", t)
        return out

    def _prompt(self, sc: CompiledScenario, step_id: str, reason: str, t: Transcript) -> list:
        step = sc.step(step_id)
        if step is None or step_id in self.prompted or step_id in self.done:
            return []
        self.prompted.add(step_id)
        p = StepPrompt(
            call_id=self.call_id, scenario=sc.id, step=step_id, reason=reason, title=step.spec.title,
            line=step.spec.say, segment_id=t.segment_id, trigger_at_ms=t.emitted_at_ms,
        )
        self.prompts.append(p)
        return [p]

    def _verify_prompt(self, sc: CompiledScenario, t: Transcript) -> list:
        self.verify_prompt_due = False
        step = next((s for s in sc.steps if s.spec.done_when.signal == "verification"), None)
        return self._prompt(sc, step.id, "account_access", t) if step is not None else []

    def _closing(self, sc: CompiledScenario, t: Transcript, state: CallState) -> list:
        out: list = []
        for step in sc.steps:
            if step.spec.required and step.id not in self.done:
                out += self._prompt(sc, step.id, "closing", t)
        out += self._offers(sc, t, state, "before_closing")
        return out

    # --- knowledge -------------------------------------------------------------------------------------
    def _knowledge(self, t: Transcript) -> list:
        lang = self.language or "zh"
        index = self.packs.knowledge.get(lang)
        if index is None or not is_question(t.text, lang):
            return []
        hit = index.best(t.text, exclude={k.card for k in self.knowledge})
        if hit is None or hit.score < hit.threshold:
            return []
        card = KnowledgeCard(
            call_id=self.call_id, card=hit.card.id, title=hit.card.title, answer=hit.card.answer,
            source=hit.card.source, score=hit.score, threshold=hit.threshold, scenario=hit.scenario,
            question=redact(t.text), matched=hit.question, segment_id=t.segment_id, trigger_at_ms=t.emitted_at_ms,
        )
        self.knowledge.append(card)
        return [card]

    # --- offers ----------------------------------------------------------------------------------------
    def _offer_block(self, sc: CompiledScenario, offer: OfferSpec, state: CallState) -> str:
        """Why ``offer`` must not be made now ("" = it may)."""
        if self.escalated:
            return "escalation"
        if sc.intent in OPEN_COMPLAINT:
            return "open_complaint"
        if state.sentiment == "negative" or state.last_customer_score <= -LABEL_THRESHOLD:
            return "negative_sentiment"
        if offer.requires_resolved and (state.issue != "resolved" or state.unresolved):
            return "not_resolved"
        if offer.customer_said:
            said = any(("offer", offer.id) in sc.hits(c.text)[1] for c in self.customer)
            if not said:
                return "customer_words_absent"
        made = sum(1 for o in self.offers.values() if o.status == "made")
        if made >= self.packs.max_offers.get(sc.language, 1):
            return "offer_limit"
        return ""

    def _offers(self, sc: CompiledScenario, t: Transcript, state: CallState, moment: str) -> list:
        out: list = []
        for offer in sc.offers:
            if offer.moment != moment:
                continue
            st = self.offers.setdefault(offer.id, _OfferState())
            if st.status:
                continue  # judged once, at its first moment
            reason = self._offer_block(sc, offer, state)
            st.status, st.reason = ("suppressed", reason) if reason else ("made", "")
            ev = Offer(
                call_id=self.call_id, offer=offer.id, scenario=sc.id, status=st.status, reason=reason,
                title=offer.title, line=offer.say if not reason else "", moment=moment, segment_id=t.segment_id,
                trigger_at_ms=t.emitted_at_ms,
            )
            self.offer_events.append(ev)
            out.append(ev)
        return out

    # --- end -------------------------------------------------------------------------------------------
    def on_end(self, ended: CallEnded, outcome: CallOutcome) -> list:
        """Offers whose moment never came (suppressed, with why), and the ticket when the call is unresolved."""
        if self.ended:
            return []
        self.ended = True
        out: list = []
        state = self._last_state or CallState(intent=outcome.intent)
        if self.scenario is None or self.scenario.intent != outcome.intent:
            sc = self.packs.scenario(self.language or "zh", outcome.intent)
            if sc is not None and self.scenario is None:
                out += self._set_scenario(outcome.intent, None, state)
        sc = self.scenario
        if sc is not None:
            for offer in sc.offers:
                st = self.offers.setdefault(offer.id, _OfferState())
                if st.status:
                    continue
                block = self._offer_block(sc, offer, state)
                st.status = "suppressed"
                st.reason = block if block else "no_moment"
                ev = Offer(call_id=self.call_id, offer=offer.id, scenario=sc.id, status="suppressed", reason=st.reason,
                           title=offer.title, moment=offer.moment)
                self.offer_events.append(ev)
                out.append(ev)
        if outcome.unresolved:
            draft = self.ticket(outcome, trigger="unresolved")
            if draft is not None:
                out.append(draft)
        return out

    def ticket(self, outcome: CallOutcome, trigger: str = "agent") -> TicketDraft | None:
        """Draft the ticket now (the agent's click, or the end of an unresolved call); the template is the one
        of the call's intent as the analyzer sees it, falling back to the shown scenario, then ``other``."""
        lang = self.language or "zh"
        sc = (self.packs.scenario(lang, outcome.intent) or self.scenario or self.packs.scenario(lang, "other"))
        if sc is None:
            return None
        steps = [sid for sid in (s.id for s in sc.steps) if sid in self.done]
        self.ticket_draft = draft_ticket(
            self.call_id, sc, outcome, self.customer, steps, trigger, self.assist.relevance_for(sc.intent),
            self.packs.field_labels.get(sc.ticket.type, {}),
        )
        return self.ticket_draft

    # --- offline output --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The ``assist`` object of ``callscribe analyze``."""
        sc = self.scenario
        steps_done = [{"step": d.step, "title": d.title, "by": d.by, "quote": d.quote, "start_ms": d.start_ms}
                      for d in sorted(self.done.values(), key=lambda d: d.start_ms)]
        missed = [s.id for s in sc.steps if s.spec.required and s.id not in self.done] if sc else []
        return {
            "scenario": sc.id if sc else None,
            "scenario_intent": sc.intent if sc else None,
            "scenario_title": sc.spec.title if sc else None,
            "steps_done": steps_done,
            "steps_missed": missed,
            "prompts": [{"step": p.step, "reason": p.reason, "line": p.line} for p in self.prompts],
            "answers_shown": [{"card": k.card, "title": k.title, "source": k.source, "score": k.score,
                               "threshold": k.threshold, "question": k.question, "matched": k.matched}
                              for k in self.knowledge],
            "offers": [{"offer": o.offer, "status": o.status, "reason": o.reason, "moment": o.moment,
                        **({"line": o.line} if o.line else {}),
                        **({"at_ms": self._at_ms(o.segment_id)} if o.segment_id else {})}
                       for o in self.offer_events],
        }

    def _at_ms(self, segment_id: str) -> int:
        return next((t.end_ms for t, _ in self.finals if t.segment_id == segment_id), 0)

    def ticket_json(self) -> dict[str, Any] | None:
        return ticket_json(self.ticket_draft) if self.ticket_draft is not None else None
