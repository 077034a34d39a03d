/**
 * What an instance knows of each key's state, and how a state from Redis reaches the router: the
 * router's own state (as its events said), the newest shared state with its version, and the
 * reconcile that brings the router in line with the shared state and this instance's transitions not
 * yet answered (merge.ts, invariant 3), by `importState`. The link feeds it the script's replies and
 * other instances' messages; the router's events come in through {@link Mirror.local}.
 * @internal
 */
// By package name, so the built declarations refer to the core's own types instead of copying them.
import type { KeySnapshot, RouterEvent, SavedKeyState } from "credential-router";
import type { SharedRouter } from "./attach.js";
import type { RedisSyncOperation } from "./errors.js";
import { BLOCKED, CLEAR, COOLDOWN, DISABLED, merge, OFFER, RAISE, READY, STATUS_NAMES } from "./merge.js";
import type { Outbox } from "./outbox.js";
import { MAX_UNTIL, readReason, readRecord, readState } from "./record.js";

/** @internal */
export class Mirror {
  readonly #router: SharedRouter;
  readonly #outbox: Outbox;
  readonly #maxRetryAfterMs: number;
  readonly #report: (operation: RedisSyncOperation, cause: unknown) => void;
  /** Each key's fingerprint, by index, and back. */
  readonly ids: readonly string[];
  readonly #indexOfId: Map<string, number>;

  /** What the router's state is, as far as the events said: rank, cooldown end (wall-clock ms), reason. */
  readonly rank: Uint8Array;
  readonly until: Float64Array;
  readonly reason: string[];
  /**
   * The newest shared state known per key, with its version (0: none). The router holds it with the
   * in-flight and pending transitions merged on top.
   */
  readonly #version: Float64Array;
  readonly #sharedRank: Uint8Array;
  readonly #sharedUntil: Float64Array;
  readonly #sharedReason: Array<string | undefined>;
  /** Keys whose reply was older than a state known before it: to be loaded again. */
  suspects: number[] = [];
  readonly #suspect: Uint8Array;
  /**
   * Per key being imported, the rank it is imported at, plus 1 (0: none). The first event for the key
   * at that rank during the import is the import's own and is not written back; any other event then
   * is a mark made by a listener.
   */
  readonly #importing: Uint8Array;
  /** Imports gathered while applying a reply or a message, made in one `importState` call. */
  #imports: SavedKeyState[] = [];
  #importIndices: number[] = [];
  readonly #scratch = new Float64Array(3);

  constructor(
    router: SharedRouter,
    rows: readonly KeySnapshot[],
    outbox: Outbox,
    maxRetryAfterMs: number,
    report: (operation: RedisSyncOperation, cause: unknown) => void,
  ) {
    this.#router = router;
    this.#outbox = outbox;
    this.#maxRetryAfterMs = maxRetryAfterMs;
    this.#report = report;
    const size = rows.length;
    this.ids = rows.map((row) => row.id);
    this.#indexOfId = new Map(this.ids.map((id, index) => [id, index]));
    this.rank = new Uint8Array(size);
    this.until = new Float64Array(size);
    this.reason = new Array<string>(size).fill("");
    this.#version = new Float64Array(size);
    this.#sharedRank = new Uint8Array(size);
    this.#sharedUntil = new Float64Array(size);
    this.#sharedReason = new Array<string | undefined>(size).fill(undefined);
    this.#suspect = new Uint8Array(size);
    this.#importing = new Uint8Array(size);
    const wallNow = Date.now();
    rows.forEach((row, index) => {
      const { state } = row;
      const rank = STATUS_NAMES.indexOf(state.status);
      this.rank[index] = rank;
      if (state.status === "cooldown") this.until[index] = this.#deadline(wallNow, state.remainingMs);
      if (rank !== READY) this.reason[index] = row.reason ?? "";
      // The router's own states (a restore from saved state, marks made before attaching or while
      // detached) are news to Redis, of unknown age: offered before the shared state is loaded.
      if (rank !== READY) outbox.queue(index, OFFER, rank, this.until[index]!, this.reason[index]!);
    });
  }

  /** Whether the key holds a state out now, by the router's events. */
  holdsOut(index: number, wallNow: number): boolean {
    const rank = this.rank[index]!;
    return rank !== READY && (rank !== COOLDOWN || this.until[index]! > wallNow);
  }

  // ---- local transitions (the hot path: runs inside the router's marks) ----

  /** A cooldown's end as an integer of wall-clock ms, rounded up and capped. */
  #deadline(wallNow: number, remainingMs: number): number {
    // Date.now() is truncated to the millisecond: rounded up past it, a key is back a millisecond
    // late rather than early (when it would meet the server's 429 again).
    return Math.min(Math.ceil(wallNow + Math.min(remainingMs, this.#maxRetryAfterMs)) + 1, MAX_UNTIL);
  }

  /** Takes a router event: notes the key's state, and queues it for Redis unless it came from Redis. Says whether it queued. */
  local(event: RouterEvent): boolean {
    // A state in one scope stays with this instance for now: written as key-wide, it would take the
    // key out of every scope on every instance.
    if (event.type === "exhausted" || event.scope !== undefined) return false;
    const index = event.index;
    const importing = this.#importing[index]!;
    if (importing !== 0 && importing - 1 === STATUS_NAMES.indexOf(event.type)) {
      // The import's own change: the state came from Redis. The emitter delivers events in order,
      // so this is the first event for the key at that state during the import; a listener's mark of
      // the key, made in reply to it, comes after and is written as usual.
      this.#importing[index] = 0;
      return false;
    }
    let mode = RAISE;
    let rank: number;
    let until = 0;
    let reason = "";
    switch (event.type) {
      case "cooldown":
        rank = COOLDOWN;
        until = this.#deadline(Date.now(), event.delayMs);
        reason = event.reason;
        break;
      case "blocked":
        rank = BLOCKED;
        reason = event.reason;
        break;
      case "disabled":
        rank = DISABLED;
        reason = event.reason;
        break;
      case "ready":
        this.rank[index] = READY;
        this.until[index] = 0;
        // An expired cooldown is no news: every instance holds the same deadline.
        if (event.reason !== "cleared") return false;
        mode = CLEAR;
        rank = READY;
        break;
      default: {
        const unreachable: never = event;
        return unreachable;
      }
    }
    this.rank[index] = rank;
    this.until[index] = until;
    this.reason[index] = reason;
    this.#outbox.queue(index, mode, rank, until, reason);
    return true;
  }

  // ---- shared state ----

  /** Forgets every version known: what Redis says next is the newest state. */
  forgetVersions(): void {
    this.#version.fill(0);
  }

  /** Forgets the version of one key (a reload of a suspect). */
  forgetVersion(index: number): void {
    this.#suspect[index] = 0;
    this.#version[index] = 0;
  }

  /**
   * Applies a script reply's records (`reply[2…]`, one per key of `indices`), taken with the counter
   * `seq` after the batch; brings the router in line for `indices`.
   */
  applyReply(reply: unknown[], indices: readonly number[], seq: number): void {
    const wallNow = Date.now();
    const scratch = this.#scratch;
    let malformed = 0;
    for (let k = 0; k < indices.length; k++) {
      const index = indices[k]!;
      const text = reply[k + 2];
      const end = typeof text === "string" ? readRecord(text, scratch) : -1;
      if (end < 0) {
        malformed++;
        continue;
      }
      const version = scratch[2]!;
      const known = this.#version[index]!;
      if (version > known || (version === 0 && known <= seq)) {
        // Newer; or no record at all where the state known is older than this reply (pruned or
        // deleted: a key without a record is ready).
        this.#record(index, version, scratch[0]!, scratch[1]!, readReason(text as string, end, (text as string).length), wallNow);
      } else if (version < known && known <= seq && this.#suspect[index] === 0) {
        // Older than a state known from before this reply: someone reset the counter. Never revert
        // silently: load the key again.
        this.#suspect[index] = 1;
        this.suspects.push(index);
      }
    }
    if (malformed !== 0) this.#report("write", new Error(`${malformed} malformed records in the script's reply were skipped`));
    for (const index of indices) this.#reconcile(index, wallNow);
    this.#importGathered(wallNow);
  }

  /** Applies a message's entries `"<field>|<status>|<until>…"` from `from` on, at version `version`. */
  applyEntries(message: string, from: number, version: number): void {
    const wallNow = Date.now();
    const scratch = this.#scratch;
    let malformed = 0;
    let at = from;
    while (at < message.length) {
      let end = message.indexOf(" ", at);
      if (end < 0) end = message.length;
      const bar = message.indexOf("|", at);
      const stop = bar < 0 || bar > end ? -1 : readState(message, bar + 1, end, scratch);
      if (stop < 0) {
        malformed++;
      } else if (bar - at === 64) {
        // A field with a scope ("<fingerprint>/<scope>") is longer: not one this instance knows.
        const index = this.#indexOfId.get(message.slice(at, bar));
        if (index !== undefined && version > this.#version[index]!) {
          this.#record(index, version, scratch[0]!, scratch[1]!, readReason(message, stop, end), wallNow);
          this.#reconcile(index, wallNow);
        }
      } else if (bar - at < 64 || message.charCodeAt(at + 64) !== 47) {
        malformed++;
      }
      at = end + 1;
    }
    this.#importGathered(wallNow);
    if (malformed !== 0) this.#report("message", new Error(`${malformed} malformed entries were skipped`));
  }

  /**
   * Redis lost the shared state: the versions known are void, and every state this instance holds
   * out goes back in as an offer (a clear made since wins, a milder mark made since does not).
   */
  offerAll(): void {
    this.forgetVersions();
    const wallNow = Date.now();
    for (let index = 0; index < this.ids.length; index++) {
      if (this.holdsOut(index, wallNow)) this.#outbox.queue(index, OFFER, this.rank[index]!, this.until[index]!, this.reason[index]!);
    }
  }

  /** Keeps a shared state; its deadline no later than `maxRetryAfterMs` from now. */
  #record(index: number, version: number, rank: number, until: number, reason: string | undefined, wallNow: number): void {
    this.#version[index] = version;
    this.#sharedRank[index] = rank;
    this.#sharedReason[index] = reason;
    this.#sharedUntil[index] = rank === COOLDOWN ? Math.min(until, Math.ceil(wallNow + this.#maxRetryAfterMs)) : 0;
  }

  /**
   * Sets the router's state of one key to what the script will make of it: the newest shared state,
   * with this instance's transitions in flight, then those not yet sent, merged on top by the same
   * rule (merge.ts, invariant 3). Imports only where the result differs from the router's state.
   */
  #reconcile(index: number, wallNow: number): void {
    const scratch = this.#scratch;
    let rank = this.#sharedRank[index]!;
    let until = this.#sharedUntil[index]!;
    let reason = this.#sharedReason[index];
    // A shared "ready" record is a clear (an ended cooldown stays a cooldown in Redis).
    let cleared = rank === READY && this.#version[index] !== 0;
    const outbox = this.#outbox;
    if (outbox.isInFlight(index)) {
      const at = index * 3;
      const mode = outbox.flight[at]!;
      merge(rank, until, mode, outbox.flight[at + 1]!, outbox.flight[at + 2]!, wallNow, scratch);
      (rank = scratch[0]!), (until = scratch[1]!);
      if (scratch[2] === 1) reason = outbox.flightReason[index];
      if (mode === CLEAR) cleared = true;
    }
    if (outbox.isPending(index)) {
      const at = index * 3;
      const mode = outbox.pending[at]!;
      merge(rank, until, mode, outbox.pending[at + 1]!, outbox.pending[at + 2]!, wallNow, scratch);
      (rank = scratch[0]!), (until = scratch[1]!);
      if (scratch[2] === 1) reason = outbox.pendingReason[index];
      if (mode === CLEAR) cleared = true;
    }
    if (rank === COOLDOWN && until <= wallNow) (rank = READY), (until = 0);
    let localRank = this.rank[index]!;
    const localUntil = this.until[index]!;
    if (localRank === COOLDOWN && localUntil <= wallNow) localRank = READY;
    // A reason alone is no change: importState would keep the router's own for the same state.
    if (rank === localRank && (rank !== COOLDOWN || until === localUntil)) return;

    // No `failures` unless a clear ends the run: importState keeps the key's own count otherwise. A
    // cooldown that ended goes in as such (ready, the count kept), not as "ready" (which resets it).
    const entry: SavedKeyState = { id: this.ids[index]!, status: STATUS_NAMES[rank]! };
    if (rank === COOLDOWN) entry.until = until;
    else if (rank === READY && cleared) entry.failures = 0;
    else if (rank === READY) (entry.status = "cooldown"), (entry.until = wallNow);
    if (rank !== READY && reason) entry.reason = reason;
    this.rank[index] = rank;
    this.until[index] = until;
    this.reason[index] = rank === READY ? "" : (reason ?? "manual");
    this.#imports.push(entry);
    this.#importIndices.push(index);
  }

  /** Makes the imports gathered by {@link #reconcile}, in one call. */
  #importGathered(wallNow: number): void {
    const keys = this.#imports;
    if (keys.length === 0) return;
    const indices = this.#importIndices;
    this.#imports = [];
    this.#importIndices = [];
    for (const index of indices) this.#importing[index] = this.rank[index]! + 1;
    try {
      this.#router.importState({ version: 1, savedAt: wallNow, keys });
    } catch (error) {
      this.#report("apply", error);
      // A router holds 256 reasons at most: the states matter more than their names.
      if (error instanceof RangeError) this.#importWithoutReasons(keys, wallNow);
    } finally {
      for (const index of indices) this.#importing[index] = 0;
    }
  }

  #importWithoutReasons(keys: SavedKeyState[], wallNow: number): void {
    for (const entry of keys) delete entry.reason;
    try {
      this.#router.importState({ version: 1, savedAt: wallNow, keys });
    } catch (error) {
      this.#report("apply", error);
    }
  }
}
