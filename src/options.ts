import { checkSavedState, type SavedState } from "./saved-state.js";
import { copyList, invalid } from "./secret.js";
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
   * How long a key cools down when its quota or credit is spent (reason `quota`) and the provider
   * gave no delay of its own: `execute`'s default verdicts use it. A finite number `>= 0`.
   * @defaultValue `3_600_000` (1 hour)
   */
  quotaCooldownMs?: number | undefined;
  /**
   * After how many service faults in a row (5xx, overloaded) without a success between them
   * `execute` cools a key down (reason `server`) for its escalating default. Fewer faults mark
   * nothing: an outage is nobody's key's fault. A positive integer.
   * @defaultValue `3`
   */
  serverFaultThreshold?: number | undefined;
  /**
   * Keys that share one quota (keys of one OpenAI project or one Google Cloud project): one group
   * name (or `undefined`, for a key alone) per key, in key order. A cooldown for reason `rate_limit`
   * or `quota` (or any cooldown marked with `group: true`) cools every key of the group, in the same
   * scope, until the same deadline. A block never spreads.
   * @defaultValue `undefined` (every key alone)
   */
  groups?: readonly (string | undefined)[] | undefined;
  /**
   * How many scopes (models, say) may hold state at once. A scope whose keys are all ready again
   * holds none; past this many, the scope used least recently is dropped, and its cooldowns with
   * it (which errs toward trying a key). A positive integer.
   * @defaultValue `1_024`
   */
  maxScopes?: number | undefined;
  /**
   * Whether `execute` cools a key down before the provider answers 429: when a success shows a
   * budget exhausted (`x-ratelimit-remaining-*: 0` with a reset) or carries a `retry-after`, the key
   * rests until one slot frees (reason `rate_limit`), while the response is returned as usual.
   * `execute`'s `preemptive` option overrides it per call.
   * @defaultValue `true`
   */
  preemptive?: boolean | undefined;
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
  quotaCooldownMs: number;
  serverFaultThreshold: number;
  groups: readonly (string | undefined)[] | undefined;
  maxScopes: number;
  preemptive: boolean;
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
    maxCooldownMs = cooldownMs,
    strategy = { type: "round-robin" },
    maxRetry,
    now = performanceNow,
    maxRetryAfterMs = 86_400_000,
    labels,
    initialState,
    quotaCooldownMs = 3_600_000,
    serverFaultThreshold = 3,
    groups,
    maxScopes = 1_024,
    preemptive = true,
  } = options;
  checkDuration("cooldownMs", cooldownMs);
  checkDuration("maxCooldownMs", maxCooldownMs);
  if (maxCooldownMs < cooldownMs) invalid(RangeError, "maxCooldownMs", `>= cooldownMs (${cooldownMs})`, maxCooldownMs);
  checkDuration("maxRetryAfterMs", maxRetryAfterMs);
  if (maxRetry !== undefined) checkCount("maxRetry", maxRetry);
  if (typeof now !== "function") invalid(TypeError, "now", "a function returning milliseconds", now);
  checkDuration("quotaCooldownMs", quotaCooldownMs);
  checkCount("serverFaultThreshold", serverFaultThreshold);
  checkCount("maxScopes", maxScopes);
  if (typeof preemptive !== "boolean") invalid(TypeError, "preemptive", "a boolean", preemptive);
  if (initialState !== undefined) checkSavedState(initialState);
  return {
    cooldownMs,
    maxCooldownMs,
    maxRetryAfterMs,
    labels: labels === undefined ? labels : copyList<string>("labels", labels, size, (label) => typeof label !== "string" && [TypeError, "a string"]),
    initialState,
    strategy: copyStrategy(strategy, size),
    maxRetry,
    quotaCooldownMs,
    serverFaultThreshold,
    groups: groups === undefined ? groups : copyList<string | undefined>("groups", groups, size, (group) => group !== undefined && typeof group !== "string" && [TypeError, "a string or undefined"]),
    maxScopes,
    preemptive,
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
