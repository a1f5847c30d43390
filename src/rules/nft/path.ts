/** Errors of the nftables front end, named by the JSON path of what is at fault. */
export class NftError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'NftError';
  }
}

/** A JSON object's single key (nft writes each expression and statement as { KIND: VALUE }). */
export function kindOf(x: unknown): string | null {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return null;
  const keys = Object.keys(x);
  return keys.length === 1 ? keys[0] : null;
}

export function isObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}
