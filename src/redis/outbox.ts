/**
 * What is waiting to be written: each slot's (a key's, key-wide or in a scope: slots.ts) transitions not yet sent, folded into one (merge.ts
 * `fold`), and those sent and not yet answered (in flight). Both layers count when predicting the
 * router's state (merge.ts invariant 3). A mark counter lets `flush()` wait for the marks made before
 * it was called and not for later ones.
 * @internal
 */
import { fold } from "./merge.js";
import { grown } from "./slots.js";

/** Keys per script call. @internal */
export const CHUNK = 1_000;

/** A batch for the script: its number, its slots, and an entry per slot (script.ts). @internal */
export interface Batch {
  number: number;
  indices: number[];
  entries: string[];
  /** The mark counter this batch brings Redis up to, when it took every pending slot; else -1. */
  covers: number;
  /** A load: the script returns each key's scoped records along with its key-wide one. */
  load: boolean;
}

/** @internal */
export class Outbox {
  /** Per slot, 3 numbers: mode, raise, until (wall-clock ms); and the reason of the raise ("" for none). */
  pending: Float64Array;
  flight: Float64Array;
  readonly pendingReason: string[];
  readonly flightReason: string[];
  #dirty: Uint8Array;
  #inFlight: Uint8Array;
  #dirtyList: number[] = [];
  #count = 0;
  #batchNumber = 0;
  /** Marks queued so far, and the count Redis has answered for. */
  marks = 0;
  written = 0;

  constructor(size: number) {
    this.pending = new Float64Array(size * 3);
    this.flight = new Float64Array(size * 3);
    this.pendingReason = new Array<string>(size).fill("");
    this.flightReason = new Array<string>(size).fill("");
    this.#dirty = new Uint8Array(size);
    this.#inFlight = new Uint8Array(size);
  }

  /** Makes room for `capacity` slots. */
  grow(capacity: number): void {
    this.pending = grown(this.pending, capacity * 3);
    this.flight = grown(this.flight, capacity * 3);
    this.#dirty = grown(this.#dirty, capacity);
    this.#inFlight = grown(this.#inFlight, capacity);
  }

  /** How many slots have a pending transition. */
  get size(): number {
    return this.#count;
  }

  isPending(index: number): boolean {
    return this.#dirty[index] !== 0;
  }

  isInFlight(index: number): boolean {
    return this.#inFlight[index] !== 0;
  }

  /** Folds a transition into the key's pending one. */
  queue(index: number, mode: number, raise: number, until: number, reason: string): void {
    this.marks++;
    const at = index * 3;
    if (this.#dirty[index] === 0) {
      this.#dirty[index] = 1;
      this.pending[at] = mode;
      this.pending[at + 1] = raise;
      this.pending[at + 2] = until;
      this.pendingReason[index] = reason;
      this.#dirtyList.push(index);
      this.#count++;
    } else if (fold(this.pending, at, mode, raise, until)) {
      this.pendingReason[index] = reason;
    }
  }

  /**
   * Takes up to {@link CHUNK} keys' pending transitions as the next batch; they are in flight until
   * {@link settle}. The link adds the entries, and may add keys whose transition was not pending.
   */
  take(): Batch {
    const batch = this.open();
    const list = this.#dirtyList;
    let at = 0;
    // Keys taken one by one (takeOne) are still listed: passed over.
    for (; at < list.length && batch.indices.length < CHUNK; at++) this.takeOne(list[at]!, batch);
    this.#dirtyList = at === list.length ? [] : list.slice(at);
    this.seal(batch);
    return batch;
  }

  /** Notes that `batch`, once answered, brings Redis up to every mark so far when nothing else is pending. */
  seal(batch: Batch): void {
    if (this.#count === 0) batch.covers = this.marks;
  }

  /** An empty batch under the next number. */
  open(): Batch {
    return { number: ++this.#batchNumber, indices: [], entries: [], covers: -1, load: false };
  }

  /** Moves the key's pending transition, if it has one, into `batch`; says whether it did. */
  takeOne(index: number, batch: Batch): boolean {
    if (this.#dirty[index] === 0) return false;
    this.#dirty[index] = 0;
    this.#count--;
    const at = index * 3;
    this.#fly(index, this.pending[at]!, this.pending[at + 1]!, this.pending[at + 2]!, this.pendingReason[index]!);
    batch.indices.push(index);
    if (this.#count === 0) this.#dirtyList = [];
    return true;
  }

  /** Adds a key with a transition that was not pending (a read, a restore) to a batch being made. */
  add(batch: Batch, index: number, mode: number, raise: number, until: number, reason: string): void {
    this.#fly(index, mode, raise, until, reason);
    batch.indices.push(index);
  }

  #fly(index: number, mode: number, raise: number, until: number, reason: string): void {
    this.#inFlight[index] = 1;
    this.flightReason[index] = reason;
    const at = index * 3;
    this.flight[at] = mode;
    this.flight[at + 1] = raise;
    this.flight[at + 2] = until;
  }

  /** The batch was answered: its transitions are part of the shared state now. */
  settle(batch: Batch): void {
    for (const index of batch.indices) this.#inFlight[index] = 0;
    if (batch.covers > this.written) this.written = batch.covers;
  }
}
