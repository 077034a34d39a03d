import { STATUS_NAMES, type KeyStatus, type Reason } from "./key-state.js";
import { invalid } from "./secret.js";

/**
 * One key's saved state, key-wide or (with `scope`) in one scope. The key is named by its
 * fingerprint (SHA-256, hex), never by its text.
 */
export interface SavedKeyState {
  /** SHA-256 of the key, as 64 hex digits. */
  id: string;
  /** The key's state when saved. */
  status: KeyStatus;
  /** For `cooldown`: when it ends, as wall-clock epoch milliseconds. */
  until?: number;
  /** Consecutive failed cooldown windows, which the next default cooldown escalates from (key-wide only). */
  failures?: number;
  /** Why the key is out; `"manual"` when left out. */
  reason?: Reason;
  /** The scope the state is in; absent for the key-wide state. */
  scope?: string;
}

/**
 * What `router.exportState()` returns and the `initialState` option takes: JSON-safe, free of keys,
 * with wall-clock deadlines so that a restore after a restart keeps what is left of each cooldown.
 * Keys that are ready with no failures are left out.
 */
export interface SavedState {
  /** The format's version: 2 when an entry has a scope (which version 1 readers would misread), else 1. */
  version: 1 | 2;
  /** When the state was exported, as wall-clock epoch milliseconds. */
  savedAt: number;
  /** The keys that are not plainly ready: key-wide, and in each scope. */
  keys: SavedKeyState[];
}

/** An entry of saved state as checked: a field left out is `undefined`, and `until` is there only for a cooldown. @internal */
export type CheckedKeyState = { [Field in keyof SavedKeyState]-?: SavedKeyState[Field] | undefined } & { id: string; status: KeyStatus };

/**
 * Checks that `value` has the shape of a {@link SavedState} (say, after `JSON.parse`) and returns a
 * plain copy of its entries, each field read once, so that what is applied is what was checked;
 * throws a `TypeError` naming the first bad field otherwise.
 * @internal
 */
export function checkSavedState(value: unknown, name = "initialState"): CheckedKeyState[] {
  const fail = (path: string, what: string, received: unknown): never => invalid(TypeError, name + path, what, received);
  if (typeof value !== "object" || value === null) fail("", "an object from exportState()", value);
  const { version, savedAt, keys } = value as { version?: unknown; savedAt?: unknown; keys?: unknown };
  if (version !== 1 && version !== 2) fail(".version", "1 or 2", version);
  if (!Number.isFinite(savedAt)) fail(".savedAt", "an epoch time in ms", savedAt);
  if (!Array.isArray(keys)) fail(".keys", "an array", keys);
  const list = keys as unknown[];
  // Two entries for one key (and scope) contradict each other; exportState() never writes that.
  const seen = new Set<unknown>();
  const copies: CheckedKeyState[] = [];
  // An index loop, not forEach: a hole in a sparse array must be seen, not skipped.
  for (let at = 0, length = list.length; at < length; at++) {
    const entry = list[at];
    /** Throws, naming the entry's `field`, unless `valid`. */
    const check = (valid: unknown, field: string, what: string, received: unknown) => valid || fail(`.keys[${at}]${field}`, what, received);
    check(typeof entry === "object" && entry !== null, "", "an object", entry);
    const { id, status, until, failures, reason, scope } = entry as Record<string, unknown>;
    check(scope === undefined || (typeof scope === "string" && version === 2), ".scope", "a string, in version 2", scope);
    // The key-wide entry apart from every scope's, the empty scope included.
    const slot = scope === undefined ? id : `${id as string}\u0000${scope}`;
    check(typeof id === "string" && /^[0-9a-f]{64}$/.test(id) && !seen.has(slot), ".id", "a SHA-256 fingerprint listed once", id);
    seen.add(slot);
    check(STATUS_NAMES.includes(status as KeyStatus), ".status", "a key status", status);
    const cooling = status === "cooldown";
    check(!cooling || Number.isFinite(until), ".until", "an epoch time in ms", until);
    // The router counts failures in 32 bits: a larger count would wrap round to a small one.
    check(failures === undefined || (Number.isInteger(failures) && (failures as number) >= 0 && (failures as number) < 2 ** 32), ".failures", "an integer from 0 to 2^32-1", failures);
    check(reason === undefined || typeof reason === "string", ".reason", "a string", reason);
    copies.push({ id, status, until: cooling ? until : undefined, failures, reason, scope } as CheckedKeyState);
  }
  return copies;
}
