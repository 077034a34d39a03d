import { NoKeyAvailableError } from "./errors.js";
import type { KeyRef } from "./events.js";
import { checkCount, checkDuration } from "./options.js";
import { parseRetryAfter, parseRetryDelay, type HeadersLike } from "./retry-after.js";
import type { CredentialRouter } from "./router.js";
import { invalid } from "./secret.js";

/**
 * What `execute` passes to `fn` besides the key: which key it is (index, masked hint, label — for
 * logs) and the attempt.
 */
export interface KeyContext extends KeyRef {
  /** Which attempt this is within the `execute` call, from 1. */
  attempt: number;
  /**
   * The caller's `signal`, or one of this call's own that never aborts: pass it on to `fetch`. A
   * getter (the call's own is made on first read), so read it by name rather than by spreading the
   * context.
   */
  readonly signal: AbortSignal;
}

/**
 * What one attempt of `execute` came to, as `classify` sees it. `status` and `headers` are read
 * from the resolved value or the thrown error: a fetch `Response`, an SDK's `APIError`
 * (`status`, `headers`), or an error with `response.status` / `response.headers` (axios and others).
 */
export type Outcome = KeyRef & {
  /** Which attempt, from 1. */
  attempt: number;
  /** The HTTP status, when one was found. */
  status: number | undefined;
  /** The response headers, when found. */
  headers: HeadersLike | undefined;
} & ({ type: "resolved"; value: unknown } | { type: "rejected"; error: unknown });

/**
 * What a key deserves after an attempt, and whether `execute` goes on.
 *
 * - `success`: the key worked (`markSuccess`); stop and pass the outcome through.
 * - `pass`: not the key's fault and not worth another key (a 400, 404, 422…): stop, no mark.
 * - `retry`: not the key's fault, but another key may do (a network failure): no mark, next key.
 * - `cooldown`: cool the key down for `delayMs`, or else for the server's wait hint, or else for the
 *   escalating default; next key.
 * - `blocked`, `disabled`: take the key out until `clearCooldown`; next key.
 */
export type Verdict =
  | { type: "success" }
  | { type: "pass" }
  | { type: "retry" }
  | { type: "cooldown"; delayMs?: number | undefined }
  | { type: "blocked" }
  | { type: "disabled" };

/** Options of `router.execute`. */
export interface ExecuteOptions {
  /**
   * Aborts the call: checked before each attempt, it also ends a wait between attempts. `execute`
   * then rejects with `signal.reason`; an attempt that fails because of the abort marks nothing.
   * @defaultValue `undefined` (`fn` gets a signal of the call's own, which never aborts)
   */
  signal?: AbortSignal | undefined;
  /**
   * How many keys to try at most; no key is tried twice in one call. A positive integer.
   * @defaultValue `router.maxRetry ?? router.size`
   */
  maxAttempts?: number | undefined;
  /**
   * How long the call may wait, in total, for a cooling key to come back when no untried key is
   * ready. With `0`, it never waits.
   * @defaultValue `0`
   */
  maxWaitMs?: number | undefined;
  /**
   * Decides an attempt's verdict; return `undefined` to keep the default one (see the README's
   * table: a value with no status or a 2xx/3xx success, 429 cooldown, 401/402/403 blocked, 408/5xx
   * cooldown, other 4xx and a thrown 3xx pass, network errors and a thrown status 0 retry).
   * @defaultValue `undefined` (the default verdicts for every outcome)
   */
  classify?: ((outcome: Outcome) => Verdict | undefined) | undefined;
}

/**
 * What `execute` needs of the router beyond its public API (which it uses for everything else):
 * picks that pass over the keys already tried in this call.
 * @internal
 */
export interface ExecuteHost {
  /** A ready key not in `tried`, or -1. */
  pick(tried: ReadonlySet<number>): number;
  /** Milliseconds until the earliest cooldown of a key not in `tried` ends, or `undefined`. */
  waitMs(tried: ReadonlySet<number>): number | undefined;
  key(index: number): string;
  /** Adds which key it is to `fields`. */
  ref<T extends object>(index: number, fields: T): T & KeyRef;
}

/**
 * The loop behind `router.execute`: pick an untried key, call `fn`, judge the outcome, mark the key,
 * and go on to the next key or stop.
 * @internal
 */
export async function execute<T>(
  router: CredentialRouter,
  host: ExecuteHost,
  fn: (key: string, context: KeyContext) => T | PromiseLike<T>,
  options: ExecuteOptions = {},
): Promise<T> {
  if (typeof fn !== "function") invalid(TypeError, "fn", "a function", fn);
  if (typeof options !== "object" || options === null) invalid(TypeError, "options", "an object", options);
  const { signal, maxAttempts = router.maxRetry ?? router.size, maxWaitMs = 0, classify } = options;
  checkCount("maxAttempts", maxAttempts);
  checkDuration("maxWaitMs", maxWaitMs);
  if (classify !== undefined && typeof classify !== "function") invalid(TypeError, "classify", "a function", classify);
  if (signal !== undefined && typeof signal?.aborted !== "boolean") invalid(TypeError, "signal", "an AbortSignal", signal);
  // Without the caller's signal, one of this call's own (see AttemptContext).
  const signals: Signals = { signal };
  // Measured by waiting, not by the router's clock, whose origin and pace are the caller's.
  let waitLeft = maxWaitMs;
  const tried = new Set<number>();
  let last: Outcome | undefined;
  // On an abort, the response of the last attempt is moved past like any other: release it.
  const abandon = (reason: unknown): never => {
    discard(last);
    throw reason;
  };

  while (tried.size < maxAttempts) {
    if (signal?.aborted) abandon(signal.reason);
    const index = host.pick(tried);
    if (index === -1) {
      const waitMs = host.waitMs(tried);
      // After a wait, a millisecond of grace: timers may fire a little before the deadline the
      // router's clock sees, and the last fraction of a wait must not end the call.
      if (!(waitMs! <= waitLeft + (waitLeft < maxWaitMs ? 1 : 0))) break;
      // In slices a timer can hold, for waits of weeks; the budget pays for the time slept.
      // A deadline the clock passed since the pick is a wait of 0, which costs the budget nothing.
      const sleepMs = Math.min(Math.max(0, Math.ceil(waitMs!)), 2 ** 31 - 1);
      waitLeft -= sleepMs;
      await sleep(sleepMs, signal).catch(abandon);
      continue;
    }
    tried.add(index);
    discard(last);
    const key = host.key(index);
    const attempt = tried.size;
    let outcome: Outcome;
    try {
      const value = await fn(key, host.ref(index, new AttemptContext(attempt, signals)));
      outcome = host.ref(index, { attempt, ...readResponse(value), type: "resolved", value });
    } catch (error) {
      outcome = host.ref(index, { attempt, ...readResponse(error), type: "rejected", error });
      // An attempt cut short by the caller's abort says nothing about the key.
      if (!outcome.status && signal?.aborted) throw signal.reason;
    }
    let stop: boolean;
    try {
      stop = judge(router, key, outcome, classify?.(outcome) ?? defaultVerdict(outcome));
    } catch (error) {
      // A classify that throws or answers nonsense: nobody will see this response.
      discard(outcome);
      throw error;
    }
    if (stop) return settle(outcome);
    last = outcome;
  }
  if (last) return settle(last);
  throw new NoKeyAvailableError(router.nextReadyInMs());
}

/** The signal of one `execute` call, once there is one. */
interface Signals {
  signal: AbortSignal | undefined;
}

/**
 * The context `fn` gets. Without a caller's signal, the call's own is made when `fn` first reads
 * `signal`, by a getter on the prototype: an AbortController costs more than all the rest of a
 * call, and an own getter slows every object that has one. It is never shared between calls, as
 * fetch leaves its abort listener on the signal it was given, and a shared one would gather them by
 * the thousand.
 */
class AttemptContext {
  readonly #signals: Signals;

  constructor(
    readonly attempt: number,
    signals: Signals,
  ) {
    this.#signals = signals;
  }

  get signal(): AbortSignal {
    return (this.#signals.signal ??= new AbortController().signal);
  }
}

/** Marks the key as `verdict` says; returns whether `execute` stops here. */
function judge(router: CredentialRouter, key: string, outcome: Outcome, verdict: Verdict): boolean {
  switch (verdict?.type) {
    case "success":
      router.markSuccess(key);
      return true;
    case "pass":
      return true;
    case "retry":
      return false;
    case "cooldown": {
      const delayMs = verdict.delayMs ?? waitHint(outcome);
      if (delayMs === undefined) router.markError(key);
      else router.markErrorWithDelay(key, delayMs);
      return false;
    }
    case "blocked":
      router.markBlocked(key);
      return false;
    case "disabled":
      router.markDisabled(key);
      return false;
    default:
      return invalid(TypeError, "the verdict classify returned", "a Verdict", verdict);
  }
}

/** The default rules; see {@link ExecuteOptions.classify}. */
function defaultVerdict({ status, type }: Outcome): Verdict {
  let verdict: Verdict["type"];
  // A value with no status (a parsed body, a string) is what the caller asked for; a thrown error
  // with none, or with an XHR-style status 0, is a network failure.
  if (!status) verdict = type === "resolved" ? "success" : "retry";
  // Thrown with a 3xx (a client that throws on redirects): not a success, nor the key's fault.
  else if (status < 400) verdict = type === "resolved" ? "success" : "pass";
  else if ([408, 429, 500, 502, 503, 504, 529].includes(status)) verdict = "cooldown";
  else verdict = status >= 401 && status <= 403 ? "blocked" : "pass";
  return { type: verdict } as Verdict;
}

/** The server's wait hint: headers first, then a thrown error's parsed body. Never reads a stream. */
function waitHint(outcome: Outcome): number | undefined {
  let hint = outcome.headers && parseRetryAfter(outcome.headers);
  if (hint === undefined && outcome.type === "rejected") {
    const body = read(() => (outcome.error as { error?: unknown; body?: unknown }).error ?? (outcome.error as { body?: unknown }).body);
    // SDKs differ on whether `error.error` is the whole body or the body's `error` member.
    hint = parseRetryDelay(body);
  }
  return hint;
}

function settle<T>(outcome: Outcome): T {
  if (outcome.type === "rejected") throw outcome.error;
  return outcome.value as T;
}

/**
 * Releases a response that `execute` moved past and nobody else will see, so that its connection
 * goes back to the pool instead of waiting for the garbage collector.
 */
function discard(outcome: Outcome | undefined): void {
  // Checked before reading, not caught after: a thrown and caught error costs more than a call.
  if (outcome === undefined) return;
  const { type } = outcome;
  // A resolved Response, or one an error carries (ky's HTTPError, ofetch's FetchError).
  const response = type === "resolved" ? outcome.value : isObject(outcome.error) ? read(() => (outcome.error as { response?: unknown }).response) : undefined;
  if (!isObject(response)) return;
  read(() => {
    const body = (response as { body?: Partial<ReadableStream> | null }).body;
    if (typeof body?.cancel === "function" && !body.locked) body.cancel().catch(() => {});
  });
}

/** Status and headers of a response or an error, as the common HTTP clients expose them. */
function readResponse(value: unknown): { status: number | undefined; headers: HeadersLike | undefined } {
  const found = isObject(value)
    ? read(() => {
        const { status, headers, response } = value as { status?: unknown; headers?: unknown; response?: { status?: unknown; headers?: unknown } };
        // axios (>= 1.7) copies the status onto the error but leaves the headers on `response`.
        if (typeof status === "number") return { status, headers: objectOr(headers) ?? objectOr(response?.headers) };
        if (isObject(response) && typeof response.status === "number") return { status: response.status, headers: objectOr(response.headers) };
      })
    : undefined;
  return found ?? { status: undefined, headers: undefined };
}

function objectOr(value: unknown): HeadersLike | undefined {
  return isObject(value) ? (value as HeadersLike) : undefined;
}

function isObject(value: unknown): value is object {
  return (typeof value === "object" && value !== null) || typeof value === "function";
}

/** Runs a read of foreign objects whose getters may throw; a throw reads as "nothing there". */
function read<T>(get: () => T): T | undefined {
  try {
    return get();
  } catch {
    return undefined;
  }
}

/** Waits `ms`, or until `signal` aborts (rejecting with its reason); leaves no timer or listener. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    // Aborted already, by a listener during the pick: no abort event will come.
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
