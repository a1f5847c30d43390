// Shared helpers for the packet unit tests (not a test file itself).
import { parsePacket } from '../../../src/packet/parse';
import { PacketView } from '../../../src/packet/view';

/** Parses a fresh copy of pkt at offset 0 in a new view. */
export function parse(pkt: Uint8Array, family?: number): PacketView {
  const v = new PacketView();
  parsePacket(pkt, 0, pkt.length, v, family);
  return v;
}

/** Every field of the view except the buffer, as plain values (typed arrays copied to arrays). */
export function snapshot(v: PacketView): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v) as Array<keyof PacketView>) {
    if (k === 'buf') continue;
    const x = v[k] as unknown;
    out[k] = x instanceof Uint32Array ? Array.from(x) : x;
  }
  return out;
}

/** The snapshot with offsets made relative to v.off, to compare parses at different offsets. */
export function relSnapshot(v: PacketView): Record<string, unknown> {
  const s = snapshot(v);
  const base = v.off;
  s.off = 0;
  for (const k of ['l4off', 'payloadOff']) if ((s[k] as number) !== 0) s[k] = (s[k] as number) - base;
  return s;
}

export function words(...w: number[]): number[] {
  while (w.length < 4) w.push(0);
  return w;
}
