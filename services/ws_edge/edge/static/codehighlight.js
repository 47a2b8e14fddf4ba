// @ts-check
/**
 * Syntax highlighting of a finished reply's code blocks with highlight.js (vendored from npm,
 * pinned). highlight.js returns HTML in which it has escaped all of the code; that HTML is
 * still not trusted: only its <span class="hljs-..."> elements and text are rebuilt as nodes.
 */

/** @type {Promise<any>|null} */
let loading = null;

function load() {
  loading ??= Promise.all([
    import("./vendor/highlight/highlight.min.js"),
    import("./vendor/highlight/languages/dockerfile.min.js"),
    import("./vendor/highlight/languages/nginx.min.js"),
    import("./vendor/highlight/languages/properties.min.js"),
  ]).then(([core, dockerfile, nginx, properties]) => {
    const hljs = core.default;
    hljs.registerLanguage("dockerfile", dockerfile.default);
    hljs.registerLanguage("nginx", nginx.default);
    hljs.registerLanguage("properties", properties.default);
    return hljs;
  });
  return loading;
}

/**
 * Highlight every code block under `root` not highlighted yet.
 * @param {ParentNode} root @param {Document} doc
 */
export async function highlightWithin(root, doc) {
  const blocks = [...root.querySelectorAll(".code-block code:not([data-highlighted])")];
  if (!blocks.length) return;
  let hljs;
  try {
    hljs = await load();
  } catch {
    return; // no vendored library (a bare checkout): plain code still reads fine
  }
  for (const code of blocks) {
    const el = /** @type {HTMLElement} */ (code);
    if (!el.isConnected || el.dataset.highlighted) continue;
    const source = el.textContent ?? "";
    const language = el.dataset.language && hljs.getLanguage(el.dataset.language) ? el.dataset.language : null;
    let html;
    try {
      html = language
        ? hljs.highlight(source, { language, ignoreIllegals: true }).value
        : hljs.highlightAuto(source).value;
    } catch {
      continue;
    }
    const parsed = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html").body;
    const rebuilt = rebuild(parsed, doc);
    if (rebuilt.textContent !== source) continue; // not the same code: keep the plain text
    el.replaceChildren(rebuilt);
    el.dataset.highlighted = "true";
    el.classList.add("hljs");
  }
}

/** Text and classed spans only. @param {Node} node @param {Document} doc @returns {DocumentFragment} */
function rebuild(node, doc) {
  const out = doc.createDocumentFragment();
  for (const child of node.childNodes) {
    if (child.nodeType === 3) {
      out.append(doc.createTextNode(child.textContent ?? ""));
    } else if (child.nodeType === 1) {
      const el = /** @type {Element} */ (child);
      const classes = (el.getAttribute("class") ?? "").split(/\s+/).filter((c) => /^hljs-[\w-]+$|^[\w-]+_$/.test(c));
      const inner = rebuild(el, doc);
      if (el.tagName === "SPAN" && classes.length) {
        const span = doc.createElement("span");
        span.className = classes.join(" ");
        span.append(inner);
        out.append(span);
      } else {
        out.append(inner);
      }
    }
  }
  return out;
}
