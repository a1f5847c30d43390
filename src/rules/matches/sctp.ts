/**
 * -m sctp: libxt_sctp.c options and save format, xt_sctp.c sctp_mt / match_packet semantics.
 *
 *   [!] --source-port|--sport PORT[:PORT]   [!] --destination-port|--dport PORT[:PORT]
 *   [!] --chunk-types all|any|only TYPE[:FLAGS][,TYPE[:FLAGS]...] | ALL | NONE
 *
 * FLAGS letters are a chunk type's flag bits from its valid_flags string (DATA "----IUBE",
 * ABORT and SHUTDOWN_COMPLETE "-------T"): upper case = the bit must be set, lower case = clear.
 * As libxt_sctp stores them, the flags are filed under the type's index in its name table, not
 * under the type number: for the types after SHUTDOWN_COMPLETE (I_DATA, RE_CONFIG, ...) the kernel
 * never compares them and iptables-save does not print them; nfqwall keeps that.
 */
import type { CompiledMatch, MatchModule, MatchRuntime, ParseEnv, Token } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { SCTP_HEADER_LEN, sctpChunkLength, sctpChunkReadable, sctpNextChunk } from '../../packet/sctp';
import { createPorts, l4HeaderReadable, parsePortOption, PORT_OPTIONS, PortRanges, savePortOptions, type PortsState } from './util';

/** sctp_chunk_names[] of libxt_sctp.c: name, type, valid_flags (bit 7 first). */
export const SCTP_CHUNK_NAMES: readonly (readonly [string, number, string])[] = [
  ['DATA', 0, '----IUBE'],
  ['INIT', 1, '--------'],
  ['INIT_ACK', 2, '--------'],
  ['SACK', 3, '--------'],
  ['HEARTBEAT', 4, '--------'],
  ['HEARTBEAT_ACK', 5, '--------'],
  ['ABORT', 6, '-------T'],
  ['SHUTDOWN', 7, '--------'],
  ['SHUTDOWN_ACK', 8, '--------'],
  ['ERROR', 9, '--------'],
  ['COOKIE_ECHO', 10, '--------'],
  ['COOKIE_ACK', 11, '--------'],
  ['ECN_ECNE', 12, '--------'],
  ['ECN_CWR', 13, '--------'],
  ['SHUTDOWN_COMPLETE', 14, '-------T'],
  ['I_DATA', 64, '----IUBE'],
  ['RE_CONFIG', 130, '--------'],
  ['PAD', 132, '--------'],
  ['ASCONF', 193, '--------'],
  ['ASCONF_ACK', 128, '--------'],
  ['FORWARD_TSN', 192, '--------'],
  ['I_FORWARD_TSN', 194, '--------'],
];

/* chunk_match_type (xt_sctp.h) */
export const SCTP_CHUNK_MATCH_ANY = 0x01;
export const SCTP_CHUNK_MATCH_ALL = 0x02;
export const SCTP_CHUNK_MATCH_ONLY = 0x04;

/** XT_NUM_SCTP_FLAGS */
const MAX_FLAG_INFO = 4;

/** struct xt_sctp_flag_info */
export interface SctpFlagInfo {
  chunktype: number;
  flag: number;
  mask: number;
}

export interface SctpState extends PortsState {
  chunksSet: boolean;
  chunksInv: boolean;
  matchType: number;
  /** the chunk types (0..255) in the chunk map, ascending */
  chunks: number[];
  flagInfo: SctpFlagInfo[];
}

const MATCH_TYPES: readonly (readonly [string, number])[] = [
  ['any', SCTP_CHUNK_MATCH_ANY],
  ['all', SCTP_CHUNK_MATCH_ALL],
  ['only', SCTP_CHUNK_MATCH_ONLY],
];

/** save_chunk_flag_info: a second letter for the same chunk adds to its entry. */
function saveFlag(s: SctpState, chunktype: number, bit: number, set: boolean, tok: Token, env: ParseEnv): boolean {
  let fi = s.flagInfo.find((f) => f.chunktype === chunktype);
  if (!fi) {
    if (s.flagInfo.length === MAX_FLAG_INFO) {
      env.error(tok, `more than ${MAX_FLAG_INFO} chunk types with flags (the kernel's XT_NUM_SCTP_FLAGS)`);
      return false;
    }
    fi = { chunktype, flag: 0, mask: 0 };
    s.flagInfo.push(fi);
  }
  fi.mask |= 1 << bit;
  if (set) fi.flag |= 1 << bit;
  return true;
}

/** parse_sctp_chunk: ALL, NONE, or a comma list of TYPE[:FLAGS] (empty elements skipped, as strtok does). */
function parseChunks(s: SctpState, tok: Token, env: ParseEnv): void {
  const text = tok.text;
  const map = new Set<number>();
  if (text.toUpperCase() === 'ALL') {
    for (let t = 0; t < 256; t++) map.add(t);
  } else if (text.toUpperCase() !== 'NONE') {
    for (const part of text.split(',')) {
      if (part === '') continue;
      const colon = part.indexOf(':');
      const name = colon < 0 ? part : part.slice(0, colon);
      const index = SCTP_CHUNK_NAMES.findIndex(([n]) => n === name.toUpperCase());
      if (index < 0) return env.error(tok, `unknown SCTP chunk type "${name}"`);
      const [, type, valid] = SCTP_CHUNK_NAMES[index];
      map.add(type);
      if (colon < 0) continue;
      for (const ch of part.slice(colon + 1)) {
        const at = valid.indexOf(ch.toUpperCase());
        if (at < 0) return env.error(tok, `invalid flag "${ch}" for SCTP chunk type ${name.toUpperCase()} (its flags: ${valid})`);
        if (!saveFlag(s, index, 7 - at, ch !== ch.toLowerCase(), tok, env)) return;
      }
    }
  }
  s.chunks = [...map].sort((a, b) => a - b);
}

/** print_chunk_flags */
function formatFlags(type: number, fi: SctpFlagInfo): string {
  if (!fi.mask) return '';
  const valid = SCTP_CHUNK_NAMES[type][2];
  let out = ':';
  for (let i = 7; i >= 0; i--) {
    if (!(fi.mask & (1 << i))) continue;
    const c = valid[7 - i];
    out += fi.flag & (1 << i) ? c : c.toLowerCase();
  }
  return out;
}

/** print_chunks (not numeric) */
function formatChunks(s: SctpState): string[] {
  const type = MATCH_TYPES.find(([, v]) => v === s.matchType)![0];
  if (s.chunks.length === 0) return [type, 'NONE'];
  if (s.chunks.length === 256) return [type, 'ALL'];
  const words: string[] = [];
  for (const t of s.chunks) {
    const named = SCTP_CHUNK_NAMES.find(([, n]) => n === t);
    if (!named) continue;
    const fi = s.flagInfo.find((f) => f.chunktype === t);
    words.push(named[0] + (fi ? formatFlags(t, fi) : ''));
  }
  return [type, words.join(',')];
}

export const sctpMatch: MatchModule<SctpState> = {
  name: 'sctp',
  proto: 132,
  options: [...PORT_OPTIONS, { name: 'chunk-types', invertible: true, args: 2 }],
  create: () => ({ ...createPorts(), chunksSet: false, chunksInv: false, matchType: 0, chunks: [], flagInfo: [] }),
  parse(s, opt, args, inv, optTok, env) {
    if (parsePortOption(s, opt, args[0], inv, optTok, env, 'sctp')) return;
    if (opt !== 'chunk-types') return;
    if (s.chunksSet) return env.error(optTok, '--chunk-types given twice');
    const second = args[1].text;
    if (second.startsWith('-') || second.startsWith('!')) return env.error(args[1], '--chunk-types requires two args: all|any|only and the chunk types');
    const mt = MATCH_TYPES.find(([n]) => n === args[0].text.toLowerCase());
    if (!mt) return env.error(args[0], 'match type has to be one of "all", "any" or "only"');
    s.matchType = mt[1];
    s.chunksSet = true;
    s.chunksInv = inv;
    parseChunks(s, args[1], env);
  },
  finalize() {},
  familyOf: () => 0,
  save(s) {
    const out = savePortOptions(s);
    if (s.chunksSet) out.push(...(s.chunksInv ? ['!'] : []), '--chunk-types', ...formatChunks(s));
    return out;
  },
  compile(s, env) {
    return new SctpMatch(s, env.runtime);
  },
};

class SctpMatch implements CompiledMatch {
  private readonly ports: PortRanges;
  private readonly chunksSet: boolean;
  private readonly chunksInv: boolean;
  private readonly matchType: number;
  private readonly map = new Uint32Array(8);
  /** SCTP_CHUNK_MATCH_ALL: the chunk types not seen yet in this packet */
  private readonly left = new Uint32Array(8);
  private readonly fiType: Int16Array;
  private readonly fiFlag: Uint8Array;
  private readonly fiMask: Uint8Array;

  constructor(
    s: SctpState,
    private readonly rt: MatchRuntime,
  ) {
    this.ports = new PortRanges(s);
    this.chunksSet = s.chunksSet;
    this.chunksInv = s.chunksInv;
    this.matchType = s.matchType;
    for (const t of s.chunks) this.map[t >>> 5] |= 1 << (t & 31);
    this.fiType = Int16Array.from(s.flagInfo, (f) => f.chunktype);
    this.fiFlag = Uint8Array.from(s.flagInfo, (f) => f.flag);
    this.fiMask = Uint8Array.from(s.flagInfo, (f) => f.mask);
  }

  /** match_flags: the first flag_info of this chunk type decides; none = any flags. */
  private flagsMatch(type: number, flags: number): boolean {
    const t = this.fiType;
    for (let i = 0; i < t.length; i++) if (t[i] === type) return (flags & this.fiMask[i]) === this.fiFlag[i];
    return true;
  }

  /** match_packet, from the first chunk at `off`. */
  private chunksMatch(ctx: PacketContext, off: number): boolean {
    const v = ctx.view;
    const buf = v.buf;
    const map = this.map;
    const left = this.left;
    const mt = this.matchType;
    const end = v.l4off + v.l4len;
    if (mt === SCTP_CHUNK_MATCH_ALL) for (let i = 0; i < 8; i++) left[i] = map[i];
    do {
      if (!sctpChunkReadable(v, off) || sctpChunkLength(buf, off) === 0) {
        this.rt.hotdrop = 1;
        return false;
      }
      const type = buf[off];
      const flags = buf[off + 1];
      off = sctpNextChunk(buf, off);
      if (map[type >>> 5] & (1 << (type & 31))) {
        if (mt === SCTP_CHUNK_MATCH_ANY) {
          if (this.flagsMatch(type, flags)) return true;
        } else if (mt === SCTP_CHUNK_MATCH_ALL) {
          if (this.flagsMatch(type, flags)) left[type >>> 5] &= ~(1 << (type & 31));
        } else if (!this.flagsMatch(type, flags)) return false;
      } else if (mt === SCTP_CHUNK_MATCH_ONLY) return false;
    } while (off < end);
    if (mt === SCTP_CHUNK_MATCH_ALL) {
      for (let i = 0; i < 8; i++) if (left[i] !== 0) return false;
      return true;
    }
    return mt === SCTP_CHUNK_MATCH_ONLY;
  }

  match(ctx: PacketContext): boolean {
    const v = ctx.view;
    if (v.fragOffset !== 0) return false;
    if (!l4HeaderReadable(v) || v.l4len < SCTP_HEADER_LEN) {
      this.rt.hotdrop = 1;
      return false;
    }
    if (!this.ports.match(v.sport, v.dport)) return false;
    if (this.chunksSet && this.chunksMatch(ctx, v.l4off + SCTP_HEADER_LEN) === this.chunksInv) return false;
    return true;
  }
}
