/**
 * -m time: libxt_time.c (--timestart/--timestop hh:mm[:ss], --datestart/--datestop
 * YYYY[-MM[-DD[Thh[:mm[:ss]]]]] read as UTC, [!] --weekdays, [!] --monthdays, --kerneltz (and
 * --localtz, its old name), --utc, --contiguous) and xt_time.c's time_mt: the wall-clock
 * second when the packet is decided, UTC unless --kerneltz, where the kernel subtracts
 * sys_tz.tz_minuteswest (the timezone settimeofday gave the kernel, as gettimeofday reports
 * it; not /etc/localtime). The wall clock comes from src/rules/wallclock.ts, sampled per batch.
 * Save as iptables 1.8 prints it: --datestop always (its default, INT_MAX, is not the LONG_MAX
 * time_print_date leaves out), --timestart/--timestop together.
 */
import type { CompiledMatch, MatchModule, Token } from '../types';
import type { PacketContext } from '../../conntrack/context';
import { wallClock } from '../wallclock';

const ALL_MONTHDAYS = 0xfffffffe;
const ALL_WEEKDAYS = 0xfe;
const MAX_DAYTIME = 24 * 60 * 60 - 1;
const INT_MAX = 0x7fffffff;
const SECONDS_PER_DAY = 86400;
const WEEK_DAYS = ['', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const DATE_FORMAT = 'YYYY[-MM[-DD[Thh[:mm[:ss]]]]]';

export interface TimeState {
  dateStart: number;
  dateStop: number;
  daytimeStart: number;
  daytimeStop: number;
  weekdays: number;
  monthdays: number;
  kerneltz: boolean;
  utc: boolean;
  contiguous: boolean;
  /** options given (each once, as xtables_option_parse) */
  seen: string[];
}

/** strtoul(s, &end, base): the value and where it stopped (digits only; no sign or spaces in a rule word). */
function strtoul(s: string, base: 0 | 10): { v: number; rest: string } {
  let b = 10;
  let i = 0;
  if (base === 0 && s[0] === '0') {
    if ((s[1] === 'x' || s[1] === 'X') && /[0-9a-fA-F]/.test(s[2] ?? '')) {
      b = 16;
      i = 2;
    } else b = 8;
  }
  const digit = b === 16 ? /[0-9a-fA-F]/ : b === 8 ? /[0-7]/ : /[0-9]/;
  let v = 0;
  for (; i < s.length && digit.test(s[i]); i++) v = v * b + parseInt(s[i], b);
  return { v, rest: s.slice(i) };
}

/** time_parse_date: seconds since the epoch (UTC, mktime's normalisation) or an error. */
function parseDate(s: string): number | string {
  const bad = `Invalid date "${s}" specified. Should be ${DATE_FORMAT}`;
  const parts = [1970, 1, 1, 0, 0, 0];
  const seps = ['-', '-', 'T', ':', ':', ''];
  const max = [2038, 12, 31, 23, 59, 59];
  let rest = s;
  for (let k = 0; k < 6; k++) {
    const r = strtoul(rest, 10);
    if ((r.rest[0] !== seps[k] && r.rest !== '') || (k === 5 && r.rest !== '') || r.v > max[k] || (k === 0 && r.v < 1970)) return bad;
    parts[k] = r.v;
    if (r.rest === '') break;
    rest = r.rest.slice(1);
  }
  const t = Date.UTC(parts[0], parts[1] - 1, parts[2], parts[3], parts[4], parts[5]) / 1000;
  if (t < 0) return 'mktime returned an error';
  return t;
}

/** time_parse_minutes: hh:mm[:ss] in seconds of the day, or an error. */
function parseDaytime(s: string): number | string {
  const bad = `invalid time "${s}" specified, should be hh:mm[:ss] format and within the boundaries`;
  const h = strtoul(s, 10);
  if (h.rest[0] !== ':' || h.v > 23) return bad;
  const m = strtoul(h.rest.slice(1), 10);
  if ((m.rest[0] !== ':' && m.rest !== '') || m.v > 59) return bad;
  let sec = 0;
  if (m.rest !== '') {
    const r = strtoul(m.rest.slice(1), 10);
    if (r.rest !== '' || r.v > 59) return bad;
    sec = r.v;
  }
  return h.v * 3600 + m.v * 60 + sec;
}

/** my_strseg: the comma-separated pieces, each cut to the C buffer's length (2 or 3 characters). */
function segments(arg: string, keep: number): string[] {
  const out: string[] = [];
  let rest: string | null = arg;
  while (rest !== null && rest !== '') {
    const i: number = rest.indexOf(',');
    out.push((i < 0 ? rest : rest.slice(0, i)).slice(0, keep));
    rest = i < 0 ? null : rest.slice(i + 1);
  }
  return out;
}

function parseMonthdays(arg: string): number | string {
  let ret = 0;
  for (const day of segments(arg, 2)) {
    const r = strtoul(day, 0);
    if ((r.rest[0] !== ',' && r.rest !== '') || r.v > 31) return `${day} is not a valid day for --monthdays`;
    ret |= 1 << r.v;
  }
  return ret >>> 0;
}

function parseWeekdays(arg: string): number | string {
  let ret = 0;
  for (const day of segments(arg, 3)) {
    const r = strtoul(day, 0);
    if (r.rest === '') {
      if (r.v === 0) return 'No, the week does NOT begin with Sunday.';
      ret |= 1 << r.v;
      continue;
    }
    let valid = false;
    for (let i = 1; i < WEEK_DAYS.length; i++)
      if (day.length >= 2 && day.slice(0, 2) === WEEK_DAYS[i].slice(0, 2)) {
        ret |= 1 << i;
        valid = true;
      }
    if (!valid) return `${day} is not a valid day specifier`;
  }
  return ret >>> 0;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const daytime = (t: number) => `${pad(Math.floor(t / 3600))}:${pad(Math.floor(t / 60) % 60)}:${pad(t % 60)}`;
function isoDate(t: number): string {
  const d = new Date(t * 1000);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${daytime(d.getUTCHours() * 3600 + d.getUTCMinutes() * 60 + d.getUTCSeconds())}`;
}

const EXCLUSIVE: Record<string, string[]> = { localtz: ['utc'], utc: ['localtz', 'kerneltz'], kerneltz: ['utc'] };

export const timeMatch: MatchModule<TimeState> = {
  name: 'time',
  options: [
    { name: 'datestart', invertible: false, args: 1 },
    { name: 'datestop', invertible: false, args: 1 },
    { name: 'timestart', invertible: false, args: 1 },
    { name: 'timestop', invertible: false, args: 1 },
    { name: 'contiguous', invertible: false, args: 0 },
    { name: 'weekdays', invertible: true, args: 1 },
    { name: 'monthdays', invertible: true, args: 1 },
    { name: 'localtz', invertible: false, args: 0 },
    { name: 'utc', invertible: false, args: 0 },
    { name: 'kerneltz', invertible: false, args: 0 },
  ],
  create: () => ({
    dateStart: 0,
    dateStop: INT_MAX,
    daytimeStart: 0,
    daytimeStop: MAX_DAYTIME,
    weekdays: ALL_WEEKDAYS,
    monthdays: ALL_MONTHDAYS,
    kerneltz: false,
    utc: false,
    contiguous: false,
    seen: [],
  }),
  parse(s, opt, args, inv, optTok, env) {
    if (s.seen.includes(opt)) return env.error(optTok, `time: option "--${opt}" can only be used once`);
    const clash = (EXCLUSIVE[opt] ?? []).find((o) => s.seen.includes(o));
    if (clash) return env.error(optTok, `time: option "--${opt}" cannot be used together with "--${clash}"`);
    s.seen.push(opt);
    const a: Token | undefined = args[0];
    const put = <T>(r: T | string, set: (v: T) => void) => (typeof r === 'string' ? env.error(a!, r) : set(r));
    switch (opt) {
      case 'datestart':
        return put(parseDate(a!.text), (v) => (s.dateStart = v));
      case 'datestop':
        return put(parseDate(a!.text), (v) => (s.dateStop = v));
      case 'timestart':
        return put(parseDaytime(a!.text), (v) => (s.daytimeStart = v));
      case 'timestop':
        return put(parseDaytime(a!.text), (v) => (s.daytimeStop = v));
      case 'contiguous':
        s.contiguous = true;
        return;
      case 'weekdays':
        return put(parseWeekdays(a!.text), (v) => (s.weekdays = (inv ? v ^ ALL_WEEKDAYS : v) >>> 0));
      case 'monthdays':
        return put(parseMonthdays(a!.text), (v) => (s.monthdays = (inv ? v ^ ALL_MONTHDAYS : v) >>> 0));
      case 'utc':
        s.utc = true;
        return;
      default: // localtz (iptables warns that it is being replaced by --kerneltz) and kerneltz
        s.kerneltz = true;
    }
  },
  finalize(s, _rule, at, env) {
    if (s.contiguous && s.daytimeStart < s.daytimeStop) env.error(at, 'time: --contiguous only makes sense when stoptime is smaller than starttime');
  },
  familyOf: () => 0,
  save(s) {
    const out: string[] = [];
    if (s.daytimeStart !== 0 || s.daytimeStop !== MAX_DAYTIME) out.push('--timestart', daytime(s.daytimeStart), '--timestop', daytime(s.daytimeStop));
    if (s.monthdays !== ALL_MONTHDAYS) {
      const days: number[] = [];
      for (let i = 1; i <= 31; i++) if ((s.monthdays >>> i) & 1) days.push(i);
      out.push('--monthdays', days.join(','));
    }
    if (s.weekdays !== ALL_WEEKDAYS) out.push('--weekdays', WEEK_DAYS.filter((_, i) => i > 0 && (s.weekdays >>> i) & 1).join(','));
    if (s.dateStart !== 0) out.push('--datestart', isoDate(s.dateStart));
    out.push('--datestop', isoDate(s.dateStop));
    if (s.kerneltz) out.push('--kerneltz');
    if (s.contiguous) out.push('--contiguous');
    return out;
  },
  compile(s) {
    return new TimeMatch(s);
  },
  inService(uses) {
    wallClock.wantTz = uses.some((u) => (u.state as TimeState).kerneltz);
  },
};

/** days_since_epoch of xt_time.c: the first day of each year 2039 … 1970, newest first. */
const DSE_FIRST = 2039;
const DAYS_SINCE_EPOCH = new Int32Array(DSE_FIRST - 1970 + 1);
for (let i = 0; i < DAYS_SINCE_EPOCH.length; i++) DAYS_SINCE_EPOCH[i] = Date.UTC(DSE_FIRST - i, 0, 1) / 86400000;
const DAYS_SINCE_YEAR = Int32Array.of(0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334);
const DAYS_SINCE_LEAPYEAR = Int32Array.of(0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335);
const isLeap = (y: number) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);

/** localtime_3: the day of the month of day dse since the epoch, with the kernel's tables. */
function monthday(dse: number): number {
  let i = 0;
  let year = DSE_FIRST;
  for (; DAYS_SINCE_EPOCH[i] > dse; i++, year--);
  const w = dse - DAYS_SINCE_EPOCH[i];
  const dsy = isLeap(year) ? DAYS_SINCE_LEAPYEAR : DAYS_SINCE_YEAR;
  let m = dsy.length - 1;
  for (; m > 0 && dsy[m] > w; m--);
  return w - dsy[m] + 1;
}

class TimeMatch implements CompiledMatch {
  private readonly dateStart: number;
  private readonly dateStop: number;
  private readonly start: number;
  private readonly stop: number;
  private readonly weekdays: number;
  private readonly monthdays: number;
  private readonly kerneltz: boolean;
  private readonly contiguous: boolean;
  private readonly clock = wallClock.v;
  constructor(s: TimeState) {
    this.dateStart = s.dateStart;
    this.dateStop = s.dateStop;
    this.start = s.daytimeStart;
    this.stop = s.daytimeStop;
    this.weekdays = s.weekdays | 0;
    this.monthdays = s.monthdays | 0;
    this.kerneltz = s.kerneltz;
    this.contiguous = s.contiguous;
  }

  match(_ctx: PacketContext, now: number): boolean {
    const c = this.clock;
    let stamp = Math.floor((now + c[0]) / 1000);
    if (this.kerneltz) stamp -= 60 * c[1];
    if (stamp < this.dateStart || stamp > this.dateStop) return false;
    const t = stamp - Math.floor(stamp / SECONDS_PER_DAY) * SECONDS_PER_DAY;
    if (this.start < this.stop) {
      if (t < this.start || t > this.stop) return false;
    } else {
      if (t < this.start && t > this.stop) return false;
      // --contiguous: the early part of the window belongs to the day it started on
      if (this.contiguous && t <= this.stop) stamp -= SECONDS_PER_DAY;
    }
    const dse = Math.floor(stamp / SECONDS_PER_DAY);
    const weekday = ((4 + dse - 1) % 7) + 1;
    if ((this.weekdays & (1 << weekday)) === 0) return false;
    if (this.monthdays !== (ALL_MONTHDAYS | 0) && (this.monthdays & (1 << monthday(dse))) === 0) return false;
    return true;
  }
}
