/**
 * -j LOG: libxt_LOG.c options, and the kernel's nf_log_syslog.c line
 * (dump_ipv4_packet / dump_ipv6_packet / nf_log_dump_tcp_header / _udp_header).
 * Non-terminal. Allocation is fine here: LOG is not the common path.
 *
 * Not reproduced: MAC= (NFQUEUE does not hand us the link-layer header), UID=/GID=
 * (no socket for queued packets; the kernel prints nothing for forwarded ones either).
 */
import { XT_CONTINUE, type CompiledTarget, type TargetModule, type TargetServices } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { quoteArg } from '../matches/util';
import { formatIp4, formatIp6Full } from '../../packet/format';
import { get16, get32 } from '../../packet/bytes';

export const XT_LOG_TCPSEQ = 0x01;
export const XT_LOG_TCPOPT = 0x02;
export const XT_LOG_IPOPT = 0x04;
export const XT_LOG_UID = 0x08;
export const XT_LOG_MACDECODE = 0x20;
export const LOG_DEFAULT_LEVEL = 4;
export const LOG_PREFIX_MAX = 29;

export const LOG_LEVELS: Record<string, number> = {
  emerg: 0,
  panic: 0,
  alert: 1,
  crit: 2,
  error: 3,
  err: 3,
  warning: 4,
  warn: 4,
  notice: 5,
  info: 6,
  debug: 7,
};

export interface LogState {
  prefix: string;
  level: number;
  flags: number;
  prefixSet: boolean;
  levelSet: boolean;
}

const FLAG_OPTS: Record<string, number> = {
  'log-tcp-sequence': XT_LOG_TCPSEQ,
  'log-tcp-options': XT_LOG_TCPOPT,
  'log-ip-options': XT_LOG_IPOPT,
  'log-uid': XT_LOG_UID,
  'log-macdecode': XT_LOG_MACDECODE,
};

export const logTarget: TargetModule<LogState> = {
  name: 'LOG',
  tables: ['raw', 'mangle', 'nat', 'filter'],
  options: [
    { name: 'log-level', invertible: false, args: 1 },
    { name: 'log-prefix', invertible: false, args: 1 },
    { name: 'log-tcp-sequence', invertible: false, args: 0 },
    { name: 'log-tcp-options', invertible: false, args: 0 },
    { name: 'log-ip-options', invertible: false, args: 0 },
    { name: 'log-uid', invertible: false, args: 0 },
    { name: 'log-macdecode', invertible: false, args: 0 },
  ],
  create: () => ({ prefix: '', level: LOG_DEFAULT_LEVEL, flags: 0, prefixSet: false, levelSet: false }),
  parse(s, opt, args, _inv, optTok, env) {
    if (opt === 'log-level') {
      if (s.levelSet) return env.error(optTok, '--log-level given twice');
      const t = args[0].text.toLowerCase();
      const n = /^[0-7]$/.test(t) ? Number(t) : LOG_LEVELS[t];
      if (n === undefined) return env.error(args[0], `bad --log-level "${args[0].text}" (0..7 or a syslog level name)`);
      s.level = n;
      s.levelSet = true;
    } else if (opt === 'log-prefix') {
      if (s.prefixSet) return env.error(optTok, '--log-prefix given twice');
      const p = args[0].text;
      if (p.includes('\n')) return env.error(args[0], 'newlines are not allowed in --log-prefix');
      // xtopt_parse_string cuts a longer prefix to the field's 29 bytes without a word (iptables-save shows the cut one)
      const b = Buffer.from(p);
      s.prefix = b.length > LOG_PREFIX_MAX ? b.subarray(0, LOG_PREFIX_MAX).toString() : p;
      s.prefixSet = true;
    } else {
      s.flags |= FLAG_OPTS[opt];
    }
  },
  finalize() {},
  familyOf: () => 0,
  save(s) {
    const out: string[] = [];
    if (s.prefix !== '') out.push('--log-prefix', quoteArg(s.prefix));
    if (s.level !== LOG_DEFAULT_LEVEL) out.push('--log-level', String(s.level));
    for (const [name, bit] of Object.entries(FLAG_OPTS)) if (s.flags & bit) out.push('--' + name);
    return out;
  },
  compile: (s, env) => new LogAction(s.prefix, s.level, s.flags, env.services),
};

class LogAction implements CompiledTarget {
  constructor(
    private readonly prefix: string,
    private readonly level: number,
    private readonly flags: number,
    private readonly services: TargetServices,
  ) {}
  run(ctx: PacketContext): number {
    this.services.log(formatLogLine(ctx, this.prefix, this.flags, this.services.ifname), this.level);
    return XT_CONTINUE;
  }
}

const hex2 = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');

/** nf_log_dump_tcp_header. Returns true when the caller should stop (INCOMPLETE). */
function dumpTcp(out: string[], b: Uint8Array, off: number, end: number, fragment: boolean, flags: number): boolean {
  out.push('PROTO=TCP ');
  if (fragment) return false;
  if (end - off < 20) {
    out.push(`INCOMPLETE [${Math.max(0, end - off)} bytes] `);
    return true;
  }
  out.push(`SPT=${get16(b, off)} DPT=${get16(b, off + 2)} `);
  if (flags & XT_LOG_TCPSEQ) out.push(`SEQ=${get32(b, off + 4)} ACK=${get32(b, off + 8)} `);
  out.push(`WINDOW=${get16(b, off + 14)} `);
  out.push(`RES=0x${((get32(b, off + 12) & 0x0f000000) >>> 22).toString(16).padStart(2, '0')} `);
  const f = b[off + 13];
  const names: [number, string][] = [
    [0x80, 'CWR'],
    [0x40, 'ECE'],
    [0x20, 'URG'],
    [0x10, 'ACK'],
    [0x08, 'PSH'],
    [0x04, 'RST'],
    [0x02, 'SYN'],
    [0x01, 'FIN'],
  ];
  for (const [bit, n] of names) if (f & bit) out.push(n + ' ');
  out.push(`URGP=${get16(b, off + 18)} `);
  const doff = (b[off + 12] >>> 4) * 4;
  if (flags & XT_LOG_TCPOPT && doff > 20) {
    const optLen = doff - 20;
    if (end - off - 20 < optLen) {
      out.push(`OPT (TRUNCATED)`);
      return true;
    }
    let s = 'OPT (';
    for (let i = 0; i < optLen; i++) s += hex2(b[off + 20 + i]);
    out.push(s + ') ');
  }
  return false;
}

function dumpUdp(out: string[], b: Uint8Array, proto: number, off: number, end: number, fragment: boolean): boolean {
  out.push(proto === 17 ? 'PROTO=UDP ' : 'PROTO=UDPLITE ');
  if (fragment) return false;
  if (end - off < 8) {
    out.push(`INCOMPLETE [${Math.max(0, end - off)} bytes] `);
    return true;
  }
  out.push(`SPT=${get16(b, off)} DPT=${get16(b, off + 2)} LEN=${get16(b, off + 4)} `);
  return false;
}

/** required_len[] of nf_log_syslog.c for ICMP types 0..18. */
const ICMP_REQUIRED: Record<number, number> = { 0: 4, 3: 28, 4: 28, 5: 28, 8: 4, 11: 28, 12: 28, 13: 20, 14: 20, 17: 12, 18: 12 };

function dumpIp4(out: string[], b: Uint8Array, ip: number, end: number, flags: number, top: boolean, mark: number): void {
  if (end - ip < 20) {
    out.push('TRUNCATED');
    return;
  }
  const ihl = (b[ip] & 0x0f) * 4;
  out.push(`SRC=${formatIp4(get32(b, ip + 12))} DST=${formatIp4(get32(b, ip + 16))} `);
  const tos = b[ip + 1];
  out.push(`LEN=${get16(b, ip + 2)} TOS=0x${hex2(tos & 0x1e)} PREC=0x${hex2(tos & 0xe0)} TTL=${b[ip + 8]} ID=${get16(b, ip + 4)} `);
  const fo = get16(b, ip + 6);
  if (fo & 0x8000) out.push('CE ');
  if (fo & 0x4000) out.push('DF ');
  if (fo & 0x2000) out.push('MF ');
  const frag = fo & 0x1fff;
  if (frag) out.push(`FRAG:${frag} `);
  if (flags & XT_LOG_IPOPT && ihl > 20) {
    if (end - ip < ihl) {
      out.push('TRUNCATED');
      return;
    }
    let s = 'OPT (';
    for (let i = 20; i < ihl; i++) s += hex2(b[ip + i]);
    out.push(s + ') ');
  }
  const proto = b[ip + 9];
  const l4 = ip + ihl;
  switch (proto) {
    case 6:
      if (dumpTcp(out, b, l4, end, frag !== 0, flags)) return;
      break;
    case 17:
    case 136:
      if (dumpUdp(out, b, proto, l4, end, frag !== 0)) return;
      break;
    case 1: {
      out.push('PROTO=ICMP ');
      if (frag) break;
      if (end - l4 < 8) {
        out.push(`INCOMPLETE [${Math.max(0, end - l4)} bytes] `);
        break;
      }
      const type = b[l4];
      const code = b[l4 + 1];
      out.push(`TYPE=${type} CODE=${code} `);
      const req = ICMP_REQUIRED[type];
      if (type <= 18 && req && end - l4 < req) {
        out.push(`INCOMPLETE [${end - l4} bytes] `);
        break;
      }
      switch (type) {
        case 0:
        case 8:
          out.push(`ID=${get16(b, l4 + 4)} SEQ=${get16(b, l4 + 6)} `);
          break;
        case 12:
          out.push(`PARAMETER=${b[l4 + 4]} `);
          break;
        case 5:
        case 3:
        case 4:
        case 11:
          if (type === 5) out.push(`GATEWAY=${formatIp4(get32(b, l4 + 4))} `);
          if (top) {
            out.push('[');
            dumpIp4(out, b, l4 + 8, end, flags, false, 0);
            out.push('] ');
          }
          if (type === 3 && code === 4) out.push(`MTU=${get16(b, l4 + 6)} `);
          break;
      }
      break;
    }
    case 51: {
      out.push('PROTO=AH ');
      if (frag) break;
      if (end - l4 < 12) {
        out.push(`INCOMPLETE [${Math.max(0, end - l4)} bytes] `);
        break;
      }
      out.push(`SPI=0x${get32(b, l4 + 4).toString(16)} `);
      break;
    }
    case 50: {
      out.push('PROTO=ESP ');
      if (frag) break;
      if (end - l4 < 8) {
        out.push(`INCOMPLETE [${Math.max(0, end - l4)} bytes] `);
        break;
      }
      out.push(`SPI=0x${get32(b, l4).toString(16)} `);
      break;
    }
    default:
      out.push(`PROTO=${proto} `);
  }
  if (top && mark) out.push(`MARK=0x${(mark >>> 0).toString(16)} `);
}

function dumpIp6(out: string[], b: Uint8Array, ip: number, end: number, flags: number, recurse: boolean, mark: number): void {
  if (end - ip < 40) {
    out.push('TRUNCATED');
    return;
  }
  const w0 = get32(b, ip);
  const src = [get32(b, ip + 8), get32(b, ip + 12), get32(b, ip + 16), get32(b, ip + 20)];
  const dst = [get32(b, ip + 24), get32(b, ip + 28), get32(b, ip + 32), get32(b, ip + 36)];
  out.push(`SRC=${formatIp6Full(src)} DST=${formatIp6Full(dst)} `);
  out.push(`LEN=${get16(b, ip + 4) + 40} TC=${(w0 & 0x0ff00000) >>> 20} HOPLIMIT=${b[ip + 7]} FLOWLBL=${w0 & 0xfffff} `);
  let fragment = false;
  let ptr = ip + 40;
  let nh = b[ip + 6];
  const ipopt = (flags & XT_LOG_IPOPT) !== 0;
  while (nh !== 59 && (nh === 0 || nh === 43 || nh === 44 || nh === 50 || nh === 51 || nh === 60)) {
    if (end - ptr < 2) {
      out.push('TRUNCATED');
      return;
    }
    if (ipopt) out.push('OPT ( ');
    let hdrlen = 0;
    switch (nh) {
      case 44: {
        out.push('FRAG:');
        if (end - ptr < 8) {
          out.push('TRUNCATED ');
          return;
        }
        const fo = get16(b, ptr + 2);
        out.push(`${fo & 0xfff8} `);
        if (fo & 1) out.push('INCOMPLETE ');
        out.push(
          `ID:${get32(b, ptr + 4)
            .toString(16)
            .padStart(8, '0')} `,
        );
        if (fo & 0xfff8) fragment = true;
        hdrlen = 8;
        break;
      }
      case 0:
      case 43:
      case 60:
        if (fragment) {
          if (ipopt) out.push(')');
          return;
        }
        hdrlen = (b[ptr + 1] + 1) * 8;
        break;
      case 51:
        if (ipopt) {
          out.push('AH ');
          if (fragment) {
            out.push(')');
            return;
          }
          if (end - ptr < 8) {
            out.push(`INCOMPLETE [${end - ptr} bytes] )`);
            return;
          }
          out.push(`SPI=0x${get32(b, ptr + 4).toString(16)} `);
        }
        hdrlen = (b[ptr + 1] + 2) * 4;
        break;
      case 50:
        if (ipopt) {
          out.push('ESP ');
          if (fragment) {
            out.push(')');
            return;
          }
          if (end - ptr < 8) {
            out.push(`INCOMPLETE [${end - ptr} bytes] )`);
            return;
          }
          out.push(`SPI=0x${get32(b, ptr).toString(16)} )`);
        }
        return;
    }
    if (ipopt) out.push(') ');
    nh = b[ptr];
    ptr += hdrlen;
  }
  switch (nh) {
    case 6:
      if (dumpTcp(out, b, ptr, end, fragment, flags)) return;
      break;
    case 17:
    case 136:
      if (dumpUdp(out, b, nh, ptr, end, fragment)) return;
      break;
    case 58: {
      out.push('PROTO=ICMPv6 ');
      if (fragment) break;
      if (end - ptr < 8) {
        out.push(`INCOMPLETE [${Math.max(0, end - ptr)} bytes] `);
        return;
      }
      const type = b[ptr];
      out.push(`TYPE=${type} CODE=${b[ptr + 1]} `);
      switch (type) {
        case 128:
        case 129:
          out.push(`ID=${get16(b, ptr + 4)} SEQ=${get16(b, ptr + 6)} `);
          break;
        case 130:
        case 131:
        case 132:
          break;
        case 4:
        case 1:
        case 2:
        case 3:
          if (type === 4)
            out.push(
              `POINTER=${get32(b, ptr + 4)
                .toString(16)
                .padStart(8, '0')} `,
            );
          if (recurse) {
            out.push('[');
            dumpIp6(out, b, ptr + 8, end, flags, false, 0);
            out.push('] ');
          }
          if (type === 2) out.push(`MTU=${get32(b, ptr + 4)} `);
      }
      break;
    }
    default:
      out.push(`PROTO=${nh} `);
  }
  if (recurse && mark) out.push(`MARK=0x${(mark >>> 0).toString(16)} `);
}

/**
 * The kernel's LOG line for the packet in ctx (without the syslog level marker):
 * `<prefix>IN=<in> OUT=<out> SRC=… ` — with the kernel's trailing space.
 */
export function formatLogLine(ctx: PacketContext, prefix: string, flags: number, ifname: (ifindex: number) => string | undefined): string {
  const v = ctx.view;
  const out: string[] = [prefix];
  const inName = ctx.indev ? (ifname(ctx.indev) ?? '') : '';
  const outName = ctx.outdev ? (ifname(ctx.outdev) ?? '') : '';
  out.push(`IN=${inName} OUT=${outName} `);
  const end = Math.min(v.buf.length, v.off + v.len);
  if (ctx.family === 6) dumpIp6(out, v.buf, v.off, end, flags, true, ctx.mark);
  else dumpIp4(out, v.buf, v.off, end, flags, true, ctx.mark);
  return out.join('');
}
