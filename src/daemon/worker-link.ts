/**
 * The main thread's end of one worker thread (src/daemon/worker.ts has the other): requests
 * by id, streamed lines relayed chunk by chunk (the worker waits for each ack), and the
 * close handshake.
 */
import type { Worker } from 'node:worker_threads';
import type { QueueStats } from '../queue/queue';
import type { RejectSocket, RejectTransport } from '../rules/targets/REJECT';

type Res = Record<string, unknown>;

interface Pending {
  onLines?: (lines: string[]) => Promise<void>;
  resolve: (r: Res) => void;
}

export class WorkerHandle {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  portid = 0;
  closedStats: QueueStats | undefined;
  /** the thread has exited: nothing is asked of it any more */
  dead = false;
  private onClosed: (() => void) | undefined;

  constructor(
    readonly index: number,
    readonly queue: number,
    readonly worker: Worker,
    /** sends the REJECT replies the worker hands over */
    reject: RejectTransport,
  ) {
    type Msg = { t: string; id?: number; lines?: string[]; res?: Res; stats?: QueueStats; socket?: RejectSocket; bytes?: Uint8Array; dst?: string };
    worker.on('message', (m: Msg) => {
      if (m.t === 'reject') reject.send(m.socket!, m.bytes!, 0, m.bytes!.length, m.dst!);
      else if (m.t === 'lines') void this.relay(m.id!, m.lines!);
      else if (m.t === 'done') {
        const p = this.pending.get(m.id!);
        this.pending.delete(m.id!);
        p?.resolve(m.res!);
      } else if (m.t === 'closed') {
        this.closedStats = m.stats;
        this.onClosed?.();
      }
    });
  }

  private async relay(id: number, lines: string[]): Promise<void> {
    const p = this.pending.get(id);
    let abort = false;
    try {
      if (p?.onLines) await p.onLines(lines);
    } catch {
      abort = true;
    }
    this.worker.postMessage({ t: 'ack', id, abort });
  }

  /** One request; streamed lines go to onLines (the worker waits for each chunk to be taken). */
  request(req: Res, onLines?: (lines: string[]) => Promise<void>): Promise<Res> {
    if (this.dead) return Promise.resolve({ ok: false, error: `the worker thread of queue ${this.queue} is gone` });
    const id = this.nextId++;
    return new Promise<Res>((resolve) => {
      this.pending.set(id, { onLines, resolve });
      this.worker.postMessage({ t: 'req', id, req });
    });
  }

  /** Fails what is still waiting (the worker is gone). */
  failAll(why: string): void {
    this.dead = true;
    for (const p of this.pending.values()) p.resolve({ ok: false, error: why });
    this.pending.clear();
    this.onClosed?.();
  }

  close(): Promise<void> {
    if (this.closedStats || this.dead) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.onClosed = resolve;
      this.worker.postMessage({ t: 'close' });
    });
  }
}
