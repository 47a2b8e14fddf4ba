// @ts-check
/**
 * What the user sees: the status, the conversation, the cards, the composer, the toasts.
 * It knows nothing about sockets; app.js feeds it the engine's news. Text from users and the
 * model only ever reaches the page as text nodes (see markdown.js), never as HTML.
 */

import { link, renderMarkdown, safeHref } from "./markdown.js";

const STATUS_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  disconnected: "Offline",
  error: "Connection failed",
};

const USER_STATUS = { queued: "Queued", sent: "Sent", delivered: "Delivered" };

const TOAST_MS = 7000;

/** @typedef {{ li: HTMLElement, bubble: HTMLElement, text: string }} Reply */

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
    };
    /** @type {Map<string, Reply>} */
    this.replies = new Map();
    /** @type {Map<string, HTMLElement>} */
    this.userMessages = new Map();
    /** @type {Map<string, HTMLElement>} */
    this.deployments = new Map();
    /** @type {string|null} */
    this.runningTurn = null;
    /** whether the reader is at the newest message (and so follows new ones) */
    this.stuck = true;
    this.handlers = {
      send: (/** @type {string} */ _text) => true,
      stop: (/** @type {string} */ _turnId) => {},
      newConversation: () => {},
      reconnect: () => {},
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
    });
    newConversation.addEventListener("click", () => this.handlers.newConversation());
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
          else if (event.role === "assistant") this.replyEvent(event);
          break;
        case "typing":
          this.typingEvent(event);
          break;
        case "analysis":
          this.el.log.append(analysisCard(event.data, this.doc));
          break;
        case "deployment_update":
          this.deploymentUpdate(event);
          break;
        case "deployment_complete":
          this.deploymentComplete(event);
          break;
        case "error":
          this.el.log.append(notice(`${event.message} (${event.code})`, this.doc));
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

  /** @param {any} event */
  replyEvent(event) {
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
    reply.bubble.replaceChildren(renderMarkdown(reply.text, this.doc));
    this.showTyping();
  }

  /** @param {any} event */
  typingEvent(event) {
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

  /** Dots while the agent works and has not written anything yet for the turn. */
  showTyping() {
    const turn = this.runningTurn;
    const reply = turn ? this.replies.get(`${turn}-reply`) : undefined;
    this.el.typing.hidden = !turn || Boolean(reply && reply.text);
    for (const r of this.replies.values()) {
      r.li.classList.toggle("streaming", r.li.dataset.turn === turn && r.li.dataset.final !== "true");
    }
  }

  /** @param {any} event */
  deploymentUpdate(event) {
    const card = this.deploymentCard(event.deployment_id);
    if (event.stage === "awaiting_confirmation") {
      this.askConfirmation(card, event);
      return;
    }
    this.settleConfirmation(card);
    const progress = Math.max(0, Math.min(100, Number(event.progress) || 0));
    const bar = /** @type {HTMLElement} */ (card.querySelector(".progress"));
    bar.setAttribute("aria-valuenow", String(progress));
    /** @type {HTMLElement} */ (card.querySelector(".bar")).style.width = `${progress}%`;
    /** @type {HTMLElement} */ (card.querySelector(".stage")).textContent = `${event.stage} · ${progress}%`;
    /** @type {HTMLElement} */ (card.querySelector(".card-text")).textContent = event.message ?? "";
  }

  /**
   * A deployment waits for the user's word: what will be deployed where, and two buttons that
   * answer in the chat ("yes" / "no"), as typing the answer would.
   * @param {HTMLElement} card @param {any} event
   */
  askConfirmation(card, event) {
    const doc = this.doc;
    card.dataset.status = "awaiting";
    /** @type {HTMLElement} */ (card.querySelector(".card-head h3")).textContent = "Confirm deployment";
    /** @type {HTMLElement} */ (card.querySelector(".stage")).textContent = "";
    /** @type {HTMLElement} */ (card.querySelector(".card-text")).textContent =
      String(event.message ?? "").replace(/\*\*/g, "");
    card.querySelector(".confirm")?.remove();
    const box = doc.createElement("div");
    box.className = "confirm";
    const details = doc.createElement("dl");
    const confirm = event.confirm && typeof event.confirm === "object" ? event.confirm : {};
    for (const [label, key] of [["Target", "target"], ["Source", "source"], ["Project", "project"],
                                 ["Region", "region"], ["Service", "service"]]) {
      if (confirm[key] == null) continue;
      const dt = doc.createElement("dt");
      dt.textContent = label;
      const dd = doc.createElement("dd");
      dd.textContent = key === "target" && confirm[key] === "local" ? "this machine" : String(confirm[key]);
      details.append(dt, dd);
    }
    const actions = doc.createElement("div");
    actions.className = "confirm-actions";
    for (const [label, answer, kind] of [["Deploy", "yes", "primary"], ["Not now", "no", "secondary"]]) {
      const button = doc.createElement("button");
      button.type = "button";
      button.className = `confirm-${kind}`;
      button.textContent = label;
      button.setAttribute("aria-label", `${label}: answer ${answer} to the deployment`);
      button.addEventListener("click", () => {
        if (this.handlers.send(answer)) {
          for (const b of actions.querySelectorAll("button")) /** @type {HTMLButtonElement} */ (b).disabled = true;
        }
      });
      actions.append(button);
    }
    box.append(details, actions);
    card.append(box);
  }

  /** The deployment went ahead (or was answered): its question is no longer open. @param {HTMLElement} card */
  settleConfirmation(card) {
    card.querySelector(".confirm")?.remove();
    if (card.dataset.status === "awaiting") {
      delete card.dataset.status;
      /** @type {HTMLElement} */ (card.querySelector(".card-head h3")).textContent = "Deployment";
    }
  }

  /** The deployment's card becomes its result: the outcome, the URL, the last word. @param {any} event */
  deploymentComplete(event) {
    const ok = event.status === "succeeded";
    const doc = this.doc;
    const card = this.deploymentCard(event.deployment_id);
    this.settleConfirmation(card);
    card.classList.add("result");
    card.dataset.status = event.status;
    /** @type {HTMLElement} */ (card.querySelector(".card-head h3")).textContent = ok ? "Deployed" : "Deployment failed";
    /** @type {HTMLElement} */ (card.querySelector(".card-icon")).textContent = ok ? "✓" : "✕";
    /** @type {HTMLElement} */ (card.querySelector(".stage")).textContent = ok ? "100%" : "";
    /** @type {HTMLElement} */ (card.querySelector(".bar")).style.width = "100%";
    /** @type {HTMLElement} */ (card.querySelector(".progress")).setAttribute("aria-valuenow", "100");
    /** @type {HTMLElement} */ (card.querySelector(".card-text")).textContent = event.message ?? "";
    card.querySelector(".result-url")?.remove();
    const href = event.url ? safeHref(event.url) : null;
    if (href) {
      const p = doc.createElement("p");
      p.className = "result-url";
      p.append(link(href, event.url, doc));
      card.querySelector(".progress")?.after(p);
    }
  }

  /** @param {string} id */
  deploymentCard(id) {
    let card = this.deployments.get(id);
    if (card) return card;
    const doc = this.doc;
    card = cardElement("Deployment", "⇡", doc);
    card.classList.add("deployment");
    card.dataset.deployment = id;
    const stage = doc.createElement("span");
    stage.className = "stage";
    card.querySelector(".card-head")?.append(stage);
    const track = doc.createElement("div");
    track.className = "progress";
    track.setAttribute("role", "progressbar");
    track.setAttribute("aria-label", "Deployment progress");
    track.setAttribute("aria-valuemin", "0");
    track.setAttribute("aria-valuemax", "100");
    const bar = doc.createElement("div");
    bar.className = "bar";
    track.append(bar);
    card.append(track, paragraph("", "card-text", doc));
    this.deployments.set(id, card);
    this.el.log.append(card);
    return card;
  }

  // -------------------------------------------------------------- elements

  /** @param {string} id @param {string} text @param {keyof typeof USER_STATUS} status */
  userMessage(id, text, status) {
    const doc = this.doc;
    const li = doc.createElement("li");
    li.className = "msg user";
    li.dataset.id = id;
    const bubble = doc.createElement("div");
    bubble.className = "bubble";
    bubble.textContent = text;
    const meta = doc.createElement("div");
    meta.className = "meta";
    const label = doc.createElement("span");
    label.className = "delivery";
    meta.append(label);
    li.append(bubble, meta);
    setUserStatus(li, status);
    this.userMessages.set(id, li);
    return li;
  }

  /** @param {string} messageId @param {string} turnId @returns {Reply} */
  replyElement(messageId, turnId) {
    const doc = this.doc;
    const li = doc.createElement("li");
    li.className = "msg assistant";
    li.dataset.id = messageId;
    li.dataset.turn = turnId;
    li.dataset.final = "false";
    const avatar = doc.createElement("div");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = "dc";
    const body = doc.createElement("div");
    body.className = "body";
    const bubble = doc.createElement("div");
    bubble.className = "bubble markdown";
    const meta = doc.createElement("div");
    meta.className = "meta";
    body.append(bubble, meta);
    li.append(avatar, body);
    return { li, bubble, text: "" };
  }

  // -------------------------------------------------------------- toasts, scrolling

  /** @param {string} text @param {"error"|"info"} [kind] */
  toast(text, kind = "error") {
    const doc = this.doc;
    const el = doc.createElement("div");
    el.className = `toast ${kind}`;
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    const span = doc.createElement("span");
    span.textContent = text;
    const close = doc.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => el.remove());
    el.append(span, close);
    this.el.toasts.append(el);
    setTimeout(() => el.remove(), TOAST_MS);
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

/** @param {HTMLElement} li @param {keyof typeof USER_STATUS} status */
function setUserStatus(li, status) {
  li.dataset.status = status;
  const label = li.querySelector(".delivery");
  if (label) label.textContent = USER_STATUS[status];
}

/** @param {string} title @param {string} icon @param {Document} doc */
function cardElement(title, icon, doc) {
  const li = doc.createElement("li");
  li.className = "card";
  const head = doc.createElement("div");
  head.className = "card-head";
  const badge = doc.createElement("span");
  badge.className = "card-icon";
  badge.setAttribute("aria-hidden", "true");
  badge.textContent = icon;
  const h = doc.createElement("h3");
  h.textContent = title;
  head.append(badge, h);
  li.append(head);
  return li;
}

/** @param {string} text @param {string} className @param {Document} doc */
function paragraph(text, className, doc) {
  const p = doc.createElement("p");
  p.className = className;
  p.textContent = text;
  return p;
}

/** @param {string} text @param {Document} doc */
function notice(text, doc) {
  const li = doc.createElement("li");
  li.className = "notice error";
  li.setAttribute("role", "note");
  li.textContent = text;
  return li;
}

/**
 * The analysis the agent stored: what was found, each with the file and line that show it.
 * @param {Record<string, any>} data @param {Document} doc
 */
function analysisCard(data, doc) {
  const card = cardElement("Repository analysis", "◆", doc);
  card.classList.add("analysis");
  const dl = doc.createElement("dl");
  const rows = typeof data?.language === "string" ? analysisRows(data) : genericRows(data ?? {});
  const evidence = data?.evidence && typeof data.evidence === "object" ? data.evidence : {};
  for (const [title, value, field] of rows) {
    if (value === "" || value === null || value === undefined) continue;
    const dt = doc.createElement("dt");
    dt.textContent = title;
    const dd = doc.createElement("dd");
    const href = typeof value === "string" ? safeHref(value) : null;
    if (href) dd.append(link(href, String(value), doc));
    else dd.textContent = display(value);
    const proofs = field && Array.isArray(evidence[field]) ? evidence[field].slice(0, 2) : [];
    for (const proof of proofs) {
      if (!proof || typeof proof.file !== "string") continue;
      const hint = doc.createElement("span");
      hint.className = "evidence";
      hint.textContent = proof.line ? `${proof.file}:${proof.line}` : proof.file;
      if (typeof proof.snippet === "string" && proof.snippet) hint.title = proof.snippet;
      dd.append(" ", hint);
    }
    dl.append(dt, dd);
  }
  card.append(dl);
  return card;
}

/** @param {Record<string, any>} a @returns {[string, unknown, string?][]} */
function analysisRows(a) {
  const envs = Array.isArray(a.env_vars) ? a.env_vars.map((/** @type {any} */ v) => v?.name).filter(Boolean) : [];
  const tests = a.tests && typeof a.tests === "object" ? a.tests : {};
  const testText = [...(Array.isArray(tests.paths) ? tests.paths.slice(0, 3) : []),
    tests.command ? `(${tests.command})` : ""].filter(Boolean).join(" ");
  return [
    ["App", a.name],
    ["Source", a.source],
    ["Language", [a.language, a.language_version].filter(Boolean).join(" "), "language"],
    ["Framework", a.framework, "framework"],
    ["Packages", [a.package_manager, a.lock_file || a.manifest].filter(Boolean).join(" · "), "package_manager"],
    ["Entry point", a.entry_point, "entry_point"],
    ["Start command", a.start_command],
    ["Port", a.port ? `${a.port}${a.reads_port_env ? " (reads PORT)" : ""}` : (a.reads_port_env ? "from PORT" : ""), "port"],
    ["Environment", envs.join(", ")],
    ["Dockerfile", a.dockerfile || "none yet", "dockerfile"],
    ["Tests", testText, "tests"],
    ["Commit", typeof a.commit === "string" ? a.commit.slice(0, 10) : ""],
    ...((Array.isArray(a.warnings) ? a.warnings : []).map((/** @type {string} */ w) =>
      /** @type {[string, unknown]} */ (["Note", w]))),
  ];
}

/** Any other shape (a newer agent): every field, as it came. @param {Record<string, unknown>} data */
function genericRows(data) {
  return Object.keys(data).map((key) => /** @type {[string, unknown]} */ ([label(key), data[key]]));
}

/** "start_command" -> "Start command" @param {string} key */
function label(key) {
  const words = key.replace(/[_-]+/g, " ").replace(/([a-z])([A-Z])/g, "$1 $2").trim().toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** @param {unknown} value */
function display(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v !== "object")) return value.join(", ");
  return JSON.stringify(value);
}
