/** bitmap:ip (ip_set_bitmap_ip.c): IPv4 addresses in range FROM-TO (or a network), each netmask-sized block one element. */
import { formatIp4 } from '../../addr';
import { BITMAP_MAX, BitmapSet, type BitmapSpec } from '../bitmap';
import { parseIpPart } from '../elements';
import { IpsetError, type SetType } from '../set';

const hosts = (netmask: number): number => 2 ** (32 - (netmask < 0 ? 32 : netmask));

const spec: BitmapSpec = {
  name: 'bitmap:ip',
  revision: 3,
  packetIndex(set, ctx, src) {
    if (ctx.family !== 4) return -1;
    const a = (src ? ctx.view.src : ctx.view.dst)[0];
    const o = set.opts;
    if (a < o.rangeFrom || a > o.rangeTo) return -1;
    return Math.floor((a - o.rangeFrom) / hosts(o.netmask));
  },
  parse(set, elem) {
    const o = set.opts;
    const list = parseIpPart(elem, 4, o.netmask, BITMAP_MAX);
    for (const a of list) if (a[0] < o.rangeFrom || a[0] > o.rangeTo) throw new IpsetError('Element is out of the range of the set');
    return list.map((a) => Math.floor((a[0] - o.rangeFrom) / hosts(o.netmask)));
  },
  format: (set, i) => formatIp4(set.opts.rangeFrom + i * hosts(set.opts.netmask)),
  header: (set) => `range ${formatIp4(set.opts.rangeFrom)}-${formatIp4(set.opts.rangeTo)}${set.opts.netmask >= 0 ? ` netmask ${set.opts.netmask}` : ''}`,
};

export const bitmapIp: SetType = {
  name: 'bitmap:ip',
  createOptions: ['range', 'netmask'],
  families: [4],
  make(uid, name, opts, buffers) {
    if (opts.rangeFrom < 0) throw new IpsetError('Syntax error: Missing mandatory option: range');
    if (opts.family === 6) throw new IpsetError('Syntax error: bitmap:ip supports family inet only');
    const h = hosts(opts.netmask);
    const from = opts.rangeFrom - (opts.rangeFrom % h);
    const to = opts.rangeTo - (opts.rangeTo % h) + h - 1;
    const size = (to - from + 1) / h;
    if (size > BITMAP_MAX) throw new IpsetError('The range you specified exceeds the size limit of the set type');
    return new BitmapSet(spec, uid, name, { ...opts, family: 4, rangeFrom: from, rangeTo: to }, size, buffers as never);
  },
};
