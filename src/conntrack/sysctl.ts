import * as os from 'node:os';

/**
 * The tunables, under the kernel's own names (net.netfilter.*) and with the
 * kernel's defaults, plus nfqwall's own under `nfqwall.*`.
 *
 * `Tunables` holds the live values as plain numeric properties (fast to read on
 * the hot path); `SYSCTLS` describes each one for `nfqwall sysctl`, `--set` and
 * `--sysctl FILE`. Timeouts are in seconds, as the kernel's sysctls read.
 */
export interface SysctlDef {
  /** full name, e.g. net.netfilter.nf_conntrack_max */
  name: string;
  /** property of Tunables */
  key: keyof TunableValues;
  min: number;
  max: number;
  readonly?: boolean;
  help: string;
}

export interface TunableValues {
  nf_conntrack_max: number;
  nf_conntrack_buckets: number;
  nf_conntrack_expect_max: number;
  nf_conntrack_count: number;
  nf_conntrack_tcp_timeout_syn_sent: number;
  nf_conntrack_tcp_timeout_syn_recv: number;
  nf_conntrack_tcp_timeout_established: number;
  nf_conntrack_tcp_timeout_fin_wait: number;
  nf_conntrack_tcp_timeout_close_wait: number;
  nf_conntrack_tcp_timeout_last_ack: number;
  nf_conntrack_tcp_timeout_time_wait: number;
  nf_conntrack_tcp_timeout_close: number;
  nf_conntrack_tcp_timeout_max_retrans: number;
  nf_conntrack_tcp_timeout_unacknowledged: number;
  nf_conntrack_tcp_loose: number;
  nf_conntrack_tcp_be_liberal: number;
  nf_conntrack_tcp_ignore_invalid_rst: number;
  nf_conntrack_tcp_max_retrans: number;
  nf_conntrack_udp_timeout: number;
  nf_conntrack_udp_timeout_stream: number;
  nf_conntrack_sctp_timeout_closed: number;
  nf_conntrack_sctp_timeout_cookie_wait: number;
  nf_conntrack_sctp_timeout_cookie_echoed: number;
  nf_conntrack_sctp_timeout_established: number;
  nf_conntrack_sctp_timeout_shutdown_sent: number;
  nf_conntrack_sctp_timeout_shutdown_recd: number;
  nf_conntrack_sctp_timeout_shutdown_ack_sent: number;
  nf_conntrack_sctp_timeout_heartbeat_sent: number;
  nf_conntrack_icmp_timeout: number;
  nf_conntrack_icmpv6_timeout: number;
  nf_conntrack_generic_timeout: number;
  nf_conntrack_checksum: number;
  nf_conntrack_log_invalid: number;
  nf_conntrack_acct: number;
  nf_conntrack_timestamp: number;
  /** nfqwall: maximum tracked connections per source address (IPv6: per /64); 0 = no limit. */
  per_source_max: number;
  /** nfqwall: FTP helper accepts addresses other than the sender's (the kernel module's `loose`). */
  ftp_loose: number;
  /** nfqwall: FTP helper expectation timeout and per-master maximum (the kernel's helper policy). */
  ftp_expect_timeout: number;
  ftp_max_expected: number;
  /** nfqwall: entries of nf_conntrack_max only management flows (mgmt_port) may take; 0 = none kept. */
  mgmt_reserve: number;
  /** nfqwall: the local TCP/UDP port of management traffic (a flow to it at INPUT or from the gateway at OUTPUT); 0 = none. */
  mgmt_port: number;
}

/** Kernel defaults for the table size (nf_conntrack_init_start, 5.15+), from total RAM. */
export function defaultBuckets(totalMem = os.totalmem()): number {
  let buckets: number;
  if (totalMem > 4 * 1024 ** 3) buckets = 262144;
  else if (totalMem > 1024 ** 3) buckets = 65536;
  else buckets = Math.floor(totalMem / 16384 / 8);
  if (buckets < 1024) buckets = 1024;
  return Math.ceil(buckets / 512) * 512;
}

export function defaultTunables(totalMem = os.totalmem()): TunableValues {
  const buckets = defaultBuckets(totalMem);
  return {
    nf_conntrack_max: buckets,
    nf_conntrack_buckets: buckets,
    nf_conntrack_expect_max: Math.max(1, Math.floor(buckets / 256)) * 4,
    nf_conntrack_count: 0,
    nf_conntrack_tcp_timeout_syn_sent: 120,
    nf_conntrack_tcp_timeout_syn_recv: 60,
    nf_conntrack_tcp_timeout_established: 432000,
    nf_conntrack_tcp_timeout_fin_wait: 120,
    nf_conntrack_tcp_timeout_close_wait: 60,
    nf_conntrack_tcp_timeout_last_ack: 30,
    nf_conntrack_tcp_timeout_time_wait: 120,
    nf_conntrack_tcp_timeout_close: 10,
    nf_conntrack_tcp_timeout_max_retrans: 300,
    nf_conntrack_tcp_timeout_unacknowledged: 300,
    nf_conntrack_tcp_loose: 1,
    nf_conntrack_tcp_be_liberal: 0,
    nf_conntrack_tcp_ignore_invalid_rst: 0,
    nf_conntrack_tcp_max_retrans: 3,
    nf_conntrack_udp_timeout: 30,
    nf_conntrack_udp_timeout_stream: 120,
    nf_conntrack_sctp_timeout_closed: 10,
    nf_conntrack_sctp_timeout_cookie_wait: 3,
    nf_conntrack_sctp_timeout_cookie_echoed: 3,
    nf_conntrack_sctp_timeout_established: 210,
    nf_conntrack_sctp_timeout_shutdown_sent: 3,
    nf_conntrack_sctp_timeout_shutdown_recd: 3,
    nf_conntrack_sctp_timeout_shutdown_ack_sent: 3,
    nf_conntrack_sctp_timeout_heartbeat_sent: 30,
    nf_conntrack_icmp_timeout: 30,
    nf_conntrack_icmpv6_timeout: 30,
    nf_conntrack_generic_timeout: 600,
    nf_conntrack_checksum: 1,
    nf_conntrack_log_invalid: 0,
    nf_conntrack_acct: 0,
    nf_conntrack_timestamp: 0,
    per_source_max: 0,
    ftp_loose: 0,
    ftp_expect_timeout: 300,
    ftp_max_expected: 1,
    mgmt_reserve: 0,
    mgmt_port: 0,
  };
}

const NF = 'net.netfilter.';
const U32 = 0xffffffff;
const t = (key: keyof TunableValues, help: string, min = 0, max = 0x7fffffff / 1000): SysctlDef => ({
  name: NF + key,
  key,
  min,
  max,
  help,
});

export const SYSCTLS: readonly SysctlDef[] = [
  { name: NF + 'nf_conntrack_max', key: 'nf_conntrack_max', min: 0, max: 0x7fffffff, help: 'maximum number of tracked connections (0 = no limit)' },
  { name: NF + 'nf_conntrack_buckets', key: 'nf_conntrack_buckets', min: 1, max: 1 << 26, help: 'size of the hash table (writing it rehashes the table)' },
  { name: NF + 'nf_conntrack_expect_max', key: 'nf_conntrack_expect_max', min: 1, max: 0x7fffffff, help: 'maximum number of expectations' },
  { name: NF + 'nf_conntrack_count', key: 'nf_conntrack_count', min: 0, max: U32, readonly: true, help: 'current number of entries' },
  t('nf_conntrack_tcp_timeout_syn_sent', 'timeout of SYN_SENT (and SYN_SENT2)'),
  t('nf_conntrack_tcp_timeout_syn_recv', 'timeout of SYN_RECV'),
  t('nf_conntrack_tcp_timeout_established', 'timeout of ESTABLISHED'),
  t('nf_conntrack_tcp_timeout_fin_wait', 'timeout of FIN_WAIT'),
  t('nf_conntrack_tcp_timeout_close_wait', 'timeout of CLOSE_WAIT'),
  t('nf_conntrack_tcp_timeout_last_ack', 'timeout of LAST_ACK'),
  t('nf_conntrack_tcp_timeout_time_wait', 'timeout of TIME_WAIT'),
  t('nf_conntrack_tcp_timeout_close', 'timeout of CLOSE and after an accepted RST'),
  t('nf_conntrack_tcp_timeout_max_retrans', 'timeout cap after nf_conntrack_tcp_max_retrans retransmissions'),
  t('nf_conntrack_tcp_timeout_unacknowledged', 'timeout cap while data is unacknowledged'),
  { name: NF + 'nf_conntrack_tcp_loose', key: 'nf_conntrack_tcp_loose', min: 0, max: 1, help: 'pick up already established connections' },
  { name: NF + 'nf_conntrack_tcp_be_liberal', key: 'nf_conntrack_tcp_be_liberal', min: 0, max: 1, help: 'accept out-of-window TCP packets' },
  {
    name: NF + 'nf_conntrack_tcp_ignore_invalid_rst',
    key: 'nf_conntrack_tcp_ignore_invalid_rst',
    min: 0,
    max: 1,
    help: 'out-of-window RSTs are ignored rather than INVALID',
  },
  {
    name: NF + 'nf_conntrack_tcp_max_retrans',
    key: 'nf_conntrack_tcp_max_retrans',
    min: 0,
    max: 255,
    help: 'retransmissions before the max_retrans timeout applies',
  },
  t('nf_conntrack_udp_timeout', 'UDP timeout before a stream is seen'),
  t('nf_conntrack_udp_timeout_stream', 'UDP timeout of a stream (replied, older than 2 s)'),
  t('nf_conntrack_sctp_timeout_closed', 'SCTP timeout of CLOSED (and of an entry before its first state)'),
  t('nf_conntrack_sctp_timeout_cookie_wait', 'SCTP timeout of COOKIE_WAIT'),
  t('nf_conntrack_sctp_timeout_cookie_echoed', 'SCTP timeout of COOKIE_ECHOED'),
  t('nf_conntrack_sctp_timeout_established', 'SCTP timeout of ESTABLISHED'),
  t('nf_conntrack_sctp_timeout_shutdown_sent', 'SCTP timeout of SHUTDOWN_SENT'),
  t('nf_conntrack_sctp_timeout_shutdown_recd', 'SCTP timeout of SHUTDOWN_RECD'),
  t('nf_conntrack_sctp_timeout_shutdown_ack_sent', 'SCTP timeout of SHUTDOWN_ACK_SENT'),
  t('nf_conntrack_sctp_timeout_heartbeat_sent', 'SCTP timeout of HEARTBEAT_SENT'),
  t('nf_conntrack_icmp_timeout', 'ICMP timeout'),
  t('nf_conntrack_icmpv6_timeout', 'ICMPv6 timeout'),
  t('nf_conntrack_generic_timeout', 'timeout of other protocols'),
  { name: NF + 'nf_conntrack_checksum', key: 'nf_conntrack_checksum', min: 0, max: 1, help: 'verify L4 checksums of incoming packets' },
  { name: NF + 'nf_conntrack_log_invalid', key: 'nf_conntrack_log_invalid', min: 0, max: 255, help: 'log invalid packets of this protocol number (255 = all)' },
  { name: NF + 'nf_conntrack_acct', key: 'nf_conntrack_acct', min: 0, max: 1, help: 'per-connection packet and byte counters' },
  { name: NF + 'nf_conntrack_timestamp', key: 'nf_conntrack_timestamp', min: 0, max: 1, help: 'connection start timestamps' },
  {
    name: 'nfqwall.per_source_max',
    key: 'per_source_max',
    min: 0,
    max: 0x7fffffff,
    help: 'maximum tracked connections per source address (IPv6 per /64); 0 = no limit',
  },
  {
    name: 'nfqwall.ftp_loose',
    key: 'ftp_loose',
    min: 0,
    max: 1,
    help: 'FTP helper: allow data-connection addresses other than the sender (like nf_conntrack_ftp loose=1)',
  },
  { name: 'nfqwall.ftp_expect_timeout', key: 'ftp_expect_timeout', min: 1, max: 86400, help: 'FTP helper: expectation timeout in seconds' },
  { name: 'nfqwall.ftp_max_expected', key: 'ftp_max_expected', min: 1, max: 1024, help: 'FTP helper: pending expectations per control connection' },
  {
    name: 'nfqwall.mgmt_reserve',
    key: 'mgmt_reserve',
    min: 0,
    max: 0x7fffffff,
    help: 'entries of nf_conntrack_max kept for management flows (nfqwall.mgmt_port): other new flows stop at max - reserve',
  },
  {
    name: 'nfqwall.mgmt_port',
    key: 'mgmt_port',
    min: 0,
    max: 65535,
    help: 'TCP/UDP destination port of management flows (to the gateway at INPUT, from it at OUTPUT); 0 = none',
  },
];

const BY_NAME = new Map<string, SysctlDef>();
for (const d of SYSCTLS) {
  BY_NAME.set(d.name, d);
  BY_NAME.set(d.name.replace(/\./g, '/'), d); // sysctl accepts net/netfilter/... too
}

export function findSysctl(name: string): SysctlDef | undefined {
  return BY_NAME.get(name.trim());
}
