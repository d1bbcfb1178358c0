// nova_nb LiveAudio: browser microphone in, model speech out. The Python side is widgets/_live.py.
//
// One audio engine per widget model (made in initialize), however many views show it: two views of
// one widget must not open the microphone twice. Views draw the controls, the level meter and status.
//
// Modes (the `mode` trait):
//   "standalone"  its own microphone button; says where frames go (a session, callbacks, or nowhere).
//   "panel"       inside a SessionPanel: Start/Stop and Mute are the only controls; Start opens the
//                 microphone (in the click, a user gesture) and asks the kernel for the session; Stop
//                 closes both. There is no separate microphone button.
//   "ptt"         inside PushToTalk: Record / Stop and send, plus the reply's playback.
//
// Messages (custom widget messages; audio always travels as binary buffers, never base64):
//   page -> kernel  {type: "hello"}                                          a view exists
//                   {type: "frame", seq, epoch, captured, sent, rms} + [PCM]  ~20 ms of mic, input_rate
//                   {type: "played", id, played_s, final, at}                 playback position of a reply
//                   {type: "started", seq, sent, received, rendered, at}      a chunk began to sound
//                   {type: "flushed", token, id, played_s, dropped, at, handled, received}
//                   {type: "control", action, ...}                            Start/Stop/Mute/Record pressed
//   kernel -> page  {type: "play", id, seq, sent} + [int16 PCM]              queue a chunk (output_rate)
//                   {type: "flush", token}                                   stop playback now
//                   {type: "kstats", ...}                                    the kernel's frame counters
// Times are wall-clock milliseconds, the clock the kernel's time.time() shares on one machine: that is
// how one-way latencies are measured. `captured` is stamped in the AudioWorklet when the frame's last
// sample was captured, so main-thread delays count; `sent` is when the main thread posted it.
//
// Page-side hooks for tests and tools (per widget, no globals): every view's root element has
// data-testid="nova-live" and data-widget-id=<the widget's id>, and its `novaLive` property is the
// engine's API: {id, model, state(), events(type?), on(type, fn) -> off, waitFor(type, pred, ms)}.
// Events ("frame", "started", "played", "flushed", "state", "control", "error") are also dispatched as
// DOM CustomEvents named "nova-live" (detail {type, ...}) that bubble from each view's root, and the
// state is mirrored to the model's `page_state` trait (so the kernel sees it too).

const now = () => performance.timeOrigin + performance.now();
const EVENT_LOG_MAX = 500;
const STATE_EVERY_MS = 250;
const PENDING_MS = 3000;

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
    this.id = model.get("_id");
    this.views = new Set();
    this.running = false;
    this.starting = null;
    this.capture = null; // {ctx, stream, src, node, sink}
    this.player = null; // {ctx, node}
    this.level = 0;
    this.epoch = 0; // one per opening of the microphone: sequence numbers restart with it
    this.expectSeq = 0;
    this.frameTimes = []; // page times of recent frames, for frames/s
    this.kstats = null; // the kernel's counters, as last reported
    this.pending = null; // a control pressed here that the kernel has not answered yet
    this.startToken = 0;
    this.state = {
      id: this.id, mode: model.get("mode"), running: false, framesSent: 0, lastSeq: -1, pageGaps: 0,
      framesPerSecond: 0, deviceRate: 0, echoCancellation: null, chunksQueued: 0, chunksStarted: 0,
      audibleSamples: 0, lastAudibleAt: 0, playing: false, flushes: [], lastFlush: null,
      outputLatency: 0, baseLatency: 0, playbackClock: null, error: "",
    };
    this.eventLog = [];
    this.target = new EventTarget();
    this.moduleUrl = null;
    this.stateTimer = null;
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
    const engine = this;
    this.api = {
      id: this.id,
      model,
      state: () => JSON.parse(JSON.stringify(engine.state)),
      events: (type) => engine.eventLog.filter((e) => !type || e.type === type).map((e) => ({ ...e })),
      on(type, fn) {
        const listener = (e) => fn(e.detail);
        engine.target.addEventListener(type, listener);
        return () => engine.target.removeEventListener(type, listener);
      },
      waitFor(type, pred = () => true, timeoutMs = 10000) {
        return new Promise((resolve, reject) => {
          const off = this.on(type, (d) => {
            if (pred(d)) {
              clearTimeout(timer);
              off();
              resolve(d);
            }
          });
          const timer = setTimeout(() => {
            off();
            reject(new Error(`no "${type}" event within ${timeoutMs} ms`));
          }, timeoutMs);
        });
      },
      start: () => engine.start(),
      stop: () => engine.stop(),
    };
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
    clearTimeout(this.stateTimer);
  }

  // -- page-side events and state ------------------------------------------------------------------

  emit(type, detail = {}, publishNow = false) {
    const event = { type, t: now(), ...detail };
    this.eventLog.push(event);
    if (this.eventLog.length > EVENT_LOG_MAX) this.eventLog.splice(0, this.eventLog.length - EVENT_LOG_MAX);
    this.target.dispatchEvent(new CustomEvent(type, { detail: event }));
    for (const v of this.views) v.root.dispatchEvent(new CustomEvent("nova-live", { detail: event, bubbles: true }));
    this.publish(publishNow);
  }

  // Mirror `state` into the model's page_state trait: at once for rare events, else at most 4 times a
  // second (each save is a message to the kernel).
  publish(immediate = false) {
    if (immediate) {
      clearTimeout(this.stateTimer);
      this.stateTimer = null;
      this.model.set("page_state", JSON.parse(JSON.stringify({ ...this.state, at: now() })));
      this.model.save_changes();
      return;
    }
    if (this.stateTimer) return;
    this.stateTimer = setTimeout(() => {
      this.stateTimer = null;
      this.publish(true);
    }, STATE_EVERY_MS);
  }

  setState(patch) {
    for (const [k, v] of Object.entries(patch)) this.model.set(k, v);
    this.model.save_changes();
    this.state.running = this.model.get("running");
    this.emit("state", { running: this.state.running, status: this.model.get("status"), error: this.model.get("error") },
      true);
    this.redraw();
  }

  redraw() {
    for (const v of this.views) v.update();
  }

  control(action, extra = {}) {
    this.pending = action;
    this.pendingAt = performance.now();
    setTimeout(() => this.redraw(), PENDING_MS + 50);
    this.model.send({ type: "control", action, at: now(), ...extra });
    this.emit("control", { action, ...extra });
    this.redraw();
  }

  workletUrl() {
    if (!this.moduleUrl) {
      const src = this.model.get("_worklet");
      this.moduleUrl = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
    }
    return this.moduleUrl;
  }

  // -- playback -----------------------------------------------------------------------------------

  async ensurePlayer() {
    if (this.player) {
      if (this.player.ctx.state === "suspended") await this.player.ctx.resume();
      await this.player.ready;
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
    this.state.outputLatency = ctx.outputLatency || 0;
    this.state.baseLatency = ctx.baseLatency || 0;
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
      this.state.playbackClock = { contextTime: ts.contextTime, wall: performance.timeOrigin + ts.performanceTime,
        outputLatency: ctx.outputLatency || 0 };
      return performance.timeOrigin + ts.performanceTime + (t - ts.contextTime) * 1000;
    }
    return now() + (t - ctx.currentTime) * 1000;
  }

  fromPlayer(m) {
    const rate = this.model.get("output_rate");
    if (m.type === "played") {
      const at = this.playerTimeToWall(m.t);
      if (m.id != null) this.model.send({ type: "played", id: m.id, played_s: m.played / rate, final: false, at });
      this.emit("played", { id: m.id, played_s: m.played / rate, at });
    } else if (m.type === "started") {
      this.state.chunksStarted++;
      this.state.playing = true;
      // `rendered`: the worklet had produced the chunk's first sample (its message reached us);
      // `at`: that sample leaves the speakers (adds the device's output latency).
      const msg = { type: "started", seq: m.seq, sent: m.sent, received: m.received, rendered: now(),
        at: this.playerTimeToWall(m.t) };
      this.model.send(msg);
      this.emit("started", msg);
    } else if (m.type === "flushed") {
      // `at`: when the first silent sample leaves the speakers (includes the output latency);
      // `handled`: when the audio thread had already emptied its queue (an upper bound).
      const at = this.playerTimeToWall(m.t);
      const handled = now();
      const flush = { token: m.token, id: m.id, at, handled, received: m.received, dropped: m.dropped,
        played_s: m.played / rate };
      this.state.flushes.push(flush);
      if (this.state.flushes.length > 50) this.state.flushes.shift();
      this.state.lastFlush = flush;
      this.state.playing = false;
      this.model.send({ type: "flushed", ...flush });
      if (m.id != null) this.model.send({ type: "played", id: m.id, played_s: m.played / rate, final: true, at });
      this.emit("flushed", flush, true);
    } else if (m.type === "tap") {
      this.state.audibleSamples = m.audible;
      this.state.lastAudibleAt = this.playerTimeToWall(m.lastAudible);
      this.state.playing = m.queued > 0;
      this.publish();
    }
  }

  handle(msg, buffers) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "play") {
      const view = buffers && buffers[0];
      if (!view) return;
      const received = now();
      // Copy out of the message's buffer so it can be transferred to the audio thread.
      const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
      this.state.chunksQueued++;
      if (!this.player) this.ensurePlayer().catch((e) => this.fail(e));
      this.toPlayer({ type: "chunk", buffer: bytes.buffer, id: msg.id, seq: msg.seq, sent: msg.sent, received });
    } else if (msg.type === "flush") {
      if (this.player) this.toPlayer({ type: "flush", token: msg.token, received: now() });
      else {
        const flush = { token: msg.token, id: null, played_s: 0, dropped: 0, at: now(), handled: now() };
        this.model.send({ type: "flushed", ...flush });
        this.emit("flushed", flush, true);
      }
    } else if (msg.type === "kstats") {
      this.kstats = msg;
      this.redraw();
    }
  }

  // -- capture ------------------------------------------------------------------------------------

  fail(err) {
    const message = typeof err === "string" ? err : describeError(err);
    this.state.error = message;
    this.startToken++;
    this.starting = null;
    this.running = false;
    this.closeCapture();
    this.setState({ error: message, status: "error", capture: false, running: false });
    this.emit("error", { message }, true);
  }

  async openMic() {
    const ec = this.model.get("echo_cancellation");
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: ec, noiseSuppression: ec, autoGainControl: true, channelCount: 1 },
      video: false,
    });
    const track = stream.getAudioTracks()[0];
    const settings = track && track.getSettings ? track.getSettings() : {};
    this.state.echoCancellation = settings.echoCancellation ?? ec;
    track.onended = () => {
      if (this.capture && this.capture.stream === stream) this.fail("The microphone was disconnected.");
    };
    return stream;
  }

  start() {
    if (this.running || this.starting) return this.starting;
    if (!window.isSecureContext) {
      this.fail("The microphone needs a secure page: open JupyterLab over https:// or on localhost " +
        "(this page is " + location.protocol + "//" + location.host + ").");
      return null;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.fail("This browser gives no access to microphones (navigator.mediaDevices is missing).");
      return null;
    }
    // A stop (or a failure) while this start is under way makes it give up at its next step.
    const token = ++this.startToken;
    const abandoned = () => token !== this.startToken;
    this.starting = Promise.resolve(); // set before setState: its change:capture must not start again
    this.state.error = "";
    this.setState({ error: "", status: "starting", capture: true });
    // The player too, inside the click: browsers let audio start in a user gesture.
    this.ensurePlayer().catch((e) => this.fail(e));
    this.starting = (async () => {
      let stream = null;
      let ctx = null;
      try {
        stream = await this.openMic();
        if (abandoned()) return;
        // Capture runs at the device's own rate (44.1 or 48 kHz, ...); the worklet resamples.
        ctx = new AudioContext({ latencyHint: "interactive" });
        await ctx.audioWorklet.addModule(this.workletUrl());
        if (abandoned()) return;
        const src = ctx.createMediaStreamSource(stream);
        const node = new AudioWorkletNode(ctx, "nova-capture", {
          numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
          processorOptions: { outRate: this.model.get("input_rate"), frameMs: this.model.get("frame_ms") },
        });
        // A silent sink keeps the node pulled by the graph; nothing of the mic reaches the speakers.
        const sink = ctx.createGain();
        sink.gain.value = 0;
        this.epoch++;
        this.expectSeq = 0;
        const epoch = this.epoch;
        node.port.onmessage = (e) => this.fromCapture(e.data, epoch);
        this.capturing = true;
        this.capture = { ctx, stream, src, node, sink };
        src.connect(node).connect(sink).connect(ctx.destination);
        if (ctx.state === "suspended") await ctx.resume();
        await this.ensurePlayer();
        if (abandoned()) return;
        this.running = true;
        this.state.deviceRate = ctx.sampleRate;
        this.setState({ running: true, capture: true, status: "listening", device_rate: ctx.sampleRate });
      } catch (err) {
        if (!abandoned()) {
          this.closeCapture();
          this.fail(err);
        }
      } finally {
        if (abandoned() && (!this.capture || this.capture.stream !== stream)) {
          // Stopped meanwhile: release what this start opened and did not hand over.
          if (stream) stream.getTracks().forEach((t) => t.stop());
          if (ctx && ctx.state !== "closed") ctx.close().catch(() => {});
        }
        if (!abandoned()) this.starting = null;
      }
    })();
    return this.starting;
  }

  fromCapture(m, epoch) {
    if (m.type !== "frame" || !this.capturing || epoch !== this.epoch) return;
    const sent = now();
    if (m.seq !== this.expectSeq) this.state.pageGaps += Math.max(0, m.seq - this.expectSeq);
    this.expectSeq = m.seq + 1;
    this.level = Math.max(m.rms, this.level * 0.8);
    this.state.framesSent++;
    this.state.lastSeq = m.seq;
    this.model.send({ type: "frame", seq: m.seq, epoch, captured: m.captured, sent, rms: m.rms }, undefined,
      [m.buffer]);
    this.frameTimes.push(sent);
    while (this.frameTimes.length && this.frameTimes[0] < sent - 2000) this.frameTimes.shift();
    this.state.framesPerSecond = this.frameTimes.length / 2;
    this.emit("frame", { seq: m.seq, epoch, captured: m.captured, sent });
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
      // Meanwhile the worklet has no input and keeps sending silence: the frames never stop.
      const stream = await this.openMic();
      if (this.capture !== c) {
        stream.getTracks().forEach((t) => t.stop());
        return;
      }
      const src = c.ctx.createMediaStreamSource(stream);
      src.connect(c.node);
      c.src.disconnect();
      const old = c.stream;
      Object.assign(c, { stream, src });
      old.getTracks().forEach((t) => t.stop());
      this.emit("state", { running: this.running, echoCancellation: this.state.echoCancellation }, true);
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
    if (c.ctx.state !== "closed") c.ctx.close().catch(() => {});
  }

  stop() {
    this.startToken++;
    this.starting = null;
    this.running = false;
    this.closeCapture();
    this.level = 0;
    this.frameTimes = [];
    this.state.framesPerSecond = 0;
    if (this.model.get("running") || this.model.get("capture") || this.model.get("status") === "starting") {
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

function el(tag, props = {}, style = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k.startsWith("data-") || k.startsWith("aria-") || k === "role") node.setAttribute(k, v);
    else node[k] = v;
  }
  if (style) node.style.cssText = style;
  return node;
}

function button(testid, cls) {
  return el("button", { className: `${cls} jupyter-button`, type: "button", "data-testid": testid },
    "min-width:7em;white-space:nowrap;");
}

const fmt = (x, d = 0) => (x == null ? "–" : Number(x).toFixed(d));

// What the kernel says about the frames it got: counted, never silently lost.
function kernelLine(k, mode) {
  if (!k) return "";
  const parts = [];
  if (k.route === "session") parts.push(`${k.frames_sent} frames sent to the session`);
  else if (k.route === "holding") parts.push(`${k.frames_held} frames held until the session opens`);
  else if (k.route === "callbacks") parts.push(`${k.frames_received} frames to callbacks`);
  else if (mode === "standalone") {
    parts.push(`no session attached: ${k.frames_unrouted} frames counted, not sent anywhere`);
  }
  if (k.muted) parts.push("muted: sending silence");
  if (k.filling) parts.push("no microphone frames: the session gets silence");
  if (k.frames_dropped) parts.push(`${k.frames_dropped} frames dropped (backlog)`);
  if (k.gaps) parts.push(`${k.gaps} frames missing (sequence gaps)`);
  if (k.frames_unrouted && k.route === "session") parts.push(`${k.frames_unrouted} frames arrived with no session`);
  if (k.frame_p95_ms != null) parts.push(`capture → kernel p95 ${fmt(k.frame_p95_ms, 1)} ms`);
  return parts.join(" · ");
}

function render({ model, el: host }) {
  const engine = engineFor(model);
  const mode = model.get("mode");
  const root = el("div", { className: `nova-live nova-live-${mode}`, "data-testid": "nova-live",
    "data-widget-id": model.get("_id"), "data-mode": mode },
  "display:flex;flex-wrap:wrap;align-items:center;gap:6px 10px;font:13px sans-serif;max-width:100%;");
  root.novaLive = engine.api;
  const main = button(mode === "ptt" ? "nova-ptt-record" : mode === "panel" ? "nova-panel-start" : "nova-live-mic",
    mode === "ptt" ? "nova-ptt-record" : mode === "panel" ? "nova-panel-start" : "nova-live-start");
  const mute = button("nova-panel-mute", "nova-panel-mute");
  mute.setAttribute("aria-pressed", "false");
  const ecLabel = el("label", { title: "Echo cancellation: keep on with open speakers, or the model hears " +
    "itself and stops." }, "white-space:nowrap;");
  const ec = el("input", { type: "checkbox", className: "nova-live-aec", "data-testid": "nova-live-aec",
    "aria-label": "echo cancellation" });
  ecLabel.append(ec, " echo cancellation");
  const meter = el("div", { className: "nova-live-meter", title: "microphone level", role: "meter",
    "aria-label": "microphone level", "data-testid": "nova-live-meter" },
  "width:120px;height:10px;background:#ddd;border-radius:3px;overflow:hidden;");
  const bar = el("div", {}, "height:100%;width:0;background:#2a9d4b;");
  meter.append(bar);
  const status = el("span", { className: "nova-live-status", "data-testid": "nova-live-status", role: "status",
    "aria-live": "polite" }, "overflow-wrap:anywhere;");
  const detail = el("div", { className: "nova-live-detail", "data-testid": "nova-live-detail" },
    "flex-basis:100%;color:#555;font-size:12px;overflow-wrap:anywhere;");
  const error = el("div", { className: "nova-live-error", "data-testid": "nova-live-error", role: "alert" },
    "flex-basis:100%;color:#b00020;overflow-wrap:anywhere;");
  if (mode === "panel") root.append(main, mute, ecLabel, meter, status, detail, error);
  else if (mode === "ptt") root.append(main, status, detail, error);
  else root.append(main, ecLabel, meter, status, detail, error);
  host.append(root);

  const setButton = (b, label, aria, disabled) => {
    b.textContent = label;
    b.setAttribute("aria-label", aria);
    b.disabled = !!disabled;
  };

  const view = {
    root,
    update() {
      const on = model.get("running");
      const cs = model.get("control_state");
      const csDetail = model.get("control_detail");
      // A control pressed here waits for the kernel's answer (any change of what it shows), at most
      // PENDING_MS: a kernel that never answers must not leave the buttons disabled.
      const key = `${cs}|${csDetail}|${model.get("muted")}`;
      if (engine.pending && (engine.lastControlKey !== key || performance.now() - engine.pendingAt > PENDING_MS)) {
        engine.pending = null;
      }
      engine.lastControlKey = key;
      const waiting = !!engine.pending;
      if (mode === "panel") {
        // Start/Stop owns microphone and session together.
        if (cs === "starting") setButton(main, "◼ Stop", "Stop: cancel starting the session and close the microphone");
        else if (cs === "live") setButton(main, "◼ Stop", "Stop the session and close the microphone", waiting);
        else if (cs === "stopping") setButton(main, "Stopping…", "Stopping the session", true);
        else setButton(main, "▶ Start", "Start: open the microphone and a session", waiting);
        const muted = model.get("muted");
        setButton(mute, muted ? "🔇 Unmute" : "🎤 Mute",
          muted ? "Unmute the microphone (now sending silence)" : "Mute the microphone (sends silence)",
          cs !== "live" || waiting);
        mute.setAttribute("aria-pressed", muted ? "true" : "false");
        main.dataset.state = cs;
      } else if (mode === "ptt") {
        if (cs === "recording") setButton(main, "■ Stop and send", "Stop recording and send it to the session", waiting);
        else setButton(main, "● Record", "Record a question (press again to send it)", waiting);
        main.dataset.state = cs;
      } else {
        setButton(main, on ? "◼ Stop microphone" : "● Start microphone",
          on ? "Stop the microphone" : "Start the microphone", !!engine.starting);
        main.dataset.state = on ? "running" : "off";
      }
      ec.checked = model.get("echo_cancellation");
      const rate = model.get("device_rate");
      let text = "";
      if (mode === "ptt") {
        text = csDetail || cs;
        if (engine.state.playing) text += " · playing the reply";
      } else {
        text = `microphone ${model.get("status") || "off"}`;
        if (on && rate) text += ` (${rate} Hz → ${model.get("input_rate")} Hz, ${fmt(engine.state.framesPerSecond)} frames/s)`;
        if (mode === "panel" && model.get("muted")) text += " · muted";
      }
      status.textContent = text;
      status.dataset.state = mode === "standalone" ? (on ? "listening" : "off") : cs;
      detail.textContent = kernelLine(engine.kstats, mode);
      detail.style.display = detail.textContent ? "" : "none";
      error.textContent = model.get("error");
      error.style.display = model.get("error") ? "" : "none";
      if (!on) bar.style.width = "0";
      bar.style.background = model.get("muted") ? "#999" : "#2a9d4b";
    },
    meter(level) {
      // dBFS mapped to 0..100%: -60 dBFS and below is empty.
      const db = 20 * Math.log10(Math.max(level, 1e-6));
      bar.style.width = `${Math.max(0, Math.min(100, ((db + 60) / 60) * 100))}%`;
    },
  };
  engine.views.add(view);
  main.addEventListener("click", () => {
    const cs = model.get("control_state");
    if (mode === "panel") {
      if (cs === "live" || cs === "starting") {
        // Tell the kernel first: it then knows the frames still in flight belong to this session.
        engine.control("stop", { epoch: engine.epoch, last_seq: engine.state.lastSeq });
        engine.stop();
      } else if (cs !== "stopping") {
        // Open the microphone inside the click (a user gesture) and ask the kernel for the session.
        engine.control("start");
        engine.start();
      }
    } else if (mode === "ptt") {
      engine.ensurePlayer().catch((e) => engine.fail(e)); // in the gesture: the reply can play
      engine.control(cs === "recording" ? "send" : "record");
    } else if (engine.running || engine.starting) {
      engine.stop();
    } else {
      engine.start();
    }
  });
  mute.addEventListener("click", () => engine.control("mute", { value: !model.get("muted") }));
  ec.addEventListener("change", () => {
    model.set("echo_cancellation", ec.checked);
    model.save_changes();
  });
  if (mode === "panel") {
    // The panel's pickers are ipywidgets, which take no attributes from Python: give them test ids
    // and labels from here, once the panel around this view is in the page.
    let tries = 0;
    const decorate = () => {
      const panel = root.closest(".nova-session-panel");
      if (!panel) {
        if (tries++ < 40) setTimeout(decorate, 100);
        return;
      }
      for (const name of ["provider", "voice", "latency"]) {
        const select = panel.querySelector(`.nova-panel-pick-${name} select`);
        if (select) {
          select.setAttribute("data-testid", `nova-panel-${name}`);
          select.setAttribute("aria-label", name);
        }
      }
    };
    decorate();
  }
  const redraw = () => view.update();
  const names = ["running", "status", "error", "echo_cancellation", "device_rate", "control_state",
    "control_detail", "muted"];
  for (const name of names) model.on(`change:${name}`, redraw);
  view.update();
  return () => {
    engine.views.delete(view);
    for (const name of names) model.off(`change:${name}`, redraw);
  };
}

export default { initialize, render };
