#!/usr/bin/env node
// UDP test tool (plain JS, runs in a lab namespace).
//   node udp.js server ADDR PORT            echo server; prints READY when bound
//   node udp.js client ADDR PORT COUNT [SIZE]
//        sends COUNT datagrams one by one, waits up to 1 s for each echo; prints {"sent","received"}
//   node udp.js flood ADDR PORT COUNT SIZE   sends COUNT datagrams as fast as possible; prints {"sent"}
//   node udp.js frag ADDR PORT SIZE          one datagram of SIZE bytes (fragmented over a 1500 MTU), waits for the echo
//   node udp.js text ADDR PORT TEXT          one datagram holding TEXT; prints {"echo": the echoed text, or null after 2 s}
'use strict';
const dgram = require('node:dgram');
const net = require('node:net');
const [mode, addr, portS, countS, sizeS] = process.argv.slice(2);
const port = Number(portS);
const type = net.isIPv6(addr) ? 'udp6' : 'udp4';

if (mode === 'server') {
  const s = dgram.createSocket(type);
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  s.bind(port, addr, () => process.stdout.write('READY\n'));
  process.on('SIGTERM', () => process.exit(0));
} else if (mode === 'client' || mode === 'frag') {
  const count = mode === 'frag' ? 1 : Number(countS);
  const size = Number(mode === 'frag' ? countS : sizeS || 64);
  const s = dgram.createSocket(type);
  let sent = 0;
  let received = 0;
  let waiting = null;
  s.on('message', (m) => {
    if (m.length === size) received++;
    if (waiting) {
      const w = waiting;
      waiting = null;
      w();
    }
  });
  (async () => {
    for (let i = 0; i < count; i++) {
      const buf = Buffer.alloc(size, i & 0xff);
      await new Promise((res) => s.send(buf, port, addr, res));
      sent++;
      await new Promise((res) => {
        const t = setTimeout(() => {
          waiting = null;
          res();
        }, 1000);
        waiting = () => {
          clearTimeout(t);
          res();
        };
      });
    }
    process.stdout.write(JSON.stringify({ sent, received }) + '\n');
    s.close();
  })();
} else if (mode === 'text') {
  const s = dgram.createSocket(type);
  const t = setTimeout(() => {
    process.stdout.write(JSON.stringify({ echo: null }) + '\n');
    s.close();
  }, 2000);
  s.on('message', (m) => {
    clearTimeout(t);
    process.stdout.write(JSON.stringify({ echo: m.toString('latin1') }) + '\n');
    s.close();
  });
  s.send(Buffer.from(countS, 'latin1'), port, addr);
} else if (mode === 'flood') {
  const count = Number(countS);
  const size = Number(sizeS || 64);
  const s = dgram.createSocket(type);
  const buf = Buffer.alloc(size, 0x5a);
  let sent = 0;
  (async () => {
    while (sent < count) {
      const burst = Math.min(256, count - sent);
      await Promise.all(Array.from({ length: burst }, () => new Promise((res) => s.send(buf, port, addr, () => res()))));
      sent += burst;
    }
    process.stdout.write(JSON.stringify({ sent }) + '\n');
    s.close();
  })();
} else {
  process.stderr.write('usage: udp.js server|client|flood|frag ADDR PORT ...\n');
  process.exit(2);
}
