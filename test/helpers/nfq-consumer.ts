/**
 * Test-owned NFQUEUE consumer built on the programmatic API (src/index.ts). Run inside the lab's
 * gw namespace:
 *
 *   node --import tsx test/helpers/nfq-consumer.ts --queue N [--mode accept|drop|mixed]
 *        [--drop-udp-port P] [--max-len N] [--rcvbuf BYTES] [--batch N] [--fail-open] [--slow-ms N]
 *
 * mode accept: every packet ACCEPT; drop: every packet DROP; mixed: DROP UDP to --drop-udp-port,
 * ACCEPT everything else. Prints `READY {json}` once bound, and on SIGTERM/SIGINT closes the queue
 * and prints `STATS {json}` (queue counters + packets seen per class) and exits 0.
 * `--mark-icmp M` answers accepted ICMP/ICMPv6 with VERDICT_SET_MARK and mark M.
 * `--rewrite-udp-port P` upper-cases the ASCII letters of UDP payloads to port P in place, fixes the
 * UDP checksum and answers NF_ACCEPT | VERDICT_SET_PAYLOAD; `--copy-range N` copies only N bytes.
 * `--resize-udp-port P --resize-by N` changes the length of UDP datagrams to port P: N > 0 appends
 * N '+' bytes to the payload, N < 0 cuts -N bytes off its end; IP total / payload length, UDP length
 * and checksums are fixed, IX_CAPLEN gets the new length (N beyond IX_ROOM: the addon refuses it).
 * `--throw` makes onBatch throw before deciding anything (the error verdict applies).
 * `--slow-ms N` burns N ms of CPU per batch (to overload a tiny queue on purpose).
 */
import { openQueue, INDEX_STRIDE, IX_OFFSET, IX_CAPLEN, IX_ROOM, NF_ACCEPT, NF_DROP, VERDICT_SET_MARK, VERDICT_SET_PAYLOAD } from '../../src/index';
import { get16, get32, put16 } from '../../src/packet/bytes';
import { ipv4HeaderChecksum, l4Checksum } from '../../src/packet/checksum';

function arg(name: string, def?: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}
const mode = arg('--mode', 'accept')!;
const dropPort = Number(arg('--drop-udp-port', '0'));
const slowMs = Number(arg('--slow-ms', '0'));
const markIcmp = Number(arg('--mark-icmp', '0'));
const throwMode = process.argv.includes('--throw');
const rewritePort = Number(arg('--rewrite-udp-port', '0'));

/** Upper-cases the UDP payload of the packet at data[off..off+len) in place and fixes its checksum. */
function rewriteUdp(data: Uint8Array, off: number, len: number, l4: number, ver: number): void {
  for (let p = l4 + 8; p < off + len; p++) if (data[p] >= 0x61 && data[p] <= 0x7a) data[p] -= 0x20;
  fixUdpChecksum(data, off, l4, ver);
}

function fixUdpChecksum(data: Uint8Array, off: number, l4: number, ver: number): void {
  const words = (o: number, n: number) => Array.from({ length: n }, (_, k) => get32(data, o + 4 * k));
  const src = ver === 4 ? words(off + 12, 1) : words(off + 8, 4);
  const dst = ver === 4 ? words(off + 16, 1) : words(off + 24, 4);
  const ulen = get16(data, l4 + 4);
  put16(data, l4 + 6, 0);
  put16(data, l4 + 6, l4Checksum(ver, src, dst, 17, data, l4, ulen) || 0xffff);
}
const resizePort = Number(arg('--resize-udp-port', '0'));
const resizeBy = Number(arg('--resize-by', '0'));

/** Grows (by > 0, '+' bytes) or shrinks the UDP datagram at data[off..off+len); returns its new length. */
function resizeUdp(data: Uint8Array, off: number, len: number, l4: number, ver: number, by: number): number {
  const nlen = len + by;
  if (by > 0) data.fill(0x2b, off + len, off + nlen);
  if (ver === 4) {
    put16(data, off + 2, nlen);
    put16(data, off + 10, 0);
    put16(data, off + 10, ipv4HeaderChecksum(data, off));
  } else put16(data, off + 4, nlen - 40);
  put16(data, l4 + 4, off + nlen - l4);
  fixUdpChecksum(data, off, l4, ver);
  return nlen;
}
let reported = 0;

const seen = {
  total: 0,
  v4: 0,
  v6: 0,
  tcp: 0,
  udp: 0,
  udpDropped: 0,
  icmp: 0,
  icmp6: 0,
  other: 0,
  accepted: 0,
  dropped: 0,
  fragments: 0,
  maxLen: 0,
  minRoom: -1,
};

const q = openQueue({
  queue: Number(arg('--queue', '0')),
  maxLen: arg('--max-len') ? Number(arg('--max-len')) : undefined,
  rcvbuf: arg('--rcvbuf') ? Number(arg('--rcvbuf')) : undefined,
  batchSize: arg('--batch') ? Number(arg('--batch')) : undefined,
  failOpen: process.argv.includes('--fail-open'),
  copyRange: arg('--copy-range') ? Number(arg('--copy-range')) : undefined,
  onBatch(b) {
    if (throwMode) throw new Error('handler failure (test)');
    const { data, index, verdicts, count } = b;
    for (let i = 0; i < count; i++) {
      const off = index[i * INDEX_STRIDE + IX_OFFSET];
      const len = index[i * INDEX_STRIDE + IX_CAPLEN];
      seen.total++;
      let proto = -1;
      let l4 = 0;
      const ver = len > 0 ? data[off] >> 4 : 0;
      if (len > seen.maxLen) seen.maxLen = len;
      if (ver === 4 && len >= 20) {
        seen.v4++;
        if ((((data[off + 6] << 8) | data[off + 7]) & 0x3fff) !== 0) seen.fragments++;
        proto = data[off + 9];
        l4 = off + (data[off] & 15) * 4;
      } else if (ver === 6 && len >= 40) {
        seen.v6++;
        proto = data[off + 6];
        l4 = off + 40;
        if (proto === 44) seen.fragments++;
      }
      let dport = -1;
      if ((proto === 6 || proto === 17) && l4 + 4 <= off + len) dport = (data[l4 + 2] << 8) | data[l4 + 3];
      if (proto === 6) seen.tcp++;
      else if (proto === 17) seen.udp++;
      else if (proto === 1) seen.icmp++;
      else if (proto === 58) seen.icmp6++;
      else seen.other++;
      let v = NF_ACCEPT;
      if (mode === 'drop') v = NF_DROP;
      else if (mode === 'mixed' && proto === 17 && dport === dropPort) {
        v = NF_DROP;
        seen.udpDropped++;
      }
      if ((v & 0xffff) === NF_ACCEPT) seen.accepted++;
      else seen.dropped++;
      if (rewritePort && v === NF_ACCEPT && proto === 17 && dport === rewritePort) {
        rewriteUdp(data, off, len, l4, ver);
        v |= VERDICT_SET_PAYLOAD;
      }
      if (resizePort && v === NF_ACCEPT && proto === 17 && dport === resizePort) {
        const room = index[i * INDEX_STRIDE + IX_ROOM];
        seen.minRoom = seen.minRoom < 0 || room < seen.minRoom ? room : seen.minRoom;
        // beyond the room only the length word changes (the addon must refuse it, not read past)
        index[i * INDEX_STRIDE + IX_CAPLEN] = len + resizeBy <= room ? resizeUdp(data, off, len, l4, ver, resizeBy) : len + resizeBy;
        v |= VERDICT_SET_PAYLOAD;
      }
      if (markIcmp && v === NF_ACCEPT && (proto === 1 || proto === 58)) {
        v |= VERDICT_SET_MARK;
        b.marks[i] = markIcmp;
      }
      verdicts[i] = v;
    }
    if (slowMs > 0) {
      const end = Date.now() + slowMs;
      while (Date.now() < end);
    }
  },
  onError(err) {
    reported++;
    process.stderr.write(`consumer: onBatch threw: ${String(err)}\n`);
  },
});

process.stdout.write(`READY ${JSON.stringify({ queue: q.queue, portid: q.portid, pid: process.pid })}\n`);

function finish(): void {
  q.close();
  process.stdout.write(`STATS ${JSON.stringify({ ...q.stats(), reported, seen })}\n`, () => process.exit(0));
}
process.on('SIGTERM', finish);
process.on('SIGINT', finish);
