/** The notrack statement: -j CT --notrack (before conntrack: the raw slots only, checked with the chain graph). */
import type { ParsedTarget } from '../types';
import { iptablesTarget, type RuleBuild } from './build';

export function notrackTarget(b: RuleBuild, path: string): ParsedTarget {
  return iptablesTarget(b, 'CT', [['notrack', []]], `${path}.notrack`);
}
