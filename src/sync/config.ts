/**
 * The `--sync FILE` of `nfqwall run`: one `KEY VALUE` per line, `#` to the end of a line is a
 * comment. Each key is a line of conntrackd.conf's Sync section (README, "State sync"):
 *
 *   mode notrack                     Mode NOTRACK { }
 *   transport udp | multicast        UDP { } | Multicast { }
 *   address A                        UDP IPv4_address / Multicast IPv4_interface
 *   peer A                           UDP IPv4_Destination_Address
 *   group A                          Multicast IPv4_address
 *   port N                           UDP Port / Multicast Group (default 3780)
 *   window-tracking on | off         Options { TCPWindowTracking } (default off)
 *   peer-timeout SECONDS             nfqwall's: silence after which the peer is called lost (default 3)
 *
 * Errors are FILE:LINE:COL: message.
 */
import { isIPv4 } from 'node:net';

export interface SyncConfig {
  mode: 'notrack';
  transport: 'udp' | 'multicast';
  /** local IPv4 address: bound (udp) or the multicast interface's */
  address: string;
  /** udp: the peer's address */
  peer: string;
  /** multicast: the group */
  group: string;
  port: number;
  windowTracking: boolean;
  peerTimeoutSec: number;
}

export class SyncConfigError extends Error {
  constructor(readonly errors: string[]) {
    super(errors.join('\n'));
  }
}

const KEYS = ['mode', 'transport', 'address', 'peer', 'group', 'port', 'window-tracking', 'peer-timeout'];

export function parseSyncConfig(text: string, file: string): SyncConfig {
  const errors: string[] = [];
  const seen = new Map<string, { value: string; line: number; col: number }>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '');
    const m = /^(\s*)(\S+)(?:(\s+)(\S+))?\s*(\S.*)?$/.exec(line);
    if (!m) return;
    const at = (col: number) => `${file}:${i + 1}:${col}`;
    const keyCol = m[1].length + 1;
    const key = m[2];
    if (!KEYS.includes(key)) return void errors.push(`${at(keyCol)}: unknown key '${key}' (${KEYS.join(', ')})`);
    if (m[4] === undefined) return void errors.push(`${at(keyCol + key.length)}: '${key}' needs a value`);
    const valCol = keyCol + key.length + m[3].length;
    if (m[5] !== undefined) return void errors.push(`${at(line.indexOf(m[5], valCol) + 1)}: one value per key`);
    if (seen.has(key)) return void errors.push(`${at(keyCol)}: '${key}' given twice`);
    seen.set(key, { value: m[4], line: i + 1, col: valCol });
  });
  const bad = (key: string, msg: string) => {
    const s = seen.get(key)!;
    errors.push(`${file}:${s.line}:${s.col}: ${msg}`);
  };
  const val = (key: string) => seen.get(key)?.value;
  const mode = val('mode') ?? 'notrack';
  if (mode === 'ftfw') bad('mode', 'mode ftfw is not implemented yet (notrack only)');
  else if (mode !== 'notrack') bad('mode', `unknown mode '${mode}' (notrack)`);
  const transport = val('transport') ?? 'udp';
  if (transport !== 'udp' && transport !== 'multicast') bad('transport', `unknown transport '${transport}' (udp or multicast)`);
  const addr = (key: string, need: boolean, multicast: boolean): string => {
    const v = val(key);
    if (v === undefined) {
      if (need) errors.push(`${file}: '${key}' is needed with transport ${transport}`);
      return '';
    }
    if (!isIPv4(v)) bad(key, `'${v}' is not an IPv4 address`);
    else if (multicast !== (Number(v.split('.')[0]) >= 224 && Number(v.split('.')[0]) <= 239))
      bad(key, multicast ? `'${v}' is not a multicast group (224.0.0.0/4)` : `'${v}' is a multicast address`);
    return v;
  };
  const address = addr('address', true, false);
  const peer = transport === 'udp' ? addr('peer', true, false) : '';
  const group = transport === 'multicast' ? addr('group', true, true) : '';
  if (transport === 'udp' && seen.has('group')) bad('group', 'group is for transport multicast');
  if (transport === 'multicast' && seen.has('peer')) bad('peer', 'peer is for transport udp');
  const num = (key: string, dflt: number, min: number, max: number): number => {
    const v = val(key);
    if (v === undefined) return dflt;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) bad(key, `'${v}' is not a number from ${min} to ${max}`);
    return Number(v);
  };
  const port = num('port', 3780, 1, 65535);
  const peerTimeoutSec = num('peer-timeout', 3, 1, 3600);
  const wt = val('window-tracking') ?? 'off';
  if (wt !== 'on' && wt !== 'off') bad('window-tracking', `'${wt}' is not on or off`);
  if (errors.length > 0) throw new SyncConfigError(errors);
  return { mode: 'notrack', transport: transport as 'udp' | 'multicast', address, peer, group, port, windowTracking: wt === 'on', peerTimeoutSec };
}
