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

/** What `copyList` is told of a bad entry: the error to throw and what was expected; nothing when it is good. */
type Problem = readonly [kind: new (message: string) => Error, expected: string] | false | undefined;

/**
 * Checks an option that holds one entry per key (labels, groups, weights, tiers) and returns a frozen
 * copy; a message names the entry's index.
 * @internal
 */
export function copyList<T>(name: string, list: unknown, size: number, check: (value: unknown) => Problem): readonly T[] {
  if (!Array.isArray(list) || list.length !== size) invalid(TypeError, name, `an array of ${size}`, list);
  for (let index = 0; index < size; index++) {
    const problem = check(list[index]);
    if (problem) invalid(problem[0], `${name}[${index}]`, problem[1], list[index]);
  }
  return Object.freeze([...list]) as readonly T[];
}

/** A number check for `copyList`: a `TypeError` for a non-number, a `RangeError` when `valid` says no. */
export const numberIn = (valid: (value: number) => boolean, expected: string) => (value: unknown): Problem =>
  typeof value !== "number" ? [TypeError, "a number"] : !valid(value) && [RangeError, expected];
