/** Numbers in rule files as libxtables and glibc read them. */

/** An unsigned C integer in base 0 (0x… hex, 0… octal, else decimal) with nothing else around it, or -1. */
export function cNumber(s: string): number {
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) return parseInt(s.slice(2), 16);
  if (/^0[0-7]*$/.test(s)) return s.length > 1 ? parseInt(s.slice(1), 8) : 0;
  if (/^[1-9][0-9]*$/.test(s)) return Number(s);
  return -1;
}

/**
 * xtables_strtoui(s, NULL, &v, min, max): strtoumax with base 0, leading white space
 * and '+' allowed, no '-', nothing after the digits. -1 when invalid or out of range.
 */
export function xtablesStrtoui(s: string, min: number, max: number): number {
  const v = cNumber(s.replace(/^[ \t\n\v\f\r]*\+?/, ''));
  return v >= min && v <= max ? v : -1;
}
