// QA scorecards in the pages: one call's scorecard (answers with evidence and confidence, the override and appeal
// forms, the audit trail, the appeals), shared by the QA call detail (qa.js) and the scores page (scores.js).
// Data: GET /api/v1/calls/{id}/scorecard. Writes: POST .../scorecard/overrides (qa, supervisor, admin), POST
// .../scorecard/appeals (the call's agent). The server decides everything (scores, who may do what, what each
// role reads); this only shows it and posts the forms (docs/qa.md).
import { I18N, t, el, api, ApiError, getLang, fmtOffset, fmtDateTime, channelName, roleName } from "/static/common.js";

Object.assign(I18N.zh, {
  sc_title: "质检评分",
  sc_none: "该通话暂无评分",
  sc_score: "得分",
  sc_raw: "未计否决项",
  sc_auto_score: "自动评分",
  sc_form: "评分表",
  sc_yes: "是",
  sc_no: "否",
  sc_na: "不适用",
  sc_critical: "否决项",
  sc_failed_critical: "否决项未通过",
  sc_weight: "权重 {w}",
  sc_confidence: "置信度 {p}",
  sc_auto_was: "自动判定：{a}",
  sc_override: "改判",
  sc_appeal: "申诉",
  sc_answer: "判定",
  sc_reason: "理由",
  sc_comment: "申诉说明",
  sc_submit: "提交",
  sc_cancel: "取消",
  sc_audit: "改判记录",
  sc_audit_line: "{q}：{old} → {new}",
  sc_appeals: "申诉",
  sc_appeal_open: "待处理",
  sc_appeal_accepted: "已采纳",
  sc_appeal_rejected: "已驳回",
  sc_open_appeal: "申诉处理中",
  sc_wanted: "申请改为：{a}",
  sc_reason_needed: "请填写理由",
  sc_evidence_seek: "跳到此处",
});
Object.assign(I18N.en, {
  sc_title: "Scorecard",
  sc_none: "No scorecard for this call yet",
  sc_score: "Score",
  sc_raw: "before critical rules",
  sc_auto_score: "automatic",
  sc_form: "Form",
  sc_yes: "Yes",
  sc_no: "No",
  sc_na: "N/A",
  sc_critical: "critical",
  sc_failed_critical: "Critical failed",
  sc_weight: "weight {w}",
  sc_confidence: "confidence {p}",
  sc_auto_was: "automatic answer: {a}",
  sc_override: "Override",
  sc_appeal: "Appeal",
  sc_answer: "Answer",
  sc_reason: "Reason",
  sc_comment: "Why the answer is wrong",
  sc_submit: "Submit",
  sc_cancel: "Cancel",
  sc_audit: "Overrides",
  sc_audit_line: "{q}: {old} → {new}",
  sc_appeals: "Appeals",
  sc_appeal_open: "open",
  sc_appeal_accepted: "accepted",
  sc_appeal_rejected: "rejected",
  sc_open_appeal: "appeal open",
  sc_wanted: "asks for: {a}",
  sc_reason_needed: "Give a reason",
  sc_evidence_seek: "Go to this line",
});

export const REVIEWERS = new Set(["qa", "supervisor", "admin"]);

/** "yes" / "no" / "na": an answer as a data attribute value. */
export const answerCode = (a) => (a === true ? "yes" : a === false ? "no" : "na");
/** An answer (true / false / null) in words. */
export const answerName = (a) => t(`sc_${answerCode(a)}`);
/** A question's text in the page's language ({zh, en}), else its id. */
export const questionName = (id, label) => (label && (label[getLang()] || label.en || label.zh)) || String(id);
/** A 0-100 score (null: nothing applied). */
export const fmtScore = (s) => (s === null || s === undefined ? t("none_dash") : String(Math.round(Number(s) * 10) / 10));

/**
 * A call's scorecard in `box`: `me` (GET /api/v1/me) decides the buttons (reviewers override, the call's agent
 * appeals; the server checks again). `onSeek(ms)`: evidence times are links to that moment of the call.
 */
export class ScorecardView {
  constructor(box, me, { onSeek, onChange } = {}) {
    this.box = box;
    this.me = me || {};
    this.onSeek = onSeek;
    this.onChange = onChange;
    this.callId = null;
    this.card = null;
    this.seq = 0;
  }

  async load(callId) {
    const seq = ++this.seq;
    this.callId = callId;
    this.card = null;
    this.box.replaceChildren(el("div.empty", { text: t("loading") }));
    try {
      const card = await api(`/api/v1/calls/${encodeURIComponent(callId)}/scorecard`);
      if (seq !== this.seq) return;
      this.card = card;
    } catch (err) {
      if (seq !== this.seq) return;
      const text = err instanceof ApiError && err.status === 404 ? t("sc_none")
        : err instanceof ApiError ? err.detail || t("server_error", { status: err.status }) : String(err);
      this.box.replaceChildren(el("div.empty.sc-none", { text }));
      return;
    }
    this.render();
  }

  clear() {
    this.seq++;
    this.callId = null;
    this.card = null;
    this.box.replaceChildren();
  }

  render() {
    const c = this.card;
    if (!c) return;
    this.box.replaceChildren(el("div.scorecard", { dataset: { callId: c.call_id, score: String(c.score ?? "") } },
      this.head(c),
      el("ol.sc-answers", null, (c.answers || []).map((a) => this.answerNode(a))),
      (c.audit || []).length ? el("div.sc-audit", null,
        el("h4.sc-subtitle", { text: t("sc_audit") }),
        c.audit.map((o) => this.auditNode(o))) : null,
      (c.appeals || []).length ? el("div.sc-appeals", null,
        el("h4.sc-subtitle", { text: t("sc_appeals") }),
        c.appeals.map((ap) => appealNode(ap, this.labelOf(ap.question)))) : null));
  }

  labelOf(question) {
    const a = (this.card?.answers || []).find((x) => x.question === question);
    return questionName(question, a?.label);
  }

  head(c) {
    const failed = (c.failed_critical || []).map((q) => el("span.badge.bad.sc-failed", { dataset: { question: q }, text: `${t("sc_failed_critical")} · ${this.labelOf(q)}` }));
    return el("div.sc-head", null,
      el("span.sc-score-label", { text: t("sc_score") }),
      el("span.sc-score.mono", { dataset: { score: String(c.score ?? "") }, text: fmtScore(c.score) }),
      c.raw_score !== c.score ? el("span.sc-raw.mono", { text: `(${t("sc_raw")} ${fmtScore(c.raw_score)})` }) : null,
      c.auto_score !== c.score ? el("span.sc-auto-score.mono", { text: `${t("sc_auto_score")} ${fmtScore(c.auto_score)}` }) : null,
      failed,
      el("span.spacer"),
      el("span.sc-form.mono", { title: t("sc_form"), text: c.form || "" }));
  }

  answerNode(a) {
    const me = this.me;
    const canOverride = REVIEWERS.has(me.role);
    const canAppeal = me.role === "agent" && me.agent_id && me.agent_id === this.card.agent_id && !a.open_appeal;
    const ev = a.evidence;
    const node = el("li.sc-answer", { dataset: { question: a.question, answer: answerCode(a.answer), overridden: String(!!a.overridden), critical: String(!!a.critical) } },
      el("div.sc-row", null,
        el("span.sc-ans", { dataset: { answer: answerCode(a.answer) }, text: answerName(a.answer) }),
        el("span.sc-q", { text: questionName(a.question, a.label) }),
        a.critical ? el("span.sc-crit", { text: t("sc_critical") }) : null,
        el("span.spacer"),
        el("span.sc-meta.mono", { text: `${t("sc_weight", { w: a.weight })} · ${t("sc_confidence", { p: `${Math.round((a.confidence || 0) * 100)}%` })}` }),
        canOverride ? el("button.btn.small.sc-override-btn", { type: "button", text: t("sc_override"), onclick: () => this.toggleForm(node, a, "override") }) : null,
        canAppeal ? el("button.btn.small.sc-appeal-btn", { type: "button", text: t("sc_appeal"), onclick: () => this.toggleForm(node, a, "appeal") }) : null),
      a.overridden ? el("div.sc-auto", { text: t("sc_auto_was", { a: answerName(a.auto) }) }) : null,
      a.open_appeal ? el("div.sc-open-appeal", { text: t("sc_open_appeal") }) : null,
      a.why ? el("div.sc-why", { text: a.why }) : null,
      ev ? el("div.sc-evidence", { dataset: { startMs: String(ev.start_ms || 0), channel: ev.channel || "" } },
        el("button.sc-ts.mono", { type: "button", title: t("sc_evidence_seek"), text: fmtOffset(ev.start_ms), onclick: () => this.onSeek && this.onSeek(ev.start_ms || 0) }),
        el("span.sc-who", { text: channelName(ev.channel) + t("colon") }),
        el("span.sc-quote", { text: ev.quote || "" })) : null);
    return node;
  }

  toggleForm(node, a, kind) {
    const open = node.querySelector("form.sc-form");
    if (open) {
      open.remove();
      if (open.dataset.kind === kind) return;
    }
    const answers = [true, false, null];
    const current = answerCode(a.answer);
    // the default choice: the other of yes / no (what a reviewer or an agent disputing it usually means)
    const preset = a.answer === true ? "no" : "yes";
    const select = el("select.sc-answer-select", { name: "answer", "aria-label": t("sc_answer") },
      answers.filter((x) => kind === "override" || answerCode(x) !== current)
        .map((x) => el("option", { value: answerCode(x), text: answerName(x), selected: answerCode(x) === preset })));
    const text = el("textarea.sc-reason", { name: "reason", rows: "2", maxlength: "1000", required: true,
      placeholder: t(kind === "override" ? "sc_reason" : "sc_comment") });
    const error = el("div.sc-error", { role: "alert", hidden: true });
    const form = el("form.sc-form", { dataset: { kind } },
      el("label.field", null, el("span", { text: t("sc_answer") }), select),
      el("label.field.sc-reason-field", null, el("span", { text: t(kind === "override" ? "sc_reason" : "sc_comment") }), text),
      el("div.sc-form-buttons", null,
        el("button.btn.primary.small.sc-submit", { type: "submit", text: t("sc_submit") }),
        el("button.btn.small", { type: "button", text: t("sc_cancel"), onclick: () => form.remove() })),
      error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const reason = text.value.trim();
      if (!reason) {
        error.hidden = false;
        error.textContent = t("sc_reason_needed");
        return;
      }
      const value = { yes: true, no: false, na: null }[select.value];
      const submit = form.querySelector(".sc-submit");
      submit.disabled = true;
      try {
        const path = `/api/v1/calls/${encodeURIComponent(this.callId)}/scorecard/${kind === "override" ? "overrides" : "appeals"}`;
        const body = kind === "override" ? { question: a.question, answer: value, reason } : { question: a.question, answer: value, comment: reason };
        const res = await api(path, { method: "POST", body });
        if (res.scorecard) {
          this.card = res.scorecard;
          this.render();
        } else {
          await this.load(this.callId);
        }
        if (this.onChange) this.onChange(this.card);
      } catch (err) {
        submit.disabled = false;
        error.hidden = false;
        error.textContent = err instanceof ApiError ? err.detail || t("server_error", { status: err.status }) : String(err);
      }
    });
    node.append(form);
    text.focus();
  }

  auditNode(o) {
    return el("div.sc-audit-line", { dataset: { question: o.question, overrideId: o.override_id } },
      el("span.mono.sc-when", { text: fmtDateTime(o.at_ms) }),
      el("span.sc-by", { text: `${o.by} · ${roleName(o.role)}` }),
      el("span.sc-change", { text: t("sc_audit_line", { q: this.labelOf(o.question), old: answerName(o.old_answer), new: answerName(o.new_answer) }) }),
      el("span.sc-audit-reason", { text: o.reason || "" }));
  }
}

/** One appeal: question, status, the agent's comment, what they asked for, the reviewer's decision. */
export function appealNode(ap, label) {
  return el("div.sc-appeal", { dataset: { appealId: ap.appeal_id, status: ap.status, question: ap.question } },
    el("div.sc-row", null,
      el("span.badge.sc-appeal-status", { dataset: { status: ap.status }, text: t(`sc_appeal_${ap.status}`) }),
      el("span.sc-q", { text: label || ap.question }),
      el("span.sc-wanted", { text: t("sc_wanted", { a: answerName(ap.wanted) }) }),
      el("span.spacer"),
      el("span.mono.sc-when", { text: fmtDateTime(ap.created_at_ms) })),
    el("div.sc-comment", { text: `${ap.agent_id}${t("colon")}${ap.comment || ""}` }),
    ap.status !== "open" ? el("div.sc-decision", { text: `${ap.resolved_by}${t("colon")}${ap.reason || ""}` }) : null);
}
