/**
 * nfqwall's programmatic API (package main). See docs/API.md.
 */
export { openQueue, readKernelQueues, QueueBindError } from './queue/queue';
export type { Queue, QueueOptions, QueueStats, Batch, KernelQueueInfo } from './queue/queue';
export * from './queue/layout';
export { Lab } from './lab/netns';
export type { LabOptions, ExecResult } from './lab/netns';
