/**
 * Which packets a rule set needs to see before the kernel routes them (the pre-routing queue
 * crossing, src/pipeline/crossings.ts): all of them when mangle PREROUTING has rules (or a DROP
 * policy); a destination rewrite must happen there. With a *nat
 * table these are the first packets that nat PREROUTING may DNAT and the later packets of DNAT
 * flows (any rule in nat PREROUTING: every packet), and the replies of SNAT flows, which arrive
 * addressed to the SNAT address: MASQUERADE's and nat OUTPUT's are the gateway's own (iptables'
 * `-m addrtype --dst-type LOCAL`), SNAT's and NETMAP's the range given (`-m iprange
 * --dst-range`, `-d NET/PREFIX`); an SNAT without an address (ports only) keeps any source: every
 * packet. The answer is what src/daemon/iptables.ts installs, as iptables match words per
 * family: an empty list queues nothing there, `[[]]` everything.
 */
import { NF_NAT_RANGE_MAP_IPS } from '../conntrack/nat';
import { formatAddr } from './addr';
import type { NatToState } from './nat-action';
import type { NetmapState } from './targets/NETMAP';
import type { ParsedChain, RuleError, RuleSet } from './types';
import type { MarkState } from './matches/mark';

export interface PreroutingNeed {
  4: string[][];
  6: string[][];
}

export const NO_PREROUTING: PreroutingNeed = { 4: [], 6: [] };

const LOCAL = ['-m', 'addrtype', '--dst-type', 'LOCAL'];

export function preroutingNeed(set: RuleSet): PreroutingNeed {
  const all: PreroutingNeed = { 4: [[]], 6: [[]] };
  // mangle PREROUTING runs before the kernel routes the packet (its marks steer policy routing): every packet
  const mangle = set.tables.find((t) => t.name === 'mangle');
  const pre = mangle?.chains.find((c) => c.builtin && c.name === 'PREROUTING');
  if (!set.bases && pre && (pre.rules.length > 0 || pre.policy === 'DROP')) return all;
  // an nftables rule set's prerouting filter chains after conntrack, on the mangle PREROUTING slot
  if (set.bases?.some((b) => b.slot === 'mangle/PREROUTING')) return all;
  const nats = set.tables.filter((t) => t.name === 'nat');
  if (nats.length === 0) return NO_PREROUTING;
  // an iptables nat table's built-in chains by name; an nftables rule set's nat chains by their slot
  const isBase = (ch: ParsedChain, hook: string): boolean =>
    set.bases ? set.bases.some((b) => b.table === 'nat' && b.chain === ch.name && b.slot === `nat/${hook}`) : ch.builtin && ch.name === hook;
  const need: PreroutingNeed = { 4: [], 6: [] };
  const add = (fam: 0 | 4 | 6, words: string[]) => {
    for (const f of fam === 0 ? ([4, 6] as const) : [fam]) if (!need[f].some((w) => w.join(' ') === words.join(' '))) need[f].push(words);
  };
  for (const ch of nats.flatMap((t) => t.chains)) {
    if (isBase(ch, 'PREROUTING') && ch.rules.length > 0) return all;
    if (isBase(ch, 'OUTPUT') && ch.rules.length > 0) add(0, LOCAL);
    for (const r of ch.rules) {
      if (r.target.kind !== 'ext') continue;
      const name = r.target.name;
      if (name === 'MASQUERADE') add(r.family, LOCAL);
      else if (name === 'SNAT') {
        const s = (r.target.state as NatToState).range;
        if ((s.flags & NF_NAT_RANGE_MAP_IPS) === 0) return all;
        const fam = s.family === 6 ? 6 : 4;
        const lo = formatAddr(fam, s.minAddr);
        const hi = formatAddr(fam, s.maxAddr);
        add(fam, lo === hi ? ['-d', lo] : ['-m', 'iprange', '--dst-range', `${lo}-${hi}`]);
      } else if (name === 'NETMAP') {
        const s = r.target.state as NetmapState;
        add(s.family === 6 ? 6 : 4, ['-d', `${formatAddr(s.family === 6 ? 6 : 4, s.addr)}/${s.prefix}`]);
      }
    }
  }
  return need;
}

export function samePrerouting(a: PreroutingNeed, b: PreroutingNeed): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The packet-mark bits nfqwall owns while a *nat table is loaded: the pre-routing crossing leaves
 * what it found in them for the filter crossing, which clears them (src/pipeline/crossings.ts).
 */
export const CROSS_SHIFT = 28;
export const CROSS_MASK = 3 << CROSS_SHIFT;

/**
 * With a *nat table, rules that test for the crossing bits being set (-m mark) or set them
 * (-j MARK) are refused: nfqwall overwrites and clears them, so such a rule could not do what it
 * says. A test that needs them clear (`--mark 0x7`, a full mask) is what the operator means: the
 * rules see the packet mark with the crossing bits cleared.
 */
export function reservedMarkErrors(set: RuleSet, file: string): RuleError[] {
  if (!set.tables.some((t) => t.name === 'nat')) return [];
  const out: RuleError[] = [];
  const bits = `0x${(CROSS_MASK >>> 0).toString(16)}`;
  for (const t of set.tables)
    for (const c of t.chains)
      for (const r of c.rules) {
        for (const m of r.matches) {
          if (m.name === 'mark' && ((m.state as MarkState).value & (m.state as MarkState).mask & CROSS_MASK) !== 0)
            out.push({
              file,
              line: m.at.line,
              col: m.at.col,
              message: `-m mark tests for the packet-mark bits ${bits}, which nfqwall uses with a *nat table: rules never see them set`,
            });
        }
        if (r.target.kind === 'ext' && r.target.name === 'MARK' && ((r.target.state as { value: number }).value & CROSS_MASK) !== 0)
          out.push({
            file,
            line: r.target.at!.line,
            col: r.target.at!.col,
            message: `-j MARK sets the packet-mark bits ${bits}, which nfqwall uses with a *nat table`,
          });
      }
  return out;
}
