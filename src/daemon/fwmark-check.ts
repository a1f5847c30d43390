/**
 * Policy routing rules that would see nfqwall's crossing bits: while a packet is between the two
 * queue crossings (a *nat table, or mangle PREROUTING rules: src/pipeline/crossings.ts) its mark
 * also holds CROSS_MASK, and the kernel routes it then, so an `ip rule … fwmark VALUE[/MASK]`
 * whose mask covers those bits (a bare `fwmark VALUE` is a full mask) no longer matches as it
 * would without nfqwall. They are named in a warning whenever the crossings are put in force.
 */
import { execFile } from 'node:child_process';
import { CROSS_MASK } from '../pipeline/crossings';

/** The `ip -j rule show` entries (JSON text) whose fwmark mask covers a crossing bit, as short descriptions. */
export function rulesSeeingCrossBits(json: string, family: 4 | 6): string[] {
  let list: unknown;
  try {
    list = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(list)) return [];
  const out: string[] = [];
  for (const r of list as Record<string, unknown>[]) {
    if (typeof r?.fwmark !== 'string') continue;
    const mask = typeof r.fwmask === 'string' ? Number(r.fwmask) : 0xffffffff;
    if (!Number.isFinite(mask) || (mask & CROSS_MASK) >>> 0 === 0) continue;
    out.push(`ip -${family} rule ${r.priority ?? '?'}: fwmark ${r.fwmark}${typeof r.fwmask === 'string' ? `/${r.fwmask}` : ''} lookup ${r.table ?? '?'}`);
  }
  return out;
}

function ipRules(family: 4 | 6): Promise<string> {
  return new Promise((resolve) => execFile('ip', [`-${family}`, '-j', 'rule', 'show'], (err, stdout) => resolve(err ? '[]' : String(stdout))));
}

/** Warns about every policy routing rule of this namespace that tests a crossing bit. */
export async function warnFwmarkRules(log: { warn(o: object, msg?: string): void }): Promise<void> {
  const found = [...rulesSeeingCrossBits(await ipRules(4), 4), ...rulesSeeingCrossBits(await ipRules(6), 6)];
  if (found.length === 0) return;
  log.warn(
    { rules: found, crossingBits: `0x${CROSS_MASK.toString(16)}` },
    'policy routing rules test the mark bits nfqwall uses between its two queue crossings (nat, mangle PREROUTING): give them a mask without those bits, e.g. fwmark 0x7/0xfffffff',
  );
}
