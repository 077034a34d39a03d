import { randomBytes } from "node:crypto";
// By package name, so the built declarations refer to the core's own types instead of copying them.
import type { CredentialRouter, RouterEvent, SavedKeyState } from "credential-router";
import type { RedisLike, RedisSubscriberLike } from "./client.js";
import { RedisSyncError, type RedisSyncOperation } from "./errors.js";
import { describe } from "./core.js";
import { evalApplyScript } from "./script.js";
import {
  BLOCKED,
  CLEAR,
  COOLDOWN,
  DISABLED,
  EPOCH_FIELD,
  layoutOf,
  merge,
  parseEntry,
  parseRecord,
  OFFER,
  RAISE,
  READY,
  STATUS_NAMES,
  type Layout,
  type SharedEntry,
} from "./shared-state.js";

/**
 * Where a {@link RedisLink} stands.
 *
 * - `connecting`: loading the shared state (at attach, or the resync after a reconnect).
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

/** Options of {@link attachRedis}. All are optional. */
export interface AttachRedisOptions {
  /**
   * Which shared state to join: routers with the same keys and the same namespace share their keys'
   * states. Redis keys are `{<namespace>}:state` and `{<namespace>}:batch:<instance>`, the channel is
   * `{<namespace>}:changes`. A non-empty string without braces or whitespace.
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
}

/**
 * The link between a router and Redis, returned by {@link attachRedis}. Routing never waits on it:
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
   * Waits until every local transition made so far is written to Redis, and a load of the shared
   * state in progress (at attach, or a resync) is done.
   * @returns `true` once they are; `false` when the link is offline or closed, cannot reach Redis, or
   *   is waiting to retry a failed write, or when that happens before then. Never rejects.
   */
  flush(): Promise<boolean>;
  /**
   * Detaches: stops listening to the router, writes what is pending if the link is ready (waiting at
   * most 1 s), ends the subscriber connection the link opened, and leaves the client it was given
   * open. The router keeps working alone, from its current state. Never rejects; calling it again
   * returns the same promise.
   */
  close(): Promise<void>;
}

const DEFAULT_NAMESPACE = "credential-router";
const DEFAULT_ATTACH_TIMEOUT_MS = 5_000;
/** Keys per script call and per `HMGET`. */
const CHUNK = 1_000;
const CLOSE_TIMEOUT_MS = 1_000;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

/**
 * Shares a router's key states with every other router attached to the same Redis namespace: a
 * key one instance cools down, blocks or clears is cooled down, blocked or cleared on all of them.
 * Node only. Routing stays synchronous and local; Redis is written and read in the background.
 *
 * On attach, the router's own cooling, blocked and disabled keys (a restore from saved state, marks
 * made while detached) are offered to the shared state: by the severity rule, so that no milder
 * record lowers them (a key blocked here stays blocked, and is blocked everywhere, whatever older
 * cooldown Redis holds), except that a key cleared in Redis stays cleared (the clear is newer than
 * any state of unknown age). Then the shared state of the router's keys is loaded and applied
 * (`importState`). Then each local transition (a cooldown with its deadline, blocked, disabled,
 * cleared) is written by one atomic Lua script that merges it by the core's severity rule and
 * publishes the result; the other instances apply it. A change from elsewhere is applied through the
 * same rule on top of this instance's transitions not yet written or answered: a stale 429 never
 * undoes a fresh 401, and only a clear lowers a state. Keys are named by fingerprint (SHA-256), never
 * by text. `failures` (the escalation count) is not shared: each instance keeps its own, and a shared
 * clear resets it as a local `clearCooldown` would.
 *
 * Redis being down never breaks routing: `attachRedis` still resolves (the link `offline`), nothing
 * throws or rejects, transitions made meanwhile are written on reconnect and the shared state is then
 * loaded again. When Redis loses the shared state (a restart without persistence, `FLUSHDB`,
 * eviction), the state starts a new epoch; each instance sees it on its next write, message or load,
 * and offers its states again the same way. Errors go to `link.subscribe` listeners.
 *
 * @param router - The router to share, such as a `CredentialRouter`.
 * @param redis - An ioredis client, or any client with the same few commands ({@link RedisLike}). It
 *   stays the caller's: the link opens its own subscriber connection with `redis.duplicate()` and ends
 *   only that one.
 * @param options - See {@link AttachRedisOptions}.
 * @returns The link, once the shared state is loaded, the connection failed, or `attachTimeoutMs` passed.
 * @throws TypeError when `router` or `redis` lacks a method the adapter needs, or `namespace` is not
 *   a non-empty string without braces or whitespace.
 * @throws RangeError when `attachTimeoutMs` is not a finite number `>= 0`.
 * @example
 * ```ts
 * import Redis from "ioredis";
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
export function attachRedis(router: SharedRouter, redis: RedisLike, options?: AttachRedisOptions): Promise<RedisLink> {
  checkMethods("router", router, ["subscribe", "snapshot", "importState"]);
  checkMethods("redis", redis, ["evalsha", "eval", "hmget", "duplicate", "on", "off"]);
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
  const link = new Link(router, redis, namespace);
  return link.started(attachTimeoutMs).then(() => link);
}

/**
 * A batch of transitions for the script: the keys' indices, and 4 arguments per key (fingerprint,
 * mode, raise, until).
 */
interface Batch {
  number: number;
  indices: number[];
  args: string[];
}

/** A shared state to apply, with the key's index. */
interface Incoming extends SharedEntry {
  index: number;
}

class Link implements RedisLink {
  readonly instanceId = randomBytes(8).toString("hex");
  readonly namespace: string;
  readonly #router: SharedRouter;
  readonly #redis: RedisLike;
  readonly #subscriber: RedisSubscriberLike;
  readonly #layout: Layout;
  /** Each key's fingerprint, by index, and back. */
  readonly #ids: readonly string[];
  readonly #indexOfId: Map<string, number>;

  /** What the router's state is, as far as the events said: rank and cooldown end (wall-clock ms). */
  readonly #rank: Uint8Array;
  readonly #until: Float64Array;
  /**
   * The newest shared state known per key (from a message, a script reply or the load), with its
   * version (0: none yet); older messages are ignored. The router holds this state with the in-flight
   * and pending transitions merged on top.
   */
  readonly #sharedVersion: Float64Array;
  readonly #sharedRank: Uint8Array;
  readonly #sharedUntil: Float64Array;

  /** Transitions not yet sent, folded per key: a clear, then the highest raise and latest cooldown end. */
  readonly #dirty: Uint8Array;
  readonly #pendingMode: Uint8Array;
  readonly #pendingRaise: Uint8Array;
  readonly #pendingUntil: Float64Array;
  #dirtyList: number[] = [];
  /**
   * The transitions of the batch sent and not yet answered, per key: whether the shared state seen
   * meanwhile includes them is known only from the reply's versions, so they count as pending until then.
   */
  readonly #inFlight: Uint8Array;
  readonly #flightMode: Uint8Array;
  readonly #flightRaise: Uint8Array;
  readonly #flightUntil: Float64Array;
  /** The batch sent and not yet answered (kept to be sent again, with its number, when it failed). */
  #retry: Batch | undefined;
  #batchNumber = 0;
  /** The shared state's epoch, once known: a new one means Redis lost the state. */
  #epoch: string | undefined;

  #status: RedisLinkStatus = "connecting";
  #listeners: ReadonlyArray<RedisLinkListener> = [];
  #waiters: Array<() => void> = [];
  /**
   * The key whose shared state is being imported, or -1: the first event for it during the import is
   * the import's own and is not written back; any other event then is a mark made by a listener.
   */
  #importing = -1;
  #closed = false;
  #closing: Promise<void> | undefined;
  #needsSync = true;
  #synced = false;
  #pumping = false;
  #scheduled = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retryDelayMs = RETRY_MIN_MS;
  #connectErrorReported = false;
  /** Connection states, for clients without a `status` property. */
  #mainUp = true;
  #subscriberUp = false;
  readonly #unsubscribeRouter: () => void;

  constructor(router: SharedRouter, redis: RedisLike, namespace: string) {
    this.namespace = namespace;
    this.#router = router;
    this.#redis = redis;
    this.#layout = layoutOf(namespace, this.instanceId);
    const rows = router.snapshot();
    const size = rows.length;
    this.#ids = rows.map((row) => row.id);
    this.#indexOfId = new Map(this.#ids.map((id, index) => [id, index]));
    this.#rank = new Uint8Array(size);
    this.#until = new Float64Array(size);
    this.#sharedVersion = new Float64Array(size);
    this.#sharedRank = new Uint8Array(size);
    this.#sharedUntil = new Float64Array(size);
    this.#dirty = new Uint8Array(size);
    this.#pendingMode = new Uint8Array(size);
    this.#pendingRaise = new Uint8Array(size);
    this.#pendingUntil = new Float64Array(size);
    this.#inFlight = new Uint8Array(size);
    this.#flightMode = new Uint8Array(size);
    this.#flightRaise = new Uint8Array(size);
    this.#flightUntil = new Float64Array(size);
    const wallNow = Date.now();
    rows.forEach((row, index) => {
      const { state } = row;
      const rank = STATUS_NAMES.indexOf(state.status);
      this.#rank[index] = rank;
      if (state.status === "cooldown") this.#until[index] = Math.ceil(wallNow + state.remainingMs) + 1;
      // The router's own states (a restore from saved state, marks made before attaching or while
      // detached) are news to Redis, of unknown age: they are offered before the shared state is
      // loaded. A milder record (say, a cooldown that ended long ago) never lowers them; a clear does.
      if (rank !== READY) this.#queue(index, OFFER, rank, this.#until[index]!);
    });

    this.#unsubscribeRouter = router.subscribe(this.#onRouterEvent);
    redis.on("ready", this.#onMainReady);
    redis.on("close", this.#onMainLost);
    redis.on("end", this.#onMainLost);
    this.#subscriber = redis.duplicate();
    this.#subscriber.on("message", this.#onMessage);
    this.#subscriber.on("error", this.#onSubscriberError);
    this.#subscriber.on("ready", this.#onSubscriberReady);
    this.#subscriber.on("close", this.#onSubscriberLost);
    this.#subscriber.on("end", this.#onSubscriberLost);
    // Connects a client made with `lazyConnect`; failures arrive as `error` events, and the sync
    // subscribes again anyway.
    this.#subscriber.subscribe(this.#layout.channel).then(undefined, ignore);
    // A client its owner already ended will not come back by itself.
    if (redis.status === "end") this.#lost();
    this.#schedule();
  }

  get status(): RedisLinkStatus {
    return this.#status;
  }

  subscribe(listener: RedisLinkListener): () => void {
    if (typeof listener !== "function") throw new TypeError(`listener must be a function, received ${describe(listener)}`);
    let live = true;
    const entry: RedisLinkListener = (event) => (live ? listener(event) : undefined);
    this.#listeners = [...this.#listeners, entry];
    return () => {
      live = false;
      this.#listeners = this.#listeners.filter((other) => other !== entry);
    };
  }

  async flush(): Promise<boolean> {
    for (;;) {
      // Checked after every wake: a write in flight when the connection drops may never settle (a
      // client that queues commands until it reconnects), and flush must not wait on it.
      // A load in progress (a resync) is waited through; an offline link can't write.
      if (this.#closed || this.#status === "offline") return false;
      if (!this.#pumping && !this.#scheduled) {
        if (!this.#connected()) return false;
        if (this.#retry === undefined && this.#dirtyList.length === 0 && !this.#needsSync) return true;
        // Something is pending but nothing is sending it: a failed write waits for its retry timer.
        if (this.#retryTimer !== undefined) return false;
        this.#schedule();
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Resolves when the first sync is done, the link went offline, or `timeoutMs` passed. */
  started(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#status !== "connecting") return resolve();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stop = this.subscribe((event) => {
        if (event.type === "status" && event.status !== "connecting") finish();
      });
      const finish = () => {
        clearTimeout(timer);
        stop();
        resolve();
      };
      // Not unref'd: a caller awaiting attachRedis must not see the process exit under it.
      timer = setTimeout(finish, timeoutMs);
    });
  }

  // ---- local transitions (the hot path: runs inside the router's marks) ----

  readonly #onRouterEvent = (event: RouterEvent): void => {
    if (event.type !== "exhausted" && event.index === this.#importing) {
      // The import's own change: the state came from Redis (#reconcile recorded it already). The
      // emitter delivers events in order, so this is the first event for the key during the import;
      // a listener's mark of the key, made in reply to it, comes after and is written as usual.
      this.#importing = -1;
      return;
    }
    switch (event.type) {
      case "cooldown": {
        // The event gives time from now; the shared state keeps wall-clock deadlines. Date.now() is
        // truncated to the millisecond, so the deadline is rounded up past any rounding: a key back
        // a millisecond late costs nothing, one back early meets the server's 429 again.
        const until = Math.ceil(Date.now() + event.delayMs) + 1;
        this.#rank[event.index] = COOLDOWN;
        this.#until[event.index] = until;
        this.#queue(event.index, RAISE, COOLDOWN, until);
        return;
      }
      case "blocked":
      case "disabled": {
        const rank = event.type === "blocked" ? BLOCKED : DISABLED;
        this.#rank[event.index] = rank;
        this.#until[event.index] = 0;
        this.#queue(event.index, RAISE, rank, 0);
        return;
      }
      case "ready":
        this.#rank[event.index] = READY;
        this.#until[event.index] = 0;
        // An expired cooldown is no news: every instance holds the same deadline.
        if (event.reason === "cleared") this.#queue(event.index, CLEAR, READY, 0);
        return;
      case "exhausted":
        return;
      default: {
        const unreachable: never = event;
        return unreachable;
      }
    }
  };

  /** Folds a transition into the key's pending ones and makes sure a write is on its way. */
  #queue(index: number, mode: number, raise: number, until: number): void {
    if (this.#dirty[index] === 0) {
      this.#dirty[index] = 1;
      this.#pendingMode[index] = mode;
      this.#pendingRaise[index] = raise;
      this.#pendingUntil[index] = until;
      this.#dirtyList.push(index);
    } else if (mode === CLEAR) {
      // A clear makes what came before it moot.
      this.#pendingMode[index] = CLEAR;
      this.#pendingRaise[index] = raise;
      this.#pendingUntil[index] = until;
    } else {
      // A fresh mark at least as severe as a state offered covers it (a clear no longer stops it).
      if (mode === RAISE && this.#pendingMode[index] === OFFER && raise >= this.#pendingRaise[index]!) this.#pendingMode[index] = RAISE;
      if (raise > this.#pendingRaise[index]!) this.#pendingRaise[index] = raise;
      if (until > this.#pendingUntil[index]!) this.#pendingUntil[index] = until;
    }
    if (!this.#scheduled && !this.#pumping && this.#status !== "offline") this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    queueMicrotask(this.#pumpTask);
  }

  readonly #pumpTask = (): void => void this.#pump();

  // ---- the writer: one script call or sync at a time, in order ----

  async #pump(): Promise<void> {
    this.#scheduled = false;
    if (this.#pumping || this.#closed) return;
    this.#pumping = true;
    let operation: RedisSyncOperation = "write";
    try {
      while (!this.#closed && this.#connected()) {
        if (this.#needsSync) {
          operation = "load";
          await this.#sync();
          continue;
        }
        if (this.#retry === undefined && this.#dirtyList.length === 0) break;
        operation = "write";
        await this.#write(this.#retry ?? this.#takeDirty());
        this.#retryDelayMs = RETRY_MIN_MS;
      }
    } catch (error) {
      // Whatever was lost, a resync after the next success puts it right.
      this.#needsSync = true;
      if (!this.#closed) {
        this.#report(operation, error);
        if (!this.#connected()) this.#setStatus("offline");
        this.#scheduleRetry();
      }
    } finally {
      this.#pumping = false;
      this.#wake();
    }
  }

  /**
   * Writes what was done while away, loads every key's shared state, offers the local state of keys
   * Redis has no record of (after a data loss), and is ready.
   */
  async #sync(): Promise<void> {
    this.#needsSync = false;
    this.#setStatus("connecting");
    // After an outage Redis may have lost its data and restarted its versions: take what comes.
    if (this.#synced) this.#sharedVersion.fill(0);
    // Subscribed before loading, so that no change falls between the load and the subscription.
    await this.#subscriber.subscribe(this.#layout.channel);
    while (this.#retry !== undefined || this.#dirtyList.length !== 0) await this.#write(this.#retry ?? this.#takeDirty());

    const absent: number[] = [];
    for (let start = 0; start < this.#ids.length; start += CHUNK) {
      const fields = this.#ids.slice(start, start + CHUNK);
      const values = await this.#redis.hmget(this.#layout.stateKey, EPOCH_FIELD, ...fields);
      if (!Array.isArray(values)) throw new TypeError(`HMGET returned ${describe(values)}, expected an array`);
      this.#adoptEpoch(values[0]);
      const incoming: Incoming[] = [];
      fields.forEach((id, offset) => {
        const value = values[offset + 1];
        const entry = typeof value === "string" ? parseRecord(id, value) : undefined;
        if (entry === undefined) absent.push(start + offset);
        else incoming.push({ ...entry, index: start + offset });
      });
      this.#receive(incoming);
    }

    // Keys this instance holds out with no record (the last writes before a restart that a
    // persistence snapshot missed): offered again. A loss of the whole state shows as a new epoch
    // instead, which offers every state this instance holds (see #adoptEpoch).
    for (let start = 0; start < absent.length; start += CHUNK) {
      const wallNow = Date.now();
      const indices = absent.slice(start, start + CHUNK).filter((index) => {
        const rank = this.#rank[index]!;
        if (this.#dirty[index] !== 0 || rank === READY) return false;
        return rank !== COOLDOWN || this.#until[index]! > wallNow;
      });
      if (indices.length === 0) continue;
      for (const index of indices) this.#setFlight(index, OFFER, this.#rank[index]!, this.#until[index]!);
      await this.#write(this.#batchOf(indices));
    }

    if (!this.#needsSync && this.#connected()) {
      this.#synced = true;
      this.#retryDelayMs = RETRY_MIN_MS;
      this.#connectErrorReported = false;
      this.#setStatus("ready");
    }
  }

  /** Takes up to {@link CHUNK} keys' pending transitions as the next batch; they are in flight until it is answered. */
  #takeDirty(): Batch {
    const indices = this.#dirtyList.length <= CHUNK ? this.#dirtyList : this.#dirtyList.slice(0, CHUNK);
    this.#dirtyList = indices === this.#dirtyList ? [] : this.#dirtyList.slice(CHUNK);
    for (const index of indices) {
      this.#dirty[index] = 0;
      this.#setFlight(index, this.#pendingMode[index]!, this.#pendingRaise[index]!, this.#pendingUntil[index]!);
    }
    return this.#batchOf(indices);
  }

  #setFlight(index: number, mode: number, raise: number, until: number): void {
    this.#inFlight[index] = 1;
    this.#flightMode[index] = mode;
    this.#flightRaise[index] = raise;
    this.#flightUntil[index] = until;
  }

  /** The next batch: the keys' in-flight transitions, under a new number. */
  #batchOf(indices: number[]): Batch {
    const args: string[] = [];
    for (const index of indices) {
      args.push(this.#ids[index]!, String(this.#flightMode[index]), String(this.#flightRaise[index]), String(this.#flightUntil[index]));
    }
    return { number: ++this.#batchNumber, indices, args };
  }

  /**
   * Runs the script on a batch and applies the merged states it returns. A batch that fails stays
   * the one to send next, under the same number, so that the script can tell a resend; its
   * transitions stay in flight meanwhile.
   */
  async #write(batch: Batch): Promise<void> {
    this.#retry = batch;
    const { stateKey, batchKey, channel } = this.#layout;
    const reply = await evalApplyScript(this.#redis, [stateKey, batchKey], [
      channel,
      this.instanceId,
      String(batch.number),
      String(Date.now()),
      // The epoch the state starts if Redis has none: unique, as this instance's batch numbers are.
      `${this.instanceId}-${batch.number}`,
      ...batch.args,
    ]);
    if (this.#retry === batch) this.#retry = undefined;
    // Answered: each key's shared state now includes its transition (a resync puts right a bad reply).
    for (const index of batch.indices) this.#inFlight[index] = 0;
    if (!Array.isArray(reply) || reply.length !== batch.indices.length + 1) {
      throw new TypeError(`the script returned ${describe(reply)}, expected an array of ${batch.indices.length + 1}`);
    }
    if (this.#closed) return;
    this.#adoptEpoch(reply[0]);
    for (const entry of this.#parseEntries(reply.slice(1))) this.#record(entry);
    // Every key of the batch, also those whose reply is older than a state received meanwhile (that
    // state was merged after this batch, so it includes it): their in-flight layer is gone.
    const wallNow = Date.now();
    for (const index of batch.indices) this.#reconcile(index, wallNow);
  }

  // ---- other instances' transitions ----

  readonly #onMessage = (channel: string, message: string): void => {
    if (this.#closed || channel !== this.#layout.channel || typeof message !== "string") return;
    const [sender, epoch, ...entries] = message.split(" ");
    if (entries.length === 0) return this.#report("message", new Error("a message without entries was skipped"));
    if (sender === this.instanceId) return;
    if (this.#epoch !== undefined && epoch !== this.#epoch) {
      // Of another epoch than this instance knows: Redis lost the state, or this is news from before
      // the loss. The load tells which.
      this.#needsSync = true;
      this.#schedule();
      return;
    }
    try {
      this.#receive(this.#parseEntries(entries));
    } catch (error) {
      this.#report("message", error);
    }
  };

  /**
   * Takes the shared state's epoch from a script reply or the load (`undefined`: Redis holds no
   * state). A change after a known epoch means Redis lost the state: the versions known are void, and
   * every state this instance holds out goes back in as an offer (a clear made since wins, a milder
   * mark made since does not), then everything is loaded again.
   */
  #adoptEpoch(value: unknown): void {
    const epoch = typeof value === "string" ? value : undefined;
    if (epoch === this.#epoch) return;
    const known = this.#epoch !== undefined;
    this.#epoch = epoch;
    if (!known) return;
    this.#sharedVersion.fill(0);
    this.#needsSync = true;
    const wallNow = Date.now();
    for (let index = 0; index < this.#ids.length; index++) {
      const rank = this.#rank[index]!;
      if (rank !== READY && (rank !== COOLDOWN || this.#until[index]! > wallNow)) this.#queue(index, OFFER, rank, this.#until[index]!);
    }
  }

  /** Parses script reply or message entries; unknown fingerprints are other routers' keys. */
  #parseEntries(texts: readonly unknown[]): Incoming[] {
    const incoming: Incoming[] = [];
    let malformed = 0;
    for (const text of texts) {
      const entry = typeof text === "string" ? parseEntry(text) : undefined;
      if (entry === undefined) {
        malformed++;
        continue;
      }
      const index = this.#indexOfId.get(entry.id);
      if (index !== undefined) incoming.push({ ...entry, index });
    }
    if (malformed !== 0) this.#report("message", new Error(`${malformed} malformed entries were skipped`));
    return incoming;
  }

  /** Records shared states newer than the last known for their key, and brings the router in line. */
  #receive(incoming: readonly Incoming[]): void {
    if (incoming.length === 0 || this.#closed) return;
    const wallNow = Date.now();
    for (const entry of incoming) if (this.#record(entry)) this.#reconcile(entry.index, wallNow);
  }

  /** Keeps a shared state if it is newer than the last known for its key; says whether it was. */
  #record({ index, version, rank, until }: Incoming): boolean {
    if (version <= this.#sharedVersion[index]!) return false;
    this.#sharedVersion[index] = version;
    this.#sharedRank[index] = rank;
    this.#sharedUntil[index] = until;
    return true;
  }

  /**
   * Sets the router's state of one key to what the script will make of it: the newest shared state,
   * with this instance's transitions in flight, then those not yet sent, merged on top by the same
   * rule. So a state from elsewhere never lowers a local transition Redis has not answered, nor
   * shortens its cooldown; a clear from elsewhere that came after it applies once the reply shows so.
   * Imports only where the result differs from the router's state.
   */
  #reconcile(index: number, wallNow: number): void {
    let rank = this.#sharedRank[index]!;
    let until = this.#sharedUntil[index]!;
    // A shared "ready" record is a clear (an ended cooldown stays a cooldown in Redis).
    let cleared = rank === READY && this.#sharedVersion[index] !== 0;
    if (this.#inFlight[index] !== 0) {
      const mode = this.#flightMode[index]!;
      [rank, until] = merge(rank, until, mode, this.#flightRaise[index]!, this.#flightUntil[index]!, wallNow);
      if (mode === CLEAR) cleared = true;
    }
    if (this.#dirty[index] !== 0) {
      const mode = this.#pendingMode[index]!;
      [rank, until] = merge(rank, until, mode, this.#pendingRaise[index]!, this.#pendingUntil[index]!, wallNow);
      if (mode === CLEAR) cleared = true;
    }
    if (rank === COOLDOWN && until <= wallNow) (rank = READY), (until = 0);
    let localRank = this.#rank[index]!;
    const localUntil = this.#until[index]!;
    if (localRank === COOLDOWN && localUntil <= wallNow) localRank = READY;
    if (rank === localRank && (rank !== COOLDOWN || until === localUntil)) return;

    // No `failures` unless a clear ends the run: importState keeps the key's own count otherwise. A
    // cooldown that ended goes in as such (ready, the count kept), not as "ready" (which resets it).
    const entry: SavedKeyState = { id: this.#ids[index]!, status: STATUS_NAMES[rank]! };
    if (rank === COOLDOWN) entry.until = until;
    else if (rank === READY && cleared) entry.failures = 0;
    else if (rank === READY) (entry.status = "cooldown"), (entry.until = wallNow);
    this.#rank[index] = rank;
    this.#until[index] = until;
    // One key per import: its own event is then the first the link hears (see #onRouterEvent).
    this.#importing = index;
    try {
      this.#router.importState({ version: 1, savedAt: wallNow, keys: [entry] });
    } catch (error) {
      this.#report("apply", error);
    } finally {
      this.#importing = -1;
    }
  }

  // ---- connections ----

  #connected(): boolean {
    const main = this.#redis.status;
    const subscriber = this.#subscriber.status;
    // "wait" is ioredis's lazyConnect before the first command, which connects it.
    const mainUp = typeof main === "string" ? main === "ready" || main === "wait" : this.#mainUp;
    const subscriberUp = typeof subscriber === "string" ? subscriber === "ready" : this.#subscriberUp;
    return mainUp && subscriberUp;
  }

  readonly #onMainReady = (): void => {
    this.#mainUp = true;
    this.#schedule();
  };

  readonly #onSubscriberReady = (): void => {
    this.#subscriberUp = true;
    this.#schedule();
  };

  readonly #onMainLost = (): void => {
    this.#mainUp = false;
    this.#lost();
  };

  readonly #onSubscriberLost = (): void => {
    this.#subscriberUp = false;
    this.#lost();
  };

  readonly #onSubscriberError = (error: Error): void => {
    if (this.#closed || this.#connectErrorReported) return;
    this.#connectErrorReported = true;
    this.#report("connect", error);
  };

  #lost(): void {
    if (this.#closed) return;
    // Messages were missed: load everything again once back.
    this.#needsSync = true;
    this.#setStatus("offline");
  }

  #scheduleRetry(): void {
    if (this.#retryTimer !== undefined || this.#closed) return;
    const delay = this.#retryDelayMs;
    this.#retryDelayMs = Math.min(delay * 2, RETRY_MAX_MS);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#schedule();
    }, delay);
    // A link waiting to retry must not keep the process alive on its own.
    (this.#retryTimer as { unref?: () => void }).unref?.();
  }

  async #close(): Promise<void> {
    this.#unsubscribeRouter();
    if (this.#status === "ready") await withTimeout(this.flush(), CLOSE_TIMEOUT_MS);
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#redis.off("ready", this.#onMainReady);
    this.#redis.off("close", this.#onMainLost);
    this.#redis.off("end", this.#onMainLost);
    const subscriber = this.#subscriber;
    subscriber.off("message", this.#onMessage);
    subscriber.off("ready", this.#onSubscriberReady);
    subscriber.off("close", this.#onSubscriberLost);
    subscriber.off("end", this.#onSubscriberLost);
    // The error listener stays (ignoring everything now), so that ioredis does not log errors of a
    // connection being ended as unhandled.
    try {
      if (subscriber.status === undefined || subscriber.status === "ready") await withTimeout(subscriber.quit(), CLOSE_TIMEOUT_MS);
    } catch {
      // Ending it below is enough.
    }
    try {
      subscriber.disconnect();
    } catch {
      // Already ended.
    }
    this.#setStatus("closed");
    this.#listeners = [];
  }

  // ---- events of the link ----

  #setStatus(status: RedisLinkStatus): void {
    if (this.#status === status || this.#status === "closed") return;
    this.#status = status;
    this.#emit({ type: "status", status });
    this.#wake();
  }

  #report(operation: RedisSyncOperation, cause: unknown): void {
    this.#emit({ type: "error", error: new RedisSyncError(operation, { cause }) });
  }

  #emit(event: RedisLinkEvent): void {
    for (const listener of this.#listeners) {
      try {
        const result: unknown = listener(event);
        if (typeof (result as PromiseLike<unknown> | null)?.then === "function") (result as PromiseLike<unknown>).then(undefined, ignore);
      } catch {
        // A listener's failure is its own; the link goes on.
      }
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

function checkMethods(name: string, value: unknown, methods: readonly string[]): void {
  if (typeof value !== "object" || value === null) throw new TypeError(`${name} must be an object, received ${describe(value)}`);
  for (const method of methods) {
    const member = (value as Record<string, unknown>)[method];
    if (typeof member !== "function") throw new TypeError(`${name}.${method} must be a function, received ${describe(member)}`);
  }
}


function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    (timer as { unref?: () => void }).unref?.();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(undefined);
      },
    );
  });
}

function ignore(): void {}
