// @ts-check
/**
 * What the page decides about sign-in and its first screen, with no DOM and no Firebase: the
 * edge's /api/config read defensively, when to refresh an ID token, what to suggest in the
 * empty state, how to show a session in the list. Runs under `node --test`.
 */

/**
 * @typedef {{ mode: "firebase"|"none", api_key: string|null, auth_domain: string|null,
 *             project_id: string|null, emulator_url: string|null }} AuthConfig
 * @typedef {{ mode: "offline"|"model", model: string|null }} AgentConfig
 * @typedef {{ auth: AuthConfig, agent: AgentConfig }} PageConfig
 */

/** @param {unknown} v @returns {string|null} */
const str = (v) => (typeof v === "string" && v ? v : null);

/**
 * The edge's /api/config, checked: anything missing or odd becomes its safe reading (no
 * sign-in is never assumed for a "firebase" answer; an emulator URL must be http(s)).
 * @param {any} raw @returns {PageConfig}
 */
export function parseConfig(raw) {
  const auth = raw && typeof raw.auth === "object" && raw.auth ? raw.auth : {};
  const agent = raw && typeof raw.agent === "object" && raw.agent ? raw.agent : {};
  let emulator = str(auth.emulator_url);
  if (emulator && !/^https?:\/\/[^/\s]+\/?$/.test(emulator)) emulator = null;
  return {
    auth: {
      mode: auth.mode === "none" ? "none" : "firebase",
      api_key: str(auth.api_key),
      auth_domain: str(auth.auth_domain),
      project_id: str(auth.project_id),
      emulator_url: emulator ? emulator.replace(/\/$/, "") : null,
    },
    agent: {
      mode: agent.mode === "model" ? "model" : "offline",
      model: str(agent.model),
    },
  };
}

/** The label that says which brain answers. @param {AgentConfig} agent */
export function modeLabel(agent) {
  if (agent.mode === "offline") return "offline mode";
  return agent.model ?? "Gemini";
}

/**
 * Requests that work in the current mode: offline, the commands offline mode knows, on the
 * examples shipped in the repository; with a model, plain words.
 * @param {AgentConfig} agent @returns {string[]}
 */
export function suggestions(agent) {
  if (agent.mode === "offline") {
    return [
      "analyse ./examples/hello-flask",
      "write a Dockerfile for ./examples/hello-express",
      "deploy ./examples/hello-flask locally",
      "help",
    ];
  }
  return [
    "What does ./examples/hello-flask need to run?",
    "Write a Dockerfile for ./examples/hello-express",
    "Deploy ./examples/hello-flask on this machine",
    "What can you do?",
  ];
}

/** @param {AgentConfig} agent */
export function capabilityLine(agent) {
  const how = agent.mode === "offline"
    ? "Offline mode understands the commands below; set GEMINI_API_KEY for plain words."
    : "Ask in plain words.";
  return `I analyse an app's source, write its Dockerfile and deploy it, on this machine or to Cloud Run, showing every step. ${how}`;
}

/**
 * The expiry (ms since the epoch) written in a JWT, or null.
 * @param {string} token
 */
export function tokenExpiry(token) {
  try {
    const part = token.split(".")[1];
    const json = atobUrl(part);
    const exp = JSON.parse(json).exp;
    return Number.isFinite(exp) ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** @param {string} part */
function atobUrl(part) {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const binary = globalThis.atob(b64);
  return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}

export const REFRESH_MARGIN_MS = 5 * 60 * 1000;

/**
 * How long to wait before refreshing a token: until five minutes before it expires (at once if
 * that has passed; in 30 minutes if the token says nothing).
 * @param {string} token @param {number} nowMs
 */
export function refreshDelay(token, nowMs) {
  const exp = tokenExpiry(token);
  if (exp === null) return 30 * 60 * 1000;
  return Math.max(0, exp - REFRESH_MARGIN_MS - nowMs);
}

/**
 * Who is signed in, in words. @param {{isAnonymous?: boolean, email?: string|null,
 * displayName?: string|null, uid?: string}|null} user
 */
export function userLabel(user) {
  if (!user) return "Not signed in";
  if (user.isAnonymous) return "Guest";
  return user.displayName || user.email || "Signed in";
}

/**
 * A session's line in the list: its title (or a placeholder) and when it last changed.
 * @param {{title?: unknown, updated_at?: unknown, created_at?: unknown}} session
 * @param {number} nowMs
 */
export function sessionLine(session, nowMs) {
  const title = typeof session.title === "string" && session.title.trim()
    ? session.title.trim() : "New conversation";
  const at = toMs(session.updated_at) ?? toMs(session.created_at);
  return { title, when: at === null ? "" : relativeTime(at, nowMs), at };
}

/** Seconds, milliseconds or an ISO string, to milliseconds. @param {unknown} value */
export function toMs(value) {
  if (typeof value === "number" && Number.isFinite(value)) return value < 1e11 ? value * 1000 : value;
  if (typeof value === "string") {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? null : ms;
  }
  return null;
}

/** @param {number} at @param {number} now */
export function relativeTime(at, now) {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  const d = Math.round(h / 24);
  if (d < 7) return `${d} d ago`;
  return new Date(at).toISOString().slice(0, 10);
}

/**
 * The sessions worth listing: newest first, as the server sent them, without empty ones other
 * than the one open now.
 * @param {any} raw @param {string|null} current
 * @returns {{session_id: string, title: string|null, updated_at: unknown, created_at: unknown, last_seq: number}[]}
 */
export function listedSessions(raw, current) {
  const items = Array.isArray(raw) ? raw : Array.isArray(raw?.sessions) ? raw.sessions : [];
  return items
    .filter((s) => s && typeof s.session_id === "string")
    .filter((s) => s.session_id === current || (Number(s.last_seq) || 0) > 0 || str(s.title))
    .map((s) => ({
      session_id: s.session_id,
      title: str(s.title),
      updated_at: s.updated_at,
      created_at: s.created_at,
      last_seq: Number(s.last_seq) || 0,
    }));
}
