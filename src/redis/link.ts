/**
 * The link between one router and Redis: its status, how it recovers (reconnect, resync, heartbeat),
 * and the order of its script calls and messages. The pieces it puts together are each in their own
 * file: the outbox (outbox.ts), the script call (script.ts), what this instance knows of each key and
 * how a state from Redis reaches the router (mirror.ts), the merge rules (merge.ts), the record format
 * (record.ts) and the messages' numbering (sequence.ts).
 *
 * Redis is at-most-once: a pub/sub message is lost on a reconnect or a subscriber swap. Every change
 * carries the namespace's counter, so that the messages of one namespace arrive numbered 1, 2, 3…: a
 * gap or a repeat, a heartbeat that finds Redis ahead of the last message seen twice in a row, a
 * dropped connection or a new epoch each end in a resync, which takes a bounded number of round trips
 * (one script call per 1,000 keys) however fast the router marks.
 * @internal
 */
import { randomBytes } from "node:crypto";
// By package name, so the built declarations refer to the core's own types instead of copying them.
import type { RouterEvent } from "credential-router";
import type { RedisLink, RedisLinkEvent, RedisLinkListener, RedisLinkStatus, SharedRouter } from "./attach.js";
import { describe } from "../secret.js";
import { withTimeout, type Connection, type Subscription } from "./client.js";
import { RedisSyncError, type RedisSyncOperation } from "./errors.js";
import { RAISE, READY, RESTORE } from "./merge.js";
import { Mirror } from "./mirror.js";
import { CHUNK, type Outbox, type Batch } from "./outbox.js";
import { layoutOf, readCount, reasonText, type Layout } from "./record.js";
import { runApplyScript } from "./script.js";
import { APPLY, REFUSE, Sequence, SKIP_AND_RESYNC } from "./sequence.js";

/** The link's settings, checked by `attachRedis`. @internal */
export interface LinkSettings {
  namespace: string;
  maxRetryAfterMs: number;
  writeIntervalMs: number;
}

const CLOSE_TIMEOUT_MS = 1_000;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;
/** How often a ready link checks that it has seen every change (one script call without transitions). */
const HEARTBEAT_MS = 1_000;
/** How often a link says again which keys it holds, and for how long that holds. */
const ANNOUNCE_MS = 3_600_000;
const HOLD_MS = 86_400_000;
/** How long a ready record (a clear, an ended cooldown) stays in Redis. */
const RETAIN_MS = 86_400_000;
/** How long an instance's batch counter outlives its last write. */
const GUARD_MS = 6 * 3_600_000;
/** Hash fields looked over for pruning per heartbeat. */
const SWEEP_COUNT = "32";
const DELETE_SCRIPT = "return redis.call('DEL', KEYS[1])";

/** @internal */
export class Link implements RedisLink {
  readonly instanceId = randomBytes(8).toString("hex");
  readonly namespace: string;
  readonly #connection: Connection;
  readonly #subscription: Subscription;
  readonly #layout: Layout;
  readonly #keys: string[];
  readonly #writeIntervalMs: number;
  readonly #outbox: Outbox;
  readonly #mirror: Mirror;
  /** The batch sent and not yet answered (sent again, under its number, when it failed). */
  #retry: Batch | undefined;

  /** The shared state's epoch, once known: a new one means Redis lost the state. */
  #epoch: string | undefined;
  /** The messages' numbers: whether one was lost or forged. */
  readonly #sequence = new Sequence();

  #status: RedisLinkStatus = "connecting";
  #listeners: ReadonlyArray<RedisLinkListener> = [];
  #waiters: Array<() => void> = [];
  #closed = false;
  #closing: Promise<void> | undefined;
  #needsSync = true;
  #quietSync = false;
  #probeDue = false;
  #nextAnnounce = 0;
  #pumping = false;
  #scheduled = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #writeTimer: ReturnType<typeof setTimeout> | undefined;
  #lastWriteAt = -Infinity;
  #retryDelayMs = RETRY_MIN_MS;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #connectErrorReported = false;
  /** Connection states, for clients that do not tell theirs. */
  #mainUp = true;
  #subscriberUp = false;
  readonly #stops: Array<() => void> = [];

  /**
   * Reads the router, opens the subscriber connection, then starts listening. Throws, with nothing
   * left behind (no listener, no connection), when any step fails.
   */
  constructor(router: SharedRouter, connection: Connection, settings: LinkSettings) {
    this.namespace = settings.namespace;
    this.#writeIntervalMs = settings.writeIntervalMs;
    this.#connection = connection;
    this.#layout = layoutOf(settings.namespace, this.instanceId);
    const { stateKey, batchKey, heldKey, scopesKey } = this.#layout;
    this.#keys = [stateKey, batchKey, heldKey, scopesKey];
    this.#mirror = new Mirror(router, router.snapshot(), settings.maxRetryAfterMs, (operation, cause) => this.#report(operation, cause));
    this.#outbox = this.#mirror.outbox;

    this.#subscription = connection.openSubscription();
    try {
      this.#stops.push(
        this.#subscription.listen(this.#onMessage, this.#onSubscriberUp, this.#onSubscriberDown, this.#onSubscriberError),
        connection.listen(this.#onMainUp, this.#onMainDown),
        router.subscribe(this.#onRouterEvent),
      );
    } catch (error) {
      for (const stop of this.#stops) stop();
      void this.#subscription.close(0);
      throw error;
    }
    // Connects a client made with `lazyConnect`; failures arrive as `error` events, and the sync
    // subscribes again anyway.
    this.#subscription.subscribe(this.#layout.channel).then(undefined, ignore);
    this.#heartbeat = setInterval(this.#onHeartbeat, HEARTBEAT_MS);
    (this.#heartbeat as { unref?: () => void }).unref?.();
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
    const target = this.#outbox.marks;
    for (;;) {
      // Checked after every wake: a write in flight when the connection drops may never settle (a
      // client that queues commands until it reconnects), and flush must not wait on it.
      if (this.#closed || this.#status === "offline") return false;
      const done = this.#status === "ready" && !this.#needsSync && this.#retry === undefined && this.#mirror.suspects.length === 0;
      if (done && this.#outbox.written >= target) return true;
      if (!this.#pumping && !this.#scheduled && this.#writeTimer === undefined) {
        if (!this.#connected()) return false;
        // Idle with nothing left to send: every mark before the call is written.
        if (done && this.#outbox.size === 0) return true;
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
    if (this.#mirror.local(event) && !this.#scheduled && !this.#pumping && this.#writeTimer === undefined && this.#status !== "offline") this.#schedule();
  };

  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    queueMicrotask(this.#pumpTask);
  }

  readonly #pumpTask = (): void => void this.#pump();

  readonly #onWriteTimer = (): void => {
    this.#writeTimer = undefined;
    this.#schedule();
  };

  // ---- the writer: one script call at a time, in order ----

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
        } else if (this.#mirror.suspects.length !== 0) {
          operation = "load";
          await this.#reload();
        } else if (this.#retry !== undefined || this.#outbox.size !== 0) {
          const wait = this.#lastWriteAt + this.#writeIntervalMs - performance.now();
          if (this.#retry === undefined && wait > 0) {
            // Wrote a moment ago: what comes meanwhile goes in the next batch.
            this.#writeTimer ??= setTimeout(this.#onWriteTimer, wait);
            break;
          }
          operation = "write";
          this.#lastWriteAt = performance.now();
          await this.#write(this.#retry ?? this.#nextBatch());
          this.#retryDelayMs = RETRY_MIN_MS;
        } else if (this.#probeDue) {
          operation = "load";
          this.#probeDue = false;
          await this.#probe();
        } else {
          break;
        }
      }
    } catch (error) {
      // Whatever was lost, a resync after the next success puts it right.
      this.#needsSync = true;
      this.#quietSync = false;
      this.#sequence.loadFailed();
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

  /** The pending transitions of up to {@link CHUNK} keys, in flight from now. */
  #nextBatch(): Batch {
    const batch = this.#outbox.take();
    this.#addArgs(batch);
    return batch;
  }

  #addArgs(batch: Batch): void {
    this.#outbox.seal(batch);
    const { flight, flightReason } = this.#outbox;
    const { field } = this.#mirror.slots;
    const entries = batch.entries;
    for (const slot of batch.indices) {
      const at = slot * 3;
      entries.push(`${field[slot]!}|${flight[at]!}|${flight[at + 1]!}|${flight[at + 2]!}|${reasonText(flightReason[slot]!)}`);
    }
  }

  /**
   * Loads every key's shared state, in one script call per {@link CHUNK} keys, each key carrying its
   * pending transition (taken at that moment), or a restore of its local state when it holds one out
   * (raising only a missing record: the last writes before a restart that persistence missed), or a
   * read. Marks made meanwhile stay pending for the writes after. Then checks that no message fell
   * between, and is ready.
   */
  async #sync(): Promise<void> {
    const quiet = this.#quietSync && this.#status === "ready";
    this.#needsSync = false;
    this.#quietSync = false;
    if (!quiet) this.#setStatus("connecting");
    // Subscribed before loading, so that no change falls between the load and the subscription.
    await this.#subscription.subscribe(this.#layout.channel);
    if (this.#retry !== undefined) await this.#write(this.#retry);
    // What Redis says now is the newest state: the versions known are void.
    const mirror = this.#mirror;
    mirror.forgetVersions();
    this.#sequence.loadStarted();
    let floor = -1;
    const { slots } = mirror;
    // Slots made during the load (scoped records it finds) come with their state already.
    const end = slots.end;
    for (let slot = 0; slot < end; ) {
      const batch = this.#outbox.open();
      // Each key-wide entry brings the key's scoped records along, in the same call.
      batch.load = true;
      const wallNow = Date.now();
      for (; slot < end && batch.indices.length < CHUNK; slot++) {
        if (!slots.live(slot) || this.#outbox.takeOne(slot, batch)) continue;
        if (mirror.holdsOut(slot, wallNow)) this.#outbox.add(batch, slot, RESTORE, mirror.rank[slot]!, mirror.until[slot]!, mirror.reason[slot]!);
        else this.#outbox.add(batch, slot, RAISE, READY, 0, "");
      }
      this.#addArgs(batch);
      const seq = await this.#write(batch);
      if (floor < 0) floor = seq;
    }
    if (floor < 0) floor = await this.#probe();
    if (!this.#sequence.loadEnded(floor)) this.#needsSync = true;
    this.#nextAnnounce = Date.now() + ANNOUNCE_MS;
    if (!this.#needsSync && this.#connected()) {
      this.#retryDelayMs = RETRY_MIN_MS;
      this.#connectErrorReported = false;
      this.#setStatus("ready");
    } else {
      // Not done (a gap, or the connection went): once more when it can.
      this.#needsSync = true;
    }
  }

  /** Loads the slots whose reply was older than the state known (see `Mirror.applyReply`). */
  async #reload(): Promise<void> {
    const suspects = this.#mirror.suspects.splice(0, CHUNK);
    const batch = this.#outbox.open();
    for (const slot of suspects) {
      // What Redis says is the newest state of the slot: its version known is void.
      this.#mirror.forgetVersion(slot);
      if (!this.#outbox.takeOne(slot, batch) && !this.#outbox.isInFlight(slot)) this.#outbox.add(batch, slot, RAISE, READY, 0, "");
    }
    this.#addArgs(batch);
    await this.#write(batch);
  }

  /**
   * The heartbeat: a script call without transitions (it prunes a little). Redis's counter behind the
   * last message seen means a forged or repeated message; ahead of it twice in a row, a lost one.
   * Returns the counter.
   */
  async #probe(): Promise<number> {
    const reply = await this.#run({ number: 0, indices: [], entries: [], covers: -1, load: false }, SWEEP_COUNT);
    const seq = this.#applyReply(reply, []);
    if (!this.#needsSync && this.#sequence.heartbeat(seq)) this.#needsSync = true;
    return seq;
  }

  #run(batch: Batch, sweep = "0"): Promise<unknown> {
    const { channel } = this.#layout;
    const wallNow = Date.now();
    return runApplyScript(this.#connection, this.#keys, [
      channel,
      this.instanceId,
      String(batch.number),
      String(wallNow),
      // The epoch the state starts if Redis has none: unique, as this instance's batch numbers are.
      `${this.instanceId}-${batch.number}-${wallNow}`,
      String(wallNow + HOLD_MS),
      String(RETAIN_MS),
      String(GUARD_MS),
      sweep,
      batch.load ? "1" : "0",
      ...(batch.entries.length === 0 ? [] : [batch.entries.join(" ")]),
    ]);
  }

  /**
   * Runs the script on a batch and applies the states it returns. A batch that fails stays the one
   * to send next, under the same number, so that the script can tell a resend; its transitions stay
   * in flight meanwhile. Returns the counter after the batch.
   */
  async #write(batch: Batch): Promise<number> {
    this.#retry = batch;
    const reply = await this.#run(batch);
    if (this.#retry === batch) this.#retry = undefined;
    // Answered: each key's shared state now includes its transition.
    this.#outbox.settle(batch);
    const seq = this.#applyReply(reply, batch.indices);
    this.#wake();
    return seq;
  }

  /** Takes a reply's epoch, counter and records; brings the router in line for `slots`. */
  #applyReply(reply: unknown, slots: readonly number[]): number {
    const text = typeof reply === "string" ? reply : "";
    const first = text.indexOf(" ");
    let second = first < 0 ? -1 : text.indexOf(" ", first + 1);
    if (first > 0 && second < 0) second = text.length;
    if (second < 0) throw new TypeError(`the script returned ${describe(reply)}, expected its epoch, its counter and ${slots.length} records`);
    const seq = readCount(text, first + 1, second);
    if (seq < 0) throw new TypeError("the script returned an unreadable counter");
    if (this.#closed) return seq;
    this.#adoptEpoch(text.slice(0, first));
    if (this.#sequence.farAhead(seq)) {
      // Redis's own word: taken, but worth telling.
      this.#report("load", new Error(`the shared state's version jumped more than 2^31 ahead (from ${this.#sequence.newest} to ${seq})`));
    }
    this.#sequence.saw(seq);
    this.#mirror.applyReply(text, second + 1, slots, seq);
    return seq;
  }

  // ---- other instances' transitions ----

  readonly #onMessage = (channel: string, message: string): void => {
    if (this.#closed || channel !== this.#layout.channel || typeof message !== "string") return;
    const first = message.indexOf(" ");
    const second = first < 0 ? -1 : message.indexOf(" ", first + 1);
    const third = second < 0 ? -1 : message.indexOf(" ", second + 1);
    const seq = third < 0 ? -1 : readCount(message, second + 1, third);
    if (seq < 0) return this.#report("message", new Error("a message without a valid header was skipped"));
    const epoch = message.slice(first + 1, second);
    if (this.#epoch !== undefined && epoch !== this.#epoch) {
      // Of another epoch than this instance knows: Redis lost the state, or this is news from before
      // the loss. The load tells which.
      return this.#resync();
    }
    const verdict = this.#sequence.message(seq);
    if (verdict === REFUSE) {
      this.#report("message", new Error(`a change at version ${seq}, more than 2^31 ahead of the newest known (${this.#sequence.newest}), was refused`));
      return this.#resync();
    }
    // A gap (a message lost) or a repeat (a forged one, or a counter reset): load everything again.
    if (verdict !== APPLY) this.#resync();
    if (verdict === SKIP_AND_RESYNC) return;
    // Its own changes came with the script's reply.
    if (first === this.instanceId.length && message.startsWith(this.instanceId)) return;
    this.#mirror.applyEntries(message, third + 1, seq);
  };

  #resync(): void {
    this.#needsSync = true;
    this.#schedule();
  }

  /**
   * Takes the shared state's epoch from a script reply. A change after a known epoch means Redis lost
   * the state: the versions known are void, every state this instance holds out goes back in as an
   * offer (a clear made since wins, a milder mark made since does not), and everything is loaded again.
   */
  #adoptEpoch(value: unknown): void {
    const epoch = typeof value === "string" ? value : undefined;
    if (epoch === this.#epoch) return;
    const known = this.#epoch !== undefined;
    this.#epoch = epoch;
    this.#sequence.reset();
    if (!known) return;
    this.#needsSync = true;
    this.#mirror.offerAll();
  }

  // ---- connections ----

  #connected(): boolean {
    return (this.#connection.up ?? this.#mainUp) && (this.#subscription.up ?? this.#subscriberUp);
  }

  readonly #onMainUp = (): void => {
    this.#mainUp = true;
    this.#schedule();
  };

  readonly #onSubscriberUp = (): void => {
    this.#subscriberUp = true;
    this.#schedule();
  };

  readonly #onMainDown = (): void => {
    this.#mainUp = false;
    this.#lost();
  };

  readonly #onSubscriberDown = (): void => {
    this.#subscriberUp = false;
    this.#lost();
  };

  readonly #onSubscriberError = (error: Error): void => {
    if (this.#closed || this.#connectErrorReported) return;
    this.#connectErrorReported = true;
    this.#report("connect", error);
  };

  readonly #onHeartbeat = (): void => {
    if (this.#status !== "ready") return;
    if (Date.now() >= this.#nextAnnounce) {
      // Says again which keys this instance holds (a quiet resync), so that Redis keeps their records.
      this.#needsSync = true;
      this.#quietSync = true;
    }
    this.#probeDue = true;
    this.#schedule();
    // Scopes that hold nothing any more give their slots back.
    if (!this.#pumping) this.#mirror.release(this.#sequence.through);
  };

  #lost(): void {
    if (this.#closed) return;
    // Messages were missed: load everything again once back.
    this.#needsSync = true;
    this.#quietSync = false;
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
    this.#stops.pop()?.(); // the router's events first: nothing more to write
    const ready = this.#status === "ready";
    if (ready) await withTimeout(this.flush(), CLOSE_TIMEOUT_MS);
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#writeTimer);
    this.#writeTimer = undefined;
    clearInterval(this.#heartbeat);
    this.#retryTimer = undefined;
    for (const stop of this.#stops) stop();
    // This instance's batch counter: nobody else reads it.
    if (ready && this.#connected()) await withTimeout(this.#connection.eval(DELETE_SCRIPT, [this.#layout.batchKey], []), CLOSE_TIMEOUT_MS);
    await this.#subscription.close(CLOSE_TIMEOUT_MS);
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

function ignore(): void {}
