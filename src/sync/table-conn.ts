/**
 * Between the connection table and sync messages: an entry as conntrackd's ct2msg() describes
 * a kernel entry, and a received entry as the table takes it when it is committed — the way
 * conntrackd's commit (nl_create_conntrack) hands it to ctnetlink: no sequence windows, both
 * directions IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL (TCPWindowTracking off), so
 * the tracker takes the windows from the next packets of each direction (tcp_in_window with
 * td_maxwin 0: "its history is lost for us") and never calls them out of window.
 */
import { IPS_ASSURED, IPS_SEEN_REPLY } from '../conntrack/constants';
import type { Conntrack } from '../conntrack/core';
import { recBase, recProto, TUPLE_WORDS } from '../conntrack/layout';
import type { ConntrackEntryData } from '../conntrack/ops';
import {
  IP_CT_TCP_FLAG_BE_LIBERAL,
  IP_CT_TCP_FLAG_CLOSE_INIT,
  IP_CT_TCP_FLAG_SACK_PERM,
  TCP_CONNTRACK_MAX,
  TCP_CONNTRACK_NONE,
  TCP_CONNTRACK_TIME_WAIT,
  TCP_NONE_SET,
  TCP_SAVE_LEN,
  tcpStateTimeout,
} from '../conntrack/proto/tcp';
import type { TcpTracker } from '../conntrack/proto/tcp';
import { checkTuple } from '../conntrack/restore-check';
import { IPPROTO_TCP } from '../packet/view';
import type { SyncConn } from './conn-msg';

/** Fills c from confirmed entry e (the timeout as whole seconds left at now). */
export function connFromEntry(ct: Conntrack, e: number, now: number, windowScales: boolean, c: SyncConn): void {
  const tb = ct.table;
  const r = recBase(e);
  for (let i = 0; i < TUPLE_WORDS; i++) c.tuple[i] = tb.rec[r + i];
  c.status = tb.status(e);
  c.mark = tb.mark[e];
  const left = Math.floor((tb.timeout(e) - now) / 1000);
  c.timeout = left > 0 ? left : 0;
  c.helper = ct.helperName(e);
  c.master = c.snat = c.dnat = null;
  c.spat = c.dpat = -1;
  if (recProto(tb.rec, e) === IPPROTO_TCP) {
    const tcp = ct.tracker(IPPROTO_TCP) as TcpTracker;
    c.tcpState = tcp.state(e);
    c.wscaleOrig = windowScales ? tcp.windowScale(e, 0) : -1;
    c.wscaleRepl = windowScales ? tcp.windowScale(e, 1) : -1;
  } else c.tcpState = c.wscaleOrig = c.wscaleRepl = -1;
}

/** The TcpTracker.save() data of a received entry: its state and window scales, no windows, liberal. */
function liberalTcp(c: SyncConn): number[] {
  const d = new Array<number>(TCP_SAVE_LEN).fill(0);
  d[0] = c.tcpState;
  d[3] = TCP_NONE_SET;
  // nl_create_conntrack's "workaround": closing states get CLOSE_INIT too
  const flags = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL | (c.tcpState >= TCP_CONNTRACK_TIME_WAIT ? IP_CT_TCP_FLAG_CLOSE_INIT : 0);
  d[14] = c.wscaleOrig > 0 && c.wscaleOrig <= 14 ? c.wscaleOrig : 0;
  d[15] = flags;
  d[20] = c.wscaleRepl > 0 && c.wscaleRepl <= 14 ? c.wscaleRepl : 0;
  d[21] = flags;
  return d;
}

/**
 * The entry to import for received connection c, `elapsedMs` after it arrived, or why it
 * cannot be: its timeout is what the message said less the time since (no longer than the
 * state's timeout here), or the state's timeout when the message had none.
 */
export function entryFromConn(ct: Conntrack, c: SyncConn, elapsedMs: number): ConntrackEntryData | string {
  const t = checkTuple(Array.from(c.tuple));
  if (typeof t === 'string') return t;
  if (c.snat !== null || c.dnat !== null || c.spat >= 0 || c.dpat >= 0) return 'a NAT entry (nfqwall does no NAT yet)';
  let status = c.status & (IPS_SEEN_REPLY | IPS_ASSURED);
  if ((status & IPS_SEEN_REPLY) === 0) status &= ~IPS_ASSURED;
  const proto = t[0] & 0xff;
  let data: number[] = [];
  let limitSec: number;
  if (proto === IPPROTO_TCP) {
    if (c.tcpState <= TCP_CONNTRACK_NONE || c.tcpState >= TCP_CONNTRACK_MAX) return `TCP state ${c.tcpState}`;
    data = liberalTcp(c);
    limitSec = tcpStateTimeout(ct.tun, c.tcpState);
  } else limitSec = ct.tracker(proto).restoreLimit(ct.tun, t, status, data);
  if (limitSec < 0) return `a ${ct.tracker(proto).name} entry no packets could have produced`;
  let helper = c.helper;
  if (helper !== '') {
    const id = ct.helperId(helper);
    if (id === 0 || ct.helper(id)?.protonum !== proto) helper = '';
  }
  const timeoutMs = c.timeout >= 0 ? Math.min(c.timeout * 1000 - elapsedMs, limitSec * 1000) : limitSec * 1000;
  return { tuple: Array.from(t), status, timeoutMs, ageMs: 0, mark: c.mark >= 0 ? c.mark >>> 0 : 0, helper, proto: data };
}
