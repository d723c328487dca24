// AudioWorkletProcessor "vani-playback": plays the assistant's audio from its own buffer, in order.
//
// The main thread forwards the server's events and frames as port messages, in arrival order, so
// this processor sees them in exactly the order the socket delivered them:
//   {type: "start", turnId, sampleRate}   audio.start: this turn is now the current one; whatever is
//                                         still buffered from an older turn is dropped
//   {type: "chunk", turnId, index, pcm}   one frame's linear16 samples (header already removed)
//   {type: "end", turnId}                 audio.end: no more frames for the turn
//   {type: "clear", turnId}               audio.clear: flush now, drop any later frame of the turn
//   {type: "pause", turnId}               audio.pause: stop playing the turn where it is; keep its buffer
//                                         (and any frame still arriving) for a resume
//   {type: "resume", turnId}              audio.resume: play on from exactly where it paused
//
// Messages out (to the main thread):
//   {type: "played", turnId, index}       a chunk finished playing
//   {type: "dropped", turnId, index, why} a chunk was not played (not current, cleared, superseded, overflow)
//   {type: "cleared", turnId, flushedChunks, playedMs}   the clear was applied (nothing of the turn plays after)
//   {type: "progress", turnId, playedMs, done}           how much of the current turn was heard
//   {type: "paused", turnId, playedMs, bufferedChunks}   the pause was applied (paused time is never
//   {type: "resumed", turnId, playedMs}                  counted as played)
//
// The source rate (24 kHz by default) is resampled to the context's rate by linear interpolation.

const REPORT_EVERY_S = 0.1;
const MAX_BUFFERED_S = 30; // a conforming server stays ~300 ms ahead; this only guards memory

class VaniPlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.turn = null; // current turn id, or null (none yet / cleared)
    this.rate = 24000;
    this.queue = []; // [{turnId, index, data: Float32Array}] of the current turn only
    this.queued = 0; // samples in queue
    this.pos = 0; // fractional read position in queue[0], in source samples
    this.played = 0; // source samples of the current turn fully played
    this.ended = false;
    this.doneReported = false;
    this.lastReport = 0;
    this.cleared = new Set();
    this.pausedTurn = null; // the turn whose playback is paused (audio.pause), until its audio.resume / clear
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(m) {
    if (m.type === "start" && m.turnId === this.turn) {
      // The server announces the playing turn again to a resumed connection: keep what is buffered.
      this.rate = m.sampleRate || this.rate;
    } else if (m.type === "start") {
      this.flush("superseded");
      this.turn = this.cleared.has(m.turnId) ? null : m.turnId;
      this.rate = m.sampleRate || 24000;
      this.played = 0;
      this.ended = false;
      this.doneReported = false;
    } else if (m.type === "chunk") {
      if (m.turnId !== this.turn) {
        const why = this.cleared.has(m.turnId) ? "cleared" : "not_current";
        this.port.postMessage({ type: "dropped", turnId: m.turnId, index: m.index, why });
        return;
      }
      if (this.queued / this.rate > MAX_BUFFERED_S) {
        this.port.postMessage({ type: "dropped", turnId: m.turnId, index: m.index, why: "overflow" });
        return;
      }
      const s16 = new Int16Array(m.pcm);
      const f32 = new Float32Array(s16.length);
      for (let i = 0; i < s16.length; i++) f32[i] = s16[i] / 32768;
      this.queue.push({ turnId: m.turnId, index: m.index, data: f32 });
      this.queued += f32.length;
    } else if (m.type === "end") {
      if (m.turnId === this.turn) this.ended = true;
    } else if (m.type === "clear") {
      this.cleared.add(m.turnId);
      if (this.cleared.size > 256) this.cleared.delete(this.cleared.values().next().value);
      const wasCurrent = m.turnId === this.turn;
      const flushed = wasCurrent ? this.queue.length : 0;
      const playedMs = wasCurrent ? this.playedMs() : 0;
      if (this.pausedTurn === m.turnId) this.pausedTurn = null;
      if (wasCurrent) {
        this.queue = [];
        this.queued = 0;
        this.pos = 0;
        this.turn = null;
      }
      this.port.postMessage({ type: "cleared", turnId: m.turnId, flushedChunks: flushed, playedMs });
    } else if (m.type === "pause") {
      this.pausedTurn = m.turnId;
      const current = m.turnId === this.turn;
      this.port.postMessage({
        type: "paused",
        turnId: m.turnId,
        playedMs: current ? Math.floor(this.playedMs()) : 0,
        bufferedChunks: current ? this.queue.length : 0,
      });
    } else if (m.type === "resume") {
      if (this.pausedTurn === m.turnId) this.pausedTurn = null;
      const playedMs = m.turnId === this.turn ? Math.floor(this.playedMs()) : 0;
      this.port.postMessage({ type: "resumed", turnId: m.turnId, playedMs });
    } else if (m.type === "reset") {
      this.flush("reset");
      this.turn = null;
    }
  }

  flush(why) {
    for (const c of this.queue) this.port.postMessage({ type: "dropped", turnId: c.turnId, index: c.index, why });
    this.queue = [];
    this.queued = 0;
    this.pos = 0;
  }

  playedMs() {
    return ((this.played + Math.floor(this.pos)) * 1000) / this.rate;
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const frames = out[0].length;
    const step = this.rate / sampleRate; // source samples per output sample
    const paused = this.turn !== null && this.pausedTurn === this.turn; // silence; the buffer waits
    for (let i = 0; i < frames; i++) {
      let s = 0;
      if (this.queue.length && !paused) {
        const c = this.queue[0].data;
        const i0 = Math.floor(this.pos);
        const frac = this.pos - i0;
        const a = c[i0];
        const b = i0 + 1 < c.length ? c[i0 + 1] : this.queue.length > 1 ? this.queue[1].data[0] : a;
        s = a + (b - a) * frac;
        this.pos += step;
        while (this.queue.length && this.pos >= this.queue[0].data.length) {
          const done = this.queue.shift();
          this.pos -= done.data.length;
          this.queued -= done.data.length;
          this.played += done.data.length;
          this.port.postMessage({ type: "played", turnId: done.turnId, index: done.index });
        }
        if (!this.queue.length) this.pos = 0;
      }
      for (let ch = 0; ch < out.length; ch++) out[ch][i] = s;
    }
    if (this.turn !== null && !this.doneReported) {
      // Done: the server sent everything and all of it was heard. The last report rounds up, so the
      // server's "heard it all" check (played >= sent) holds exactly.
      const done = this.ended && this.queue.length === 0;
      if (done || currentTime - this.lastReport >= REPORT_EVERY_S) {
        this.lastReport = currentTime;
        const playedMs = done ? Math.ceil((this.played * 1000) / this.rate) : Math.floor(this.playedMs());
        if (playedMs > 0 || done) this.port.postMessage({ type: "progress", turnId: this.turn, playedMs, done });
        if (done) this.doneReported = true;
      }
    }
    return true;
  }
}

registerProcessor("vani-playback", VaniPlaybackProcessor);
