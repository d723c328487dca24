// vani browser client: microphone -> WebSocket -> (agent mode) assistant audio back.
//
//   import { VaniAgent, VaniTranscription } from "/agent/vani-client.js";
//   const agent = new VaniAgent({ sessionId: "my-session" });
//   agent.addEventListener("message", (e) => console.log(e.detail));   // every server JSON event
//   agent.addEventListener("error", (e) => alert(e.detail.message));    // plain words
//   await agent.start();   // asks for the mic, connects; agent.stop() ends the session
//
// VaniTranscription speaks WS /v2/flux/{id} (Deepgram Flux's schema); VaniAgent speaks
// WS /v1/sessions/{id} (agent sessions) and plays the assistant's audio. See docs/protocol.md.
//
// Events (CustomEvent, payload in `detail`):
//   "message"   every JSON message from the server, as parsed
//   "status"    {status, attempt?, delayMs?}: idle | connecting | open | reconnecting | closed
//   "started"   the session's first message (session.started / Connected), {resumed} tells a resume
//   "error"     {message, code?, closeCode?, fatal}: something to show the user, in plain words
//   "closed"    {code, reason, message}: the client gave up or was stopped
//   "playback"  the playback worklet's reports: {type: played|dropped|cleared|paused|resumed|progress, turnId, ...}
//   "chunk"     {bytes, peak}: one 256 ms microphone chunk was captured (for level meters)

import { CLOSE_CODES, describeClose, describeError, micProblem } from "./messages.js";

export { CLOSE_CODES, describeClose, describeError, REFUSED_TEXT } from "./messages.js";

const MODULE_DIR = new URL(".", import.meta.url);

export const DEFAULTS = {
  maxBufferedBytes: 128 * 1024, // pause sending while the socket has more than this unsent
  maxQueuedChunks: 32, // chunks waiting behind backpressure / a reconnect (32 x 256 ms = 8 s)
  keepAliveMs: 5000, // send a keep-alive message after this long without sending anything
  reconnect: { attempts: 8, baseDelayMs: 250, maxDelayMs: 8000 },
  playbackReportMs: 250, // agent: at most one `playback` progress message per this interval
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
};

// A close the client itself asks for to simulate a network drop (browsers allow 3000-4999).
const DROP_CODE = 4001;

export function newSessionId(prefix = "web") {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

// The app's base URL: by default the directory this module was served from — the app's route prefix
// (vani's pages sit next to it, so a page at /agent/ talks to /agent/v1/...; a page elsewhere that
// imports http://host/agent/vani-client.js reaches that app too). Pass `base` if you bundle a copy.
export function appBase(base) {
  return new URL(".", base || MODULE_DIR);
}

export function socketUrl(route, sessionId, { base, query = {} } = {}) {
  const url = new URL(`${route}/${encodeURIComponent(sessionId)}`, appBase(base));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(item));
  }
  return url.toString();
}

export class VaniClient extends EventTarget {
  // mode: "agent" (WS /v1/sessions) or "transcription" (WS /v2/flux).
  constructor(options = {}) {
    super();
    this.options = { ...DEFAULTS, ...options, reconnect: { ...DEFAULTS.reconnect, ...(options.reconnect || {}) } };
    this.options.audio = { ...DEFAULTS.audio, ...(options.audio || {}) };
    this.mode = this.options.mode || "agent";
    this.route = this.mode === "agent" ? "v1/sessions" : "v2/flux";
    this.sessionId = this.options.sessionId || newSessionId(this.mode === "agent" ? "agent" : "flux");
    this.resumeToken = null;
    this.status = "idle";
    this.muted = false;
    this.stats = {
      chunksSent: 0,
      bytesSent: 0,
      sendDropped: 0, // mic chunks dropped because the queue behind backpressure / a reconnect was full
      backpressureWaits: 0,
      keepAlives: 0,
      reconnects: 0,
      resumed: 0,
      playedChunks: 0,
      droppedChunks: 0,
      clears: 0,
      flushedChunks: 0,
      pauses: 0, // audio.pause applied: user speech paused the reply while the server decides
      resumes: 0, // audio.resume: it was a backchannel / noise, the reply plays on from where it paused
      playedAfterClear: 0, // must stay 0: a chunk of a cleared turn reported played after the clear
    };
    this._ws = null;
    this._queue = [];
    this._stopping = false;
    this._attempt = 0;
    this._lastSend = 0;
    this._timers = new Set();
    this._clearedTurns = new Set();
    this._lastReport = 0;
  }

  on(type, fn) {
    const h = (e) => fn(e.detail, e);
    this.addEventListener(type, h);
    return () => this.removeEventListener(type, h);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setStatus(status, extra = {}) {
    this.status = status;
    this.emit("status", { status, ...extra });
  }

  // ---------------------------------------------------------------- lifecycle
  async start() {
    if (this.status !== "idle" && this.status !== "closed") return;
    this._stopping = false;
    this._attempt = 0;
    try {
      await this._startAudio();
    } catch (err) {
      this._fail(micProblem(err), { fatal: true });
      await this._stopAudio();
      return;
    }
    this._connect(false);
  }

  // End the session for good: the server flushes and closes with 1000.
  async stop() {
    this._stopping = true;
    this._clearTimers();
    const ws = this._ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: this.mode === "agent" ? "close" : "CloseStream" }));
      await new Promise((resolve) => {
        const t = setTimeout(resolve, 2000);
        ws.addEventListener("close", () => (clearTimeout(t), resolve()), { once: true });
      });
      if (ws.readyState !== WebSocket.CLOSED) ws.close(1000, "client stopped");
    } else if (ws) {
      ws.close(1000, "client stopped");
    }
    this._ws = null;
    this._queue = [];
    await this._stopAudio();
    this.setStatus("closed");
  }

  // Mute the mic: zeros are sent in its place, so the stream keeps its pace (see flux-capture-worklet.js).
  setMuted(muted) {
    this.muted = !!muted;
    if (this._capture) this._capture.port.postMessage({ type: "mute", muted: this.muted });
  }

  sendJson(msg) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    this._lastSend = performance.now();
    return true;
  }

  // Close the socket as if the network dropped: the client reconnects with its resume token.
  dropConnection() {
    if (this._ws && this._ws.readyState === WebSocket.OPEN) {
      this._ws._dropped = true;
      this._ws.close(DROP_CODE, "simulated network drop");
    }
  }

  // ---------------------------------------------------------------- audio
  async _startAudio() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    this._ctx = new Ctx({ latencyHint: "interactive" });
    await this._ctx.audioWorklet.addModule(new URL("flux-capture-worklet.js", MODULE_DIR));
    if (this.mode === "agent") await this._ctx.audioWorklet.addModule(new URL("playback-worklet.js", MODULE_DIR));
    this._stream = await navigator.mediaDevices.getUserMedia({ audio: this.options.audio, video: false });
    this._source = this._ctx.createMediaStreamSource(this._stream);
    this._capture = new AudioWorkletNode(this._ctx, "flux-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 0, // a sink: processed without being connected to the speakers
      channelCount: 1,
      channelCountMode: "explicit", // the graph downmixes a stereo mic to mono for us
      processorOptions: { outRate: 16000, chunkSamples: 4096 },
    });
    this._capture.port.onmessage = (e) => this._onChunk(e.data);
    this._capture.port.postMessage({ type: "mute", muted: this.muted });
    this._source.connect(this._capture);
    if (this.mode === "agent") {
      this._player = new AudioWorkletNode(this._ctx, "vani-playback", { numberOfInputs: 0, outputChannelCount: [1] });
      this._player.port.onmessage = (e) => this._onPlayback(e.data);
      this._player.connect(this._ctx.destination);
    }
    if (this._ctx.state !== "running") {
      // Without a user gesture (e.g. ?autostart=1) the browser may hold the context suspended: do not
      // wait for it (connect anyway), and resume on the first click.
      const ctx = this._ctx;
      ctx.resume().catch(() => {});
      document.addEventListener("click", () => ctx.state === "suspended" && ctx.resume(), { once: true });
    }
    // Keep-alive and the backpressure pump run on one timer (WebSocket has no "drained" event).
    this._every(100, () => this._tick());
  }

  async _stopAudio() {
    this._clearTimers();
    if (this._stream) for (const t of this._stream.getTracks()) t.stop();
    if (this._ctx && this._ctx.state !== "closed") await this._ctx.close().catch(() => {});
    this._stream = this._ctx = this._source = this._capture = this._player = null;
  }

  _onChunk(m) {
    if (m.type !== "chunk") return;
    this.emit("chunk", { bytes: m.pcm.byteLength, peak: m.peak });
    // Backpressure / reconnect policy: chunks wait in a bounded queue; when it is full the OLDEST is
    // dropped (and counted): in a live conversation fresh audio matters more than stale audio.
    this._queue.push(m.pcm);
    while (this._queue.length > this.options.maxQueuedChunks) {
      this._queue.shift();
      this.stats.sendDropped++;
    }
    this._pump();
  }

  _pump() {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this._ready) return;
    while (this._queue.length) {
      if (ws.bufferedAmount > this.options.maxBufferedBytes) {
        this.stats.backpressureWaits++;
        return; // the 100 ms tick tries again
      }
      const pcm = this._queue.shift();
      ws.send(pcm);
      this.stats.chunksSent++;
      this.stats.bytesSent += pcm.byteLength;
      this._lastSend = performance.now();
    }
  }

  _tick() {
    this._pump();
    // Keep-alive: only when nothing was sent for a while (the mic stalled, or backpressure holds all
    // audio). Each route gets a message it accepts: Flux's KeepAlive, or vani's ping.
    if (this._ready && performance.now() - this._lastSend > this.options.keepAliveMs) {
      if (this.sendJson(this.mode === "agent" ? { type: "ping", t: Date.now() } : { type: "KeepAlive" })) {
        this.stats.keepAlives++;
      }
    }
  }

  _onPlayback(m) {
    if (m.type === "played") {
      this.stats.playedChunks++;
      if (this._clearedTurns.has(m.turnId)) this.stats.playedAfterClear++;
    } else if (m.type === "dropped") {
      this.stats.droppedChunks++;
    } else if (m.type === "cleared") {
      this._clearedTurns.add(m.turnId);
      this.stats.flushedChunks += m.flushedChunks;
    } else if (m.type === "progress") {
      // Tell the server what was heard (it truncates an interrupted reply to it), throttled.
      const now = performance.now();
      if (m.done || now - this._lastReport >= this.options.playbackReportMs) {
        this._lastReport = now;
        this.sendJson({ type: "playback", turn_id: m.turnId, played_ms: m.playedMs });
      }
    }
    this.emit("playback", m);
  }

  // ---------------------------------------------------------------- socket
  _connect(isRetry) {
    const query = { ...(this.options.query || {}) };
    if (this.options.token) query.token = this.options.token;
    if (this.resumeToken) query.resume_token = this.resumeToken;
    const url = socketUrl(this.route, this.sessionId, { base: this.options.base, query });
    this.setStatus(isRetry ? "reconnecting" : "connecting", { attempt: this._attempt });
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws._opened = false;
    this._ws = ws;
    this._ready = false;
    ws.onopen = () => {
      ws._opened = true;
    };
    ws.onmessage = (e) => {
      if (ws !== this._ws) return;
      if (typeof e.data === "string") this._onText(e.data);
      else this._onAudio(e.data);
    };
    ws.onclose = (e) => {
      if (ws !== this._ws) return;
      this._ready = false;
      this._onClose(ws, e.code, e.reason);
    };
  }

  _onText(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    const first = msg.type === "session.started" || msg.type === "Connected";
    if (first) {
      this.resumeToken = msg.resume_token || this.resumeToken;
      this._ready = true;
      this._attempt = 0;
      this._lastSend = performance.now();
      if (msg.resumed) this.stats.resumed++;
      this.setStatus("open");
      this.emit("started", msg);
      this._pump();
    } else if (msg.type === "error" || msg.type === "Error") {
      this.emit("error", { message: describeError(msg), code: msg.code, fatal: false, raw: msg });
    }
    if (this._player) this._forwardAudioEvent(msg);
    this.emit("message", msg);
  }

  // Audio events go to the playback worklet through the same ordered port as the frames.
  _forwardAudioEvent(msg) {
    const p = this._player.port;
    if (msg.type === "audio.start") {
      const f = msg.format || {};
      this._playable = (f.encoding || "linear16") === "linear16" && (f.container || "none") === "none";
      if (!this._playable) {
        this.emit("error", { message: `Cannot play assistant audio in ${f.encoding}/${f.container}.`, fatal: false });
      }
      this._headerBytes = msg.header_bytes || 8;
      p.postMessage({ type: "start", turnId: msg.turn_id, sampleRate: f.sample_rate || 24000 });
    } else if (msg.type === "audio.end") {
      p.postMessage({ type: "end", turnId: msg.turn_id });
    } else if (msg.type === "audio.clear") {
      this.stats.clears++;
      p.postMessage({ type: "clear", turnId: msg.turn_id });
    } else if (msg.type === "audio.pause") {
      this.stats.pauses++;
      p.postMessage({ type: "pause", turnId: msg.turn_id });
    } else if (msg.type === "audio.resume") {
      this.stats.resumes++;
      p.postMessage({ type: "resume", turnId: msg.turn_id });
    }
  }

  _onAudio(buf) {
    if (!this._player || buf.byteLength < 8) return;
    const view = new DataView(buf);
    const turnId = view.getUint32(0, false); // big-endian header: turn id, chunk index
    const index = view.getUint32(4, false);
    if (this._playable === false) {
      this.stats.droppedChunks++;
      return;
    }
    const pcm = buf.slice(this._headerBytes || 8);
    this._player.port.postMessage({ type: "chunk", turnId, index, pcm }, [pcm]);
  }

  _onClose(ws, code, reason) {
    if (this._stopping) return;
    const dropped = ws._dropped === true;
    const opened = ws._opened;
    const known = CLOSE_CODES[code];
    // Never opened on the very first try: a refusal (HTTP 403) or no server. Retrying cannot help.
    const refused = !opened && !this.resumeToken && this._attempt === 0 && code === 1006;
    const retry = dropped || (!refused && (known ? known.retry : code >= 1002 && code < 4000 && code !== 1000));
    if (retry && this._attempt < this.options.reconnect.attempts) {
      const { baseDelayMs, maxDelayMs } = this.options.reconnect;
      const delayMs = Math.min(maxDelayMs, baseDelayMs * 2 ** this._attempt) * (0.8 + 0.4 * Math.random());
      this._attempt++;
      this.stats.reconnects++;
      if (!dropped) this.emit("error", { message: `${describeClose(code, reason)} Reconnecting…`, closeCode: code, fatal: false });
      this.setStatus("reconnecting", { attempt: this._attempt, delayMs: Math.round(delayMs) });
      this._later(delayMs, () => this._connect(true));
      return;
    }
    let message = describeClose(code, reason, opened);
    if (retry) message = `${message} Gave up after ${this._attempt} reconnect attempts.`;
    if (code !== 1000) this._fail(message, { closeCode: code, fatal: true });
    this._ws = null;
    this._stopAudio();
    this.setStatus("closed");
    this.emit("closed", { code, reason, message });
  }

  _fail(message, extra = {}) {
    this.emit("error", { message, ...extra });
  }

  _every(ms, fn) {
    const id = setInterval(fn, ms);
    this._timers.add(() => clearInterval(id));
  }

  _later(ms, fn) {
    const cancel = () => clearTimeout(id);
    const id = setTimeout(() => {
      this._timers.delete(cancel);
      fn();
    }, ms);
    this._timers.add(cancel);
  }

  _clearTimers() {
    for (const cancel of this._timers) cancel();
    this._timers.clear();
  }
}

// Agent sessions: WS /v1/sessions/{id}, assistant audio played through the playback worklet.
export class VaniAgent extends VaniClient {
  constructor(options = {}) {
    super({ ...options, mode: "agent" });
  }
}

// Transcription sessions: WS /v2/flux/{id}, Deepgram Flux's schema (TurnInfo events).
export class VaniTranscription extends VaniClient {
  constructor(options = {}) {
    super({ ...options, mode: "transcription" });
  }
}
