#!/usr/bin/env node
// Copies the page's browser libraries from node_modules into the edge's static files, so the
// page loads nothing from a CDN at run time. Run by `make dev`, `make test` and the edge's
// Docker build (after `npm ci --omit=dev`). The versions are the exact pins of package.json's
// "dependencies"; a different installed version fails the build rather than ship unpinned code.
//
//   node scripts/vendor_static.mjs [--out DIR]

import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const outIndex = args.indexOf("--out");
const OUT = outIndex >= 0 ? resolve(args[outIndex + 1]) : join(ROOT, "services/ws_edge/edge/static/vendor");
const MODULES = join(ROOT, "node_modules");
const APACHE = join(ROOT, "scripts/licenses/Apache-2.0.txt");

const pins = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).dependencies ?? {};

/** The installed package's version, checked against its pin. */
function installed(name) {
  const file = join(MODULES, name, "package.json");
  if (!existsSync(file)) fail(`${name} is not installed: run \`npm ci\` first`);
  const { version, license } = JSON.parse(readFileSync(file, "utf8"));
  if (!/^\d+\.\d+\.\d+$/.test(pins[name] ?? "")) fail(`${name} must be pinned to an exact version in package.json "dependencies"`);
  if (version !== pins[name]) fail(`${name} ${version} is installed but package.json pins ${pins[name]}: run \`npm ci\``);
  return { version, license };
}

function fail(message) {
  console.error(`vendor_static: ${message}`);
  process.exit(1);
}

function copy(from, to, transform) {
  mkdirSync(dirname(to), { recursive: true });
  if (!transform) return copyFileSync(from, to);
  writeFileSync(to, transform(readFileSync(from, "utf8")));
}

rmSync(OUT, { recursive: true, force: true });
const manifest = {};

// Firebase: the ES module builds of app and auth. The auth build imports the app build from
// its CDN address; that import is pointed at the copy beside it.
{
  const { version, license } = installed("firebase");
  const src = join(MODULES, "firebase");
  const dest = join(OUT, "firebase");
  const cdn = `https://www.gstatic.com/firebasejs/${version}/firebase-app.js`;
  copy(join(src, "firebase-app.js"), join(dest, "firebase-app.js"));
  copy(join(src, "firebase-auth.js"), join(dest, "firebase-auth.js"), (text) => {
    if (!text.includes(cdn)) fail(`firebase-auth.js ${version} no longer imports ${cdn}`);
    const local = text.split(cdn).join("./firebase-app.js");
    if (local.includes("https://www.gstatic.com/firebasejs/")) fail("firebase-auth.js imports more from the CDN");
    return local;
  });
  for (const file of ["firebase-app.js.map", "firebase-auth.js.map"]) copy(join(src, file), join(dest, file));
  // The npm packages carry no licence file; their package.json says Apache-2.0.
  if (license !== "Apache-2.0") fail(`firebase's licence changed to ${license}`);
  writeFileSync(join(dest, "LICENSE"),
    `firebase ${version} (npm package "firebase"), Copyright Google LLC, licensed under the Apache License 2.0:\n\n${readFileSync(APACHE, "utf8")}`);
  manifest.firebase = version;
}

// highlight.js: its prebuilt ES module bundle (the common languages) and the grammars the
// assistant's replies use beyond those.
{
  const name = "@highlightjs/cdn-assets";
  const { version } = installed(name);
  const src = join(MODULES, name);
  const dest = join(OUT, "highlight");
  copy(join(src, "es/highlight.min.js"), join(dest, "highlight.min.js"));
  for (const lang of ["dockerfile", "nginx", "properties"]) {
    copy(join(src, `es/languages/${lang}.min.js`), join(dest, `languages/${lang}.min.js`));
  }
  copy(join(src, "LICENSE"), join(dest, "LICENSE"));
  manifest["highlight.js"] = version;
}

writeFileSync(join(OUT, "VERSIONS.json"), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`vendored ${Object.entries(manifest).map(([n, v]) => `${n} ${v}`).join(", ")} into ${OUT}`);
