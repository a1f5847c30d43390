/**
 * The expectation table (nf_conntrack_expect.c): "a connection that looks like
 * this is about to come; it belongs to master M". Typed arrays, a keyed hash on
 * the fields that are never wildcards (family, protocol, destination address and
 * port), a per-master doubly linked list (newest first).
 *
 * Stored tuple: the expected ORIG tuple (tuple.ts layout) with the masked-out
 * source parts zero. Mask: source address exact or any, source port exact or any;
 * destination, family and protocol always exact.
 */
import { HashKey } from './hash';
import { T_DST, T_META, T_PORTS, T_SRC, TUPLE_WORDS } from './layout';

export const NF_CT_EXPECT_PERMANENT = 1;
export const NF_CT_EXPECT_INACTIVE = 2;
export const NF_CT_EXPECT_USERSPACE = 4;

/** mask[] bits */
export const EXP_MASK_SRC_ADDR = 1;
export const EXP_MASK_SRC_PORT = 2;

/** add() results (the kernel's errnos of __nf_ct_expect_check) */
export const EXP_OK = 0;
export const EXP_EALREADY = -1; // identical expectation of another master/class
export const EXP_EBUSY = -2; // overlapping expectation
export const EXP_EMFILE = -3; // helper's max_expected reached and nothing to evict
export const EXP_TABLE_FULL = -4; // nf_conntrack_expect_max reached
export const EXP_ESHUTDOWN = -5; // the master has no helper (any more)

export interface ExpectStats {
  expect_create: number;
  expect_delete: number;
}

export class ExpectTable {
  count = 0;
  private cap = 0;
  tuples: Uint32Array = new Uint32Array(0);
  mask: Uint8Array = new Uint8Array(0);
  master: Int32Array = new Int32Array(0);
  cls: Uint8Array = new Uint8Array(0);
  flags: Uint8Array = new Uint8Array(0);
  /** helper id given to the new connection (0 = none; FTP data connections get none) */
  helper: Uint8Array = new Uint8Array(0);
  timeout: Float64Array = new Float64Array(0);
  /**
   * The expectation of a NATed master (nf_nat_ftp): the direction of the master its connection
   * comes from (exp->dir; -1: not NATed) and the port the command announced (exp->saved_proto),
   * which nf_nat_follow_master maps the connection back to.
   */
  natDir: Int8Array = new Int8Array(0);
  savedPort: Uint16Array = new Uint16Array(0);
  /** the slot the last successful add() filled */
  lastAdded = -1;
  private live: Uint8Array = new Uint8Array(0);
  private hnext: Int32Array = new Int32Array(0);
  private hval: Int32Array = new Int32Array(0);
  private mnext: Int32Array = new Int32Array(0);
  private mprev: Int32Array = new Int32Array(0);
  private freeHead = -1;
  private hiwater = 0;
  private heads: Int32Array = new Int32Array(64).fill(-1);
  /** per conntrack entry: newest expectation of that master, -1 if none */
  private masterHead: Int32Array = new Int32Array(0);
  private readonly scratch = new Uint32Array(6);
  private sweep = 0;

  constructor(
    private readonly key: HashKey,
    private readonly stats: ExpectStats,
  ) {
    this.grow(16);
  }

  /**
   * The connection table can now hold `cap` entries. The per-master list heads grow on
   * demand (only entries that get expectations — helper masters — need a slot), up to cap.
   */
  resizeMasters(cap: number): void {
    this.masterLimit = cap;
  }

  private masterLimit = 0;

  private ensureMaster(master: number): void {
    const have = this.masterHead.length;
    if (master < have) return;
    const cap = Math.max(master + 1, Math.min(Math.max(have * 2, 64), Math.max(this.masterLimit, master + 1)));
    const m = new Int32Array(cap).fill(-1);
    m.set(this.masterHead);
    this.masterHead = m;
  }

  hasExpectations(master: number): boolean {
    return master < this.masterHead.length && this.masterHead[master] >= 0;
  }

  isLive(x: number): boolean {
    return x >= 0 && x < this.hiwater && this.live[x] === 1;
  }

  private hashOf(t: Uint32Array, o: number): number {
    const s = this.scratch;
    s[0] = t[o + T_META];
    s[1] = t[o + T_DST];
    s[2] = t[o + T_DST + 1];
    s[3] = t[o + T_DST + 2];
    s[4] = t[o + T_DST + 3];
    s[5] = t[o + T_PORTS] & 0xffff;
    return this.key.hash(s, 0, 6);
  }

  private bucket(h: number): number {
    return h & (this.heads.length - 1);
  }

  /** Same fixed part (family, proto, destination address and port). */
  private sameDst(x: number, t: Uint32Array, o: number): boolean {
    const b = x * TUPLE_WORDS;
    const tt = this.tuples;
    return (
      tt[b + T_META] === t[o + T_META] &&
      tt[b + T_DST] === t[o + T_DST] &&
      tt[b + T_DST + 1] === t[o + T_DST + 1] &&
      tt[b + T_DST + 2] === t[o + T_DST + 2] &&
      tt[b + T_DST + 3] === t[o + T_DST + 3] &&
      (tt[b + T_PORTS] & 0xffff) === (t[o + T_PORTS] & 0xffff)
    );
  }

  /** Does tuple t@o match x under x's mask (nf_ct_tuple_mask_cmp)? With `m` given, under mask m instead. */
  private matchesUnder(x: number, t: Uint32Array, o: number, m: number): boolean {
    if (!this.sameDst(x, t, o)) return false;
    const b = x * TUPLE_WORDS;
    const tt = this.tuples;
    if (m & EXP_MASK_SRC_ADDR) {
      for (let i = 0; i < 4; i++) if (tt[b + T_SRC + i] !== t[o + T_SRC + i]) return false;
    }
    if (m & EXP_MASK_SRC_PORT) {
      if (tt[b + T_PORTS] >>> 16 !== t[o + T_PORTS] >>> 16) return false;
    }
    return true;
  }

  /**
   * Insert an expectation (nf_ct_expect_related → __nf_ct_expect_check). `t` is
   * the expected ORIG tuple with masked parts already zero. Returns EXP_*.
   */
  add(
    master: number,
    t: Uint32Array,
    o: number,
    mask: number,
    cls: number,
    helper: number,
    flags: number,
    maxExpected: number,
    timeoutMs: number,
    expectMax: number,
    now: number,
  ): number {
    const h = this.hashOf(t, o);
    // identical → replace (same master and class) or refuse; overlapping → refuse
    scan: for (;;) {
      let x = this.heads[this.bucket(h)];
      while (x >= 0) {
        const nx = this.hnext[x];
        if (this.timeout[x] <= now) {
          this.remove(x);
          continue scan;
        }
        const b = x * TUPLE_WORDS;
        let identical = this.mask[x] === mask;
        if (identical) for (let i = 0; i < TUPLE_WORDS; i++) if (this.tuples[b + i] !== t[o + i]) identical = false;
        if (identical) {
          if (this.cls[x] !== cls || this.master[x] !== master) return EXP_EALREADY;
          this.remove(x);
          break scan;
        }
        if (this.matchesUnder(x, t, o, this.mask[x] & mask)) return EXP_EBUSY;
        x = nx;
      }
      break;
    }
    this.ensureMaster(master);
    // the helper's limit: evict this master's oldest expectation of the class
    if (maxExpected > 0 && this.countOf(master, cls) >= maxExpected) {
      let last = -1;
      for (let x = this.masterHead[master]; x >= 0; x = this.mnext[x]) if (this.cls[x] === cls) last = x;
      if (last >= 0) this.remove(last);
      if (this.countOf(master, cls) >= maxExpected) return EXP_EMFILE;
    }
    if (this.count >= expectMax) return EXP_TABLE_FULL;

    let x = this.freeHead;
    if (x >= 0) this.freeHead = this.hnext[x];
    else {
      if (this.hiwater === this.cap) this.grow(this.cap * 2);
      x = this.hiwater++;
    }
    const b = x * TUPLE_WORDS;
    for (let i = 0; i < TUPLE_WORDS; i++) this.tuples[b + i] = t[o + i];
    this.mask[x] = mask;
    this.master[x] = master;
    this.cls[x] = cls;
    this.helper[x] = helper;
    this.flags[x] = flags;
    this.natDir[x] = -1;
    this.savedPort[x] = 0;
    this.lastAdded = x;
    this.timeout[x] = now + timeoutMs;
    this.live[x] = 1;
    this.hval[x] = h;
    const bk = this.bucket(h);
    this.hnext[x] = this.heads[bk];
    this.heads[bk] = x;
    const head = this.masterHead[master];
    this.mprev[x] = -1;
    this.mnext[x] = head;
    if (head >= 0) this.mprev[head] = x;
    this.masterHead[master] = x;
    this.count++;
    this.stats.expect_create++;
    if (this.count > this.heads.length * 2) this.rehash(this.heads.length * 4);
    return EXP_OK;
  }

  countOf(master: number, cls: number): number {
    let n = 0;
    if (master >= this.masterHead.length) return 0;
    for (let x = this.masterHead[master]; x >= 0; x = this.mnext[x]) if (this.cls[x] === cls) n++;
    return n;
  }

  /**
   * The expectation a new connection with ORIG tuple t@o fulfils
   * (nf_ct_find_expectation): the first live, active match in its bucket, and
   * only if that one's master is confirmed. -1 if none.
   */
  find(t: Uint32Array, o: number, now: number, masterConfirmed: (master: number) => boolean): number {
    if (this.count === 0) return -1;
    const h = this.hashOf(t, o);
    scan: for (;;) {
      let x = this.heads[this.bucket(h)];
      while (x >= 0) {
        if (this.timeout[x] <= now) {
          this.remove(x);
          continue scan;
        }
        if ((this.flags[x] & NF_CT_EXPECT_INACTIVE) === 0 && this.hval[x] === h && this.matchesUnder(x, t, o, this.mask[x])) {
          return masterConfirmed(this.master[x]) ? x : -1;
        }
        x = this.hnext[x];
      }
      return -1;
    }
  }

  /** Unlink and free x; stat expect_delete. */
  remove(x: number): void {
    const bk = this.bucket(this.hval[x]);
    let p = this.heads[bk];
    if (p === x) this.heads[bk] = this.hnext[x];
    else
      while (p >= 0) {
        if (this.hnext[p] === x) {
          this.hnext[p] = this.hnext[x];
          break;
        }
        p = this.hnext[p];
      }
    const m = this.master[x];
    const pv = this.mprev[x];
    const nx = this.mnext[x];
    if (pv >= 0) this.mnext[pv] = nx;
    else this.masterHead[m] = nx;
    if (nx >= 0) this.mprev[nx] = pv;
    this.live[x] = 0;
    this.master[x] = -1;
    this.hnext[x] = this.freeHead;
    this.freeHead = x;
    this.count--;
    this.stats.expect_delete++;
  }

  /** All expectations of a master go when it is destroyed (nf_ct_remove_expectations). */
  removeForMaster(master: number): void {
    if (master >= this.masterHead.length) return;
    let x = this.masterHead[master];
    while (x >= 0) {
      const nx = this.mnext[x];
      this.remove(x);
      x = nx;
    }
  }

  /** Remove expired expectations, looking at no more than `budget` slots. Returns the number removed. */
  expire(now: number, budget: number): number {
    let removed = 0;
    const n = Math.min(budget, this.hiwater);
    for (let i = 0; i < n; i++) {
      if (this.sweep >= this.hiwater) this.sweep = 0;
      const x = this.sweep++;
      if (this.live[x] === 1 && this.timeout[x] <= now) {
        this.remove(x);
        removed++;
      }
    }
    return removed;
  }

  /** Live expectations in hash order. */
  forEach(cb: (x: number) => void): void {
    const ids: number[] = [];
    for (let b = 0; b < this.heads.length; b++) for (let x = this.heads[b]; x >= 0; x = this.hnext[x]) ids.push(x);
    for (const x of ids) if (this.live[x] === 1) cb(x);
  }

  flush(): number {
    let n = 0;
    for (let x = 0; x < this.hiwater; x++)
      if (this.live[x] === 1) {
        this.remove(x);
        n++;
      }
    return n;
  }

  private rehash(nb: number): void {
    this.heads = new Int32Array(nb).fill(-1);
    for (let x = 0; x < this.hiwater; x++) {
      if (this.live[x] !== 1) continue;
      const bk = this.bucket(this.hval[x]);
      this.hnext[x] = this.heads[bk];
      this.heads[bk] = x;
    }
  }

  private grow(cap: number): void {
    const g32 = (a: Uint32Array, n: number) => {
      const b = new Uint32Array(n);
      b.set(a);
      return b;
    };
    const gi32 = (a: Int32Array, n: number) => {
      const b = new Int32Array(n).fill(-1);
      b.set(a);
      return b;
    };
    const g8 = (a: Uint8Array, n: number) => {
      const b = new Uint8Array(n);
      b.set(a);
      return b;
    };
    this.tuples = g32(this.tuples, cap * TUPLE_WORDS);
    this.mask = g8(this.mask, cap);
    this.master = gi32(this.master, cap);
    this.cls = g8(this.cls, cap);
    this.flags = g8(this.flags, cap);
    this.helper = g8(this.helper, cap);
    const nd = new Int8Array(cap);
    nd.set(this.natDir);
    this.natDir = nd;
    const sp = new Uint16Array(cap);
    sp.set(this.savedPort);
    this.savedPort = sp;
    const t = new Float64Array(cap);
    t.set(this.timeout);
    this.timeout = t;
    this.live = g8(this.live, cap);
    this.hnext = gi32(this.hnext, cap);
    const hv = new Int32Array(cap);
    hv.set(this.hval);
    this.hval = hv;
    this.mnext = gi32(this.mnext, cap);
    this.mprev = gi32(this.mprev, cap);
    this.cap = cap;
  }
}
