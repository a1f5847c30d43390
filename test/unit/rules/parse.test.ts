import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRules } from '../../../src/rules/parse';
import { splitArgs } from '../../../src/rules/argv';
import { parseServices, setServiceTable } from '../../../src/rules/services';
import { errorsOf, forward, helperId } from './util';

/** Error of one FORWARD rule (line 5), expected at the column of `at` inside the rule. */
function expectRuleError(rule: string, at: string, message: string | RegExp, nth = 0): void {
  let idx = -1;
  for (let k = 0; k <= nth; k++) idx = rule.indexOf(at, idx + 1);
  assert.ok(idx >= 0, `"${at}" not in rule`);
  const col = '-A FORWARD '.length + 1 + idx;
  const errs = errorsOf(forward(rule));
  assert.equal(errs.length, 1, `expected one error for ${rule}, got:\n${errs.join('\n')}`);
  const prefix = `e.rules:5:${col}: `;
  assert.ok(errs[0].startsWith(prefix), `${errs[0]} should start with ${prefix}`);
  const msg = errs[0].slice(prefix.length);
  if (typeof message === 'string') assert.equal(msg, message);
  else assert.match(msg, message);
}

function parseOk(text: string) {
  const r = parseRules(text, 'ok.rules', { helperId });
  assert.deepEqual(r.errors, []);
  return r.set;
}

function rule(text: string) {
  return parseOk(forward(text)).tables[0].chains[1].rules[0];
}

test('words as iptables-restore splits them: only double quotes group, backslash escapes inside them, columns', () => {
  const t = splitArgs(`-A X --comment "a b" --log-prefix 'x: ' \\"q  "\\"in\\""`, 3);
  assert.deepEqual(
    t.map((x) => [x.text, x.col, x.quoted]),
    [
      ['-A', 1, false],
      ['X', 4, false],
      ['--comment', 6, false],
      ['a b', 16, true],
      ['--log-prefix', 22, false],
      ["'x:", 35, false],
      ["'", 39, false],
      // outside quotes a backslash is an ordinary character; a closing quote ends the word
      ['\\q  ', 41, true],
      ['\\in"', 47, true],
    ],
  );
  // an unterminated quote runs to the end of the line
  assert.deepEqual(
    splitArgs('-A X --comment "open', 1).map((x) => x.text),
    ['-A', 'X', '--comment', 'open'],
  );
});

test('basic options: -p names and numbers, addresses, CIDR, masks, interfaces, -4/-6', () => {
  assert.equal(rule('-p tcp -j ACCEPT').proto, 6);
  assert.equal(rule('-p udp -j ACCEPT').proto, 17);
  assert.equal(rule('-p icmp -j ACCEPT').family, 4);
  assert.equal(rule('-p icmp -j REJECT --reject-with icmp6-adm-prohibited').family, 6);
  assert.equal(rule('-p ipv6-icmp -j ACCEPT').family, 6);
  assert.equal(rule('-p icmpv6 -j ACCEPT').proto, 58);
  assert.equal(rule('-p 47 -j ACCEPT').proto, 47);
  assert.equal(rule('-p all -j ACCEPT').proto, 0);
  const r = rule('! -s 10.1.2.3/8 -d 2001:2::/48 -j ACCEPT'.replace('2001:2::/48', '10.9.9.9/255.255.0.0'));
  assert.deepEqual(r.src, { family: 4, addr: [0x0a000000, 0, 0, 0], mask: [0xff000000, 0, 0, 0], prefix: 8 });
  assert.equal(r.srcInv, true);
  assert.deepEqual(r.dst!.addr, [0x0a090000, 0, 0, 0]);
  const r6 = rule('-s 2001:2:0:1::5/64 -j ACCEPT');
  assert.equal(r6.family, 6);
  assert.deepEqual(r6.src!.addr, [0x20010002, 0x00000001, 0, 0]);
  const i = rule('-i eth+ ! -o g1 -j ACCEPT');
  assert.equal(i.inIface, 'eth+');
  assert.equal(i.outIface, 'g1');
  assert.equal(i.outInv, true);
  assert.equal(rule('-4 -j ACCEPT').family, 4);
  assert.equal(rule('-6 -j ACCEPT').familyFlag, 6);
  // iptables 1.8 no longer reads "-s ! ADDR" (it takes "!" as the address): refused with the fix
  assert.deepEqual(errorsOf(forward('-s ! 10.0.0.1 -j ACCEPT')), ['e.rules:5:15: "!" after -s: iptables 1.8 reads it as the argument; write "! -s …"']);
});

test('every match parses its options (incl. negation, implicit protocol matches)', () => {
  const t = rule('-p tcp ! --sport 1024:65535 --dport 22 --tcp-flags SYN,ACK SYN --tcp-option 2 -j ACCEPT');
  assert.equal(t.matches[0].explicit, false);
  assert.deepEqual(t.matches[0].state, {
    sport: [1024, 65535],
    sportInv: true,
    dport: [22, 22],
    dportInv: false,
    flagMask: 0x12,
    flagCmp: 0x02,
    flagsSet: true,
    flagsInv: false,
    option: 2,
    optionInv: false,
  });
  assert.equal(rule('-p tcp -m tcp ! --syn -j ACCEPT').matches[0].state.flagsInv, true);
  assert.deepEqual(rule('-p tcp -m tcp --dport :1023 -j ACCEPT').matches[0].state.dport, [0, 1023]);
  assert.deepEqual(rule('-p tcp -m tcp --sport 1024: -j ACCEPT').matches[0].state.sport, [1024, 65535]);
  assert.deepEqual(rule('-p tcp --dport ssh -j ACCEPT').matches[0].state.dport, [22, 22]);
  assert.deepEqual(rule('-p udp -m udp ! --dport 53 -j ACCEPT').matches[0].state, { sport: null, sportInv: false, dport: [53, 53], dportInv: true });
  assert.deepEqual(rule('-p tcp -m multiport ! --dports 80,443,8000:8080 -j ACCEPT').matches[0].state, {
    flags: 'dst',
    ports: [
      [80, 80],
      [443, 443],
      [8000, 8080],
    ],
    inv: true,
  });
  assert.equal(rule('-p udp -m multiport --ports 53 -j ACCEPT').matches[0].state.flags, 'any');
  assert.equal(rule('-p udp -m multiport --sports 53 -j ACCEPT').matches[0].state.flags, 'src');
  assert.deepEqual(
    rule('-m conntrack ! --ctstate NEW,INVALID,UNTRACKED,SNAT,DNAT --ctstatus ASSURED,SEEN_REPLY --ctdir REPLY --ctproto tcp -j ACCEPT').matches[0].state,
    {
      state: 0x1 | 0x8 | 0x400 | 0x100 | 0x200,
      stateInv: true,
      proto: 6,
      protoInv: false,
      addrs: [null, null, null, null],
      ports: [null, null, null, null],
      status: 0x4 | 0x2,
      statusInv: false,
      dir: 'REPLY',
    },
  );
  assert.deepEqual(rule('-m state --state ESTABLISHED,RELATED -j ACCEPT').matches[0].state, { mask: 0x6, inv: false });
  assert.deepEqual(rule('-p icmp -m icmp --icmp-type echo-request -j ACCEPT').matches[0].state, { type: 8, codeMin: 0, codeMax: 255, inv: false });
  assert.deepEqual(rule('-p icmp --icmp-type port-unreachable -j ACCEPT').matches[0].state, { type: 3, codeMin: 3, codeMax: 3, inv: false });
  assert.deepEqual(rule('-p icmp -m icmp ! --icmp-type 3/4 -j ACCEPT').matches[0].state, { type: 3, codeMin: 4, codeMax: 4, inv: true });
  assert.equal(rule('-p icmp -m icmp --icmp-type any -j ACCEPT').matches[0].state.type, 255);
  assert.equal(rule('-p icmp -m icmp --icmp-type pong -j ACCEPT').matches[0].state.type, 0);
  assert.deepEqual(rule('-p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT').matches[0].state, {
    type: 135,
    codeMin: 0,
    codeMax: 255,
    inv: false,
  });
  assert.equal(rule('-p ipv6-icmp --icmpv6-type 1/4 -j ACCEPT').matches[0].state.codeMin, 4);
  assert.equal(rule('-m iprange --src-range 10.0.0.1-10.0.0.9 ! --dst-range 10.1.0.0-10.1.255.255 -j ACCEPT').family, 4);
  assert.equal(rule('-m iprange --dst-range 2001:2::1-2001:2::ff -j ACCEPT').family, 6);
  assert.deepEqual(rule('-m helper ! --helper ftp -j ACCEPT').matches[0].state, { name: 'ftp', inv: true });
  assert.deepEqual(rule('-m comment --comment "a b \\"c\\"" -j ACCEPT').matches[0].state, { text: 'a b "c"' });
  assert.deepEqual(rule('-m limit --limit 5/min --limit-burst 10 -j ACCEPT').matches[0].state, { avg: 120000, burst: 10, avgSet: true, burstSet: true });
  assert.equal(rule('-m limit --limit 3/s -j ACCEPT').matches[0].state.avg, 3333);
  assert.equal(rule('-m limit --limit 1/hour -m limit --limit 2/min -j ACCEPT').matches.length, 2);
});

test('every target parses: verdicts, jumps, gotos, LOG, REJECT, CT, NOTRACK', () => {
  const set = parseOk(`*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
-A PREROUTING -i lo -j CT --notrack
-A OUTPUT -j NOTRACK
-A OUTPUT -j LOG --log-prefix "raw: " --log-level debug --log-tcp-sequence --log-tcp-options --log-ip-options --log-uid
COMMIT
*filter
:INPUT DROP [10:20]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:sub - [0:0]
-N other
[3:300] -A INPUT -j sub
-A INPUT -g other
-A INPUT -p tcp -j REJECT --reject-with tcp-reset
-A INPUT -j REJECT
-A INPUT -4 -j REJECT --reject-with icmp-host-prohibited
-A INPUT -j REJECT --reject-with icmp6-adm-prohibited
-A INPUT -j REJECT --reject-with port-unreach
-I INPUT -j DROP
-I INPUT 2 -j RETURN
-A sub -j ACCEPT
COMMIT
`);
  const [raw, filter] = set.tables;
  assert.equal(raw.name, 'raw');
  assert.deepEqual(raw.chains[0].rules[0].target.state, { notrack: false, helper: 'ftp' });
  assert.deepEqual(raw.chains[0].rules[1].target.state, { notrack: true, helper: null });
  assert.equal(raw.chains[1].rules[0].target.name, 'NOTRACK');
  assert.deepEqual(raw.chains[1].rules[1].target.state, { prefix: 'raw: ', level: 7, flags: 0x0f, prefixSet: true, levelSet: true });
  const input = filter.chains[0];
  assert.equal(input.policy, 'DROP');
  assert.deepEqual(input.counters, [10, 20]);
  assert.deepEqual(
    input.rules.map((r) => `${r.target.kind}:${r.target.name}`),
    ['standard:DROP', 'standard:RETURN', 'jump:sub', 'goto:other', 'ext:REJECT', 'ext:REJECT', 'ext:REJECT', 'ext:REJECT', 'ext:REJECT'],
  );
  assert.deepEqual(input.rules[2].counters, [3, 300]);
  assert.deepEqual(input.rules[4].target.state, { v4: 0, v6: 0, name: 'tcp-reset' });
  assert.deepEqual(input.rules[5].target.state, { v4: 4, v6: 11, name: null });
  assert.equal(input.rules[5].family, 0);
  assert.equal(input.rules[6].target.state.v4, 6);
  assert.equal(input.rules[7].family, 6);
  assert.deepEqual(input.rules[8].target.state, { v4: 4, v6: 11, name: 'port-unreach' });
  assert.deepEqual(
    filter.chains.map((c) => c.name),
    ['INPUT', 'FORWARD', 'OUTPUT', 'sub', 'other'],
  );
});

test('errors: unknown match / option / missing argument / bad values, with the offending column', () => {
  expectRuleError('-m foo -j ACCEPT', 'foo', 'unknown match "foo" (iptables has no match of that name)');
  expectRuleError('-m quota --quota 1000 -j ACCEPT', 'quota', 'match "quota" is not supported');
  expectRuleError('-p tcp -m tcp --bogus 1 -j ACCEPT', '--bogus', 'unknown option "--bogus" (matches loaded: tcp)');
  expectRuleError('-m conntrack --ctexpire 10 -j ACCEPT', '--ctexpire', 'option "--ctexpire" of match conntrack is not supported');
  expectRuleError('-p tcp --dport', '--dport', 'option "--dport" requires an argument');
  // getopt takes the next word whatever it is: "-j" is the port, "ACCEPT" then a stray word
  assert.deepEqual(errorsOf(forward('-p tcp --dport -j ACCEPT'))[0], 'e.rules:5:27: bad port "-j": not a number and not a service name in /etc/services');
  expectRuleError('-s 10.0.0.300 -j ACCEPT', '10.0.0.300', 'bad address "10.0.0.300" (IPv4: up to four numbers 0..255 separated by dots)');
  expectRuleError('-s 10.0.0.0/33 -j ACCEPT', '10.0.0.0/33', 'bad prefix length "/33" (at most 32)');
  expectRuleError('-d 2001:2::/129 -j ACCEPT', '2001:2::/129', 'bad prefix length "/129" (at most 128)');
  expectRuleError('-d 2001:::1 -j ACCEPT', '2001:::1', 'bad address "2001:::1" (not an IPv6 address)');
  expectRuleError(
    '-s gw.example.org -j ACCEPT',
    'gw.example.org',
    'host names are not supported ("gw.example.org"): use an address (iptables would resolve the name once, at load time, through DNS or /etc/hosts)',
  );
  expectRuleError('-p tcp --dport 70000 -j ACCEPT', '70000', 'bad port "70000": out of range (0..65535)');
  expectRuleError('-p tcp --dport 90:80 -j ACCEPT', '90:80', 'port range "90:80" is out of order (90 > 80)');
  expectRuleError(
    '-p udp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16 -j ACCEPT',
    '1,2',
    'too many ports in multiport list (at most 15, a range counts as two)',
  );
  assert.deepEqual(errorsOf(forward('-p udp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14:15 -j ACCEPT')), []);
  expectRuleError('-p tcp -m multiport --dports 5:1 -j ACCEPT', '5:1', 'port range "5:1" is out of order (5 > 1)');
  expectRuleError('-p foo -j ACCEPT', 'foo', 'unknown protocol "foo" (a name like tcp, udp, icmp, ipv6-icmp, all, or a number 0..255)');
  expectRuleError('-p 256 -j ACCEPT', '256', 'unknown protocol "256" (a name like tcp, udp, icmp, ipv6-icmp, all, or a number 0..255)');
  expectRuleError('-i averyveryverylongname -j ACCEPT', 'averyveryverylongname', 'interface name "averyveryverylongname" is longer than 15 characters');
  expectRuleError('-m conntrack --ctstate NEW,BOGUS -j ACCEPT', 'NEW,BOGUS', 'unknown state "BOGUS"');
  expectRuleError('-m state --state SNAT -j ACCEPT', 'SNAT', 'unknown state "SNAT"');
  expectRuleError('-p icmp -m icmp --icmp-type bogus -j ACCEPT', 'bogus', 'unknown ICMP type "bogus"');
  expectRuleError('-p ipv6-icmp -m icmp6 --icmpv6-type 300 -j ACCEPT', '300', 'unknown ICMPv6 type "300"');
  // libxt_iprange reads IPv4 as xtables_numeric_to_ipaddr does; a reversed range loads (the kernel warns it never matches)
  assert.deepEqual(rule('-m iprange --src-range 198.18.0-198.18.1 -j ACCEPT').matches[0].state.src.max, [0xc6120100, 0, 0, 0]);
  assert.deepEqual(rule('-m iprange --src-range 10.0.0.9-10.0.0.1 -j ACCEPT').matches[0].state.src.min, [0x0a000009, 0, 0, 0]);
  expectRuleError('-m iprange -j ACCEPT', 'iprange', 'iprange match needs --src-range or --dst-range');
  expectRuleError('-m helper --helper nope -j ACCEPT', 'nope', 'unknown helper "nope"');
  expectRuleError('-m limit --limit 5/fortnight -j ACCEPT', '5/fortnight', 'bad rate "5/fortnight"');
  expectRuleError('-m limit --limit 20000/sec -j ACCEPT', '20000/sec', 'rate too fast "20000/sec"');
  expectRuleError('-m limit --limit-burst 10001 -j ACCEPT', '10001', 'bad --limit-burst "10001" (0..10000)');
  // xt_limit's u32 credit arithmetic: 1/day overflows already with the default burst of 5
  expectRuleError('-m limit --limit 1/day -j ACCEPT', 'limit', 'limit overflow, try lower: 1/day with burst 5');
  expectRuleError('-m limit ! --limit 1/s -j ACCEPT', '!', 'option "--limit" cannot be inverted');
  expectRuleError('-p tcp -m tcp --tcp-flags SYN,BOGUS SYN -j ACCEPT', 'SYN,BOGUS', 'unknown TCP flag "BOGUS"');
  expectRuleError('-p udp -m tcp --dport 1 -j ACCEPT', 'tcp', 'match "tcp" needs "-p tcp"');
  // libxt_multiport needs -p when it reads --dports: before it
  expectRuleError('-m multiport --dports 1 -j ACCEPT', '--dports', /^--dports needs "-p tcp"/);
  expectRuleError('-m multiport --dports 1 -p tcp -j ACCEPT', '--dports', /^--dports needs "-p tcp".* before it$/);
  // -p names: iptables' own, /etc/protocols, numbers in base 0, upper case
  assert.deepEqual(
    ['-p vrrp', '-p TCP', '-p 0x11', '-p mh'].map((p) => rule(`${p} -j ACCEPT`).proto),
    [112, 6, 17, 135],
  );
  // interface names no device has are accepted as iptables does (it only warns): they never match
  assert.equal(rule('-i eth0:1 -j ACCEPT').inIface, 'eth0:1');
  expectRuleError('-m icmp --icmp-type 8 -j ACCEPT', 'icmp', 'match "icmp" needs "-p icmp"');
  expectRuleError('! ! -s 1.2.3.4 -j ACCEPT', '!', 'multiple "!" flags not allowed', 1);
  expectRuleError('-s 1.2.3.4 -s 1.2.3.5 -j ACCEPT', '-s', 'multiple -s flags not allowed', 1);
  expectRuleError('! -m comment --comment x -j ACCEPT', '!', '"!" not allowed before -m');
  expectRuleError('-j ACCEPT !', '!', '"!" must be followed by an option');
  expectRuleError('-j ACCEPT extra', 'extra', 'unexpected word "extra" (neither an option nor an option\'s argument)');
  expectRuleError('-6 -f -j ACCEPT', '-f', '-f (fragment matching) is IPv4, but the rule is IPv6 (-6)');
  expectRuleError('-f -f -j ACCEPT', '-f', 'multiple -f flags not allowed', 1);
});

test('errors: family conflicts', () => {
  expectRuleError('-s 1.2.3.4 -d 2001:2::1 -j ACCEPT', '2001:2::1', 'address "2001:2::1" is IPv6, but the rule is IPv4 (address "1.2.3.4")');
  expectRuleError('-6 -s 1.2.3.4 -j ACCEPT', '1.2.3.4', 'address "1.2.3.4" is IPv4, but the rule is IPv6 (-6)');
  // the protocol's family is only a default: iptables-restore takes -4 -p ipv6-icmp, ip6tables-restore -6 -p icmp
  assert.equal(rule('-4 -p ipv6-icmp -j ACCEPT').family, 4);
  assert.equal(rule('-p icmp -6 -j ACCEPT').family, 6);
  assert.equal(rule('-p icmp -d 2001:2::1 -j ACCEPT').family, 6);
  assert.equal(rule('-p icmp -j ACCEPT').family, 4);
  assert.equal(rule('-p icmp -j REJECT --reject-with icmp6-adm-prohibited').family, 6);
  expectRuleError('-4 -6 -j ACCEPT', '-6', 'a rule cannot be both -4 and -6');
  expectRuleError('-4 -j REJECT --reject-with icmp6-no-route', 'REJECT', /is IPv6, but the rule is IPv4/);
});

test('errors: targets (unknown, missing chain, table, tcp-reset, goto)', () => {
  expectRuleError('-j NOPE', 'NOPE', 'unknown target "NOPE" (no target or chain of that name)');
  expectRuleError('-j nochain', 'nochain', 'jump to missing chain "nochain" (a chain must be declared before the rules that jump to it)');
  expectRuleError('-j MASQUERADE', 'MASQUERADE', 'target MASQUERADE is not allowed in table filter (only in nat)');
  expectRuleError('-j CT --notrack', 'CT', 'target CT is not allowed in table filter (only in raw)');
  expectRuleError('-j NOTRACK', 'NOTRACK', 'target NOTRACK is not allowed in table filter (only in raw)');
  expectRuleError('-j REJECT --reject-with tcp-reset', 'REJECT', 'REJECT --reject-with tcp-reset needs "-p tcp"');
  expectRuleError('-j REJECT --reject-with icmp-bogus', 'icmp-bogus', 'unknown --reject-with type "icmp-bogus"');
  // iptables cuts a longer --log-prefix (and --comment) to its field without an error
  assert.equal(rule('-j LOG --log-prefix "0123456789012345678901234567890"').target.state.prefix, '01234567890123456789012345678');
  assert.equal(rule(`-m comment --comment ${'c'.repeat(300)} -j ACCEPT`).matches[0].state.text, 'c'.repeat(255));
  expectRuleError('-j LOG --log-level 9', '9', 'bad --log-level "9" (0..7 or a syslog level name)');
  expectRuleError('-g ACCEPT', 'ACCEPT', '-g needs a user chain, not "ACCEPT"');
  expectRuleError('-j INPUT', 'INPUT', 'cannot jump to built-in chain INPUT');
  expectRuleError('-j ACCEPT -j DROP', '-j', 'multiple -j flags not allowed', 1);
  const raw = '*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j REJECT\n-A PREROUTING -j CT --helper nope --zone 1\nCOMMIT\n';
  assert.deepEqual(errorsOf(raw), [
    'e.rules:3:18: target REJECT is not allowed in table raw (only in filter)',
    'e.rules:4:30: no such helper "nope"',
    'e.rules:4:35: option "--zone" of target CT is not supported',
  ]);
  assert.deepEqual(errorsOf('*raw\n-A PREROUTING -j CT --notrack --helper ftp\nCOMMIT\n'), ['e.rules:2:18: CT --notrack cannot be combined with --helper']);
});

test('errors: table and section structure, as iptables-nft-restore reads them', () => {
  assert.deepEqual(errorsOf('-A INPUT -j ACCEPT\n'), [
    'e.rules:1:1: "-A" outside a table (a section starts with *filter, *mangle or *raw and ends with COMMIT)',
  ]);
  // iptables-restore: "COMMIT expected at line 3", the line after the last
  assert.deepEqual(errorsOf('*filter\n-A INPUT -j ACCEPT\n'), ['e.rules:3:1: COMMIT expected: table "filter" (line 1) is not closed']);
  assert.deepEqual(errorsOf('*raw\n*filter\nCOMMIT\n'), ['e.rules:2:1: "*filter" inside table raw (line 1): close that table with COMMIT first']);
  // one error for a table nfqwall does not implement; its lines are not read as another table's
  assert.deepEqual(errorsOf('*security\n-A INPUT -j SECMARK --selctx x\n-A INPUT -j NOPE\nCOMMIT\n*filter\n-A INPUT -j nowhere\nCOMMIT\n'), [
    'e.rules:1:2: table "security" is not supported (nfqwall implements raw, mangle, nat, filter); its lines up to COMMIT are not read',
    'e.rules:6:13: jump to missing chain "nowhere" (a chain must be declared before the rules that jump to it)',
  ]);
  assert.deepEqual(errorsOf('*bogus\nCOMMIT\n'), ['e.rules:1:2: unknown table "bogus" (iptables has filter, nat, mangle, raw, security)']);
  assert.deepEqual(errorsOf('COMMIT\n'), ['e.rules:1:1: "COMMIT" outside a table (a section starts with *filter, *mangle or *raw and ends with COMMIT)']);
  // a second section of a table replaces the first (iptables-restore flushes the table at *filter)
  const twice = parseOk('*filter\n-A INPUT -j DROP\nCOMMIT\n*filter\n-A INPUT -j ACCEPT\nCOMMIT\n');
  assert.deepEqual(
    twice.tables.map((t) => t.chains[0].rules.map((r) => r.target.name)),
    [['ACCEPT']],
  );
  // chain lines: user chains take any policy word and ignore what follows; a built-in chain of another table is a user chain here
  const chains = parseOk(
    '*filter\n:PREROUTING ACCEPT [0:0]\n:FOO ACCEPT [0:0]\n:BAR - [x]\n:BAZ - more words\n:FOO - [0:0]\n:INPUT DROP [0:0]\n:INPUT DROP [0:0]\nCOMMIT\n',
  );
  assert.deepEqual(
    chains.tables[0].chains.map((c) => `${c.name}:${c.policy}`),
    ['INPUT:DROP', 'FORWARD:ACCEPT', 'OUTPUT:ACCEPT', 'PREROUTING:null', 'FOO:null', 'BAR:null', 'BAZ:null'],
  );
  assert.deepEqual(errorsOf('*filter\n:INPUT REJECT [0:0]\n:\n:X\nCOMMIT\n'), [
    'e.rules:2:8: bad policy "REJECT" for built-in chain INPUT (ACCEPT or DROP)',
    'e.rules:3:1: missing chain name after ":"',
    'e.rules:4:3: chain "X" needs a policy word after its name (ACCEPT or DROP for a built-in chain, - for a user chain)',
  ]);
  assert.deepEqual(errorsOf('*filter\n:FOO - [0:0]\n-N FOO\nCOMMIT\n'), ['e.rules:3:4: chain "FOO" already exists']);
  // a user chain declared again is emptied (iptables-nft flushes it); a built-in chain keeps its rules
  const again = parseOk('*filter\n:X - [0:0]\n-A INPUT -j ACCEPT\n-A X -j ACCEPT\n-A INPUT -j X\n:INPUT DROP [0:0]\n:X - [0:0]\n-A X -j DROP\nCOMMIT\n');
  assert.deepEqual(
    again.tables[0].chains.map((c) => `${c.name}:${c.policy}:${c.rules.map((r) => r.target.name).join(',')}`),
    ['INPUT:DROP:ACCEPT,X', 'FORWARD:ACCEPT:', 'OUTPUT:ACCEPT:', 'X:null:DROP'],
  );
  assert.deepEqual(errorsOf('*filter\n:ACCEPT - [0:0]\n-A NOPE -j ACCEPT\n-E INPUT X\nfoo\nCOMMIT\n'), [
    'e.rules:2:2: chain name "ACCEPT" is a target name',
    'e.rules:3:4: chain "NOPE" does not exist (declare it first with ":NOPE - [0:0]" or -N)',
    'e.rules:4:1: -E (rename a chain) is not supported: iptables-nft-restore 1.8.9 itself fails on it (CHAIN_RENAME: No such file or directory)',
    'e.rules:5:1: unexpected word "foo" (neither an option nor an option\'s argument)',
  ]);
  assert.deepEqual(errorsOf('*filter\n-I INPUT 3 -j ACCEPT\nCOMMIT\n'), [
    'e.rules:2:10: insert position 3 is beyond the end of chain INPUT (it has 0 rules here)',
  ]);
  // what iptables-restore reads literally: an indented comment, "COMMIT " with a space
  assert.deepEqual(errorsOf('*filter\n  # note\nCOMMIT \nCOMMIT\n'), [
    'e.rules:2:3: "#" starts a comment only in column 1 (iptables-restore reads this line as a rule)',
    'e.rules:3:1: "COMMIT" must be alone on its line (iptables-restore reads this line as a rule)',
  ]);
});

test('rule lines in any option order: the command, -4/-6, counters and -P anywhere', () => {
  const set = parseOk(`*filter
:INPUT ACCEPT [0:0]
:sub - [0:0]
-j ACCEPT -A INPUT -p tcp --dport 22
-p udp --dport 53 -A INPUT -j DROP
-4 -A INPUT -p icmp -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT --ipv6
--append=INPUT --proto tcp --dp 80 -j sub
-I INPUT 2 -m conntrack --ctstate ESTABLISHED -j ACCEPT
[3:300] -A sub -j ACCEPT
-A sub -c 5 600 -j ACCEPT
-A sub --set-counters 7,800 -j RETURN
-P INPUT DROP
--policy FORWARD DROP -c 1 2
-A sub -s 198.18.0.1,198.18.0.2 -d 172.16.0/24 -j DROP
COMMIT
`);
  const [input, forwardCh, , sub] = set.tables[0].chains;
  assert.equal(input.policy, 'DROP');
  assert.equal(forwardCh.policy, 'DROP');
  assert.deepEqual(forwardCh.counters, [1, 2]);
  assert.deepEqual(
    input.rules.map((r) => `${r.proto}/${r.familyFlag}/${r.target.name}`),
    ['6/0/ACCEPT', '0/0/ACCEPT', '17/0/DROP', '1/4/ACCEPT', '58/6/ACCEPT', '6/0/sub'],
  );
  assert.deepEqual(input.rules[0].matches[0].state.dport, [22, 22]);
  assert.deepEqual(input.rules[5].matches[0].state.dport, [80, 80]);
  assert.deepEqual(
    sub.rules.map((r) => r.counters),
    [[3, 300], [5, 600], [7, 800], null, null],
  );
  // one rule per address, as iptables adds them; 172.16.0/24 is 172.16.0.0/24
  assert.deepEqual(
    sub.rules.slice(3).map((r) => [r.src!.addr[0], r.dst!.addr[0], r.dst!.prefix]),
    [
      [0xc6120001, 0xac100000, 24],
      [0xc6120002, 0xac100000, 24],
    ],
  );
  assert.deepEqual(errorsOf(forward('-A FORWARD -j ACCEPT')), ['e.rules:5:12: one command per line: -A after -A']);
  assert.deepEqual(errorsOf('*filter\n-p tcp -j ACCEPT\nCOMMIT\n'), ['e.rules:2:1: no command in this line (expected -A, -I, -N or -P with a chain)']);
  assert.deepEqual(errorsOf('*filter\n-P INPUT REJECT\n-P sub DROP\n-N X -p tcp\nCOMMIT\n'), [
    'e.rules:2:10: bad policy "REJECT" (ACCEPT or DROP)',
    'e.rules:3:4: -P needs a built-in chain of table filter (INPUT, FORWARD, OUTPUT), not "sub"',
    'e.rules:4:6: option -p is not allowed with -N',
  ]);
  // -p, -s, -d, -i, -o, -j are read from the whole word when attached, as iptables does: "-ptcp" is no protocol
  assert.deepEqual(errorsOf(forward('-ptcp -j ACCEPT')), [
    'e.rules:5:12: unknown protocol "-ptcp" (a name like tcp, udp, icmp, ipv6-icmp, all, or a number 0..255)',
  ]);
  assert.deepEqual(errorsOf(forward('-c x 1 -j ACCEPT')), ['e.rules:5:15: packet counter "x" is not a number']);
  assert.deepEqual(errorsOf(forward('--d 1.2.3.4 -j ACCEPT')), ['e.rules:5:12: option "--d" is ambiguous (--delete, --delete-chain, --destination, --dst)']);
});

test('-F, -X, -Z, -D and -C in a rule file, as iptables-nft-restore runs them', () => {
  const head = '*filter\n:INPUT ACCEPT [0:0]\n:X - [0:0]\n:Y - [0:0]\n-A Y -j RETURN\n-A INPUT -j ACCEPT\n-A INPUT -p tcp -j DROP\n-A INPUT -j Y\n';
  const set = parseOk(
    head +
      '-F Y\n-A Y -j DROP\n-F\n-Z\n-A INPUT -s 198.18.0.1,198.18.0.2 -j DROP\n-D INPUT -s 198.18.0.1,198.18.0.2 -j DROP\n-D INPUT 2\n' +
      '-A INPUT -p tcp --dport 22 -j ACCEPT\n-D INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-C INPUT -j ACCEPT\n-X X\nCOMMIT\n',
  );
  const chains = set.tables[0].chains;
  // a bare -F leaves the rules in place in iptables-nft-restore 1.8.9; -X X removed the empty chain
  assert.deepEqual(
    chains.map((c) => `${c.name}:${c.rules.map((r) => r.target.name).join(',')}`),
    ['INPUT:ACCEPT,Y', 'FORWARD:', 'OUTPUT:', 'Y:DROP'],
  );
  assert.deepEqual(errorsOf(head + '-X Y\n-F Y\n-X Y\n-X\nCOMMIT\n'), [
    'e.rules:9:4: chain Y still has rules (the kernel refuses to delete it: Device or resource busy); flush it first with -F Y',
    'e.rules:11:4: chain Y is still jumped to from INPUT (line 8); the kernel refuses to delete it',
    'e.rules:12:1: chain Y is still jumped to from INPUT (line 8); the kernel refuses to delete it',
  ]);
  assert.deepEqual(
    errorsOf(head + '-D INPUT -p udp -j DROP\n-D INPUT 9\n-D INPUT 1 -p tcp\n-C INPUT -j DROP\n-F NOPE\n-R INPUT 1 -j DROP\n-Z INPUT 1\nCOMMIT\n'),
    [
      'e.rules:9:4: no rule "-p udp -j DROP" in chain INPUT to delete',
      'e.rules:10:10: no rule 9 to delete in chain INPUT (it has 3 here)',
      'e.rules:11:12: option -p is not allowed with -D',
      'e.rules:12:4: no rule "-j DROP" in chain INPUT to check',
      'e.rules:13:4: chain "NOPE" does not exist',
      'e.rules:14:1: -R (replace a rule) is not supported: iptables-nft-restore 1.8.9 crashes on it; delete and insert instead',
      'e.rules:15:10: -Z CHAIN NUM is not supported: iptables-nft-restore 1.8.9 crashes on it; -Z CHAIN zeroes the whole chain',
    ],
  );
});

test('IPv4 addresses as iptables reads them, host names refused', () => {
  const src = (a: string) => rule(`-s ${a} -j ACCEPT`).src!;
  assert.deepEqual([src('172.16.0/24').addr[0], src('172.16.0/24').prefix], [0xac100000, 24]);
  assert.equal(src('10').addr[0], 0x0a000000);
  assert.equal(src('0x0a.1').addr[0], 0x0a010000);
  assert.equal(src('010.0.0.1').addr[0], 0x08000001);
  // not iptables' own number form: getaddrinfo's inet_aton reads it
  assert.equal(src('167772161').addr[0], 0x0a000001);
  assert.equal(src('198.18.0.1/0x18').prefix, 24);
  assert.equal(src('loopback/8').addr[0], 0x7f000000);
  assert.equal(rule('-s 198.18.0.1/0 -j ACCEPT').src, null);
  assert.equal(rule('-s 198.18.0.1/0 -j ACCEPT').family, 0);
  expectRuleError('-s 198.18.0.300 -j ACCEPT', '198.18.0.300', 'bad address "198.18.0.300" (IPv4: up to four numbers 0..255 separated by dots)');
  expectRuleError('! -s 198.18.0.1,198.18.0.2 -j ACCEPT', '!', '"!" not allowed with several addresses ("198.18.0.1,198.18.0.2")');
});

test('port names from /etc/services, for the protocol iptables asks for', () => {
  setServiceTable(parseServices('ssh 22/tcp\nsubmissions 465/tcp ssmtp smtps\ndomain 53/tcp\ndomain 53/udp\nsyslog 514/udp\n', '/etc/services'));
  try {
    assert.deepEqual(rule('-p tcp --dport ssmtp -j ACCEPT').matches[0].state.dport, [465, 465]);
    assert.deepEqual(rule('-p tcp --dport 0x16 -j ACCEPT').matches[0].state.dport, [22, 22]);
    // udp's x6 parser asks getaddrinfo for any protocol
    assert.deepEqual(rule('-p udp --dport ssh -j ACCEPT').matches[0].state.dport, [22, 22]);
    assert.deepEqual(rule('-p tcp -m multiport --dports domain,ssh -j ACCEPT').matches[0].state.ports, [
      [53, 53],
      [22, 22],
    ]);
    expectRuleError('-p tcp --dport syslog -j ACCEPT', 'syslog', 'bad port "syslog": not a number, and /etc/services lists "syslog" only for udp, not tcp');
    expectRuleError('-p tcp --dport nosuch -j ACCEPT', 'nosuch', 'bad port "nosuch": not a number and not a service name in /etc/services');
    expectRuleError('-p tcp --dport SSH -j ACCEPT', 'SSH', 'bad port "SSH": not a number and not a service name in /etc/services');
    setServiceTable(null);
    setServiceTable({ ...parseServices('', null) });
    expectRuleError(
      '-p tcp --dport nosuch -j ACCEPT',
      'nosuch',
      'bad port "nosuch": not a number and not a service name in the built-in list (/etc/services is missing)',
    );
  } finally {
    setServiceTable(null);
  }
});

test('errors: loops between chains and nesting beyond the kernel limit', () => {
  const loop = '*filter\n:A - [0:0]\n:B - [0:0]\n:C - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -j C\n-A C -g A\nCOMMIT\n';
  assert.deepEqual(errorsOf(loop), ['e.rules:8:9: jump to "A" creates a loop (A -> B -> C -> A)']);
  // a loop no built-in chain reaches is never walked: nf_tables (and so iptables-restore) accepts it
  assert.deepEqual(errorsOf('*filter\n:S - [0:0]\n-A S -j S\nCOMMIT\n'), []);
  assert.deepEqual(errorsOf('*filter\n:S - [0:0]\n-A INPUT -j S\n-A S -j S\nCOMMIT\n'), ['e.rules:4:9: jump to "S" creates a loop (S -> S)']);
  const chain = (n: number) => {
    const lines = ['*filter'];
    for (let i = 1; i <= n; i++) lines.push(`:c${i} - [0:0]`);
    lines.push('-A INPUT -j c1');
    for (let i = 1; i < n; i++) lines.push(`-A c${i} -j c${i + 1}`);
    lines.push('COMMIT', '');
    return lines.join('\n');
  };
  assert.deepEqual(errorsOf(chain(15)), []);
  // 16 nested user chains: the jump c15 -> c16 is one too many (line 1 + 16 declarations + INPUT rule + 14 rules + 1)
  assert.deepEqual(errorsOf(chain(16)), ['e.rules:33:11: jump to "c16" nests user chains 16 deep (the kernel allows 15)']);
});

test('several errors are collected in one run, sorted by position', () => {
  const text = forward('-m foo -j ACCEPT', '-p tcp --dport 99999 -j ACCEPT', '-j ACCEPT', '-j nowhere');
  assert.deepEqual(errorsOf(text), [
    'e.rules:5:15: unknown match "foo" (iptables has no match of that name)',
    'e.rules:6:27: bad port "99999": out of range (0..65535)',
    'e.rules:8:15: jump to missing chain "nowhere" (a chain must be declared before the rules that jump to it)',
  ]);
});
