// Agent desktop: the agent's current call (/ws/v1/agent) and its live captions
// (/ws/v1/calls/{id}/captions?after=<last id>). Supervisors add ?agent_id=X to watch an agent's desk.
import {
  boot, t, el, onLangChange, intentName, categoryName, moodName, severityName, channelName, stateName, reasonName,
  fmtOffset, fmtDuration, fmtTime, fmtPercent, atBottom, ReconnectingSocket, ConnIndicator, showNotice, uttNode,
  previousCalls, alertText,
} from "/static/common.js";

const $ = (id) => document.getElementById(id);
const watchedAgent = new URLSearchParams(location.search).get("agent_id") || "";

let conn;                 // ConnIndicator over both sockets
let captionsSocket = null;

// Everything known about the call on screen; reset when the agent's current call changes.
let call = null;          // CallInfo from current_call
let lastId = "0";         // stream id of the last captions message: the resume point
let segments = new Map(); // segment_id -> {node, revision, final}
let alerts = new Map();   // alert_id -> AlertMsg (from the captions stream)
let intent = null;        // {id, score, name}
let sentiment = null;     // {label, score, trend}: the customer's running mood (SentimentUpdate)
let flag = null;          // {unresolved, final, reasons}
let ended = false;
let endedDurationMs = 0;
let repeatCount = 0;
let stickToBottom = true; // auto-scroll unless the agent scrolled up

// ---------------------------------------------------------------------------------------------
boot(start);

function start() {
  conn = new ConnIndicator($("conn"));
  if (watchedAgent) {
    $("watching").hidden = false;
    renderWatching();
  }
  const agentPath = "/ws/v1/agent" + (watchedAgent ? "?agent_id=" + encodeURIComponent(watchedAgent) : "");
  const agentSocket = new ReconnectingSocket(agentPath, { onMessage: onAgentMessage });
  conn.track(agentSocket);
  agentSocket.start();

  const box = $("captions");
  box.addEventListener("scroll", () => {
    stickToBottom = atBottom(box);
    if (stickToBottom) $("jump-latest").hidden = true;
  });
  // Banners (call ended, repeat caller) shrink the box: stay pinned to the newest line.
  new ResizeObserver(() => {
    if (stickToBottom) box.scrollTop = box.scrollHeight;
  }).observe(box);
  $("jump-latest").addEventListener("click", () => {
    stickToBottom = true;
    box.scrollTop = box.scrollHeight;
    $("jump-latest").hidden = true;
  });
  setInterval(renderDuration, 1000);
  onLangChange(renderAll);
  renderAll();
}

function renderWatching() {
  $("watching").textContent = t("watching_agent", { id: watchedAgent });
}

// ---------------------------------------------------------------------------------------------
// /ws/v1/agent: which call is current.
function onAgentMessage(msg) {
  if (msg.type !== "current_call") return; // ping and unknown types
  const next = msg.call || null;
  if (!next) {
    if (call) resetCall(null);
    renderAll();
    return;
  }
  if (!call || next.call_id !== call.call_id) resetCall(next);
  else call = next;
  // The board's CallInfo carries intent and flag too; take them unless the stream said more.
  if (next.intent) intent = { id: next.intent, score: next.intent_score, name: next.intent_name };
  if (next.sentiment) sentiment = { label: next.sentiment, score: next.sentiment_score };
  // CallInfo does not say whether its flag is final: a final one from the stream stays in force.
  if (next.unresolved !== null && next.unresolved !== undefined && !flag?.final) {
    flag = { unresolved: next.unresolved, final: false, reasons: next.flag_reasons || [] };
  }
  if (Array.isArray(next.repeat_of) && next.repeat_of.length) repeatCount = Math.max(repeatCount, next.repeat_of.length);
  if (next.state === "ended") ended = true;
  renderAll();
}

/** A different call (or none): forget the old transcript and follow the new call's captions. */
function resetCall(next) {
  if (captionsSocket) {
    conn.untrack(captionsSocket);
    captionsSocket.stop();
    captionsSocket = null;
  }
  call = next;
  lastId = "0";
  segments = new Map();
  alerts = new Map();
  intent = null;
  sentiment = null;
  flag = null;
  ended = false;
  endedDurationMs = 0;
  repeatCount = 0;
  stickToBottom = true;
  $("captions").replaceChildren();
  $("captions-note").hidden = true;
  $("jump-latest").hidden = true;
  if (!next) return;
  const callId = next.call_id;
  captionsSocket = new ReconnectingSocket(
    // A function: each reconnect resumes after the last id received, so nothing repeats or goes missing.
    () => `/ws/v1/calls/${encodeURIComponent(callId)}/captions?after=${encodeURIComponent(lastId)}`,
    {
      onMessage: onCaptionsMessage,
      onFatal: (kind, reason) => {
        const note = $("captions-note");
        note.hidden = false;
        const what = kind === "unknown" ? t("unknown_call") : kind === "forbidden" ? t("forbidden")
          : kind === "invalid" ? t("token_invalid") : "";
        note.textContent = t("captions_unavailable", { reason: [what, reason].filter(Boolean).join(" · ") });
      },
    },
  );
  conn.track(captionsSocket);
  captionsSocket.start();
}

// ---------------------------------------------------------------------------------------------
// /ws/v1/calls/{id}/captions: the call's events.
function onCaptionsMessage(msg) {
  if (msg.id) lastId = String(msg.id); // every message with an id moves the resume point
  if (call && msg.call_id && msg.call_id !== call.call_id) return;
  switch (msg.type) {
    case "transcript":
      onTranscript(msg);
      break;
    case "alert":
      onAlert(msg);
      break;
    case "intent": // the event's own type name (callscribe/events.py IntentUpdate)
    case "intent_update":
      intent = { id: msg.intent, score: msg.score, name: msg.name };
      renderIntent();
      break;
    case "sentiment": // SentimentUpdate: the customer's mood changed label
      sentiment = { label: msg.label, score: msg.score, trend: msg.trend };
      renderSentiment();
      break;
    case "call_flag":
      flag = { unresolved: !!msg.unresolved, final: !!msg.final, reasons: msg.reasons || [] };
      renderFlag();
      break;
    case "call_summary":
      flag = { unresolved: !!msg.unresolved, final: true, reasons: msg.reasons || [] };
      if (msg.intent) intent = { id: msg.intent, score: msg.intent_score, name: intent?.name };
      if (msg.sentiment) sentiment = { label: msg.sentiment, score: msg.sentiment_score };
      renderSentiment();
      if (Array.isArray(msg.repeat_of) && msg.repeat_of.length) repeatCount = Math.max(repeatCount, msg.repeat_of.length);
      renderIntent();
      renderFlag();
      renderRepeat();
      break;
    case "call_ended":
      ended = true;
      endedDurationMs = Number(msg.duration_ms) || 0;
      renderEnded();
      renderDuration();
      break;
    case "dtmf":
      onDtmf(msg);
      break;
    default:
      break; // ping, call_started and types this page does not know
  }
}

function onTranscript(m) {
  const isFinal = m.kind === "final" || m.is_final === true;
  const revision = Number(m.revision) || 0;
  const seen = segments.get(m.segment_id);
  if (seen) {
    if (seen.final && !isFinal) return;                 // a late partial never overwrites the final
    if (!isFinal && revision < seen.revision) return;   // out-of-order older partial
  }
  const box = $("captions");
  const follow = stickToBottom;
  if (isFinal && !m.text) {
    // An empty final retracts the partials of something that was not speech.
    if (seen) seen.node.remove();
    segments.delete(m.segment_id);
    return;
  }
  let node = seen?.node;
  if (!node) {
    node = uttNode(m);
    insertByTime(box, node, Number(m.start_ms) || 0);
  }
  node.classList.toggle("final", isFinal);
  node.classList.toggle("partial", !isFinal);
  node.querySelector(".text").textContent = m.text;
  segments.set(m.segment_id, { node, revision, final: isFinal });
  afterAppend(follow);
}

/** Keep the transcript in call-time order even when the two channels' events interleave. */
function insertByTime(box, node, startMs) {
  let ref = box.lastElementChild;
  while (ref && Number(ref.dataset.startMs || 0) > startMs) ref = ref.previousElementSibling;
  if (ref) ref.after(node);
  else box.prepend(node);
}

function afterAppend(follow) {
  const box = $("captions");
  if (follow) box.scrollTop = box.scrollHeight;
  else $("jump-latest").hidden = false;
}

function onDtmf(m) {
  const box = $("captions");
  const follow = stickToBottom;
  const node = el(
    "div.dtmf",
    { dataset: { channel: m.channel, startMs: String(m.at_ms || 0), digit: m.digit } },
    el("span.ts", { text: fmtOffset(m.at_ms) }),
    el("span.dtmf-text", { text: t("dtmf", { d: m.digit }) }),
  );
  insertByTime(box, node, Number(m.at_ms) || 0);
  afterAppend(follow);
}

function onAlert(a) {
  alerts.set(a.alert_id || a.id, a);
  if (a.category === "repeat_caller") repeatCount = Math.max(repeatCount, previousCalls(a.details).length || 1);
  renderAlerts();
  renderRepeat();
}

// ---------------------------------------------------------------------------------------------
// Rendering of the call card.
function renderAll() {
  const has = !!call;
  $("waiting").hidden = has;
  $("call-info").hidden = !has;
  $("call-card").dataset.state = has ? (ended ? "ended" : "live") : "none";
  // The big empty caption area says it too (CSS shows data-empty while it has no children).
  $("captions").dataset.empty = has ? "" : t("waiting_call");
  if (watchedAgent) renderWatching();
  // The caption channel labels are translated text: refresh them.
  for (const who of document.querySelectorAll("#captions .utt .who")) {
    who.textContent = channelName(who.closest(".utt").dataset.channel);
  }
  for (const d of document.querySelectorAll("#captions .dtmf")) {
    d.querySelector(".dtmf-text").textContent = t("dtmf", { d: d.dataset.digit });
  }
  if (!has) {
    $("repeat-note").hidden = true;
    $("call-ended").hidden = true;
    return;
  }
  $("call-id").textContent = call.call_id;
  $("call-queue").textContent = call.queue || t("none_dash");
  $("call-caller").textContent = call.caller || t("none_dash");
  $("call-start").textContent = fmtTime(call.started_at_ms);
  renderEnded();
  renderDuration();
  renderIntent();
  renderSentiment();
  renderFlag();
  renderAlerts();
  renderRepeat();
}

function renderEnded() {
  const isEnded = ended || call?.state === "ended";
  $("call-ended").hidden = !call || !isEnded;
  const state = isEnded ? "ended" : "live";
  const badge = $("call-state");
  badge.textContent = stateName(state);
  badge.dataset.state = state;
  $("call-card").dataset.state = call ? state : "none";
}

function renderDuration() {
  if (!call) return;
  let ms;
  if (ended || call.state === "ended") {
    ms = call.duration_ms || (call.ended_at_ms ? call.ended_at_ms - call.started_at_ms : endedDurationMs);
  } else {
    ms = Date.now() - (call.started_at_ms || Date.now());
  }
  $("call-duration").textContent = fmtDuration(ms);
}

function renderIntent() {
  const node = $("intent");
  if (!intent || !intent.id) {
    node.textContent = t("none_dash");
    node.dataset.intent = "";
    return;
  }
  node.dataset.intent = intent.id;
  node.replaceChildren(el("span.intent-name", { text: intentName(intent.id, intent.name) }));
  if (intent.score !== undefined && intent.score !== null) node.append(el("span.score", { text: fmtPercent(intent.score) }));
}

function renderSentiment() {
  const node = $("sentiment");
  node.dataset.mood = sentiment?.label || "";
  node.textContent = sentiment?.label ? moodName(sentiment.label) : t("none_dash");
  if (sentiment && sentiment.trend !== undefined && sentiment.trend !== null && Number(sentiment.trend) <= -0.4) {
    node.append(el("span.trend", { text: " ↓" }));
  }
}

function renderFlag() {
  const node = $("flag");
  const reasons = $("flag-reasons");
  if (!flag || flag.unresolved === null || flag.unresolved === undefined) {
    node.dataset.state = "none";
    node.textContent = t("flag_none");
    reasons.hidden = true;
    return;
  }
  node.dataset.state = flag.unresolved ? "unresolved" : "resolved";
  node.dataset.final = flag.final ? "true" : "false";
  node.replaceChildren(el("span.badge", { class: flag.unresolved ? "bad" : "good", text: t(flag.unresolved ? "flag_unresolved" : "flag_resolved") }));
  if (!flag.final) node.append(el("span.provisional", { text: t("flag_provisional") }));
  const list = (flag.reasons || []).filter(Boolean);
  reasons.hidden = !flag.unresolved || !list.length;
  reasons.replaceChildren(...list.map((r) => el("div.reason", { dataset: { reason: r }, text: reasonName(r) })));
}

function renderAlerts() {
  const strip = $("alert-strip");
  const items = [...alerts.values()].sort((a, b) => (a.start_ms || 0) - (b.start_ms || 0));
  const nodes = items.map((a) =>
    el(
      "div.alert-chip",
      { dataset: { alertId: a.alert_id || a.id, category: a.category, severity: a.severity } },
      el("div.chip-head", null,
        el("span.cat", { text: categoryName(a.category) }),
        el("span.sev", { text: severityName(a.severity) }),
        // Alerts not tied to speech (repeat caller) have no time in the call.
        a.start_ms || a.end_ms ? el("span.ts", { text: fmtOffset(a.start_ms) }) : null),
      alertText(a) ? el("div.quote", { class: alertText(a) === a.quote ? null : "derived", title: a.quote || null, text: alertText(a) }) : null,
    ),
  );
  // Categories the board knows of but whose alert event has not come through the stream (yet).
  const streamed = new Set(items.map((a) => a.category));
  for (const c of call?.alerts || []) {
    if (!streamed.has(c)) nodes.push(el("div.alert-chip", { dataset: { category: c } }, el("div.chip-head", null, el("span.cat", { text: categoryName(c) }))));
  }
  if (!nodes.length) nodes.push(el("div.empty", { text: t("no_alerts") }));
  strip.replaceChildren(...nodes);
}

function renderRepeat() {
  const note = $("repeat-note");
  const hasRepeatAlert = [...alerts.values()].some((a) => a.category === "repeat_caller");
  const fromCall = Array.isArray(call?.repeat_of) && call.repeat_of.length > 0;
  note.hidden = !call || !(hasRepeatAlert || fromCall || repeatCount > 0);
  note.textContent = t("repeat_note", { n: repeatCount || call?.repeat_of?.length || 1 });
}

// Surface unexpected failures instead of a silent dead page.
window.addEventListener("unhandledrejection", (ev) => showNotice("error", String(ev.reason)));
