/** `conntrack -L/-D -m MARK[/MASK]`: conntrack-tools' parse_u32_mask and mark_cmp ((mark & mask) == value). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Firewall } from '../../../src/pipeline/firewall';
import { loadRuleText } from '../../../src/pipeline/load-rules';
import { defaultTunables } from '../../../src/conntrack/sysctl';
import { compileFilter } from '../../../src/daemon/control';
import { parseConntrackArgs } from '../../../src/cli/conntrack';
import { NF_INET_FORWARD } from '../../../src/queue/layout';
import { ipv4, udp } from '../../helpers/packets';

test('conntrack -m: MARK or MARK/MASK in base 0, anything else refused', () => {
  const f = (v: string) => parseConntrackArgs(['-L', '-m', v]).filter;
  assert.deepEqual(f('5'), { mark: 5, markMask: 0xffffffff });
  assert.deepEqual(f('0x10/0xf0'), { mark: 0x10, markMask: 0xf0 });
  assert.deepEqual(f('010/0x0'), { mark: 8, markMask: 0 });
  assert.deepEqual(parseConntrackArgs(['-D', '--mark=0xffffffff']).filter, { mark: 0xffffffff, markMask: 0xffffffff });
  for (const bad of ['x', '1/', '0x100000000', '1/2/3', '/1']) assert.throws(() => f(bad), /unexpected value '.*' with -m option/, bad);
});

test('conntrack -m filter: entries whose mark & MASK equals MARK (a MARK outside MASK matches nothing)', () => {
  const r = loadRuleText('*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n', 't.rules', { log: () => {}, reject: () => {} } as never);
  const tun = { ...defaultTunables(16 * 1024 ** 3), nf_conntrack_buckets: 64, nf_conntrack_max: 64 };
  const fw = new Firewall({ tun, rules: r.rules! });
  const marks = [0, 0x1, 0x11, 0x21, 0xff00];
  const ids = marks.map((m, i) => {
    const p = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 1000 + i, dport: 53 }));
    fw.decide(p, 0, p.length, p.length, NF_INET_FORWARD, 4, 0, 0, 0, 0, 1000);
    fw.ct.setMark(fw.ctx.entry, m);
    return fw.ctx.entry;
  });
  const sel = (mark: number, markMask?: number) => {
    const f = compileFilter(fw.ct, { mark, markMask });
    return ids.filter((e) => f(e)).map((e) => marks[ids.indexOf(e)]);
  };
  assert.deepEqual(sel(0x11), [0x11]);
  assert.deepEqual(sel(0x1, 0xf), [0x1, 0x11, 0x21]);
  assert.deepEqual(sel(0x0, 0xff), [0, 0xff00]);
  assert.deepEqual(sel(0x11, 0x1), [], 'value not masked, as mark_cmp');
  assert.deepEqual(sel(0, 0), marks);
  assert.throws(() => compileFilter(fw.ct, { mark: 1, markMask: -1 }), /bad mark mask/);
});
