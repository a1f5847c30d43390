#!/usr/bin/env node
// Runs the test files with node's test runner (TypeScript through tsx).
// Usage: node scripts/run-tests.js [unit|e2e|FILE...]
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
function find(dir) {
  const out = [];
  if (!fs.existsSync(dir)) return out;
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...find(p));
    else if (ent.name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}
const args = process.argv.slice(2);
let files;
if (args.length === 0) files = [...find(path.join(root, 'test/unit')), ...find(path.join(root, 'test/e2e'))];
else if (args.length === 1 && (args[0] === 'unit' || args[0] === 'e2e')) files = find(path.join(root, 'test', args[0]));
else files = args;
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}
const concurrency = process.env.NFQWALL_TEST_CONCURRENCY || '2';
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  cwd: root,
});
process.exit(r.status === null ? 1 : r.status);
