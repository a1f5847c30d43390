/**
 * Child of reject-shared.test.ts, run in an empty network namespace (unshare -n) so that the
 * REJECT replies it provokes go nowhere (the sends fail: no route). Prints one JSON line.
 */
import * as fs from 'node:fs';
import { ipv4, udp } from '../../helpers/packets';
import { loadRuleText, rejectRateLimited } from '../../../src/pipeline/load-rules';
import { ctxFor } from './util';

const RULES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp --dport 53 -j REJECT --reject-with icmp-port-unreachable
COMMIT
`;
const sockets = () =>
  fs.readdirSync('/proc/self/fd').filter((f) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${f}`).startsWith('socket:');
    } catch {
      return false;
    }
  }).length;
const load = () => {
  const r = loadRuleText(RULES, 't.rules', { log: () => {}, ifname: () => undefined });
  if (!r.rules) throw new Error(r.errors.join('\n'));
  return r.rules;
};
const pkt = ipv4({ src: '198.18.0.2', dst: '198.19.0.2' }, udp({ sport: 40000, dport: 53, payload: 'q' }));
const socketsBefore = sockets();
const first = load();
for (let i = 0; i < 20; i++) first.evalFilter(ctxFor(pkt), 0);
const afterBurst = rejectRateLimited();
// a reload: a new rule set; the limiter (and the sockets) carry over
for (let i = 0; i < 10; i++) load().evalFilter(ctxFor(pkt), 0);
const afterReloads = rejectRateLimited();
process.stdout.write(JSON.stringify({ afterBurst, afterReloads, socketsOpened: sockets() - socketsBefore }) + '\n');
