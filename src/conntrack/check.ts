/**
 * Table consistency checker (tests, fuzzing, debugging; never on the hot path).
 *
 * Walks every hash chain, the free list, the expectation table and the
 * per-source counters of a Conntrack and returns the problems found (an empty
 * list = consistent):
 *
 *  - every node in a chain belongs to an allocated, hashed entry and sits in the
 *    bucket the keyed hash of its tuple (ORIG or REPLY) maps to;
 *  - every hashed entry is reachable exactly once per direction; no cycles;
 *  - the free list holds only unallocated rows, each once; free + used rows =
 *    rows ever used; no row both free and used;
 *  - count == nf_conntrack_count, hashed == entries in the hash, count ≤
 *    nf_conntrack_max (unless told the max was lowered at run time), and —
 *    between packets (`quiescent`) — no unconfirmed entry is left over;
 *  - hashed entries carry IPS_CONFIRMED; timeouts are finite numbers;
 *  - only rows that are allocated have a master (expected entries);
 *  - every live expectation's master is alive and lists it; the expectation
 *    count matches and stays ≤ nf_conntrack_expect_max;
 *  - the per-source counters equal a recount over the allocated entries.
 *
 * It reads private fields of Conntrack / ConnTable / ExpectTable / SourceCounter
 * through bracket access on purpose: it is an auditor, not an API user.
 */
import type { Conntrack } from './core';
import type { ConnTable } from './table';
import { F_ALLOC, F_HASHED } from './table';
import type { ExpectTable } from './expect';
import { IPS_CONFIRMED } from './constants';
import { R_NEXT, T_SRC, TUPLE_WORDS, nodeTuple, recBase, recFamily } from './layout';

export interface CheckOptions {
  /** between packets: no unconfirmed entries may exist (default true) */
  quiescent?: boolean;
  /** nf_conntrack_max was lowered at run time: count may exceed it (default false) */
  allowOverMax?: boolean;
  /** stop after this many problems (default 50) */
  maxProblems?: number;
}

interface TablePriv {
  freeHead: number;
  masters: Map<number, [number, number]>;
  hkey: { hashTuple(t: Uint32Array, off: number): number };
}
interface ExpectPriv {
  heads: Int32Array;
  hnext: Int32Array;
  live: Uint8Array;
  hiwater: number;
  masterHead: Int32Array;
  mnext: Int32Array;
  mprev: Int32Array;
}
interface CtPriv {
  perSource: { size: number; get(family: number, addr: Uint32Array, off: number): number };
}

export function checkConntrack(ct: Conntrack, opts: CheckOptions = {}): string[] {
  const quiescent = opts.quiescent ?? true;
  const maxProblems = opts.maxProblems ?? 50;
  const problems: string[] = [];
  const bad = (msg: string): boolean => {
    if (problems.length < maxProblems) problems.push(msg);
    return problems.length >= maxProblems;
  };
  const tb: ConnTable = ct.table;
  const tp = tb as unknown as TablePriv;
  const cp = ct as unknown as CtPriv;
  const hw = tb.highWater;
  const seen = new Uint8Array(hw * 2); // per node: times reached from a chain

  if (tb.heads.length !== tb.nbuckets) bad(`heads.length ${tb.heads.length} != nbuckets ${tb.nbuckets}`);
  if (hw > tb.capacity) bad(`high water ${hw} > capacity ${tb.capacity}`);

  // ---- hash chains
  const scratch = new Uint32Array(TUPLE_WORDS);
  let nodesInHash = 0;
  chains: for (let b = 0; b < tb.nbuckets; b++) {
    let steps = 0;
    for (let n = tb.head(b); n >= 0; n = tb.next(n)) {
      if (++steps > 2 * hw + 1) {
        if (bad(`bucket ${b}: chain longer than every node (cycle)`)) break chains;
        break;
      }
      if (n >= 2 * hw) {
        if (bad(`bucket ${b}: node ${n} beyond high water ${hw}`)) break chains;
        break;
      }
      const e = n >> 1;
      if (seen[n]++ > 0) {
        if (bad(`node ${n} (entry ${e}) reached more than once (bucket ${b})`)) break chains;
        break; // a node seen twice means a shared tail or a cycle: stop this chain
      }
      nodesInHash++;
      if ((tb.flags[e] & F_ALLOC) === 0 && bad(`bucket ${b}: node ${n} of a free row ${e}`)) break chains;
      if ((tb.flags[e] & F_HASHED) === 0 && bad(`bucket ${b}: node ${n} of unhashed entry ${e}`)) break chains;
      nodeTuple(tb.rec, tb.nat, n, scratch, 0);
      const hb = tb.bucketOf(tp.hkey.hashTuple(scratch, 0));
      if (hb !== b && bad(`node ${n} in bucket ${b}, its tuple hashes to bucket ${hb}`)) break chains;
    }
  }

  // ---- rows: allocated / hashed / free
  let alloc = 0;
  let hashed = 0;
  let unconfirmed = 0;
  for (let e = 0; e < hw; e++) {
    const f = tb.flags[e];
    if ((f & F_ALLOC) === 0) {
      if (f & F_HASHED) bad(`free row ${e} marked hashed`);
      if (seen[2 * e] || seen[2 * e + 1]) bad(`free row ${e} reachable from the hash`);
      continue;
    }
    alloc++;
    const st = tb.status(e);
    if (!Number.isFinite(tb.timeout(e))) bad(`entry ${e}: timeout ${tb.timeout(e)}`);
    const fam = recFamily(tb.rec, e);
    if (fam !== 4 && fam !== 6) bad(`entry ${e}: family ${fam}`);
    if (f & F_HASHED) {
      hashed++;
      if ((st & IPS_CONFIRMED) === 0) bad(`hashed entry ${e} without IPS_CONFIRMED`);
      for (let d = 0; d < 2; d++) {
        if (seen[2 * e + d] !== 1) bad(`entry ${e} direction ${d} reached ${seen[2 * e + d]} times from its bucket`);
      }
    } else {
      unconfirmed++;
      if (st & IPS_CONFIRMED) bad(`entry ${e} confirmed but not hashed`);
      if (seen[2 * e] || seen[2 * e + 1]) bad(`unhashed entry ${e} reachable from the hash`);
    }
    if (problems.length >= maxProblems) return problems;
  }
  if (quiescent && unconfirmed > 0) bad(`${unconfirmed} unconfirmed entries left between packets`);
  if (nodesInHash !== 2 * hashed) bad(`${nodesInHash} nodes in the hash for ${hashed} hashed entries`);

  // ---- free list
  const onFree = new Uint8Array(hw);
  let free = 0;
  for (let e = tp.freeHead, steps = 0; e >= 0; e = tb.rec[recBase(e) + R_NEXT] - 1) {
    if (++steps > hw + 1) {
      bad('free list cycles');
      break;
    }
    if (e >= hw) {
      bad(`free list: row ${e} beyond high water ${hw}`);
      break;
    }
    if (onFree[e]++ > 0) {
      bad(`free list: row ${e} twice`);
      break;
    }
    free++;
    if (tb.flags[e] & F_ALLOC) bad(`row ${e} both free and in use`);
  }
  if (free + alloc !== hw) bad(`free ${free} + used ${alloc} != rows ever used ${hw}`);
  for (const [e, [m]] of tp.masters) {
    if (!tb.isAlloc(e)) bad(`free row ${e} still has a master (${m})`);
  }

  // ---- counters
  const max = ct.tun.nf_conntrack_max;
  if (tb.count !== alloc) bad(`table.count ${tb.count} != allocated rows ${alloc}`);
  if (tb.hashed !== hashed) bad(`table.hashed ${tb.hashed} != hashed rows ${hashed}`);
  if (ct.tun.nf_conntrack_count !== tb.count) bad(`nf_conntrack_count ${ct.tun.nf_conntrack_count} != table.count ${tb.count}`);
  if (!opts.allowOverMax && max > 0 && tb.count > max) bad(`count ${tb.count} > nf_conntrack_max ${max}`);

  // ---- expectations
  checkExpectations(ct, bad);

  // ---- per-source counters (kept only once nfqwall.per_source_max has been > 0)
  if (!ct.countsSources) {
    if (cp.perSource.size !== 0) bad(`per-source counter holds ${cp.perSource.size} sources while sources are not counted`);
    return problems;
  }
  const recount = new Map<string, { fam: number; off: number; n: number }>();
  for (let e = 0; e < hw; e++) {
    if ((tb.flags[e] & F_ALLOC) === 0) continue;
    const b = recBase(e);
    const fam = recFamily(tb.rec, e);
    const k = `${fam}/${tb.rec[b + T_SRC]}/${fam === 6 ? tb.rec[b + T_SRC + 1] : 0}`;
    const r = recount.get(k);
    if (r) r.n++;
    else recount.set(k, { fam, off: b + T_SRC, n: 1 });
  }
  for (const [k, r] of recount) {
    const got = cp.perSource.get(r.fam, tb.rec, r.off);
    if (got !== r.n && bad(`per-source count of ${k}: ${got}, recount ${r.n}`)) break;
  }
  if (cp.perSource.size !== recount.size) bad(`per-source table holds ${cp.perSource.size} sources, recount ${recount.size}`);
  return problems;
}

function checkExpectations(ct: Conntrack, bad: (msg: string) => boolean): void {
  const x = ct.expectations as ExpectTable;
  const xp = x as unknown as ExpectPriv;
  const tb = ct.table;
  const hw = xp.hiwater;
  const seen = new Uint8Array(hw);
  let inHash = 0;
  for (let b = 0; b < xp.heads.length; b++) {
    let steps = 0;
    for (let i = xp.heads[b]; i >= 0; i = xp.hnext[i]) {
      if (++steps > hw + 1 || i >= hw || seen[i]++ > 0) {
        bad(`expectation bucket ${b}: cycle or shared node at ${i}`);
        break;
      }
      inHash++;
      if (xp.live[i] !== 1) bad(`expectation ${i} in the hash but not live`);
    }
  }
  let live = 0;
  for (let i = 0; i < hw; i++) {
    if (xp.live[i] !== 1) continue;
    live++;
    if (!seen[i]) bad(`live expectation ${i} not in the hash`);
    const m = x.master[i];
    if (!tb.isAlloc(m)) {
      bad(`expectation ${i}: master ${m} is not alive`);
      continue;
    }
    let found = false;
    for (let j = xp.masterHead[m], steps = 0; j >= 0 && steps <= hw; j = xp.mnext[j], steps++) if (j === i) found = true;
    if (!found) bad(`expectation ${i} missing from its master ${m}'s list`);
  }
  // masters' lists hold only live expectations of that master
  for (let m = 0; m < Math.min(xp.masterHead.length, tb.highWater); m++) {
    for (let j = xp.masterHead[m], steps = 0; j >= 0; j = xp.mnext[j]) {
      if (++steps > hw + 1) {
        bad(`master ${m}: expectation list cycles`);
        break;
      }
      if (xp.live[j] !== 1 || x.master[j] !== m) bad(`master ${m} lists expectation ${j} (live ${xp.live[j]}, master ${x.master[j]})`);
      if (!tb.isAlloc(m)) bad(`free row ${m} still lists expectation ${j}`);
    }
  }
  if (live !== x.count) bad(`expectation count ${x.count} != live ${live}`);
  if (inHash !== live) bad(`${inHash} expectations in the hash, ${live} live`);
  const emax = ct.tun.nf_conntrack_expect_max;
  if (emax > 0 && x.count > emax) bad(`expectations ${x.count} > nf_conntrack_expect_max ${emax}`);
}
