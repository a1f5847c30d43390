// npm-nfqueue peer (copied from the team's shared harness, /work/shared/bench/peers/npm-nfqueue.js):
// the existing Node binding (npm "nfqueue" 0.3.2, installed into bench/node_modules by
// bench/run.ts), accept-all, one verdict per packet, 8 MiB receive buffer.
// Usage: node npm-nfqueue.js [QUEUE]
'use strict';
const path = require('path');
const nfq = require(path.join(__dirname, '..', 'node_modules', 'nfqueue'));
const queue = parseInt(process.argv[2] || '0', 10);
let packets = 0, bytes = 0;
nfq.createQueueHandler(queue, 8 << 20, (p) => {
  packets++;
  bytes += p.info.len;
  p.setVerdict(nfq.NF_ACCEPT);
});
console.error(`npm-nfqueue: bound queue ${queue}`);
const done = () => {
  console.error(`npm-nfqueue: queue=${queue} packets=${packets} bytes=${bytes}`);
  process.exit(0);
};
process.on('SIGTERM', done);
process.on('SIGINT', done);
