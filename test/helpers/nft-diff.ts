/**
 * What the nftables differential tests share: nft syntax → `nft -j list ruleset` JSON in a
 * throwaway namespace, per-rule counters of a listing, srv's UDP echo and the client's probes.
 */
import { execFileSync } from 'node:child_process';
import { LAB_ADDR as A } from '../../src/lab/netns';

/** Each rule's counter by chain and position: "FAMILY TABLE CHAIN #N" → packets. */
export function ruleCounters(json: string): Record<string, number> {
  const out: Record<string, number> = {};
  const seen: Record<string, number> = {};
  for (const item of (JSON.parse(json) as { nftables: Record<string, unknown>[] }).nftables) {
    const r = item.rule as { family: string; table: string; chain: string; expr: Record<string, unknown>[] } | undefined;
    if (!r) continue;
    const chain = `${r.family} ${r.table} ${r.chain}`;
    const n = (seen[chain] = (seen[chain] ?? 0) + 1);
    const c = r.expr.find((e) => 'counter' in e)?.counter as { packets: number } | undefined;
    if (c) out[`${chain} #${n}`] = c.packets;
  }
  return out;
}

/**
 * `nft -j list ruleset` of an nft file, loaded in a namespace of its own (with dummy g0 and g1,
 * for rules that name them by index) that is removed after.
 */
export function nftJson(file: string, tag: string): string {
  const ns = `nfqw-nftj-${tag}-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    for (const dev of ['g0', 'g1']) execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'add', dev, 'type', 'veth', 'peer', 'name', `p${dev}`]);
    execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', file]);
    return execFileSync('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'ruleset'], { encoding: 'utf8' });
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

/** srv's UDP echo on PORT (both families, one process, no fork per datagram); whoami: the answer is the source address it saw. */
export const udpEcho = (port: number, whoami = false): string => `
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', ${port}))
while True:
    d, a = s.recvfrom(100)
    s.sendto(${whoami ? 'a[0].encode()' : "b'r'"}, a)
`;

/**
 * A UDP request to srv:PORT from one socket, sent up to 3 times while no answer comes;
 * prints ok (with the answer when it is not the echo's "r"), refused (ICMP port unreachable),
 * unreachable (another ICMP error) or failed (no answer).
 */
export const udpProbe = (fam: 4 | 6, port: number): string => `
import socket
s = socket.socket(socket.AF_INET${fam === 6 ? '6' : ''}, socket.SOCK_DGRAM)
s.connect(('${fam === 6 ? A.srv6 : A.srv4}', ${port}))
s.settimeout(1)
out = 'failed'
for i in range(3):
    s.send(b'q')
    try:
        r = s.recv(100)
        out = 'ok' if r == b'r' else 'ok ' + r.decode()
        break
    except ConnectionRefusedError:
        out = 'refused'
        break
    except socket.timeout:
        continue
    except OSError:
        out = 'unreachable'
        break
print(out)
`;

/** What a client's TCP connect ended in, from socat's exit code and message. */
export const tcpOutcome = (code: number | null, stderr: string): string =>
  code === 0 ? 'ok' : /refused/i.test(stderr) ? 'refused' : /no route|unreachable|permission|prohibited/i.test(stderr) ? 'unreachable' : 'failed';
