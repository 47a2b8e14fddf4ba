// @ts-check
/**
 * The side panel: the signed-in user's conversations (a drawer on a phone), New conversation,
 * who is signed in, and sign-in / sign-out.
 */

import { listedSessions, sessionLine, userLabel } from "./identity.js";

/** @typedef {import("./auth.js").PageUser} PageUser */

export class Sidebar {
  /** @param {Document} doc */
  constructor(doc = document) {
    this.doc = doc;
    const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (doc.getElementById(id));
    this.el = {
      sidebar: $("sidebar"),
      list: $("sessions"),
      empty: $("sessions-empty"),
      open: /** @type {HTMLButtonElement} */ ($("open-drawer")),
      close: /** @type {HTMLButtonElement} */ ($("close-drawer")),
      backdrop: $("backdrop"),
      who: $("who"),
      google: /** @type {HTMLButtonElement} */ ($("google-sign-in")),
      signOut: /** @type {HTMLButtonElement} */ ($("sign-out")),
      input: $("input"),
    };
    /** @type {string|null} */
    this.current = null;
    this.handlers = {
      open: (/** @type {string} */ _id) => {},
      google: () => {},
      signOut: () => {},
    };
    const { open, close, backdrop, google, signOut, list, sidebar } = this.el;
    open.addEventListener("click", () => this.setDrawer(true));
    close.addEventListener("click", () => this.setDrawer(false));
    backdrop.addEventListener("click", () => this.setDrawer(false));
    sidebar.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.drawerOpen) this.setDrawer(false);
    });
    google.addEventListener("click", () => this.handlers.google());
    signOut.addEventListener("click", () => this.handlers.signOut());
    list.addEventListener("click", (e) => {
      const button = /** @type {HTMLElement} */ (e.target).closest?.("button[data-session]");
      if (!button) return;
      const id = /** @type {HTMLElement} */ (button).dataset.session ?? "";
      this.setDrawer(false, false);
      this.handlers.open(id);
    });
  }

  get drawerOpen() { return this.el.sidebar.dataset.open === "true"; }

  /**
   * Open or close the drawer (phones; on a wide screen the panel is always there). Focus goes
   * into it when it opens, and back to its button, or to the composer, when it closes.
   * @param {boolean} open @param {boolean} [refocus]
   */
  setDrawer(open, refocus = true) {
    const { sidebar, backdrop, open: button } = this.el;
    sidebar.dataset.open = String(open);
    backdrop.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) {
      const target = /** @type {HTMLElement|null} */ (
        sidebar.querySelector('[aria-current="true"]') ?? sidebar.querySelector("button:not([hidden])"));
      target?.focus();
    } else if (refocus) {
      (getComputedStyle(button).display === "none" ? this.el.input : button).focus();
    }
  }

  /**
   * @param {PageUser|null} user @param {{ mode: "firebase"|"none", emulated: boolean }} how
   */
  setUser(user, how) {
    const { who, google, signOut } = this.el;
    if (how.mode === "none") {
      who.textContent = "no one: this stack runs without sign-in";
      google.hidden = true;
      signOut.hidden = true;
      return;
    }
    who.textContent = user ? userLabel(user) + (how.emulated && user.isAnonymous ? " (local emulator)" : "") : "no one";
    google.hidden = !user || !user.isAnonymous;
    signOut.hidden = !user;
  }

  /** @param {string|null} id */
  setCurrent(id) {
    this.current = id;
    for (const button of this.el.list.querySelectorAll("button[data-session]")) {
      const el = /** @type {HTMLElement} */ (button);
      if (el.dataset.session === id) el.setAttribute("aria-current", "true");
      else el.removeAttribute("aria-current");
    }
  }

  /** @param {unknown} raw the answer of GET /api/sessions */
  render(raw) {
    const doc = this.doc;
    const sessions = listedSessions(raw, this.current);
    const now = Date.now();
    const items = sessions.map((session) => {
      const line = sessionLine(session, now);
      const li = doc.createElement("li");
      const button = doc.createElement("button");
      button.type = "button";
      button.className = "session";
      button.dataset.session = session.session_id;
      button.setAttribute("aria-label", `Open “${line.title}”${line.when ? `, ${line.when}` : ""}`);
      if (session.session_id === this.current) button.setAttribute("aria-current", "true");
      const title = doc.createElement("span");
      title.className = "session-title";
      title.textContent = line.title;
      const when = doc.createElement("time");
      when.className = "session-time";
      when.textContent = line.when;
      if (line.at !== null) when.dateTime = new Date(line.at).toISOString();
      button.append(title, when);
      li.append(button);
      return li;
    });
    this.el.list.replaceChildren(...items);
    this.el.empty.hidden = items.length > 0;
  }
}
