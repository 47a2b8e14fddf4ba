// @ts-check
/** The pieces of the conversation the view builds: messages and toasts (text nodes only). */

export const USER_STATUS = { queued: "Queued", sent: "Sent", delivered: "Delivered" };

const TOAST_MS = 7000;

/** @typedef {{ li: HTMLElement, bubble: HTMLElement, text: string }} Reply */

/** @param {Document} doc @param {string} id @param {string} text @param {keyof typeof USER_STATUS} status */
export function userMessage(doc, id, text, status) {
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
  return li;
}

/** @param {Document} doc @param {string} messageId @param {string} turnId @returns {Reply} */
export function replyElement(doc, messageId, turnId) {
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

/** @param {HTMLElement} li @param {keyof typeof USER_STATUS} status */
export function setUserStatus(li, status) {
  li.dataset.status = status;
  const label = li.querySelector(".delivery");
  if (label) label.textContent = USER_STATUS[status];
}

/**
 * A toast in `box` that goes away by itself, or by its button (then `dismissed` runs).
 * @param {Document} doc @param {HTMLElement} box @param {string} text @param {"error"|"info"} kind
 * @param {() => void} dismissed
 */
export function showToast(doc, box, text, kind, dismissed) {
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
  close.addEventListener("click", () => {
    el.remove();
    dismissed();
  });
  el.append(span, close);
  box.append(el);
  setTimeout(() => el.remove(), TOAST_MS);
}
