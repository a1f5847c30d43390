/**
 * What the management-under-flood tests share (test/e2e/mgmt-reserve.test.ts,
 * test/stress/line-rate.test.ts): the gateway's rules — INPUT admits the metrics port from
 * the client's network, FORWARD the stream (tcp 5001), the held or SYN-flooded connections
 * (tcp 7000) and the UDP flood (udp 9000) — and the ASSURED stream opened before a flood.
 */
import { LAB_ADDR as A } from '../../src/lab/netns';

export const mgmtFloodRules = (metricsPort: number): string => `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 198.18.1.0/24 -p tcp -m tcp --dport ${metricsPort} -m conntrack --ctstate NEW -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -s 198.18.1.0/24 -d 198.19.2.1/32 -p tcp -m multiport --dports 5001,7000 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -s 198.18.1.0/24 -d 198.19.2.1/32 -p udp -m udp --dport 9000 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p icmp -j ACCEPT
COMMIT
`;

/** srv: writes 8 KiB every 25 ms to each client of port 5001. */
export const STREAM_SRV = `require('net').createServer((s) => { const b = Buffer.alloc(8192, 120); const t = setInterval(() => { if (!s.destroyed) s.write(b); }, 25); s.on('error', () => {}); s.on('close', () => clearInterval(t)); }).listen(5001, '${A.srv4}', () => console.log('READY'));`;
/** cli: one connection to srv:5001, printing "BYTES n" every 100 ms. */
export const STREAM_CLI = `let n = 0; const c = require('net').connect(5001, '${A.srv4}'); c.on('data', (d) => { n += d.length; }); setInterval(() => console.log('BYTES ' + n), 100); c.on('close', () => { console.log('CLOSED'); process.exit(0); }); c.on('error', (e) => console.log('ERR ' + e.message));`;

/** The last "BYTES n" STREAM_CLI printed. */
export const streamBytes = (out: string): number => Number(/BYTES (\d+)\n(?![\s\S]*BYTES)/.exec(out)?.[1] ?? 0);
