// The page's connection engine under Node with a fake clock, a fake socket and fake storage.
// Run: node --test tests/unit/js/

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ChatEngine,
  DEFAULTS,
  Heartbeat,
  Outbox,
  Reconnector,
  SeqTracker,
  backoffBase,
  backoffDelay,
  readConfig,
  socketUrl,
} from "../../../services/ws_edge/edge/static/engine.js";

// ---------------------------------------------------------------- fakes

class FakeClock {
  constructor() {
    this.t = 0;
    this.wall = 1_700_000_000_000;
    this.tasks = new Map();
    this.nextId = 1;
  }
  now() { return this.t; }
  wallNow() { return this.wall + this.t; }
  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.tasks.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(id) { this.tasks.delete(id); }
  /** Move time forward, running every timer that falls due, in order. */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, task] of this.tasks) {
        if (task.at <= end && (next === null || task.at < next[1].at)) next = [id, task];
      }
      if (next === null) break;
      this.tasks.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    FakeSocket.all.push(this);
  }
  static get last() { return FakeSocket.all[FakeSocket.all.length - 1]; }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.closed = true; }
  // What the server does:
  open() { this.onopen?.(); }
  receive(frame) { this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) }); }
  drop(code = 1006) { this.onclose?.({ code }); }
  frames(type) { return this.sent.filter((f) => f.type === type); }
}

class FakeStorage {
  constructor() { this.map = new Map(); }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

const FAST = readConfig("?backoff_ms=200&ping_ms=1000&pong_timeout_ms=1000&jitter=0");

function setup({ config = FAST, storage = new FakeStorage(), clock = new FakeClock() } = {}) {
  FakeSocket.all = [];
  let n = 0;
  const engine = new ChatEngine({
    url: "ws://example.test/ws/chat", config, WebSocket: FakeSocket, clock, storage,
    random: () => 0.5, newId: () => `m${++n}`,
  });
  const seen = { states: [], events: [], acks: [], dropped: [], resets: 0 };
  engine.on("state", (s) => seen.states.push(s));
  engine.on("event", (e, meta) => seen.events.push({ seq: e.seq, live: meta.live }));
  engine.on("ack", (id) => seen.acks.push(id));
  engine.on("dropped", (m) => seen.dropped.push(m.id));
  engine.on("reset", () => { seen.resets += 1; });
  return { engine, clock, storage, seen };
}

function connect(socket, { session = "session-1", lastSeq = 0 } = {}) {
  socket.open();
  socket.receive({ type: "connected", session_id: session, last_seq: lastSeq, protocol: 1, resumed: true });
}

const typing = (seq) => ({ type: "typing", seq, turn_id: "t", is_typing: true });

// ---------------------------------------------------------------- pure parts

test("backoff: 1 s x 1.5 capped at 30 s, jitter within bounds", () => {
  const bases = Array.from({ length: 11 }, (_, i) => Math.round(backoffBase(DEFAULTS, i + 1)));
  assert.deepEqual(bases, [1000, 1500, 2250, 3375, 5063, 7594, 11391, 17086, 25629, 30000, 30000]);
  for (let attempt = 1; attempt <= 12; attempt++) {
    const base = backoffBase(DEFAULTS, attempt);
    for (const r of [0, 0.25, 0.5, 0.999]) {
      const d = backoffDelay(DEFAULTS, attempt, () => r);
      assert.ok(d >= base * 0.8 - 1e-9 && d <= Math.min(30000, base * 1.2) + 1e-9, `${attempt} ${r} ${d}`);
    }
  }
});

test("reconnector: gives up after the attempt limit; 1012 goes at once", () => {
  const r = new Reconnector({ ...DEFAULTS, jitter: 0, maxAttempts: 3 }, Math.random);
  assert.deepEqual([r.nextDelay("failed"), r.nextDelay("failed"), r.nextDelay("failed")], [1000, 1500, 2250]);
  assert.equal(r.nextDelay("failed"), null);
  r.connected();
  assert.equal(r.nextDelay("restart"), 0);
  assert.equal(r.nextDelay("refused"), null);
});

test("heartbeat: a ping per interval, dead without a pong in time", () => {
  const h = new Heartbeat(30000, 5000);
  h.start(0);
  assert.equal(h.poll(29999), "none");
  assert.equal(h.poll(30000), "ping");
  assert.equal(h.poll(34999), "none");
  assert.equal(h.poll(35000), "dead");
  h.start(100000);
  h.poll(130000);
  h.pong();
  assert.equal(h.nextWakeup(), 160000);
});

test("outbox: 50 at most, oldest dropped; only an ack removes a message", () => {
  const box = new Outbox(50);
  const dropped = [];
  for (let i = 0; i < 52; i++) dropped.push(...box.add({ id: `m${i}`, content: "x", at: 0 }));
  assert.deepEqual(dropped.map((m) => m.id), ["m0", "m1"]);
  assert.equal(box.size, 50);
  assert.equal(box.toSend(0).length, 50);
  assert.equal(box.toSend(0).length, 0);
  box.newConnection();
  assert.equal(box.toSend(0).length, 50, "everything unacked goes again on a new connection");
  assert.equal(box.ack("m2"), true);
  assert.equal(box.ack("m2"), false);
  assert.equal(box.refused("m3", "invalid_message", 0, 1000), "drop");
  assert.equal(box.refused("m4", "rate_limited", 0, 1000), "resend");
  assert.deepEqual(box.toSend(999), []);
  assert.deepEqual(box.toSend(1000).map((m) => m.id), ["m4"]);
});

test("seq tracker: duplicates dropped, gaps refused", () => {
  const s = new SeqTracker(0);
  assert.equal(s.check(1), "apply");
  s.applied(1);
  assert.equal(s.check(1), "duplicate");
  assert.equal(s.check(3), "gap");
  assert.equal(s.behind(0), true);
});

test("config: query params override the defaults, junk is ignored", () => {
  const c = readConfig("?ping_ms=1000&pong_timeout_ms=500&backoff_ms=200&max_attempts=x", { maxAttempts: 4 });
  assert.equal(c.pingMs, 1000);
  assert.equal(c.pongTimeoutMs, 500);
  assert.equal(c.backoffMs, 200);
  assert.equal(c.maxAttempts, 4);
  assert.equal(c.maxBackoffMs, 30000);
});

test("socket URL follows the page: scheme, host, path prefix", () => {
  assert.equal(socketUrl("http://127.0.0.1:8000/?ping_ms=1"), "ws://127.0.0.1:8000/ws/chat");
  assert.equal(socketUrl("https://chat.example.com/"), "wss://chat.example.com/ws/chat");
  assert.equal(socketUrl("https://example.com/deploy/"), "wss://example.com/deploy/ws/chat");
});

// ---------------------------------------------------------------- the engine

test("connects, sends init, goes through the states", () => {
  const { engine, seen } = setup();
  engine.start();
  assert.deepEqual(seen.states, ["connecting"]);
  connect(FakeSocket.last);
  assert.deepEqual(FakeSocket.last.sent[0], { type: "init" });
  assert.deepEqual(seen.states, ["connecting", "connected"]);
  assert.equal(engine.sessionId, "session-1");
});

test("backoff between attempts, gives up after max_attempts, Reconnect starts over", () => {
  const config = readConfig("?backoff_ms=200&jitter=0&max_attempts=3");
  const { engine, clock, seen } = setup({ config });
  engine.start();
  FakeSocket.last.drop();
  const opened = () => FakeSocket.all.length;
  assert.equal(opened(), 1);
  clock.advance(199);
  assert.equal(opened(), 1);
  clock.advance(1);
  assert.equal(opened(), 2);
  FakeSocket.last.drop();
  clock.advance(300);
  assert.equal(opened(), 3);
  FakeSocket.last.drop();
  clock.advance(450);
  assert.equal(opened(), 4);
  FakeSocket.last.drop();
  assert.equal(engine.state, "error");
  clock.advance(60000);
  assert.equal(opened(), 4, "no more attempts after giving up");
  engine.reconnect();
  assert.equal(engine.state, "connecting");
  assert.equal(opened(), 5);
  assert.deepEqual(seen.states, ["connecting", "reconnecting", "reconnecting", "reconnecting", "error", "connecting"]);
});

test("a connect that never completes times out and is retried", () => {
  const { engine, clock } = setup();
  engine.start();
  FakeSocket.last.open(); // TCP and upgrade fine, but no `connected` ever comes
  clock.advance(FAST.connectTimeoutMs);
  assert.equal(FakeSocket.all[0].closed, true);
  assert.equal(engine.state, "reconnecting");
});

test("close code 1012 reconnects at once", () => {
  const config = readConfig("?backoff_ms=5000&jitter=0");
  const { engine, clock } = setup({ config });
  engine.start();
  connect(FakeSocket.last);
  FakeSocket.last.drop(1012);
  clock.advance(0);
  assert.equal(FakeSocket.all.length, 2, "no waiting");
});

test("heartbeat: ping every interval; no pong in time closes and reconnects", () => {
  const { engine, clock } = setup();
  engine.start();
  connect(FakeSocket.last);
  const first = FakeSocket.last;
  clock.advance(1000);
  assert.equal(first.frames("ping").length, 1);
  first.receive({ type: "pong", ts: first.frames("ping")[0].ts });
  clock.advance(1000);
  assert.equal(first.frames("ping").length, 2);
  clock.advance(999);
  assert.equal(engine.state, "connected");
  clock.advance(1);
  assert.equal(first.closed, true);
  assert.equal(engine.state, "reconnecting");
  clock.advance(200);
  assert.equal(FakeSocket.all.length, 2);
});

test("messages leave the outbox only on ack and are resent in order after a reconnect", () => {
  const { engine, clock, seen } = setup();
  engine.start();
  const a = engine.send("first");
  const b = engine.send("second");
  assert.equal(FakeSocket.last.frames("chat").length, 0, "not connected yet: queued");
  connect(FakeSocket.last);
  assert.deepEqual(FakeSocket.last.frames("chat").map((f) => f.id), [a, b]);
  FakeSocket.last.receive({ type: "ack", id: a });
  assert.deepEqual(engine.pending.map((m) => m.id), [b]);
  FakeSocket.last.drop();
  clock.advance(200);
  connect(FakeSocket.last, { lastSeq: 0 });
  assert.deepEqual(FakeSocket.last.frames("chat").map((f) => f.id), [b], "the unacked one goes again");
  FakeSocket.last.receive({ type: "ack", id: b });
  assert.deepEqual(engine.pending, []);
  assert.deepEqual(seen.acks, [a, b]);
});

test("outbox overflow drops the oldest and says so; it survives a reload", () => {
  const config = readConfig("?outbox_limit=3");
  const storage = new FakeStorage();
  const { engine, seen } = setup({ config, storage });
  for (let i = 0; i < 5; i++) engine.send(`text ${i}`);
  assert.deepEqual(seen.dropped, ["m1", "m2"]);
  const again = setup({ config, storage }).engine;
  assert.deepEqual(again.pending.map((m) => m.content), ["text 2", "text 3", "text 4"]);
});

test("each event once, in order; a gap reconnects with the last applied seq", () => {
  const { engine, clock, seen } = setup();
  engine.start();
  connect(FakeSocket.last);
  const sock = FakeSocket.last;
  sock.receive(typing(1));
  sock.receive(typing(2));
  sock.receive(typing(2));
  sock.receive(typing(1));
  sock.receive(typing(4));
  assert.deepEqual(seen.events.map((e) => e.seq), [1, 2]);
  assert.equal(sock.closed, true, "a gap drops the connection");
  clock.advance(200);
  FakeSocket.last.open();
  assert.deepEqual(FakeSocket.last.sent[0], { type: "init", session_id: "session-1", last_seq: 2 });
  connect(FakeSocket.last, { lastSeq: 4 });
  for (const seq of [1, 2, 3, 4]) FakeSocket.last.receive(typing(seq));
  assert.deepEqual(seen.events.map((e) => e.seq), [1, 2, 3, 4]);
});

test("unknown frames and fields are ignored", () => {
  const { engine, seen } = setup();
  engine.start();
  connect(FakeSocket.last);
  FakeSocket.last.receive({ type: "something_new", x: 1 });
  FakeSocket.last.receive("not json");
  FakeSocket.last.receive({ ...typing(1), brand_new_field: [1, 2] });
  assert.deepEqual(seen.events.map((e) => e.seq), [1]);
  assert.equal(engine.state, "connected");
});

test("a reload replays the whole session and marks what was seen before as history", () => {
  const storage = new FakeStorage();
  const first = setup({ storage });
  first.engine.start();
  connect(FakeSocket.last);
  FakeSocket.last.receive(typing(1));
  FakeSocket.last.receive(typing(2));

  const reloaded = setup({ storage });
  reloaded.engine.start();
  FakeSocket.last.open();
  assert.deepEqual(FakeSocket.last.sent[0], { type: "init", session_id: "session-1", last_seq: 0 });
  connect(FakeSocket.last, { lastSeq: 2 });
  for (const seq of [1, 2, 3]) FakeSocket.last.receive(typing(seq));
  assert.deepEqual(reloaded.seen.events, [
    { seq: 1, live: false }, { seq: 2, live: false }, { seq: 3, live: true },
  ]);
});

test("a new conversation forgets the session and keeps queued messages", () => {
  const storage = new FakeStorage();
  const { engine, seen } = setup({ storage });
  engine.start();
  connect(FakeSocket.last);
  FakeSocket.last.receive(typing(1));
  const old = FakeSocket.last;
  old.receive({ type: "ack", id: engine.send("answered") });
  const waiting = engine.send("still queued");
  engine.newSession();
  assert.equal(old.closed, true);
  assert.equal(seen.resets, 1);
  FakeSocket.last.open();
  assert.deepEqual(FakeSocket.last.sent[0], { type: "init" });
  connect(FakeSocket.last, { session: "session-2" });
  assert.deepEqual(FakeSocket.last.frames("chat").map((f) => f.id), [waiting]);
  assert.equal(JSON.parse(storage.getItem("deploychat.session")).session_id, "session-2");
});

test("cancel goes out now, or on the next connection", () => {
  const { engine } = setup();
  engine.start();
  engine.cancel("turn-1");
  connect(FakeSocket.last);
  assert.deepEqual(FakeSocket.last.frames("cancel"), [{ type: "cancel", turn_id: "turn-1" }]);
});

test("going offline disconnects; coming back reconnects at once", () => {
  const { engine, seen } = setup();
  engine.start();
  connect(FakeSocket.last);
  engine.goOffline();
  assert.equal(engine.state, "disconnected");
  assert.equal(FakeSocket.last.closed, true);
  engine.goOnline();
  assert.equal(FakeSocket.all.length, 2);
  assert.deepEqual(seen.states.slice(-2), ["disconnected", "connecting"]);
});

test("a too-large or empty message is refused before it is queued", () => {
  const { engine } = setup();
  assert.throws(() => engine.send("x".repeat(70000)), /too long/);
  assert.throws(() => engine.send("   "), /empty/);
  assert.deepEqual(engine.pending, []);
});
