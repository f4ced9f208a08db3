// Reports: GET /api/v1/reports/summary and /topics for a period and filters (state in the URL query string), drawn
// with Apache ECharts (vendored: /static/vendor/echarts). A click on a bar, a day or a topic opens QA search over those
// calls (/qa?since=&until=&intent=&queue=&agent=...). Every number comes from the API; nothing is computed here but
// the chart layout.
import {
  I18N, boot, t, el, api, onLangChange, intentName, categoryName, reasonName, getLang, reportError,
} from "/static/common.js";

// This page's strings, without overriding a shared one common.js already has.
function addStrings(table, strings) {
  for (const [k, v] of Object.entries(strings)) if (!(k in table)) table[k] = v;
}

addStrings(I18N.zh, {
  nav_reports: "报表", nav_scores: "质检评分", rp_show: "查看", rp_loading: "加载中…", rp_empty: "该时段没有数据",
  rp_volume: "每日来电量与一次解决率", rp_intents: "按业务（意图）：来电量、一次解决率、重复来电率", rp_mix: "业务构成趋势",
  rp_movers: "升降变化（与上一时段相比的占比变化）", rp_queues: "按队列", rp_agents: "按坐席", rp_hours: "按时段：来电量、平均处理时长、静默占比",
  rp_reasons: "未解决原因", rp_alerts: "各类告警率", rp_sentiment: "通话结束时客户情绪", rp_topics: "新兴话题（意图目录以外）",
  k_calls: "来电量", k_fcr: "一次解决率", k_repeat: "重复来电率", k_unresolved: "未解决率", k_aht: "平均处理时长",
  k_silence: "静默占比", k_sentiment: "情绪均值", k_qa: "质检均分", k_tickets: "工单", k_provisional: "近{days}天一解率为暂定",
  s_calls: "来电量", s_fcr: "一次解决率", s_repeat: "重复来电率", s_unresolved: "未解决率", s_aht: "平均处理时长（秒）",
  s_silence: "静默占比", s_change: "占比变化（百分点）", s_rate: "比例", s_topic_calls: "提及通话数",
  mood_negative: "负面", mood_neutral: "中性", mood_positive: "正面", rp_open_calls: "查看通话",
  rp_mover_up: "显著上升", rp_mover_down: "显著下降", rp_mover_none: "无显著变化",
});
addStrings(I18N.en, {
  nav_reports: "Reports", nav_scores: "Scores", rp_show: "Show", rp_loading: "Loading…", rp_empty: "No calls in this period",
  rp_volume: "Calls and first-contact resolution per day", rp_intents: "By intent: calls, FCR and repeat rate",
  rp_mix: "Intent mix over time", rp_movers: "Movers and shakers (share change vs the period before)", rp_queues: "By queue",
  rp_agents: "By agent", rp_hours: "By hour of day: calls, handle time and silence", rp_reasons: "Why calls stay unresolved",
  rp_alerts: "Alert rate by category", rp_sentiment: "Customer sentiment at the end of calls",
  rp_topics: "Emerging topics (outside the intent catalog)",
  k_calls: "Calls", k_fcr: "First-contact resolution", k_repeat: "Repeat calls", k_unresolved: "Unresolved", k_aht: "Avg handle time",
  k_silence: "Silence", k_sentiment: "Sentiment", k_qa: "QA score", k_tickets: "Tickets",
  k_provisional: "FCR of the last {days} days is provisional",
  s_calls: "Calls", s_fcr: "FCR", s_repeat: "Repeat rate", s_unresolved: "Unresolved", s_aht: "Avg handle time (s)",
  s_silence: "Silence share", s_change: "Share change (pp)", s_rate: "Rate", s_topic_calls: "Calls mentioning it",
  mood_negative: "Negative", mood_neutral: "Neutral", mood_positive: "Positive", rp_open_calls: "Open the calls",
  rp_mover_up: "Significant rise", rp_mover_down: "Significant fall", rp_mover_none: "No significant change",
});

const $ = (id) => document.getElementById(id);
const DAY_MS = 86400000;
const FIELDS = { since: "rp-since", until: "rp-until", queue: "rp-queue", intent: "rp-intent", agent: "rp-agent" };
const charts = new Map();   // name -> echarts instance
let report = null;
let topics = null;
let seq = 0;

boot(start);

function start() {
  $("rp-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    pushState();
    load();
  });
  window.addEventListener("popstate", () => { restore(); load(); });
  window.addEventListener("resize", () => { for (const c of charts.values()) c.resize(); });
  onLangChange(() => { if (report) render(); });
  restore();
  load();
}

// ---------------------------------------------------------------------------------------------
// URL <-> form. Dates are the report zone's calendar days ("To" included).
function isoDay(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

function restore() {
  const params = new URLSearchParams(location.search);
  const today = new Date();
  const weekAgo = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6);
  $("rp-since").value = params.get("since") || isoDay(weekAgo);
  $("rp-until").value = params.get("until") || isoDay(today);
  for (const name of ["queue", "intent", "agent"]) setSelect($(FIELDS[name]), params.get(name) || "");
}

function pushState() {
  const params = new URLSearchParams();
  for (const [name, id] of Object.entries(FIELDS)) if ($(id).value) params.set(name, $(id).value);
  const url = location.pathname + "?" + params.toString();
  if (url !== location.pathname + location.search) history.pushState(null, "", url);
}

function setSelect(select, value, values) {
  if (values) {
    select.replaceChildren(el("option", { value: "", text: t("any") }),
      ...values.map((v) => el("option", { value: v, text: select.id === "rp-intent" ? intentName(v) : (v || t("none_dash")) })));
  }
  if (value && ![...select.options].some((o) => o.value === value)) select.append(el("option", { value, text: value }));
  select.value = value;
}

function query() {
  const until = $("rp-until").value ? new Date($("rp-until").value + "T00:00:00") : null;
  const next = until ? isoDay(new Date(until.getFullYear(), until.getMonth(), until.getDate() + 1)) : "";
  return { since: $("rp-since").value, until: next, queue: $("rp-queue").value, intent: $("rp-intent").value,
           agent: $("rp-agent").value };
}

async function load() {
  const my = ++seq;
  const q = query();
  $("rp-status").textContent = t("rp_loading");
  document.body.dataset.loaded = "false";
  try {
    const data = await api("/api/v1/reports/summary", { query: q });
    if (my !== seq) return;
    report = data;
    topics = null;
    render();
    document.body.dataset.loaded = "true";
    const found = await api("/api/v1/reports/topics", { query: q });
    if (my !== seq) return;
    topics = found.topics || [];
    renderTopics();
    document.body.dataset.topics = "true";
  } catch (err) {
    if (my === seq) reportError(err);
  } finally {
    if (my === seq) $("rp-status").textContent = "";
  }
}

// ---------------------------------------------------------------------------------------------
// Drill-down: QA search over the calls behind a chart element.
function drill(extra) {
  const f = report.filters || {};
  const params = new URLSearchParams();
  params.set("since", String(extra.since ?? report.since_ms));
  params.set("until", String(extra.until ?? report.until_ms));
  for (const [k, v] of Object.entries({ queue: f.queue, intent: f.intent, agent: f.agent, ...extra })) {
    if (k === "since" || k === "until" || v === undefined || v === null || v === "") continue;
    params.set(k, String(v));
  }
  location.href = "/qa?" + params.toString();
}

const pct = (v) => (v === null || v === undefined ? null : Math.round(v * 1000) / 10);
const label = (v) => (v === "" || v === null || v === undefined ? t("none_dash") : String(v));

function chart(name, option, onClick, points) {
  const node = $("chart-" + name);
  node.dataset.points = String(points);
  node.dataset.empty = points ? "false" : "true";
  node.dataset.emptyText = t("rp_empty");
  let c = charts.get(name);
  if (!c) {
    c = echarts.init(node, null, { renderer: "canvas" });
    charts.set(name, c);
  }
  c.off("click");
  c.setOption({ animation: false, tooltip: { trigger: "axis" }, grid: { left: 56, right: 56, top: 36, bottom: 48 },
                legend: { top: 4 }, ...option }, true);
  if (onClick) c.on("click", onClick);
  return c;
}

function kpi(key, value, hint) {
  return el("div.kpi", { dataset: { kpi: key } }, el("span.kpi-value", { text: value ?? "–" }), el("span.kpi-label", { text: t(key) }),
            hint ? el("span.kpi-hint", { text: hint }) : null);
}

function render() {
  const r = report;
  const tot = r.totals;
  const fmtP = (v) => (v === null || v === undefined ? "–" : `${pct(v)}%`);
  $("rp-kpis").replaceChildren(
    kpi("k_calls", String(tot.calls)),
    kpi("k_fcr", fmtP(tot.fcr_rate), t("k_provisional", { days: r.fcr_window_days })),
    kpi("k_repeat", fmtP(tot.repeat_rate)), kpi("k_unresolved", fmtP(tot.unresolved_rate)),
    kpi("k_aht", tot.aht_s === null ? "–" : `${Math.round(tot.aht_s)} s`), kpi("k_silence", fmtP(tot.silence_ratio)),
    kpi("k_sentiment", tot.sentiment_avg === null ? "–" : tot.sentiment_avg.toFixed(2)),
    kpi("k_qa", tot.qa_avg === null ? "–" : String(tot.qa_avg)), kpi("k_tickets", String(tot.tickets)),
  );
  const dims = r.dimensions || { queues: [], intents: [], agents: [] };
  setSelect($("rp-queue"), $("rp-queue").value, dims.queues);
  setSelect($("rp-intent"), $("rp-intent").value, dims.intents);
  setSelect($("rp-agent"), $("rp-agent").value, dims.agents);

  const rateAxis = { type: "value", name: "%", max: 100, axisLabel: { formatter: "{value}%" } };
  // 1. calls and FCR per day
  const days = r.by_day;
  chart("volume", {
    xAxis: { type: "category", data: days.map((d) => d.date) },
    yAxis: [{ type: "value", name: t("s_calls") }, rateAxis],
    series: [
      { name: t("s_calls"), type: "bar", data: days.map((d) => d.calls) },
      { name: t("s_fcr"), type: "line", yAxisIndex: 1, data: days.map((d) => pct(d.fcr_rate)) },
      { name: t("s_repeat"), type: "line", yAxisIndex: 1, data: days.map((d) => pct(d.repeat_rate)) },
    ],
  }, (p) => { const d = days[p.dataIndex]; if (d) drill({ since: d.day, until: d.day + DAY_MS }); }, days.length);
  // 2. by intent
  const intents = r.by_intent;
  chart("intents", {
    xAxis: { type: "category", data: intents.map((x) => intentName(x.intent)), axisLabel: { interval: 0, rotate: 30 } },
    yAxis: [{ type: "value", name: t("s_calls") }, rateAxis],
    grid: { left: 56, right: 56, top: 36, bottom: 80 },
    series: [
      { name: t("s_calls"), type: "bar", data: intents.map((x) => x.calls) },
      { name: t("s_fcr"), type: "line", yAxisIndex: 1, data: intents.map((x) => pct(x.fcr_rate)) },
      { name: t("s_repeat"), type: "line", yAxisIndex: 1, data: intents.map((x) => pct(x.repeat_rate)) },
    ],
  }, (p) => { const x = intents[p.dataIndex]; if (x) drill({ intent: x.intent }); }, intents.length);
  // 3. intent mix over time (stacked calls per day)
  const mix = r.intent_mix || { days: [], intents: [], calls: {}, day_ms: [] };
  chart("mix", {
    xAxis: { type: "category", data: mix.days },
    yAxis: { type: "value", name: t("s_calls") },
    legend: { top: 4, type: "scroll" },
    grid: { left: 56, right: 24, top: 40, bottom: 48 },
    series: mix.intents.map((i) => ({ name: intentName(i), id: i, type: "bar", stack: "mix", data: mix.calls[i] })),
  }, (p) => {
    const day = mix.day_ms[p.dataIndex];
    if (day !== undefined) drill({ since: day, until: day + DAY_MS, intent: p.seriesId });
  }, mix.days.length * mix.intents.length);
  // 4. movers and shakers
  const movers = (r.movers || []).filter((m) => m.calls || m.previous_calls);
  const moverColor = (m) => (m.direction === "up" ? "#c62828" : m.direction === "down" ? "#1c7a43" : "#9aa5b4");
  chart("movers", {
    tooltip: { trigger: "item", formatter: (p) => { const m = movers[p.dataIndex];
      return `${intentName(m.intent)}<br>${m.previous_calls} → ${m.calls}<br>${m.change_pp > 0 ? "+" : ""}${m.change_pp} pp, z=${m.z}` +
        (m.q !== null ? `, q=${m.q.toFixed(4)}` : "") + `<br>${t(m.direction ? "rp_mover_" + m.direction : "rp_mover_none")}`; } },
    xAxis: { type: "value", name: t("s_change") },
    yAxis: { type: "category", data: movers.map((m) => intentName(m.intent)), inverse: true },
    grid: { left: 110, right: 40, top: 30, bottom: 40 },
    series: [{ name: t("s_change"), type: "bar", data: movers.map((m) => ({ value: m.change_pp, itemStyle: { color: moverColor(m) } })),
               label: { show: true, position: "right", formatter: (p) => (movers[p.dataIndex].direction === "up" ? "▲" : movers[p.dataIndex].direction === "down" ? "▼" : "") } }],
  }, (p) => { const m = movers[p.dataIndex]; if (m) drill({ intent: m.intent }); }, movers.length);
  // 5. by queue, 6. by agent
  for (const [name, rows, key] of [["queues", r.by_queue, "queue"], ["agents", r.by_agent.slice(0, 40), "agent"]]) {
    chart(name, {
      xAxis: { type: "category", data: rows.map((x) => label(x[key])), axisLabel: { interval: 0, rotate: rows.length > 8 ? 45 : 0 } },
      yAxis: [{ type: "value", name: t("s_calls") }, rateAxis],
      series: [
        { name: t("s_calls"), type: "bar", data: rows.map((x) => x.calls) },
        { name: t("s_fcr"), type: "line", yAxisIndex: 1, data: rows.map((x) => pct(x.fcr_rate)) },
        { name: t("s_unresolved"), type: "line", yAxisIndex: 1, data: rows.map((x) => pct(x.unresolved_rate)) },
      ],
    }, (p) => { const x = rows[p.dataIndex]; if (x) drill({ [key]: x[key] }); }, rows.length);
  }
  // 7. hour of day: calls, handle time, silence share
  const hours = r.by_hour;
  chart("hours", {
    xAxis: { type: "category", data: hours.map((h) => `${String(h.hour).padStart(2, "0")}:00`) },
    yAxis: [{ type: "value", name: t("s_calls") }, { type: "value", name: "s" }],
    series: [
      { name: t("s_calls"), type: "bar", data: hours.map((h) => h.calls) },
      { name: t("s_aht"), type: "line", yAxisIndex: 1, data: hours.map((h) => h.aht_s) },
      { name: t("s_silence"), type: "line", yAxisIndex: 1, data: hours.map((h) => pct(h.silence_ratio)) },
    ],
  }, null, hours.length);
  // 8. unresolved reasons, 9. alerts by category
  const reasons = r.reasons;
  chart("reasons", {
    tooltip: { trigger: "item" },
    xAxis: { type: "value", name: t("s_calls") },
    yAxis: { type: "category", data: reasons.map((x) => reasonName(x.reason)), inverse: true },
    grid: { left: 190, right: 30, top: 20, bottom: 40 },
    series: [{ name: t("s_calls"), type: "bar", data: reasons.map((x) => x.calls) }],
  }, () => drill({ flag: "unresolved" }), reasons.length);
  const alerts = r.alerts;
  chart("alerts", {
    tooltip: { trigger: "item" },
    xAxis: { type: "category", data: alerts.map((a) => categoryName(a.category)) },
    yAxis: { type: "value", name: "%" },
    series: [{ name: t("s_rate"), type: "bar", data: alerts.map((a) => pct(a.rate)) }],
  }, (p) => { const a = alerts[p.dataIndex]; if (a) drill({ alert: a.category }); }, alerts.length);
  // 10. sentiment per day (stacked shares)
  const moods = ["negative", "neutral", "positive"];
  const colors = { negative: "#c62828", neutral: "#9aa5b4", positive: "#1c7a43" };
  chart("sentiment", {
    xAxis: { type: "category", data: days.map((d) => d.date) },
    yAxis: { type: "value", name: t("s_calls") },
    series: moods.map((m) => ({ name: t("mood_" + m), type: "bar", stack: "mood", itemStyle: { color: colors[m] },
                                data: days.map((d) => d.sentiment[m]) })),
  }, (p) => { const d = days[p.dataIndex]; if (d) drill({ since: d.day, until: d.day + DAY_MS }); },
  days.reduce((n, d) => n + d.sentiment.negative + d.sentiment.neutral + d.sentiment.positive, 0) ? days.length : 0);
  if (topics) renderTopics();
}

function renderTopics() {
  const rows = topics || [];
  chart("topics", {
    tooltip: { trigger: "item" },
    xAxis: { type: "value", name: t("s_topic_calls") },
    yAxis: { type: "category", data: rows.map((x) => x.text), inverse: true },
    grid: { left: 170, right: 30, top: 20, bottom: 40 },
    series: [{ name: t("s_topic_calls"), type: "bar", data: rows.map((x) => x.calls) }],
  }, (p) => { const x = rows[p.dataIndex]; if (x) drill({ q: `"${x.text}"` }); }, rows.length);
  $("rp-topic-list").replaceChildren(...rows.map((x) => el("div.rp-topic", null,
    el("b", { text: x.text }), `${x.calls} (${x.previous_calls}) `,
    ...x.call_ids.map((id) => el("a", { href: `/qa?${new URLSearchParams({ q: `"${x.text}"`, since: report.since_ms, until: report.until_ms })}`, text: id })))));
}
