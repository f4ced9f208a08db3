// Supervisor wallboard: /ws/v1/supervisor gives a snapshot, then incremental messages.
// A reconnect (any drop, or 1013 when this client fell behind) gets a fresh snapshot that
// replaces the whole state, so nothing is duplicated.
import {
  boot, t, el, onLangChange, intentName, intentList, categoryName, moodName, severityName, channelName, stateName,
  reasonName, ruleName, fmtDuration, fmtTime, fmtHM, fmtAge, fmtOffset, api, getToken, ReconnectingSocket,
  ConnIndicator, ApiError, alertText, fillList,
} from "/static/common.js";

const $ = (id) => document.getElementById(id);
const MAX_ALERTS = 200;
const FLASH_MS = 5000;

// Board state, replaced wholesale by each snapshot.
let calls = new Map();      // call_id -> CallInfo
let alerts = [];            // AlertMsg, newest first
let surges = [];            // Surge, newest first
let callbacks = new Map();  // call_id -> Callback (insertion order = oldest first)
let series = { bucket_s: 300, buckets: [] };
const fresh = new Set();    // alert_id / surge_id that arrived live (not in a snapshot): they flash

boot(start);

function start() {
  const conn = new ConnIndicator($("conn"));
  const socket = new ReconnectingSocket("/ws/v1/supervisor", { onMessage });
  conn.track(socket);
  socket.start();
  initMute();
  onLangChange(renderAll);
  setInterval(tick, 1000);
  // The chart is drawn in pixels of its box: redraw when the box changes size.
  new ResizeObserver(() => renderChart()).observe($("intent-chart"));
  renderAll();
}

// ---------------------------------------------------------------------------------------------
function onMessage(msg) {
  switch (msg.type) {
    case "snapshot":
      applySnapshot(msg);
      break;
    case "call":
      if (msg.call?.call_id) calls.set(msg.call.call_id, msg.call);
      renderCalls();
      renderCounters();
      break;
    case "call_removed":
      calls.delete(msg.call_id);
      renderCalls();
      renderCounters();
      break;
    case "alert":
      if (msg.alert) addAlert(msg.alert);
      break;
    case "surge":
      if (msg.surge) addSurge(msg.surge);
      break;
    case "callback":
      if (msg.callback?.call_id) {
        callbacks.set(msg.callback.call_id, msg.callback);
        renderCallbacks();
        renderCounters();
      }
      break;
    case "callback_done":
      removeCallback(msg.call_id);
      break;
    case "intent_series":
      series = { bucket_s: msg.bucket_s, buckets: msg.buckets || [] };
      renderChart();
      break;
    default:
      break; // ping and unknown types
  }
}

function applySnapshot(s) {
  calls = new Map((s.calls || []).map((c) => [c.call_id, c]));
  alerts = (s.alerts || []).slice(0, MAX_ALERTS);
  surges = (s.surges || []).slice();
  callbacks = new Map(
    (s.callbacks || []).slice().sort((a, b) => (a.emitted_at_ms || 0) - (b.emitted_at_ms || 0)).map((c) => [c.call_id, c]),
  );
  series = s.intent_series || { bucket_s: 300, buckets: [] };
  fresh.clear();
  renderAll();
}

function addAlert(a) {
  const key = alertKey(a);
  alerts = [a, ...alerts.filter((x) => alertKey(x) !== key)].slice(0, MAX_ALERTS);
  // The board will send the call's new CallInfo too; until then show the badge already.
  const c = calls.get(a.call_id);
  if (c && !(c.alerts || []).includes(a.category)) c.alerts = [...(c.alerts || []), a.category];
  markFresh(key);
  beep(a.severity);
  prependAlert(a);
  renderCalls();
  renderCounters();
}

function addSurge(s) {
  surges = [s, ...surges.filter((x) => x.surge_id !== s.surge_id)];
  markFresh(s.surge_id);
  beep("high");
  renderSurges();
}

/** Flash an item for FLASH_MS (class "new"), then let it settle. */
function markFresh(key) {
  fresh.add(key);
  setTimeout(() => {
    fresh.delete(key);
    for (const node of document.querySelectorAll(".new")) {
      const id = node.dataset.alertId || node.dataset.surgeId;
      if (id === key) node.classList.remove("new");
    }
  }, FLASH_MS);
}

const alertKey = (a) => a.alert_id || a.id;

function removeCallback(callId) {
  callbacks.delete(callId);
  renderCallbacks();
  renderCounters();
}

// ---------------------------------------------------------------------------------------------
// Rendering.
function renderAll() {
  renderCounters();
  renderSurges();
  renderCalls();
  renderAlerts();
  renderCallbacks();
  renderChart();
  renderMute();
}

function renderCounters() {
  const live = [...calls.values()].filter((c) => c.state === "live").length;
  const hourAgo = Date.now() - 3600 * 1000;
  const recent = alerts.filter((a) => (a.emitted_at_ms || 0) >= hourAgo).length;
  $("count-live").textContent = String(live);
  $("count-alerts").textContent = String(recent);
  $("count-callbacks").textContent = String(callbacks.size);
}

/** Live calls first, each group by start time (oldest first: the longest calls lead). */
function sortedCalls() {
  return [...calls.values()].sort((a, b) => {
    const la = a.state === "live" ? 0 : 1;
    const lb = b.state === "live" ? 0 : 1;
    return la - lb || (a.started_at_ms || 0) - (b.started_at_ms || 0);
  });
}

function callDurationMs(c) {
  if (c.state === "live") return Date.now() - (c.started_at_ms || Date.now());
  return c.duration_ms || (c.ended_at_ms ? c.ended_at_ms - c.started_at_ms : 0);
}

function renderCalls() {
  const rows = sortedCalls().map(callRow);
  $("calls").tBodies[0].replaceChildren(...rows);
  $("calls-empty").hidden = rows.length > 0;
}

function callRow(c) {
  const listen = el("a.listen", { href: "/agent?agent_id=" + encodeURIComponent(c.agent_id || ""), target: "_blank", rel: "noopener", text: t("listen") });
  // A new tab does not inherit sessionStorage: hand the token over in the fragment, which the agent
  // page reads and removes (it is never sent to the server).
  listen.addEventListener("click", (ev) => {
    ev.preventDefault();
    window.open(listen.href + "#token=" + encodeURIComponent(getToken()), "_blank", "noopener");
  });
  const flag = c.unresolved === true
    ? el("span.badge.bad.unresolved", { text: t("flag_unresolved"), title: (c.flag_reasons || []).map(reasonName).join("\n") })
    : c.unresolved === false ? el("span.badge.good.resolved", { text: t("flag_resolved") }) : null;
  return el(
    "tr",
    { dataset: { callId: c.call_id, state: c.state } },
    el("td.c-id.mono", { text: c.call_id }),
    el("td.c-agent", { text: c.agent_id || t("none_dash") }),
    el("td.c-queue", { text: c.queue || t("none_dash") }),
    el("td.c-intent", { dataset: { intent: c.intent || "" }, text: c.intent ? intentName(c.intent, c.intent_name) : t("none_dash") }),
    el("td.c-sentiment", null, c.sentiment
      ? el("span.badge.mood", { dataset: { mood: c.sentiment }, text: moodName(c.sentiment) }) : t("none_dash")),
    el("td.c-state", null,
      el("span.badge.state", { dataset: { state: c.state }, text: stateName(c.state) }),
      el("span.dur.mono", { text: fmtDuration(callDurationMs(c)) })),
    el("td.c-alerts", null, (c.alerts || []).map((cat) => el("span.badge.cat", { dataset: { category: cat }, text: categoryName(cat) }))),
    el("td.c-flag", null, flag),
    el("td.c-listen", null, c.agent_id ? listen : null),
  );
}

function renderAlerts() {
  fillList($("alerts"), alerts, alertNode, "no_alerts_feed");
}

/** Put one live alert on top without rebuilding the feed (other alerts keep their flash running). */
function prependAlert(a) {
  const box = $("alerts");
  const key = alertKey(a);
  for (const node of [...box.children]) {
    if (!node.classList.contains("alert") || node.dataset.alertId === key) node.remove();
  }
  box.prepend(alertNode(a));
  while (box.children.length > MAX_ALERTS) box.lastElementChild.remove();
}

function alertNode(a) {
  const key = alertKey(a);
  return el(
    "div.alert",
    { class: fresh.has(key) ? "new" : null, dataset: { alertId: key, severity: a.severity || "", category: a.category || "", callId: a.call_id } },
    el("div.alert-head", null,
      el("span.sev-dot", { title: severityName(a.severity) }),
      el("span.cat", { text: categoryName(a.category) }),
      el("span.sev", { text: severityName(a.severity) }),
      el("span.spacer"),
      el("span.time.mono", { text: fmtTime(a.emitted_at_ms) })),
    el("div.alert-meta", null,
      el("span.mono", { text: a.call_id }),
      a.agent_id ? el("span", { text: `${t("agent")} ${a.agent_id}` }) : null,
      a.channel ? el("span", { text: channelName(a.channel) }) : null,
      a.start_ms || a.end_ms ? el("span.mono", { text: fmtOffset(a.start_ms) }) : null),
    alertText(a) ? el("div.quote", { class: alertText(a) === a.quote ? null : "derived", title: a.quote || null, text: alertText(a) }) : null,
  );
}

function renderSurges() {
  const box = $("surges");
  const now = Date.now();
  const nodes = surges.slice(0, 6).map((s) => {
    const topic = s.topic_kind === "intent" ? intentName(s.topic) : ruleName(s.topic);
    const windowText = t("surge_window_min", { n: Math.round((s.window_s || 0) / 60) });
    // A surge is news for about its own window; older ones stay listed but dimmed.
    const stale = now - (s.emitted_at_ms || 0) > (s.window_s || 600) * 1000;
    return el(
      "div.surge",
      { class: [fresh.has(s.surge_id) ? "new" : "", stale ? "stale" : ""].filter(Boolean).join(" ") || null,
        dataset: { surgeId: s.surge_id, topicKind: s.topic_kind, topic: s.topic } },
      el("div.surge-head", null,
        el("span.surge-icon", { text: "▲" }),
        el("span.surge-topic", { text: topic }),
        el("span.surge-ratio", { text: `×${Number(s.ratio || 0).toFixed(1)}` })),
      el("div.surge-line", { text: t("surge_line", { count: s.count, window: windowText, baseline: Number(s.baseline || 0).toFixed(1) }) }),
      el("div.surge-time.mono", { text: fmtTime(s.emitted_at_ms) }),
    );
  });
  if (!nodes.length) nodes.push(el("div.empty.surges-empty", { text: t("no_surges") }));
  box.replaceChildren(...nodes);
}

function renderCallbacks() {
  fillList($("callbacks"), [...callbacks.values()], callbackNode, "no_callbacks");
}

function callbackNode(cb) {
  const quote = (cb.quotes || [])[0];
  const done = el("button.btn.small.done", { type: "button", text: t("done") });
  const error = el("div.cb-error", { hidden: true });
  done.addEventListener("click", () => markDone(cb.call_id, done, error));
  return el(
    "div.callback",
    { dataset: { callId: cb.call_id } },
    el("div.cb-head", null,
      el("span.mono.cb-id", { text: cb.call_id }),
      el("span.mono.cb-caller", { text: cb.caller || "" }),
      el("span.spacer"),
      el("span.cb-age", { dataset: { since: String(cb.emitted_at_ms || 0) }, text: fmtAge(Date.now() - (cb.emitted_at_ms || Date.now())) }),
      done),
    el("div.cb-reasons", null,
      cb.intent ? el("span.cb-intent", { dataset: { intent: cb.intent }, text: intentName(cb.intent) }) : null,
      (cb.reasons || []).map((r) => el("span.reason", { dataset: { reason: r }, text: reasonName(r) }))),
    quote ? el("div.quote", null, el("span.q-who", { text: channelName(quote.channel) + t("colon") }), quote.text) : null,
    error,
  );
}

async function markDone(callId, button, error) {
  button.disabled = true;
  try {
    await api(`/api/v1/callbacks/${encodeURIComponent(callId)}/done`, { method: "POST" });
    removeCallback(callId);
  } catch (err) {
    button.disabled = false;
    error.hidden = false;
    error.textContent = t("done_failed", { msg: err instanceof ApiError ? err.detail || err.status : String(err) });
  }
}

/** Once a second: live durations, callback ages, the last-hour alert count, stale surges. */
let tickCount = 0;
function tick() {
  tickCount += 1;
  for (const row of $("calls").tBodies[0].rows) {
    const c = calls.get(row.dataset.callId);
    if (c && c.state === "live") row.querySelector(".dur").textContent = fmtDuration(callDurationMs(c));
  }
  for (const age of document.querySelectorAll("#callbacks .cb-age")) {
    age.textContent = fmtAge(Date.now() - Number(age.dataset.since || Date.now()));
  }
  renderCounters();
  if (surges.length && tickCount % 30 === 0) renderSurges(); // surges age into 'stale' slowly
}

// ---------------------------------------------------------------------------------------------
// Intent chart: stacked bars in hand-drawn SVG.
const SVG_NS = "http://www.w3.org/2000/svg";
const INTENT_COLOURS = {
  billing_dispute: "#e15759",
  data_plan: "#4e79a7",
  roaming: "#76b7b2",
  broadband_outage: "#f28e2b",
  number_porting: "#59a14f",
  cancel_service: "#b07aa1",
  package_change: "#edc948",
  sim_device: "#9c755f",
  payment: "#ff9da7",
  account_security: "#17becf",
  complaint: "#8f2d56",
  other: "#bab0ac",
  unknown: "#9e9e9e",
};
const EXTRA_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#ff7f0e", "#393b79"];

/** A fixed colour per intent id: the catalog ones by name, others by a hash of the id. */
function intentColour(id) {
  if (INTENT_COLOURS[id]) return INTENT_COLOURS[id];
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return EXTRA_COLOURS[h % EXTRA_COLOURS.length];
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) if (c) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/** Intent ids in the series, in catalog order, unknown ids after, "unknown" last. */
function seriesIntents(buckets) {
  const present = new Set();
  for (const b of buckets) for (const [id, n] of Object.entries(b.counts || {})) if (n > 0) present.add(id);
  const order = intentList().map((i) => i.id);
  const known = order.filter((id) => present.has(id));
  const extra = [...present].filter((id) => !order.includes(id) && id !== "unknown").sort();
  return [...known, ...extra, ...(present.has("unknown") ? ["unknown"] : [])];
}

/** y axis: a step of 1, 2 or 5 times a power of ten giving at most 5 intervals, and the top. */
function niceScale(maxValue) {
  const max = Math.max(1, maxValue);
  let step = 1;
  for (let p = 1; ; p *= 10) {
    const found = [1, 2, 5].map((m) => m * p).find((s) => Math.ceil(max / s) <= 5);
    if (found) {
      step = found;
      break;
    }
  }
  return { step, top: step * Math.ceil(max / step) };
}

function renderChart() {
  const box = $("intent-chart");
  const buckets = series.buckets || [];
  const ids = seriesIntents(buckets);
  if (!buckets.length || !ids.length) {
    box.replaceChildren(el("div.empty", { text: t("no_data") }));
    return;
  }
  const legend = el("div.legend", null, ids.map((id) =>
    el("span.legend-item", { dataset: { intent: id } },
      el("span.swatch", { style: `background:${intentColour(id)}` }),
      intentName(id))));
  const plot = el("div.chart-plot");
  box.replaceChildren(plot, legend);

  const width = Math.max(200, plot.clientWidth);
  const height = Math.max(80, plot.clientHeight);
  const m = { left: 30, right: 6, top: 8, bottom: 20 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const totals = buckets.map((b) => ids.reduce((s, id) => s + (b.counts?.[id] || 0), 0));
  const { step, top: yMax } = niceScale(Math.max(...totals));
  const y = (v) => m.top + h - (v / yMax) * h;
  const slot = w / buckets.length;
  const barW = Math.max(2, Math.min(48, slot * 0.7));

  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart-svg" });
  // y grid and labels
  for (let v = 0; v <= yMax; v += step) {
    root.append(svg("line", { x1: m.left, x2: width - m.right, y1: y(v), y2: y(v), class: v ? "grid" : "axis" }));
    root.append(svg("text", { x: m.left - 4, y: y(v) + 4, "text-anchor": "end", class: "tick" }, v));
  }
  // x labels: as many as fit without overlapping (about 44 px each)
  const every = Math.max(1, Math.ceil(44 / slot));
  buckets.forEach((b, i) => {
    const cx = m.left + slot * i + slot / 2;
    let acc = 0;
    for (const id of ids) {
      const n = b.counts?.[id] || 0;
      if (!n) continue;
      const rect = svg("rect", { x: cx - barW / 2, y: y(acc + n), width: barW, height: Math.max(0.5, y(acc) - y(acc + n)), fill: intentColour(id), "data-intent": id, "data-count": n });
      rect.append(svg("title", {}, `${fmtHM(b.t_ms)} ${intentName(id)}: ${n}`));
      root.append(rect);
      acc += n;
    }
    if (i % every === 0) root.append(svg("text", { x: cx, y: height - 5, "text-anchor": "middle", class: "tick" }, fmtHM(b.t_ms)));
  });
  plot.append(root);
}

// ---------------------------------------------------------------------------------------------
// Sound: a short beep per new alert. Browsers block audio until the user interacts; we try, and
// resume the context on the first click. Never throws.
const MUTE_KEY = "callscribe.mute";
let audioCtx = null;
let muted = false;

function initMute() {
  try {
    muted = localStorage.getItem(MUTE_KEY) === "1";
  } catch { /* default: sound on */ }
  $("mute").addEventListener("click", () => {
    muted = !muted;
    try {
      localStorage.setItem(MUTE_KEY, muted ? "1" : "0");
    } catch { /* not persisted */ }
    renderMute();
  });
  document.addEventListener("click", unlockAudio, { once: true });
  renderMute();
}

function renderMute() {
  const b = $("mute");
  b.setAttribute("aria-pressed", muted ? "true" : "false");
  b.dataset.muted = muted ? "true" : "false";
  b.textContent = muted ? t("unmute") : t("mute");
}

function unlockAudio() {
  try {
    audioCtx = audioCtx || new AudioContext();
    if (audioCtx.state === "suspended") audioCtx.resume().catch(() => {});
  } catch { /* no WebAudio: silent wallboard */ }
}

function beep(severity) {
  if (muted) return;
  // Before any click the autoplay policy blocks audio anyway; creating a context then only warns.
  if (!audioCtx && navigator.userActivation && !navigator.userActivation.hasBeenActive) return;
  try {
    audioCtx = audioCtx || new AudioContext();
    if (audioCtx.state === "suspended") {
      audioCtx.resume().catch(() => {});
      return; // blocked by the autoplay policy until the first click
    }
    const now = audioCtx.currentTime;
    const osc = audioCtx.createOscillator();
    const gain = audioCtx.createGain();
    osc.type = "sine";
    osc.frequency.value = severity === "high" ? 988 : 740;
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(0.2, now + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.18);
    osc.connect(gain).connect(audioCtx.destination);
    osc.start(now);
    osc.stop(now + 0.2);
  } catch { /* audio unavailable: the flash is enough */ }
}
