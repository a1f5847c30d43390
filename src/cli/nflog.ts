/**
 * `nfqwall nflog --group N [--pcap] [--count K]`: the packets the running daemon's `-j NFLOG
 * --nflog-group N` rules log (src/rules/targets/NFLOG.ts), as the kernel's nfnetlink_log
 * would hand them to a reader of the group: by default one line per packet, the prefix and the
 * packet as -j LOG prints it, after the time; with --pcap a pcap stream of the NFLOG link type
 * (the kernel's attributes: prefix, interfaces, mark, payload), for `tcpdump -r -` or a file.
 * Records the daemon had to drop for this reader (a full ring, a reader too slow) are counted
 * on stderr ("dropped N"). Runs until interrupted, or until K packets.
 */
import { PacketContext } from '../conntrack/context';
import { parsePacket } from '../packet/parse';
import { encodeNflogFrame, LINKTYPE_NFLOG, pcapFileHeader, pcapRecord } from '../pcap/nflog';
import { formatLogLine } from '../rules/targets/LOG';
import { ClientError, quietEpipe, request, takeTarget } from './client';

const USAGE = `usage: nfqwall nflog --group N [--pcap] [--count K] [--control PATH | --queue N]
  --group N   the NFLOG group (--nflog-group of the rules; 0 when they give none)
  --pcap      write a pcap stream (link type NFLOG, as tcpdump -i nflog:N -w) instead of lines
  --count K   stop after K packets
Lines: TIME PREFIX IN=… OUT=… and the packet as -j LOG prints it. Packets the daemon could not
keep for this reader are counted on stderr.
`;

export interface NflogLine {
  tsMs: number;
  group: number;
  family: number;
  hook: number;
  inName: string;
  outName: string;
  indev: number;
  outdev: number;
  len: number;
  mark: number;
  prefix: string;
  data: Uint8Array;
}

/** A record line of the daemon (src/daemon/nflog.ts). */
export function parseNflogLine(line: string): NflogLine | null {
  const f = line.split(' ');
  if (f[0] !== 'P' || f.length !== 13) return null;
  const b64 = (s: string) => (s === '-' ? Buffer.alloc(0) : Buffer.from(s, 'base64'));
  return {
    tsMs: Number(f[1]),
    group: Number(f[2]),
    family: Number(f[3]),
    hook: Number(f[4]),
    inName: f[5] === '-' ? '' : f[5],
    outName: f[6] === '-' ? '' : f[6],
    indev: Number(f[7]),
    outdev: Number(f[8]),
    len: Number(f[9]),
    mark: Number(f[10]),
    prefix: b64(f[11]).toString(),
    data: new Uint8Array(b64(f[12])),
  };
}

/** The text line of a record: the time, then what -j LOG would print with the record's prefix. */
export function formatNflogText(r: NflogLine): string {
  const ctx = new PacketContext();
  ctx.reset();
  ctx.family = r.family;
  ctx.indev = r.indev;
  ctx.outdev = r.outdev;
  ctx.mark = r.mark;
  parsePacket(r.data, 0, r.data.length, ctx.view, r.family);
  const names = (i: number) => (i === r.indev ? r.inName : i === r.outdev ? r.outName : undefined);
  return `${new Date(r.tsMs).toISOString()} ${formatLogLine(ctx, r.prefix, 0, names)}`;
}

export async function main(argv: string[]): Promise<number> {
  let target;
  let group: number | undefined;
  let pcap = false;
  let count = Infinity;
  try {
    target = takeTarget(argv);
    const a = target.rest;
    for (let i = 0; i < a.length; i++) {
      const w = a[i];
      if (w === '-h' || w === '--help') {
        process.stdout.write(USAGE);
        return 0;
      } else if (w === '--pcap') pcap = true;
      else if (w === '--group' || w === '--count') {
        const v = a[++i];
        if (v === undefined || !/^[0-9]+$/.test(v)) throw new ClientError(`${w} needs a number`);
        if (w === '--group') {
          if (Number(v) > 65535) throw new ClientError('--group: 0..65535');
          group = Number(v);
        } else count = Number(v);
      } else throw new ClientError(`unknown argument '${w}'`);
    }
    if (group === undefined) throw new ClientError('--group N is required');
  } catch (err) {
    process.stderr.write(`nfqwall nflog: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  quietEpipe();
  let seen = 0;
  let done = false;
  if (pcap) process.stdout.write(pcapFileHeader(LINKTYPE_NFLOG, 65535));
  try {
    const fin = await request(target.path, { op: 'nflog', group }, (lines: string[]) => {
      for (const l of lines) {
        if (done) return;
        if (l === 'S') {
          process.stderr.write(`nfqwall nflog: reading group ${group}\n`);
          continue;
        }
        if (l.startsWith('D ')) {
          process.stderr.write(`nfqwall nflog: dropped ${l.slice(2)}\n`);
          continue;
        }
        const r = parseNflogLine(l);
        if (!r) continue;
        seen++;
        if (pcap) {
          const frame = encodeNflogFrame({ ...r, prefix: r.prefix });
          process.stdout.write(pcapRecord(r.tsMs, frame, frame.length - r.data.length + r.len));
        } else process.stdout.write(formatNflogText(r) + '\n');
        if (seen >= count) {
          // the daemon ends the stream when this connection goes
          done = true;
          process.stdout.write('', () => process.exit(0));
          return;
        }
      }
    });
    if (!fin.ok) throw new ClientError(fin.error ?? 'failed');
    if (fin.stopped) process.stderr.write('nfqwall nflog: the daemon stopped\n');
  } catch (e) {
    process.stderr.write(`nfqwall nflog: ${(e as Error).message}\n`);
    return 1;
  }
  return 0;
}
