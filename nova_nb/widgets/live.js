// nova_nb LiveAudio: browser microphone in, model speech out. The Python side is widgets/_live.py.
//
// One audio engine per widget model (made in initialize), however many views show it: two views of
// one widget must not open the microphone twice. Views only draw the controls and the level meter.
//
// Messages (custom widget messages; audio always travels as binary buffers, never base64):
//   page -> kernel  {type: "hello"}                                      a view exists
//                   {type: "frame", seq, sent, rms} + [int16 PCM]        ~20 ms of mic at input_rate
//                   {type: "played", id, played_s, final}                playback position of a reply
//                   {type: "started", seq, sent, at}                     a chunk began to sound
//                   {type: "flushed", token, id, played_s, dropped, at}  playback was emptied
//   kernel -> page  {type: "play", id, seq, sent} + [int16 PCM]          queue a chunk (output_rate)
//                   {type: "flush", token}                               stop playback now
// Times `sent`/`at` are wall-clock milliseconds (performance.timeOrigin + performance.now()), the
// clock the kernel's time.time() shares on one machine: that is how one-way latencies are measured.

const now = () => performance.timeOrigin + performance.now();

function describeError(err) {
  const name = (err && err.name) || "";
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
    return "Microphone permission was denied. Allow the microphone for this site (the icon in the " +
      "address bar) and press Start again.";
  }
  if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
    return "No microphone was found. Connect one (or pick an input device in your system settings) " +
      "and press Start again.";
  }
  if (name === "NotReadableError" || name === "TrackStartError") {
    return "The microphone is in use by another application or could not be opened.";
  }
  return `Could not start audio: ${name ? name + ": " : ""}${(err && err.message) || err}`;
}

class Engine {
  constructor(model) {
    this.model = model;
    this.views = new Set();
    this.running = false;
    this.starting = null;
    this.capture = null; // {ctx, stream, src, node, sink}
    this.player = null; // {ctx, node}
    this.level = 0;
    this.stats = {
      framesSent: 0, deviceRate: 0, chunksQueued: 0, chunksStarted: 0, audibleSamples: 0,
      lastAudibleAt: 0, flushes: [], error: "", echoCancellation: null,
    };
    this.moduleUrl = null;
    this.onMsg = (msg, buffers) => this.handle(msg, buffers);
    this.onCapture = () => {
      const want = this.model.get("capture");
      if (want && !this.running && !this.starting) this.start();
      else if (!want && (this.running || this.starting)) this.stop();
    };
    this.onEcho = () => {
      if (this.running) this.restartCapture();
    };
    model.on("msg:custom", this.onMsg);
    model.on("change:capture", this.onCapture);
    model.on("change:echo_cancellation", this.onEcho);
    (window.__novaNbLive = window.__novaNbLive || []).push(this.stats);
  }

  dispose() {
    this.model.off("msg:custom", this.onMsg);
    this.model.off("change:capture", this.onCapture);
    this.model.off("change:echo_cancellation", this.onEcho);
    this.stop();
    if (this.player) {
      this.player.ctx.close();
      this.player = null;
    }
    if (this.moduleUrl) URL.revokeObjectURL(this.moduleUrl);
  }

  setState(patch) {
    for (const [k, v] of Object.entries(patch)) this.model.set(k, v);
    this.model.save_changes();
    this.redraw();
  }

  redraw() {
    for (const v of this.views) v.update();
  }

  workletUrl() {
    if (!this.moduleUrl) {
      const src = this.model.get("_worklet");
      this.moduleUrl = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
    }
    return this.moduleUrl;
  }

  async ensurePlayer() {
    if (this.player) {
      if (this.player.ctx.state === "suspended") await this.player.ctx.resume();
      return this.player;
    }
    // The player runs at the model's output rate; the browser converts to the device's rate.
    const ctx = new AudioContext({ sampleRate: this.model.get("output_rate"), latencyHint: "interactive" });
    const ready = ctx.audioWorklet.addModule(this.workletUrl()).then(() => {
      const node = new AudioWorkletNode(ctx, "nova-player", { numberOfInputs: 0, outputChannelCount: [1] });
      node.port.onmessage = (e) => this.fromPlayer(e.data);
      node.connect(ctx.destination);
      this.player.node = node;
      for (const m of this.player.pending) node.port.postMessage(m, m.buffer ? [m.buffer] : []);
      this.player.pending = [];
    });
    this.player = { ctx, node: null, pending: [], ready };
    await ready;
    if (ctx.state === "suspended") await ctx.resume();
    return this.player;
  }

  toPlayer(msg) {
    const p = this.player;
    if (p && p.node) p.node.port.postMessage(msg, msg.buffer ? [msg.buffer] : []);
    else if (p) p.pending.push(msg);
  }

  // context time of the player -> wall-clock ms at which that sample leaves the speakers
  playerTimeToWall(t) {
    const ctx = this.player && this.player.ctx;
    if (!ctx) return now();
    const ts = ctx.getOutputTimestamp ? ctx.getOutputTimestamp() : null;
    if (ts && ts.performanceTime) {
      return performance.timeOrigin + ts.performanceTime + (t - ts.contextTime) * 1000;
    }
    return now() + (t - ctx.currentTime) * 1000;
  }

  fromPlayer(m) {
    const rate = this.model.get("output_rate");
    if (m.type === "played") {
      if (m.id != null) this.model.send({ type: "played", id: m.id, played_s: m.played / rate, final: false });
    } else if (m.type === "started") {
      this.stats.chunksStarted++;
      // `rendered`: the worklet had produced the chunk's first sample (its message reached us);
      // `at`: that sample leaves the speakers (adds the device's output latency).
      this.model.send({ type: "started", seq: m.seq, sent: m.sent, received: m.received, rendered: now(),
        at: this.playerTimeToWall(m.t) });
    } else if (m.type === "flushed") {
      // `at`: when the first silent sample leaves the speakers (includes the output latency);
      // `handled`: when the audio thread had already emptied its queue (an upper bound).
      const at = this.playerTimeToWall(m.t);
      const handled = now();
      this.stats.flushes.push({ token: m.token, at, handled, dropped: m.dropped });
      this.model.send({ type: "flushed", token: m.token, id: m.id, played_s: m.played / rate,
        dropped: m.dropped, at, handled, received: m.received });
      if (m.id != null) this.model.send({ type: "played", id: m.id, played_s: m.played / rate, final: true });
    } else if (m.type === "tap") {
      this.stats.audibleSamples = m.audible;
      this.stats.lastAudibleAt = this.playerTimeToWall(m.lastAudible);
    }
  }

  handle(msg, buffers) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "play") {
      const view = buffers && buffers[0];
      if (!view) return;
      // Copy out of the message's buffer so it can be transferred to the audio thread.
      const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
      this.stats.chunksQueued++;
      if (!this.player) this.ensurePlayer().catch((e) => this.fail(e));
      this.toPlayer({ type: "chunk", buffer: bytes.buffer, id: msg.id, seq: msg.seq, sent: msg.sent,
        received: now() });
    } else if (msg.type === "flush") {
      if (this.player) this.toPlayer({ type: "flush", token: msg.token, received: now() });
      else this.model.send({ type: "flushed", token: msg.token, id: null, played_s: 0, dropped: 0, at: now() });
    }
  }

  fail(err) {
    const message = typeof err === "string" ? err : describeError(err);
    this.stats.error = message;
    this.setState({ error: message, status: "error", capture: false });
  }

  async openMic() {
    const ec = this.model.get("echo_cancellation");
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: ec, noiseSuppression: ec, autoGainControl: true, channelCount: 1 },
      video: false,
    });
    const track = stream.getAudioTracks()[0];
    const settings = track && track.getSettings ? track.getSettings() : {};
    this.stats.echoCancellation = settings.echoCancellation ?? ec;
    track.onended = () => this.fail("The microphone was disconnected.");
    return stream;
  }

  async start() {
    if (!window.isSecureContext) {
      this.fail("The microphone needs a secure page: open JupyterLab over https:// or on localhost " +
        "(this page is " + location.protocol + "//" + location.host + ").");
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.fail("This browser gives no access to microphones (navigator.mediaDevices is missing).");
      return;
    }
    this.setState({ error: "", status: "starting" });
    this.starting = (async () => {
      try {
        const stream = await this.openMic();
        // Capture runs at the device's own rate (44.1 or 48 kHz, ...); the worklet resamples.
        const ctx = new AudioContext({ latencyHint: "interactive" });
        await ctx.audioWorklet.addModule(this.workletUrl());
        const src = ctx.createMediaStreamSource(stream);
        const node = new AudioWorkletNode(ctx, "nova-capture", {
          numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
          processorOptions: { outRate: this.model.get("input_rate"), frameMs: this.model.get("frame_ms") },
        });
        // A silent sink keeps the node pulled by the graph; nothing of the mic reaches the speakers.
        const sink = ctx.createGain();
        sink.gain.value = 0;
        node.port.onmessage = (e) => this.fromCapture(e.data);
        this.capturing = true;
        src.connect(node).connect(sink).connect(ctx.destination);
        if (ctx.state === "suspended") await ctx.resume();
        this.capture = { ctx, stream, src, node, sink };
        await this.ensurePlayer();
        this.running = true;
        this.stats.deviceRate = ctx.sampleRate;
        this.stats.outputLatency = this.player.ctx.outputLatency || 0;
        this.stats.baseLatency = this.player.ctx.baseLatency || 0;
        this.setState({ running: true, capture: true, status: "listening", device_rate: ctx.sampleRate });
      } catch (err) {
        this.closeCapture();
        this.fail(err);
      } finally {
        this.starting = null;
      }
    })();
    return this.starting;
  }

  fromCapture(m) {
    if (m.type !== "frame" || !this.capturing) return;
    this.level = Math.max(m.rms, this.level * 0.8);
    this.stats.framesSent++;
    this.model.send({ type: "frame", seq: m.seq, sent: now(), rms: m.rms }, undefined, [m.buffer]);
    // Redraw the meter at most ~15 times a second: enough for the eye, light on the page.
    const t = performance.now();
    if (!this.drawQueued && t - (this.lastDraw || 0) > 66) {
      this.drawQueued = true;
      requestAnimationFrame(() => {
        this.drawQueued = false;
        this.lastDraw = performance.now();
        for (const v of this.views) v.meter(this.level);
      });
    }
  }

  async restartCapture() {
    const c = this.capture;
    if (!c) return;
    try {
      const stream = await this.openMic();
      const src = c.ctx.createMediaStreamSource(stream);
      src.connect(c.node);
      c.src.disconnect();
      c.stream.getTracks().forEach((t) => t.stop());
      Object.assign(c, { stream, src });
      this.redraw();
    } catch (err) {
      this.fail(err);
    }
  }

  closeCapture() {
    this.capturing = false;
    const c = this.capture;
    this.capture = null;
    if (!c) return;
    try {
      c.node.port.postMessage({ type: "stop" });
      c.src.disconnect();
    } catch (_e) {
      /* already gone */
    }
    c.stream.getTracks().forEach((t) => t.stop());
    c.ctx.close();
  }

  stop() {
    this.running = false;
    this.closeCapture();
    this.level = 0;
    if (this.model.get("running") || this.model.get("capture")) {
      this.setState({ running: false, capture: false, status: "stopped" });
    }
  }
}

// anywidget hands initialize() and each render() their own proxy of the model, so the engine is found
// by the widget's id (a trait set by Python), not by the model object.
const engines = new Map();

function engineFor(model) {
  const id = model.get("_id");
  let engine = engines.get(id);
  if (!engine) {
    engine = new Engine(model);
    engines.set(id, engine);
    model.send({ type: "hello" });
  }
  return engine;
}

function initialize({ model }) {
  const id = model.get("_id");
  engineFor(model);
  return () => {
    const engine = engines.get(id);
    engines.delete(id);
    if (engine) engine.dispose();
  };
}

function render({ model, el }) {
  const engine = engineFor(model);
  const root = document.createElement("div");
  root.className = "nova-live";
  root.style.cssText = "display:flex;flex-wrap:wrap;align-items:center;gap:8px;font:13px sans-serif;";
  const button = document.createElement("button");
  button.className = "nova-live-start jupyter-button";
  const ecLabel = document.createElement("label");
  ecLabel.title = "Echo cancellation: keep on with open speakers, or the model hears itself and stops.";
  const ec = document.createElement("input");
  ec.type = "checkbox";
  ec.className = "nova-live-aec";
  ecLabel.append(ec, " echo cancellation");
  const meter = document.createElement("div");
  meter.className = "nova-live-meter";
  meter.title = "microphone level";
  meter.style.cssText = "width:120px;height:10px;background:#ddd;border-radius:3px;overflow:hidden;";
  const bar = document.createElement("div");
  bar.style.cssText = "height:100%;width:0;background:#2a9d4b;";
  meter.append(bar);
  const status = document.createElement("span");
  status.className = "nova-live-status";
  const error = document.createElement("div");
  error.className = "nova-live-error";
  error.style.cssText = "flex-basis:100%;color:#b00020;";
  root.append(button, ecLabel, meter, status, error);
  el.append(root);

  const view = {
    update() {
      const on = model.get("running");
      button.textContent = on ? "◼ Stop microphone" : "● Start microphone";
      ec.checked = model.get("echo_cancellation");
      const rate = model.get("device_rate");
      status.textContent = model.get("status") + (on && rate ? ` (${rate} Hz → ${model.get("input_rate")} Hz)` : "");
      error.textContent = model.get("error");
      error.style.display = model.get("error") ? "" : "none";
      if (!on) bar.style.width = "0";
    },
    meter(level) {
      // dBFS mapped to 0..100%: -60 dBFS and below is empty.
      const db = 20 * Math.log10(Math.max(level, 1e-6));
      bar.style.width = `${Math.max(0, Math.min(100, ((db + 60) / 60) * 100))}%`;
    },
  };
  engine.views.add(view);
  button.addEventListener("click", () => {
    // Start from the click itself: browsers let audio start inside a user gesture.
    if (engine.running || engine.starting) {
      engine.stop();
    } else {
      engine.start();
    }
  });
  ec.addEventListener("change", () => {
    model.set("echo_cancellation", ec.checked);
    model.save_changes();
  });
  const redraw = () => view.update();
  for (const name of ["running", "status", "error", "echo_cancellation", "device_rate"]) {
    model.on(`change:${name}`, redraw);
  }
  view.update();
  return () => {
    engine.views.delete(view);
    for (const name of ["running", "status", "error", "echo_cancellation", "device_rate"]) {
      model.off(`change:${name}`, redraw);
    }
  };
}

export default { initialize, render };
