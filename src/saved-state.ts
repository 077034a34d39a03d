import { invalid } from "./secret.js";

/**
 * One key's saved state. The key is named by its fingerprint (SHA-256, hex), never by its text.
 */
export interface SavedKeyState {
  /** SHA-256 of the key, as 64 hex digits. */
  id: string;
  /** The key's state when saved. */
  status: "ready" | "cooldown" | "blocked" | "disabled";
  /** For `cooldown`: when it ends, as wall-clock epoch milliseconds. */
  until?: number;
  /** Consecutive failed cooldown windows, which the next default cooldown escalates from. */
  failures?: number;
}

/**
 * What `router.exportState()` returns and the `initialState` option takes: JSON-safe, free of keys,
 * with wall-clock deadlines so that a restore after a restart keeps what is left of each cooldown.
 * Keys that are ready with no failures are left out.
 */
export interface SavedState {
  /** The format's version. */
  version: 1;
  /** When the state was exported, as wall-clock epoch milliseconds. */
  savedAt: number;
  /** The keys that are not plainly ready. */
  keys: SavedKeyState[];
}

const STATUSES: readonly unknown[] = ["ready", "cooldown", "blocked", "disabled"];

/**
 * Checks that `value` has the shape of a {@link SavedState} (say, after `JSON.parse`) and throws a
 * `TypeError` naming the first bad field otherwise.
 * @internal
 */
export function checkSavedState(value: unknown, name = "initialState"): asserts value is SavedState {
  const fail = (path: string, what: string, received: unknown): never => invalid(TypeError, name + path, what, received);
  const { version, savedAt, keys } = (value ?? {}) as { version?: unknown; savedAt?: unknown; keys?: unknown };
  if (typeof value !== "object" || value === null) fail("", "an object from exportState()", value);
  if (version !== 1) fail(".version", "1", version);
  if (!Number.isFinite(savedAt)) fail(".savedAt", "an epoch time in ms", savedAt);
  if (!Array.isArray(keys)) fail(".keys", "an array", keys);
  // Two entries for one key contradict each other; exportState() never writes that.
  const seen = new Set<unknown>();
  (keys as unknown[]).forEach((entry, at) => {
    const path = `.keys[${at}]`;
    const { id, status, until, failures } = (entry ?? {}) as Record<string, unknown>;
    if (typeof entry !== "object" || entry === null) fail(path, "an object", entry);
    if (typeof id !== "string" || !/^[0-9a-f]{64}$/.test(id) || seen.has(id)) fail(`${path}.id`, "a SHA-256 fingerprint not listed before", id);
    seen.add(id);
    if (!STATUSES.includes(status)) fail(`${path}.status`, "a key status", status);
    if (status === "cooldown" && !Number.isFinite(until)) fail(`${path}.until`, "an epoch time in ms", until);
    // The router counts failures in 32 bits: a larger count would wrap round to a small one.
    if (failures !== undefined && !(Number.isInteger(failures) && (failures as number) >= 0 && (failures as number) < 2 ** 32)) {
      fail(`${path}.failures`, "an integer from 0 to 4294967295", failures);
    }
  });
}
