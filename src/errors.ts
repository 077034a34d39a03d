/**
 * Thrown (as a rejection) by `execute` when no key could be tried at all: every key was cooling,
 * blocked or disabled, and no cooldown ended within `maxWaitMs`.
 *
 * @example
 * ```ts
 * try {
 *   return await router.execute((key) => callApi(key));
 * } catch (error) {
 *   if (isNoKeyAvailableError(error)) {
 *     return new Response("busy", {
 *       status: 503,
 *       headers: { "retry-after": String(Math.ceil((error.retryAfterMs ?? 60_000) / 1000)) },
 *     });
 *   }
 *   throw error;
 * }
 * ```
 */
export class NoKeyAvailableError extends Error {
  /** Always `"NoKeyAvailableError"`. */
  override readonly name = "NoKeyAvailableError" as const;
  /** Always `"NO_KEY_AVAILABLE"`: a machine-readable code that survives crossing realms. */
  readonly code = "NO_KEY_AVAILABLE" as const;
  /**
   * Milliseconds until a key is back (`nextReadyInMs()` when the error was made), or `undefined` when
   * every key is blocked or disabled and none will come back by itself.
   */
  readonly retryAfterMs: number | undefined;

  /**
   * Makes the error; `execute` does, with `retryAfterMs` from `nextReadyInMs()`.
   * @param retryAfterMs - See {@link NoKeyAvailableError.retryAfterMs}.
   * @param options - `cause`, as for `Error`.
   */
  constructor(retryAfterMs: number | undefined, options?: { cause?: unknown }) {
    super(
      retryAfterMs === undefined
        ? "No API key is available: every key is blocked or disabled"
        : `No API key is available: the next one is ready in ${Math.ceil(retryAfterMs)} ms`,
      options,
    );
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Whether `error` is a {@link NoKeyAvailableError}, also one made by another copy of this package or
 * in another realm (an iframe, a VM context), where `instanceof` would say no.
 */
export function isNoKeyAvailableError(error: unknown): error is NoKeyAvailableError {
  return (
    typeof error === "object" &&
    error !== null &&
    (error as { code?: unknown }).code === "NO_KEY_AVAILABLE" &&
    (error as { name?: unknown }).name === "NoKeyAvailableError"
  );
}
