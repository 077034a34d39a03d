/**
 * What is waiting to be written: each key's transitions not yet sent, folded into one (merge.ts
 * `fold`), and those sent and not yet answered (in flight). Both layers count when predicting the
 * router's state (merge.ts invariant 3). A mark counter lets `flush()` wait for the marks made before
 * it was called and not for later ones.
 * @internal
 */
import { fold } from "./merge.js";

/** Keys per script call. @internal */
export const CHUNK = 1_000;

/** A batch for the script: its number, the keys' indices, and 4 arguments per key. @internal */
export interface Batch {
  number: number;
  indices: number[];
  args: string[];
  /** The mark counter this batch brings Redis up to, when it took every pending key; else -1. */
  covers: number;
}

/** @internal */
export class Outbox {
  /** Per key, 3 numbers: mode, raise, until (wall-clock ms). */
  readonly pending: Float64Array;
  readonly flight: Float64Array;
  readonly #dirty: Uint8Array;
  readonly #inFlight: Uint8Array;
  #dirtyList: number[] = [];
  #count = 0;
  #batchNumber = 0;
  /** Marks queued so far, and the count Redis has answered for. */
  marks = 0;
  written = 0;

  constructor(size: number) {
    this.pending = new Float64Array(size * 3);
    this.flight = new Float64Array(size * 3);
    this.#dirty = new Uint8Array(size);
    this.#inFlight = new Uint8Array(size);
  }

  /** How many keys have a pending transition. */
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
  queue(index: number, mode: number, raise: number, until: number): void {
    this.marks++;
    const at = index * 3;
    if (this.#dirty[index] === 0) {
      this.#dirty[index] = 1;
      this.pending[at] = mode;
      this.pending[at + 1] = raise;
      this.pending[at + 2] = until;
      this.#dirtyList.push(index);
      this.#count++;
    } else {
      fold(this.pending, at, mode, raise, until);
    }
  }

  /**
   * Takes up to {@link CHUNK} keys' pending transitions as the next batch; they are in flight until
   * {@link settle}. The link adds the arguments, and may add keys whose transition was not pending.
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
    return { number: ++this.#batchNumber, indices: [], args: [], covers: -1 };
  }

  /** Moves the key's pending transition, if it has one, into `batch`; says whether it did. */
  takeOne(index: number, batch: Batch): boolean {
    if (this.#dirty[index] === 0) return false;
    this.#dirty[index] = 0;
    this.#count--;
    const at = index * 3;
    this.#fly(index, this.pending[at]!, this.pending[at + 1]!, this.pending[at + 2]!);
    batch.indices.push(index);
    if (this.#count === 0) this.#dirtyList = [];
    return true;
  }

  /** Adds a key with a transition that was not pending (a read, a restore) to a batch being made. */
  add(batch: Batch, index: number, mode: number, raise: number, until: number): void {
    this.#fly(index, mode, raise, until);
    batch.indices.push(index);
  }

  #fly(index: number, mode: number, raise: number, until: number): void {
    this.#inFlight[index] = 1;
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
