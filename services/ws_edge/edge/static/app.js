// @ts-check
/** Wires the connection engine to the view; the only module that knows both. */

import { ChatEngine, readConfig, socketUrl } from "./engine.js";
import { ChatView } from "./view.js";

const config = readConfig(location.search, /** @type {any} */ (window).DEPLOYCHAT_CONFIG);
const engine = new ChatEngine({ url: socketUrl(location.href), config });
const view = new ChatView(document);

/** @type {string[]} every state the page went through, for debugging (and the browser tests) */
const states = ["idle"];

engine.on("state", (/** @type {any} */ state, /** @type {any} */ info) => {
  states.push(state);
  view.setState(state, info);
});
engine.on("event", (/** @type {any} */ event, /** @type {any} */ meta) => view.applyEvent(event, meta));
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
view.handlers.newConversation = () => engine.newSession();
view.handlers.reconnect = () => engine.reconnect();

window.addEventListener("offline", () => engine.goOffline());
window.addEventListener("online", () => engine.goOnline());

/** @type {any} */ (window).deploychat = { engine, view, states };

view.setState("idle");
view.syncPending(engine.pending);
engine.start();

/** @param {string} text */
function snippet(text) {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 40 ? `${line.slice(0, 40)}…` : line;
}
