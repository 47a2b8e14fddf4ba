// @ts-check
/**
 * The cards of a conversation: a repository's analysis and a deployment's life (the question
 * before it, its progress, its outcome). Text only ever reaches the page as text nodes.
 */

import { link, safeHref } from "./markdown.js";

/** What a finished deployment says; declined and cancelled are neutral, not failures. */
const OUTCOMES = {
  succeeded: { title: "Deployed", icon: "✓", words: "succeeded" },
  failed: { title: "Deployment failed", icon: "✕", words: "failed" },
  cancelled: { title: "Deployment cancelled", icon: "–", words: "was cancelled" },
  declined: { title: "Deployment declined", icon: "–", words: "was declined" },
};

const TARGETS = { cloud_run: "Cloud Run", local: "this machine" };

/** Markdown markers and identifiers out of a sentence meant for a card. @param {unknown} text */
export function cleanText(text) {
  return String(text ?? "")
    .replace(/\*\*|__|`/g, "")
    .replace(/\bcloud_run\b/g, "Cloud Run");
}

/** "build_image" -> "build image" @param {unknown} stage */
function stageText(stage) {
  return cleanText(stage).replace(/_/g, " ");
}

/** @param {string} title @param {string} icon @param {Document} doc */
export function cardElement(title, icon, doc) {
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
export function paragraph(text, className, doc) {
  const p = doc.createElement("p");
  p.className = className;
  p.textContent = text;
  return p;
}

/** @param {string} text @param {Document} doc @param {"error"|"info"} [kind] */
export function notice(text, doc, kind = "error") {
  const li = doc.createElement("li");
  li.className = `notice ${kind}`;
  li.setAttribute("role", "note");
  li.textContent = text;
  return li;
}

/**
 * One card per deployment id, kept up to date by its events.
 * `answer(text)` sends the user's reply to a confirmation; `announce(text)` reads news out.
 */
export class DeploymentCards {
  /**
   * @param {Document} doc @param {HTMLElement} log
   * @param {{ answer: (text: string) => boolean, announce: (text: string) => void, answered: () => void }} hooks
   */
  constructor(doc, log, hooks) {
    this.doc = doc;
    this.log = log;
    this.hooks = hooks;
    /** @type {Map<string, HTMLElement>} */
    this.cards = new Map();
  }

  clear() { this.cards.clear(); }

  /** @param {any} event */
  update(event) {
    const card = this.card(event.deployment_id);
    if (event.stage === "awaiting_confirmation") {
      this.ask(card, event);
      return;
    }
    this.settle(card);
    const progress = Math.max(0, Math.min(100, Number(event.progress) || 0));
    const bar = /** @type {HTMLElement} */ (card.querySelector(".progress"));
    bar.setAttribute("aria-valuenow", String(progress));
    /** @type {HTMLElement} */ (card.querySelector(".bar")).style.width = `${progress}%`;
    /** @type {HTMLElement} */ (card.querySelector(".stage")).textContent = `${stageText(event.stage)} · ${progress}%`;
    /** @type {HTMLElement} */ (card.querySelector(".card-text")).textContent = cleanText(event.message);
  }

  /**
   * The deployment waits for the user's word: what will be deployed where, and two buttons that
   * answer in the chat ("yes" / "no"), as typing the answer would.
   * @param {HTMLElement} card @param {any} event
   */
  ask(card, event) {
    const doc = this.doc;
    const confirm = event.confirm && typeof event.confirm === "object" ? event.confirm : {};
    card.dataset.status = "awaiting";
    /** @type {HTMLElement} */ (card.querySelector(".card-head h3")).textContent = "Confirm deployment";
    /** @type {HTMLElement} */ (card.querySelector(".stage")).textContent = "";
    /** @type {HTMLElement} */ (card.querySelector(".card-text")).textContent = cleanText(event.message);
    card.querySelector(".confirm")?.remove();
    const box = doc.createElement("div");
    box.className = "confirm";
    const details = doc.createElement("dl");
    for (const [label, key] of [["Target", "target"], ["Source", "source"], ["Project", "project"],
                                 ["Region", "region"], ["Service", "service"]]) {
      if (confirm[key] == null) continue;
      const dt = doc.createElement("dt");
      dt.textContent = label;
      const dd = doc.createElement("dd");
      const value = String(confirm[key]);
      dd.textContent = key === "target" ? (TARGETS[/** @type {keyof typeof TARGETS} */ (value)] ?? cleanText(value)) : cleanText(value);
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
        if (this.hooks.answer(answer)) {
          for (const b of actions.querySelectorAll("button")) /** @type {HTMLButtonElement} */ (b).disabled = true;
          // The buttons are going away: the composer is where the conversation goes on.
          this.hooks.answered();
        }
      });
      actions.append(button);
    }
    box.append(details, actions);
    card.append(box);
  }

  /** The question is no longer open. @param {HTMLElement} card */
  settle(card) {
    card.querySelector(".confirm")?.remove();
    if (card.dataset.status === "awaiting") {
      delete card.dataset.status;
      /** @type {HTMLElement} */ (card.querySelector(".card-head h3")).textContent = "Deployment";
    }
  }

  /** The card becomes its result: the outcome, the URL, the last word. @param {any} event @param {boolean} live */
  complete(event, live) {
    const key = /** @type {keyof typeof OUTCOMES} */ (
      event.outcome in OUTCOMES ? event.outcome : event.status === "succeeded" ? "succeeded" : "failed");
    const outcome = OUTCOMES[key];
    const doc = this.doc;
    const card = this.card(event.deployment_id);
    const ok = key === "succeeded";
    this.settle(card);
    card.classList.add("result");
    card.dataset.status = key;
    /** @type {HTMLElement} */ (card.querySelector(".card-head h3")).textContent = outcome.title;
    /** @type {HTMLElement} */ (card.querySelector(".card-icon")).textContent = outcome.icon;
    /** @type {HTMLElement} */ (card.querySelector(".stage")).textContent = ok ? "100%" : "";
    /** @type {HTMLElement} */ (card.querySelector(".bar")).style.width = ok || key === "failed" ? "100%" : "0%";
    /** @type {HTMLElement} */ (card.querySelector(".progress")).setAttribute("aria-valuenow", ok ? "100" : "0");
    /** @type {HTMLElement} */ (card.querySelector(".card-text")).textContent = cleanText(event.message);
    card.querySelector(".result-url")?.remove();
    const href = event.url ? safeHref(event.url) : null;
    if (href) {
      const p = doc.createElement("p");
      p.className = "result-url";
      p.append(link(href, event.url, doc));
      card.querySelector(".progress")?.after(p);
    }
    if (live) this.hooks.announce(`The deployment ${outcome.words}. ${cleanText(event.message)}`);
  }

  /** @param {string} id */
  card(id) {
    let card = this.cards.get(id);
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
    this.cards.set(id, card);
    this.log.append(card);
    return card;
  }
}

/**
 * The analysis the agent stored: what was found, each with the file and line that show it.
 * @param {Record<string, any>} data @param {Document} doc
 */
export function analysisCard(data, doc) {
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
      /** @type {[string, unknown]} */ (["Note", cleanText(w)]))),
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
