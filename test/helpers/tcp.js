#!/usr/bin/env node
// TCP test tool (plain JS, runs in a lab namespace).
//   node tcp.js sink ADDR PORT
//        accepts one connection, hashes what arrives; prints READY when listening,
//        `BYTES n` whenever the count grew (at most every 100 ms), `DONE n sha256hex` at EOF, exits 0
//   node tcp.js source ADDR PORT CHUNK INTERVAL_MS
//        connects (prints `CONNECTED localport`), writes CHUNK random bytes every INTERVAL_MS (none
//        while the socket is backed up), hashes what it sent; the line `stop` on stdin ends the
//        stream: prints `DONE n sha256hex` once everything was handed to the kernel, exits 0.
//        Prints `ERR message` / `CLOSED` if the connection breaks.
//   node tcp.js echo ADDR PORT
//        line echo server for any number of connections; prints READY
//   node tcp.js talk ADDR PORT
//        connects (prints `CONNECTED localport`); each stdin line is sent; each line that comes back
//        is printed as `ECHO line`
'use strict';
const net = require('node:net');
const crypto = require('node:crypto');
const [mode, addr, portS, a4, a5] = process.argv.slice(2);
const port = Number(portS);

if (mode === 'sink') {
  const h = crypto.createHash('sha256');
  let n = 0;
  let shown = -1;
  const srv = net.createServer((s) => {
    srv.close();
    const t = setInterval(() => {
      if (n !== shown) process.stdout.write(`BYTES ${(shown = n)}\n`);
    }, 100);
    s.on('data', (d) => {
      h.update(d);
      n += d.length;
    });
    s.on('end', () => {
      clearInterval(t);
      process.stdout.write(`BYTES ${n}\nDONE ${n} ${h.digest('hex')}\n`, () => process.exit(0));
    });
    s.on('error', (e) => process.stdout.write(`ERR ${e.message}\n`));
  });
  srv.listen(port, addr, () => process.stdout.write('READY\n'));
} else if (mode === 'source') {
  const chunk = Number(a4);
  const every = Number(a5);
  const h = crypto.createHash('sha256');
  let n = 0;
  let stopping = false;
  const s = net.connect(port, addr, () => {
    process.stdout.write(`CONNECTED ${s.localPort}\n`);
    const t = setInterval(() => {
      if (stopping) {
        clearInterval(t);
        s.end(() => process.stdout.write(`DONE ${n} ${h.digest('hex')}\n`, () => process.exit(0)));
        return;
      }
      if (s.writableNeedDrain) return;
      const b = crypto.randomBytes(chunk);
      h.update(b);
      n += b.length;
      s.write(b);
    }, every);
  });
  s.on('error', (e) => process.stdout.write(`ERR ${e.message}\n`));
  s.on('close', () => {
    if (!stopping) process.stdout.write('CLOSED\n');
  });
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    if (d.includes('stop')) stopping = true;
  });
} else if (mode === 'echo') {
  net
    .createServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    })
    .listen(port, addr, () => process.stdout.write('READY\n'));
} else if (mode === 'talk') {
  const s = net.connect(port, addr, () => process.stdout.write(`CONNECTED ${s.localPort}\n`));
  let buf = '';
  s.setEncoding('utf8');
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      process.stdout.write(`ECHO ${buf.slice(0, i)}\n`);
      buf = buf.slice(i + 1);
    }
  });
  s.on('error', (e) => process.stdout.write(`ERR ${e.message}\n`));
  s.on('close', () => process.stdout.write('CLOSED\n'));
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => s.write(d));
} else {
  process.stderr.write('usage: tcp.js sink|source|echo|talk ADDR PORT ...\n');
  process.exit(2);
}
