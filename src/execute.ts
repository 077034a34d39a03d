import { NoKeyAvailableError } from "./errors.js";
import type { KeyRef } from "./events.js";
import { checkCount, checkDuration, type ResolvedOptions } from "./options.js";
import { property, type HeadersLike } from "./retry-after.js";
import type { CredentialRouter } from "./router.js";
import { invalid } from "./secret.js";
import { defaultVerdict, preemptiveDelay, waitHint, type Verdict } from "./verdicts.js";

export type { Verdict };

/**
 * What `execute` passes to `fn` besides the key: which key it is (index, masked hint, label — for
 * logs) and the attempt.
 */
export interface KeyContext extends KeyRef {
  /** Which attempt this is within the `execute` call, from 1. */
  attempt: number;
  /**
   * The caller's `signal`, or one of the attempt's own that never aborts: pass it on to `fetch`. A
   * getter (the attempt's own is made on first read), so read it by name rather than by spreading the
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
  /**
   * For a status >= 400, the error body: parsed JSON (or its text), read from a clone of a fetch
   * `Response` (at most 64 KiB; the response itself keeps its body), or the body an SDK's error
   * already carries (`error.error`, `error.body`, `error.data`, axios' `error.response.data`), or a
   * non-stream `body` of a resolved value. `undefined` for a success or when there is none.
   */
  body: unknown;
} & ({ type: "resolved"; value: unknown } | { type: "rejected"; error: unknown });

/** Options of `router.execute`. */
export interface ExecuteOptions {
  /**
   * Aborts the call: checked before each attempt, it also ends a wait between attempts and an
   * attempt in progress (whose late result is then released). `execute` rejects with
   * `signal.reason`; an attempt that fails because of the abort marks nothing.
   * @defaultValue `undefined` (`fn` gets a signal of the attempt's own, which never aborts)
   */
  signal?: AbortSignal | undefined;
  /**
   * Route and mark in this scope (a model name): see `nextKey(scope)`. Rate limits and quota cool
   * the key in the scope; a rejected key is blocked key-wide.
   * @defaultValue `undefined` (key-wide)
   */
  scope?: string | undefined;
  /**
   * How many keys to try at most; no key is tried twice in one call. A positive integer.
   * @defaultValue `router.maxRetry ?? router.size`
   */
  maxAttempts?: number | undefined;
  /**
   * How many times one call moves on to another key after a service fault (a 5xx, an overload), so
   * that an outage does not turn one call into one request per key. An integer `>= 0`.
   * @defaultValue `2` (as the providers' SDKs retry)
   */
  maxServerRetries?: number | undefined;
  /**
   * How long the call may wait, in total, for a cooling key to come back when no untried key is
   * ready. With `0`, it never waits.
   * @defaultValue `0`
   */
  maxWaitMs?: number | undefined;
  /**
   * Cool a key down when a success shows its budget exhausted (see the router's `preemptive`).
   * @defaultValue the router's `preemptive` option (`true`)
   */
  preemptive?: boolean | undefined;
  /**
   * Decides an attempt's verdict; return `undefined` to keep the default one (the README's table).
   * @defaultValue `undefined` (the default verdicts for every outcome)
   */
  classify?: ((outcome: Outcome) => Verdict | undefined) | undefined;
}

/**
 * What `execute` needs of the router beyond its public API (which it uses for everything else):
 * picks that pass over the keys already tried in this call, and the count of service faults.
 * @internal
 */
export interface ExecuteHost {
  /** A ready key not in `tried` (in the scope), or -1. */
  pick(tried: ReadonlySet<number> | undefined, scope: string | undefined): number;
  /** Milliseconds until a key not in `tried` is ready (in the scope), or `undefined`. */
  waitMs(tried: ReadonlySet<number> | undefined, scope: string | undefined): number | undefined;
  /** `markSuccess` of the key at `index`. */
  success(index: number): void;
  /** The router's keys, by index. */
  keys: readonly string[];
  /** Adds which key it is to `fields`. */
  ref<T extends object>(index: number, fields: T): T & KeyRef;
  /** Counts a service fault of the key; `true` when it reached `serverFaultThreshold` (the count restarts). */
  fault(index: number): boolean;
  options: ResolvedOptions;
}

/** The most of an error body `execute` reads. */
const BODY_LIMIT = 65_536;

/** The options of a call given none. */
const NO_OPTIONS: ExecuteOptions = Object.freeze({});

/**
 * The loop behind `router.execute`: pick an untried key, call `fn`, judge the outcome, mark the key,
 * and go on to the next key or stop.
 * @internal
 */
export async function execute<T>(
  router: CredentialRouter,
  host: ExecuteHost,
  fn: (key: string, context: KeyContext) => T | PromiseLike<T>,
  options: ExecuteOptions = NO_OPTIONS,
): Promise<T> {
  if (typeof fn !== "function") invalid(TypeError, "fn", "a function", fn);
  if (typeof options !== "object" || options === null) invalid(TypeError, "options", "an object", options);
  const {
    signal,
    scope,
    maxAttempts = router.maxRetry ?? router.size,
    maxServerRetries = 2,
    maxWaitMs = 0,
    preemptive = host.options.preemptive,
    classify,
  } = options;
  checkCount("maxAttempts", maxAttempts);
  if (!(Number.isInteger(maxServerRetries) && maxServerRetries >= 0)) invalid(RangeError, "maxServerRetries", "an integer >= 0", maxServerRetries);
  checkDuration("maxWaitMs", maxWaitMs);
  if (classify !== undefined && typeof classify !== "function") invalid(TypeError, "classify", "a function", classify);
  if (signal !== undefined && typeof signal?.aborted !== "boolean") invalid(TypeError, "signal", "an AbortSignal", signal);
  if (scope !== undefined && typeof scope !== "string") invalid(TypeError, "scope", "a string", scope);
  if (typeof preemptive !== "boolean") invalid(TypeError, "preemptive", "a boolean", preemptive);
  // Measured by waiting, not by the router's clock, whose origin and pace are the caller's.
  let waitLeft = maxWaitMs;
  let faults = 0;
  let attempt = 0;
  // The keys tried in this call: made for the second attempt (the first, `index`, needs no set).
  let tried: Set<number> | undefined;
  let index = -1;
  let last: Outcome | undefined;

  while (attempt < maxAttempts) {
    // On an abort, the response of the last attempt is moved past like any other: release it.
    if (signal?.aborted) abandon(last, signal.reason);
    if (attempt === 1) tried ??= new Set([index]);
    index = host.pick(tried, scope);
    if (index === -1) {
      const waitMs = host.waitMs(tried, scope);
      // After a wait, a millisecond of grace: timers may fire a little before the deadline the
      // router's clock sees, and the last fraction of a wait must not end the call.
      if (!(waitMs! <= waitLeft + (waitLeft < maxWaitMs ? 1 : 0))) break;
      // In slices a timer can hold, for waits of weeks; the budget pays for the time slept.
      // A deadline the clock passed since the pick is a wait of 0, which costs the budget nothing.
      const sleepMs = Math.min(Math.max(0, Math.ceil(waitMs!)), 2 ** 31 - 1);
      waitLeft -= sleepMs;
      await sleep(sleepMs, signal).catch((reason: unknown) => abandon(last, reason));
      continue;
    }
    tried?.add(index);
    attempt++;
    discard(last);
    const key = host.keys[index]!;
    let outcome: Outcome;
    try {
      const pending = fn(key, host.ref(index, new AttemptContext(attempt, signal)));
      const value = await untilAbort(pending, signal);
      const { status, headers } = readResponse(value);
      // The common case, kept short: a success nobody classifies.
      if (classify === undefined && (status === undefined || status < 400)) {
        host.success(index);
        if (preemptive && headers !== undefined) coolAhead(router, key, headers, scope);
        return value;
      }
      outcome = host.ref(index, { attempt, status, headers, body: undefined, type: "resolved", value });
    } catch (error) {
      outcome = host.ref(index, { attempt, ...readResponse(error), body: undefined, type: "rejected", error });
      // An attempt cut short by the caller's abort says nothing about the key.
      if (!outcome.status && signal?.aborted) throw signal.reason;
    }
    if (outcome.status! >= 400) outcome.body = await readBody(outcome, signal);
    let stop: boolean;
    try {
      const verdict = classify?.(outcome) ?? defaultVerdict(outcome, host.options.quotaCooldownMs);
      if (verdict?.type === "fault") {
        if (host.fault(index)) router.markError(key, { reason: "server" });
        stop = ++faults > maxServerRetries;
      } else {
        stop = judge(router, key, outcome, verdict, scope);
        if (verdict.type === "success" && preemptive && outcome.headers !== undefined) coolAhead(router, key, outcome.headers, scope);
      }
    } catch (error) {
      // A classify that throws or answers nonsense: nobody will see this response.
      abandon(outcome, error);
    }
    // Aborted while the body was read: the call ends now (the key was judged on what came).
    if (signal?.aborted) abandon(outcome, signal.reason);
    if (stop) return settle(outcome);
    last = outcome;
  }
  if (last) return settle(last);
  throw new NoKeyAvailableError(router.nextReadyInMs(scope));
}

/**
 * The context `fn` gets. Without a caller's signal, the attempt's own is made when `fn` first reads
 * `signal`, by a getter on the prototype: an AbortController costs more than all the rest of a
 * call, and an own getter slows every object that has one. It is never shared, as fetch leaves its
 * abort listener on the signal it was given, and a shared one would gather them by the thousand.
 */
class AttemptContext {
  #signal: AbortSignal | undefined;

  constructor(
    readonly attempt: number,
    signal: AbortSignal | undefined,
  ) {
    this.#signal = signal;
  }

  get signal(): AbortSignal {
    return (this.#signal ??= new AbortController().signal);
  }
}

/** Releases a response nobody will see and throws `reason`: the end of an aborted or failed call. */
function abandon(last: Outcome | undefined, reason: unknown): never {
  discard(last);
  throw reason;
}

/** Marks the key as `verdict` says; returns whether `execute` stops here. */
function judge(router: CredentialRouter, key: string, outcome: Outcome, verdict: Verdict, scope: string | undefined): boolean {
  switch (verdict?.type) {
    case "success":
      router.markSuccess(key);
      return true;
    case "pass":
      return true;
    case "retry":
      return false;
    case "cooldown": {
      const { reason, group } = verdict;
      const mark = { reason, scope: verdict.scoped === false ? undefined : scope, group };
      const delayMs = verdict.delayMs ?? waitHint(outcome);
      if (delayMs === undefined) router.markError(key, mark);
      else router.markErrorWithDelay(key, delayMs, mark);
      return false;
    }
    case "blocked":
    case "disabled": {
      const mark = { reason: verdict.reason, scope: verdict.scoped ? scope : undefined };
      if (verdict.type === "blocked") router.markBlocked(key, mark);
      else router.markDisabled(key, mark);
      return false;
    }
    default:
      return invalid(TypeError, "classify's verdict", "a Verdict", verdict);
  }
}

/** A success that shows the key's budget spent: the key rests until a slot frees (see `preemptive`). */
function coolAhead(router: CredentialRouter, key: string, headers: HeadersLike, scope: string | undefined): void {
  const delayMs = preemptiveDelay(headers);
  if (delayMs !== undefined) router.markErrorWithDelay(key, delayMs, { reason: "rate_limit", scope });
}

function settle<T>(outcome: Outcome): T {
  if (outcome.type === "rejected") throw outcome.error;
  return outcome.value as T;
}

/** The value of a resolved outcome, or the error of a rejected one. */
const source = (outcome: Outcome): unknown => (outcome.type === "resolved" ? outcome.value : outcome.error);

/**
 * Releases a response that `execute` moved past and nobody else will see, so that its connection
 * goes back to the pool instead of waiting for the garbage collector: a resolved Response, or one an
 * error carries (ky's HTTPError, ofetch's FetchError).
 */
function discard(outcome: Outcome | undefined): void {
  // Checked before reading, not caught after: a thrown and caught error costs more than a call.
  if (outcome === undefined) return;
  const value = source(outcome);
  const body = property(outcome.type === "resolved" ? value : property(value, "response"), "body") as Partial<ReadableStream> | undefined;
  if (typeof property(body, "cancel") === "function" && !body!.locked) body!.cancel!().catch(ignore);
}

/** Status and headers of a response or an error, as the common HTTP clients expose them. */
function readResponse(value: unknown): { status: number | undefined; headers: HeadersLike | undefined } {
  // A primitive has none (and reading its properties by name costs more than the rest of a call).
  if (typeof value !== "object" && typeof value !== "function") return NOTHING;
  const status = property(value, "status");
  const response = property(value, "response");
  const inner = property(response, "status");
  // axios (>= 1.7) copies the status onto the error but leaves the headers on `response`.
  if (typeof status === "number") return { status, headers: objectOr(property(value, "headers")) ?? objectOr(property(response, "headers")) };
  return typeof inner === "number" ? { status: inner, headers: objectOr(property(response, "headers")) } : NOTHING;
}

/** What `readResponse` finds on a value that is no response. */
const NOTHING = Object.freeze({ status: undefined, headers: undefined });

function objectOr(value: unknown): HeadersLike | undefined {
  return typeof value === "object" && value !== null ? (value as HeadersLike) : undefined;
}

/**
 * What `fn` returned (or the timer of a wait), or a rejection with the signal's reason as soon as it
 * aborts, for an `fn` that does not pass the signal on; its late result is then released.
 */
function untilAbort<T>(pending: T | PromiseLike<T>, signal: AbortSignal | undefined): T | Promise<T> {
  if (signal === undefined || typeof (pending as PromiseLike<T> | null)?.then !== "function") return pending as T;
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    /** Settles the promise once, with `done(result)`; whether this call did. */
    const settle = <R>(done: (result: R) => void, result: R) => {
      if (settled) return false;
      signal.removeEventListener("abort", onAbort);
      done(result);
      return (settled = true);
    };
    const onAbort = () => {
      if (settle(reject, signal.reason)) (pending as PromiseLike<T>).then((value) => discard({ type: "resolved", value } as Outcome), ignore);
    };
    (pending as PromiseLike<T>).then(
      (value) => settle(resolve, value),
      (error: unknown) => settle(reject, error),
    );
    // Aborted already (by fn's own synchronous part, or a listener during the pick): a result fn
    // already had wins by a microtask.
    if (signal.aborted) queueMicrotask(onAbort);
    else signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The error body of an outcome (see {@link Outcome.body}): what an SDK's error already parsed, else
 * at most {@link BODY_LIMIT} bytes of a clone of its fetch `Response`, read until `signal` aborts,
 * parsed as JSON when it is JSON. Never throws, never reads the response itself.
 */
async function readBody(outcome: Outcome, signal: AbortSignal | undefined): Promise<unknown> {
  const value = source(outcome);
  const response = property(value, "response");
  const body = property(value, "body");
  const parsed = [property(value, "error"), isStream(body) ? undefined : body, property(value, "data"), property(response, "data")].find((found) => found != null);
  if (parsed !== undefined) return parsed;
  const web = (isResponse(value) ? value : isResponse(response) ? response : undefined) as Response | undefined;
  if (web === undefined || signal?.aborted) return undefined;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const stop = () => void reader?.cancel().catch(ignore);
  try {
    reader = web.clone().body!.getReader();
    signal?.addEventListener("abort", stop, { once: true });
    const bytes = new Uint8Array(BODY_LIMIT);
    let length = 0;
    for (let chunk; length < BODY_LIMIT && !(chunk = await reader.read()).done; ) {
      const part = chunk.value.subarray(0, BODY_LIMIT - length);
      bytes.set(part, length);
      length += part.length;
    }
    const text = new TextDecoder().decode(bytes.subarray(0, length));
    try {
      return JSON.parse(text);
    } catch {
      return text || undefined;
    }
  } catch {
    // Used already, locked, or broken off: no body.
    return undefined;
  } finally {
    signal?.removeEventListener("abort", stop);
    stop();
  }
}

/** Whether `value` is a fetch `Response` (something with `clone` and a stream for a body). */
const isResponse = (value: unknown): boolean => typeof property(value, "clone") === "function" && isStream(property(value, "body"));

/** Whether `value` is a web or Node stream (not a parsed body). */
const isStream = (value: unknown): boolean => typeof property(value, "getReader") === "function" || typeof property(value, "pipe") === "function";

function ignore(): void {}

/** Waits `ms`, or until `signal` aborts (rejecting with its reason); leaves no timer or listener. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.resolve(untilAbort(new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))), signal)).finally(() => clearTimeout(timer));
}
