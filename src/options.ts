import { describe } from "./secret.js";
import { copyStrategy, type RoutingStrategy } from "./strategy.js";

/** Options of {@link CredentialRouter}. All are optional. */
export interface CredentialRouterOptions {
  /**
   * How long a key cools down after `markError`, in milliseconds. A finite number `>= 0`.
   * @defaultValue `30_000`
   */
  cooldownMs?: number;
  /**
   * How the next key is chosen among the ready ones.
   * @defaultValue `{ type: "round-robin" }`
   */
  strategy?: RoutingStrategy;
  /**
   * How many keys a caller should try for one request before giving up; a positive integer. The
   * router only reports it (`router.maxRetry`); leave it out to mean "every key".
   * @defaultValue `undefined`
   */
  maxRetry?: number;
  /**
   * The clock: a monotonic time in milliseconds. It is read at each call that needs the time, so
   * fake timers installed after the router was made still apply.
   * @defaultValue `() => performance.now()`
   */
  now?: () => number;
}

/** Options after checking, with defaults filled in. @internal */
export interface ResolvedOptions {
  cooldownMs: number;
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
export function resolveOptions(options: CredentialRouterOptions | undefined, size: number): ResolvedOptions {
  if (options === undefined) options = {};
  else if (typeof options !== "object" || options === null) {
    throw new TypeError(`options must be an object, received ${describe(options)}`);
  }
  const { cooldownMs = 30_000, strategy = { type: "round-robin" }, maxRetry, now = performanceNow } = options;
  checkDuration("cooldownMs", cooldownMs);
  if (maxRetry !== undefined && !(Number.isInteger(maxRetry) && maxRetry > 0)) {
    throw new RangeError(`maxRetry must be a positive integer, received ${describe(maxRetry)}`);
  }
  if (typeof now !== "function") {
    throw new TypeError(`now must be a function returning milliseconds, received ${describe(now)}`);
  }
  return { cooldownMs, strategy: copyStrategy(strategy, size), maxRetry, now };
}

/**
 * Throws a `RangeError` naming `name` unless `value` is a finite number `>= 0`.
 * @internal
 */
export function checkDuration(name: string, value: unknown): asserts value is number {
  if (typeof value !== "number" || !(value >= 0) || value === Infinity) {
    throw new RangeError(`${name} must be a finite number >= 0, received ${describe(value)}`);
  }
}
