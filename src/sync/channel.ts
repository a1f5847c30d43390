/**
 * The sync link: UDP datagrams to one peer (conntrackd's UDP channel) or to a multicast
 * group (its Multicast channel), and the datagrams received on the same port.
 */
import * as dgram from 'node:dgram';
import type { SyncConfig } from './config';

/** A sync link: how the service reaches the peer (SyncChannel; tests join two services directly). */
export interface SyncLink {
  open(): Promise<void>;
  send(datagram: Buffer): void;
  close(): void;
}

export type SyncLinkFactory = (onDatagram: (msg: Buffer) => void, onError: (err: Error) => void) => SyncLink;

export class SyncChannel implements SyncLink {
  private rx: dgram.Socket | undefined;
  private tx: dgram.Socket | undefined;
  private readonly dest: string;

  constructor(
    private readonly cfg: SyncConfig,
    private readonly onDatagram: (msg: Buffer) => void,
    private readonly onError: (err: Error) => void,
  ) {
    this.dest = cfg.transport === 'udp' ? cfg.peer : cfg.group;
  }

  private static bind(sock: dgram.Socket, port: number, address?: string): Promise<void> {
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, address, () => {
        sock.removeListener('error', reject);
        resolve();
      });
    });
  }

  async open(): Promise<void> {
    const { cfg } = this;
    const rx = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    this.rx = rx;
    if (cfg.transport === 'udp') {
      await SyncChannel.bind(rx, cfg.port, cfg.address);
      this.tx = rx;
    } else {
      // as conntrackd's multicast server: the group's port on every address, the group joined on
      // the interface of `address`; a separate sender whose own datagrams do not loop back
      await SyncChannel.bind(rx, cfg.port);
      rx.addMembership(cfg.group, cfg.address);
      const tx = dgram.createSocket({ type: 'udp4' });
      this.tx = tx;
      await SyncChannel.bind(tx, 0, cfg.address);
      tx.setMulticastInterface(cfg.address);
      tx.setMulticastLoopback(false);
      tx.on('error', (err) => this.onError(err));
    }
    rx.on('message', (msg) => this.onDatagram(msg));
    rx.on('error', (err) => this.onError(err));
  }

  send(datagram: Buffer): void {
    this.tx?.send(datagram, this.cfg.port, this.dest, (err) => {
      if (err) this.onError(err);
    });
  }

  close(): void {
    if (this.tx && this.tx !== this.rx) this.tx.close();
    this.rx?.close();
    this.rx = this.tx = undefined;
  }
}
