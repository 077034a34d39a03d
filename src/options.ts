import { checkSavedState, type SavedState } from "./saved-state.js";
import { invalid } from "./secret.js";
import { copyStrategy, type RoutingStrategy } from "./strategy.js";

/** Options of {@link CredentialRouter}. All are optional. */
export interface CredentialRouterOptions {
  /**
   * How long a key cools down after `markError`, in milliseconds: the first window of a run of
   * failures, which `maxCooldownMs` lets grow. A finite number `>= 0`.
   * @defaultValue `30_000`
   */
  cooldownMs?: number | undefined;
  /**
   * The longest a default cooldown may grow to. The n-th consecutive failed cooldown window of a key
   * lasts `cooldownMs * 2^(n-1)`, capped here (1 s, 2 s, 4 s, … for `cooldownMs: 1000`);
   * `markSuccess` and `clearCooldown` start the count again. Equal to `cooldownMs` means no growth.
   * @defaultValue `cooldownMs`
   */
  maxCooldownMs?: number | undefined;
  /**
   * The longest a server-given delay (`markErrorWithDelay`) may cool a key; longer ones are cut to it,
   * so one bad header cannot shelve a key for a year.
   * @defaultValue `86_400_000` (24 hours)
   */
  maxRetryAfterMs?: number | undefined;
  /**
   * A name for each key, shown to people in events and snapshots instead of the key: one string per
   * key, in the same order.
   * @defaultValue `undefined`
   */
  labels?: readonly string[] | undefined;
  /**
   * State saved by `router.exportState()` to start from, such as after a restart. Keys are matched
   * by fingerprint, so the key list may have been reordered or changed; entries for keys no longer
   * present are ignored, cooldowns that have ended since are dropped.
   * @defaultValue `undefined`
   */
  initialState?: SavedState | undefined;
  /**
   * How the next key is chosen among the ready ones.
   * @defaultValue `{ type: "round-robin" }`
   */
  strategy?: RoutingStrategy | undefined;
  /**
   * How many keys to try for one request before giving up, a positive integer: `execute`'s default
   * `maxAttempts`, and `router.maxRetry` for callers that retry by hand. Leave it out for "every key".
   * @defaultValue `undefined`
   */
  maxRetry?: number | undefined;
  /**
   * The clock: a monotonic time in milliseconds. It is read at each call that needs the time, so
   * fake timers installed after the router was made still apply.
   * @defaultValue `() => performance.now()`
   */
  now?: (() => number) | undefined;
}

/** Options after checking, with defaults filled in. @internal */
export interface ResolvedOptions {
  cooldownMs: number;
  maxCooldownMs: number;
  maxRetryAfterMs: number;
  labels: readonly string[] | undefined;
  initialState: SavedState | undefined;
  strategy: RoutingStrategy;
  maxRetry: number | undefined;
  now: () => number;
}

/** Reading `performance` at each call, not once, is what lets fake timers replace it later. */
const performanceNow = (): number => performance.now();

/**
 * Checks every option and fills in defaults; throws before anything is built.
 * @internal
 */
export function resolveOptions(options: CredentialRouterOptions = {}, size: number): ResolvedOptions {
  if (typeof options !== "object" || options === null) invalid(TypeError, "options", "an object", options);
  const {
    cooldownMs = 30_000,
    strategy = { type: "round-robin" },
    maxRetry,
    now = performanceNow,
    maxRetryAfterMs = 86_400_000,
    labels,
    initialState,
  } = options;
  checkDuration("cooldownMs", cooldownMs);
  const { maxCooldownMs = cooldownMs } = options;
  checkDuration("maxCooldownMs", maxCooldownMs);
  if (maxCooldownMs < cooldownMs) invalid(RangeError, "maxCooldownMs", `>= cooldownMs (${cooldownMs})`, maxCooldownMs);
  checkDuration("maxRetryAfterMs", maxRetryAfterMs);
  if (maxRetry !== undefined) checkCount("maxRetry", maxRetry);
  if (typeof now !== "function") invalid(TypeError, "now", "a function returning milliseconds", now);
  if (labels !== undefined) {
    if (!Array.isArray(labels) || labels.length !== size) invalid(TypeError, "labels", `an array of ${size}`, labels);
    for (let index = 0; index < size; index++) {
      if (typeof labels[index] !== "string") invalid(TypeError, `labels[${index}]`, "a string", labels[index]);
    }
  }
  if (initialState !== undefined) checkSavedState(initialState);
  return {
    cooldownMs,
    maxCooldownMs,
    maxRetryAfterMs,
    labels: labels && Object.freeze([...labels]),
    initialState,
    strategy: copyStrategy(strategy, size),
    maxRetry,
    now: now === performanceNow ? now : finiteClock(now),
  };
}

/**
 * A caller's clock that can never poison the router: a reading that is not a finite number (NaN from
 * a bad subtraction, say) counts as the last good one, so that no deadline becomes NaN and every
 * cooldown still ends.
 */
function finiteClock(now: () => number): () => number {
  let last = 0;
  return () => {
    const time = now();
    return typeof time === "number" && time - time === 0 ? (last = time) : last;
  };
}

/**
 * Throws a `RangeError` naming `name` unless `value` is a finite number `>= 0`.
 * @internal
 */
export function checkDuration(name: string, value: unknown): asserts value is number {
  if (!(typeof value === "number" && value >= 0 && value < Infinity)) invalid(RangeError, name, "a finite number >= 0", value);
}

/**
 * Throws a `RangeError` naming `name` unless `value` is a positive integer.
 * @internal
 */
export function checkCount(name: string, value: unknown): asserts value is number {
  if (!(Number.isInteger(value) && (value as number) > 0)) invalid(RangeError, name, "a positive integer", value);
}
