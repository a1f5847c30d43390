/**
 * Default ifindex → name resolver from /sys/class/net (slow path only: the engine
 * caches per ifindex and calls this on a miss or after a link-generation change).
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface SysIfnames {
  ifname(ifindex: number): string | undefined;
  /** bumps whenever a rescan found a different set of links */
  linkGeneration(): number;
}

export function sysIfnames(root = '/sys/class/net', minRescanMs = 1000): SysIfnames {
  let byIndex = new Map<number, string>();
  let gen = 0;
  let last = -Infinity;
  let sig = '';
  const scan = () => {
    const m = new Map<number, string>();
    try {
      for (const name of readdirSync(root)) {
        try {
          const idx = Number(readFileSync(`${root}/${name}/ifindex`, 'utf8').trim());
          if (Number.isInteger(idx)) m.set(idx, name);
        } catch {
          // link vanished while scanning
        }
      }
    } catch {
      // no /sys (tests, containers without it): nothing resolves
    }
    const s = [...m].map(([i, n]) => `${i}=${n}`).join(',');
    if (s !== sig) {
      sig = s;
      gen++;
    }
    byIndex = m;
    last = performance.now();
  };
  return {
    ifname(ifindex) {
      let n = byIndex.get(ifindex);
      if (n === undefined && performance.now() - last >= minRescanMs) {
        scan();
        n = byIndex.get(ifindex);
      }
      return n;
    },
    linkGeneration: () => gen,
  };
}

/** An interface's index by name from /sys/class/net, 0 when there is none. */
export function sysIfindex(name: string, root = '/sys/class/net'): number {
  if (name === '' || name.includes('/') || name === '.' || name === '..') return 0;
  try {
    return Number(readFileSync(`${root}/${name}/ifindex`, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}
