// A streaming reply's unfinished Markdown, settled for display (markdown.js), and the card text
// cleaning (cards.js). Run: node --test tests/unit/js/

import assert from "node:assert/strict";
import { test } from "node:test";

import { cleanText } from "../../../services/ws_edge/edge/static/cards.js";
import { closeOpenMarkers, settleStreaming } from "../../../services/ws_edge/edge/static/markdown.js";

test("unfinished inline markers are closed for now, never shown raw", () => {
  const cases = {
    "**Offline": "**Offline**",
    "**Offline mode*": "**Offline mode**",
    "**Offline mode**": "**Offline mode**",
    "run `gunic": "run `gunic`",
    "run `gunicorn` with *care": "run `gunicorn` with *care*",
    "a ` tick and **bold": "a ` tick and **bold`",
    "See [the docs](https://cloud.goo": "See the docs",
    "See [the do": "See the do",
    "snake_case_name": "snake_case_name",
    "__init": "__init__",
    "done.": "done.",
    "trailing **": "trailing ",
  };
  for (const [input, expected] of Object.entries(cases)) {
    assert.equal(closeOpenMarkers(input), expected, input);
  }
});

test("only the last line is settled, and never inside an open code fence", () => {
  assert.deepEqual(settleStreaming(["**a** b", "- item **x"]), ["**a** b", "- item **x**"]);
  assert.deepEqual(settleStreaming(["text", "```python", "x = '**'"]), ["text", "```python", "x = '**'"]);
  assert.deepEqual(settleStreaming(["text", "##"]), ["text"]);
  assert.deepEqual(settleStreaming(["text", "-"]), ["text"]);
  assert.deepEqual(settleStreaming(["# Head **x"]), ["# Head **x**"]);
});

test("card text has no raw Markdown and no identifiers", () => {
  assert.equal(cleanText("Deploy **hello-flask** to `cloud_run`?"), "Deploy hello-flask to Cloud Run?");
  assert.equal(cleanText(undefined), "");
});
