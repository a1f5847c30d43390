#!/usr/bin/env node
'use strict';
// Runs the compiled CLI (dist/, made by `npm run build`) when it is at least as new as
// every file under src/; otherwise (a source tree being edited) the TypeScript sources
// through tsx. NFQWALL_FROM_SOURCE=1 forces the sources.
const path = require('node:path');
const fs = require('node:fs');
const root = path.join(__dirname, '..');
const compiled = path.join(root, 'dist', 'src', 'cli', 'main.js');

function newestMtime(dir) {
  let newest = 0;
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    const t = ent.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs;
    if (t > newest) newest = t;
  }
  return newest;
}

function distIsCurrent() {
  if (process.env.NFQWALL_FROM_SOURCE) return false;
  let built;
  try {
    built = fs.statSync(compiled).mtimeMs;
  } catch {
    return false;
  }
  return newestMtime(path.join(root, 'src')) <= built;
}

if (distIsCurrent()) {
  require(compiled).cliMain(process.argv.slice(2));
} else {
  require('tsx/cjs');
  require(path.join(root, 'src', 'cli', 'main.ts')).cliMain(process.argv.slice(2));
}
