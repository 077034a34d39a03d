/**
 * The masked form of a key for people and logs: its first and last 4 characters around `…` when the
 * key has 16 or more characters (so at least half of it stays hidden), else `#<index>`.
 * @internal
 */
export function maskKey(key: string, index: number): string {
  return key.length >= 16 ? `${key.slice(0, 4)}…${key.slice(-4)}` : `#${index}`;
}

/**
 * How an error message shows a value it rejects: numbers as themselves, anything else only by its
 * type, so that a key passed in the wrong place never ends up in a message.
 * @internal
 */
export function describe(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean" || value == null) return String(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/**
 * Throws `kind` with the library's one message shape: "`name` must be `expected`, received …".
 * @internal
 */
export function invalid(kind: new (message: string) => Error, name: string, expected: string, value: unknown): never {
  throw new kind(`${name} must be ${expected}, received ${describe(value)}`);
}
