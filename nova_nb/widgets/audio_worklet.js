// nova_nb's AudioWorklet processors: microphone capture (resampled to the model's input rate) and
// gap-free playback of the model's PCM. Loaded by live.js with audioWorklet.addModule() from a Blob
// URL: the Python widget sends this file's text as a trait, so there is no build step and no CDN.
//
// Runs on the audio rendering thread: no allocation in the steady state where avoidable, no DOM.

// ---- capture ---------------------------------------------------------------------------------------

// Windowed-sinc resampler, any rate to any rate. A Kaiser-windowed low-pass at 15/32 of the lower
// rate (7.5 kHz for 16 kHz output) with a transition band of 1/16 of it (7 kHz passes, 8 kHz and above
// are attenuated by >= ~70 dB), evaluated at fractional input positions from a table of PHASES phases.
// Linear interpolation or decimation without such a filter folds 8-22 kHz (sibilants, keyboard
// clicks, fan noise) back into the speech band.
const PHASES = 256;

// Wall-clock milliseconds on the audio thread, the clock the kernel's time.time() reads: frames are
// stamped here, when captured, so delays on the page's main thread are part of the measured latency.
// (Chromium gives AudioWorkletGlobalScope no `performance`; Date.now() is the same wall clock at 1 ms.)
const wallNow =
  typeof performance !== "undefined" && performance.timeOrigin
    ? () => performance.timeOrigin + performance.now()
    : () => Date.now();
const STOPBAND_DB = 72;

function besselI0(x) {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) * (x / (2 * k));
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

class Resampler {
  constructor(inRate, outRate) {
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate; // input samples per output sample
    const low = Math.min(inRate, outRate);
    const cutoff = (low * 15) / 32 / inRate; // cycles per input sample
    const transition = low / 16 / inRate;
    // Kaiser's formulas (Oppenheim & Schafer 7.6): length and beta for the stop-band attenuation.
    const taps = Math.ceil((STOPBAND_DB - 7.95) / (2.285 * 2 * Math.PI * transition)) + 1;
    this.half = Math.max(2, Math.ceil(taps / 2));
    const beta = 0.1102 * (STOPBAND_DB - 8.7);
    const i0beta = besselI0(beta);
    const width = 2 * this.half;
    this.table = new Float32Array((PHASES + 1) * width);
    for (let p = 0; p <= PHASES; p++) {
      const frac = p / PHASES;
      let sum = 0;
      for (let j = 0; j < width; j++) {
        const t = j - (this.half - 1) - frac; // distance in input samples from the output position
        const x = 2 * cutoff * t;
        const sinc = t === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
        const r = t / this.half;
        const w = Math.abs(r) >= 1 ? 0 : besselI0(beta * Math.sqrt(1 - r * r)) / i0beta;
        const h = 2 * cutoff * sinc * w;
        this.table[p * width + j] = h;
        sum += h;
      }
      for (let j = 0; j < width; j++) this.table[p * width + j] /= sum; // unity gain at DC
    }
    this.width = width;
    // Input history: buf[0] is absolute input sample `base`. `pos` is the absolute input position of
    // the next output sample. Start with half a filter of zeros so the first outputs are defined.
    this.buf = new Float32Array(8192);
    this.len = this.half;
    this.base = -this.half;
    this.pos = 0;
  }

  // Push input samples; returns how many output samples were written into `out` (from `offset`).
  push(input, out, offset, emit) {
    if (this.len + input.length > this.buf.length) {
      const keep = this.len;
      const bigger = new Float32Array(Math.max(this.buf.length * 2, keep + input.length));
      bigger.set(this.buf.subarray(0, keep));
      this.buf = bigger;
    }
    this.buf.set(input, this.len);
    this.len += input.length;
    const table = this.table;
    const width = this.width;
    const half = this.half;
    for (;;) {
      let i0 = Math.floor(this.pos);
      let phase = Math.round((this.pos - i0) * PHASES);
      // The window needs input samples up to i0 + half.
      if (i0 + half >= this.base + this.len) break;
      const start = i0 - (half - 1) - this.base;
      const row = phase * width;
      let acc = 0;
      for (let j = 0; j < width; j++) acc += this.buf[start + j] * table[row + j];
      emit(acc);
      this.pos += this.step;
    }
    // Drop history the filter no longer needs.
    const needed = Math.floor(this.pos) - (half - 1) - this.base;
    if (needed > 4096) {
      this.buf.copyWithin(0, needed, this.len);
      this.len -= needed;
      this.base += needed;
    }
  }
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.outRate = o.outRate || 16000;
    this.frameSamples = Math.round((this.outRate * (o.frameMs || 20)) / 1000);
    this.resampler = new Resampler(sampleRate, this.outRate);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.sumSquares = 0;
    this.peak = 0;
    this.frames = 0;
    this.emit = (x) => {
      const v = x > 1 ? 1 : x < -1 ? -1 : x;
      this.frame[this.filled++] = v < 0 ? Math.round(v * 32768) : Math.round(v * 32767);
      this.sumSquares += v * v;
      const a = v < 0 ? -v : v;
      if (a > this.peak) this.peak = a;
      if (this.filled === this.frameSamples) this.flushFrame();
    };
    this.port.onmessage = (e) => {
      if (e.data && e.data.type === "stop") this.stopped = true;
    };
  }

  flushFrame() {
    const rms = Math.sqrt(this.sumSquares / this.frameSamples);
    const buffer = this.frame.buffer;
    // `captured`: the frame's last sample has just been captured (this render quantum is being
    // processed now); `t`: the context time of the quantum. `seq` counts frames, so the kernel can
    // tell a lost frame from a late one.
    this.port.postMessage(
      { type: "frame", buffer, rms, peak: this.peak, seq: this.frames++, t: currentTime, captured: wallNow() },
      [buffer],
    );
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.sumSquares = 0;
    this.peak = 0;
  }

  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    if (input && input.length > 0) {
      // Down-mix to mono.
      let mono = input[0];
      if (input.length > 1) {
        mono = new Float32Array(input[0].length);
        for (let c = 0; c < input.length; c++) {
          const ch = input[c];
          for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / input.length;
        }
      }
      this.resampler.push(mono, null, 0, this.emit);
    } else {
      // No input connected (device gone): keep audio time flowing with silence, as a muted mic does.
      this.resampler.push(new Float32Array(128), null, 0, this.emit);
    }
    return true;
  }
}

registerProcessor("nova-capture", CaptureProcessor);

// ---- playback --------------------------------------------------------------------------------------

// Plays 16-bit PCM chunks in order with no gaps between them. Runs in a context at the model's output
// rate (the browser resamples to the device). Reports how many samples of each reply were played, so
// the session knows what the user actually heard; a "flush" message empties the queue at once (the
// next render quantum, 128 samples = 5.3 ms at 24 kHz, is already silent).
const REPORT_EVERY_S = 0.1;

class PlayerProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // {pcm: Int16Array, id, seq, sent, read}
    this.played = new Map(); // content id -> samples played
    this.lastReport = 0;
    this.current = null;
    this.audible = 0;
    this.tapPeak = 0;
    this.lastTap = 0;
    this.lastAudible = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    if (msg.type === "chunk") {
      // A chunk that finds the player idle starts playback: that start is what latency is measured on
      // (a chunk queued behind others starts when they end, which says nothing about the transport).
      const fresh = this.queue.length === 0;
      this.queue.push({ pcm: new Int16Array(msg.buffer), id: msg.id, seq: msg.seq, sent: msg.sent, read: 0, fresh,
        received: msg.received });
    } else if (msg.type === "flush") {
      const dropped = this.queue.reduce((n, c) => n + c.pcm.length - c.read, 0);
      const head = this.queue.length ? this.queue[0].id : this.current;
      this.queue.length = 0;
      this.port.postMessage({
        type: "flushed",
        id: head,
        played: head != null ? this.played.get(head) || 0 : 0,
        dropped,
        t: currentTime,
        token: msg.token,
        received: msg.received,
      });
    } else if (msg.type === "stop") {
      this.stopped = true;
    }
  }

  process(_inputs, outputs) {
    if (this.stopped) return false;
    const out = outputs[0][0];
    let i = 0;
    let startedAny = null;
    let peak = 0;
    while (i < out.length && this.queue.length) {
      const c = this.queue[0];
      if (c.read === 0 && c.fresh) {
        startedAny = startedAny || { seq: c.seq, sent: c.sent, received: c.received, offset: i };
      }
      const n = Math.min(out.length - i, c.pcm.length - c.read);
      for (let k = 0; k < n; k++) {
        const v = c.pcm[c.read + k] / 32768;
        out[i + k] = v;
        if (v > peak) peak = v;
        else if (-v > peak) peak = -v;
      }
      i += n;
      c.read += n;
      if (c.id != null) this.played.set(c.id, (this.played.get(c.id) || 0) + n);
      this.current = c.id;
      if (c.read >= c.pcm.length) {
        this.queue.shift();
        if (!this.queue.length || this.queue[0].id !== c.id) {
          this.port.postMessage({ type: "played", id: c.id, played: this.played.get(c.id) || 0, t: currentTime });
        }
      }
    }
    for (; i < out.length; i++) out[i] = 0;
    for (let ch = 1; ch < outputs[0].length; ch++) outputs[0][ch].set(out);
    if (startedAny) {
      this.port.postMessage({ type: "started", seq: startedAny.seq, sent: startedAny.sent, received: startedAny.received,
        t: currentTime + startedAny.offset / sampleRate });
    }
    // The tap: how much audible sound left this node (tests and the page's "playing" indicator).
    if (peak > 1e-3) {
      this.audible += out.length;
      if (peak > this.tapPeak) this.tapPeak = peak;
      this.lastAudible = currentTime + out.length / sampleRate;
    }
    if (currentTime - this.lastTap >= 0.05 && (this.audible || this.tapPeak || this.queue.length)) {
      const queued = this.queue.reduce((n, c) => n + c.pcm.length - c.read, 0);
      this.port.postMessage({ type: "tap", audible: this.audible, peak: this.tapPeak, lastAudible: this.lastAudible,
        t: currentTime, queued });
      this.lastTap = currentTime;
      this.tapPeak = 0;
    }
    if (this.current != null && currentTime - this.lastReport >= REPORT_EVERY_S && this.queue.length) {
      this.lastReport = currentTime;
      this.port.postMessage({ type: "played", id: this.current, played: this.played.get(this.current) || 0,
        t: currentTime });
    }
    return true;
  }
}

registerProcessor("nova-player", PlayerProcessor);
