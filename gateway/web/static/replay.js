// A call's recording on the QA call detail: the <audio> element's source, its legs, and the recording's clock.
// Data: GET /api/v1/calls/{id}/recording (bearer token; qa, supervisor, admin) answers the recording's facts, the
// rendition this role hears (the server decides: redacted for whoever reads redacted text) and a signed audio link
// that works for a few minutes; the <audio> element fetches that link itself (range requests). Nothing here decides
// who hears what: this only plays what the server hands out (docs/recording.md "Replay").
import { I18N, t, api } from "/static/common.js";

Object.assign(I18N.zh, {
  rp_leg: "声道",
  rp_leg_both: "双方",
  rp_loading: "正在加载录音…",
  rp_none: "该通话没有录音：仅按文字回放",
  rp_live: "通话仍在录音中，结束后可回放",
  rp_unavailable: "录音暂不可用：{detail}",
  rp_redacted: "已脱敏录音：未发现需静音的卡号、证件号、电话号码",
  rp_redacted_spans: "已脱敏录音：{n} 处卡号、证件号、电话号码已静音",
  rp_original: "原始录音",
  rp_interrupted: "录音因服务中断而截断",
  rp_failed: "录音写入失败，只保存了部分内容",
  rp_masked: "已静音（{kind}）",
  rp_play_failed: "无法播放录音：{detail}",
});
Object.assign(I18N.en, {
  rp_leg: "Listen to",
  rp_leg_both: "Both",
  rp_loading: "Loading the recording…",
  rp_none: "No recording of this call: transcript replay only",
  rp_live: "Still being recorded: replay once the call has ended",
  rp_unavailable: "Recording not available: {detail}",
  rp_redacted: "Redacted audio: no card, ID or phone number found to silence",
  rp_redacted_spans: "Redacted audio: {n} card, ID or phone number span(s) silent",
  rp_original: "Original audio",
  rp_interrupted: "The recording was cut by a service interruption",
  rp_failed: "Writing the recording failed: only part of it was kept",
  rp_masked: "silenced ({kind})",
  rp_play_failed: "The recording cannot be played: {detail}",
});

const REFRESH_BEFORE_MS = 30_000; // a link this close to its expiry is renewed before the next play or seek
// Legs through Web Audio: [customer->left, customer->right, agent->left, agent->right] gains per choice.
const LEG_GAINS = { both: [1, 0, 0, 1], customer: [1, 1, 0, 0], agent: [0, 0, 1, 1] };

/**
 * The recording of the open call, played by `audio` (an HTMLAudioElement). `load(callId)` asks the server for it
 * (throws ApiError: 404 none, 409 not playable yet); then `toRecordingMs(channel, ms)` maps a transcript time of a
 * channel to the recording's time (the manifest's time map: a leg that started late sits later in the recording).
 */
export class AudioReplay {
  constructor(audio) {
    this.audio = audio;
    this.info = null;
    this.callId = null;
    this.seq = 0;
    this.leg = "both";
    this.graph = null; // Web Audio nodes, made the first time one leg is chosen (a media element joins one graph for good)
    this.refreshing = null;
    audio.addEventListener("error", () => this.recover());
  }

  async load(callId) {
    const seq = ++this.seq;
    this.clear(false);
    this.callId = callId;
    const info = await api(`/api/v1/calls/${encodeURIComponent(callId)}/recording`);
    if (seq !== this.seq) return null;
    this.info = info;
    this.audio.src = info.url;
    this.audio.load();
    return info;
  }

  clear(bump = true) {
    if (bump) this.seq++;
    this.info = null;
    this.callId = null;
    this.audio.pause();
    this.audio.removeAttribute("src");
    this.audio.load();
  }

  get ready() {
    return Boolean(this.info);
  }

  get stereo() {
    return Boolean(this.info && (this.info.channels || []).length === 2);
  }

  /** The recording's length in ms: the manifest's, else what the element found. */
  get durationMs() {
    const d = Number(this.info?.duration_ms) || 0;
    return d || (Number.isFinite(this.audio.duration) ? this.audio.duration * 1000 : 0);
  }

  get positionMs() {
    return this.audio.currentTime * 1000;
  }

  /** A channel's transcript time in recording time: the last shift at or before it applies (recording/timeline.py). */
  toRecordingMs(channel, ms) {
    const shifts = this.info?.time_map?.[channel] || [];
    let shift = 0;
    for (const [from, by] of shifts) {
      if (from <= ms) shift = by;
      else break;
    }
    return (Number(ms) || 0) + shift;
  }

  /** A fresh link when this one is about to expire, keeping the position, speed and play state. */
  async renew(force = false) {
    if (!this.info || (!force && Date.now() < Number(this.info.expires_at_ms) - REFRESH_BEFORE_MS)) return;
    if (this.refreshing) return this.refreshing;
    const seq = this.seq;
    const callId = this.callId;
    this.refreshing = (async () => {
      const at = this.audio.currentTime;
      const wasPlaying = !this.audio.paused;
      const rate = this.audio.playbackRate;
      const info = await api(`/api/v1/calls/${encodeURIComponent(callId)}/recording`);
      if (seq !== this.seq) return;
      this.info = info;
      this.audio.src = info.url;
      this.audio.playbackRate = rate;
      this.audio.currentTime = at;
      if (wasPlaying) await this.audio.play();
    })().finally(() => { this.refreshing = null; });
    return this.refreshing;
  }

  /** The element failed to fetch (the link expired mid-replay, the gateway restarted): renew once and go on. */
  async recover() {
    if (!this.info || !this.audio.getAttribute("src")) return;
    const now = Date.now();
    if (this.lastRecover && now - this.lastRecover < 10_000) return; // one try per spell: a real fault stays visible
    this.lastRecover = now;
    try {
      await this.renew(true);
    } catch { /* the page shows the element's state; the next play asks again */ }
  }

  async play() {
    await this.renew();
    if (this.graph) await this.graph.ctx.resume();
    await this.audio.play();
  }

  pause() {
    this.audio.pause();
  }

  async seek(ms) {
    const d = this.durationMs;
    this.audio.currentTime = Math.max(0, d ? Math.min(ms, d) : ms) / 1000;
    this.renew().catch(() => {});
  }

  setRate(rate) {
    this.audio.playbackRate = rate;
    this.audio.defaultPlaybackRate = rate;
  }

  /** "both" (stereo as recorded: customer left, agent right), "customer" or "agent" (that leg in both ears). */
  setLeg(leg) {
    this.leg = LEG_GAINS[leg] ? leg : "both";
    if (this.leg !== "both" && !this.graph) this.graph = this.makeGraph();
    if (!this.graph) return;
    const gains = LEG_GAINS[this.leg];
    this.graph.gains.forEach((g, i) => { g.gain.value = gains[i]; });
    this.graph.ctx.resume().catch(() => {});
  }

  makeGraph() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    const ctx = new Ctx();
    const source = ctx.createMediaElementSource(this.audio);
    const split = ctx.createChannelSplitter(2);
    const merge = ctx.createChannelMerger(2);
    source.connect(split);
    const gains = [[0, 0], [0, 1], [1, 0], [1, 1]].map(([leg, ear]) => {
      const g = ctx.createGain();
      split.connect(g, leg);
      g.connect(merge, 0, ear);
      return g;
    });
    merge.connect(ctx.destination);
    return { ctx, gains };
  }

  /** One line on what is heard: the rendition, and whether the recording is whole. */
  note() {
    const i = this.info;
    if (!i) return "";
    const parts = [];
    if (i.rendition === "redacted") {
      const n = (i.redacted_spans || []).length;
      parts.push(n ? t("rp_redacted_spans", { n }) : t("rp_redacted"));
    } else {
      parts.push(t("rp_original"));
    }
    if (i.state === "interrupted") parts.push(t("rp_interrupted"));
    if (i.state === "failed") parts.push(t("rp_failed"));
    return parts.join(" · ");
  }
}
