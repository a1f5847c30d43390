/**
 * Port names as iptables resolves them: getservbyname(NAME, PROTO) over /etc/services
 * (first entry whose name or alias is NAME, case-sensitive, for that protocol). Only
 * where the file is missing does a short built-in list stand in.
 */
import { etcLines, readEtcFile } from './etc-files';

export const SERVICES_FILE = '/etc/services';

/** Stand-in for a machine without /etc/services: names iptables users write most. */
const FALLBACK: Record<string, number> = {
  ftp: 21,
  'ftp-data': 20,
  ssh: 22,
  telnet: 23,
  smtp: 25,
  domain: 53,
  bootps: 67,
  bootpc: 68,
  tftp: 69,
  http: 80,
  www: 80,
  pop3: 110,
  ntp: 123,
  imap: 143,
  snmp: 161,
  ldap: 389,
  https: 443,
  submissions: 465,
  submission: 587,
  ldaps: 636,
  imaps: 993,
  pop3s: 995,
  openvpn: 1194,
  mysql: 3306,
  postgresql: 5432,
};

export interface ServiceTable {
  /** the file read, or null when it was missing and the built-in list is used */
  file: string | null;
  /** `name/proto` → port, first entry wins */
  byName: Map<string, number>;
  /** name → protocols it is listed for */
  protos: Map<string, string[]>;
}

export function parseServices(text: string, file: string | null): ServiceTable {
  const byName = new Map<string, number>();
  const protos = new Map<string, string[]>();
  for (const words of etcLines(text)) {
    const m = /^([0-9]+)\/(\S+)$/.exec(words[1]);
    if (!m || Number(m[1]) > 65535) continue;
    const port = Number(m[1]);
    for (const name of [words[0], ...words.slice(2)]) {
      const key = `${name}/${m[2]}`;
      if (!byName.has(key)) byName.set(key, port);
      const list = protos.get(name) ?? [];
      if (!list.includes(m[2])) list.push(m[2]);
      protos.set(name, list);
    }
  }
  return { file, byName, protos };
}

let cached: ServiceTable | null = null;

export function serviceTable(): ServiceTable {
  if (cached) return cached;
  const text = readEtcFile(SERVICES_FILE);
  if (text !== null) cached = parseServices(text, SERVICES_FILE);
  else {
    const all = ['tcp', 'udp', 'sctp', 'dccp', 'udplite'];
    const t: ServiceTable = { file: null, byName: new Map(), protos: new Map() };
    for (const [name, port] of Object.entries(FALLBACK)) {
      for (const p of all) t.byName.set(`${name}/${p}`, port);
      t.protos.set(name, all);
    }
    cached = t;
  }
  return cached;
}

/** For tests: use this table instead of the machine's (null = read the file again). */
export function setServiceTable(t: ServiceTable | null): void {
  cached = t;
}

/** getaddrinfo()'s order when no protocol is asked for. */
const ANY_PROTO_ORDER = ['tcp', 'udp', 'dccp', 'udplite', 'sctp'];

/** Port of a service name for a protocol ('' = any, in getaddrinfo's order), or -1. */
export function serviceToPort(name: string, proto: string): number {
  const t = serviceTable();
  for (const p of proto === '' ? ANY_PROTO_ORDER : [proto]) {
    const v = t.byName.get(`${name}/${p}`);
    if (v !== undefined) return v;
  }
  return -1;
}

/** Why NAME is not a port for PROTO, for an error message. */
export function serviceError(name: string, proto: string): string {
  const t = serviceTable();
  const where = t.file ?? `the built-in list (${SERVICES_FILE} is missing)`;
  const others = t.protos.get(name);
  if (proto !== '' && others && others.length > 0) return `not a number, and ${where} lists "${name}" only for ${others.join(', ')}, not ${proto}`;
  return `not a number and not a service name in ${where}`;
}
