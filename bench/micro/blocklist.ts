/** A FORWARD blocklist of n rules (`-s ADDR/32 -j DROP`, every 10th a `--dport` rule, so both indexes are built). */
export function blocklist(n: number): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  lines.push('-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
  for (let i = 0; i < n; i++) {
    const a = `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;
    lines.push(i % 10 === 9 ? `-A FORWARD -p tcp -m tcp --dport ${1 + (i % 65000)} -j DROP` : `-A FORWARD -s ${a}/32 -j DROP`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}
