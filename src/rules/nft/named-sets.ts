/**
 * The named sets of a loaded nftables rule set as they change at run time (`nfqwall nft add
 * element` / `delete element`): each set keeps its elements as nft lists them (the document's
 * own `elem` list, so `rules -L` prints the current ones) and the ranges every lookup of
 * "@NAME" reads (LookupRanges, shared, swapped whole: the per-packet lookup allocates nothing).
 * A reload parses the file again, so the file's elements come back as with `nft -f`.
 */
import { LookupRanges } from './lookup';
import { NftError } from './path';
import { element, mergeRanges, type Range, type ValueKind } from './values';

/** nft's set data types (nft describe) as the value kinds nfqwall reads. */
const TYPE_KINDS: Record<string, ValueKind> = {
  ipv4_addr: 'addr4',
  ipv6_addr: 'addr6',
  inet_service: 'port',
  inet_proto: 'proto',
  icmp_type: 'icmp',
  icmpv6_type: 'icmp6',
  mark: 'mark',
  tcp_flag: 'tcpflags',
};

function cmp(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

export class NamedSet {
  /** the kind of its values, null when nfqwall does not read the set's type (concatenations, …) */
  readonly kind: ValueKind | null;
  readonly interval: boolean;
  /** what every lookup of "@NAME" matches against */
  readonly live: LookupRanges;

  /** obj: the document's set object ({ family, name, table, type, flags, elem }); path: its JSON path */
  constructor(
    private readonly obj: Record<string, unknown>,
    readonly path: string,
  ) {
    this.kind = obj.map === undefined && typeof obj.type === 'string' ? (TYPE_KINDS[obj.type] ?? null) : null;
    this.interval = Array.isArray(obj.flags) && obj.flags.includes('interval');
    this.live = new LookupRanges(this.kind === 'addr6' ? 4 : 1);
  }

  get type(): unknown {
    return this.obj.type;
  }
  /** a map's data type ("verdict"), undefined for a set */
  get map(): unknown {
    return this.obj.map;
  }
  get elems(): unknown[] {
    return (this.obj.elem as unknown[] | undefined) ?? [];
  }

  /** The set's elements as ranges, in the document's order. */
  private current(): Range[] {
    const kind = this.kind!;
    return this.elems.map((e, i) => element(kind, e, `${this.path}.elem[${i}]`));
  }

  /** Puts the lookups' ranges in step with the elements (at load, and after each change). */
  sync(): void {
    if (this.kind) this.live.set(mergeRanges(this.current()));
  }

  /**
   * nft add element / delete element with these elements (nft JSON values): all or nothing,
   * refused in nft's words. Returns the new element list.
   */
  change(op: 'add' | 'delete', values: unknown[]): unknown[] {
    const kind = this.kind;
    if (!kind) throw new NftError(this.path, `nfqwall cannot change ${this.map !== undefined ? 'a map' : `a set of type ${JSON.stringify(this.obj.type)}`}`);
    const elems = this.elems.slice();
    const have = this.current();
    for (const v of values) {
      const r = element(kind, v, 'element');
      const single = cmp(r[0], r[1]) === 0;
      if (!single && !this.interval) throw new Error("You must add 'flags interval' to your set declaration if you want to add range elements");
      const same = have.findIndex((h) => cmp(h[0], r[0]) === 0 && cmp(h[1], r[1]) === 0);
      if (op === 'add') {
        if (same >= 0) continue; // nft add element: an element already there is no error (create element would be)
        if (this.interval && have.some((h) => cmp(h[0], r[1]) <= 0 && cmp(r[0], h[1]) <= 0)) throw new Error('interval overlaps with an existing one');
        have.push(r);
        elems.push(v);
      } else {
        if (same < 0) throw new Error(this.interval ? 'element does not exist' : 'Could not process rule: No such file or directory');
        have.splice(same, 1);
        elems.splice(same, 1);
      }
    }
    return elems;
  }

  /** Replaces the elements (the list change() returned, possibly in another thread) and the lookups' ranges. */
  replace(elems: unknown[]): void {
    if (!this.kind) throw new NftError(this.path, `nfqwall cannot change a set of type ${JSON.stringify(this.obj.type)}`);
    const old = this.obj.elem;
    this.obj.elem = elems;
    try {
      this.sync();
    } catch (e) {
      this.obj.elem = old;
      throw e;
    }
  }
}

/** The named sets of a rule set, by "FAMILY TABLE SET". */
export type NamedSets = Map<string, NamedSet>;

export const setKey = (family: string, table: string, set: string): string => `${family} ${table} ${set}`;
