/** bitmap:port (ip_set_bitmap_port.c): TCP/UDP ports in range FROM-TO, either family. */
import { BitmapSet, tcpUdpPort, type BitmapSpec } from '../bitmap';
import { parsePortPart } from '../elements';
import { IpsetError, type SetType } from '../set';

const spec: BitmapSpec = {
  name: 'bitmap:port',
  revision: 3,
  packetIndex(set, ctx, src) {
    const p = tcpUdpPort(ctx, src);
    return p < set.opts.rangeFrom || p > set.opts.rangeTo ? -1 : p - set.opts.rangeFrom;
  },
  parse(set, elem) {
    const [proto, lo, hi] = parsePortPart(elem.includes(':') ? elem : `tcp:${elem}`, 4);
    if (proto !== 6 && proto !== 17) throw new IpsetError('Syntax error: bitmap:port takes TCP or UDP ports');
    if (lo < set.opts.rangeFrom || hi > set.opts.rangeTo) throw new IpsetError('Element is out of the range of the set');
    const out: number[] = [];
    for (let p = lo; p <= hi; p++) out.push(p - set.opts.rangeFrom);
    return out;
  },
  format: (set, i) => String(set.opts.rangeFrom + i),
  header: (set) => `range ${set.opts.rangeFrom}-${set.opts.rangeTo}`,
};

export const bitmapPort: SetType = {
  name: 'bitmap:port',
  createOptions: ['range'],
  families: [0],
  make(uid, name, opts, buffers) {
    if (opts.rangeFrom < 0) throw new IpsetError('Syntax error: Missing mandatory option: range');
    return new BitmapSet(spec, uid, name, { ...opts, family: 0 }, opts.rangeTo - opts.rangeFrom + 1, buffers as never);
  },
};
