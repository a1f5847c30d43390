/**
 * The daemon's side of -j NFLOG (src/rules/targets/NFLOG.ts): the readers of each group
 * (`nfqwall nflog --group N`, a control request that streams until the reader goes away) and
 * the rings the packet threads write (src/rules/nflog-ring.ts: the main thread's own with one
 * queue, one per worker thread with --queues), drained here every POLL_MS while a reader
 * exists. A reader's backlog is bounded (MAX_BACKLOG records, MAX_BACKLOG_CHARS): what a slow reader cannot take
 * is dropped and counted, as are records a full ring could not hold; the reader gets the counts
 * ("D N" lines) before the next record. One per daemon process (the main thread).
 *
 * A record line: `P TS_MS GROUP FAMILY HOOK IN OUT INDEV OUTDEV LEN MARK PREFIX_B64 DATA_B64`,
 * IN/OUT the interface names ("-" for none).
 */
import { ControlAborted, type ControlOutput, type Res } from './table-ops';
import { newListenerTable, NflogRing, type NflogRecord } from '../rules/nflog-ring';
import { sysIfnames } from '../rules/ifname';

export const POLL_MS = 10;
export const MAX_BACKLOG = 8192;
/** and at most this many characters of lines (64 KiB packets are 87 KiB of base64 each) */
export const MAX_BACKLOG_CHARS = 16 * 1024 * 1024;
const LINES_PER_SEND = 256;

interface Reader {
  group: number;
  out: ControlOutput;
  backlog: string[];
  /** characters in backlog */
  chars: number;
  dropped: number;
  wake: (() => void) | null;
}

/** An upper bound of a record's line length, known before the line is made. */
const REC_CHARS_MAX = (rec: NflogRecord) => 200 + Math.ceil((rec.data.length + rec.prefix.length * 3) / 3) * 4;

export class NflogHub {
  /** readers per group, shared with every packet thread */
  readonly listeners = newListenerTable();
  private readonly count = new Int32Array(this.listeners);
  private readonly rings: { ring: NflogRing; dropped: number }[] = [];
  private readonly readers = new Set<Reader>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ifname: (ifindex: number) => string | undefined = () => undefined) {}

  /** A ring for one packet thread. */
  newRing(): NflogRing {
    const ring = new NflogRing();
    this.rings.push({ ring, dropped: 0 });
    return ring;
  }

  /** Streams the group's records to out until its reader goes away (or the hub closes). */
  async subscribe(group: number, out: ControlOutput): Promise<Res> {
    if (!Number.isInteger(group) || group < 0 || group > 65535) throw new Error('nflog: the group must be 0..65535');
    const r: Reader = { group, out, backlog: [], chars: 0, dropped: 0, wake: null };
    if (this.readers.size === 0) {
      // what the rings hold is from before anyone read them
      for (const e of this.rings) {
        e.ring.drain(() => {});
        e.dropped = e.ring.dropped;
      }
    }
    this.readers.add(r);
    Atomics.add(this.count, group, 1);
    if (!this.timer) {
      this.timer = setInterval(() => this.poll(), POLL_MS);
      this.timer.unref();
    }
    try {
      // the first line says the reader is in place: records from here on reach it
      await out.sendLines(['S']);
      while (out.alive && this.readers.has(r)) {
        if (r.backlog.length === 0 && r.dropped === 0) {
          await new Promise<void>((w) => (r.wake = w));
          r.wake = null;
          continue;
        }
        const lines = r.dropped !== 0 ? [`D ${r.dropped}`] : [];
        r.dropped = 0;
        const taken = r.backlog.splice(0, LINES_PER_SEND);
        for (const l of taken) r.chars -= l.length;
        lines.push(...taken);
        await out.sendLines(lines);
      }
    } catch (err) {
      if (!(err instanceof ControlAborted)) throw err;
    } finally {
      this.leave(r);
    }
    // still connected: the hub closed (the daemon stops)
    return out.alive ? { ok: true, stopped: true } : { ok: false, error: 'aborted' };
  }

  /** Drains every ring once (the timer's work; tests call it). */
  poll(): void {
    for (const rd of this.readers) if (!rd.out.alive) this.leave(rd);
    for (const e of this.rings) {
      e.ring.drain((rec) => this.deliver(rec));
      const d = e.ring.dropped;
      if (d !== e.dropped) {
        for (const rd of this.readers) rd.dropped += (d - e.dropped) >>> 0;
        e.dropped = d;
      }
    }
    for (const rd of this.readers) if (rd.wake && (rd.backlog.length > 0 || rd.dropped > 0)) rd.wake();
  }

  /** Ends every reader (the daemon stops). */
  close(): void {
    for (const rd of [...this.readers]) this.leave(rd);
  }

  private deliver(rec: NflogRecord): void {
    let line: string | undefined;
    for (const rd of this.readers) {
      if (rd.group !== rec.group) continue;
      if (rd.backlog.length >= MAX_BACKLOG || rd.chars + REC_CHARS_MAX(rec) > MAX_BACKLOG_CHARS) {
        rd.dropped++;
        continue;
      }
      line ??= [
        'P',
        rec.tsMs,
        rec.group,
        rec.family,
        rec.hook,
        (rec.indev && this.ifname(rec.indev)) || '-',
        (rec.outdev && this.ifname(rec.outdev)) || '-',
        rec.indev,
        rec.outdev,
        rec.len,
        rec.mark,
        Buffer.from(rec.prefix).toString('base64') || '-',
        Buffer.from(rec.data).toString('base64') || '-',
      ].join(' ');
      rd.backlog.push(line);
      rd.chars += line.length;
    }
  }

  private leave(r: Reader): void {
    if (!this.readers.delete(r)) return;
    Atomics.sub(this.count, r.group, 1);
    r.wake?.();
    if (this.readers.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

/** This process's hub (the daemon's main thread). */
export const nflogHub = new NflogHub(sysIfnames().ifname);
