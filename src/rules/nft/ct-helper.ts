/**
 * The `ct helper set "OBJ"` statement ({ "ct helper": "OBJ" }) with the table's ct helper
 * object { type, protocol, l3proto }: nft_ct_helper_obj_eval assigns the helper to the
 * packet's connection after conntrack, while it is unconfirmed (its first packet), when the
 * connection's protocol is the object's and none is assigned yet; before conntrack (no
 * connection) and on later packets it does nothing. The rule goes on (a non-terminal target).
 */
import type { PacketContext } from '../../conntrack/context';
import { HELPER_PROTOS, helperId } from '../../conntrack/helpers/registry';
import { protocolNumber } from '../protocols';
import { XT_CONTINUE, type CompiledTarget, type ParsedTarget, type TargetModule } from '../types';
import { nftToken } from './build';
import { NftError } from './path';

export interface CtHelperState {
  /** the object's name, the helper's registry id and protocol, the families it has a helper for */
  name: string;
  id: number;
  proto: number;
  v4: boolean;
  v6: boolean;
}

/** A table's ct helper objects by name, as the document lists them (with their JSON path). */
export type CtHelperObjects = Map<string, { obj: Record<string, unknown>; path: string }>;

export function ctHelperTarget(value: unknown, path: string, objects: CtHelperObjects, tableFamily: 0 | 4 | 6): ParsedTarget {
  if (typeof value !== 'string') throw new NftError(`${path}["ct helper"]`, 'ct helper set names a ct helper object');
  const o = objects.get(value);
  if (!o) throw new NftError(`${path}["ct helper"]`, `no ct helper object "${value}" in this table`);
  const { obj, path: at } = o;
  const type = obj.type;
  const id = typeof type === 'string' ? helperId(type) : 0;
  if (id === 0) throw new NftError(`${at}.type`, `nfqwall has no conntrack helper ${JSON.stringify(type)}`);
  const proto = typeof obj.protocol === 'string' ? protocolNumber(obj.protocol) : -1;
  // nf_conntrack_helper_try_module_get(name, family, l4proto): no such helper for another protocol (ENOENT)
  if (proto !== HELPER_PROTOS[id]) throw new NftError(`${at}.protocol`, `no conntrack helper ${type} for protocol ${JSON.stringify(obj.protocol)}`);
  // nft_ct_helper_obj_init: the table's family unless l3proto says; inet: both
  const l3 = obj.l3proto ?? (tableFamily === 4 ? 'ip' : tableFamily === 6 ? 'ip6' : 'inet');
  if (l3 !== 'ip' && l3 !== 'ip6' && l3 !== 'inet') throw new NftError(`${at}.l3proto`, `l3proto ${JSON.stringify(l3)}`);
  if ((tableFamily === 4 && l3 === 'ip6') || (tableFamily === 6 && l3 === 'ip'))
    throw new NftError(`${at}.l3proto`, `l3proto ${l3} in a table of the other family`);
  const state: CtHelperState = { name: value, id, proto, v4: l3 !== 'ip6', v6: l3 !== 'ip' };
  return { kind: 'ext', name: nftCtHelper.name, at: nftToken('ct helper'), state };
}

class CtHelperSet implements CompiledTarget {
  constructor(private readonly s: CtHelperState) {}
  run(ctx: PacketContext): number {
    const s = this.s;
    if (ctx.entry < 0 || ctx.unconfirmed === 0 || ctx.conn === null || ctx.view.proto !== s.proto) return XT_CONTINUE;
    if (ctx.family === 4 ? s.v4 : s.v6) ctx.conn.assignHelper(ctx.entry, s.id);
    return XT_CONTINUE;
  }
}

export const nftCtHelper: TargetModule<CtHelperState> = {
  name: 'nft-ct-helper',
  options: [],
  tables: ['filter'],
  create: () => ({ name: '', id: 0, proto: 0, v4: false, v6: false }),
  parse() {},
  finalize() {},
  familyOf: () => 0,
  save: (s) => ['--nft', JSON.stringify(`ct helper set ${JSON.stringify(s.name)}`)],
  compile: (s) => new CtHelperSet(s),
};
