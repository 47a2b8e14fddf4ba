// @ts-check
/**
 * Sign-in with the Firebase JS SDK (vendored into static/vendor at build time, never from a
 * CDN). Locally the SDK talks to the Auth emulator, and the page signs in as a guest by itself;
 * "Sign in with Google" is the emulator's test flow there and real Google in production. With
 * mode "none" (a local stack without identity) nothing signs in and no token is sent.
 */

import { refreshDelay } from "./identity.js";

/** @typedef {import("./identity.js").AuthConfig} AuthConfig */
/** @typedef {{ uid: string, isAnonymous: boolean, email: string|null, displayName: string|null }} PageUser */

export class PageAuth {
  /** @param {AuthConfig} config */
  constructor(config) {
    this.config = config;
    this.mode = config.mode;
    /** @type {PageUser|null} */
    this.user = null;
    /** @type {Set<(user: PageUser|null) => void>} */
    this.listeners = new Set();
    /** @type {any} */
    this.sdk = null;
    /** @type {any} */
    this.auth = null;
    /** @type {any} */
    this.refreshTimer = null;
  }

  /**
   * Load the SDK and learn who is signed in already (a reload keeps the user).
   * @param {{ resumeUid?: string|null }} [options] locally, the guest to resume if the SDK lost
   *   it: the Auth emulator re-imports its users when `make dev` restarts and then refuses the
   *   ID tokens it gave out before, so the SDK signs that user out
   */
  async init(options = {}) {
    if (this.mode === "none") return;
    const [app, sdk] = await Promise.all([
      import("./vendor/firebase/firebase-app.js"),
      import("./vendor/firebase/firebase-auth.js"),
    ]);
    this.sdk = sdk;
    const project = this.config.project_id ?? undefined;
    const firebase = app.initializeApp({
      apiKey: this.config.api_key ?? "local-emulator",
      // The popup flow wants an auth domain even on the emulator (which serves the handler).
      authDomain: this.config.auth_domain ?? (this.emulated && project ? `${project}.firebaseapp.com` : undefined),
      projectId: project,
    });
    this.auth = sdk.getAuth(firebase);
    if (this.config.emulator_url) {
      // The page labels the emulator itself; the SDK's banner would cover the composer.
      sdk.connectAuthEmulator(this.auth, this.config.emulator_url, { disableWarnings: true });
    }
    await this.auth.authStateReady();
    if (!this.auth.currentUser && this.emulated && options.resumeUid) {
      try {
        // The emulator takes unsigned custom tokens (and only the emulator: never in production).
        await sdk.signInWithCustomToken(this.auth, emulatorCustomToken(options.resumeUid));
      } catch {
        // That user is gone (make dev-reset): a new guest it is.
      }
    }
    // Who was signed in already (a reload): known now, before any observer has fired.
    this.user = this.auth.currentUser ? toPageUser(this.auth.currentUser) : null;
    this.auth.onIdTokenChanged((/** @type {any} */ user) => {
      this.user = user ? toPageUser(user) : null;
      this.scheduleRefresh(user);
      for (const fn of this.listeners) fn(this.user);
    });
  }

  /** @param {(user: PageUser|null) => void} fn */
  onChange(fn) { this.listeners.add(fn); }

  get emulated() { return this.config.emulator_url !== null; }

  /**
   * A valid ID token for `init` and the API: the SDK's cached one while it has five minutes
   * left, else a fresh one. Null when there is no sign-in.
   * @param {boolean} [force]
   * @returns {Promise<string|null>}
   */
  async getToken(force = false) {
    const user = this.auth?.currentUser;
    return user ? user.getIdToken(force) : null;
  }

  async signInGuest() {
    await this.sdk.signInAnonymously(this.auth);
  }

  async signInGoogle() {
    const provider = new this.sdk.GoogleAuthProvider();
    provider.setCustomParameters({ prompt: "select_account" });
    await this.sdk.signInWithPopup(this.auth, provider);
  }

  async signOut() {
    if (this.auth) await this.sdk.signOut(this.auth);
  }

  /** Refresh the token before it expires, so a reconnect never waits on an expired one. @param {any} user */
  scheduleRefresh(user) {
    clearTimeout(this.refreshTimer);
    if (!user) return;
    user.getIdToken().then((/** @type {string} */ token) => {
      this.refreshTimer = setTimeout(() => {
        user.getIdToken(true).catch(() => { /* offline: the next getToken() tries again */ });
      }, Math.max(1000, refreshDelay(token, Date.now())));
    }, () => {});
  }
}

/** An unsigned custom token for the Auth emulator. @param {string} uid */
function emulatorCustomToken(uid) {
  const enc = (/** @type {object} */ o) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  const now = Math.floor(Date.now() / 1000);
  return `${enc({ alg: "none", typ: "JWT" })}.${enc({
    aud: "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit",
    iss: "firebase-auth-emulator@example.com",
    sub: "firebase-auth-emulator@example.com",
    iat: now,
    exp: now + 3600,
    uid,
  })}.`;
}

/** @param {any} user @returns {PageUser} */
function toPageUser(user) {
  const providers = Array.isArray(user.providerData) ? user.providerData.length : 0;
  return {
    uid: user.uid,
    // A resumed local guest signs in by custom token: still a guest, with no provider of its own.
    isAnonymous: Boolean(user.isAnonymous) || (!user.email && providers === 0),
    email: user.email ?? null,
    displayName: user.displayName ?? null,
  };
}
