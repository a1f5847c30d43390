/**
 * `nft add element [FAMILY] TABLE SET { ELEM, … }` and `nft delete element …` in nft's own
 * syntax, for the named sets of the loaded rule set: an element is a value (an address, a
 * port or protocol number, a type name), a prefix ADDR/LEN or a range LOW-HIGH, turned into
 * the JSON value `nft -j` writes for it; refusals say what nft says.
 */
import { NftError } from './path';
import { setKey, type NamedSets } from './named-sets';

export interface ElementCommand {
  op: 'add' | 'delete';
  family: string;
  table: string;
  set: string;
  /** the elements as nft -j writes them */
  elems: unknown[];
}

const FAMILIES = new Set(['ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev']);
const NAME = /^[A-Za-z_.][A-Za-z0-9_./-]*$/;
const OPTIONS = new Set(['timeout', 'expires', 'comment', 'counter', 'quota', 'limit']);

/** One element's text as the JSON value nft -j lists it with. */
function elementValue(text: string): unknown {
  const value = (t: string): unknown => (/^(0x[0-9a-f]+|[0-9]+)$/i.test(t) ? Number(t) : t);
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const len = text.slice(slash + 1);
    if (!/^[0-9]+$/.test(len)) throw new Error(`syntax error, unexpected "${text}"`);
    return { prefix: { addr: text.slice(0, slash), len: Number(len) } };
  }
  const dash = text.indexOf('-', 1);
  // a dash inside a name (destination-unreachable) is part of it; a range has values on both sides
  if (dash > 0 && /^[0-9a-f:.x]+-[0-9a-f:.x]+$/i.test(text)) return { range: [value(text.slice(0, dash)), value(text.slice(dash + 1))] };
  return value(text);
}

/** Parses the words after `nfqwall nft` (as the shell split them). */
export function parseElementCommand(words: string[]): ElementCommand {
  const text = words.join(' ');
  const tokens: string[] = text.match(/[{},]|[^\s{},]+/g) ?? [];
  const [verb, what] = tokens;
  if ((verb !== 'add' && verb !== 'delete') || what !== 'element') throw new Error('nfqwall nft runs only "add element" and "delete element"');
  const open = tokens.indexOf('{');
  if (open < 0) throw new Error('syntax error, the elements are { ELEM, … }');
  const names = tokens.slice(2, open);
  if (names.length < 2 || names.length > 3) throw new Error('syntax error: add|delete element [FAMILY] TABLE SET { ELEM, … }');
  const [family, table, set] = names.length === 3 ? names : ['ip', ...names];
  if (!FAMILIES.has(family)) throw new Error(`syntax error, unexpected "${family}" (a family: ip, ip6, inet, …)`);
  for (const n of [table, set]) if (!NAME.test(n)) throw new Error(`syntax error, unexpected "${n}"`);
  if (tokens[tokens.length - 1] !== '}' || tokens.indexOf('}') !== tokens.length - 1) throw new Error('syntax error, the elements end with "}"');
  const elems: unknown[] = [];
  const body = tokens.slice(open + 1, -1);
  for (let i = 0; i < body.length; i++) {
    const t = body[i];
    if (t === ',' || t === '{') throw new Error(`syntax error, unexpected "${t}"`);
    const next = body[i + 1];
    if (next !== undefined && next !== ',') {
      if (OPTIONS.has(next)) throw new Error(`element options (${next}) are not supported by nfqwall`);
      throw new Error(`syntax error, unexpected "${next}"`);
    }
    elems.push(elementValue(t));
    i++; // the comma
  }
  if (elems.length === 0) throw new Error('syntax error, unexpected "}"');
  return { op: verb, family, table, set, elems };
}

/** The set a command changes and its element list after the change (nothing is changed yet). */
export function elementChange(sets: NamedSets | undefined, cmd: ElementCommand): { key: string; elems: unknown[] } {
  if (!sets) throw new Error('the loaded rules are not an nftables rule set');
  const key = setKey(cmd.family, cmd.table, cmd.set);
  const named = sets.get(key);
  if (!named) throw new Error('No such file or directory');
  try {
    return { key, elems: named.change(cmd.op, cmd.elems) };
  } catch (e) {
    // a value nft would not take for this set's type
    if (e instanceof NftError) throw new Error(e.message.replace(/^element[^:]*: /, ''));
    throw e;
  }
}
