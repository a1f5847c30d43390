/**
 * State sync with a peer in conntrackd's NOTRACK mode (conntrack-tools src/sync-notrack.c): the
 * table's changes are sent as they happen (NEW when an entry is confirmed, UPD when its state
 * or SEEN_REPLY/ASSURED changes, DEL when it goes), without acknowledgement; an ALIVE control
 * message goes out after each idle second; a RESYNC request is answered with the whole table.
 * What the peer sends goes into the external cache (external-cache.ts), never the live table,
 * until a commit.
 *
 * The per-packet path only records events (event-queue.ts); messages are built and sent from
 * the event loop (a 10 ms timer), several per datagram up to the link's MTU as conntrackd does.
 */
import { IPS_NAT_MASK } from '../conntrack/constants';
import type { Conntrack } from '../conntrack/core';
import { T_DST, T_META, T_PORTS, T_SRC, TUPLE_WORDS } from '../conntrack/layout';
import type { TcpTracker } from '../conntrack/proto/tcp';
import { IPPROTO_TCP, IPPROTO_UDP } from '../packet/view';
import { parseIpv4Text } from '../packet/format';
import { SyncChannel, type SyncLink, type SyncLinkFactory } from './channel';
import type { SyncConfig } from './config';
import { decodeConn, encodeConn, newSyncConn, syncsProto } from './conn-msg';
import { EV_CREATED, SyncEventQueue } from './event-queue';
import { ExternalCache, type CommitResult } from './external-cache';
import {
  CONNTRACKD_PROTOCOL_VERSION,
  NET_F_ALIVE,
  NET_F_RESYNC,
  NET_T_CTL,
  NET_T_STATE_CT_DEL,
  NET_T_STATE_CT_NEW,
  NET_T_STATE_CT_UPD,
  isCtl,
  isData,
  newHeader,
  readHeader,
  writeCtl,
} from './nethdr';
import { connFromEntry } from './table-conn';

/** IP and UDP headers: a datagram's messages fit in the MTU less these (conntrackd's HEADERSIZ) */
const HEADERSIZ = 28;
const MTU = 1500;
/** room a message may need (encodeConn writes at most this much) */
const MSG_MAX = 256;
const FLUSH_MS = 10;
const ALIVE_MS = 1000;

export interface SyncLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface SyncStats {
  msgSent: number;
  msgReceived: number;
  /** messages the sequence numbers say never arrived */
  msgLost: number;
  malformed: number;
  /** expectation messages received (not kept: nfqwall does not sync expectations yet) */
  expectIgnored: number;
  resyncRequestsSent: number;
  resyncRequestsReceived: number;
  /** whole-table sends (a RESYNC request answered, a commit, an overrun of the event queue) */
  bulkSends: number;
  overruns: number;
  committed: number;
  commitFailed: number;
  peerUp: boolean;
  peerLosses: number;
  /** ms since the peer was last heard, -1 never */
  peerSilentMs: number;
  externalEntries: number;
}

export class SyncService {
  readonly cache = new ExternalCache();
  private readonly queue: SyncEventQueue;
  private readonly channel: SyncLink;
  private readonly tx = Buffer.alloc(MTU - HEADERSIZ + MSG_MAX);
  private txLen = 0;
  private seq = 0;
  private seqSet = false;
  private lastSent = -Infinity;
  private lastRx = -1;
  private rxSeq = -1;
  private peerUp = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly conn = newSyncConn();
  private readonly rxConn = newSyncConn();
  private readonly hdr = newHeader();
  private readonly tuple = new Uint32Array(TUPLE_WORDS);
  /** the sync link's addresses: ours, the peer's or the group */
  private readonly syncAddrs: number[];
  private readonly counters = {
    msgSent: 0,
    msgReceived: 0,
    msgLost: 0,
    malformed: 0,
    expectIgnored: 0,
    resyncRequestsSent: 0,
    resyncRequestsReceived: 0,
    bulkSends: 0,
    overruns: 0,
    committed: 0,
    commitFailed: 0,
    peerLosses: 0,
  };

  constructor(
    private readonly cfg: SyncConfig,
    private readonly ct: Conntrack,
    private readonly log: SyncLog,
    private readonly now: () => number = () => performance.now(),
    link?: SyncLinkFactory,
  ) {
    this.queue = new SyncEventQueue(ct.table, ct.tracker(IPPROTO_TCP) as TcpTracker);
    const onDatagram = (m: Buffer) => this.receive(m);
    const onError = (err: Error) => this.log.warn({ err }, `sync: ${err.message}`);
    this.channel = link ? link(onDatagram, onError) : new SyncChannel(cfg, onDatagram, onError);
    this.syncAddrs = [cfg.address, cfg.peer, cfg.group].filter((a) => a !== '').map(parseIpv4Text);
  }

  /** Opens the link, starts listening to the table and asks the peer for its table. */
  async start(): Promise<void> {
    await this.channel.open();
    this.ct.events = this.queue;
    this.timer = setInterval(() => this.tick(), FLUSH_MS);
    this.timer.unref();
    this.requestResync();
    const c = this.cfg;
    this.log.info({ transport: c.transport, address: c.address, peer: c.peer || c.group, port: c.port, mode: c.mode }, 'sync started');
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.ct.events === this.queue) this.ct.events = undefined;
    this.flush();
    this.channel.close();
  }

  // ------------------------------------------------------------------ sending

  private nextSeq(): number {
    if (!this.seqSet) {
      // nethdr_set: the first sequence number is the time
      this.seq = Math.floor(Date.now() / 1000) >>> 0;
      this.seqSet = true;
    }
    const s = this.seq;
    this.seq = (this.seq + 1) >>> 0;
    return s;
  }

  private room(): void {
    if (this.txLen > MTU - HEADERSIZ - MSG_MAX) this.sendPending();
  }

  private sendPending(): void {
    if (this.txLen === 0) return;
    this.channel.send(Buffer.from(this.tx.subarray(0, this.txLen)));
    this.txLen = 0;
    this.lastSent = this.now();
  }

  private ctl(flags: number): void {
    this.room();
    this.txLen += writeCtl(this.tx, this.txLen, flags, this.nextSeq());
    this.counters.msgSent++;
  }

  /** Entries not sent: protocols whose tuple the messages cannot carry, loopback, the sync flow itself. */
  private syncable(t: Uint32Array): boolean {
    const proto = t[T_META] & 0xff;
    if (!syncsProto(proto)) return false;
    if (t[T_META] >>> 8 === 4) {
      if (t[T_SRC] >>> 24 === 127) return false;
      // the sync flows themselves, ours and the peer's (to us, to the group)
      if (proto === IPPROTO_UDP && (this.syncAddrs.includes(t[T_SRC]) || this.syncAddrs.includes(t[T_DST]))) {
        const p = t[T_PORTS];
        if (p >>> 16 === this.cfg.port || (p & 0xffff) === this.cfg.port) return false;
      }
    } else if (t[T_SRC] === 0 && t[T_SRC + 1] === 0 && t[T_SRC + 2] === 0 && t[T_SRC + 3] === 1) return false;
    return true;
  }

  private sendEntry(type: number, e: number): void {
    const c = this.conn;
    connFromEntry(this.ct, e, this.now(), this.cfg.windowTracking, c);
    // NATed entries would need their NAT attributes, which are not sent yet: not sent at all
    if (!this.syncable(c.tuple) || (c.status & IPS_NAT_MASK) !== 0) return;
    this.room();
    this.txLen += encodeConn(this.tx, this.txLen, type, this.nextSeq(), c);
    this.counters.msgSent++;
  }

  private readonly sendLive = (kind: number, e: number): void => {
    this.sendEntry(kind === EV_CREATED ? NET_T_STATE_CT_NEW : NET_T_STATE_CT_UPD, e);
  };

  private readonly sendGone = (tuple: Uint32Array, status: number, tcpState: number, mark: number): void => {
    if (!this.syncable(tuple) || (status & IPS_NAT_MASK) !== 0) return;
    const c = this.conn;
    c.tuple.set(tuple);
    c.status = status;
    c.tcpState = (tuple[T_META] & 0xff) === IPPROTO_TCP ? tcpState : -1;
    c.wscaleOrig = c.wscaleRepl = -1;
    c.timeout = 0;
    c.mark = mark;
    c.helper = '';
    c.master = c.snat = c.dnat = null;
    c.spat = c.dpat = -1;
    this.room();
    this.txLen += encodeConn(this.tx, this.txLen, NET_T_STATE_CT_DEL, this.nextSeq(), c);
    this.counters.msgSent++;
  };

  /** Sends what the table did since the last flush. */
  flush(): void {
    const q = this.queue;
    if (q.overrun) {
      this.counters.overruns++;
      this.log.warn({}, 'sync: the event queue overran; sending the whole table');
      this.bulk();
      return;
    }
    while (q.shift(this.sendLive, this.sendGone, this.tuple));
    this.sendPending();
  }

  private tick(): void {
    this.flush();
    const now = this.now();
    if (now - this.lastSent >= ALIVE_MS) {
      this.ctl(NET_F_ALIVE);
      this.sendPending();
    }
    if (this.peerUp && now - this.lastRx > this.cfg.peerTimeoutSec * 1000) {
      this.peerUp = false;
      this.counters.peerLosses++;
      this.log.warn({ silentMs: Math.round(now - this.lastRx) }, `sync peer lost: nothing heard for ${this.cfg.peerTimeoutSec} s`);
    }
  }

  /** Sends every entry of the table as NEW (conntrackd -B, and the answer to a RESYNC request). */
  bulk(): number {
    this.queue.clear();
    let n = 0;
    this.ct.forEach((e) => {
      this.sendEntry(NET_T_STATE_CT_NEW, e);
      n++;
    }, this.now());
    this.sendPending();
    this.counters.bulkSends++;
    return n;
  }

  /** Asks the peer for its whole table (conntrackd -n). */
  requestResync(): void {
    this.ctl(NET_F_RESYNC);
    this.sendPending();
    this.counters.resyncRequestsSent++;
  }

  // ------------------------------------------------------------------ receiving

  /** One datagram from the peer (public for tests). */
  receive(d: Buffer): void {
    const h = this.hdr;
    const now = this.now();
    for (let off = 0; off < d.length;) {
      if (!readHeader(d, off, d.length - off, h)) {
        this.counters.malformed++;
        break;
      }
      off += h.len;
      if (h.version !== CONNTRACKD_PROTOCOL_VERSION) {
        this.counters.malformed++;
        continue;
      }
      this.heard(now, h.seq);
      if (isData(h)) this.receiveState(d, off - h.len, now);
      else if (isCtl(h, NET_F_RESYNC)) {
        this.counters.resyncRequestsReceived++;
        this.log.info({}, 'sync: the peer asked for a resync; sending the table');
        this.bulk();
      } else if (h.type !== NET_T_CTL) this.counters.malformed++;
    }
  }

  private heard(now: number, seq: number): void {
    this.counters.msgReceived++;
    // nethdr_track_seq: a gap is counted lost; NOTRACK does nothing else about it
    if (this.rxSeq >= 0 && seq !== (this.rxSeq + 1) >>> 0) {
      const gap = (seq - this.rxSeq - 1) | 0;
      if (gap > 0) this.counters.msgLost += gap;
    }
    this.rxSeq = seq;
    this.lastRx = now;
    if (!this.peerUp) {
      this.peerUp = true;
      this.log.info({}, this.counters.peerLosses > 0 ? 'sync peer back' : 'sync peer up');
    }
  }

  private receiveState(d: Buffer, off: number, now: number): void {
    const h = this.hdr;
    if (h.type > NET_T_STATE_CT_DEL) {
      this.counters.expectIgnored++;
      return;
    }
    const why = decodeConn(d, off, h.len, this.rxConn);
    if (why !== null) {
      this.counters.malformed++;
      return;
    }
    this.cache.apply(h.type, this.rxConn, now);
  }

  // ------------------------------------------------------------------ roles

  /**
   * Promotion: the external cache becomes live entries, at once, between two batches (so
   * before the next packet of any of them is decided), the cache is emptied and the table sent
   * to the peer — conntrackd -c, -f, -R, -B of primary-backup.sh's "primary".
   */
  commit(): CommitResult {
    const r = this.cache.commit(this.ct, this.now());
    this.counters.committed += r.committed;
    this.counters.commitFailed += r.failed;
    this.log.info({ committed: r.committed, failed: r.failed, reasons: r.reasons }, 'sync: external cache committed');
    this.bulk();
    return r;
  }

  /**
   * Demotion: every live entry moves into the external cache (the peer owns them now) and
   * leaves the table without a DEL to the peer; then the peer is asked for its table.
   */
  demote(): number {
    const ct = this.ct;
    const now = this.now();
    const c = this.conn;
    const ids: number[] = [];
    ct.forEach((e) => ids.push(e), now);
    ct.events = undefined;
    try {
      for (const e of ids) {
        connFromEntry(ct, e, now, true, c);
        if (this.syncable(c.tuple)) this.cache.apply(NET_T_STATE_CT_NEW, c, now);
        ct.destroy(e);
      }
    } finally {
      ct.events = this.queue;
    }
    this.log.info({ moved: ids.length }, 'sync: table flushed into the external cache');
    this.requestResync();
    return ids.length;
  }

  stats(): SyncStats {
    return {
      ...this.counters,
      peerUp: this.peerUp,
      peerSilentMs: this.lastRx < 0 ? -1 : Math.round(this.now() - this.lastRx),
      externalEntries: this.cache.size,
    };
  }
}
