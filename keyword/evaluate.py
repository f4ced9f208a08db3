"""Scoring analytics against labelled dialogues (``callscribe analyze DIR --labels labels.json``, the tests).

Labels: ``{call_id: {"intent": id, "alerts": [category, ...], "unresolved": bool, ...}}`` (the format of
tests/data/dialogues/labels.json). Alerts are scored as (call, category) pairs over the supervisor
categories a dialogue can show (escalation, abuse, compliance, silence): micro precision and recall.
Intent: top-1 accuracy. Unresolved: F1 with unresolved as the positive class. End sentiment (labels
``end_sentiment``, or ``sentiment`` as a string or ``{"end": ...}``): accuracy of the customer's sentiment
at the end of the call, over the calls that carry that label. PII (labels ``pii``: the personal data as
written in the call): the share of those strings that no longer appear, with digits compared on their
own, in the redacted utterances and alert quotes of the result.

QA scorecards (keyword/qa/, results carrying ``scorecard``; labels ``scorecard: {question: true|false|null}``):
the share of calls whose automatic answer equals the label, per question.

Agent assist (keyword/assist/, results carrying ``ticket`` and ``assist``): a ticket is proposed for a call
when ``ticket`` is not null; scored against the labels' ``unresolved`` (precision / recall / F1, unresolved
positive), and its type checked against the labelled intent (``ticket_type_accuracy``: tickets proposed on
calls labelled unresolved whose template intent is the labelled intent). Offers: an offer ``made`` on a call
labelled with an escalation, or after an escalation alert of the result, or on a call labelled with a
negative end sentiment, is a violation (``offer_violations``; none is the target).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

__all__ = ["SCORED_CATEGORIES", "score"]

SCORED_CATEGORIES = ("escalation", "abuse", "compliance", "silence")


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def _label_sentiment(label: Mapping[str, Any]) -> str | None:
    value = label.get("end_sentiment", label.get("sentiment"))
    if isinstance(value, Mapping):
        value = value.get("end")
    return str(value) if value else None


def _exposed(pii: str, shown: str, shown_digits: str) -> bool:
    """``pii`` is still readable in ``shown``: verbatim, or (numbers) its digits in a row."""
    if pii and pii in shown:
        return True
    digits = re.sub(r"\D", "", pii)
    return len(digits) >= 6 and digits in shown_digits


def score(results: Iterable[Mapping[str, Any]], labels: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics plus the list of every disagreement (what to look at when a number drops)."""
    tp = fp = fn = 0
    per_category = {c: [0, 0, 0] for c in SCORED_CATEGORIES}
    intent_ok = n = 0
    u_tp = u_fp = u_fn = 0
    sent_ok = sent_n = 0
    pii_total = pii_masked = 0
    t_tp = t_fp = t_fn = 0
    type_ok = type_n = 0
    offers_made = offer_bad_escalation = offer_bad_negative = 0
    assisted = 0
    qa: dict[str, list[int]] = {}  # question -> [right, answered by a label]
    errors: list[dict[str, Any]] = []
    for r in results:
        label = labels.get(r["call_id"])
        if label is None:
            continue
        n += 1
        got = {a["category"] for a in r["alerts"]} & set(SCORED_CATEGORIES)
        want = set(label.get("alerts", ())) & set(SCORED_CATEGORIES)
        for c in SCORED_CATEGORIES:
            pc = per_category[c]
            pc[0] += c in got and c in want
            pc[1] += c in got and c not in want
            pc[2] += c in want and c not in got
        tp += len(got & want)
        fp += len(got - want)
        fn += len(want - got)
        if got != want:
            errors.append({"call_id": r["call_id"], "what": "alerts", "got": sorted(got), "want": sorted(want)})
        if r["intent"] == label.get("intent"):
            intent_ok += 1
        else:
            errors.append({"call_id": r["call_id"], "what": "intent", "got": r["intent"], "want": label.get("intent")})
        want_u, got_u = bool(label.get("unresolved")), bool(r["unresolved"])
        u_tp += got_u and want_u
        u_fp += got_u and not want_u
        u_fn += want_u and not got_u
        if want_u != got_u:
            errors.append({"call_id": r["call_id"], "what": "unresolved", "got": got_u, "want": want_u,
                           "reasons": list(r.get("reasons", ()))})
        want_s = _label_sentiment(label)
        if want_s is not None:
            got_s = (r.get("sentiment") or {}).get("end")
            sent_n += 1
            sent_ok += got_s == want_s
            if got_s != want_s:
                errors.append({"call_id": r["call_id"], "what": "sentiment", "got": got_s, "want": want_s})
        if label.get("pii"):
            texts = ([u.get("text", "") for u in r.get("utterances", ())] + [a.get("quote", "") for a in r.get("alerts", ())]
                     + [q.get("text", "") for q in r.get("quotes", ())])
            shown = "\n".join(texts)
            shown_digits = "|".join(re.sub(r"\D", "", t) for t in texts)
            for item in label["pii"]:
                pii_total += 1
                if _exposed(str(item), shown, shown_digits):
                    errors.append({"call_id": r["call_id"], "what": "pii", "exposed": str(item)})
                else:
                    pii_masked += 1
        for qid, want_a in (label.get("scorecard") or {}).items():
            answers = (r.get("scorecard") or {}).get("answers") or {}
            if qid not in answers:
                continue
            got_a = answers[qid].get("answer")
            q = qa.setdefault(qid, [0, 0])
            q[1] += 1
            q[0] += got_a == want_a
            if got_a != want_a:
                errors.append({"call_id": r["call_id"], "what": f"scorecard.{qid}", "got": got_a, "want": want_a})
        if "ticket" in r:
            assisted += 1
            ticket = r.get("ticket")
            got_t = ticket is not None
            t_tp += got_t and want_u
            t_fp += got_t and not want_u
            t_fn += want_u and not got_t
            if got_t != want_u:
                errors.append({"call_id": r["call_id"], "what": "ticket", "got": got_t, "want": want_u})
            if got_t and want_u:
                type_n += 1
                if ticket.get("intent") == label.get("intent"):
                    type_ok += 1
                else:
                    errors.append({"call_id": r["call_id"], "what": "ticket_type", "got": ticket.get("type"),
                                   "got_intent": ticket.get("intent"), "want_intent": label.get("intent")})
            first_escalation = min((a.get("start_ms", 0) for a in r.get("alerts", ()) if a.get("category") == "escalation"),
                                   default=None)
            for offer in (r.get("assist") or {}).get("offers", ()):
                if offer.get("status") != "made":
                    continue
                offers_made += 1
                at = offer.get("at_ms", 0)
                if "escalation" in label.get("alerts", ()) or (first_escalation is not None and first_escalation <= at):
                    offer_bad_escalation += 1
                    errors.append({"call_id": r["call_id"], "what": "offer_during_escalation", "offer": offer.get("offer")})
                if want_s == "negative":
                    offer_bad_negative += 1
                    errors.append({"call_id": r["call_id"], "what": "offer_negative_end", "offer": offer.get("offer")})
    u_p, u_r = _ratio(u_tp, u_tp + u_fp), _ratio(u_tp, u_tp + u_fn)
    t_p, t_r = _ratio(t_tp, t_tp + t_fp), _ratio(t_tp, t_tp + t_fn)
    assist_scores = {
        "ticket_precision": round(t_p, 4),
        "ticket_recall": round(t_r, 4),
        "ticket_f1": round(2 * t_p * t_r / (t_p + t_r), 4) if t_p + t_r else 0.0,
        "ticket_type_accuracy": round(_ratio(type_ok, type_n), 4),
        "tickets_typed": type_n,
        "offers_made": offers_made,
        "offer_violations": offer_bad_escalation + offer_bad_negative,
        "offer_violations_escalation": offer_bad_escalation,
        "offer_violations_negative_end": offer_bad_negative,
    } if assisted else {}
    return {
        "calls": n,
        "alert_precision": round(_ratio(tp, tp + fp), 4),
        "alert_recall": round(_ratio(tp, tp + fn), 4),
        "alerts_by_category": {
            c: {"precision": round(_ratio(v[0], v[0] + v[1]), 4), "recall": round(_ratio(v[0], v[0] + v[2]), 4),
                "expected": v[0] + v[2]}
            for c, v in per_category.items()
        },
        "intent_accuracy": round(_ratio(intent_ok, n), 4),
        "unresolved_precision": round(u_p, 4),
        "unresolved_recall": round(u_r, 4),
        "unresolved_f1": round(2 * u_p * u_r / (u_p + u_r), 4) if u_p + u_r else 0.0,
        "sentiment_accuracy": round(_ratio(sent_ok, sent_n), 4) if sent_n else None,
        "sentiment_calls": sent_n,
        "pii_masked": round(_ratio(pii_masked, pii_total), 4) if pii_total else None,
        "pii_cases": pii_total,
        **assist_scores,
        **({"scorecard_accuracy": {k: round(v[0] / v[1], 4) for k, v in sorted(qa.items())},
            "scorecard_calls": max(v[1] for v in qa.values())} if qa else {}),
        "errors": errors,
    }
