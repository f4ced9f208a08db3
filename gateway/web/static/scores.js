// The scores page. Agents: their own calls' scorecards (open one to read the evidence and appeal an answer) and
// their appeals. Reviewers (qa, supervisor, admin): agent scorecards over a period, the calibration of the
// automatic answers against QA's overrides, the open appeals to accept or reject, and every scorecard with the
// score / answer / critical filters. Data: /api/v1/scorecards, /api/v1/appeals, /api/v1/reports/agent_scores,
// /api/v1/reports/calibration (docs/qa.md); the numbers are the server's, this page only lays them out.
import {
  I18N, boot, t, el, api, ApiError, onLangChange, fmtDateTime, fmtPercent, reportError, toLocalInput,
} from "/static/common.js";
import { REVIEWERS, ScorecardView, answerName, appealNode, fmtScore, questionName } from "/static/scorecard.js";

Object.assign(I18N.zh, {
  sp_show: "查看",
  sp_agents: "坐席评分",
  sp_calibration: "校准：自动判定与人工改判",
  sp_open_appeals: "待处理申诉",
  sp_cards: "通话评分",
  sp_my_cards: "我的评分",
  sp_my_appeals: "我的申诉",
  sp_score_min: "最低分",
  sp_score_max: "最高分",
  sp_answer_no: "判定为否的项",
  sp_no_critical: "无否决项未通过",
  sp_critical: "否决项",
  sp_total: "共 {n} 通",
  sp_col_agent: "坐席",
  sp_col_calls: "通话数",
  sp_col_avg: "平均分",
  sp_col_failed: "否决未过",
  sp_col_overrides: "改判",
  sp_col_rates: "各项通过率",
  sp_col_question: "评分项",
  sp_col_auto: "自动判定（是/否/不适用）",
  sp_col_overridden: "被改判",
  sp_col_rate: "改判率",
  sp_col_yes_no: "是→否",
  sp_col_no_yes: "否→是",
  sp_col_other: "其他",
  sp_reviewed: "{n} 通中有 {r} 通经人工复核",
  sp_accept: "采纳",
  sp_reject: "驳回",
  sp_decision_reason: "处理理由",
  sp_none: "暂无数据",
  sp_no_appeals: "没有待处理的申诉",
});
Object.assign(I18N.en, {
  sp_show: "Show",
  sp_agents: "Agent scorecards",
  sp_calibration: "Calibration: automatic answers against QA",
  sp_open_appeals: "Open appeals",
  sp_cards: "Scorecards",
  sp_my_cards: "My scores",
  sp_my_appeals: "My appeals",
  sp_score_min: "Score from",
  sp_score_max: "Score to",
  sp_answer_no: "Answered no",
  sp_no_critical: "No critical failed",
  sp_critical: "Critical questions",
  sp_total: "{n} calls",
  sp_col_agent: "Agent",
  sp_col_calls: "Calls",
  sp_col_avg: "Average",
  sp_col_failed: "Critical failed",
  sp_col_overrides: "Overrides",
  sp_col_rates: "Pass rate per question",
  sp_col_question: "Question",
  sp_col_auto: "Automatic (yes/no/n.a.)",
  sp_col_overridden: "Overridden",
  sp_col_rate: "Override rate",
  sp_col_yes_no: "yes→no",
  sp_col_no_yes: "no→yes",
  sp_col_other: "other",
  sp_reviewed: "{r} of {n} calls reviewed by QA",
  sp_accept: "Accept",
  sp_reject: "Reject",
  sp_decision_reason: "Reason for the decision",
  sp_none: "Nothing yet",
  sp_no_appeals: "No open appeals",
});

const $ = (id) => document.getElementById(id);
const DAY_MS = 86_400_000;
let me = null;
let reviewer = false;
let labels = {};          // question id -> {zh, en}, from the reports and the scorecards seen
let reports = null;       // {agents, calibration} on screen, re-rendered on a language switch
let cards = null;         // the scorecard list on screen
let appeals = [];         // the open appeals (reviewers) or my appeals (agents)
const open = new Map();   // call id -> its ScorecardView, for the rows opened

boot(start);

function start(info) {
  me = info;
  reviewer = REVIEWERS.has(me.role);
  for (const id of ["agents-panel", "calibration-panel", "appeals-panel", "p-agent-field"]) $(id).hidden = !reviewer;
  $("my-appeals-panel").hidden = reviewer;
  $("cards-title").textContent = t(reviewer ? "sp_cards" : "sp_my_cards");
  // the last 30 days up to tomorrow, as local dates (the inputs are local; toISOString would be UTC)
  $("p-since").value = toLocalInput(Date.now() - 30 * DAY_MS).slice(0, 10);
  $("p-until").value = toLocalInput(Date.now() + DAY_MS).slice(0, 10);
  $("period").addEventListener("submit", (ev) => {
    ev.preventDefault();
    refresh();
  });
  $("card-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadCards();
  });
  onLangChange(() => {
    $("cards-title").textContent = t(reviewer ? "sp_cards" : "sp_my_cards");
    render();
  });
  refresh();
}

function period() {
  const day = (v) => (v ? String(Date.parse(v + "T00:00:00")) : "");
  return { since: day($("p-since").value), until: day($("p-until").value), agent: reviewer ? $("p-agent").value.trim() : "" };
}

async function refresh() {
  try {
    await Promise.all([reviewer ? loadReports() : loadLabels(), loadAppeals(), loadCards()]);
  } catch (err) {
    reportError(err);
  }
}

async function loadReports() {
  const p = period();
  const [agents, calibration] = await Promise.all([
    api("/api/v1/reports/agent_scores", { query: p }),
    api("/api/v1/reports/calibration", { query: { since: p.since, until: p.until } }),
  ]);
  Object.assign(labels, agents.labels || {}, calibration.labels || {});
  reports = { agents, calibration };
  fillQuestionFilter();
  render();
}

/** Agents: the question texts of their own scorecards (for the filter), from their own agent report. */
async function loadLabels() {
  const mine = await api("/api/v1/reports/agent_scores", { query: period() });
  Object.assign(labels, mine.labels || {});
  fillQuestionFilter();
}

async function loadAppeals() {
  const data = await api("/api/v1/appeals", { query: reviewer ? { status: "open" } : {} });
  appeals = data.appeals || [];
  renderAppeals();
}

async function loadCards() {
  const p = period();
  const data = await api("/api/v1/scorecards", { query: {
    ...p, score_min: $("f-min").value, score_max: $("f-max").value, answer_no: $("f-no").value,
    failed_critical: $("f-crit").value, limit: 100,
  } });
  cards = data;
  open.clear();
  renderCards();
}

function label(q) {
  return questionName(q, labels[q]);
}

function fillQuestionFilter() {
  const select = $("f-no");
  const value = select.value;
  select.replaceChildren(el("option", { value: "", text: t("any") }),
    ...Object.keys(labels).sort().map((q) => el("option", { value: q, text: label(q) })));
  select.value = value;
}

function render() {
  fillQuestionFilter();
  renderReports();
  renderAppeals();
  renderCards();
}

// ---------------------------------------------------------------------------------------------
// Reviewers: agent scorecards and calibration.
function table(cls, head, rows) {
  return el(`table.sc-table.${cls}`, null,
    el("thead", null, el("tr", null, head.map((h) => el("th", { text: h })))),
    el("tbody", null, rows));
}

function renderReports() {
  if (!reports) return;
  const agents = reports.agents.agents || [];
  $("agents").replaceChildren(agents.length ? table("agents-table",
    [t("sp_col_agent"), t("sp_col_calls"), t("sp_col_avg"), t("sp_col_failed"), t("sp_col_overrides"), t("sp_col_rates")],
    agents.map((a) => el("tr", { dataset: { agentId: a.agent_id } },
      el("td.mono", { text: a.agent_id || t("none_dash") }),
      el("td.num", { text: String(a.calls) }),
      el("td.num.avg", { text: fmtScore(a.avg_score) }),
      el("td.num", { text: String(a.failed_critical_calls) }),
      el("td.num", { text: String(a.overrides) }),
      el("td", null, el("div.rates", null, Object.entries(a.questions || {}).filter(([, c]) => c.pass_rate !== null)
        .map(([q, c]) => el("span.rate", { dataset: { question: q, low: String(c.pass_rate < 0.8) }, title: `${c.yes} / ${c.yes + c.no}`, text: `${label(q)} ${fmtPercent(c.pass_rate)}` }))))))) :
    el("div.empty", { text: t("sp_none") }));

  const cal = reports.calibration;
  const questions = cal.questions || [];
  $("calibration").replaceChildren(
    el("div.sc-reviewed", { text: t("sp_reviewed", { n: cal.calls, r: cal.reviewed_calls }) }),
    questions.length ? table("calibration-table",
      [t("sp_col_question"), t("sp_col_auto"), t("sp_col_overridden"), t("sp_col_rate"), t("sp_col_yes_no"), t("sp_col_no_yes"), t("sp_col_other")],
      questions.map((q) => {
        const other = q.overridden - q.yes_to_no - q.no_to_yes;
        return el("tr", { class: q.overridden ? "sc-hot" : null, dataset: { question: q.question } },
          el("td", { text: label(q.question) }),
          el("td.num", { text: `${q.auto.yes}/${q.auto.no}/${q.auto.na}` }),
          el("td.num.overridden", { text: String(q.overridden) }),
          el("td.num", { text: q.override_rate === null ? t("none_dash") : fmtPercent(q.override_rate) }),
          el("td.num.yes-no", { text: String(q.yes_to_no) }),
          el("td.num.no-yes", { text: String(q.no_to_yes) }),
          el("td.num", { title: Object.entries(q.directions).map(([d, n]) => `${d}: ${n}`).join(", "), text: String(other) }));
      })) : el("div.empty", { text: t("sp_none") }));
}

// ---------------------------------------------------------------------------------------------
// Appeals: reviewers decide the open ones; agents follow theirs.
function renderAppeals() {
  const box = reviewer ? $("appeal-queue") : $("my-appeals");
  if (!appeals.length) {
    box.replaceChildren(el("div.empty", { text: t(reviewer ? "sp_no_appeals" : "sp_none") }));
    return;
  }
  box.replaceChildren(...appeals.map((ap) => {
    const node = appealNode(ap, label(ap.question));
    node.querySelector(".sc-row").prepend(el("span.mono.sc-call", { text: ap.call_id }));
    if (reviewer && ap.status === "open") node.append(decisionForm(ap));
    return node;
  }));
}

function decisionForm(ap) {
  const reason = el("input.sp-reason", { type: "text", maxlength: "1000", placeholder: t("sp_decision_reason"), "aria-label": t("sp_decision_reason") });
  const error = el("span.sc-error", { hidden: true });
  const decide = async (decision, button) => {
    if (!reason.value.trim()) {
      error.hidden = false;
      error.textContent = t("sc_reason_needed");
      return;
    }
    button.disabled = true;
    try {
      await api(`/api/v1/appeals/${encodeURIComponent(ap.appeal_id)}/decision`, { method: "POST", body: { decision, reason: reason.value.trim() } });
      await refresh();
    } catch (err) {
      button.disabled = false;
      error.hidden = false;
      error.textContent = err instanceof ApiError ? err.detail || t("server_error", { status: err.status }) : String(err);
    }
  };
  const accept = el("button.btn.small.primary.sp-accept", { type: "button", text: `${t("sp_accept")} (${answerName(ap.wanted)})` });
  const reject = el("button.btn.small.sp-reject", { type: "button", text: t("sp_reject") });
  accept.addEventListener("click", () => decide("accept", accept));
  reject.addEventListener("click", () => decide("reject", reject));
  return el("div.appeal-actions", null, reason, accept, reject, error);
}

// ---------------------------------------------------------------------------------------------
// Scorecards: one row per call; a click opens its scorecard (evidence, override or appeal forms).
function renderCards() {
  if (!cards) return;
  const rows = cards.scorecards || [];
  $("cards-total").textContent = t("sp_total", { n: cards.total ?? rows.length });
  if (!rows.length) {
    $("cards").replaceChildren(el("div.empty", { text: t("sp_none") }));
    return;
  }
  $("cards").replaceChildren(...rows.flatMap((c) => {
    const detail = el("div.card-detail", { hidden: !open.has(c.call_id) });
    const row = el("div.card-row", { dataset: { callId: c.call_id }, tabindex: "0", role: "button", "aria-expanded": String(open.has(c.call_id)) },
      el("span.mono", { text: fmtDateTime(c.started_at_ms) }),
      el("span.mono.hit-call", { text: c.call_id }),
      reviewer ? el("span", { text: `${t("agent")} ${c.agent_id || t("none_dash")}` }) : null,
      el("span.sc-score.mono", { dataset: { score: String(c.score ?? "") }, text: fmtScore(c.score) }),
      ...(c.failed_critical || []).map((q) => el("span.badge.bad", { text: `${t("sc_failed_critical")} · ${label(q)}` })),
      c.overrides ? el("span.badge", { text: `${t("sp_col_overrides")} ${c.overrides}` }) : null);
    const toggle = () => {
      if (open.has(c.call_id)) {
        open.delete(c.call_id);
        detail.hidden = true;
        row.setAttribute("aria-expanded", "false");
        return;
      }
      const view = new ScorecardView(detail, me, { onChange: () => (reviewer ? loadReports().catch(reportError) : loadAppeals().catch(reportError)) });
      open.set(c.call_id, view);
      detail.hidden = false;
      row.setAttribute("aria-expanded", "true");
      view.load(c.call_id).then(() => {
        for (const a of view.card?.answers || []) labels[a.question] = a.label;
      });
    };
    row.addEventListener("click", toggle);
    row.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        toggle();
      }
    });
    const view = open.get(c.call_id);
    if (view) {
      view.box = detail;
      view.render();
    }
    return [row, detail];
  }));
}

window.addEventListener("unhandledrejection", (ev) => reportError(ev.reason));
