// @ts-check
/**
 * Wires sign-in, the connection engine, the view and the side panel; the only module that
 * knows them all. Order: read /api/config, sign in (locally: as a guest, by itself), then
 * connect with the user's ID token.
 */

import { PageAuth } from "./auth.js";
import { ChatEngine, readConfig, socketUrl } from "./engine.js";
import { parseConfig } from "./identity.js";
import { Sidebar } from "./sidebar.js";
import { ChatView } from "./view.js";

const view = new ChatView(document);
const sidebar = new Sidebar(document);

/** @type {string[]} every state the page went through, for debugging (and the browser tests) */
const states = ["idle"];
/** @type {any} */ (window).deploychat = { states, ready: false };

main().catch((error) => {
  console.error("deploychat: the page could not start", error);
  view.toast(`The page could not start: ${error instanceof Error ? error.message : error}`);
});

async function main() {
  const config = await fetchConfig();
  view.setAgent(config.agent);
  const auth = new PageAuth(config.auth);
  await auth.init({ resumeUid: keptUid() });

  const engine = new ChatEngine({
    url: socketUrl(location.href),
    config: readConfig(location.search, /** @type {any} */ (window).DEPLOYCHAT_CONFIG),
    getToken: (force) => auth.getToken(force),
  });
  Object.assign(/** @type {any} */ (window).deploychat, { engine, view, sidebar, auth, config });

  engine.on("state", (/** @type {any} */ state, /** @type {any} */ info) => {
    states.push(state);
    view.setState(state, info);
  });
  engine.on("event", (/** @type {any} */ event, /** @type {any} */ meta) => {
    view.applyEvent(event, meta);
    // A new conversation's first message gives it its title in the list.
    if (meta.live && event.type === "chat" && event.role === "user") sessions.refreshSoon();
  });
  engine.on("outbox", (/** @type {any[]} */ pending) => view.syncPending(pending));
  engine.on("ack", (/** @type {string} */ id) => view.markSent(id));
  engine.on("dropped", (/** @type {any} */ message, /** @type {string} */ reason) => {
    view.dropPending(message.id);
    view.toast(`Not sent: “${snippet(message.content)}”. ${reason}`);
  });
  engine.on("server-error", (/** @type {any} */ frame) => {
    // A rate-limited message is sent again by itself: worth knowing, not alarming.
    const again = frame.code === "rate_limited";
    view.toast(`${frame.message || frame.code}${again ? " It will be sent again shortly." : ""}`,
      again ? "info" : "error");
  });
  engine.on("reset", () => {
    view.clear();
    view.syncPending(engine.pending);
  });
  engine.on("session-lost", () => {
    const text = "Your previous conversation is no longer available (it expired, or belongs to another account), so a new one has started.";
    view.introNotice(text);
    view.toast(text, "info");
    view.announce(text);
  });
  engine.on("session", (/** @type {string} */ id) => {
    sidebar.setCurrent(id);
    sessions.refreshSoon();
  });

  const sessions = new SessionList(auth, sidebar);

  view.handlers.send = (text) => {
    try {
      engine.send(text);
      return true;
    } catch (error) {
      view.toast(error instanceof Error ? error.message : String(error));
      return false;
    }
  };
  view.handlers.stop = (turnId) => engine.cancel(turnId);
  view.handlers.newConversation = () => {
    engine.newSession();
    sidebar.setDrawer(false, false);
  };
  view.handlers.reconnect = () => engine.reconnect();
  const google = async () => {
    try {
      await auth.signInGoogle();
    } catch (error) {
      const code = /** @type {any} */ (error)?.code ?? "";
      if (code !== "auth/popup-closed-by-user" && code !== "auth/cancelled-popup-request") {
        view.toast(`Google sign-in did not work: ${error instanceof Error ? error.message : error}`);
      }
    }
  };
  const guest = async () => {
    try {
      await auth.signInGuest();
    } catch (error) {
      view.toast(`Guest sign-in did not work: ${error instanceof Error ? error.message : error}`);
    }
  };
  view.handlers.signInGoogle = google;
  view.handlers.signInGuest = guest;
  sidebar.handlers.google = google;
  sidebar.handlers.signOut = () => {
    sidebar.setDrawer(false, false);
    auth.signOut().catch((e) => view.toast(String(e)));
  };
  sidebar.handlers.open = (id) => {
    engine.openSession(id);
    view.focusComposer();
  };

  window.addEventListener("offline", () => engine.goOffline());
  window.addEventListener("online", () => engine.goOnline());

  view.setState("idle");

  if (config.auth.mode === "none") {
    sidebar.setUser(null, { mode: "none", emulated: false });
    view.introNotice("This local stack runs without sign-in: anyone who can reach it can use it.");
    view.syncPending(engine.pending);
    engine.start();
    /** @type {any} */ (window).deploychat.ready = true;
    return;
  }

  /** @param {import("./auth.js").PageUser|null} user */
  const signedIn = (user) => {
    sidebar.setUser(user, { mode: "firebase", emulated: auth.emulated });
    if (!user) {
      engine.stop();
      engine.setUser(null);
      view.clear();
      sidebar.render([]);
      view.showSignIn(true, { message: "Signed out. Sign in to see your conversations." });
      return;
    }
    engine.setUser(user.uid);
    view.showSignIn(false);
    view.syncPending(engine.pending);
    if (engine.state === "idle") engine.start();
    else engine.reconnect();
    sessions.refreshSoon();
    view.focusComposer();
  };
  let last = /** @type {string|null|undefined} */ (undefined);
  auth.onChange((user) => {
    // Token refreshes come here too: only a change of user matters.
    const uid = user?.uid ?? null;
    if (uid === last) return;
    last = uid;
    signedIn(user);
  });
  if (auth.user) {
    last = auth.user.uid;
    signedIn(auth.user);
  } else if (auth.emulated) {
    // Locally the page opens straight into a chat: a guest on the Auth emulator.
    await guest();
  } else {
    view.showSignIn(true);
  }
  /** @type {any} */ (window).deploychat.ready = true;
}

/** The user the kept session belongs to (the engine keeps it beside the session). */
function keptUid() {
  try {
    const uid = JSON.parse(localStorage.getItem("deploychat.uid") ?? "null");
    return typeof uid === "string" ? uid : null;
  } catch {
    return null;
  }
}

/** @returns {Promise<import("./identity.js").PageConfig>} */
async function fetchConfig() {
  const response = await fetch(new URL("api/config", location.href), { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`GET /api/config answered ${response.status}`);
  return parseConfig(await response.json());
}

/** The user's conversations from GET /api/sessions, fetched again when they may have changed. */
class SessionList {
  /** @param {PageAuth} auth @param {Sidebar} sidebar */
  constructor(auth, sidebar) {
    this.auth = auth;
    this.sidebar = sidebar;
    /** @type {any} */
    this.timer = null;
  }

  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.refresh().catch(() => {}); }, 300);
  }

  async refresh() {
    if (this.auth.mode === "none") return;
    const token = await this.auth.getToken();
    if (!token) return;
    const response = await fetch(new URL("api/sessions", location.href), {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    });
    if (response.ok) this.sidebar.render(await response.json());
  }
}

/** @param {string} text */
function snippet(text) {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 40 ? `${line.slice(0, 40)}…` : line;
}
