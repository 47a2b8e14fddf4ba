// @ts-check
/**
 * The chat page's connection engine. No DOM: the WebSocket class, the clock, the storage and
 * the random source are injected, so it runs under `node --test` with fakes. It makes the
 * same decisions as the Python client (deploychat/client/engine.py), per PROTOCOL.md:
 * backoff with jitter and an attempt limit, a ping/pong heartbeat, an outbox that only an
 * `ack` empties (kept in storage across reloads), and every stored event applied once, in
 * `seq` order.
 */

/** @typedef {"idle"|"connecting"|"connected"|"reconnecting"|"disconnected"|"error"} State */
/** @typedef {"failed"|"closed"|"restart"|"dead"|"gap"|"refused"} LostReason */
/** @typedef {{id: string, content: string, at: number}} Message */
/**
 * @typedef {{ now(): number, setTimeout(fn: () => void, ms: number): any,
 *             clearTimeout(handle: any): void, wallNow(): number }} Clock
 */
/** @typedef {{ getItem(k: string): string|null, setItem(k: string, v: string): void,
 *              removeItem(k: string): void }} Storage */

export const DEFAULTS = Object.freeze({
  backoffMs: 1000,
  backoffMultiplier: 1.5,
  maxBackoffMs: 30000,
  jitter: 0.2,
  maxAttempts: 10,
  pingMs: 30000,
  pongTimeoutMs: 5000,
  // From opening the socket to `connected`: a link that swallows the handshake would
  // otherwise leave the page "connecting" forever.
  connectTimeoutMs: 10000,
  outboxLimit: 50,
  maxFrameBytes: 64 * 1024,
  // After a message was refused for a reason that may pass (rate limit, publish failure).
  resendAfterMs: 2000,
  storagePrefix: "deploychat.",
});

/** @typedef {typeof DEFAULTS} Config */

// URL query parameter -> config key; so tests (and curious people) can shorten every timing.
const QUERY_KEYS = {
  backoff_ms: "backoffMs",
  backoff_multiplier: "backoffMultiplier",
  max_backoff_ms: "maxBackoffMs",
  jitter: "jitter",
  max_attempts: "maxAttempts",
  ping_ms: "pingMs",
  pong_timeout_ms: "pongTimeoutMs",
  connect_timeout_ms: "connectTimeoutMs",
  outbox_limit: "outboxLimit",
  resend_after_ms: "resendAfterMs",
};

/**
 * The defaults, overridden by an object (window.DEPLOYCHAT_CONFIG) and then by query params.
 * @param {string} search  location.search
 * @param {Partial<Config>} [overrides]
 * @returns {Config}
 */
export function readConfig(search, overrides = {}) {
  /** @type {Record<string, any>} */
  const config = { ...DEFAULTS };
  for (const [key, value] of Object.entries(overrides || {})) {
    if (key in DEFAULTS && typeof value === typeof config[key]) config[key] = value;
  }
  const params = new URLSearchParams(search);
  for (const [param, key] of Object.entries(QUERY_KEYS)) {
    const raw = params.get(param);
    if (raw === null) continue;
    const value = Number(raw);
    if (Number.isFinite(value) && value >= 0) config[key] = value;
  }
  return /** @type {Config} */ (Object.freeze(config));
}

/**
 * The chat socket's address from the page's own: same host and scheme family, so the page
 * works behind any proxy (and under a path prefix).
 * @param {string} pageHref
 */
export function socketUrl(pageHref) {
  const url = new URL("ws/chat", pageHref);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.toString();
}

// ---------------------------------------------------------------- reconnecting

/** @param {Config} config @param {number} attempt 1-based */
export function backoffBase(config, attempt) {
  return Math.min(config.maxBackoffMs, config.backoffMs * config.backoffMultiplier ** (attempt - 1));
}

/** @param {Config} config @param {number} attempt @param {() => number} random */
export function backoffDelay(config, attempt, random) {
  const base = backoffBase(config, attempt);
  const spread = base * config.jitter;
  return Math.min(config.maxBackoffMs, Math.max(0, base - spread + 2 * spread * random()));
}

export class Reconnector {
  /** @param {Config} config @param {() => number} random */
  constructor(config, random) {
    this.config = config;
    this.random = random;
    this.attempts = 0;
  }

  connected() { this.attempts = 0; }

  reset() { this.attempts = 0; }

  /** Milliseconds before the next attempt, or null: give up. @param {LostReason} reason */
  nextDelay(reason) {
    if (reason === "refused" || this.attempts >= this.config.maxAttempts) return null;
    this.attempts += 1;
    if (reason === "restart" && this.attempts === 1) return 0;
    return backoffDelay(this.config, this.attempts, this.random);
  }
}

// ---------------------------------------------------------------- heartbeat

export class Heartbeat {
  /** @param {number} intervalMs @param {number} timeoutMs */
  constructor(intervalMs, timeoutMs) {
    this.intervalMs = intervalMs;
    this.timeoutMs = timeoutMs;
    this.nextPing = 0;
    /** @type {number|null} */
    this.deadline = null;
  }

  /** @param {number} now */
  start(now) {
    this.nextPing = now + this.intervalMs;
    this.deadline = null;
  }

  /** @param {number} now @returns {"none"|"ping"|"dead"} */
  poll(now) {
    if (this.deadline !== null) return now >= this.deadline ? "dead" : "none";
    if (now >= this.nextPing) {
      this.deadline = now + this.timeoutMs;
      this.nextPing = now + this.intervalMs;
      return "ping";
    }
    return "none";
  }

  pong() { this.deadline = null; }

  nextWakeup() { return this.deadline !== null ? this.deadline : this.nextPing; }
}

// ---------------------------------------------------------------- outbox

// Refusals a resend cannot fix: the message leaves the outbox and the user is told.
const HOPELESS = new Set(["invalid_message", "too_large", "unauthorized"]);

export class Outbox {
  /** @param {number} limit @param {Message[]} [messages] */
  constructor(limit, messages = []) {
    this.limit = limit;
    /** @type {Map<string, Message>} insertion order = the order written */
    this.items = new Map();
    /** @type {Set<string>} ids written to the current connection */
    this.sent = new Set();
    /** @type {Map<string, number>} */
    this.resendAt = new Map();
    for (const message of messages) this.add(message);
  }

  /** Queue a message; returns the oldest ones dropped to stay within the limit. @param {Message} message */
  add(message) {
    this.items.delete(message.id);
    this.items.set(message.id, message);
    /** @type {Message[]} */
    const dropped = [];
    while (this.items.size > this.limit) {
      const oldest = this.items.values().next().value;
      if (!oldest) break;
      this.items.delete(oldest.id);
      this.forget(oldest.id);
      dropped.push(oldest);
    }
    return dropped;
  }

  /** @param {string} id @returns {boolean} whether it was waiting */
  ack(id) {
    if (!this.items.delete(id)) return false;
    this.forget(id);
    return true;
  }

  /**
   * @param {string} id @param {string} code @param {number} now @param {number} resendAfterMs
   * @returns {"drop"|"resend"|"ignore"}
   */
  refused(id, code, now, resendAfterMs) {
    if (!this.items.has(id)) return "ignore";
    if (HOPELESS.has(code)) {
      this.items.delete(id);
      this.forget(id);
      return "drop";
    }
    this.sent.delete(id);
    this.resendAt.set(id, now + resendAfterMs);
    return "resend";
  }

  /** Nothing is on a new connection yet: every message goes again, in order. */
  newConnection() {
    this.sent.clear();
    this.resendAt.clear();
  }

  /**
   * Messages due on this connection, in order, marked sent. One that must wait holds back
   * those written after it, so the server gets them in the order they were written.
   * @param {number} now
   */
  toSend(now) {
    /** @type {Message[]} */
    const out = [];
    for (const message of this.items.values()) {
      if (this.sent.has(message.id)) continue;
      const at = this.resendAt.get(message.id);
      if (at !== undefined && at > now) break;
      this.resendAt.delete(message.id);
      this.sent.add(message.id);
      out.push(message);
    }
    return out;
  }

  /** @returns {number|null} */
  nextResend() {
    return this.resendAt.size ? Math.min(...this.resendAt.values()) : null;
  }

  pending() { return [...this.items.values()]; }

  /** @param {string} id */
  has(id) { return this.items.has(id); }

  get size() { return this.items.size; }

  /** @param {string} id */
  forget(id) {
    this.sent.delete(id);
    this.resendAt.delete(id);
  }
}

// ---------------------------------------------------------------- events in order

export class SeqTracker {
  /** @param {number} last the highest seq applied */
  constructor(last = 0) { this.last = last; }

  /** @param {number} seq @returns {"apply"|"duplicate"|"gap"} */
  check(seq) {
    if (seq <= this.last) return "duplicate";
    return seq === this.last + 1 ? "apply" : "gap";
  }

  /** @param {number} seq */
  applied(seq) { this.last = seq; }

  /**
   * True if the server has fewer events than we applied (it lost them, or the id now names
   * a new session): it would skip everything up to our seq, so we must resume from its.
   * @param {number} serverLast
   */
  behind(serverLast) { return serverLast < this.last; }
}

// ---------------------------------------------------------------- the engine

const CLOSE_POLICY = 1008;
const CLOSE_RESTART = 1012;

/** @returns {Clock} */
function browserClock() {
  return {
    now: () => performance.now(),
    wallNow: () => Date.now(),
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (handle) => clearTimeout(handle),
  };
}

/** @returns {string} a fresh chat id (works without a secure context, unlike randomUUID) */
export function newMessageId() {
  const bytes = new Uint8Array(8);
  globalThis.crypto.getRandomValues(bytes);
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `m${Date.now().toString(36)}-${hex}`;
}

/** @param {string} text */
function utf8Length(text) { return new TextEncoder().encode(text).length; }

export class MessageTooLarge extends Error {}

/**
 * Events: "state" (state, info), "event" (stored event, {live}), "ack" (id),
 * "outbox" (pending messages), "dropped" (message, reason), "server-error" (error frame),
 * "reset" () when what is shown belongs to no session any more, "session-lost" (id) when the
 * server refused the kept session (gone, or another user's) and a new one starts,
 * "session" (id) when the connection's session is known.
 */
export class ChatEngine {
  /**
   * @param {{ url: string, config?: Config, WebSocket?: any, clock?: Clock, storage?: Storage|null,
   *           random?: () => number, newId?: () => string,
   *           getToken?: (force: boolean) => Promise<string|null>|string|null }} options
   */
  constructor({ url, config = readConfig(""), WebSocket = globalThis.WebSocket, clock = browserClock(),
    storage = globalThis.localStorage ?? null, random = Math.random, newId = newMessageId,
    getToken = () => null }) {
    this.url = url;
    this.config = config;
    this.WebSocketImpl = WebSocket;
    this.clock = clock;
    this.storage = storage;
    this.newId = newId;
    // A fresh ID token for every init (the identity provider's SDK caches and refreshes it).
    this.getToken = getToken;
    /** the session id the current socket's init named (null: it asked for a new one) */
    this.initSession = /** @type {string|null} */ (null);
    /** the server refused our token once: the next init forces a fresh one */
    this.forceToken = false;
    /** a session opened from the list: what it already holds is history, not news */
    this.replayAll = false;
    this.tokenRetried = false;
    /** @type {State} */
    this.state = "idle";
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
    this.reconnector = new Reconnector(config, random);
    this.heartbeat = new Heartbeat(config.pingMs, config.pongTimeoutMs);

    const saved = this.load("session");
    /** @type {string|null} */
    this.sessionId = saved && typeof saved.session_id === "string" ? saved.session_id : null;
    // A fresh page shows nothing yet, so it replays the whole session; events up to the seq
    // applied before the reload are history (no toasts for old errors).
    this.historyMark = saved && Number.isInteger(saved.last_seq) ? saved.last_seq : 0;
    this.seq = new SeqTracker(0);
    const queued = this.load("outbox");
    this.outbox = new Outbox(config.outboxLimit, Array.isArray(queued) ? queued.filter(isMessage) : []);
    /** @type {string[]} */
    this.cancels = [];

    /** @type {any} */
    this.ws = null;
    this.generation = 0; // callbacks of an older socket see a different number and do nothing
    this.isConnected = false;
    this.timers = { reconnect: null, connect: null, tick: null };
  }

  // -------------------------------------------------------------- public

  /** @param {string} type @param {Function} fn @returns {() => void} */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)?.add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }

  get lastSeq() { return this.seq.last; }

  get pending() { return this.outbox.pending(); }

  get attempts() { return this.reconnector.attempts; }

  start() {
    if (this.state !== "idle") return;
    this.setState("connecting");
    this.open();
  }

  /**
   * Queue a message and send it when connected. It stays queued (in storage too) until acked.
   * @param {string} content @returns {string} its id, which is also the turn's id
   */
  send(content) {
    const text = String(content);
    if (!text.trim()) throw new Error("The message is empty.");
    const id = this.newId();
    if (utf8Length(JSON.stringify({ type: "chat", id, content: text })) > this.config.maxFrameBytes) {
      throw new MessageTooLarge(`The message is too long (over ${Math.floor(this.config.maxFrameBytes / 1024)} KiB).`);
    }
    const dropped = this.outbox.add({ id, content: text, at: this.clock.wallNow() });
    this.saveOutbox();
    for (const message of dropped) this.emit("dropped", message, "The outbox was full.");
    this.flush();
    return id;
  }

  /** Stop the agent's work on a turn, now or as soon as connected. @param {string} turnId */
  cancel(turnId) {
    if (!this.cancels.includes(turnId)) this.cancels.push(turnId);
    this.flush();
  }

  /** Try again now: after giving up, when offline, or instead of waiting out a backoff. */
  reconnect() {
    if (this.state === "connected" || this.state === "connecting") return;
    this.drop();
    this.reconnector.reset();
    this.setState("connecting");
    this.open();
  }

  /** The network is gone (the browser said so): stop trying until it is back. */
  goOffline() {
    if (this.state === "idle") return;
    this.drop();
    this.setState("disconnected", { reason: "offline" });
  }

  goOnline() {
    if (this.state === "disconnected" || this.state === "error") this.reconnect();
  }

  /** Forget the session: the next `init` starts a new one. Queued messages go there. */
  newSession() {
    this.switchTo(null);
  }

  /** Show another of the user's sessions: its whole history is replayed. @param {string} id */
  openSession(id) {
    if (id === this.sessionId && this.state === "connected") return;
    this.switchTo(id);
  }

  /** @param {string|null} id */
  switchTo(id) {
    this.drop();
    this.sessionId = id;
    this.historyMark = 0;
    this.replayAll = id !== null;
    this.seq = new SeqTracker(0);
    if (id) this.saveSession();
    else this.remove("session");
    this.emit("reset");
    this.reconnector.reset();
    this.setState("connecting");
    this.open();
  }

  /**
   * Another user signed in (or out): the kept session and the queued messages were theirs.
   * @param {string|null} uid
   */
  setUser(uid) {
    const before = this.load("uid");
    // Signed out, or someone else: what was kept belonged to the user before.
    if (uid === null || (before !== null && before !== uid)) {
      this.sessionId = null;
      this.historyMark = 0;
      this.seq = new SeqTracker(0);
      this.remove("session");
      this.outbox = new Outbox(this.config.outboxLimit);
      this.saveOutbox();
      this.emit("reset");
    }
    if (uid === null) this.remove("uid");
    else this.store("uid", uid);
  }

  /** Close for good (the page is going away, or a test is done). */
  stop() {
    this.drop();
    this.setState("disconnected", { reason: "stopped" });
  }

  // -------------------------------------------------------------- one connection

  open() {
    const generation = ++this.generation;
    this.isConnected = false;
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (error) {
      this.lost(generation, "failed");
      return;
    }
    this.ws = ws;
    this.timers.connect = this.clock.setTimeout(() => this.lost(generation, "failed"), this.config.connectTimeoutMs);
    ws.onopen = () => {
      if (generation !== this.generation) return;
      const force = this.forceToken;
      this.forceToken = false;
      const sendInit = (/** @type {string|null} */ token) => {
        if (generation !== this.generation) return;
        /** @type {Record<string, unknown>} */
        const init = { type: "init" };
        if (token) init.token = token;
        this.initSession = this.sessionId;
        if (this.sessionId) {
          init.session_id = this.sessionId;
          init.last_seq = this.seq.last;
        }
        this.write(init);
      };
      let token;
      try {
        token = this.getToken(force);
      } catch {
        this.lost(generation, "failed");
        return;
      }
      // A token at hand is sent at once; one being fetched (or refreshed) is waited for.
      if (token && typeof (/** @type {any} */ (token)).then === "function") {
        /** @type {Promise<string|null>} */ (token).then(sendInit, () => this.lost(generation, "failed"));
      } else {
        sendInit(/** @type {string|null} */ (token));
      }
    };
    ws.onmessage = (/** @type {{data: any}} */ e) => {
      if (generation === this.generation) this.receive(generation, e.data);
    };
    ws.onclose = (/** @type {{code: number}} */ e) => {
      if (generation !== this.generation) return;
      const reason = e.code === CLOSE_RESTART ? "restart" : e.code === CLOSE_POLICY ? "refused"
        : this.isConnected ? "closed" : "failed";
      this.lost(generation, reason);
    };
    ws.onerror = () => {}; // a close event always follows
  }

  /** @param {number} generation @param {LostReason} reason */
  lost(generation, reason) {
    if (generation !== this.generation) return;
    this.drop();
    const delay = this.reconnector.nextDelay(reason);
    if (delay === null) {
      const why = reason === "refused" ? "The server refused the connection."
        : `Could not connect after ${this.reconnector.attempts} attempts.`;
      this.setState("error", { reason: why });
      return;
    }
    this.setState("reconnecting", { attempt: this.reconnector.attempts, delayMs: delay, reason });
    this.timers.reconnect = this.clock.setTimeout(() => {
      this.timers.reconnect = null;
      this.open();
    }, delay);
  }

  /** Let go of the socket and every timer; nothing of the old socket is heard from again. */
  drop() {
    this.generation += 1;
    this.isConnected = false;
    for (const key of /** @type {const} */ (["reconnect", "connect", "tick"])) {
      if (this.timers[key] !== null) this.clock.clearTimeout(this.timers[key]);
      this.timers[key] = null;
    }
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(); } catch { /* already closed */ }
    }
  }

  /** @param {number} generation @param {unknown} raw */
  receive(generation, raw) {
    let frame;
    try {
      frame = JSON.parse(String(raw));
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object" || typeof frame.type !== "string") return;
    if (!this.isConnected) {
      if (frame.type === "connected") this.connected(generation, frame);
      else if (frame.type === "error" && frame.seq === undefined) this.initRefused(generation, frame);
      return;
    }
    if (typeof frame.seq === "number") {
      this.apply(generation, frame);
    } else if (frame.type === "pong") {
      this.heartbeat.pong();
      this.scheduleTick(generation);
    } else if (frame.type === "ack") {
      if (this.outbox.ack(frame.id)) {
        this.saveOutbox();
        this.emit("ack", frame.id);
      }
    } else if (frame.type === "error") {
      this.refused(generation, frame);
    }
    // Anything else is from a newer server: ignored, as the protocol asks.
  }

  /**
   * `init` was refused. For a kept session that means it is gone or not this user's: say so and
   * start a new one. Otherwise the token was refused: once more with a fresh one, then stop.
   * @param {number} generation @param {any} frame
   */
  initRefused(generation, frame) {
    if (frame.code !== "unauthorized") {
      this.emit("server-error", frame);
      return;
    }
    const kept = this.initSession;
    if (kept) {
      this.switchTo(null);
      this.emit("session-lost", kept); // after the reset, so what it shows stays
      return;
    }
    if (!this.tokenRetried) {
      this.tokenRetried = true;
      this.forceToken = true;
      this.drop();
      this.open();
      return;
    }
    this.emit("server-error", frame);
    this.lost(generation, "refused");
  }

  /** @param {number} generation @param {any} frame */
  connected(generation, frame) {
    this.clock.clearTimeout(this.timers.connect);
    this.timers.connect = null;
    this.sessionId = frame.session_id;
    if (this.seq.behind(frame.last_seq)) {
      this.seq = new SeqTracker(0);
      this.historyMark = 0;
      this.saveSession();
      this.emit("reset");
      this.lost(generation, "gap");
      return;
    }
    if (this.replayAll) {
      this.historyMark = Number(frame.last_seq) || 0;
      this.replayAll = false;
    }
    this.isConnected = true;
    this.tokenRetried = false;
    this.reconnector.connected();
    this.heartbeat.start(this.clock.now());
    this.outbox.newConnection();
    this.saveSession();
    this.emit("session", frame.session_id);
    this.setState("connected", { sessionId: frame.session_id, resumed: frame.resumed === true });
    this.flush();
    this.scheduleTick(generation);
  }

  /** @param {number} generation @param {any} event */
  apply(generation, event) {
    const verdict = this.seq.check(event.seq);
    if (verdict === "duplicate") return;
    if (verdict === "gap") {
      this.lost(generation, "gap");
      return;
    }
    this.seq.applied(event.seq);
    this.saveSession();
    this.emit("event", event, { live: event.seq > this.historyMark });
  }

  /** @param {number} generation @param {any} frame */
  refused(generation, frame) {
    const id = typeof frame.ref === "string" ? frame.ref : null;
    const message = id ? this.outbox.pending().find((m) => m.id === id) : undefined;
    if (id && message) {
      const verdict = this.outbox.refused(id, frame.code, this.clock.now(), this.config.resendAfterMs);
      if (verdict === "drop") {
        this.saveOutbox();
        this.emit("dropped", message, frame.message || frame.code);
      } else if (verdict === "resend") {
        this.scheduleTick(generation);
      }
    }
    this.emit("server-error", frame);
  }

  /** @param {number} generation */
  tick(generation) {
    if (generation !== this.generation) return;
    this.timers.tick = null;
    const now = this.clock.now();
    const beat = this.heartbeat.poll(now);
    if (beat === "dead") {
      this.lost(generation, "dead");
      return;
    }
    if (beat === "ping") this.write({ type: "ping", ts: this.clock.wallNow() });
    const resend = this.outbox.nextResend();
    if (resend !== null && resend <= now) this.flush();
    this.scheduleTick(generation);
  }

  /** @param {number} generation */
  scheduleTick(generation) {
    if (this.timers.tick !== null) this.clock.clearTimeout(this.timers.tick);
    const resend = this.outbox.nextResend();
    const wake = Math.min(this.heartbeat.nextWakeup(), resend === null ? Infinity : resend);
    const delay = Math.max(0, wake - this.clock.now());
    this.timers.tick = this.clock.setTimeout(() => this.tick(generation), delay);
  }

  flush() {
    if (!this.isConnected) return;
    for (const message of this.outbox.toSend(this.clock.now())) {
      this.write({ type: "chat", id: message.id, content: message.content });
    }
    while (this.cancels.length) {
      this.write({ type: "cancel", turn_id: this.cancels.shift() });
    }
  }

  /** @param {object} frame */
  write(frame) {
    try {
      this.ws?.send(JSON.stringify(frame));
    } catch {
      // A socket that cannot send is closing; its close event brings the reconnect.
    }
  }

  // -------------------------------------------------------------- bookkeeping

  /** @param {State} state @param {Record<string, unknown>} [info] */
  setState(state, info = {}) {
    this.state = state;
    this.emit("state", state, info);
  }

  /** @param {string} type @param {...unknown} args */
  emit(type, ...args) {
    for (const fn of this.listeners.get(type) ?? []) {
      try {
        fn(...args);
      } catch (error) {
        // A view bug must not stop the connection engine.
        console.error(`deploychat: a "${type}" listener failed`, error);
      }
    }
  }

  saveSession() {
    if (this.sessionId) this.store("session", { session_id: this.sessionId, last_seq: this.seq.last });
  }

  saveOutbox() {
    this.store("outbox", this.outbox.pending());
    this.emit("outbox", this.outbox.pending());
  }

  /** @param {string} key */
  load(key) {
    try {
      const raw = this.storage?.getItem(this.config.storagePrefix + key);
      return raw ? JSON.parse(raw) : null;
    } catch {
      return null;
    }
  }

  /** @param {string} key @param {unknown} value */
  store(key, value) {
    try {
      this.storage?.setItem(this.config.storagePrefix + key, JSON.stringify(value));
    } catch {
      // Storage full or forbidden (private mode): the page still works, it just forgets.
    }
  }

  /** @param {string} key */
  remove(key) {
    try {
      this.storage?.removeItem(this.config.storagePrefix + key);
    } catch { /* as above */ }
  }
}

/** @param {any} m @returns {m is Message} */
function isMessage(m) {
  return m && typeof m.id === "string" && typeof m.content === "string" && m.content.length > 0;
}
