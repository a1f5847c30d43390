import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctxFor, engineFor, errorsOf, forward, savedRule } from '../util';
import { ipv4, udp } from '../../../helpers/packets';
import { NF_ACCEPT as A, NF_DROP as D } from '../../../../src/queue/layout';
import { wallClock } from '../../../../src/rules/wallclock';

const pkt = ipv4({ src: '198.18.1.1', dst: '198.19.2.1' }, udp({ sport: 5000, dport: 53 }));
/** The verdict of rule at wall-clock time iso (UTC), the kernel's timezone minutesWest, the monotonic now 12345. */
function at(rule: string, iso: string, minutesWest = 0): number {
  const { engine } = engineFor(forward(`-m time ${rule} -j ACCEPT`));
  const now = 12345;
  wallClock.set(Date.parse(iso) - now, minutesWest);
  try {
    return engine.evalFilter(ctxFor(pkt), now);
  } finally {
    wallClock.release();
  }
}

test('-m time: daytime window, inclusive bounds, UTC by default', () => {
  const r = '--timestart 09:00 --timestop 17:30:10';
  assert.equal(at(r, '2026-12-08T08:59:59.999Z'), D);
  assert.equal(at(r, '2026-12-08T09:00:00.000Z'), A);
  assert.equal(at(r, '2026-12-08T17:30:10.999Z'), A, 'the stop second is in');
  assert.equal(at(r, '2026-12-08T17:30:11.000Z'), D);
  assert.equal(at('--timestart 22:00 --timestop 02:00', '2026-12-08T23:00:00Z'), A, 'a window over midnight');
  assert.equal(at('--timestart 22:00 --timestop 02:00', '2026-12-08T01:59:00Z'), A);
  assert.equal(at('--timestart 22:00 --timestop 02:00', '2026-12-08T12:00:00Z'), D);
});

test('-m time: weekdays, monthdays, negation; --contiguous counts the early hours to the day before', () => {
  // 2026-12-08 is a Tuesday
  assert.equal(at('--weekdays Tue', '2026-12-08T12:00:00Z'), A);
  assert.equal(at('--weekdays Mon,Wed,6,7', '2026-12-08T12:00:00Z'), D);
  assert.equal(at('! --weekdays Tue', '2026-12-08T12:00:00Z'), D);
  assert.equal(at('--weekdays 7', '2026-12-13T00:00:00Z'), A, 'Sunday is 7');
  assert.equal(at('--monthdays 8,31', '2026-12-08T12:00:00Z'), A);
  assert.equal(at('--monthdays 29', '2028-02-29T12:00:00Z'), A, 'leap day');
  assert.equal(at('--monthdays 1', '2028-03-01T12:00:00Z'), A);
  assert.equal(at('! --monthdays 8', '2026-12-08T12:00:00Z'), D);
  const night = '--timestart 23:00 --timestop 01:00 --weekdays Mon';
  assert.equal(at(night, '2026-12-08T00:30:00Z'), D, 'Tuesday 00:30 without --contiguous: a Tuesday');
  assert.equal(at(`${night} --contiguous`, '2026-12-08T00:30:00Z'), A, 'with it: part of Monday night');
  assert.equal(at(`${night} --contiguous`, '2026-12-07T23:30:00Z'), A);
  assert.equal(at(`${night} --contiguous`, '2026-12-09T00:30:00Z'), D);
});

test('-m time: --datestart/--datestop (seconds, inclusive), --kerneltz subtracts the kernel timezone', () => {
  const r = '--datestart 2026-12-08T10:00 --datestop 2026-12-08T11:00:00';
  assert.equal(at(r, '2026-12-08T09:59:59.999Z'), D);
  assert.equal(at(r, '2026-12-08T10:00:00Z'), A);
  assert.equal(at(r, '2026-12-08T11:00:00.999Z'), A);
  assert.equal(at(r, '2026-12-08T11:00:01Z'), D);
  assert.equal(at('--datestop 2038-01-19T03:14:08', '2038-01-19T03:14:08Z'), A);
  assert.equal(at('', '2038-01-19T03:14:08Z'), D, 'the default --datestop is INT_MAX');
  // minuteswest -60 (UTC+1): 09:30 UTC is 10:30 kernel time
  assert.equal(at('--timestart 10:00 --timestop 11:00 --kerneltz', '2026-12-08T09:30:00Z', -60), A);
  assert.equal(at('--timestart 10:00 --timestop 11:00', '2026-12-08T09:30:00Z', -60), D, 'UTC unless --kerneltz');
  assert.equal(at('--weekdays Wed --kerneltz', '2026-12-08T23:30:00Z', -60), A, 'the weekday of the kernel time');
});

test('-m time: the wall clock offset comes from the batch sample: no clock read per packet', () => {
  const { engine } = engineFor(forward('-m time --datestart 2000-01-01 -j ACCEPT'));
  wallClock.set(0);
  assert.equal(engine.evalFilter(ctxFor(pkt), 1000), D, 'a fixed offset of 0: 1970');
  wallClock.release();
  wallClock.sample(1000);
  assert.equal(engine.evalFilter(ctxFor(pkt), 1000), A, 'sampled: now + offset is the real time');
  assert.ok(Math.abs(wallClock.v[0] + 1000 - Date.now()) < 60_000);
});

test('-m time: iptables-save spelling (as iptables 1.8.9 prints it)', () => {
  assert.equal(
    savedRule('-m time --timestart 10:00 --timestop 11:00:05'),
    '-A FORWARD -m time --timestart 10:00:00 --timestop 11:00:05 --datestop 2038-01-19T03:14:07',
  );
  assert.equal(
    savedRule('-m time --weekdays Mo,Tu,7 --monthdays 1,31 --kerneltz --datestart 2026-01'),
    '-A FORWARD -m time --monthdays 1,31 --weekdays Mon,Tue,Sun --datestart 2026-01-01T00:00:00 --datestop 2038-01-19T03:14:07 --kerneltz',
  );
  assert.equal(
    savedRule('-m time ! --weekdays Sa --datestop 2038-12-31'),
    '-A FORWARD -m time --weekdays Mon,Tue,Wed,Thu,Fri,Sun --datestop 2038-12-31T00:00:00',
  );
  assert.equal(
    savedRule('-m time --timestart 23:00 --timestop 01:00 --contiguous --localtz'),
    '-A FORWARD -m time --timestart 23:00:00 --timestop 01:00:00 --datestop 2038-01-19T03:14:07 --kerneltz --contiguous',
  );
  assert.equal(savedRule('-m time --datestart 2026-00-00'), '-A FORWARD -m time --datestart 2025-11-30T00:00:00 --datestop 2038-01-19T03:14:07');
  assert.equal(savedRule('-m time --weekdays 0x3'), '-A FORWARD -m time --weekdays Wed --datestop 2038-01-19T03:14:07');
  assert.equal(savedRule('-m time --timestart 1:2'), '-A FORWARD -m time --timestart 01:02:00 --timestop 23:59:59 --datestop 2038-01-19T03:14:07');
  assert.equal(
    savedRule('-m time ! --monthdays 0,5').split(' ').slice(4, 6).join(' '),
    '--monthdays 1,2,3,4,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31',
  );
});

test('-m time: errors with LINE:COL', () => {
  const e = (r: string) => errorsOf(forward(`-m time ${r} -j ACCEPT`));
  assert.deepEqual(e('--datestart 2026-02-30T25'), ['e.rules:5:32: Invalid date "2026-02-30T25" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]']);
  assert.deepEqual(e('--datestop 1969'), ['e.rules:5:31: Invalid date "1969" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]']);
  assert.deepEqual(e('--timestart 24:00'), ['e.rules:5:32: invalid time "24:00" specified, should be hh:mm[:ss] format and within the boundaries']);
  assert.deepEqual(e('--timestart 10'), ['e.rules:5:32: invalid time "10" specified, should be hh:mm[:ss] format and within the boundaries']);
  assert.deepEqual(e('--weekdays Mon,0'), ['e.rules:5:31: No, the week does NOT begin with Sunday.']);
  assert.deepEqual(e('--weekdays Xy'), ['e.rules:5:31: Xy is not a valid day specifier']);
  assert.deepEqual(e('--monthdays 32'), ['e.rules:5:32: 32 is not a valid day for --monthdays']);
  assert.deepEqual(e('--timestart 10:00 --timestop 11:00 --contiguous'), [
    'e.rules:5:15: time: --contiguous only makes sense when stoptime is smaller than starttime',
  ]);
  assert.deepEqual(e('--kerneltz --utc'), ['e.rules:5:31: time: option "--utc" cannot be used together with "--kerneltz"']);
  assert.deepEqual(e('--timestart 10:00 --timestart 11:00'), ['e.rules:5:38: time: option "--timestart" can only be used once']);
});
