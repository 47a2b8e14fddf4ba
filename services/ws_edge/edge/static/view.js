// @ts-check
/**
 * What the user sees: the status, the conversation, the cards, the composer, the toasts.
 * It knows nothing about sockets; app.js feeds it the engine's news. Text from users and the
 * model only ever reaches the page as text nodes (see markdown.js), never as HTML.
 */

import { DeploymentCards, analysisCard, cleanText, notice } from "./cards.js";
import { highlightWithin } from "./codehighlight.js";
import { capabilityLine, modeLabel, suggestions } from "./identity.js";
import { renderMarkdown } from "./markdown.js";
import { USER_STATUS, replyElement, setUserStatus, showToast, userMessage } from "./messages.js";

const STATUS_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  disconnected: "Offline",
  error: "Connection failed",
};


/** What a `typing` event's optional status means, in words. */
const TYPING_STATUS = {
  retrying: "The model is busy; trying again…",
  thinking: "Thinking…",
  running_tool: "Working on it…",
};

/** @typedef {import("./messages.js").Reply} Reply */

export class ChatView {
  /** @param {Document} doc */
  constructor(doc = document) {
    this.doc = doc;
    const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (doc.getElementById(id));
    this.el = {
      status: $("status"),
      statusText: $("status-text"),
      reconnect: /** @type {HTMLButtonElement} */ ($("reconnect")),
      newConversation: /** @type {HTMLButtonElement} */ ($("new-conversation")),
      conversation: $("conversation"),
      log: $("log"),
      pending: $("pending"),
      typing: $("typing"),
      form: /** @type {HTMLFormElement} */ ($("composer")),
      input: /** @type {HTMLTextAreaElement} */ ($("input")),
      send: /** @type {HTMLButtonElement} */ ($("send")),
      stop: /** @type {HTMLButtonElement} */ ($("stop")),
      toasts: $("toasts"),
      typingText: $("typing-text"),
      announcer: $("announcer"),
      intro: $("intro"),
      introNotice: $("intro-notice"),
      capabilities: $("capabilities"),
      suggestions: $("suggestions"),
      mode: $("mode"),
      signin: $("signin"),
      signinText: $("signin-text"),
      signinGoogle: /** @type {HTMLButtonElement} */ ($("signin-google")),
      signinGuest: /** @type {HTMLButtonElement} */ ($("signin-guest")),
    };
    /** @type {Map<string, Reply>} */
    this.replies = new Map();
    /** @type {Map<string, HTMLElement>} */
    this.userMessages = new Map();
    this.deployments = new DeploymentCards(doc, this.el.log, {
      answer: (text) => this.handlers.send(text),
      announce: (text) => this.announce(text),
      answered: () => this.focusComposer(),
    });
    /** @type {string|null} the status a `typing` event gave, if any */
    this.typingStatus = null;
    /** @type {string|null} */
    this.runningTurn = null;
    /** whether the reader is at the newest message (and so follows new ones) */
    this.stuck = true;
    this.handlers = {
      send: (/** @type {string} */ _text) => true,
      stop: (/** @type {string} */ _turnId) => {},
      newConversation: () => {},
      reconnect: () => {},
      signInGoogle: () => {},
      signInGuest: () => {},
    };
    this.bind();
    this.updateEmpty();
  }

  // -------------------------------------------------------------- input

  bind() {
    const { form, input, stop, newConversation, reconnect, conversation } = this.el;
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (e) => {
      // Enter sends, Shift+Enter is a new line; never in the middle of an IME composition.
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    input.addEventListener("input", () => this.autosize());
    stop.addEventListener("click", () => {
      if (!this.runningTurn) return;
      stop.disabled = true;
      stop.textContent = "Stopping…";
      this.handlers.stop(this.runningTurn);
      this.focusComposer(); // the button goes away when the turn ends
    });
    newConversation.addEventListener("click", () => {
      this.handlers.newConversation();
      this.focusComposer();
    });
    this.el.suggestions.addEventListener("click", (e) => {
      const button = /** @type {HTMLElement} */ (e.target).closest?.("button[data-suggestion]");
      if (!button) return;
      this.handlers.send(/** @type {HTMLElement} */ (button).dataset.suggestion ?? "");
      this.focusComposer();
    });
    this.el.signinGoogle.addEventListener("click", () => this.handlers.signInGoogle());
    this.el.signinGuest.addEventListener("click", () => this.handlers.signInGuest());
    reconnect.addEventListener("click", () => this.handlers.reconnect());
    // Stay at the newest message when the box changes size (a phone's keyboard opens, the
    // window is resized) if that is where the reader was.
    conversation.addEventListener("scroll", () => { this.stuck = this.atBottom(); }, { passive: true });
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(() => {
        if (this.stuck) conversation.scrollTop = conversation.scrollHeight;
      }).observe(conversation);
    }
    conversation.addEventListener("click", (e) => {
      const button = /** @type {HTMLElement} */ (e.target).closest?.("button.copy");
      if (button) this.copyCode(/** @type {HTMLButtonElement} */ (button));
    });
  }

  submit() {
    const text = this.el.input.value;
    if (!text.trim()) return;
    if (this.handlers.send(text)) {
      this.el.input.value = "";
      this.autosize();
    }
    this.el.input.focus();
  }

  autosize() {
    const { input } = this.el;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  }

  focusComposer() {
    if (!this.el.input.disabled) this.el.input.focus();
  }

  /** Read `text` out once, politely (the log itself is not a live region). @param {string} text */
  announce(text) {
    const { announcer } = this.el;
    announcer.textContent = "";
    // A new text node in a cleared region is announced even if the words repeat.
    setTimeout(() => { announcer.textContent = text.length > 400 ? `${text.slice(0, 400)}…` : text; }, 50);
  }

  /** The mode label, the line on what the assistant does, suggestions that work in this mode.
   * @param {import("./identity.js").AgentConfig} agent */
  setAgent(agent) {
    const doc = this.doc;
    const { mode, capabilities, suggestions: list } = this.el;
    mode.textContent = modeLabel(agent);
    mode.dataset.mode = agent.mode;
    capabilities.textContent = capabilityLine(agent);
    list.replaceChildren(...suggestions(agent).map((text) => {
      const li = doc.createElement("li");
      const button = doc.createElement("button");
      button.type = "button";
      button.className = "suggestion";
      button.dataset.suggestion = text;
      button.setAttribute("aria-label", `Send: ${text}`);
      button.textContent = text;
      li.append(button);
      return li;
    }));
  }

  /** A line above the suggestions (e.g. why the conversation started afresh). @param {string|null} text */
  introNotice(text) {
    this.el.introNotice.hidden = !text;
    this.el.introNotice.textContent = text ?? "";
  }

  /**
   * Signed out (or not yet): the sign-in choices instead of the conversation.
   * @param {boolean} show @param {{ guest?: boolean, message?: string }} [options]
   */
  showSignIn(show, options = {}) {
    const { signin, conversation, input, send, signinGuest, signinText } = this.el;
    signin.hidden = !show;
    conversation.classList.toggle("signed-out", show);
    input.disabled = show;
    send.disabled = show;
    this.el.newConversation.disabled = show;
    signinGuest.hidden = options.guest === false;
    if (options.message) signinText.textContent = options.message;
    if (show) this.el.signinGoogle.focus();
  }

  /** @param {HTMLButtonElement} button */
  copyCode(button) {
    const code = button.closest(".code-block")?.querySelector("code")?.textContent ?? "";
    navigator.clipboard?.writeText(code).then(() => {
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    }, () => this.toast("Could not copy to the clipboard."));
  }

  // -------------------------------------------------------------- connection

  /** @param {keyof typeof STATUS_TEXT} state @param {Record<string, any>} [info] */
  setState(state, info = {}) {
    const { status, statusText, reconnect } = this.el;
    if (state === "disconnected" && info.reason === "stopped") {
      // Stopped on purpose (signed out): nothing to reconnect to, nothing wrong.
      status.dataset.state = "idle";
      statusText.textContent = STATUS_TEXT.idle;
      status.title = STATUS_TEXT.idle;
      reconnect.hidden = true;
      return;
    }
    status.dataset.state = state;
    let text = STATUS_TEXT[state] ?? state;
    if (state === "reconnecting" && info.attempt) text = `Reconnecting… (attempt ${info.attempt})`;
    statusText.textContent = text;
    status.title = info.reason ? String(info.reason) : text;
    reconnect.hidden = !(state === "error" || state === "disconnected");
  }

  // -------------------------------------------------------------- conversation

  /** Empty the conversation (a new one starts). */
  clear() {
    this.el.log.replaceChildren();
    this.el.pending.replaceChildren();
    this.replies.clear();
    this.userMessages.clear();
    this.deployments.clear();
    this.setRunning(null);
    this.introNotice(null);
    this.updateEmpty();
  }

  /** Show every message still in the outbox, queued, below the conversation. @param {{id: string, content: string}[]} messages */
  syncPending(messages) {
    this.keepScroll(() => {
      for (const message of messages) {
        if (this.userMessages.has(message.id)) continue;
        const li = this.userMessage(message.id, message.content, "queued");
        this.el.pending.append(li);
      }
    });
  }

  /** @param {string} id */
  markSent(id) {
    const li = this.userMessages.get(id);
    if (li && li.dataset.status === "queued") setUserStatus(li, "sent");
  }

  /** @param {string} id */
  dropPending(id) {
    const li = this.userMessages.get(id);
    if (li && li.dataset.status !== "delivered") {
      li.remove();
      this.userMessages.delete(id);
      this.updateEmpty();
    }
  }

  /** @param {any} event a stored session event @param {{live: boolean}} meta */
  applyEvent(event, meta) {
    this.keepScroll(() => {
      switch (event.type) {
        case "chat":
          if (event.role === "user") this.userEvent(event);
          else if (event.role === "assistant") this.replyEvent(event, meta.live);
          break;
        case "typing":
          this.typingEvent(event);
          break;
        case "analysis":
          this.el.log.append(analysisCard(event.data, this.doc));
          break;
        case "deployment_update":
          this.deployments.update(event);
          break;
        case "deployment_complete":
          this.deployments.complete(event, meta.live);
          break;
        case "error":
          this.el.log.append(notice(`${cleanText(event.message)} (${event.code})`, this.doc));
          if (meta.live) this.toast(event.message || "The assistant ran into a problem.");
          break;
        default:
          break; // a kind this page does not know yet
      }
      this.updateEmpty();
    });
  }

  /** @param {any} event */
  userEvent(event) {
    const text = event.content ?? event.delta ?? "";
    let li = this.userMessages.get(event.message_id);
    if (li) {
      const bubble = li.querySelector(".bubble");
      if (bubble) bubble.textContent = text;
    } else {
      li = this.userMessage(event.message_id, text, "delivered");
    }
    setUserStatus(li, "delivered");
    this.el.log.append(li); // out of the pending list, into its place in the conversation
  }

  /** @param {any} event @param {boolean} live */
  replyEvent(event, live) {
    let reply = this.replies.get(event.message_id);
    if (!reply) {
      reply = this.replyElement(event.message_id, event.turn_id);
      this.replies.set(event.message_id, reply);
      this.el.log.append(reply.li);
    }
    if (event.final) {
      // The final text is authoritative: after a server-side retry the pieces may differ.
      reply.text = event.content ?? reply.text;
      reply.li.dataset.final = "true";
      reply.li.classList.remove("streaming");
      if (event.stopped) {
        reply.li.dataset.stopped = "true";
        const tag = this.doc.createElement("span");
        tag.className = "tag";
        tag.textContent = "Stopped";
        reply.li.querySelector(".meta")?.append(tag);
      }
    } else {
      reply.text += event.delta ?? "";
    }
    const final = reply.li.dataset.final === "true";
    reply.bubble.replaceChildren(renderMarkdown(reply.text, this.doc, { partial: !final }));
    // A code block that scrolls sideways must be reachable by keyboard (WCAG 2.1.1).
    for (const pre of reply.bubble.querySelectorAll("pre")) {
      pre.tabIndex = 0;
      pre.setAttribute("aria-label", "Code");
    }
    if (final) {
      highlightWithin(reply.bubble, this.doc).catch(() => {});
      if (live) this.announce(`Assistant: ${reply.bubble.textContent ?? ""}${event.stopped ? " (stopped)" : ""}`);
    }
    this.showTyping();
  }

  /** @param {any} event */
  typingEvent(event) {
    this.typingStatus = event.is_typing && typeof event.status === "string" && event.status ? event.status : null;
    if (event.is_typing) this.setRunning(event.turn_id);
    else if (this.runningTurn === event.turn_id) this.setRunning(null);
  }

  /** @param {string|null} turnId */
  setRunning(turnId) {
    this.runningTurn = turnId;
    const { stop } = this.el;
    stop.hidden = turnId === null;
    stop.disabled = false;
    stop.textContent = "Stop";
    this.showTyping();
  }

  /** Dots while the agent works and has not written anything yet for the turn, or while it
   * says what it is doing (a retry); never a silent spinner when it has something to say. */
  showTyping() {
    const turn = this.runningTurn;
    const reply = turn ? this.replies.get(`${turn}-reply`) : undefined;
    const status = turn ? this.typingStatus : null;
    this.el.typing.hidden = !turn || (Boolean(reply && reply.text) && !status);
    this.el.typingText.textContent = status
      ? TYPING_STATUS[/** @type {keyof typeof TYPING_STATUS} */ (status)] ?? `Assistant: ${cleanText(status).replace(/_/g, " ")}…`
      : "Assistant is working…";
    this.el.typing.dataset.status = status ?? "";
    for (const r of this.replies.values()) {
      r.li.classList.toggle("streaming", r.li.dataset.turn === turn && r.li.dataset.final !== "true");
    }
  }

  // -------------------------------------------------------------- elements, toasts, scrolling

  /** @param {string} id @param {string} text @param {keyof typeof USER_STATUS} status */
  userMessage(id, text, status) {
    const li = userMessage(this.doc, id, text, status);
    this.userMessages.set(id, li);
    return li;
  }

  /** @param {string} messageId @param {string} turnId @returns {Reply} */
  replyElement(messageId, turnId) {
    return replyElement(this.doc, messageId, turnId);
  }

  /** @param {string} text @param {"error"|"info"} [kind] */
  toast(text, kind = "error") {
    showToast(this.doc, this.el.toasts, text, kind, () => this.focusComposer());
  }

  updateEmpty() {
    const empty = !this.el.log.childElementCount && !this.el.pending.childElementCount;
    this.el.conversation.classList.toggle("is-empty", empty);
  }

  /** Follow new content only if the reader is at the bottom already. @param {() => void} change */
  keepScroll(change) {
    const box = this.el.conversation;
    const follow = this.atBottom();
    change();
    this.updateEmpty();
    if (follow) box.scrollTop = box.scrollHeight;
  }

  atBottom() {
    const box = this.el.conversation;
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }
}
