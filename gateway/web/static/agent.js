// Agent desktop: the agent's current call (/ws/v1/agent) and its live captions
// (/ws/v1/calls/{id}/captions?after=<last id>). Supervisors add ?agent_id=X to watch an agent's desk.
import {
  boot, t, el, onLangChange, intentName, categoryName, moodName, severityName, channelName, stateName, reasonName,
  fmtOffset, fmtDuration, fmtTime, fmtPercent, atBottom, ReconnectingSocket, ConnIndicator, showNotice, uttNode,
  previousCalls, alertText, api, getToken, getLang, fmtDateTime, ApiError, fillList, fieldLabel, ticketStatusName,
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
// Agent assist (the captions stream's assist_* events; docs/assist.md), rendered as the server sends it.
let scenario = null;        // the latest ScenarioCard (assist_scenario)
let stepsDone = new Map();  // scenario id -> (step id -> StepDone)
let stepTitles = new Map(); // step id -> title, as StepDone / StepPrompt name it
let prompts = new Map();    // scenario|step|reason -> StepPrompt still on screen
let dismissedPrompts = new Set();
let offers = new Map();     // offer id -> Offer with status "made"
let knowledge = new Map();  // card id -> KnowledgeCard, in arrival order
let history = null;         // the caller_history message of /ws/v1/agent
let ticket = null;          // {draft, source} while the ticket form is open
let shown = new Set();      // telemetry: cards already reported as shown

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
  wireAssist();
  onLangChange(renderAll);
  renderAll();
}

function renderWatching() {
  $("watching").textContent = t("watching_agent", { id: watchedAgent });
}

// ---------------------------------------------------------------------------------------------
// /ws/v1/agent: which call is current.
function onAgentMessage(msg) {
  if (msg.type === "caller_history") {
    onHistory(msg);
    return;
  }
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
  resetAssist();
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
    case "assist_scenario":
    case "assist_step_done":
    case "assist_step_prompt":
    case "assist_knowledge":
    case "assist_offer":
    case "assist_ticket":
    case "ticket":
    case "ticket_status":
      onAssist(msg);
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
    renderAssist();
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
  renderAssist();
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

// ---------------------------------------------------------------------------------------------
// Agent assist (docs/assist.md): the scenario guide, prompts, knowledge, offers, the ticket and the
// caller's history. Every card is the server's; this only renders them and reports what the agent
// did with them (POST /api/v1/assist/events, fire and forget).
let searchResults = null;  // the knowledge search box's last answer (cards) or null
let dismissedOffers = new Set();
let dismissedCards = new Set();
let usedCards = new Set();
let ticketResult = null;   // {ticket_id, ...} after a submit (or a `ticket` event of the call)

function wireAssist() {
  $("kb-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    searchKnowledge();
  });
  $("ticket-btn").addEventListener("click", requestDraft);
  $("ticket-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitTicket();
  });
  $("ticket-cancel").addEventListener("click", () => {
    if (ticket && call) track("dismissed", "ticket", ticket.draft.type || call.call_id);
    ticket = null;
    renderTicket();
  });
  $("scenario-panel").addEventListener("click", () => {
    if (scenario) track("clicked", "scenario", scenario.scenario);
  });
}

function resetAssist() {
  scenario = null;
  stepsDone = new Map();
  stepTitles = new Map();
  prompts = new Map();
  dismissedPrompts = new Set();
  offers = new Map();
  dismissedOffers = new Set();
  knowledge = new Map();
  dismissedCards = new Set();
  usedCards = new Set();
  history = null;
  ticket = null;
  ticketResult = null;
  shown = new Set();
  setTicketNote("");
}

/** One assist event of the call's stream (callscribe/events.py: ScenarioCard, StepDone, ...). */
function onAssist(m) {
  switch (m.type) {
    case "assist_scenario":
      scenario = m;
      break;
    case "assist_step_done": {
      if (m.title) stepTitles.set(m.step, m.title);
      if (!stepsDone.has(m.scenario)) stepsDone.set(m.scenario, new Map());
      stepsDone.get(m.scenario).set(m.step, m);
      break;
    }
    case "assist_step_prompt": {
      if (m.title) stepTitles.set(m.step, m.title);
      const key = `${m.scenario}|${m.step}|${m.reason}`;
      if (!dismissedPrompts.has(key)) prompts.set(key, m);
      break;
    }
    case "assist_knowledge":
      knowledge.set(m.card, m);
      break;
    case "assist_offer":
      if (m.status === "made") offers.set(m.offer, m); // a suppressed offer is never shown
      break;
    case "assist_ticket":
      // The call ended unresolved: open the draft unless the agent is editing or has submitted one.
      if (!ticket && !ticketResult) openTicket(m, "end");
      break;
    case "ticket": // a ticket submitted for this call (here, or replayed after a reload): the form is done
      ticketResult = m;
      ticket = null;
      break;
    case "ticket_status": // the ticketing system reported on this call's ticket (gateway/assist/status.py)
      if (ticketResult && (ticketResult.ticket_id || ticketResult.id) === m.ticket_id) {
        ticketResult = { ...ticketResult, status: m.status, status_note: m.note || "",
          external_id: m.external_id || ticketResult.external_id || "" };
      }
      break;
    default:
      return;
  }
  renderAssist();
}

function renderAssist() {
  renderScenario();
  renderPrompts();
  renderOffers();
  renderKnowledge();
  renderHistory();
  renderTicket();
}

/** A step's name: the card's own titles (ScenarioCard.titles, step id -> title), else as a step event named it
 * ("" when unknown: a card written before titles were added carries ids and lines only). */
function stepName(id) {
  return scenario?.titles?.[id] || stepTitles.get(id) || "";
}

function renderScenario() {
  const panel = $("scenario-panel");
  if (!scenario) {
    panel.hidden = true;
    delete panel.dataset.scenario;
    $("scenario-steps").replaceChildren();
    return;
  }
  panel.hidden = false;
  panel.dataset.scenario = scenario.scenario;
  panel.dataset.seq = String(scenario.seq ?? "");
  panel.dataset.intent = scenario.intent || "";
  $("scenario-title").textContent = scenario.title || intentName(scenario.intent);
  const done = stepsDone.get(scenario.scenario) || new Map();
  const required = new Set(scenario.required || []);
  const steps = scenario.steps || [];
  const lines = scenario.lines || {};
  $("scenario-steps").replaceChildren(...steps.map((id, i) => {
    const d = done.get(id);
    return el(
      "li.step",
      { dataset: { step: id, done: d ? "true" : "false", required: required.has(id) ? "true" : "false" } },
      el("span.step-check", { text: d ? "✓" : String(i + 1), "aria-label": d ? t("step_done") : null }),
      el("div.step-body", null,
        el("div.step-head", null,
          stepName(id) || !lines[id] ? el("span.step-name", { text: stepName(id) || id }) : null,
          required.has(id) ? el("span.step-req", { text: t("step_required") }) : null),
        lines[id] ? el("div.step-line", { title: t("say_line"), text: lines[id] }) : null,
        d?.quote ? el("div.step-quote", { text: d.quote }) : null),
    );
  }));
  $("scenario-progress").textContent = t("steps_progress", { done: steps.filter((s) => done.has(s)).length, total: steps.length });
  track("shown", "scenario", scenario.scenario);
}

function promptText(p) {
  const step = p.title || stepName(p.step) || p.step;
  const reason = String(p.reason || "");
  if (reason.startsWith("before:")) return t("prompt_before", { step });
  if (reason === "account_access") return t("prompt_account_access", { step });
  if (reason === "closing") return t("prompt_closing", { step });
  return t("prompt_other", { step });
}

function renderPrompts() {
  const box = $("assist-prompts");
  const items = [...prompts.entries()];
  box.replaceChildren(...items.map(([key, p]) => {
    const stepDone = stepsDone.get(p.scenario)?.has(p.step);
    return el(
      "div.assist-prompt",
      { dataset: { step: p.step, reason: p.reason, scenario: p.scenario, done: stepDone ? "true" : "false" } },
      el("span.prompt-icon", { text: stepDone ? "✓" : "!" }),
      el("div.prompt-body", null,
        el("div.prompt-text", { text: promptText(p) }),
        p.line ? el("div.prompt-line", { text: p.line }) : null),
      el("button.prompt-dismiss", {
        type: "button", title: t("dismiss"), "aria-label": t("dismiss"), text: "×",
        onclick: () => {
          prompts.delete(key);
          dismissedPrompts.add(key);
          track("dismissed", "step_prompt", p.step);
          renderPrompts();
        },
      }),
    );
  }));
  for (const [, p] of items) track("shown", "step_prompt", p.step);
}

function renderOffers() {
  const items = [...offers.values()].filter((o) => !dismissedOffers.has(o.offer));
  $("offers").replaceChildren(...items.map((o) =>
    el(
      "section.assist-card.offer-card",
      { dataset: { offer: o.offer, moment: o.moment || "", used: usedCards.has("offer|" + o.offer) ? "true" : "false" } },
      el("div.assist-head", null,
        el("span.assist-kind", { text: t("offer_kind") }),
        el("span.offer-title", { text: o.title || o.offer })),
      o.line ? el("div.offer-line", { text: o.line }) : null,
      el("div.card-actions", null,
        el("button.btn.small.primary.offer-use", {
          type: "button", text: usedCards.has("offer|" + o.offer) ? t("offer_used") : t("offer_use"),
          disabled: usedCards.has("offer|" + o.offer),
          onclick: () => {
            usedCards.add("offer|" + o.offer);
            track("used", "offer", o.offer);
            renderOffers();
          },
        }),
        el("button.btn.small.offer-dismiss", {
          type: "button", text: t("dismiss"),
          onclick: () => {
            dismissedOffers.add(o.offer);
            track("dismissed", "offer", o.offer);
            renderOffers();
          },
        })),
    )));
  for (const o of items) track("shown", "offer", o.offer);
}

/** One answer card (live from the stream, or a search result). */
function kbCard(c, origin) {
  const id = c.card;
  const used = usedCards.has("knowledge|" + id);
  return el(
    "div.kb-card",
    {
      dataset: { card: id, origin, used: used ? "true" : "false" },
      onclick: (ev) => {
        if (ev.target.closest("button")) return;
        ev.currentTarget.classList.toggle("open");
        track("clicked", "knowledge", id);
      },
    },
    el("div.kb-head", null,
      el("span.kb-title", { text: c.title || id }),
      el("span.kb-score.mono", { title: t("score"), text: t("kb_score", { score: fmtPercent(c.score) }) }),
      origin === "live"
        ? el("button.kb-dismiss", {
          type: "button", title: t("dismiss"), "aria-label": t("dismiss"), text: "×",
          onclick: () => {
            dismissedCards.add(id);
            track("dismissed", "knowledge", id);
            renderKnowledge();
          },
        })
        : null),
    origin === "live" && c.question ? el("div.kb-question", { text: t("kb_asked", { q: c.question }) }) : null,
    el("div.kb-answer", { text: c.answer || "" }),
    el("div.kb-foot", null,
      el("span.kb-source.mono", { text: t("kb_source", { source: c.source || t("none_dash") }) }),
      el("button.btn.small.kb-use", {
        type: "button", text: used ? t("kb_used") : t("kb_use"), disabled: used,
        onclick: () => {
          usedCards.add("knowledge|" + id);
          track("used", "knowledge", id);
          renderKnowledge();
        },
      })),
  );
}

function renderKnowledge() {
  const live = [...knowledge.values()].filter((c) => !dismissedCards.has(c.card)).reverse(); // newest first
  $("kb-live").replaceChildren(...live.map((c) => kbCard(c, "live")));
  for (const c of live) track("shown", "knowledge", c.card);
  const box = $("kb-results");
  if (searchResults === null) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  box.hidden = false;
  fillList(box, searchResults, (c) => kbCard(c, "search"), "kb_none");
  for (const c of searchResults) track("shown", "knowledge", c.card);
}

/** The language of the answers to search: the call's, else the page's. */
function kbLang() {
  const lang = String(call?.language || getLang() || "zh");
  return lang.startsWith("en") ? "en" : "zh";
}

async function searchKnowledge() {
  const q = $("kb-q").value.trim();
  const box = $("kb-results");
  if (!q) {
    searchResults = null;
    renderKnowledge();
    return;
  }
  box.hidden = false;
  box.replaceChildren(el("div.empty", { text: t("loading") }));
  try {
    const res = await api("/api/v1/assist/knowledge", { query: { q, lang: kbLang() } });
    searchResults = Array.isArray(res?.cards) ? res.cards : [];
  } catch (err) {
    searchResults = null;
    box.replaceChildren(el("div.empty.error", { text: errText(err) }));
    return;
  }
  renderKnowledge();
}

// --- caller history (caller_history on /ws/v1/agent; gateway/assist/history.py) --------------------------
// {call_id, caller, window_days, calls: [{call_id, started_at_ms, intent, resolved, alerts, tickets}],
//  last: {call_id, unresolved, reasons, quotes, open_tickets} | null, banner: {repeat_caller, previous_calls, ...}}
function onHistory(msg) {
  if (msg.call_id && call && msg.call_id !== call.call_id) return; // another call's
  history = msg;
  renderHistory();
}

function ticketLabel(tk) {
  if (typeof tk === "string") return tk;
  return [tk.ticket_id || tk.id, tk.status ? ticketStatusName(tk.status) : "",
    tk.external_id ? t("ticket_external", { id: tk.external_id }) : ""].filter(Boolean).join(" · ");
}

/** Each ticket with its status as the ticketing system last reported it, and that report's note. */
function ticketChips(list) {
  return list.flatMap((tk) => {
    const title = [tk.title, tk.status_at_ms ? t("ticket_status_at", { when: fmtDateTime(tk.status_at_ms) }) : ""]
      .filter(Boolean).join(" · ");
    return [
      el("span.hc-ticket.mono", { dataset: { ticketId: tk.ticket_id || "", status: tk.status || "" }, title: title || null,
        text: ticketLabel(tk) }),
      tk.status_note ? el("span.hc-ticket-note", { dataset: { ticketId: tk.ticket_id || "" }, text: tk.status_note }) : null,
    ];
  });
}

function renderHistory() {
  const panel = $("history-panel");
  if (!call || !history) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  const calls = Array.isArray(history.calls) ? history.calls : [];
  const banner = history.banner || {};
  const n = banner.previous_calls ?? calls.length;
  const repeat = !!banner.repeat_caller || n > 0;
  panel.dataset.repeat = banner.repeat_caller ? "true" : "false";
  const node = $("history-banner");
  node.hidden = !repeat;
  node.textContent = t("history_banner", { n, days: history.window_days || 30 })
    + (banner.last_unresolved ? t("history_last_unresolved") : "")
    + (banner.open_tickets ? t("history_open_tickets", { n: banner.open_tickets }) : "");
  $("history-title").textContent = t("history_title", { days: history.window_days || 30 });
  renderLast(history.last);
  const list = $("history-list");
  if (!calls.length) {
    list.replaceChildren(el("li.empty", { text: t("history_none", { days: history.window_days || 30 }) }));
  } else {
    list.replaceChildren(...calls.map((c) => {
      const resolved = typeof c.resolved === "boolean" ? c.resolved : null;
      const tickets = Array.isArray(c.tickets) ? c.tickets : [];
      const cats = Array.isArray(c.alerts) ? c.alerts : [];
      return el(
        "li.history-call",
        { dataset: { callId: c.call_id || "", resolved: resolved === null ? "" : String(resolved) } },
        el("div.hc-head", null,
          el("span.hc-date.mono", { text: fmtDateTime(c.started_at_ms) }),
          el("span.hc-intent", { text: c.intent ? intentName(c.intent) : t("none_dash") }),
          resolved === null ? null
            : el("span.badge", { class: resolved ? "good" : "bad", text: t(resolved ? "history_resolved" : "history_unresolved") })),
        tickets.length ? el("div.hc-tickets", null, el("span.hc-label", { text: t("history_tickets") }), ...ticketChips(tickets)) : null,
        cats.length ? el("div.hc-alerts", null, el("span.hc-label", { text: t("history_alerts") }),
          ...cats.map((cat) => el("span.badge.cat", { dataset: { category: cat }, text: categoryName(cat) }))) : null,
      );
    }));
  }
  track("shown", "history", call.call_id);
}

/** What was left pending last time: the last call's unresolved reasons, its flag's quotes, its open tickets. */
function renderLast(last) {
  const box = $("history-promise");
  const reasons = last?.unresolved ? (last.reasons || []) : [];
  const quotes = last?.unresolved ? (last.quotes || []) : [];
  const open = last?.open_tickets || [];
  box.hidden = !last || (!reasons.length && !quotes.length && !open.length);
  if (box.hidden) {
    box.replaceChildren();
    return;
  }
  box.dataset.callId = last.call_id || "";
  const nodes = [
    el("div.hp-title", { text: t("history_last", { when: fmtDateTime(last.started_at_ms) }) }),
    ...reasons.map((r) => el("div.hp-reason", { dataset: { reason: r }, text: reasonName(r) })),
    ...quotes.map((q) => el("div.hp-quote", { dataset: { channel: q.channel || "" } },
      el("span.who", { text: channelName(q.channel) }), el("span.q", { text: q.text || "" }))),
  ];
  if (open.length) nodes.push(el("div.hc-tickets", null, el("span.hc-label", { text: t("history_open") }), ...ticketChips(open)));
  box.replaceChildren(...nodes);
}

// --- ticket: draft (click or call end), edit, submit ------------------------------------------
function callPath(suffix) {
  return `/api/v1/calls/${encodeURIComponent(call.call_id)}/${suffix}`;
}

async function requestDraft() {
  if (!call) return;
  const callId = call.call_id;
  setTicketNote(t("ticket_drafting"));
  track("clicked", "ticket", callId);
  let res;
  try {
    res = await api(callPath("ticket/draft"), { method: "POST" });
  } catch (err) {
    setTicketNote(t("ticket_draft_failed", { msg: errText(err) }), "error");
    return;
  }
  if (!call || call.call_id !== callId) return;
  setTicketNote("");
  openTicket(res?.draft || res || {}, "click");
}

/** The draft as the form edits it: TicketDraft events say `ticket_type`, the API's JSON `type`. */
function draftOf(d) {
  return {
    type: d.ticket_type || (d.type && !String(d.type).startsWith("assist_") ? d.type : ""),
    priority: d.priority || "medium",
    fields: d.fields && typeof d.fields === "object" ? d.fields : {},
    labels: d.labels && typeof d.labels === "object" ? d.labels : {}, // field -> {zh, en} (the packs' labels)
    missing: Array.isArray(d.missing) ? d.missing : [],
    summary: Array.isArray(d.summary) ? d.summary : d.summary ? [String(d.summary)] : [],
    title: d.title || "",
    subtype: d.subtype || "",
  };
}

function openTicket(raw, source) {
  const draft = draftOf(raw);
  ticket = { draft, source };
  ticketResult = null;
  $("ticket-type").value = draft.type;
  $("ticket-priority").value = draft.priority;
  const names = [...Object.keys(draft.fields), ...draft.missing.filter((n) => !(n in draft.fields))];
  $("ticket-fields").replaceChildren(...names.map((name) => {
    const missing = draft.missing.includes(name) && !draft.fields[name];
    return el("label.tf-row.tf-field", { dataset: { field: name, missing: missing ? "true" : "false" } },
      el("span.tf-label", { text: fieldLabel(draft.labels, name), title: name }),
      el("input", { name, value: String(draft.fields[name] ?? ""), maxlength: "1000", placeholder: missing ? t("ticket_missing") : null }));
  }));
  $("ticket-summary").value = draft.summary.join("\n");
  $("ticket-source").textContent = t(source === "end" ? "ticket_from_end" : "ticket_from_click") + (draft.title ? ` · ${draft.title}` : "");
  $("ticket-form").dataset.source = source;
  renderTicket();
  $("ticket-panel").scrollIntoView({ block: "nearest" });
  track("shown", "ticket", draft.type || call?.call_id);
}

async function submitTicket() {
  if (!call || !ticket) return;
  const callId = call.call_id;
  const fields = {};
  for (const input of $("ticket-fields").querySelectorAll("input[name]")) fields[input.name] = input.value;
  const body = {
    type: $("ticket-type").value.trim(),
    priority: $("ticket-priority").value,
    fields,
    summary: $("ticket-summary").value.split("\n").map((s) => s.trim()).filter(Boolean),
    title: ticket.draft.title,
    subtype: ticket.draft.subtype,
  };
  const button = $("ticket-submit");
  button.disabled = true;
  setTicketNote(t("ticket_submitting"));
  try {
    const res = await api(callPath("tickets"), { method: "POST", body });
    if (!call || call.call_id !== callId) return;
    track("used", "ticket", body.type || callId);
    ticketResult = res?.ticket || res || {};
    ticket = null;
    setTicketNote("");
  } catch (err) {
    setTicketNote(t("ticket_failed", { msg: errText(err) }), "error");
  } finally {
    button.disabled = false;
  }
  renderTicket();
}

function setTicketNote(text, kind = "") {
  const note = $("ticket-note");
  note.hidden = !text;
  note.textContent = text;
  note.dataset.kind = kind;
}

function renderTicket() {
  $("ticket-btn").disabled = !call;
  $("ticket-form").hidden = !call || !ticket;
  if (ticket) { // the field labels follow a language switch without touching what the agent typed
    for (const label of $("ticket-fields").querySelectorAll(".tf-field")) {
      const span = label.querySelector(".tf-label");
      if (span) span.textContent = fieldLabel(ticket.draft.labels, label.dataset.field);
    }
  }
  const result = $("ticket-result");
  result.hidden = !call || !ticketResult;
  if (ticketResult) {
    const id = ticketResult.ticket_id || ticketResult.id || "";
    result.dataset.ticketId = id;
    result.dataset.status = ticketResult.status || "";
    const status = ticketResult.status ? ticketStatusName(ticketResult.status) : "";
    result.textContent = t("ticket_submitted", { id: [id, status, ticketResult.external_id].filter(Boolean).join(" · ") })
      + (ticketResult.status_note ? ` (${ticketResult.status_note})` : "");
  }
}

function errText(err) {
  if (err instanceof ApiError) return err.status ? `${err.status}${err.detail ? " " + err.detail : ""}` : err.detail;
  return String(err);
}

// --- telemetry: what the agent did with a card (fire and forget; supervisors watching report nothing)
function track(action, kind, cardId) {
  if (!call || watchedAgent) return;
  const key = `${kind}|${cardId}`;
  if (action === "shown") {
    if (shown.has(key)) return;
    shown.add(key);
  }
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = "Bearer " + token;
  fetch("/api/v1/assist/events", {
    method: "POST", headers, keepalive: true,
    body: JSON.stringify({ call_id: call.call_id, card_kind: kind, card_id: String(cardId), action }),
  }).catch(() => {});
}

// Surface unexpected failures instead of a silent dead page.
window.addEventListener("unhandledrejection", (ev) => showNotice("error", String(ev.reason)));
