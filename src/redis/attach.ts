/**
 * The adapter's facade: `attachRedis`, its options, and the link it returns.
 */
// By package name, so the built declarations refer to the core's own types instead of copying them.
import type { CredentialRouter } from "credential-router";
import { describe } from "../secret.js";
import { connectionOf, type NodeRedisLike, type RedisLike } from "./client.js";
import type { RedisSyncError } from "./errors.js";
import { Link } from "./link.js";

/**
 * Where a {@link RedisLink} stands.
 *
 * - `connecting`: loading the shared state (at attach, or the resync after a reconnect or a loss).
 * - `ready`: in sync: local transitions are written as they happen, other instances' are applied.
 * - `offline`: Redis cannot be reached. Routing goes on from local state; local transitions are kept
 *   and written on reconnect, then the shared state is loaded again.
 * - `closed`: `close()` was called; the router works alone.
 */
export type RedisLinkStatus = "connecting" | "ready" | "offline" | "closed";

/** What a {@link RedisLink} tells its subscribers: a status change, or a sync error (never thrown). */
export type RedisLinkEvent =
  | {
      /** The link's status changed. */
      type: "status";
      /** The new status. */
      status: RedisLinkStatus;
    }
  | {
      /** Something failed; routing goes on from local state, and the link retries by itself. */
      type: "error";
      /** What failed, and why (`cause`). Names no key. */
      error: RedisSyncError;
    };

/** A subscriber to {@link RedisLinkEvent}s. */
export type RedisLinkListener = (event: RedisLinkEvent) => void;

/** What the adapter uses of a router: a `CredentialRouter` fits. */
export type SharedRouter = Pick<CredentialRouter, "subscribe" | "snapshot" | "importState">;

/**
 * The link between a router and Redis, returned by `attachRedis`. Routing never waits on it:
 * `nextKey()` and the marks stay synchronous and local.
 */
export interface RedisLink {
  /** Where the link stands; see {@link RedisLinkStatus}. */
  readonly status: RedisLinkStatus;
  /** This link's random id: the first word of the messages it publishes. */
  readonly instanceId: string;
  /** The namespace joined. */
  readonly namespace: string;
  /**
   * Listens to status changes and sync errors. A listener that throws is skipped over.
   * @returns A function that unsubscribes.
   * @example
   * ```ts
   * link.subscribe((event) => {
   *   if (event.type === "status") metrics.gauge("redis_link_ready", event.status === "ready" ? 1 : 0);
   *   else log.warn(event.error.message);
   * });
   * ```
   */
  subscribe(listener: RedisLinkListener): () => void;
  /**
   * Waits until every local transition made before the call is written to Redis, and a load of the
   * shared state in progress (at attach, or a resync) is done. Marks made after the call are not
   * waited for, so it settles while the router keeps marking.
   * @returns `true` once they are; `false` when the link is offline or closed, cannot reach Redis, or
   *   is waiting to retry a failed write, or when that happens before then. Never rejects.
   */
  flush(): Promise<boolean>;
  /**
   * Detaches: stops listening to the router, writes what is pending if the link is ready (waiting at
   * most 1 s), removes this instance's batch counter from Redis, ends the subscriber connection the
   * link opened, and leaves the client it was given open. The router keeps working alone, from its
   * current state. Never rejects; calling it again returns the same promise.
   */
  close(): Promise<void>;
}


/** Options of {@link attachRedis}. All are optional. */
export interface AttachRedisOptions {
  /**
   * Which shared state to join: routers with the same keys and the same namespace share their keys'
   * states. Redis keys are `{<namespace>}:state`, `{<namespace>}:held` and
   * `{<namespace>}:batch:<instance>`, the channel is `{<namespace>}:changes`. A non-empty string
   * without braces or whitespace.
   * @defaultValue `"credential-router"`
   */
  namespace?: string;
  /**
   * How long `attachRedis` waits for the first load of the shared state before it resolves anyway
   * (with the link still `connecting`; it keeps trying). It resolves at once, `offline`, when the
   * connection fails. A finite number `>= 0`.
   * @defaultValue `5_000`
   */
  attachTimeoutMs?: number;
  /**
   * The longest cooldown shared, in ms from now: a deadline read from Redis (or written to it) later
   * than this is cut to it, so that no record, forged or corrupt, can hold a key out longer. Set it as
   * the router's own `maxRetryAfterMs`. A number `> 0`.
   * @defaultValue `86_400_000` (24 h, as the router's)
   */
  maxRetryAfterMs?: number;
  /**
   * The least time between two writes, in ms. A mark after a quiet spell is written at once; under
   * load, the marks made within each interval go out together, in one script call and one message,
   * so that each instance handles a few messages a second instead of one per mark (a message costs an
   * instance far more CPU than a mark in it). The price: under load, a change reaches the other
   * instances up to this much later. `0` writes each mark as soon as the previous write is answered.
   * A finite number `>= 0`.
   * @defaultValue `25`
   */
  writeIntervalMs?: number;
}

const DEFAULT_NAMESPACE = "credential-router";
const DEFAULT_ATTACH_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_RETRY_AFTER_MS = 86_400_000;
const DEFAULT_WRITE_INTERVAL_MS = 25;

/**
 * Shares a router's key states with every other router attached to the same Redis namespace: a
 * key one instance cools down, blocks or clears is cooled down, blocked or cleared on all of them.
 * Node only. Routing stays synchronous and local; Redis is written and read in the background.
 *
 * On attach, the router's own cooling, blocked and disabled keys (a restore from saved state, marks
 * made while detached) are offered to the shared state: by the severity rule, so that no milder
 * record lowers them, except that a key cleared in Redis stays cleared (the clear is newer than any
 * state of unknown age). Then the shared state of the router's keys is loaded and applied
 * (`importState`). Then each local transition (a cooldown with its deadline, blocked, disabled,
 * cleared) is written by one atomic Lua script that merges it by the core's severity rule and
 * publishes the result; the other instances apply it. A stale 429 never undoes a fresh 401, only a
 * clear lowers a state, and a clear on any instance wins over every earlier record. States travel
 * with their reason, and per scope: a state marked in a scope reaches the others in that scope only,
 * by the same rules, and a key-wide `clearCooldown` clears the key in every scope everywhere. Keys
 * are named by fingerprint (SHA-256), never by text. `failures` (the escalation count) is not shared.
 *
 * Redis being down never breaks routing: `attachRedis` still resolves (the link `offline`), nothing
 * throws or rejects, transitions made meanwhile are written on reconnect and the shared state is then
 * loaded again. Lost messages (a reconnect, a subscriber swapped by an ioredis `Cluster`), a loss of
 * the shared state (a restart without persistence, `FLUSHDB`, eviction) and forged or corrupt records
 * are noticed and end in a resync. Records of keys no instance holds, and ready records, are removed
 * after a day. Errors go to `link.subscribe` listeners.
 *
 * @param router - The router to share, such as a `CredentialRouter`.
 * @param redis - An ioredis client (`Redis` or `Cluster`), or a connected node-redis 4 or 5 client, or
 *   any client shaped like one ({@link RedisLike}, {@link NodeRedisLike}). It stays the caller's: the
 *   link opens its own subscriber connection with `redis.duplicate()` and ends only that one.
 * @param options - See {@link AttachRedisOptions}.
 * @returns The link, once the shared state is loaded, the connection failed, or `attachTimeoutMs` passed.
 * @throws TypeError when `router` or `redis` lacks a method the adapter needs, or `namespace` is not
 *   a non-empty string without braces or whitespace; whatever `redis.duplicate()` throws. A throw
 *   leaves nothing behind: no listener, no connection.
 * @throws RangeError when `attachTimeoutMs`, `maxRetryAfterMs` or `writeIntervalMs` is out of range.
 * @example
 * ```ts
 * import { Redis } from "ioredis";
 * import { CredentialRouter } from "credential-router";
 * import { attachRedis } from "credential-router/redis";
 *
 * const router = new CredentialRouter(keys);
 * const link = await attachRedis(router, new Redis(process.env.REDIS_URL!), { namespace: "gateway-prod" });
 * const key = router.nextKey(); // never waits on Redis
 * // on shutdown:
 * await link.close();
 * ```
 */
export function attachRedis(router: SharedRouter, redis: RedisLike | NodeRedisLike, options?: AttachRedisOptions): Promise<RedisLink> {
  if (typeof router !== "object" || router === null) throw new TypeError(`router must be an object, received ${describe(router)}`);
  for (const method of ["subscribe", "snapshot", "importState"]) {
    const member = (router as unknown as Record<string, unknown>)[method];
    if (typeof member !== "function") throw new TypeError(`router.${method} must be a function, received ${describe(member)}`);
  }
  const connection = connectionOf(redis);
  if (options !== undefined && (typeof options !== "object" || options === null)) {
    throw new TypeError(`options must be an object, received ${describe(options)}`);
  }
  const namespace = options?.namespace ?? DEFAULT_NAMESPACE;
  if (typeof namespace !== "string" || !/^[^{}\s]+$/.test(namespace)) {
    throw new TypeError(`namespace must be a non-empty string without braces or whitespace, received ${describe(namespace)}`);
  }
  const attachTimeoutMs = options?.attachTimeoutMs ?? DEFAULT_ATTACH_TIMEOUT_MS;
  if (typeof attachTimeoutMs !== "number" || !Number.isFinite(attachTimeoutMs) || attachTimeoutMs < 0) {
    throw new RangeError(`attachTimeoutMs must be a finite number >= 0, received ${describe(attachTimeoutMs)}`);
  }
  const maxRetryAfterMs = options?.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
  if (typeof maxRetryAfterMs !== "number" || Number.isNaN(maxRetryAfterMs) || maxRetryAfterMs <= 0) {
    throw new RangeError(`maxRetryAfterMs must be a number > 0, received ${describe(maxRetryAfterMs)}`);
  }
  const writeIntervalMs = options?.writeIntervalMs ?? DEFAULT_WRITE_INTERVAL_MS;
  if (typeof writeIntervalMs !== "number" || !Number.isFinite(writeIntervalMs) || writeIntervalMs < 0) {
    throw new RangeError(`writeIntervalMs must be a finite number >= 0, received ${describe(writeIntervalMs)}`);
  }
  const link = new Link(router, connection, { namespace, maxRetryAfterMs, writeIntervalMs });
  return link.started(attachTimeoutMs).then(() => link);
}
