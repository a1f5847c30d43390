/**
 * ipset: the command syntax and the save format (src/rules/sets/command.ts), each set type's
 * matching of packets with fake time (timeouts, nomatch, counters), -m set and -j SET with
 * their options round trip through the iptables-save format, and the refusals.
 */
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { icmp, ipv4, ipv6, tcp, udp } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D } from '../../../../src/queue/layout';
import { runIpset } from '../../../../src/rules/sets/command';
import { resetIpsets } from '../../../../src/rules/sets/registry';
import { setClockBase } from '../../../../src/rules/sets/clock';

setClockBase(0);
beforeEach(() => resetIpsets());

const ok = (line: string, now = 0, stdin = ''): string[] => {
  const r = runIpset(line.split(' '), now, stdin);
  assert.equal(r.status, 0, `${line}: ${r.err}`);
  return r.out;
};
const fails = (line: string, status: number, msg: RegExp, now = 0): void => {
  const r = runIpset(line.split(' '), now);
  assert.equal(r.status, status, `${line}: expected exit ${status}, got ${r.status} (${r.err})`);
  assert.match(r.err ?? '', msg);
};

const tcp4 = (src: string, dst: string, dport = 80, sport = 40000) => ctxFor(ipv4({ src, dst }, tcp({ sport, dport, flags: 'S' })));
const udp4 = (src: string, dst: string, dport = 53) => ctxFor(ipv4({ src, dst }, udp({ sport: 40000, dport })));
const tcp6 = (src: string, dst: string, dport = 80) => ctxFor(ipv6({ src, dst }, tcp({ sport: 40000, dport, flags: 'S' })));

test('ipset: what fail2ban runs, and ipset save as the kernel prints it', () => {
  ok('create f2b-sshd hash:ip timeout 600 -exist');
  ok('create f2b-sshd hash:ip timeout 600 -exist');
  fails('create f2b-sshd hash:ip timeout 600', 1, /^Set cannot be created: set with the same name already exists$/);
  ok('add f2b-sshd 198.18.0.9 timeout 600 -exist', 1000);
  ok('add f2b-sshd 198.18.0.9 timeout 600 -exist', 1000);
  fails('add f2b-sshd 198.18.0.9', 1, /it's already added/, 2000);
  assert.deepEqual(ok('save', 1500), [
    'create f2b-sshd hash:ip family inet hashsize 1024 maxelem 65536 timeout 600 bucketsize 12',
    'add f2b-sshd 198.18.0.9 timeout 599',
  ]);
  ok('del f2b-sshd 198.18.0.9');
  fails('del f2b-sshd 198.18.0.9', 1, /it's not added/);
  ok('-exist del f2b-sshd 198.18.0.9');
  fails('test f2b-sshd 198.18.0.9', 1, /198.18.0.9 is NOT in set f2b-sshd\./);
  ok('add f2b-sshd 198.18.0.10');
  assert.equal(runIpset(['test', 'f2b-sshd', '198.18.0.10'], 0).err, 'Warning: 198.18.0.10 is in set f2b-sshd.');
  ok('flush f2b-sshd');
  assert.deepEqual(ok('list f2b-sshd').slice(-2), ['Number of entries: 0', 'Members:']);
  ok('destroy f2b-sshd');
  fails('list f2b-sshd', 1, /^The set with the given name does not exist$/);
  fails('bogus', 2, /unknown argument bogus/);
  fails('create x hash:ip bogus', 2, /Unknown argument: `bogus'/);
  ok('create x hash:ip');
  fails('add x 1.2.3.4 timeout 5', 1, /^Timeout cannot be used: set was created without timeout support$/);
  fails('add x foo', 1, /cannot parse foo/);
  fails('create y hash:net,iface', 1, /not supported by nfqwall/);
});

test('ipset save | ipset restore gives the same sets back (every type, extensions, list:set last)', () => {
  const lines = [
    'create n hash:net family inet6 hashsize 1024 maxelem 65536 counters comment bucketsize 12',
    'add n 2001:2::/64 packets 3 bytes 300 comment "hi there"',
    'add n 2001:2:0:1::/64 nomatch packets 0 bytes 0',
    'create ipp hash:ip,port family inet hashsize 64 maxelem 100 bucketsize 12',
    'add ipp 198.18.0.1,tcp:80',
    'add ipp 198.18.0.1,udp:53',
    'add ipp 198.18.0.2,icmp:echo-request',
    'add ipp 198.18.0.3,gre:0',
    'create np hash:net,port family inet hashsize 1024 maxelem 65536 bucketsize 12',
    'add np 198.18.0.0/24,sctp:22',
    'create ipi hash:ip,port,ip family inet hashsize 1024 maxelem 65536 bucketsize 12',
    'add ipi 198.18.0.1,tcp:80,198.18.0.2',
    'create ipn hash:ip,port,net family inet hashsize 1024 maxelem 65536 bucketsize 12',
    'add ipn 198.18.0.1,tcp:80,198.18.1.0/24',
    'create bp bitmap:port range 1000-2000 timeout 30',
    'add bp 1500 timeout 29',
    'create bi bitmap:ip range 198.18.0.0-198.18.0.255 counters',
    'add bi 198.18.0.5 packets 5 bytes 100',
    'create hn hash:ip family inet hashsize 1024 maxelem 65536 netmask 24 bucketsize 12',
    'add hn 198.18.5.0',
    'create ls list:set size 8',
    'add ls ipp',
    'add ls hn',
  ];
  ok('restore', 0, lines.join('\n') + '\n');
  const saved = ok('save', 0);
  assert.deepEqual(
    saved.filter((l) => l.startsWith('create')),
    lines.filter((l) => l.startsWith('create')),
  );
  assert.deepEqual([...saved].sort(), [...lines].sort());
  resetIpsets();
  ok('restore', 0, saved.join('\n'));
  assert.deepEqual(ok('save', 0), saved);
  // the restore stops at the first bad line, the lines before it applied
  resetIpsets();
  const r = runIpset(['restore'], 0, 'create c hash:ip\nadd c 198.18.0.1\nadd c 198.18.0.1\nadd c 198.18.0.2\n');
  assert.equal(r.status, 1);
  assert.equal(r.err, "Error in line 3: Element cannot be added to the set: it's already added");
  assert.deepEqual(ok('save c'), ['create c hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12', 'add c 198.18.0.1']);
});

test('ranges, networks and port ranges are expanded as the kernel does', () => {
  ok('create a hash:ip');
  ok('add a 198.18.0.0/30');
  ok('add a 198.18.1.1-198.18.1.2');
  assert.equal(ok('list a').filter((l) => l.startsWith('198.')).length, 6);
  ok('create p hash:ip,port');
  ok('add p 198.18.0.1,tcp:80-82');
  assert.deepEqual(ok('save p').slice(1), ['add p 198.18.0.1,tcp:80', 'add p 198.18.0.1,tcp:81', 'add p 198.18.0.1,tcp:82']);
  ok('create n hash:net');
  ok('add n 198.18.0.1-198.18.0.6');
  assert.deepEqual(ok('save n').slice(1), ['add n 198.18.0.1/32', 'add n 198.18.0.2/31', 'add n 198.18.0.4/31', 'add n 198.18.0.6/32']);
  fails('add n 198.18.0.0/0', 1, /CIDR/);
});

test('-m set: hash:ip with timeouts (fake time), src/dst, ! and IPv6', () => {
  ok('create bl hash:ip timeout 10');
  ok('create bl6 hash:ip family inet6');
  const { engine } = engineFor(forward('-m set --match-set bl src -j DROP', '-m set ! --match-set bl6 dst -j DROP', '-j ACCEPT'));
  const v = (ctx: ReturnType<typeof tcp4>, now: number) => engine.evalFilter(ctx, now);
  assert.equal(v(tcp4('198.18.0.9', '198.19.0.1'), 0), D, 'IPv4 is not in bl6: ! --match-set bl6 matches');
  ok('add bl6 2001:2::2');
  assert.equal(v(tcp6('2001:2::1', '2001:2::2'), 0), A);
  assert.equal(v(tcp6('2001:2::1', '2001:2::3'), 0), D);
  fails('add bl6 198.18.0.1', 1, /IPv6 address failed/);
  ok('create ok4 hash:ip');
  const e2 = engineFor(forward('-m set --match-set bl src -j DROP', '-j ACCEPT')).engine;
  ok('add bl 198.18.0.9', 1000);
  assert.equal(e2.evalFilter(tcp4('198.18.0.9', '198.19.0.1'), 1000), D);
  assert.equal(e2.evalFilter(tcp4('198.19.0.1', '198.18.0.9'), 1000), A, 'dst is not looked up');
  assert.equal(e2.evalFilter(tcp4('198.18.0.9', '198.19.0.1'), 11_000), D, 'expires when 10 s have passed, not at');
  assert.equal(e2.evalFilter(tcp4('198.18.0.9', '198.19.0.1'), 11_001), A, 'expired');
  ok('add bl 198.18.0.9 timeout 0', 20_000);
  assert.equal(e2.evalFilter(tcp4('198.18.0.9', '198.19.0.1'), 1e9), D, 'timeout 0: permanent');
  assert.match(ok('save bl', 1e9)[1], / timeout 0$/);
});

test('hash:net: the most specific network decides, nomatch carves an exception; --return-nomatch inverts', () => {
  ok('create nets hash:net');
  ok('add nets 198.18.0.0/16');
  ok('add nets 198.18.5.0/24 nomatch');
  ok('add nets 198.18.5.7/32');
  const { engine } = engineFor(forward('-m set --match-set nets dst -j ACCEPT', '-m set --match-set nets dst --return-nomatch -j REJECT', '-j DROP'));
  const v = (dst: string) => engine.evalFilter(tcp4('198.19.0.1', dst), 0);
  assert.equal(v('198.18.1.1'), A, 'in the /16');
  assert.equal(v('198.18.5.7'), A, 'the /32 inside the nomatch /24');
  assert.equal(v('198.19.0.1'), D, 'in no network');
  const rj = engineFor(forward('-m set --match-set nets dst --return-nomatch -j ACCEPT', '-j DROP')).engine;
  assert.equal(rj.evalFilter(tcp4('198.19.0.1', '198.18.5.9'), 0), A, '--return-nomatch: the nomatch element matches');
  assert.equal(rj.evalFilter(tcp4('198.19.0.1', '198.18.1.1'), 0), D, '--return-nomatch: a plain element does not');
  assert.equal(runIpset(['test', 'nets', '198.18.5.0/24'], 0).status, 1, 'ipset test of a nomatch element: NOT in set');
  assert.equal(runIpset(['test', 'nets', '198.18.1.1'], 0).status, 0, 'an address is tested at every prefix the set holds');
  assert.equal(runIpset(['test', 'nets', '198.18.5.9'], 0).status, 1, 'its most specific network is a nomatch one');
  assert.equal(runIpset(['test', 'nets', '198.18.5.7'], 0).status, 0);
  assert.equal(runIpset(['test', 'nets', '198.18.1.0/25'], 0).status, 1, 'a network is tested as it is');
  ok('-exist add nets 198.18.5.0/24');
  assert.equal(engine.evalFilter(tcp4('198.19.0.1', '198.18.5.9'), 0), A, 're-added without nomatch');
});

test('hash:ip,port / net,port / ip,port,ip / ip,port,net: dimensions read src or dst per position; ICMP type/code as the port', () => {
  ok('create ipp hash:ip,port');
  ok('add ipp 198.18.0.1,udp:53');
  ok('add ipp 198.18.0.1,icmp:echo-request');
  ok('create npn hash:net,port');
  ok('add npn 198.18.8.0/24,tcp:443');
  ok('create ipi hash:ip,port,ip');
  ok('add ipi 198.18.0.1,tcp:22,198.18.0.2');
  ok('create ipn hash:ip,port,net');
  ok('add ipn 198.18.0.1,tcp:25,198.18.9.0/24');
  const { engine } = engineFor(
    forward(
      '-m set --match-set ipp dst,dst -j ACCEPT',
      '-m set --match-set npn src,dst -j ACCEPT',
      '-m set --match-set ipi src,dst,dst -j ACCEPT',
      '-m set --match-set ipn dst,dst,src -j ACCEPT',
      '-m set --match-set ipp dst -j REJECT',
      '-j DROP',
    ),
  );
  assert.equal(engine.evalFilter(udp4('198.19.0.1', '198.18.0.1', 53), 0), A);
  assert.equal(engine.evalFilter(tcp4('198.19.0.1', '198.18.0.1', 53), 0), D, 'tcp:53 is not udp:53');
  assert.equal(engine.evalFilter(ctxFor(ipv4({ src: '198.19.0.1', dst: '198.18.0.1' }, icmp({ type: 8 }))), 0), A, 'icmp:echo-request');
  assert.equal(engine.evalFilter(ctxFor(ipv4({ src: '198.19.0.1', dst: '198.18.0.1' }, icmp({ type: 0 }))), 0), D);
  assert.equal(engine.evalFilter(tcp4('198.18.8.77', '198.19.0.1', 443), 0), A, 'net,port: source network, destination port');
  assert.equal(engine.evalFilter(tcp4('198.18.0.1', '198.18.0.2', 22), 0), A, 'ip,port,ip');
  assert.equal(engine.evalFilter(tcp4('198.18.0.2', '198.18.0.1', 22), 0), D);
  assert.equal(engine.evalFilter(tcp4('198.18.9.200', '198.18.0.1', 25), 0), A, 'ip,port,net');
  assert.equal(
    engineFor(forward('-m set --match-set ipp dst -j ACCEPT', '-j DROP')).engine.evalFilter(udp4('198.19.0.1', '198.18.0.1', 53), 0),
    D,
    'fewer dimensions than the set has: never a match (ip_set_test)',
  );
});

test('counters: updated by every match (unless ! --update-counters), compared after the update', () => {
  ok('create c hash:ip counters');
  ok('add c 198.18.0.1');
  const { engine } = engineFor(forward('-m set --match-set c src --packets-gt 2 -j DROP', '-j ACCEPT'));
  const v = () => engine.evalFilter(tcp4('198.18.0.1', '198.19.0.1'), 0);
  assert.deepEqual([v(), v(), v(), v()], [A, A, D, D], 'the third packet makes it 3 > 2');
  const len = tcp4('198.18.0.1', '198.19.0.1').length;
  assert.deepEqual(ok('save c').slice(1), [`add c 198.18.0.1 packets 4 bytes ${4 * len}`]);
  const quiet = engineFor(forward(`-m set --match-set c src ! --update-counters ! --bytes-eq ${4 * len} -j DROP`, '-j ACCEPT')).engine;
  assert.equal(quiet.evalFilter(tcp4('198.18.0.1', '198.19.0.1'), 0), A, 'bytes equal: ! --bytes-eq does not match');
  assert.deepEqual(ok('save c').slice(1), [`add c 198.18.0.1 packets 4 bytes ${4 * len}`], 'not counted');
  ok('add c 198.18.0.2 packets 10 bytes 5');
  const lt = engineFor(forward('-m set --match-set c src --packets-lt 11 -j DROP', '-j ACCEPT')).engine;
  assert.equal(lt.evalFilter(tcp4('198.18.0.2', '198.19.0.1'), 0), A, '11 after the update: not < 11');
});

test('list:set: a packet in any member; -j SET adds to the first member that takes it', () => {
  ok('create v4 hash:ip');
  ok('create v6 hash:ip family inet6');
  ok('create p bitmap:port range 20-30');
  ok('create l list:set');
  ok('add l v6');
  ok('add l v4');
  ok('add l p before v4');
  assert.deepEqual(ok('save l').slice(1), ['add l v6', 'add l p', 'add l v4']);
  ok('add v4 198.18.0.1');
  ok('add p 22');
  const { engine } = engineFor(forward('-m set --match-set l src -j ACCEPT', '-j SET --add-set l src', '-j DROP'));
  assert.equal(engine.evalFilter(tcp4('198.18.0.1', '198.19.0.1'), 0), A, 'in v4');
  assert.equal(engine.evalFilter(tcp4('198.18.0.7', '198.19.0.1', 80, 22), 0), A, 'source port 22 in p');
  assert.equal(engine.evalFilter(tcp4('198.18.0.8', '198.19.0.1'), 0), D);
  assert.deepEqual(ok('save v4').slice(1), ['add v4 198.18.0.1', 'add v4 198.18.0.8'], 'added to v4: v6 refused the family, p the port (40000)');
  assert.equal(engine.evalFilter(tcp4('198.18.0.8', '198.19.0.1'), 0), A);
  fails('destroy v4', 1, /in use by a kernel component/);
  fails('add l l', 1, /list:set/);
});

test('bitmap:ip and bitmap:port: in range only, netmask blocks', () => {
  ok('create b bitmap:ip range 198.18.0.0/24 netmask 30');
  ok('add b 198.18.0.5');
  fails('add b 198.18.1.1', 1, /out of the range/);
  assert.deepEqual(ok('save b'), ['create b bitmap:ip range 198.18.0.0-198.18.0.255 netmask 30', 'add b 198.18.0.4']);
  ok('create bp bitmap:port range 1000-2000');
  ok('add bp 1500');
  const { engine } = engineFor(forward('-m set --match-set b src -j ACCEPT', '-m set --match-set bp dst -j ACCEPT', '-j DROP'));
  assert.equal(engine.evalFilter(tcp4('198.18.0.7', '198.19.0.1'), 0), A, '198.18.0.4/30');
  assert.equal(engine.evalFilter(tcp4('198.18.0.8', '198.19.0.1'), 0), D);
  assert.equal(engine.evalFilter(tcp6('2001:2::1', '2001:2::2', 1500), 0), A, 'bitmap:port: either family');
  assert.equal(engine.evalFilter(udp4('198.19.0.1', '198.19.0.2', 1500), 0), A);
  assert.equal(engine.evalFilter(udp4('198.19.0.1', '198.19.0.2', 2001), 0), D);
});

test('-j SET --add-set/--del-set with --exist and --timeout feeds a set a later rule matches', () => {
  ok('create seen hash:ip,port timeout 60');
  ok('create gone hash:ip');
  ok('add gone 198.18.0.3');
  const { engine } = engineFor(
    forward(
      '-m set --match-set seen src,dst -j ACCEPT',
      '-p tcp --dport 22 -j SET --add-set seen src,dst --exist --timeout 5 --del-set gone src',
      '-m set --match-set gone src -j ACCEPT',
      '-j DROP',
    ),
  );
  assert.equal(engine.evalFilter(tcp4('198.18.0.3', '198.19.0.1', 22), 1000), D, 'added, deleted from gone, then dropped');
  assert.deepEqual(
    ok('save', 1000).filter((l) => l.startsWith('add')),
    ['add seen 198.18.0.3,tcp:22 timeout 5'],
  );
  assert.equal(engine.evalFilter(tcp4('198.18.0.3', '198.19.0.1', 22), 2000), A, 'the next packet is in seen');
  assert.equal(engine.evalFilter(tcp4('198.18.0.3', '198.19.0.1', 22), 6001), D, 'expired after 5 s (re-added)');
  assert.equal(engine.evalFilter(tcp4('198.18.0.3', '198.19.0.1', 22), 6002), A);
});

test('rules: a missing set, bad directions and --map-set are refused with LINE:COL; options round trip', () => {
  assert.deepEqual(errorsOf(forward('-m set --match-set nosuch src -j DROP')), ["e.rules:5:31: Set nosuch doesn't exist."]);
  ok('create a hash:ip,port counters');
  ok('create b hash:ip timeout 60');
  assert.match(errorsOf(forward('-m set --match-set a foo'))[0], /:5:33: You must spefify/);
  assert.match(errorsOf(forward('-m set --match-set a src,src,src,src,src,src,src'))[0], /Can't be more src\/dst options than 6/);
  assert.match(errorsOf(forward('-m set'))[0], /You must specify `--match-set'/);
  assert.match(errorsOf(forward('-m set --match-set a src --match-set b dst'))[0], /can be specified only once/);
  assert.match(errorsOf(forward('-m set --match-set a src ! --packets-lt 4'))[0], /cannot be inverted|not invertible|invert/);
  assert.match(errorsOf(forward('-j SET --map-set a src --map-mark'))[0], /--map-set is not supported/);
  assert.match(errorsOf(forward('-j SET --timeout 5'))[0], /You must specify either `--add-set'/);
  for (const r of [
    '-m set --match-set a src,dst -j ACCEPT',
    '-m set ! --match-set a dst,src,src --return-nomatch ! --update-counters ! --update-subcounters --packets-gt 5 ! --bytes-eq 7 -j DROP',
    '-m set --match-set a src --packets-lt 5 --bytes-gt 100',
    '-j SET --add-set b src --exist --timeout 30',
    '-j SET --add-set b src,dst --del-set a dst,src',
  ])
    assert.equal(savedRule(r), `-A FORWARD ${r}`);
  assert.equal(savedRule('-m set --match-set a srcx -j ACCEPT'), '-A FORWARD -m set --match-set a src -j ACCEPT', 'strncmp over 3 letters');
});

test('destroy, rename and swap: rules keep their set through a rename, follow the name through a swap', () => {
  ok('create a hash:ip');
  ok('create b hash:ip');
  ok('add b 198.18.0.1');
  const { engine } = engineFor(forward('-m set --match-set a src -j ACCEPT', '-j DROP'));
  const v = () => engine.evalFilter(tcp4('198.18.0.1', '198.19.0.1'), 0);
  assert.equal(v(), D);
  ok('swap a b');
  assert.equal(v(), A, 'a now holds what b held');
  ok('rename a c');
  assert.equal(v(), A, 'renamed: the rule keeps its set');
  fails('destroy c', 1, /in use/);
  ok('destroy b');
  ok('create d hash:net');
  fails('swap c d', 1, /type does not match/);
  fails('rename c d', 1, /new name already exists/);
});
