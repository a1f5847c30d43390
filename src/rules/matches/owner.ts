/**
 * -m owner: libxt_owner.c revision 1 (--uid-owner, --gid-owner: a name or N[-M]; --socket-exists;
 * --suppl-groups; each but the last invertible) and xt_owner.c owner_mt, on the owner the queue
 * reports for locally generated packets: NFQA_UID / NFQA_GID, the fsuid / fsgid of the
 * sending socket's file (nfqnl_put_sk_uidgid). Without them the packet counts as having no
 * socket. The queue does not carry supplementary groups: --suppl-groups is refused.
 */
import * as fs from 'node:fs';
import type { CompiledMatch, MatchModule, ParseEnv, Token } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { PKTF_UID_GID } from '../../queue/layout';
import { parseUint } from './util';

const XT_OWNER_UID = 1;
const XT_OWNER_GID = 2;
const XT_OWNER_SOCKET = 4;
const ID_MAX = 0xfffffffe;

export interface OwnerState {
  match: number;
  invert: number;
  uid: [number, number];
  gid: [number, number];
}

/** NAME → id from /etc/passwd or /etc/group (what getpwnam/getgrnam find there), or -1. */
function idByName(file: string, name: string): number {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return -1;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 3 && /^[0-9]+$/.test(f[2])) return Number(f[2]);
  }
  return -1;
}

function parseIdRange(tok: Token, opt: string, file: string, env: ParseEnv): [number, number] | null {
  const s = tok.text;
  const byName = idByName(file, s);
  if (byName >= 0) return [byName, byName];
  const sep = s.search(/[-:]/);
  const from = parseUint(sep < 0 ? s : s.slice(0, sep), ID_MAX);
  const to = sep < 0 ? from : parseUint(s.slice(sep + 1), ID_MAX);
  if (from < 0 || to < 0) {
    env.error(tok, `Bad value for "--${opt}" option: "${s}" (a ${file === '/etc/passwd' ? 'user' : 'group'} name in ${file}, or N[-M] up to ${ID_MAX})`);
    return null;
  }
  if (from > to) {
    env.error(tok, `Bad value for "--${opt}" option: "${s}" (range out of order)`);
    return null;
  }
  return [from, to];
}

const formatRange = (r: [number, number]) => (r[0] === r[1] ? String(r[0]) : `${r[0]}-${r[1]}`);

export const ownerMatch: MatchModule<OwnerState> = {
  name: 'owner',
  options: [
    { name: 'uid-owner', invertible: true, args: 1 },
    { name: 'gid-owner', invertible: true, args: 1 },
    { name: 'socket-exists', invertible: true, args: 0 },
  ],
  unsupported: ['suppl-groups', 'pid-owner', 'sid-owner', 'cmd-owner'],
  create: () => ({ match: 0, invert: 0, uid: [0, 0], gid: [0, 0] }),
  parse(s, opt, args, inv, optTok, env) {
    const flag = opt === 'uid-owner' ? XT_OWNER_UID : opt === 'gid-owner' ? XT_OWNER_GID : XT_OWNER_SOCKET;
    if (s.match & flag) return env.error(optTok, `option "--${opt}" can only be used once`);
    if (flag !== XT_OWNER_SOCKET) {
      const r = parseIdRange(args[0], opt, flag === XT_OWNER_UID ? '/etc/passwd' : '/etc/group', env);
      if (!r) return;
      if (flag === XT_OWNER_UID) s.uid = r;
      else s.gid = r;
    }
    s.match |= flag;
    if (inv) s.invert |= flag;
  },
  finalize(s, rule, at, env) {
    if (s.match === 0) return env.error(at, 'owner match needs --uid-owner, --gid-owner or --socket-exists');
    // owner_mt_check / the hook mask: the sending socket is known only on the way out
    if (rule.chain === 'INPUT' || rule.chain === 'FORWARD' || rule.chain === 'PREROUTING')
      env.error(at, `owner match is only valid in OUTPUT and POSTROUTING (the kernel refuses it in ${rule.chain})`);
  },
  familyOf: () => 0,
  save(s) {
    const out: string[] = [];
    const item = (flag: number, label: string, arg?: string) => {
      if (!(s.match & flag)) return;
      if (s.invert & flag) out.push('!');
      out.push(label);
      if (arg !== undefined) out.push(arg);
    };
    item(XT_OWNER_SOCKET, '--socket-exists');
    item(XT_OWNER_UID, '--uid-owner', formatRange(s.uid));
    item(XT_OWNER_GID, '--gid-owner', formatRange(s.gid));
    return out;
  },
  compile(s) {
    return new OwnerMatch(s);
  },
};

class OwnerMatch implements CompiledMatch {
  private readonly m: number;
  private readonly inv: number;
  private readonly uidMin: number;
  private readonly uidMax: number;
  private readonly gidMin: number;
  private readonly gidMax: number;
  constructor(s: OwnerState) {
    this.m = s.match;
    this.inv = s.invert;
    [this.uidMin, this.uidMax] = s.uid;
    [this.gidMin, this.gidMax] = s.gid;
  }
  match(ctx: PacketContext): boolean {
    // no socket: matches only when every test given is negated
    if ((ctx.pktFlags & PKTF_UID_GID) === 0) return (this.m ^ this.inv) === 0;
    if (this.m & this.inv & XT_OWNER_SOCKET) return false;
    if (this.m & XT_OWNER_UID) {
      const uid = ctx.uid >>> 0;
      const inRange = uid >= this.uidMin && uid <= this.uidMax;
      if (inRange === ((this.inv & XT_OWNER_UID) !== 0)) return false;
    }
    if (this.m & XT_OWNER_GID) {
      const gid = ctx.gid >>> 0;
      const inRange = gid >= this.gidMin && gid <= this.gidMax;
      if (inRange === ((this.inv & XT_OWNER_GID) !== 0)) return false;
    }
    return true;
  }
}
