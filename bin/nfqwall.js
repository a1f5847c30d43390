#!/usr/bin/env node
'use strict';
// Runs the compiled CLI (npm run build); falls back to the TypeScript sources through tsx.
const path = require('node:path');
const fs = require('node:fs');
const compiled = path.join(__dirname, '..', 'dist', 'src', 'cli', 'main.js');
if (fs.existsSync(compiled) && !process.env.NFQWALL_FROM_SOURCE) {
  require(compiled).cliMain(process.argv.slice(2));
} else {
  require('tsx/cjs');
  require(path.join(__dirname, '..', 'src', 'cli', 'main.ts')).cliMain(process.argv.slice(2));
}
