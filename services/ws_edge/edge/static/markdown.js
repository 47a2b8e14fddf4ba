// @ts-check
/**
 * A small Markdown renderer that builds DOM nodes and never parses HTML: every piece of text
 * becomes a text node, so a message can never inject markup or script. It covers what chat
 * replies use: paragraphs, headings, code fences, inline code, bold, italic, lists, quotes,
 * rules and links (http and https only; anything else stays text).
 */

const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;

// One alternative per inline construct; the earliest match wins, text in between stays text.
const INLINE = new RegExp(
  [
    /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/.source, // 1-2 code span
    /\[([^\]\n]+)\]\(([^()\s]+)\)/.source, // 3-4 link
    /\*\*(?=\S)([\s\S]*?\S)\*\*/.source, // 5 bold
    /__(?=\S)([\s\S]*?\S)__(?!\w)/.source, // 6 bold
    /\*(?=[^\s*])([^*\n]*?[^\s*])\*/.source, // 7 italic
    /(?<![\w])_(?=[^\s_])([^_\n]*?[^\s_])_(?![\w])/.source, // 8 italic
    /(https?:\/\/[^\s<>"'`]+[^\s<>"'`.,;:!?)\]])/.source, // 9 bare URL
  ].join("|"),
  "g",
);

/**
 * @param {string} text
 * @param {Document} [doc]
 * @param {{ partial?: boolean }} [options] partial: the text is still streaming, so markers
 *   it has opened and not yet closed are closed for now (no raw `**` mid-stream)
 * @returns {DocumentFragment}
 */
export function renderMarkdown(text, doc = document, options = {}) {
  const out = doc.createDocumentFragment();
  let lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  if (options.partial) lines = settleStreaming(lines);
  let i = 0;
  /** @type {string[]} */
  let paragraph = [];

  const endParagraph = () => {
    if (!paragraph.length) return;
    const p = doc.createElement("p");
    paragraph.forEach((line, n) => {
      if (n) p.append(doc.createElement("br"));
      appendInline(p, line, doc);
    });
    out.append(p);
    paragraph = [];
  };

  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      endParagraph();
      const marker = fence[1];
      const body = [];
      i += 1;
      // An unclosed fence (the reply is still streaming) runs to the end.
      while (i < lines.length && !lines[i].trim().startsWith(marker)) body.push(lines[i++]);
      i += 1;
      out.append(codeBlock(body.join("\n"), fence[2], doc));
      continue;
    }
    if (!line.trim()) {
      endParagraph();
      i += 1;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      endParagraph();
      // The page's own h1/h2 come first; a reply's headings sit below them.
      const h = doc.createElement(`h${Math.min(6, heading[1].length + 2)}`);
      appendInline(h, heading[2], doc);
      out.append(h);
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      endParagraph();
      out.append(doc.createElement("hr"));
      i += 1;
      continue;
    }
    if (BULLET.test(line) || NUMBERED.test(line)) {
      endParagraph();
      i = list(lines, i, out, doc);
      continue;
    }
    if (QUOTE.test(line)) {
      endParagraph();
      const quoted = [];
      let match;
      while (i < lines.length && (match = QUOTE.exec(lines[i]))) {
        quoted.push(match[1]);
        i += 1;
      }
      const quote = doc.createElement("blockquote");
      quote.append(renderMarkdown(quoted.join("\n"), doc));
      out.append(quote);
      continue;
    }
    paragraph.push(line);
    i += 1;
  }
  endParagraph();
  return out;
}

// A line that is only the start of a block (a heading's #, a bullet, a quote's >, a fence
// being typed): it says nothing yet.
const BARE_MARKER = /^\s*(#{1,6}|[-*+]|\d{1,9}[.)]|>|`{1,2}|~{1,2})\s*$/;
const LIST_PREFIX = /^(\s*(?:[-*+]|\d{1,9}[.)])\s+|\s{0,3}>\s?|\s{0,3}#{1,6}\s+)/;

/**
 * The lines of a reply still being written, as they should show for now: the last line's
 * unfinished markers closed (or, at its very end, left out), outside an open code fence.
 * @param {string[]} lines
 */
export function settleStreaming(lines) {
  const out = [...lines];
  let inFence = false;
  for (const line of out) if (FENCE.test(line)) inFence = !inFence;
  if (inFence) return out;
  let last = out.length - 1;
  while (last >= 0 && !out[last].trim()) last -= 1;
  if (last < 0) return out;
  if (BARE_MARKER.test(out[last])) {
    out.splice(last, 1);
    return out;
  }
  const prefix = LIST_PREFIX.exec(out[last])?.[0] ?? "";
  out[last] = prefix + closeOpenMarkers(out[last].slice(prefix.length));
  return out;
}

/**
 * Close what an unfinished line has opened: a code span, bold, italic; an unfinished link shows
 * its text. Marker characters at the very end may be half of a closing marker: left out.
 * @param {string} line
 */
export function closeOpenMarkers(line) {
  let text = line.replace(/[*_`]+$/, "");
  text = text.replace(/\[([^\]\n]*)\]\([^)\s]*$/, "$1").replace(/\[([^\]\n]*)$/, "$1");
  const ticks = text.match(/`+/g) ?? [];
  if (ticks.length % 2 === 1) return text + ticks[ticks.length - 1];
  const outside = text.replace(/(`+)[\s\S]*?\1/g, "");
  let close = "";
  if ((outside.match(/\*\*/g) ?? []).length % 2 === 1) close = "**";
  const singles = outside.replace(/\*\*/g, "").match(/\*/g) ?? [];
  if (singles.length % 2 === 1) close = `*${close}`;
  if ((outside.match(/(?<!\w)__|__(?!\w)/g) ?? []).length % 2 === 1) close += "__";
  return text + close;
}

/**
 * @param {string[]} lines @param {number} start @param {DocumentFragment} out @param {Document} doc
 * @returns {number} the index after the list
 */
function list(lines, start, out, doc) {
  const ordered = !BULLET.test(lines[start]);
  const pattern = ordered ? NUMBERED : BULLET;
  const el = doc.createElement(ordered ? "ol" : "ul");
  const first = NUMBERED.exec(lines[start]);
  if (ordered && first && first[1] !== "1") el.setAttribute("start", String(Number(first[1])));
  /** @type {string[]|null} */
  let item = null;
  const endItem = () => {
    if (!item) return;
    const li = doc.createElement("li");
    item.forEach((text, n) => {
      if (n) li.append(doc.createElement("br"));
      appendInline(li, text, doc);
    });
    el.append(li);
  };
  let i = start;
  while (i < lines.length) {
    const match = pattern.exec(lines[i]);
    if (match) {
      endItem();
      item = [ordered ? match[2] : match[1]];
    } else if (item && /^\s+\S/.test(lines[i]) && !FENCE.test(lines[i])) {
      item.push(lines[i].trim()); // an indented continuation of the item
    } else {
      break;
    }
    i += 1;
  }
  endItem();
  out.append(el);
  return i;
}

/** @param {string} code @param {string} language @param {Document} doc */
function codeBlock(code, language, doc) {
  const wrap = doc.createElement("div");
  wrap.className = "code-block";
  const head = doc.createElement("div");
  head.className = "code-head";
  const label = doc.createElement("span");
  label.textContent = language || "code";
  const copy = doc.createElement("button");
  copy.type = "button";
  copy.className = "copy";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", "Copy code");
  head.append(label, copy);
  const pre = doc.createElement("pre");
  const el = doc.createElement("code");
  if (language) el.dataset.language = language;
  el.textContent = code;
  pre.append(el);
  wrap.append(head, pre);
  return wrap;
}

/** @param {Element} parent @param {string} text @param {Document} doc */
function appendInline(parent, text, doc) {
  let at = 0;
  for (const m of text.matchAll(INLINE)) {
    const start = m.index ?? 0;
    if (start > at) parent.append(doc.createTextNode(text.slice(at, start)));
    parent.append(inlineNode(m, doc));
    at = start + m[0].length;
  }
  if (at < text.length) parent.append(doc.createTextNode(text.slice(at)));
}

/** @param {RegExpMatchArray} m @param {Document} doc @returns {Node} */
function inlineNode(m, doc) {
  if (m[2] !== undefined) {
    const code = doc.createElement("code");
    code.textContent = m[2];
    return code;
  }
  if (m[3] !== undefined) {
    const href = safeHref(m[4]);
    if (!href) return doc.createTextNode(m[0]);
    return link(href, m[3], doc);
  }
  const strong = m[5] ?? m[6];
  if (strong !== undefined) {
    const el = doc.createElement("strong");
    appendInline(el, strong, doc);
    return el;
  }
  const em = m[7] ?? m[8];
  if (em !== undefined) {
    const el = doc.createElement("em");
    appendInline(el, em, doc);
    return el;
  }
  const href = safeHref(m[9]);
  return href ? link(href, m[9], doc) : doc.createTextNode(m[0]);
}

/** @param {string} href @param {string} text @param {Document} doc */
export function link(href, text, doc = document) {
  const a = doc.createElement("a");
  a.href = href;
  a.textContent = text;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  return a;
}

/** The URL if it is http(s), else null (no javascript:, data:, relative tricks). @param {string} raw */
export function safeHref(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.toString() : null;
  } catch {
    return null;
  }
}
