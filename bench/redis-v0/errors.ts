/** What the adapter was doing when a {@link RedisSyncError} happened. */
export type RedisSyncOperation =
  /** The connection to Redis failed or dropped (reported once per outage). */
  | "connect"
  /** Reading the shared state (at attach, or the resync after a reconnect). */
  | "load"
  /** Writing this instance's transitions (they are kept and written again later). */
  | "write"
  /** A message from another instance could not be read (it is skipped). */
  | "message"
  /** Applying the shared state to the router failed. */
  | "apply";

/**
 * A failure of the Redis link, reported to `link.subscribe` listeners; never thrown at the router's
 * callers. Routing goes on from local state meanwhile. The message names the operation and the
 * underlying error, never a key (the adapter sends Redis fingerprints only).
 *
 * @example
 * ```ts
 * link.subscribe((event) => {
 *   if (event.type === "error") log.warn({ operation: event.error.operation, cause: event.error.cause }, event.error.message);
 * });
 * ```
 */
export class RedisSyncError extends Error {
  /** Always `"RedisSyncError"`. */
  override readonly name = "RedisSyncError" as const;
  /** Always `"REDIS_SYNC_FAILED"`: a machine-readable code that survives crossing realms. */
  readonly code = "REDIS_SYNC_FAILED" as const;
  /** What the adapter was doing. */
  readonly operation: RedisSyncOperation;

  /**
   * Makes the error for a failed `operation`; the adapter does, and reports it to the link's listeners.
   * @param operation - See {@link RedisSyncError.operation}.
   * @param options - `cause`: the client's or server's error.
   */
  constructor(operation: RedisSyncOperation, options?: { cause?: unknown }) {
    super(`Redis sync failed (${operation}): ${causeMessage(options?.cause)}`, options);
    this.operation = operation;
  }
}

/**
 * Whether `error` is a {@link RedisSyncError}, also one made by another copy of this package, where
 * `instanceof` would say no.
 */
export function isRedisSyncError(error: unknown): error is RedisSyncError {
  return (
    typeof error === "object" &&
    error !== null &&
    (error as { code?: unknown }).code === "REDIS_SYNC_FAILED" &&
    (error as { name?: unknown }).name === "RedisSyncError"
  );
}

function causeMessage(cause: unknown): string {
  if (cause instanceof Error) return cause.message || cause.name;
  return typeof cause === "string" ? cause : "unknown error";
}
