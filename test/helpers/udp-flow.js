#!/usr/bin/env node
// Steady UDP flows for the fail-closed tests (plain JS, runs in a lab namespace).
//   node udp-flow.js send ADDR PORT PPS   sends PPS datagrams a second (catching up after a slow
//                                          tick, so the average holds); prints "SENT n RATE r" 5×/s
//   node udp-flow.js count ADDR PORT       counts the datagrams that arrive; prints READY once
//                                          bound, then "COUNT n" whenever the count changed
'use strict';
const dgram = require('node:dgram');
const net = require('node:net');
const [mode, addr, portS, ppsS] = process.argv.slice(2);
const port = Number(portS);
const s = dgram.createSocket(net.isIPv6(addr) ? 'udp6' : 'udp4');
process.on('SIGTERM', () => process.exit(0));

if (mode === 'send') {
  const pps = Number(ppsS);
  const buf = Buffer.alloc(64, 0x5a);
  const t0 = process.hrtime.bigint();
  let sent = 0;
  let inflight = 0;
  setInterval(() => {
    const due = Math.floor((Number(process.hrtime.bigint() - t0) / 1e9) * pps);
    for (let n = Math.min(due - sent, 1000); n > 0 && inflight < 2000; n--) {
      inflight++;
      sent++;
      s.send(buf, port, addr, () => inflight--);
    }
  }, 5);
  setInterval(() => {
    const sec = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(`SENT ${sent} RATE ${Math.round(sent / sec)}\n`);
  }, 200);
} else if (mode === 'count') {
  let count = 0;
  let shown = -1;
  s.on('message', () => count++);
  s.bind(port, addr, () => process.stdout.write('READY\n'));
  setInterval(() => {
    if (count !== shown) {
      shown = count;
      process.stdout.write(`COUNT ${count}\n`);
    }
  }, 50);
} else {
  process.stderr.write('usage: udp-flow.js send ADDR PORT PPS | count ADDR PORT\n');
  process.exit(2);
}
