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
  if (typeof value === "number") return String(value);
  if (value === null) return "null";
  return Array.isArray(value) ? "an array" : `a ${typeof value}`;
}
