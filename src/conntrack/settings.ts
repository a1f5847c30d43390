/**
 * Setting tunables by name: `--set NAME=VALUE`, `nfqwall sysctl NAME=VALUE` and
 * sysctl.conf-style files (`--sysctl FILE`), with the kernel's names.
 */
import { findSysctl, type TunableValues } from './sysctl';

/** Parses and checks one value for NAME; returns [key, value] or an error message. */
export function checkSetting(name: string, value: string): { key: keyof TunableValues; value: number } | string {
  const def = findSysctl(name);
  if (!def) return `unknown tunable '${name.trim()}'`;
  if (def.readonly) return `${def.name} is read-only`;
  const text = value.trim();
  if (!/^-?\d+$/.test(text)) return `invalid value '${text}' for ${def.name} (an integer is expected)`;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < def.min || n > def.max) return `value ${text} out of range for ${def.name} (${def.min}..${def.max})`;
  return { key: def.key, value: n };
}

/** Applies "NAME=VALUE" to tun; returns an error message or null. */
export function applySetting(tun: TunableValues, assignment: string, apply?: (key: keyof TunableValues, value: number) => void): string | null {
  const eq = assignment.indexOf('=');
  if (eq <= 0) return `expected NAME=VALUE, got '${assignment}'`;
  const r = checkSetting(assignment.slice(0, eq), assignment.slice(eq + 1));
  if (typeof r === 'string') return r;
  if (apply) apply(r.key, r.value);
  else tun[r.key] = r.value;
  return null;
}

export interface SysctlFileError {
  line: number;
  message: string;
}

/**
 * Parses a sysctl.conf-style text: `name = value` lines, `#` and `;` comments,
 * blank lines; a leading `-` makes errors on that line ignored, as sysctl does.
 * Names of other subsystems (not net.netfilter.* / nfqwall.*) are errors too:
 * nfqwall cannot set them and must not pretend to.
 */
export function parseSysctlText(text: string): { settings: { key: keyof TunableValues; value: number; line: number }[]; errors: SysctlFileError[] } {
  const settings: { key: keyof TunableValues; value: number; line: number }[] = [];
  const errors: SysctlFileError[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    let l = lines[i].trim();
    if (l === '' || l.startsWith('#') || l.startsWith(';')) continue;
    let ignoreErrors = false;
    if (l.startsWith('-')) {
      ignoreErrors = true;
      l = l.slice(1).trim();
    }
    const eq = l.indexOf('=');
    if (eq <= 0) {
      if (!ignoreErrors) errors.push({ line: i + 1, message: `expected 'name = value'` });
      continue;
    }
    const r = checkSetting(l.slice(0, eq), l.slice(eq + 1));
    if (typeof r === 'string') {
      if (!ignoreErrors) errors.push({ line: i + 1, message: r });
      continue;
    }
    settings.push({ ...r, line: i + 1 });
  }
  return { settings, errors };
}
