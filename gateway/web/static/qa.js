// QA search: GET /api/v1/search with the form's filters (state in the URL query string, so a search
// can be shared and survives a reload), and a call detail panel with the call's recording played beside its
// transcript (replay.js; a transcript-only replay when the call has no recording).
import {
  boot, t, el, api, ApiError, onLangChange, intentList, intentName, categoryName, severityName, channelName,
  reasonName, fmtDateTime, fmtTime, fmtDuration, fmtOffset, fmtPercent, toLocalInput, fromLocalInput,
  uttNode, reportError, alertText, fillList, fieldLabel, ticketStatusName,
} from "/static/common.js";
import { ScorecardView } from "/static/scorecard.js";
import { AudioReplay } from "/static/replay.js";

const $ = (id) => document.getElementById(id);
const LIMIT = 20;
// URL param -> form control. since/until travel as epoch ms (what the API takes; zone-independent).
const FIELDS = {
  q: "q", since: "f-since", until: "f-until", agent: "f-agent", queue: "f-queue",
  intent: "f-intent", flag: "f-flag", alert: "f-alert", channel: "f-channel",
};

let lastPage = null;     // the SearchPage on screen (re-rendered on a language switch)
let offset = 0;
let searchSeq = 0;       // drops answers of searches that were overtaken by a newer one
let detail = null;       // {data, segmentId} of the open call
let detailSeq = 0;
let scorecard = null;    // the open call's QA scorecard (scorecard.js)
let replay = null;       // the open call's recording (replay.js)

boot(start);

function start(me) {
  scorecard = new ScorecardView($("scorecard"), me, { onSeek: seekToLine });
  fillIntentSelect();
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    offset = 0;
    pushState();
    runSearch();
  });
  $("clear").addEventListener("click", () => {
    $("search-form").reset();
    offset = 0;
    lastPage = null;
    pushState();
    $("results").replaceChildren(el("div.empty", { text: t("search_hint") }));
    renderPaging();
  });
  $("prev").addEventListener("click", () => page(-1));
  $("next").addEventListener("click", () => page(1));
  $("close-detail").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !$("call-detail").hidden) closeDetail();
  });
  window.addEventListener("popstate", () => {
    restoreFromUrl();
    runSearchIfAny();
  });
  initPlayer();
  onLangChange(() => {
    fillIntentSelect();
    if (lastPage) renderResults(lastPage);
    else renderPaging();
    if (detail) renderDetail();
    scorecard.render();
  });
  restoreFromUrl();
  runSearchIfAny();
}

function fillIntentSelect() {
  const select = $("f-intent");
  const value = select.value;
  select.replaceChildren(
    el("option", { value: "", text: t("any") }),
    ...intentList().map((it) => el("option", { value: it.id, text: intentName(it.id) })),
  );
  // A value from the URL that the catalog lacks still round-trips.
  if (value && !intentList().some((it) => it.id === value)) select.append(el("option", { value, text: value }));
  select.value = value;
}

// ---------------------------------------------------------------------------------------------
// URL <-> form.
function formParams() {
  const params = {};
  for (const [name, id] of Object.entries(FIELDS)) {
    const v = $(id).value.trim();
    if (!v) continue;
    if (name === "since" || name === "until") {
      const ms = fromLocalInput(v);
      if (ms !== null) params[name] = String(ms);
    } else {
      params[name] = v;
    }
  }
  return params;
}

function pushState() {
  const params = new URLSearchParams(formParams());
  if (offset) params.set("offset", String(offset));
  const qs = params.toString();
  const url = location.pathname + (qs ? "?" + qs : "");
  if (url !== location.pathname + location.search) history.pushState(null, "", url);
}

function restoreFromUrl() {
  const params = new URLSearchParams(location.search);
  for (const [name, id] of Object.entries(FIELDS)) {
    const v = params.get(name) || "";
    const control = $(id);
    if (name === "since" || name === "until") {
      // Epoch ms (ours) or an ISO date someone typed into a shared link.
      const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
      control.value = v && !Number.isNaN(ms) ? toLocalInput(ms) : "";
    } else if (control.tagName === "SELECT" && v && ![...control.options].some((o) => o.value === v)) {
      control.append(el("option", { value: v, text: v }));
      control.value = v;
    } else {
      control.value = v;
    }
  }
  offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
}

function runSearchIfAny() {
  if (Object.keys(formParams()).length) runSearch();
}

function page(direction) {
  offset = Math.max(0, offset + direction * LIMIT);
  pushState();
  runSearch();
}

// ---------------------------------------------------------------------------------------------
// Search.
async function runSearch() {
  const seq = ++searchSeq;
  const error = $("error");
  error.hidden = true;
  $("results").setAttribute("aria-busy", "true");
  let data;
  try {
    data = await api("/api/v1/search", { query: { ...formParams(), limit: LIMIT, offset } });
  } catch (err) {
    if (seq !== searchSeq) return;
    $("results").removeAttribute("aria-busy");
    if (err instanceof ApiError && err.status === 400) {
      showError(err.detail || t("server_error", { status: 400 }));
    } else if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      showError(t(err.status === 401 ? "token_invalid" : "forbidden"));
    } else {
      showError(err instanceof ApiError && err.status === 0 ? t("network_error", { msg: err.detail }) : String(err.message || err));
    }
    return;
  }
  if (seq !== searchSeq) return;
  $("results").removeAttribute("aria-busy");
  lastPage = data;
  renderResults(data);
}

function showError(text) {
  const error = $("error");
  error.hidden = false;
  error.textContent = text;
  lastPage = null;
  $("results").replaceChildren();
  $("total").textContent = "";
  renderPaging();
}

function renderResults(data) {
  const took = Number(data.took_ms || 0);
  $("total").textContent = t("total_line", { total: data.total ?? 0, ms: took < 10 ? took.toFixed(1) : Math.round(took) });
  const hits = data.hits || [];
  fillList($("results"), hits, hitNode, "no_hits");
  if (detail) markSelected(detail.data.call?.call_id);
  renderPaging();
}

function hitNode(h) {
  const c = h.call || {};
  const hl = el("div.hl");
  // The one place server text goes in as HTML: `highlighted` is escaped server-side, with <mark>.
  hl.innerHTML = h.highlighted ?? "";
  const node = el(
    "div.hit",
    { dataset: { callId: h.call_id, segmentId: h.segment_id || "", channel: h.channel || "" }, tabindex: "0", role: "button" },
    el("div.hit-head", null,
      el("span.hit-time.mono", { text: fmtDateTime(h.at_ms) }),
      el("span.chan", { dataset: { channel: h.channel }, text: channelName(h.channel) }),
      el("span.hit-call.mono", { text: h.call_id }),
      c.agent_id ? el("span.hit-agent", { text: `${t("agent")} ${c.agent_id}` }) : null,
      c.queue ? el("span.hit-queue", { text: c.queue }) : null,
      c.intent ? el("span.hit-intent", { dataset: { intent: c.intent }, text: intentName(c.intent) }) : null,
      el("span.spacer"),
      flagBadges(c)),
    hl,
  );
  const open = () => openDetail(h.call_id, h.segment_id);
  node.addEventListener("click", open);
  node.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      open();
    }
  });
  return node;
}

function flagBadges(c) {
  const badges = [];
  if (c.unresolved === true) badges.push(el("span.badge.bad.unresolved", { text: t("flag_unresolved") }));
  else if (c.unresolved === false) badges.push(el("span.badge.good.resolved", { text: t("flag_resolved") }));
  for (const cat of c.alerts || []) badges.push(el("span.badge.cat", { dataset: { category: cat }, text: categoryName(cat) }));
  return el("span.flags", null, badges);
}

function renderPaging() {
  const total = lastPage?.total ?? 0;
  const shown = lastPage?.hits?.length ?? 0;
  // No page on screen (nothing searched yet, or an error): no paging controls either.
  $("prev").hidden = $("next").hidden = !lastPage;
  $("prev").disabled = !lastPage || offset <= 0;
  $("next").disabled = !lastPage || offset + LIMIT >= total;
  $("page-info").textContent = lastPage && shown ? t("page_line", { from: offset + 1, to: offset + shown }) : "";
}

function markSelected(callId) {
  for (const node of document.querySelectorAll("#results .hit")) node.classList.toggle("selected", node.dataset.callId === callId);
}

// ---------------------------------------------------------------------------------------------
// Call detail.
async function openDetail(callId, segmentId) {
  const seq = ++detailSeq;
  const panel = $("call-detail");
  panel.hidden = false;
  document.body.classList.add("detail-open");
  markSelected(callId);
  stopPlayer(true);
  $("detail-call-id").textContent = callId;
  const status = $("detail-status");
  status.hidden = false;
  status.dataset.kind = "info";
  status.textContent = t("loading");
  let data;
  try {
    data = await api(`/api/v1/calls/${encodeURIComponent(callId)}`);
  } catch (err) {
    if (seq !== detailSeq) return;
    status.dataset.kind = "error";
    status.textContent = err instanceof ApiError
      ? err.status === 404 ? t("unknown_call") : err.status === 403 ? t("forbidden") : err.status === 401 ? t("token_invalid") : err.detail || t("server_error", { status: err.status })
      : String(err);
    $("detail-facts").replaceChildren();
    $("timeline").replaceChildren();
    $("events").replaceChildren();
    scorecard.clear();
    detail = null;
    return;
  }
  if (seq !== detailSeq) return;
  status.hidden = true;
  detail = { data, segmentId };
  renderDetail();
  scrollToTarget();
  scorecard.load(callId);
  loadRecording(callId, data.recording);
}

/** A scorecard's evidence time: the transcript line said then, clicked (the replay seeks there). */
function seekToLine(ms) {
  const node = [...$("timeline").querySelectorAll(".utt")].find((n) => Number(n.dataset.startMs) === ms);
  if (!node) return;
  node.click();
  node.scrollIntoView({ block: "nearest" });
}

function closeDetail() {
  detailSeq++;
  scorecard.clear();
  stopPlayer(true);
  detail = null;
  $("call-detail").hidden = true;
  document.body.classList.remove("detail-open");
  markSelected(null);
}

function renderDetail() {
  const { data } = detail;
  const c = data.call || {};
  $("detail-call-id").textContent = c.call_id || "";
  renderFacts(c);
  renderTimeline(data);
  renderEvents(data.events || []);
  player.setUtterances(sortedUtterances(data), c.duration_ms, (data.events || []).filter((ev) => ev.type === "alert"));
}

function fact(label, value, attrs) {
  return [el("dt", { text: label }), el("dd", attrs || null, value)];
}

function renderFacts(c) {
  const flag = c.unresolved === true
    ? el("span.badge.bad.unresolved", { text: t("flag_unresolved") })
    : c.unresolved === false ? el("span.badge.good.resolved", { text: t("flag_resolved") }) : t("flag_none");
  const reasons = (c.reasons || []).map((r) => el("div.reason", { dataset: { reason: r }, text: reasonName(r) }));
  $("detail-facts").replaceChildren(
    ...fact(t("agent"), c.agent_id || t("none_dash")),
    ...fact(t("queue"), c.queue || t("none_dash")),
    ...fact(t("caller"), c.caller || t("none_dash"), { class: "mono" }),
    ...fact(t("started"), fmtDateTime(c.started_at_ms), { class: "mono" }),
    ...fact(t("duration"), fmtDuration(c.duration_ms), { class: "mono" }),
    ...fact(t("intent"), c.intent
      ? [intentName(c.intent), c.intent_score != null ? el("span.score", { text: fmtPercent(c.intent_score) }) : null]
      : t("none_dash"), { dataset: { intent: c.intent || "" } }),
    ...fact(t("flag"), [flag, ...reasons], { id: "detail-flag" }),
    ...fact(t("alerts"), (c.alerts || []).length
      ? c.alerts.map((cat) => el("span.badge.cat", { dataset: { category: cat }, text: categoryName(cat) }))
      : t("none_dash"), { id: "detail-alerts" }),
    ...fact(t("history_tickets"), (c.tickets || []).length ? c.tickets.map(ticketNode) : t("none_dash"),
      { id: "detail-tickets" }),
  );
}

/** One ticket of the call (as the server shaped it for this role: numbers masked, text redacted): its status as
 * the ticketing system last reported it (with its note and the CRM's id), and its fields by their labels in the
 * page's language (`labels` from the scenario packs; a field without one shows its id). */
function ticketNode(tk) {
  const prio = tk.priority ? t(`prio_${tk.priority}`) : "";
  const fields = Object.entries(tk.fields && typeof tk.fields === "object" ? tk.fields : {});
  return el("div.ticket", { dataset: { ticketId: tk.ticket_id || "", status: tk.status || "" } },
    el("div.ticket-head", null,
      el("span.badge", { text: tk.type || "" }),
      prio ? el("span.badge", { text: prio }) : null,
      el("span.ticket-status", { dataset: { status: tk.status || "" }, text: tk.status ? ticketStatusName(tk.status) : "",
        title: tk.status_at_ms ? t("ticket_status_at", { when: fmtDateTime(tk.status_at_ms) }) : null }),
      el("span.mono.ticket-id", { text: tk.ticket_id || "" }),
      tk.external_id ? el("span.mono.ticket-external", { text: t("ticket_external", { id: tk.external_id }) }) : null),
    tk.status_note ? el("div.ticket-status-note", { text: tk.status_note }) : null,
    tk.title ? el("div.ticket-title", { text: tk.title }) : null,
    ...(tk.summary || []).map((line) => el("div.ticket-line", { text: line })),
    fields.length ? el("dl.ticket-fields", { title: t("ticket_fields_title") }, ...fields.flatMap(([name, value]) => [
      el("dt", { dataset: { field: name }, title: name, text: fieldLabel(tk.labels, name) }),
      el("dd", { dataset: { field: name }, text: String(value) }),
    ])) : null);
}

function sortedUtterances(data) {
  return (data.utterances || []).slice().sort((a, b) => (a.start_ms || 0) - (b.start_ms || 0));
}

/** Utterances in call-time order, with the call's alerts interleaved where they were said. */
function renderTimeline(data) {
  const items = sortedUtterances(data).map((u) => ({ at: u.start_ms || 0, node: uttFor(u) }));
  for (const ev of data.events || []) {
    if (ev.type !== "alert") continue;
    items.push({
      at: ev.start_ms || 0,
      node: el("div.event-marker", { dataset: { alertId: ev.alert_id || ev.id || "", category: ev.category, severity: ev.severity, startMs: String(ev.start_ms || 0) } },
        el("span.ts.mono", { text: fmtOffset(ev.start_ms) }),
        el("span.cat", { text: categoryName(ev.category) }),
        alertText(ev) ? el("span.quote", { text: alertText(ev) }) : null),
    });
  }
  // Stable sort: an alert lands after the utterance that triggered it (same start time).
  items.sort((a, b) => a.at - b.at);
  $("timeline").replaceChildren(...items.map((i) => i.node));
}

function uttFor(u) {
  const node = uttNode(u);
  node.classList.add("final");
  if (detail && u.segment_id === detail.segmentId) node.classList.add("target");
  node.addEventListener("click", () => player.seekLine(u));
  return node;
}

function scrollToTarget() {
  const timeline = $("timeline");
  const target = timeline.querySelector(".utt.target");
  if (!target) return;
  // Centre it inside the timeline box only; the page itself must not jump.
  const top = target.getBoundingClientRect().top - timeline.getBoundingClientRect().top + timeline.scrollTop;
  timeline.scrollTop = top - (timeline.clientHeight - target.offsetHeight) / 2;
}

function renderEvents(events) {
  fillList($("events"), events, eventNode, "no_events");
}

/** One line per call event: what it is, when (call offset or wall clock), and its gist. */
function eventNode(ev) {
  let label;
  let body = [];
  // Every event in call time (m:ss from the call's start), like the transcript.
  const startedAt = detail?.data?.call?.started_at_ms || 0;
  let when = ev.emitted_at_ms && startedAt ? fmtOffset(ev.emitted_at_ms - startedAt) : ev.emitted_at_ms ? fmtTime(ev.emitted_at_ms) : "";
  switch (ev.type) {
    case "alert":
      label = `${t("ev_alert")} · ${categoryName(ev.category)} · ${severityName(ev.severity)}`;
      when = fmtOffset(ev.start_ms);
      if (alertText(ev)) body = [el("span.q-who", { text: channelName(ev.channel) + t("colon") }), alertText(ev)];
      break;
    case "intent":
    case "intent_update":
      label = t("ev_intent");
      body = [intentName(ev.intent, ev.name), ev.score != null ? el("span.score", { text: fmtPercent(ev.score) }) : null];
      break;
    case "call_flag":
      label = `${t("ev_flag")} · ${t(ev.unresolved ? "flag_unresolved" : "flag_resolved")} · ${t(ev.final ? "ev_flag_final" : "flag_provisional")}`;
      body = [
        ...(ev.reasons || []).map((r) => el("div.reason", { text: reasonName(r) })),
        ...(ev.quotes || []).map((q) => el("div.quote", null, el("span.q-who", { text: `${channelName(q.channel)} ${fmtOffset(q.start_ms)}${t("colon")}` }), q.text)),
      ];
      break;
    case "call_summary":
      label = `${t("ev_summary")} · ${t(ev.unresolved ? "flag_unresolved" : "flag_resolved")}`;
      body = [
        intentName(ev.intent),
        ...(ev.alerts || []).map((cat) => el("span.badge.cat", { dataset: { category: cat }, text: categoryName(cat) })),
        ...(ev.reasons || []).map((r) => el("div.reason", { text: reasonName(r) })),
      ];
      break;
    case "dtmf":
      label = t("dtmf", { d: ev.digit });
      when = fmtOffset(ev.at_ms);
      body = [channelName(ev.channel)];
      break;
    case "call_started":
      label = t("ev_call_started");
      break;
    case "call_ended":
      label = t("ev_call_ended");
      body = [fmtDuration(ev.duration_ms), ev.reason ? ` (${ev.reason})` : ""];
      break;
    default:
      label = String(ev.type || "?");
  }
  return el("div.event", { dataset: { type: ev.type || "" } },
    el("span.ev-when.mono", { text: when }),
    el("span.ev-label", { text: label }),
    el("div.ev-body", null, body));
}

// ---------------------------------------------------------------------------------------------
// Replay. With a recording (replay.js) the <audio> element is the clock: utterances and alerts sit at their
// recording times (the recording's time map), speed and leg act on the audio. Without one, the utterances are
// walked in real time of their start_ms (times the chosen speed).
const player = {
  utts: [],        // sorted utterances, each with recStart / recEnd: its times on the clock in use
  alerts: [],      // [{ev, at}]: the call's alerts on that clock
  raw: { utts: [], alerts: [], callMs: 0 },
  durationMs: 0,
  pos: 0,          // transcript-only replay: position in call time, ms
  playing: false,  // transcript-only replay running
  lastFrame: 0,
  current: -1,     // index of the utterance marked "playing"
  raf: 0,

  /** The recording in use, or null (transcript-only replay). */
  get audio() {
    return replay && replay.ready ? replay : null;
  },

  setUtterances(utts, callDurationMs, alerts = []) {
    this.raw = { utts, alerts, callMs: Number(callDurationMs) || 0 };
    if (!this.audio) this.pos = 0;
    this.layout();
  },

  /** Utterances and alert markers at their times on the clock in use. */
  layout() {
    const at = (channel, ms) => (this.audio ? this.audio.toRecordingMs(channel, ms || 0) : ms || 0);
    this.utts = this.raw.utts.map((u) => ({ ...u, recStart: at(u.channel, u.start_ms), recEnd: at(u.channel, u.end_ms || u.start_ms) }))
      .sort((a, b) => a.recStart - b.recStart);
    this.alerts = this.raw.alerts.map((ev) => ({ ev, at: at(ev.channel, ev.start_ms) }));
    const lastEnd = this.utts.reduce((m, u) => Math.max(m, u.recEnd, u.recStart), 0);
    this.durationMs = this.audio ? this.audio.durationMs || lastEnd : Math.max(lastEnd, this.raw.callMs);
    this.current = -1;
    this.renderMarks();
    this.render();
  },

  isPlaying() {
    return this.audio ? !this.audio.audio.paused : this.playing;
  },

  position() {
    return this.audio ? this.audio.positionMs : this.pos;
  },

  toggle() {
    if (this.isPlaying()) this.pause();
    else this.play();
  },

  async play() {
    if (this.audio) {
      try {
        await this.audio.play();
      } catch (err) {
        replayNote("error", t("rp_play_failed", { detail: err?.detail || err?.message || String(err) }));
      }
      this.tick();
      return;
    }
    if (!this.utts.length) return;
    if (this.pos >= this.durationMs) this.pos = 0; // replay from the start after the end
    this.playing = true;
    this.lastFrame = performance.now();
    this.raf = requestAnimationFrame((ts) => this.frame(ts));
    this.render();
  },

  pause() {
    this.playing = false;
    cancelAnimationFrame(this.raf);
    if (this.audio) this.audio.pause();
    this.render();
  },

  /** Go to `ms` on the clock in use (recording time with a recording). */
  seek(ms) {
    if (this.audio) {
      this.audio.seek(ms);
      this.render();
      return;
    }
    this.pos = Math.min(Math.max(0, ms), this.durationMs);
    this.lastFrame = performance.now();
    this.render();
  },

  /** A transcript line clicked: go to where it starts. */
  seekLine(u) {
    this.seek(this.audio ? this.audio.toRecordingMs(u.channel, u.start_ms || 0) : u.start_ms || 0);
  },

  /** While the audio plays: follow it every frame (timeupdate alone comes 4 times a second). */
  tick() {
    cancelAnimationFrame(this.raf);
    this.render();
    if (this.audio && this.isPlaying()) this.raf = requestAnimationFrame(() => this.tick());
  },

  frame(ts) {
    if (!this.playing) return;
    const speed = Number($("speed").value) || 1;
    this.pos += Math.max(0, ts - this.lastFrame) * speed;
    this.lastFrame = ts;
    if (this.pos >= this.durationMs) {
      this.pos = this.durationMs;
      this.playing = false;
    }
    this.render();
    if (this.playing) this.raf = requestAnimationFrame((t2) => this.frame(t2));
  },

  /** Index of the last utterance that has started at the position. */
  indexAt(pos) {
    let i = -1;
    while (i + 1 < this.utts.length && this.utts[i + 1].recStart <= pos) i++;
    return i;
  },

  render() {
    const playing = this.isPlaying();
    const pos = this.position();
    const button = $("play");
    button.textContent = t(playing ? "pause" : "play");
    button.dataset.state = playing ? "playing" : "paused";
    button.setAttribute("aria-pressed", playing ? "true" : "false");
    button.disabled = !this.utts.length && !this.audio;
    const pct = this.durationMs ? Math.min(100, (pos / this.durationMs) * 100) : 0;
    const bar = $("progress");
    bar.querySelector(".progress-fill").style.width = `${pct.toFixed(2)}%`;
    bar.setAttribute("aria-valuenow", String(Math.round(pct)));
    $("play-time").textContent = `${fmtOffset(pos)} / ${fmtOffset(this.durationMs)}`;
    // Before the first play nothing is highlighted; afterwards the utterance at the position is.
    const index = pos > 0 || playing ? this.indexAt(pos) : -1;
    if (index !== this.current) this.highlight(index);
  },

  /** The timeline bar's marks: each alert (a click goes there) and, in redacted audio, the silenced spans. */
  renderMarks() {
    const box = $("progress-marks");
    const d = this.durationMs;
    if (!d) {
      box.replaceChildren();
      return;
    }
    const pct = (ms) => `${Math.min(100, Math.max(0, (ms / d) * 100)).toFixed(3)}%`;
    const masked = (this.audio?.info?.redacted_spans || []).map((s) => {
      const node = el("div.masked", { title: t("rp_masked", { kind: s.kind }) });
      node.style.left = pct(s.start_ms);
      node.style.width = `calc(${pct(s.end_ms)} - ${pct(s.start_ms)})`;
      return node;
    });
    const marks = this.alerts.map(({ ev, at }) => {
      const node = el("button.mark", {
        type: "button", title: `${fmtOffset(at)} ${categoryName(ev.category)}${alertText(ev) ? " · " + alertText(ev) : ""}`,
        dataset: { alertId: ev.alert_id || ev.id || "", category: ev.category || "", severity: ev.severity || "", atMs: String(at) },
        onclick: (e) => {
          e.stopPropagation(); // not also a click on the bar under it
          this.seek(at);
        },
      });
      node.style.left = pct(at);
      return node;
    });
    box.replaceChildren(...masked, ...marks);
  },

  highlight(index) {
    this.current = index;
    const timeline = $("timeline");
    for (const node of timeline.querySelectorAll(".utt.playing")) node.classList.remove("playing");
    const u = this.utts[index];
    if (!u) return;
    const node = timeline.querySelector(`.utt[data-segment-id="${CSS.escape(u.segment_id)}"]`);
    if (!node) return;
    node.classList.add("playing");
    // Scroll the timeline only (not the page) so the playing line stays visible.
    const top = node.getBoundingClientRect().top - timeline.getBoundingClientRect().top + timeline.scrollTop;
    if (top < timeline.scrollTop || top + node.offsetHeight > timeline.scrollTop + timeline.clientHeight) {
      timeline.scrollTop = top - timeline.clientHeight / 3;
    }
  },
};

function initPlayer() {
  const audio = $("audio");
  replay = new AudioReplay(audio);
  $("play").addEventListener("click", () => player.toggle());
  $("progress").addEventListener("click", (ev) => {
    const box = ev.currentTarget.getBoundingClientRect();
    player.seek(((ev.clientX - box.left) / box.width) * player.durationMs);
  });
  $("speed").addEventListener("change", () => replay.setRate(Number($("speed").value) || 1));
  $("leg").addEventListener("change", () => replay.setLeg($("leg").value));
  for (const type of ["play", "pause", "ended", "seeked", "timeupdate"]) {
    audio.addEventListener(type, () => (type === "play" ? player.tick() : player.render()));
  }
  audio.addEventListener("durationchange", () => {
    if (player.audio && !player.audio.info.duration_ms) player.layout();
  });
  player.render();
}

/** The open call's recording, when the call detail says it has one this role may play (replay.js). */
async function loadRecording(callId, summary) {
  const seq = detailSeq;
  if (!summary) {
    replayNote("info", t("rp_none"));
    return;
  }
  if (!summary.playable) {
    replayNote("info", summary.state === "recording" ? t("rp_live") : t("rp_unavailable", { detail: summary.detail || summary.state }));
    return;
  }
  replayNote("info", t("rp_loading"));
  let info;
  try {
    info = await replay.load(callId);
  } catch (err) {
    if (seq !== detailSeq) return;
    replayNote("error", t("rp_unavailable", { detail: err?.detail || err?.message || String(err) }));
    return;
  }
  if (!info || seq !== detailSeq) return;
  player.playing = false; // a transcript-only replay started meanwhile gives way to the audio
  cancelAnimationFrame(player.raf);
  replay.setRate(Number($("speed").value) || 1);
  $("leg-box").hidden = !replay.stereo;
  if (replay.stereo && $("leg").value !== "both") replay.setLeg($("leg").value);
  player.layout();
  replayNote(info.rendition === "redacted" ? "redacted" : "info", replay.note());
}

function replayNote(kind, text) {
  const note = $("replay-note");
  note.hidden = !text;
  note.dataset.kind = kind;
  note.textContent = text || "";
}

function stopPlayer(reset) {
  player.pause();
  if (reset) {
    replay.clear();
    $("leg-box").hidden = true;
    replayNote("info", "");
    player.setUtterances([], 0);
  }
}

window.addEventListener("unhandledrejection", (ev) => reportError(ev.reason));
