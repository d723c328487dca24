// AudioWorkletProcessor "flux-capture": the microphone, at whatever rate the AudioContext runs
// (44.1 / 48 kHz usually), resampled to 16 kHz linear16 mono and posted to the main thread in
// fixed chunks of 4096 samples (256 ms, 8192 bytes): the size vani and Flux handle best.
//
// Messages in:  {type: "mute", muted: bool}  muted -> zeros instead of mic samples, so the stream
//               keeps its real-time pace (the server's audio clock and end-of-turn keep running).
// Messages out: {type: "chunk", pcm: ArrayBuffer (Int16 LE), peak: 0..1}  (the buffer is transferred)

const OUT_RATE = 16000;
const CHUNK_SAMPLES = 4096;

class FluxCaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.outRate = o.outRate || OUT_RATE;
    this.chunkSamples = o.chunkSamples || CHUNK_SAMPLES;
    // `sampleRate` is the AudioContext's rate (a global of the worklet scope).
    this.step = sampleRate / this.outRate; // input samples per output sample
    this.buf = new Int16Array(this.chunkSamples);
    this.n = 0;
    this.peak = 0;
    this.muted = false;
    // Downsampling (step >= 1): average the input samples that fall in each output period — a box
    // filter, cheap and enough to keep speech-band aliasing out of a 16 kHz STT input.
    this.acc = 0;
    this.count = 0;
    this.phase = 0;
    // Upsampling (step < 1, a context below 16 kHz): linear interpolation between input samples.
    this.prev = 0;
    this.t = 0;
    this.port.onmessage = (e) => {
      if (e.data && e.data.type === "mute") this.muted = !!e.data.muted;
    };
  }

  emit(x) {
    const v = this.muted ? 0 : Math.max(-1, Math.min(1, x));
    const a = Math.abs(v);
    if (a > this.peak) this.peak = a;
    this.buf[this.n++] = v < 0 ? v * 0x8000 : v * 0x7fff;
    if (this.n === this.chunkSamples) {
      // Int16Array is little-endian on every platform browsers run on, as linear16 wants.
      this.port.postMessage({ type: "chunk", pcm: this.buf.buffer, peak: this.peak }, [this.buf.buffer]);
      this.buf = new Int16Array(this.chunkSamples);
      this.n = 0;
      this.peak = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    // No channels: the mic track ended or is not connected yet. Keep the processor alive; the
    // client's keep-alive covers the silence on the wire.
    if (!input || input.length === 0) return true;
    const ch = input[0]; // the node is created with channelCount 1 (explicit): already mono
    if (this.step >= 1) {
      for (let i = 0; i < ch.length; i++) {
        this.acc += ch[i];
        this.count++;
        this.phase += 1;
        if (this.phase >= this.step) {
          this.phase -= this.step;
          this.emit(this.acc / this.count);
          this.acc = 0;
          this.count = 0;
        }
      }
    } else {
      for (let i = 0; i < ch.length; i++) {
        const x = ch[i];
        while (this.t < 1) {
          this.emit(this.prev + (x - this.prev) * this.t);
          this.t += this.step;
        }
        this.t -= 1;
        this.prev = x;
      }
    }
    return true;
  }
}

registerProcessor("flux-capture", FluxCaptureProcessor);
