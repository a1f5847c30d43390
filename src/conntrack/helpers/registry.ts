/**
 * The helper registry: helper names ↔ small integer ids stored per entry.
 *
 * Id 0 means "no helper". Every Conntrack instance owns its own set of helper
 * instances (createHelpers()) because helpers keep per-entry state in typed arrays
 * indexed by entry id.
 */
import { PKT_ACCEPT } from '../constants';
import type { PacketView } from '../../packet/view';
import { FtpHelper } from './ftp';
import type { TunableValues } from '../sysctl';
import type { ConntrackHelper, HelperHost } from './helper';

export const HELPER_NONE = 0;
export const HELPER_FTP = 1;

/** Names by id; index 0 (no helper) is the empty string. */
export const HELPER_NAMES: readonly string[] = ['', 'ftp'];
/** The transport protocol each helper is registered for, by id (nf_conntrack_helper's tuple.dst.protonum). */
export const HELPER_PROTOS: readonly number[] = [0, 6];

/** Id of the helper called `name` (as given to `-j CT --helper NAME`), 0 if unknown. */
export function helperId(name: string): number {
  for (let id = 1; id < HELPER_NAMES.length; id++) if (HELPER_NAMES[id] === name) return id;
  return 0;
}

/** Name of helper `id`; '' for 0 or an unknown id. */
export function helperName(id: number): string {
  return id > 0 && id < HELPER_NAMES.length ? HELPER_NAMES[id] : '';
}

/**
 * Occupies index 0 of createHelpers() so that the array has no hole and can be
 * iterated (resize/init) without checks. It is never attached to an entry
 * (helper id 0 = no helper) and does nothing.
 */
class NoHelper implements ConntrackHelper {
  readonly name = '';
  readonly protonum = 0;
  resize(_capacity: number): void {}
  init(_e: number): void {}
  help(_host: HelperHost, _e: number, _dir: number, _ctinfo: number, _pkt: PacketView, _now: number): number {
    return PKT_ACCEPT;
  }
  expectTimeout(_tun: TunableValues): number {
    return -1;
  }
}

/**
 * A fresh set of helper instances, index = helper id (index 0 is the inert
 * NoHelper that stands for "no helper").
 */
export function createHelpers(): ConntrackHelper[] {
  const helpers: ConntrackHelper[] = [new NoHelper(), new FtpHelper()];
  return helpers;
}
