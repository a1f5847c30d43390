/**
 * What differs between the daemon's modes, behind one interface; src/daemon/lifecycle.ts runs
 * every mode through it. Two implementations:
 *   LocalBackend (local.ts)  the firewall in this thread: one queue and one table (or, with
 *                            --accept-all, every queue answered ACCEPT without a table)
 *   WorkerPool  (pool.ts)    one worker thread per queue, each with its own table (worker.ts)
 */
import type { LoadedRules } from '../pipeline/load-rules';
import type { QueueStats } from '../queue/queue';
import type { TunableValues } from '../conntrack/sysctl';
import type { TableLink } from './control-ops';
import type { Collected } from './metrics';
import type { Res } from './table-ops';
import type { SetDescriptor } from '../rules/sets/registry';
import type { ExpectationData, StateFileWriter } from './state';

export interface Started {
  queues: number[];
  portids: number[];
  /** worker threads (0: the queues are read in this thread) */
  workers: number;
}

export interface Backend {
  readonly tun: TunableValues;
  /** worker threads (0: none) */
  readonly workers: number;
  /** the connection tables in queue order, once started (none with --accept-all) */
  readonly tables: readonly TableLink[];
  /** restored entries no table has claimed yet */
  readonly parked?: TableLink;
  /** Restores the state file before start(), so its entries are there for the first packet. */
  restore(file: string): void;
  /** Binds every queue: from its return each queued packet is decided. Throws, leaving nothing open, when one cannot be bound. */
  start(): Promise<Started>;
  /** nf_conntrack_count over every table */
  count(): number;
  /**
   * Puts rules the daemon has checked in force in every table, each between two of its
   * batches; returns the errors of a table that refused them, and the batches the tables
   * decided (with the old rules) while compiling their copy (worker threads compile their own).
   */
  swapRules(r: { text: string; rules: LoadedRules }): Promise<{ errors: string[]; batches: number }>;
  /** batches decided so far by the tables of this thread (none in worker threads) */
  batchesHere(): number;
  /** Metrics: every table's figures and the queues' counters. */
  collect(): Promise<Omit<Collected, 'ruleCount' | 'reloads' | 'reloadFailures'>>;
  /** The expectations of every table (and of the unclaimed restored entries), for a state file saved at savedAt (wall clock). */
  stateExpectations(savedAt: number): Promise<ExpectationData[]>;
  /** Writes every table's entries (and the unclaimed restored ones) into w. */
  saveInto(w: StateFileWriter, savedAt: number): Promise<void>;
  /** Gives every worker thread this list of ipsets (their storage is shared); absent: one thread. */
  syncIpsets?(sets: SetDescriptor[]): Promise<void>;
  /** test hooks (NFQWALL_TEST_HOOKS=1) */
  debug?(req: Res): Promise<Res>;
  /** Closes the queues (the kernel gets a verdict for every packet they hold); the tables stay for the final save. */
  closeQueues(): Promise<QueueStats[]>;
  /** Ends what is left (timers, worker threads). */
  close(): Promise<void>;
}
