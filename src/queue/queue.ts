/**
 * The programmatic data-path API: one NFQUEUE queue, batched.
 *
 *   const q = openQueue({ queue: 0, onBatch(b) {
 *     for (let i = 0; i < b.count; i++) {
 *       const row = i * INDEX_STRIDE;
 *       const off = b.index[row + IX_OFFSET], len = b.index[row + IX_CAPLEN];
 *       // packet bytes: b.data.subarray(off, off + len) (or read b.data directly: no copy)
 *       b.verdicts[i] = NF_ACCEPT;
 *     }
 *   }});
 *
 * The batch object and its typed arrays are created once and reused for every batch; they
 * are only valid during the onBatch call. Before onBatch runs, every verdict word holds the
 * queue's error verdict (NF_DROP, or NF_ACCEPT with failOpen); packets the handler does not
 * answer (or all remaining ones when it throws) get that verdict. Every packet handed to
 * JavaScript gets exactly one verdict.
 */
import * as fs from 'node:fs';
import { loadAddon, NativeQueue, NativeStats } from './addon';
import { INDEX_STRIDE } from './layout';

export interface QueueOptions {
  /** NFQUEUE number, 0..65535 (default 0). */
  queue?: number;
  /** Bytes of each packet copied to userspace, 0..65535 (default 0xffff; 0 = the kernel's maximum). */
  copyRange?: number;
  /** NFQA_CFG_QUEUE_MAXLEN: packets the kernel holds waiting for a verdict (default 4096). */
  maxLen?: number;
  /** Messages per recvmmsg and packets per onBatch call, 1..256 (default 64). */
  batchSize?: number;
  /** Socket receive buffer in bytes, set with SO_RCVBUFFORCE (default 8 MiB). */
  rcvbuf?: number;
  /** NFQA_CFG_F_FAIL_OPEN: the kernel accepts packets when the queue is full; error verdict ACCEPT (default false). */
  failOpen?: boolean;
  /** NFQA_CFG_F_GSO: receive GSO super-packets unsegmented (default true). */
  gso?: boolean;
  /** Called once per received batch. Write batch.verdicts[i] (and batch.marks[i] with VERDICT_SET_MARK). */
  onBatch(batch: Batch): void;
  /** Called (after the verdicts went out) when onBatch threw. Default: process.emitWarning. */
  onError?(err: unknown): void;
}

/** One reused object per queue. Valid only during onBatch. */
export interface Batch {
  readonly queue: number;
  /** Packets in this batch: rows 0..count-1 of index, words 0..count-1 of verdicts/marks. */
  count: number;
  /** The receive slab; packet i is data[index[i*INDEX_STRIDE+IX_OFFSET] ..+ IX_CAPLEN]. */
  readonly data: Uint8Array;
  /** INDEX_STRIDE words per packet, see layout.ts (IX_*). */
  readonly index: Uint32Array;
  /** One verdict word per packet: NF_ACCEPT / NF_DROP, optionally | VERDICT_SET_MARK / VERDICT_SET_PAYLOAD (src/queue/layout.ts). */
  readonly verdicts: Uint32Array;
  /** Mark per packet, applied when its verdict has VERDICT_SET_MARK. */
  readonly marks: Uint32Array;
}

export interface QueueStats extends NativeStats {
  queue: number;
}

export interface Queue {
  readonly queue: number;
  /** Netlink port id of our socket (as in /proc/net/netfilter/nfnetlink_queue). */
  readonly portid: number;
  readonly batch: Batch;
  readonly closed: boolean;
  /** Counters: packets, batches, recvCalls, verdictMsgs, sendmsgCalls, enobufs, truncated, errors, … */
  stats(): QueueStats;
  /** Stops polling, answers what is already queued to the socket with the error verdict, unbinds, closes. Idempotent. */
  close(): void;
  /** Test hook: stops reading the socket while staying bound, as a broken poll would (stall detection tests). */
  debugStopPolling?(): void;
}

/** A queue could not be bound. `reason` says why; the message names the queue. */
export class QueueBindError extends Error {
  constructor(
    message: string,
    readonly queue: number,
    readonly reason: 'busy' | 'permission' | 'other',
    readonly code: string,
    readonly owner?: { portid: number; pid?: number; comm?: string },
  ) {
    super(message);
    this.name = 'QueueBindError';
  }
}

function intOpt(name: string, v: number | undefined, def: number, lo: number, hi: number): number {
  if (v === undefined) return def;
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name} must be an integer in ${lo}..${hi} (got ${v})`);
  return v;
}

export function openQueue(opts: QueueOptions): Queue {
  const addon = loadAddon();
  if (addon.INDEX_STRIDE !== INDEX_STRIDE) {
    throw new Error(`native addon INDEX_STRIDE ${addon.INDEX_STRIDE} != layout.ts ${INDEX_STRIDE}: rebuild the addon`);
  }
  const queue = intOpt('queue', opts.queue, 0, 0, 65535);
  const native = {
    queue,
    copyRange: intOpt('copyRange', opts.copyRange, 0xffff, 0, 0xffff),
    maxLen: intOpt('maxLen', opts.maxLen, 4096, 1, 0x7fffffff),
    batchSize: intOpt('batchSize', opts.batchSize, 64, 1, addon.MAX_BATCH),
    rcvbuf: intOpt('rcvbuf', opts.rcvbuf, 8 << 20, 0, 0x7fffffff),
    failOpen: !!opts.failOpen,
    gso: opts.gso ?? true,
  };
  const onBatch = opts.onBatch;
  const onError = opts.onError ?? ((err: unknown) => process.emitWarning(`nfqwall queue ${queue}: onBatch threw: ${String(err)}`));
  // The batch object exists before the native queue (packets may arrive as soon as it is bound).
  const batch = { queue, count: 0 } as { queue: number; count: number; data: Uint8Array; index: Uint32Array; verdicts: Uint32Array; marks: Uint32Array };
  let nq: NativeQueue;
  try {
    nq = new addon.NfqQueue(
      native,
      (count: number) => {
        batch.count = count;
        onBatch(batch);
      },
      onError,
    );
  } catch (err) {
    throw bindError(queue, err);
  }
  batch.data = nq.data;
  batch.index = nq.index;
  batch.verdicts = nq.verdicts;
  batch.marks = nq.marks;
  const q: Queue = {
    queue,
    portid: nq.portid,
    batch,
    get closed() {
      return nq.closed;
    },
    stats: () => ({ queue, ...nq.stats() }),
    close: () => nq.close(),
    debugStopPolling: () => nq.debugStopPolling(),
  };
  return q;
}

/** Lines of /proc/net/netfilter/nfnetlink_queue: queue portid qlen copy_mode copy_range queue_dropped user_dropped id_sequence 1 */
export interface KernelQueueInfo {
  queue: number;
  portid: number;
  qlen: number;
  copyMode: number;
  copyRange: number;
  queueDropped: number;
  userDropped: number;
  idSequence: number;
}

export function readKernelQueues(file = '/proc/net/netfilter/nfnetlink_queue'): KernelQueueInfo[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return parseKernelQueues(text);
}

/** The lines of /proc/net/netfilter/nfnetlink_queue's text (also as read inside another namespace). */
export function parseKernelQueues(text: string): KernelQueueInfo[] {
  const out: KernelQueueInfo[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 8 || f.some((x) => !Number.isFinite(x))) continue;
    out.push({ queue: f[0], portid: f[1], qlen: f[2], copyMode: f[3], copyRange: f[4], queueDropped: f[5], userDropped: f[6], idSequence: f[7] });
  }
  return out;
}

/** Finds the process holding the NETLINK_NETFILTER socket with this port id (same network namespace). */
export function findNetlinkOwner(portid: number): { pid?: number; comm?: string } {
  let inode: string | undefined;
  try {
    for (const line of fs.readFileSync('/proc/net/netlink', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
      if (f.length >= 10 && f[1] === '12' && Number(f[2]) === portid) inode = f[9];
    }
  } catch {
    /* not readable */
  }
  const target = inode ? `socket:[${inode}]` : undefined;
  let pids: string[] = [];
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return {};
  }
  const comm = (pid: string) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  if (target) {
    for (const pid of pids) {
      let fds: string[];
      try {
        fds = fs.readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        try {
          if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return { pid: Number(pid), comm: comm(pid) };
        } catch {
          /* gone */
        }
      }
    }
  }
  // The first netlink socket of a process gets its pid as port id.
  if (portid > 0 && fs.existsSync(`/proc/${portid}`)) return { pid: portid, comm: comm(String(portid)) };
  return {};
}

function bindError(queue: number, err: unknown): Error {
  const e = err as { code?: string; message?: string; syscall?: string };
  const code = e?.code ?? '';
  if (e?.syscall === 'bind queue' && (code === 'EPERM' || code === 'EBUSY' || code === 'EEXIST')) {
    // The kernel answers EPERM both for "no CAP_NET_ADMIN" and for "queue bound by another
    // port id"; EBUSY when it is bound by this same socket. The /proc table tells them apart.
    const owner = readKernelQueues().find((k) => k.queue === queue);
    if (owner || code !== 'EPERM') {
      const who = owner ? findNetlinkOwner(owner.portid) : {};
      const desc = owner ? ` (owner: netlink portid ${owner.portid}${who.pid ? `, pid ${who.pid}${who.comm ? ` ${who.comm}` : ''}` : ''})` : '';
      return new QueueBindError(
        `queue ${queue} is already bound by another process${desc}`,
        queue,
        'busy',
        code,
        owner ? { portid: owner.portid, ...who } : undefined,
      );
    }
    return new QueueBindError(`queue ${queue}: binding needs CAP_NET_ADMIN (${e.message})`, queue, 'permission', code);
  }
  if (code === 'EPERM' || code === 'EACCES') {
    return new QueueBindError(`queue ${queue}: opening the netfilter netlink socket needs CAP_NET_ADMIN (${e.message})`, queue, 'permission', code);
  }
  if (e && typeof e.message === 'string') {
    return new QueueBindError(`queue ${queue}: ${e.message}`, queue, 'other', code);
  }
  return err instanceof Error ? err : new Error(String(err));
}
