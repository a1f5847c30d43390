/**
 * The ipsets of one thread by name (the kernel's ip_set_list of the network namespace): create,
 * destroy, rename and swap, and the references rules hold. The elements live in shared memory
 * (store.ts), so the daemon's main thread, which runs every `nfqwall ipset` command, changes the
 * very sets the workers match against; only the list of sets itself is sent to the workers
 * (descriptors(), adopt()) after a create, destroy, rename or swap. A rule refers to a set
 * through a SetRef, as the kernel's rules refer to a set index: a rename keeps the rule on its
 * set, a swap gives the rule the set that now has the name.
 */
import { IpsetError, type CreateOpts, type IpSet, type SetLookup } from './set';
import { isListSet } from './types/list-set';
import { SET_TYPES } from './types';

export interface SetDescriptor {
  uid: number;
  name: string;
  type: string;
  opts: CreateOpts;
  buffers: unknown;
}

/** A rule's reference to a set by name; `set` is what the name is now (null: destroyed). */
export class SetRef {
  set: IpSet | null = null;
  constructor(public name: string) {}
}

/** IPSET_MAXNAMELEN - 1 */
export const MAX_NAME = 31;

export class IpsetRegistry implements SetLookup {
  private readonly sets: IpSet[] = [];
  private readonly refs = new Map<string, SetRef>();
  /** the references of the rules in service, and of the rules being compiled */
  private inUse = new Set<SetRef>();
  private marking = new Set<SetRef>();
  private nextUid = 1;

  byName(name: string): IpSet | undefined {
    return this.sets.find((s) => s.name === name);
  }
  /** on the packet path (list:set members): no closure */
  byUid(uid: number): IpSet | undefined {
    const sets = this.sets;
    for (let i = 0; i < sets.length; i++) if (sets[i].uid === uid) return sets[i];
    return undefined;
  }
  list(): readonly IpSet[] {
    return this.sets;
  }

  create(name: string, type: string, opts: CreateOpts, exist: boolean): void {
    if (name.length > MAX_NAME) throw new IpsetError(`Syntax error: setname '${name}' is longer than ${MAX_NAME} characters`);
    const t = SET_TYPES[type];
    const old = this.byName(name);
    if (old) {
      // -exist: the same create again is no error (ip_set_create: same type, family and options)
      if (exist && old.typeName === type && JSON.stringify(old.opts) === JSON.stringify(t.make(0, name, { ...opts }, undefined, this).opts)) return;
      throw new IpsetError('Set cannot be created: set with the same name already exists');
    }
    this.sets.push(t.make(this.nextUid++, name, opts, undefined, this));
    this.relink();
  }

  /** Is the set used by the rules in service or a list:set? */
  used(s: IpSet): boolean {
    for (const r of this.inUse) if (r.set === s) return true;
    return this.sets.some((l) => isListSet(l) && l.memberUids().includes(s.uid));
  }

  references(s: IpSet): number {
    let n = 0;
    for (const r of this.inUse) if (r.set === s) n++;
    for (const l of this.sets) if (isListSet(l) && l.memberUids().includes(s.uid)) n++;
    return n;
  }

  destroy(name?: string): void {
    if (name === undefined) {
      if (this.sets.some((s) => this.used(s))) throw new IpsetError('Set cannot be destroyed: it is in use by a kernel component');
      this.sets.length = 0;
    } else {
      const s = this.get(name);
      if (this.used(s)) throw new IpsetError('Set cannot be destroyed: it is in use by a kernel component');
      this.sets.splice(this.sets.indexOf(s), 1);
    }
    this.relink();
  }

  get(name: string): IpSet {
    const s = this.byName(name);
    if (!s) throw new IpsetError('The set with the given name does not exist');
    return s;
  }

  rename(from: string, to: string): void {
    const s = this.get(from);
    if (to.length > MAX_NAME) throw new IpsetError(`Syntax error: setname '${to}' is longer than ${MAX_NAME} characters`);
    if (this.byName(to)) throw new IpsetError('Set cannot be renamed: a set with the new name already exists');
    s.name = to;
    // the rules that name `from` keep the set (the kernel's rules hold its index)
    const r = this.refs.get(from);
    this.refs.delete(from);
    if (r) {
      r.name = to;
      this.refs.set(to, r);
    }
    this.relink();
  }

  swap(a: string, b: string): void {
    const x = this.get(a);
    const y = this.get(b);
    if (x.typeName !== y.typeName || x.opts.family !== y.opts.family) throw new IpsetError('The sets cannot be swapped: their type does not match');
    x.name = b;
    y.name = a;
    const i = this.sets.indexOf(x);
    const j = this.sets.indexOf(y);
    this.sets[i] = y;
    this.sets[j] = x;
    this.relink();
  }

  private relink(): void {
    for (const r of this.refs.values()) r.set = this.byName(r.name) ?? null;
  }

  /** A rule being compiled names the set: its reference (null: no such set). */
  ref(name: string): SetRef | null {
    if (!this.byName(name)) return null;
    let r = this.refs.get(name);
    if (!r) {
      r = new SetRef(name);
      this.refs.set(name, r);
      this.relink();
    }
    this.marking.add(r);
    return r;
  }

  /** The rules compiled since the last commit went into service: their references are the ones in use. */
  commit(): void {
    this.inUse = this.marking;
    this.marking = new Set();
  }

  /** What another thread needs to see the same sets. */
  descriptors(): SetDescriptor[] {
    return this.sets.map((s) => ({ uid: s.uid, name: s.name, type: s.typeName, opts: s.opts, buffers: s.buffers() }));
  }

  /** This thread's sets become the ones described (another thread's, sharing their storage). */
  adopt(descs: SetDescriptor[]): void {
    const mine = new Map(this.sets.map((s) => [s.uid, s]));
    this.sets.length = 0;
    for (const d of descs) {
      let s = mine.get(d.uid);
      if (!s) s = SET_TYPES[d.type].make(d.uid, d.name, { ...d.opts }, d.buffers, this);
      s.name = d.name;
      this.sets.push(s);
      this.nextUid = Math.max(this.nextUid, d.uid + 1);
    }
    this.relink();
  }

  gc(now: number): void {
    for (const s of this.sets) s.gc(now);
  }
}

let thread: IpsetRegistry | null = null;

/** This thread's sets. */
export function ipsets(): IpsetRegistry {
  thread ??= new IpsetRegistry();
  return thread;
}

/** For tests: a fresh registry. */
export function resetIpsets(): IpsetRegistry {
  thread = new IpsetRegistry();
  return thread;
}
