#!/usr/bin/env node
// A UDP flow that needs its replies (plain JS, runs in a lab namespace).
//   node udp-echo.js echo ADDR PORT     sends every datagram back to its sender; prints READY
//   node udp-echo.js ping ADDR PORT MS  from one socket (one flow), a datagram every MS ms;
//                                       prints "ECHOED n" whenever the count of replies grew
'use strict';
const dgram = require('node:dgram');
const [mode, addr, portS, msS] = process.argv.slice(2);
const port = Number(portS);
const s = dgram.createSocket('udp4');
process.on('SIGTERM', () => process.exit(0));
if (mode === 'echo') {
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  s.bind(port, addr, () => process.stdout.write('READY\n'));
} else if (mode === 'ping') {
  let n = 0;
  let shown = -1;
  s.on('message', () => n++);
  setInterval(() => s.send(Buffer.from('ping'), port, addr), Number(msS));
  setInterval(() => {
    if (n !== shown) process.stdout.write(`ECHOED ${(shown = n)}\n`);
  }, 100);
} else {
  process.stderr.write('usage: udp-echo.js echo|ping ADDR PORT [MS]\n');
  process.exit(2);
}
