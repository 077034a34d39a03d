/**
 * What an instance knows of each key's state, key-wide and in each scope (a slot each: slots.ts), and
 * how a state from Redis reaches the router: the router's own state (as its events said), the newest
 * shared state with its version, and the reconcile that brings the router in line with the shared
 * state and this instance's transitions not yet answered (merge.ts, invariant 3), by `importState`.
 * The link feeds it the script's replies and other instances' messages; the router's events come in
 * through {@link Mirror.local}.
 *
 * A scope's states live in slots made when the scope first holds a state here (a mark, an import)
 * and freed once the scope holds none and no message older than the last known can still arrive. The
 * router keeps at most `maxScopes` scopes and drops the least recently used silently; a state it
 * forgot that way is not imported again until its record changes, which errs toward trying a key, as
 * the router's own rule does.
 * @internal
 */
// By package name, so the built declarations refer to the core's own types instead of copying them.
import type { KeySnapshot, RouterEvent, SavedKeyState } from "credential-router";
import type { SharedRouter } from "./attach.js";
import type { RedisSyncOperation } from "./errors.js";
import { BLOCKED, CLEAR, COOLDOWN, DISABLED, merge, OFFER, RAISE, READY, STATUS_NAMES } from "./merge.js";
import { Outbox } from "./outbox.js";
import { MAX_UNTIL, readReason, readRecord, readState } from "./record.js";
import { grown, Slots } from "./slots.js";

/** @internal */
export class Mirror {
  readonly #router: SharedRouter;
  readonly #maxRetryAfterMs: number;
  readonly #report: (operation: RedisSyncOperation, cause: unknown) => void;
  /** The (key, scope) pairs, each a slot, and their Redis fields. */
  readonly slots: Slots;
  /** What is waiting to be written, per slot. */
  readonly outbox: Outbox;

  /** What the router's state is, as far as the events said: rank, cooldown end (wall-clock ms), reason. */
  rank: Uint8Array;
  until: Float64Array;
  readonly reason: string[] = [];
  /**
   * The newest shared state known per slot, with its version (0: none). The router holds it with the
   * in-flight and pending transitions merged on top.
   */
  #version: Float64Array;
  #sharedRank: Uint8Array;
  #sharedUntil: Float64Array;
  readonly #sharedReason: Array<string | undefined> = [];
  /** Slots whose reply was older than a state known before it: to be loaded again. */
  suspects: number[] = [];
  #suspect: Uint8Array;
  /**
   * Per slot being imported, the rank it is imported at, plus 1 (0: none). The first event for the
   * slot at that rank during the import is the import's own and is not written back; any other event
   * then is a mark made by a listener.
   */
  #importing: Uint8Array;
  /** Imports gathered while applying a reply or a message, made in one `importState` call. */
  #imports: SavedKeyState[] = [];
  #importSlots: number[] = [];
  #importsScoped = false;
  /** Slots a reply or message touched, to reconcile. */
  #touched: number[] = [];
  readonly #scratch = new Float64Array(3);

  constructor(router: SharedRouter, rows: readonly KeySnapshot[], maxRetryAfterMs: number, report: (operation: RedisSyncOperation, cause: unknown) => void) {
    this.#router = router;
    this.#maxRetryAfterMs = maxRetryAfterMs;
    this.#report = report;
    this.slots = new Slots(
      rows.map((row) => row.id),
      (capacity) => this.#grow(capacity),
    );
    const { capacity } = this.slots;
    this.outbox = new Outbox(capacity);
    this.rank = new Uint8Array(capacity);
    this.until = new Float64Array(capacity);
    this.#version = new Float64Array(capacity);
    this.#sharedRank = new Uint8Array(capacity);
    this.#sharedUntil = new Float64Array(capacity);
    this.#suspect = new Uint8Array(capacity);
    this.#importing = new Uint8Array(capacity);
    const wallNow = Date.now();
    // The router's own states (a restore from saved state, marks made before attaching or while
    // detached) are news to Redis, of unknown age: offered before the shared state is loaded.
    const offer = (slot: number, state: KeySnapshot["state"], reason: string | undefined) => {
      const rank = STATUS_NAMES.indexOf(state.status);
      this.rank[slot] = rank;
      if (state.status === "cooldown") this.until[slot] = this.#deadline(wallNow, state.remainingMs);
      this.reason[slot] = rank === READY ? "" : (reason ?? "");
      if (rank !== READY) this.outbox.queue(slot, OFFER, rank, this.until[slot]!, this.reason[slot]!);
    };
    rows.forEach((row, index) => {
      offer(index, row.state, row.reason);
      for (const { scope, state, reason } of row.scopes ?? []) offer(this.slots.slotIn(index, scope), state, reason);
    });
  }

  #grow(capacity: number): void {
    this.rank = grown(this.rank, capacity);
    this.until = grown(this.until, capacity);
    this.#version = grown(this.#version, capacity);
    this.#sharedRank = grown(this.#sharedRank, capacity);
    this.#sharedUntil = grown(this.#sharedUntil, capacity);
    this.#suspect = grown(this.#suspect, capacity);
    this.#importing = grown(this.#importing, capacity);
    this.outbox.grow(capacity);
  }

  /** Whether the slot holds a state out now, by the router's events. */
  holdsOut(slot: number, wallNow: number): boolean {
    const rank = this.rank[slot]!;
    return rank !== READY && (rank !== COOLDOWN || this.until[slot]! > wallNow);
  }

  // ---- local transitions (the hot path: runs inside the router's marks) ----

  /** A cooldown's end as an integer of wall-clock ms, rounded up and capped. */
  #deadline(wallNow: number, remainingMs: number): number {
    // Date.now() is truncated to the millisecond: rounded up past it, a key is back a millisecond
    // late rather than early (when it would meet the server's 429 again).
    return Math.min(Math.ceil(wallNow + Math.min(remainingMs, this.#maxRetryAfterMs)) + 1, MAX_UNTIL);
  }

  /** Takes a router event: notes the state, and queues it for Redis unless it came from Redis. Says whether it queued. */
  local(event: RouterEvent): boolean {
    if (event.type === "exhausted") return false;
    // A key-wide clear is followed by the clear of each scope it ended, each a slot of its own; the
    // script clears the key's other scoped records too (those only other instances hold).
    const slot = event.scope === undefined ? event.index : this.slots.slotIn(event.index, event.scope);
    const importing = this.#importing[slot]!;
    if (importing !== 0 && importing - 1 === STATUS_NAMES.indexOf(event.type)) {
      // The import's own change: the state came from Redis. The emitter delivers events in order,
      // so this is the first event for the slot at that state during the import; a listener's mark
      // of it, made in reply to it, comes after and is written as usual.
      this.#importing[slot] = 0;
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
        this.rank[slot] = READY;
        this.until[slot] = 0;
        this.reason[slot] = "";
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
    this.rank[slot] = rank;
    this.until[slot] = until;
    this.reason[slot] = reason;
    this.outbox.queue(slot, mode, rank, until, reason);
    return true;
  }

  // ---- shared state ----

  /** Forgets every version known: what Redis says next is the newest state. */
  forgetVersions(): void {
    this.#version.fill(0);
  }

  /** Forgets the version of one slot (a reload of a suspect). */
  forgetVersion(slot: number): void {
    this.#suspect[slot] = 0;
    this.#version[slot] = 0;
  }

  /**
   * Applies a script reply (`reply` from `from` on, taken with the counter `seq` after the batch): a
   * record per slot of `batch`, then pairs of a field and its record (scoped records a key-wide clear
   * ended, or those a load found), all separated by spaces; brings the router in line for them all.
   */
  applyReply(reply: string, from: number, batch: readonly number[], seq: number): void {
    const wallNow = Date.now();
    const scratch = this.#scratch;
    const touched = this.#touched;
    let malformed = 0;
    const count = batch.length;
    let at = from;
    for (let k = 0; k < count || at < reply.length; k++) {
      if (at >= reply.length) {
        malformed += count - k;
        break;
      }
      let end = reply.indexOf(" ", at);
      if (end < 0) end = reply.length;
      let field: string | undefined;
      if (k >= count) {
        field = reply.slice(at, end);
        at = end + 1;
        end = at > reply.length ? -1 : reply.indexOf(" ", at);
        if (end < 0) end = reply.length;
      }
      const stop = at < end ? readRecord(reply, scratch, at, end) : -1;
      let slot = -2;
      if (stop >= 0) slot = field === undefined ? batch[k]! : this.slots.slotOfField(field, holdsOut(scratch, wallNow));
      if (slot === -2) malformed++;
      else if (slot >= 0) {
        const version = scratch[2]!;
        const known = this.#version[slot]!;
        if (version > known || (version === 0 && known <= seq)) {
          // Newer; or no record at all where the state known is older than this reply (pruned or
          // deleted: a key without a record is ready).
          this.#record(slot, version, scratch[0]!, scratch[1]!, readReason(reply, stop, end), wallNow);
          if (field !== undefined) touched.push(slot);
        } else if (version < known && known <= seq && this.#suspect[slot] === 0) {
          // Older than a state known from before this reply: someone reset the counter. Never revert
          // silently: load the slot again.
          this.#suspect[slot] = 1;
          this.suspects.push(slot);
        }
      }
      at = end + 1;
    }
    if (malformed !== 0) this.#report("write", new Error(`${malformed} malformed records in the script's reply were skipped`));
    for (const slot of batch) this.#reconcile(slot, wallNow);
    this.#reconcileTouched(wallNow);
  }

  /** Applies a message's entries `"<field>|<status>|<until>|<reason>"` from `from` on, at version `version`. */
  applyEntries(message: string, from: number, version: number): void {
    const wallNow = Date.now();
    const scratch = this.#scratch;
    const touched = this.#touched;
    let malformed = 0;
    let at = from;
    while (at < message.length) {
      let end = message.indexOf(" ", at);
      if (end < 0) end = message.length;
      const bar = message.indexOf("|", at);
      const stop = bar < 0 || bar > end ? -1 : readState(message, bar + 1, end, scratch);
      let slot = -2;
      if (stop >= 0 && bar - at === 64) {
        slot = this.slots.indexOf(message.slice(at, bar)) ?? -1;
      } else if (stop >= 0 && bar - at > 64) {
        slot = this.slots.slotOfField(message.slice(at, bar), holdsOut(scratch, wallNow));
      }
      if (slot === -2) malformed++;
      else if (slot >= 0 && version > this.#version[slot]!) {
        this.#record(slot, version, scratch[0]!, scratch[1]!, readReason(message, stop, end), wallNow);
        touched.push(slot);
      }
      at = end + 1;
    }
    this.#reconcileTouched(wallNow);
    if (malformed !== 0) this.#report("message", new Error(`${malformed} malformed entries were skipped`));
  }

  #reconcileTouched(wallNow: number): void {
    const touched = this.#touched;
    for (let k = 0; k < touched.length; k++) this.#reconcile(touched[k]!, wallNow);
    touched.length = 0;
    this.#importGathered(wallNow);
  }

  /**
   * Redis lost the shared state: the versions known are void, and every state this instance holds
   * out goes back in as an offer (a clear made since wins, a milder mark made since does not).
   */
  offerAll(): void {
    this.forgetVersions();
    const wallNow = Date.now();
    for (let slot = 0; slot < this.slots.end; slot++) {
      if (this.slots.live(slot) && this.holdsOut(slot, wallNow)) this.outbox.queue(slot, OFFER, this.rank[slot]!, this.until[slot]!, this.reason[slot]!);
    }
  }

  /**
   * Frees the slots of scopes that hold nothing any more: ready here and in Redis, nothing waiting or
   * in flight, and a version no later than `through`, the last message known to have arrived (so that
   * no older message still on its way can be taken for news).
   */
  release(through: number): void {
    const { slots, outbox } = this;
    const wallNow = Date.now();
    for (let slot = slots.keys; slot < slots.end; slot++) {
      if (!slots.live(slot) || this.holdsOut(slot, wallNow) || outbox.isPending(slot) || outbox.isInFlight(slot) || this.#suspect[slot] !== 0) continue;
      const shared = this.#sharedRank[slot]!;
      if ((shared !== READY && (shared !== COOLDOWN || this.#sharedUntil[slot]! > wallNow)) || this.#version[slot]! > through) continue;
      this.rank[slot] = this.#sharedRank[slot] = this.#importing[slot] = 0;
      this.until[slot] = this.#sharedUntil[slot] = this.#version[slot] = 0;
      this.reason[slot] = "";
      this.#sharedReason[slot] = undefined;
      slots.release(slot);
    }
  }

  /** Keeps a shared state; its deadline no later than `maxRetryAfterMs` from now. */
  #record(slot: number, version: number, rank: number, until: number, reason: string | undefined, wallNow: number): void {
    this.#version[slot] = version;
    this.#sharedRank[slot] = rank;
    this.#sharedReason[slot] = reason;
    this.#sharedUntil[slot] = rank === COOLDOWN ? Math.min(until, Math.ceil(wallNow + this.#maxRetryAfterMs)) : 0;
  }

  /**
   * Sets the router's state of one slot to what the script will make of it: the newest shared state,
   * with this instance's transitions in flight, then those not yet sent, merged on top by the same
   * rule (merge.ts, invariant 3). Imports only where the result differs from the router's state.
   */
  #reconcile(slot: number, wallNow: number): void {
    const scratch = this.#scratch;
    let rank = this.#sharedRank[slot]!;
    let until = this.#sharedUntil[slot]!;
    let reason = this.#sharedReason[slot];
    // A shared "ready" record is a clear (an ended cooldown stays a cooldown in Redis).
    let cleared = rank === READY && this.#version[slot] !== 0;
    const outbox = this.outbox;
    if (outbox.isInFlight(slot)) {
      const at = slot * 3;
      const mode = outbox.flight[at]!;
      merge(rank, until, mode, outbox.flight[at + 1]!, outbox.flight[at + 2]!, wallNow, scratch);
      (rank = scratch[0]!), (until = scratch[1]!);
      if (scratch[2] === 1) reason = outbox.flightReason[slot];
      if (mode === CLEAR) cleared = true;
    }
    if (outbox.isPending(slot)) {
      const at = slot * 3;
      const mode = outbox.pending[at]!;
      merge(rank, until, mode, outbox.pending[at + 1]!, outbox.pending[at + 2]!, wallNow, scratch);
      (rank = scratch[0]!), (until = scratch[1]!);
      if (scratch[2] === 1) reason = outbox.pendingReason[slot];
      if (mode === CLEAR) cleared = true;
    }
    if (rank === COOLDOWN && until <= wallNow) (rank = READY), (until = 0);
    let localRank = this.rank[slot]!;
    const localUntil = this.until[slot]!;
    if (localRank === COOLDOWN && localUntil <= wallNow) localRank = READY;
    // A reason alone is no change: importState would keep the router's own for the same state.
    if (rank === localRank && (rank !== COOLDOWN || until === localUntil)) return;

    const { slots } = this;
    const entry: SavedKeyState = { id: slots.ids[slots.keyOf[slot]!]!, status: STATUS_NAMES[rank]! };
    const scope = slots.scope[slot];
    if (rank === COOLDOWN) entry.until = until;
    if (scope !== undefined) {
      entry.scope = scope;
      this.#importsScoped = true;
    } else if (rank === READY && cleared) {
      // No `failures` unless a clear ends the run: importState keeps the key's own count otherwise.
      entry.failures = 0;
    } else if (rank === READY) {
      // A cooldown that ended goes in as such (ready, the count kept), not as "ready" (which resets it).
      (entry.status = "cooldown"), (entry.until = wallNow);
    }
    if (rank !== READY && reason) entry.reason = reason;
    this.rank[slot] = rank;
    this.until[slot] = until;
    this.reason[slot] = rank === READY ? "" : (reason ?? "manual");
    this.#imports.push(entry);
    this.#importSlots.push(slot);
  }

  /** Makes the imports gathered by {@link #reconcile}, in one call. */
  #importGathered(wallNow: number): void {
    const keys = this.#imports;
    if (keys.length === 0) return;
    const slots = this.#importSlots;
    const version = this.#importsScoped ? 2 : 1;
    this.#imports = [];
    this.#importSlots = [];
    this.#importsScoped = false;
    for (const slot of slots) this.#importing[slot] = this.rank[slot]! + 1;
    try {
      this.#router.importState({ version, savedAt: wallNow, keys });
    } catch (error) {
      this.#report("apply", error);
      // A router holds 256 reasons at most: the states matter more than their names.
      if (error instanceof RangeError) this.#importWithoutReasons(version, keys, wallNow);
    } finally {
      for (const slot of slots) this.#importing[slot] = 0;
    }
  }

  #importWithoutReasons(version: 1 | 2, keys: SavedKeyState[], wallNow: number): void {
    for (const entry of keys) delete entry.reason;
    try {
      this.#router.importState({ version, savedAt: wallNow, keys });
    } catch (error) {
      this.#report("apply", error);
    }
  }
}

/** Whether a state read into `scratch` (rank, until) holds a key out at `wallNow`: a slot is made for it if there is none. */
function holdsOut(scratch: Float64Array, wallNow: number): boolean {
  return scratch[0] !== READY && (scratch[0] !== COOLDOWN || scratch[1]! > wallNow);
}
