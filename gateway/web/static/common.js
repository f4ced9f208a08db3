// Shared code of the callscribe gateway pages: token handling, i18n, the API fetch wrapper, a
// reconnecting WebSocket, time formatting and safe DOM building.
//
// Contract: docs/gateway.md. Every byte of data comes from the API with a bearer token; the pages
// themselves are public. Server text is only ever inserted with textContent (see el()); the one
// exception is the search `highlighted` field, which the server escapes (qa.js).

// ---------------------------------------------------------------------------------------------
// i18n: every UI string of every page. Keys missing in one language fall back to the other.
export const I18N = {
  zh: {
    app_name: "CallScribe 通话转写",
    nav_home: "首页",
    nav_agent: "坐席桌面",
    nav_wallboard: "监控大屏",
    nav_qa: "质检检索",
    nav_scores: "质检评分",
    // auth
    token_title: "访问令牌",
    token_placeholder: "粘贴访问令牌…",
    token_submit: "登录",
    token_missing: "需要访问令牌才能查看数据。",
    token_invalid: "令牌无效或已过期，请重新输入。",
    forbidden: "您的角色无权访问此内容。",
    unknown_call: "未知通话",
    network_error: "无法连接服务器：{msg}",
    server_error: "服务器错误（{status}）",
    ws_refused: "服务器拒绝连接（{code}）：{reason}",
    logout: "更换令牌",
    not_logged_in: "未登录",
    role_agent: "坐席",
    role_supervisor: "班长",
    role_qa: "质检",
    role_admin: "管理员",
    // connection states
    conn_connecting: "连接中",
    conn_open: "实时",
    conn_reconnecting: "重连中",
    conn_closed: "已断开",
    // vocabulary
    channel_customer: "客户",
    channel_agent: "坐席",
    channel_mixed: "混合",
    cat_escalation: "升级投诉",
    cat_abuse: "辱骂",
    cat_compliance: "合规",
    cat_silence: "长时间静音",
    cat_overtalk: "抢话",
    cat_repeat_caller: "重复来电",
    cat_sentiment: "情绪恶化",
    sentiment: "客户情绪",
    col_sentiment: "情绪",
    mood_negative: "负面",
    mood_neutral: "平稳",
    mood_positive: "正面",
    sev_high: "高",
    sev_medium: "中",
    sev_low: "低",
    state_live: "通话中",
    state_ended: "已结束",
    flag_unresolved: "未解决",
    flag_resolved: "已解决",
    flag_none: "未判定",
    flag_provisional: "暂定",
    intent_unknown: "未识别",
    any: "全部",
    none_dash: "—",
    colon: "：",
    // unresolved reasons (keyword/analyzer.py)
    "reason:transferred more than once": "多次转接",
    "reason:left pending: ticket, callback or wait for notice": "待处理：工单、回电或等通知",
    "reason:customer transferred around": "客户被来回转接",
    "reason:customer says the issue is not solved": "客户表示问题未解决",
    "reason:fix not confirmed; customer may call again": "处理结果未确认，客户可能再次来电",
    "reason:customer did not accept the answer": "客户不接受答复",
    "reason:customer hung up angry": "客户愤怒挂机",
    "reason:call ends on an escalation": "通话以升级投诉收尾",
    // alert rules (surge topics of kind "rule"), without the language prefix
    "rule:escalation.complaint": "投诉",
    "rule:escalation.regulator": "向监管部门投诉",
    "rule:escalation.media": "媒体曝光",
    "rule:escalation.supervisor": "要求找领导",
    "rule:escalation.legal": "法律威胁",
    "rule:escalation.cancel_threat": "销户/转网威胁",
    "rule:abuse.profanity": "脏话",
    "rule:abuse.insult": "侮辱",
    "rule:abuse.agent_rude": "坐席态度",
    "rule:compliance.forbidden_promise": "违规承诺",
    "rule:compliance.dismissive": "推诿",
    "rule:compliance.no_greeting": "未问候",
    "rule:compliance.no_verification": "未核身",
    "rule:silence.long_gap": "长时间静音",
    "rule:overtalk.repeated": "多次抢话",
    "rule:repeat_caller.same_intent": "同一问题重复来电",
    "rule:sentiment.negative_trend": "客户情绪持续恶化",
    // durations
    age_s: "{n} 秒",
    age_min: "{n} 分钟",
    age_h: "{h} 小时 {m} 分",
    // index
    index_title: "通话实时转写",
    index_intro: "电话客服中心的实时通话转写与质检（普通话 + 英语）。",
    index_agent_desc: "当前通话的实时字幕、意图与提醒。",
    index_wallboard_desc: "在线通话、实时提醒、话题激增、回访队列与意图趋势。",
    index_qa_desc: "全文检索历史通话，回放通话记录。",
    index_token_hint: "令牌只保存在本标签页（sessionStorage），不会发送到页面服务器以外的地方。",
    // agent page
    agent_title: "坐席桌面",
    waiting_call: "等待来电…",
    call_ended: "通话已结束",
    call_id: "通话",
    queue: "队列",
    caller: "来电号码",
    started: "开始",
    duration: "时长",
    intent: "意图",
    agent: "坐席",
    flag: "问题状态",
    alerts: "提醒",
    no_alerts: "暂无提醒",
    repeat_note: "客户此前就同一问题来电 {n} 次",
    silence_gap: "静音 {s} 秒",
    captions: "实时字幕",
    jump_latest: "↓ 最新",
    watching_agent: "正在查看坐席 {id}",
    dtmf: "按键 {d}",
    captions_unavailable: "字幕不可用：{reason}",
    // agent assist (agent page)
    scenario_kind: "流程导引",
    step_required: "必做",
    step_done: "已完成",
    steps_progress: "{done}/{total}",
    say_line: "话术",
    prompt_title: "请注意",
    prompt_before: "顺序提醒：请先完成「{step}」",
    prompt_account_access: "未核实身份就涉及账户信息：请先「{step}」",
    prompt_closing: "结束前还差必做步骤「{step}」",
    prompt_other: "请完成「{step}」",
    dismiss: "关闭",
    offer_kind: "推荐时机",
    offer_use: "我已推荐",
    offer_used: "已推荐 ✓",
    kb_title: "知识库",
    kb_placeholder: "搜索知识库，如：改套餐什么时候生效",
    kb_search: "搜索",
    kb_none: "未找到相关答案",
    kb_live: "客户提问",
    kb_source: "来源 {source}",
    kb_use: "采用",
    kb_used: "已采用",
    kb_score: "匹配 {score}",
    kb_asked: "客户：{q}",
    ticket_title: "工单",
    ticket_draft_btn: "一键派单",
    ticket_drafting: "正在生成草稿…",
    ticket_type: "类型",
    ticket_priority: "优先级",
    ticket_fields: "字段",
    ticket_summary: "摘要（每行一条）",
    ticket_submit: "提交工单",
    ticket_cancel: "取消",
    ticket_submitting: "提交中…",
    ticket_submitted: "工单已提交：{id}",
    ticket_failed: "工单提交失败：{msg}",
    ticket_draft_failed: "无法生成草稿：{msg}",
    ticket_from_end: "通话结束，问题未解决：已生成工单草稿",
    ticket_from_click: "工单草稿（可修改后提交）",
    ticket_missing: "待坐席补充",
    ticket_unavailable: "工单服务暂不可用",
    prio_low: "低",
    prio_medium: "中",
    prio_high: "高",
    prio_urgent: "紧急",
    history_title: "来电历史（{days} 天）",
    history_banner: "重复来电：该号码近 {days} 天已来电 {n} 次",
    history_last_unresolved: "，上次未解决",
    history_open_tickets: "，{n} 个工单未结",
    history_none: "{days} 天内无来电记录",
    history_last: "上次（{when}）遗留",
    history_open: "未结工单",
    history_resolved: "已解决",
    history_unresolved: "未解决",
    history_tickets: "工单",
    history_alerts: "提醒",
    // ticket status as the ticketing system reports it (POST /api/v1/tickets/{id}/status)
    tstatus_open: "待处理",
    tstatus_in_progress: "处理中",
    tstatus_resolved: "已解决",
    tstatus_closed: "已关闭",
    ticket_external: "外部单号 {id}",
    ticket_status_at: "状态更新于 {when}",
    ticket_fields_title: "工单字段",
    // wallboard
    wallboard_title: "监控大屏",
    live_calls: "在线通话",
    alerts_hour: "近 1 小时提醒",
    open_callbacks: "待回访",
    calls: "通话",
    col_call: "通话",
    col_agent: "坐席",
    col_queue: "队列",
    col_intent: "意图",
    col_state: "状态",
    col_alerts: "提醒",
    col_flag: "问题",
    listen: "旁听",
    no_calls: "暂无通话",
    alerts_feed: "实时提醒",
    no_alerts_feed: "暂无提醒",
    surges: "话题激增",
    no_surges: "暂无激增",
    surge_line: "{window} 内 {count} 通，基线 {baseline}",
    surge_window_min: "{n} 分钟",
    callbacks: "回访队列",
    no_callbacks: "回访队列为空",
    done: "已处理",
    done_failed: "操作失败：{msg}",
    intent_chart: "意图趋势（每时段来电数）",
    no_data: "暂无数据",
    mute: "静音",
    unmute: "取消静音",
    // qa
    qa_title: "质检检索",
    q_placeholder: "关键词，例如：投诉  \"speak to your manager\"  退款 OR 退费  -测试",
    since: "开始时间",
    until: "结束时间",
    f_agent: "坐席",
    f_queue: "队列",
    f_intent: "意图",
    f_flag: "问题状态",
    f_alert: "提醒类型",
    f_channel: "说话方",
    search: "检索",
    reset: "清空",
    total_line: "共 {total} 条 · {ms} ms",
    page_line: "第 {from}–{to} 条",
    prev: "上一页",
    next: "下一页",
    no_hits: "没有匹配的结果",
    search_hint: "输入关键词或选择筛选条件后检索。",
    call_detail: "通话详情",
    close: "关闭",
    play: "播放",
    pause: "暂停",
    speed: "速度",
    transcript: "通话记录",
    events: "事件",
    no_events: "无事件",
    loading: "加载中…",
    ev_alert: "提醒",
    ev_intent: "意图更新",
    ev_flag: "问题标记",
    ev_flag_final: "最终",
    ev_summary: "通话小结",
    ev_call_started: "通话开始",
    ev_call_ended: "通话结束",
    reasons: "原因",
    language: "语言",
    score: "置信度",
  },
  en: {
    app_name: "CallScribe",
    nav_home: "Home",
    nav_agent: "Agent desktop",
    nav_wallboard: "Wallboard",
    nav_qa: "QA search",
    nav_scores: "Scores",
    token_title: "Access token",
    token_placeholder: "Paste an access token…",
    token_submit: "Sign in",
    token_missing: "An access token is needed to see data.",
    token_invalid: "Token invalid or expired. Please enter a new one.",
    forbidden: "Not allowed for your role.",
    unknown_call: "Unknown call",
    network_error: "Cannot reach the server: {msg}",
    server_error: "Server error ({status})",
    ws_refused: "The server refused the connection ({code}): {reason}",
    logout: "Change token",
    not_logged_in: "Not signed in",
    role_agent: "Agent",
    role_supervisor: "Supervisor",
    role_qa: "QA",
    role_admin: "Admin",
    conn_connecting: "Connecting",
    conn_open: "Live",
    conn_reconnecting: "Reconnecting",
    conn_closed: "Disconnected",
    channel_customer: "Customer",
    channel_agent: "Agent",
    channel_mixed: "Mixed",
    cat_escalation: "Escalation",
    cat_abuse: "Abuse",
    cat_compliance: "Compliance",
    cat_silence: "Long silence",
    cat_overtalk: "Overtalk",
    cat_repeat_caller: "Repeat caller",
    cat_sentiment: "Mood falling",
    sentiment: "Customer mood",
    col_sentiment: "Mood",
    mood_negative: "Negative",
    mood_neutral: "Neutral",
    mood_positive: "Positive",
    sev_high: "High",
    sev_medium: "Medium",
    sev_low: "Low",
    state_live: "Live",
    state_ended: "Ended",
    flag_unresolved: "Unresolved",
    flag_resolved: "Resolved",
    flag_none: "Not assessed",
    flag_provisional: "provisional",
    intent_unknown: "Unknown",
    any: "Any",
    none_dash: "—",
    colon: ": ",
    "reason:transferred more than once": "Transferred more than once",
    "reason:left pending: ticket, callback or wait for notice": "Left pending: ticket, callback or wait for notice",
    "reason:customer transferred around": "Customer transferred around",
    "reason:customer says the issue is not solved": "Customer says the issue is not solved",
    "reason:fix not confirmed; customer may call again": "Fix not confirmed; customer may call again",
    "reason:customer did not accept the answer": "Customer did not accept the answer",
    "reason:customer hung up angry": "Customer hung up angry",
    "reason:call ends on an escalation": "Call ends on an escalation",
    "rule:escalation.complaint": "Complaint",
    "rule:escalation.regulator": "Regulator complaint",
    "rule:escalation.media": "Press / social media",
    "rule:escalation.supervisor": "Asks for a manager",
    "rule:escalation.legal": "Legal threat",
    "rule:escalation.cancel_threat": "Cancellation threat",
    "rule:abuse.profanity": "Profanity",
    "rule:abuse.insult": "Insult",
    "rule:abuse.agent_rude": "Agent rudeness",
    "rule:compliance.forbidden_promise": "Forbidden promise",
    "rule:compliance.dismissive": "Dismissive",
    "rule:compliance.no_greeting": "No greeting",
    "rule:compliance.no_verification": "No identity check",
    "rule:silence.long_gap": "Long silence",
    "rule:overtalk.repeated": "Repeated overtalk",
    "rule:sentiment.negative_trend": "Customer mood falling",
    "rule:repeat_caller.same_intent": "Repeat caller, same issue",
    age_s: "{n} s",
    age_min: "{n} min",
    age_h: "{h} h {m} min",
    index_title: "Real-time call transcription",
    index_intro: "Live transcription and QA for telephone contact centers (Mandarin + English).",
    index_agent_desc: "Live captions, intent and alerts of the current call.",
    index_wallboard_desc: "Live calls, alerts, topic surges, the callback queue and intent trends.",
    index_qa_desc: "Full-text search over past calls and transcript replay.",
    index_token_hint: "The token is kept in this tab only (sessionStorage).",
    agent_title: "Agent desktop",
    waiting_call: "Waiting for a call…",
    call_ended: "Call ended",
    call_id: "Call",
    queue: "Queue",
    caller: "Caller",
    started: "Started",
    duration: "Duration",
    intent: "Intent",
    agent: "Agent",
    flag: "Issue",
    alerts: "Alerts",
    no_alerts: "No alerts",
    repeat_note: "Repeat caller: called {n} time(s) before about this",
    silence_gap: "Silent for {s} s",
    captions: "Live captions",
    jump_latest: "↓ Latest",
    watching_agent: "Watching agent {id}",
    dtmf: "Key pressed: {d}",
    captions_unavailable: "Captions unavailable: {reason}",
    // agent assist (agent page)
    scenario_kind: "Guide",
    step_required: "required",
    step_done: "done",
    steps_progress: "{done}/{total}",
    say_line: "Say",
    prompt_title: "Heads-up",
    prompt_before: "Order: do “{step}” first",
    prompt_account_access: "Account details before verification: “{step}” first",
    prompt_closing: "Before closing, a required step is missing: “{step}”",
    prompt_other: "Please do “{step}”",
    dismiss: "Dismiss",
    offer_kind: "Offer",
    offer_use: "I offered it",
    offer_used: "Offered ✓",
    kb_title: "Knowledge",
    kb_placeholder: "Search answers, e.g. when does a plan change apply",
    kb_search: "Search",
    kb_none: "No matching answer",
    kb_live: "Customer asked",
    kb_source: "Source {source}",
    kb_use: "Use",
    kb_used: "Used",
    kb_score: "match {score}",
    kb_asked: "Customer: {q}",
    ticket_title: "Ticket",
    ticket_draft_btn: "Create ticket",
    ticket_drafting: "Drafting…",
    ticket_type: "Type",
    ticket_priority: "Priority",
    ticket_fields: "Fields",
    ticket_summary: "Summary (one line each)",
    ticket_submit: "Submit ticket",
    ticket_cancel: "Cancel",
    ticket_submitting: "Submitting…",
    ticket_submitted: "Ticket submitted: {id}",
    ticket_failed: "Ticket not submitted: {msg}",
    ticket_draft_failed: "No draft: {msg}",
    ticket_from_end: "Call ended unresolved: a ticket was drafted",
    ticket_from_click: "Ticket draft (edit, then submit)",
    ticket_missing: "to fill in",
    ticket_unavailable: "Tickets are not available yet",
    prio_low: "Low",
    prio_medium: "Medium",
    prio_high: "High",
    prio_urgent: "Urgent",
    history_title: "Caller history ({days} days)",
    history_banner: "Repeat caller: {n} call(s) from this number in {days} days",
    history_last_unresolved: ", last one unresolved",
    history_open_tickets: ", {n} open ticket(s)",
    history_none: "No calls in the last {days} days",
    history_last: "Left open last time ({when})",
    history_open: "Open tickets",
    history_resolved: "resolved",
    history_unresolved: "unresolved",
    history_tickets: "Tickets",
    history_alerts: "Alerts",
    tstatus_open: "open",
    tstatus_in_progress: "in progress",
    tstatus_resolved: "resolved",
    tstatus_closed: "closed",
    ticket_external: "CRM ref {id}",
    ticket_status_at: "status of {when}",
    ticket_fields_title: "Ticket fields",
    wallboard_title: "Wallboard",
    live_calls: "Live calls",
    alerts_hour: "Alerts, last hour",
    open_callbacks: "Open callbacks",
    calls: "Calls",
    col_call: "Call",
    col_agent: "Agent",
    col_queue: "Queue",
    col_intent: "Intent",
    col_state: "State",
    col_alerts: "Alerts",
    col_flag: "Issue",
    listen: "Listen",
    no_calls: "No calls",
    alerts_feed: "Alerts",
    no_alerts_feed: "No alerts yet",
    surges: "Surges",
    no_surges: "No surges",
    surge_line: "{count} calls in {window}, baseline {baseline}",
    surge_window_min: "{n} min",
    callbacks: "Callback queue",
    no_callbacks: "No open callbacks",
    done: "Done",
    done_failed: "Failed: {msg}",
    intent_chart: "Intents over time (calls per bucket)",
    no_data: "No data yet",
    mute: "Mute",
    unmute: "Unmute",
    qa_title: "QA search",
    q_placeholder: "Search, e.g. 投诉  \"speak to your manager\"  refund OR credit  -test",
    since: "From",
    until: "To",
    f_agent: "Agent",
    f_queue: "Queue",
    f_intent: "Intent",
    f_flag: "Issue",
    f_alert: "Alert",
    f_channel: "Speaker",
    search: "Search",
    reset: "Clear",
    total_line: "{total} hits · {ms} ms",
    page_line: "{from}–{to}",
    prev: "Previous",
    next: "Next",
    no_hits: "No matching results",
    search_hint: "Type a query or pick filters, then search.",
    call_detail: "Call detail",
    close: "Close",
    play: "Play",
    pause: "Pause",
    speed: "Speed",
    transcript: "Transcript",
    events: "Events",
    no_events: "No events",
    loading: "Loading…",
    ev_alert: "Alert",
    ev_intent: "Intent update",
    ev_flag: "Issue flag",
    ev_flag_final: "final",
    ev_summary: "Call summary",
    ev_call_started: "Call started",
    ev_call_ended: "Call ended",
    reasons: "Reasons",
    language: "Language",
    score: "Score",
  },
};

const LANG_KEY = "callscribe.lang";
const TOKEN_KEY = "callscribe.token";
let currentLang = detectLang();
const langListeners = [];

function detectLang() {
  try {
    const saved = localStorage.getItem(LANG_KEY);
    if (saved === "zh" || saved === "en") return saved;
  } catch { /* storage disabled: fall through to the browser language */ }
  return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function getLang() {
  return currentLang;
}

/** Translate `key`, filling `{name}` placeholders from `vars`. Unknown keys come back as is. */
export function t(key, vars) {
  let s = I18N[currentLang][key];
  if (s === undefined) s = I18N[currentLang === "zh" ? "en" : "zh"][key];
  if (s === undefined) s = key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  return s;
}

/** Translation of `prefix + raw` when the dictionary has it, else the raw server value. */
function known(prefix, raw) {
  if (raw === null || raw === undefined || raw === "") return t("none_dash");
  const key = prefix + raw;
  return key in I18N[currentLang] ? t(key) : String(raw);
}

export const categoryName = (c) => known("cat_", c);
/** The customer's sentiment label (keyword/sentiment.py: negative / neutral / positive). */
export const moodName = (m) => known("mood_", m);
export const severityName = (s) => known("sev_", s);
export const channelName = (c) => known("channel_", c);
export const stateName = (s) => known("state_", s);
export const roleName = (r) => known("role_", r);
export const reasonName = (r) => known("reason:", r);
/** A ticket's status (open, in_progress, resolved, closed: what the ticketing system last reported). */
export const ticketStatusName = (s) => known("tstatus_", s);

/** A ticket field's name in the page's language: its label from the scenario pack (`labels`: field -> {zh, en},
 * sent with drafts and tickets), else the field's id. */
export function fieldLabel(labels, name) {
  const l = labels && typeof labels === "object" ? labels[name] : null;
  return (l && typeof l === "object" && l[currentLang]) || name;
}

/** An alert rule id such as "zh.escalation.complaint": translated without its language prefix. */
export function ruleName(rule) {
  const bare = String(rule || "").replace(/^(zh|en)\./, "");
  const key = "rule:" + bare;
  if (key in I18N[currentLang]) return t(key);
  const category = bare.split(".")[0];
  return "cat_" + category in I18N[currentLang] ? `${t("cat_" + category)} · ${bare}` : String(rule);
}

/** Apply the static translations: data-i18n (text), data-i18n-placeholder, data-i18n-title. */
export function applyI18n(root = document) {
  document.documentElement.lang = currentLang === "zh" ? "zh-CN" : "en";
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  for (const node of root.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
  const button = document.getElementById("lang");
  if (button) {
    // The button names the language it switches TO; data-lang says the one in force.
    button.textContent = currentLang === "zh" ? "English" : "中文";
    button.dataset.lang = currentLang;
  }
}

export function setLang(lang) {
  currentLang = lang === "zh" ? "zh" : "en";
  try {
    localStorage.setItem(LANG_KEY, currentLang);
  } catch { /* not persisted: fine for this page view */ }
  applyI18n();
  for (const fn of langListeners) fn(currentLang);
}

/** Run `fn` after every language switch (pages re-render their dynamic parts). */
export function onLangChange(fn) {
  langListeners.push(fn);
}

// ---------------------------------------------------------------------------------------------
// Intents: the catalog names for labels and filters (GET /api/v1/intents).
let intents = [];
const intentNames = new Map();

export async function loadIntents() {
  const data = await api("/api/v1/intents");
  intents = Array.isArray(data.intents) ? data.intents : [];
  intentNames.clear();
  for (const it of intents) intentNames.set(it.id, it.name || {});
  return intents;
}

export function intentList() {
  return intents;
}

/** Display name of an intent id; `fallback` ({zh,en} or a string) when the catalog lacks it. */
export function intentName(id, fallback) {
  if (!id) return t("none_dash");
  if (id === "unknown") return t("intent_unknown");
  const names = intentNames.get(id) || (fallback && typeof fallback === "object" ? fallback : null);
  if (names && names[currentLang]) return names[currentLang];
  if (typeof fallback === "string" && fallback) return fallback;
  return String(id);
}

// ---------------------------------------------------------------------------------------------
// Token: from the URL fragment (#token=...), kept in sessionStorage, never sent except as bearer.
export function takeTokenFromFragment() {
  const hash = location.hash.replace(/^#/, "");
  if (!hash) return;
  const params = new URLSearchParams(hash);
  const token = params.get("token");
  if (!token) return;
  setToken(token);
  params.delete("token");
  const rest = params.toString();
  // Drop the token from the address bar (and so from history and screenshots).
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? "#" + rest : ""));
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return memoryToken;
  }
}
let memoryToken = "";

export function setToken(token) {
  memoryToken = token;
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch { /* sessionStorage disabled: keep it in memory */ }
}

export function clearToken() {
  memoryToken = "";
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* nothing stored */ }
}

// ---------------------------------------------------------------------------------------------
// Auth UI: #auth (form #token-form / #token-input, message #auth-msg), #notice, #whoami, #logout.
let authFailedOnce = false;

/** Show the token form with a reason: "missing" or "invalid". */
export function showAuth(reason) {
  const box = document.getElementById("auth");
  if (!box) return;
  box.hidden = false;
  box.dataset.reason = reason;
  const msg = document.getElementById("auth-msg");
  if (msg) {
    msg.dataset.i18n = reason === "invalid" ? "token_invalid" : "token_missing";
    msg.textContent = t(msg.dataset.i18n);
  }
  document.body.classList.add("needs-token");
  const input = document.getElementById("token-input");
  if (input) input.focus();
}

/** A 401 / close 4401 anywhere: forget the token and ask for another (once per page view). */
export function authFailed() {
  if (authFailedOnce) return;
  authFailedOnce = true;
  clearToken();
  setWho(null);
  showAuth("invalid");
}

/** Show a page-level notice: kind "forbidden" | "error" | "info"; text already translated. */
export function showNotice(kind, text) {
  const box = document.getElementById("notice");
  if (!box) return;
  box.hidden = false;
  box.dataset.kind = kind;
  box.textContent = text;
}

export function hideNotice() {
  const box = document.getElementById("notice");
  if (box) box.hidden = true;
}

/** 403 / close 4403: the token is fine but its role may not see this; `reason` from the server. */
export function forbidden(reason) {
  showNotice("forbidden", t("forbidden") + (reason ? ` (${reason})` : ""));
}

let me = null;
function setWho(info) {
  me = info;
  renderWho();
}

function renderWho() {
  const who = document.getElementById("whoami");
  if (!who) return;
  who.textContent = me ? `${me.sub} · ${roleName(me.role)}` : t("not_logged_in");
  who.dataset.role = me ? me.role : "";
  const logout = document.getElementById("logout");
  if (logout) logout.hidden = !me && !getToken();
}

export function currentUser() {
  return me;
}

function wireHeader() {
  const lang = document.getElementById("lang");
  if (lang) lang.addEventListener("click", () => setLang(currentLang === "zh" ? "en" : "zh"));
  const form = document.getElementById("token-form");
  if (form) {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = document.getElementById("token-input").value.trim();
      if (!value) return;
      setToken(value);
      // A fresh start is the simplest correct way to re-open every socket with the new token.
      location.reload();
    });
  }
  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", () => {
      clearToken();
      location.reload();
    });
  }
  onLangChange(renderWho);
  // A #token=... link opened in this same tab changes only the fragment: no page load happens.
  window.addEventListener("hashchange", () => {
    if (!new URLSearchParams(location.hash.replace(/^#/, "")).get("token")) return;
    takeTokenFromFragment();
    location.reload();
  });
}

/**
 * Start a page: language, header, token. Calls `onReady(me)` once the token is known good
 * (GET /api/v1/me answered) and the intent catalog is loaded. `optional`: the page works without
 * a token (index), so a missing token shows the form without insisting.
 */
export async function boot(onReady, { optional = false } = {}) {
  applyI18n();
  wireHeader();
  takeTokenFromFragment();
  renderWho();
  if (!getToken()) {
    showAuth("missing");
    if (optional) document.body.classList.remove("needs-token");
    return;
  }
  let info;
  try {
    info = await api("/api/v1/me");
  } catch (err) {
    reportError(err);
    return;
  }
  setWho(info);
  try {
    await loadIntents();
  } catch (err) {
    // Labels fall back to raw intent ids; the page still works.
    console.warn("intents not loaded", err);
  }
  if (onReady) await onReady(info);
}

// ---------------------------------------------------------------------------------------------
// HTTP: fetch with the bearer header. Errors come back as ApiError (status 0: network).
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

/**
 * JSON request to the gateway. `query`: object of params (empty values skipped). 401 triggers the
 * token form, 403 the role notice; the error is still thrown so callers can stop what they do.
 */
export async function api(path, { method = "GET", body, query } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += (url.includes("?") ? "&" : "?") + qs;
  }
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, String(err && err.message ? err.message : err));
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const detail = data && typeof data.detail === "string" ? data.detail : data && data.detail ? JSON.stringify(data.detail) : "";
    if (res.status === 401) authFailed();
    else if (res.status === 403) forbidden(detail);
    throw new ApiError(res.status, detail);
  }
  return data;
}

/** Show an API error that the caller does not handle itself (401/403 already shown by api()). */
export function reportError(err) {
  if (!(err instanceof ApiError)) {
    console.error(err);
    showNotice("error", String(err));
    return;
  }
  if (err.status === 401 || err.status === 403) return;
  if (err.status === 0) showNotice("error", t("network_error", { msg: err.detail }));
  else if (err.status === 404) showNotice("error", t("unknown_call") + (err.detail ? `: ${err.detail}` : ""));
  else showNotice("error", t("server_error", { status: err.status }) + (err.detail ? `: ${err.detail}` : ""));
}

// ---------------------------------------------------------------------------------------------
// WebSocket with reconnects. Auth: subprotocols ["callscribe.v1", "bearer." + token].
const FATAL_CLOSE = { 4401: "invalid", 4403: "forbidden", 4404: "unknown" };
const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 5000;

export function wsUrl(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

/**
 * A WebSocket that reconnects with exponential backoff (0.5 s doubling to 5 s, reset after an open)
 * and stops for good on 4401/4403/4404 (and any other 44xx close: a request retrying cannot fix).
 *   path: string or function returning the path (called at each connect: captions resume with ?after=)
 *   onMessage(obj): each JSON message; onOpen(); onFatal(kind, reason); onState(state)
 * state: "connecting" | "open" | "reconnecting" | "closed".
 */
export class ReconnectingSocket {
  constructor(path, { onMessage, onOpen, onFatal, onState } = {}) {
    this.path = path;
    this.onMessage = onMessage || (() => {});
    this.onOpen = onOpen || (() => {});
    this.onFatal = onFatal || (() => {});
    this.onState = onState || (() => {});
    this.ws = null;
    this.timer = null;
    this.delay = BACKOFF_START_MS;
    this.stopped = false;
    this.state = "connecting";
  }

  start() {
    this.stopped = false;
    this._connect();
    return this;
  }

  /** Close for good (the page no longer wants this stream). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try {
        ws.close(1000);
      } catch { /* already closed */ }
    }
    this._setState("closed");
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState(state, this);
  }

  _connect() {
    if (this.stopped) return;
    const path = typeof this.path === "function" ? this.path() : this.path;
    let ws;
    try {
      ws = new WebSocket(wsUrl(path), ["callscribe.v1", "bearer." + getToken()]);
    } catch (err) {
      // A token with characters a subprotocol cannot carry: as good as an invalid token.
      console.warn("WebSocket refused", err);
      this._fatal(4401, "");
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.delay = BACKOFF_START_MS;
      this._setState("open");
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        console.warn("not JSON", ev.data);
        return;
      }
      if (msg && typeof msg === "object") this.onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      // 4401/4403/4404 and any other 44xx (e.g. a bad request): retrying cannot help.
      if (ev.code >= 4400 && ev.code <= 4499) {
        this._fatal(ev.code, ev.reason);
        return;
      }
      this._retry();
    };
    // onerror is always followed by onclose, which does the work.
    ws.onerror = () => {};
  }

  _retry() {
    if (this.stopped) return;
    this._setState("reconnecting");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._connect(), this.delay);
    this.delay = Math.min(this.delay * 2, BACKOFF_MAX_MS);
  }

  _fatal(code, reason) {
    this.stopped = true;
    this._setState("closed");
    const kind = FATAL_CLOSE[code] || "refused";
    if (kind === "invalid") authFailed();
    else if (kind === "forbidden") forbidden(reason);
    else if (kind === "refused") showNotice("error", t("ws_refused", { code, reason: reason || "" }));
    this.onFatal(kind, reason || "", code);
  }
}

/**
 * The #conn indicator over one or more sockets: the worst state wins (closed > reconnecting >
 * connecting > open). Sockets that were stopped on purpose are untracked.
 */
export class ConnIndicator {
  constructor(element) {
    this.element = element;
    this.sockets = new Set();
    this.render();
    onLangChange(() => this.render());
  }

  track(socket) {
    this.sockets.add(socket);
    const prev = socket.onState;
    socket.onState = (state, s) => {
      prev(state, s);
      this.render();
    };
    this.render();
    return socket;
  }

  untrack(socket) {
    this.sockets.delete(socket);
    this.render();
  }

  state() {
    const states = [...this.sockets].map((s) => s.state);
    if (!states.length) return "closed";
    for (const s of ["closed", "reconnecting", "connecting"]) if (states.includes(s)) return s;
    return "open";
  }

  render() {
    if (!this.element) return;
    const state = this.sockets.size ? this.state() : this.element.dataset.state || "connecting";
    this.element.dataset.state = state;
    this.element.textContent = t("conn_" + state);
  }
}

// ---------------------------------------------------------------------------------------------
// Time and duration formatting (local time zone).
const pad2 = (n) => String(n).padStart(2, "0");

/** Offset within a call, ms -> m:ss (h:mm:ss past an hour). */
export function fmtOffset(ms) {
  const total = Math.max(0, Math.floor((Number(ms) || 0) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h ? `${h}:${pad2(m)}:${pad2(s)}` : `${m}:${pad2(s)}`;
}

export const fmtDuration = fmtOffset;

export function fmtTime(epochMs) {
  if (!epochMs) return t("none_dash");
  const d = new Date(Number(epochMs));
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

export function fmtHM(epochMs) {
  const d = new Date(Number(epochMs));
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

export function fmtDateTime(epochMs) {
  if (!epochMs) return t("none_dash");
  const d = new Date(Number(epochMs));
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${fmtTime(epochMs)}`;
}

/** Value for <input type="datetime-local"> from epoch ms (local time), and back. */
export function toLocalInput(epochMs) {
  const d = new Date(Number(epochMs));
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

export function fromLocalInput(value) {
  if (!value) return null;
  const ms = new Date(value).getTime(); // "YYYY-MM-DDTHH:MM" without a zone is local time
  return Number.isNaN(ms) ? null : ms;
}

/** How long ago, e.g. "12 min" / "12 分钟". */
export function fmtAge(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return t("age_s", { n: s });
  const min = Math.floor(s / 60);
  if (min < 60) return t("age_min", { n: min });
  return t("age_h", { h: Math.floor(min / 60), m: min % 60 });
}

export function fmtPercent(score) {
  const n = Number(score);
  return Number.isFinite(n) ? `${Math.round(n * 100)}%` : "";
}

// ---------------------------------------------------------------------------------------------
// DOM helpers.
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/**
 * Build an element: el("div.utt.final", {dataset: {segmentId: "x"}, title: "..."}, child, "text", ...).
 * Strings become text nodes (never HTML); null/undefined/false children are skipped.
 */
export function el(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "class") node.className += (node.className ? " " : "") + v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k in node && typeof v !== "string") node[k] = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Fill a list container with one node per item, or the translated "nothing here" line when empty. */
export function fillList(box, items, nodeFn, emptyKey) {
  if (!items.length) box.replaceChildren(el("div.empty", { text: t(emptyKey) }));
  else box.replaceChildren(...items.map(nodeFn));
}

/** Is a scroll container (nearly) at its bottom? */
export function atBottom(box, slack = 40) {
  return box.scrollHeight - box.scrollTop - box.clientHeight <= slack;
}

/**
 * One transcript bubble, shared by the agent and QA pages:
 * div.utt[data-segment-id][data-channel][data-start-ms] > .meta (.who, .ts) + .text.
 */
export function uttNode(u) {
  return el(
    "div.utt",
    { dataset: { segmentId: u.segment_id, channel: u.channel, startMs: String(u.start_ms || 0) } },
    el("div.meta", null, el("span.who", { text: channelName(u.channel) }), el("span.ts", { text: fmtOffset(u.start_ms) })),
    el("div.text", { text: u.text || "" }),
  );
}

/** details.previous_calls of a repeat_caller alert: "c-1,c-2" in the event's string form (a list too). */
export function previousCalls(details) {
  const v = details?.previous_calls;
  if (Array.isArray(v)) return v.filter(Boolean);
  return String(v || "").split(",").map((x) => x.trim()).filter(Boolean);
}

/**
 * What to show for an alert: its (redacted) quote, except where the analytics wrote an English
 * sentence or nothing (repeat caller, silence): there a translated line from its details.
 */
export function alertText(a) {
  if (a.category === "repeat_caller") {
    const n = previousCalls(a.details).length;
    if (n) return t("repeat_note", { n });
  }
  if (a.category === "silence" && !a.quote && a.details?.gap_s) return t("silence_gap", { s: a.details.gap_s });
  return a.quote || "";
}
