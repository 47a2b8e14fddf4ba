// Sign-in and session-list decisions of the page (identity.js), and the engine's part of
// identity: a token in every init, a refused kept session, another user, opening a session.
// Run: node --test tests/unit/js/

import assert from "node:assert/strict";
import { test } from "node:test";

import { ChatEngine, readConfig } from "../../../services/ws_edge/edge/static/engine.js";
import {
  REFRESH_MARGIN_MS,
  listedSessions,
  modeLabel,
  parseConfig,
  refreshDelay,
  sessionLine,
  suggestions,
  tokenExpiry,
  userLabel,
} from "../../../services/ws_edge/edge/static/identity.js";

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
const jwt = (claims) => `${b64url({ alg: "none" })}.${b64url(claims)}.`;

test("config: read defensively; an odd emulator URL is dropped", () => {
  const ok = parseConfig({
    auth: { mode: "firebase", api_key: "k", auth_domain: "d", project_id: "p", emulator_url: "http://127.0.0.1:9099/" },
    agent: { mode: "model", model: "gemini-2.5-flash" },
  });
  assert.equal(ok.auth.emulator_url, "http://127.0.0.1:9099");
  assert.equal(modeLabel(ok.agent), "gemini-2.5-flash");
  const odd = parseConfig({ auth: { mode: "weird", emulator_url: "javascript:alert(1)" } });
  assert.equal(odd.auth.mode, "firebase", "anything but an explicit none means sign-in");
  assert.equal(odd.auth.emulator_url, null);
  assert.equal(odd.agent.mode, "offline");
  assert.equal(modeLabel(odd.agent), "offline mode");
  assert.equal(parseConfig(null).auth.mode, "firebase");
  assert.equal(parseConfig({ auth: { mode: "none" } }).auth.mode, "none");
});

test("suggestions work in their mode: offline ones are commands on the shipped examples", () => {
  for (const text of suggestions({ mode: "offline", model: null })) {
    assert.match(text, /^(analyse|write a Dockerfile|deploy|help)/);
    if (text !== "help") assert.match(text, /\.\/examples\/hello-(flask|express)/);
  }
  assert.ok(suggestions({ mode: "model", model: "m" }).some((t) => /\?$/.test(t)));
});

test("a token is refreshed five minutes before it expires", () => {
  const now = 1_800_000_000_000;
  const token = jwt({ exp: now / 1000 + 3600 });
  assert.equal(tokenExpiry(token), now + 3600_000);
  assert.equal(refreshDelay(token, now), 3600_000 - REFRESH_MARGIN_MS);
  assert.equal(refreshDelay(jwt({ exp: now / 1000 + 60 }), now), 0);
  assert.equal(refreshDelay("not a jwt", now), 30 * 60 * 1000);
});

test("who is signed in, and the sessions worth listing", () => {
  assert.equal(userLabel(null), "Not signed in");
  assert.equal(userLabel({ isAnonymous: true }), "Guest");
  assert.equal(userLabel({ isAnonymous: false, email: "a@b.c" }), "a@b.c");
  const now = 1_800_000_000_000;
  const listed = listedSessions([
    { session_id: "a", title: "analyse ./x", updated_at: now / 1000 - 120, last_seq: 4 },
    { session_id: "b", title: null, last_seq: 0 },
    { session_id: "c", title: null, last_seq: 0 },
    { nope: true },
  ], "c");
  assert.deepEqual(listed.map((s) => s.session_id), ["a", "c"]);
  assert.deepEqual(sessionLine(listed[0], now), { title: "analyse ./x", when: "2 min ago", at: now - 120_000 });
  assert.equal(sessionLine(listed[1], now).title, "New conversation");
  assert.equal(sessionLine({ updated_at: new Date(now - 3 * 3600_000).toISOString() }, now).when, "3 h ago");
});

// ---------------------------------------------------------------- the engine's part

class Socket {
  static all = [];
  constructor() { this.sent = []; Socket.all.push(this); }
  static get last() { return Socket.all[Socket.all.length - 1]; }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() {}
  open() { this.onopen?.(); }
  receive(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
  drop(code = 1006) { this.onclose?.({ code }); }
}

class Storage {
  constructor() { this.map = new Map(); }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

const clock = {
  now: () => 0, wallNow: () => 0, setTimeout: () => 0, clearTimeout: () => {},
};

function engineWith(getToken, storage = new Storage()) {
  Socket.all = [];
  const engine = new ChatEngine({
    url: "ws://x/ws/chat", config: readConfig(""), WebSocket: Socket, clock, storage,
    random: () => 0.5, getToken,
  });
  const seen = { lost: [], resets: 0, errors: [], events: [] };
  engine.on("session-lost", (id) => seen.lost.push(id));
  engine.on("reset", () => { seen.resets += 1; });
  engine.on("server-error", (f) => seen.errors.push(f.code));
  engine.on("event", (e, meta) => seen.events.push([e.seq, meta.live]));
  return { engine, storage, seen };
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

test("every init carries a fresh token, waited for when it is being fetched", async () => {
  const asked = [];
  const { engine } = engineWith((force) => { asked.push(force); return Promise.resolve(`tok${asked.length}`); });
  engine.start();
  Socket.last.open();
  assert.deepEqual(Socket.last.sent, [], "nothing before the token");
  await flush();
  assert.deepEqual(Socket.last.sent[0], { type: "init", token: "tok1" });
  Socket.last.receive({ type: "connected", session_id: "s1", last_seq: 0, protocol: 1, resumed: false });
  Socket.last.drop(1012);
  engine.reconnect();
  Socket.last.open();
  await flush();
  assert.deepEqual(Socket.last.sent[0], { type: "init", token: "tok2", session_id: "s1", last_seq: 0 });
  assert.deepEqual(asked, [false, false]);
});

test("a refused token is retried once, fresh, then the page stops trying", async () => {
  const asked = [];
  const { engine, seen } = engineWith((force) => { asked.push(force); return "t"; });
  engine.start();
  Socket.last.open();
  Socket.last.receive({ type: "error", code: "unauthorized", message: "bad token" });
  assert.equal(Socket.all.length, 2);
  Socket.last.open();
  Socket.last.receive({ type: "error", code: "unauthorized", message: "bad token" });
  assert.deepEqual(asked, [false, true]);
  assert.equal(engine.state, "error");
  assert.deepEqual(seen.errors, ["unauthorized"]);
});

test("a kept session the server refuses is said to be gone, and a new one starts", () => {
  const storage = new Storage();
  storage.setItem("deploychat.session", JSON.stringify({ session_id: "old-session", last_seq: 9 }));
  const { engine, seen } = engineWith(() => "t", storage);
  engine.start();
  Socket.last.open();
  assert.equal(Socket.last.sent[0].session_id, "old-session");
  Socket.last.receive({ type: "error", code: "unauthorized", message: "no such session" });
  assert.deepEqual(seen.lost, ["old-session"]);
  assert.equal(seen.resets, 1);
  assert.equal(storage.getItem("deploychat.session"), null);
  Socket.last.open();
  assert.deepEqual(Socket.last.sent[0], { type: "init", token: "t" });
  Socket.last.receive({ type: "connected", session_id: "new-session", last_seq: 0, protocol: 1, resumed: false });
  assert.equal(engine.state, "connected");
  assert.equal(JSON.parse(storage.getItem("deploychat.session")).session_id, "new-session");
});

test("opening a listed session replays it all as history", () => {
  const { engine, seen } = engineWith(() => "t");
  engine.start();
  Socket.last.open();
  Socket.last.receive({ type: "connected", session_id: "s1", last_seq: 0, protocol: 1, resumed: false });
  engine.openSession("s0");
  assert.equal(seen.resets, 1);
  Socket.last.open();
  assert.deepEqual(Socket.last.sent[0], { type: "init", token: "t", session_id: "s0", last_seq: 0 });
  Socket.last.receive({ type: "connected", session_id: "s0", last_seq: 2, protocol: 1, resumed: true });
  for (const seq of [1, 2, 3]) Socket.last.receive({ type: "typing", seq, turn_id: "t", is_typing: false });
  assert.deepEqual(seen.events, [[1, false], [2, false], [3, true]]);
});

test("another user signing in forgets the session and the queue of the one before", () => {
  const storage = new Storage();
  const { engine, seen } = engineWith(() => "t", storage);
  engine.setUser("alice");
  engine.start();
  Socket.last.open();
  Socket.last.receive({ type: "connected", session_id: "alices", last_seq: 0, protocol: 1, resumed: false });
  engine.stop();
  engine.send("queued by alice");
  engine.setUser("alice");
  assert.equal(seen.resets, 0, "the same user keeps everything");
  engine.setUser("bob");
  assert.equal(seen.resets, 1);
  assert.equal(engine.sessionId, null);
  assert.deepEqual(engine.pending, []);
  assert.equal(storage.getItem("deploychat.uid"), JSON.stringify("bob"));
  engine.send("queued by bob");
  engine.setUser(null);
  assert.deepEqual(engine.pending, [], "signing out forgets the queue");
  assert.equal(storage.getItem("deploychat.uid"), null);
});
