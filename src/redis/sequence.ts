/**
 * How a link knows it missed no change. Every batch that changes something takes the next number of
 * the namespace's counter and publishes it with its message, so the messages of a namespace arrive
 * numbered 1, 2, 3… on every subscriber (one Redis node publishes them, in order). A number skipped is
 * a message lost (a reconnect, a subscriber swapped by an ioredis `Cluster`); a number seen twice is a
 * forged message or a counter reset; a heartbeat that finds Redis's counter behind the last message
 * seen means the same, and ahead of it twice in a row, a message lost at the end. Each ends in a
 * resync, after which the count starts again from what the load read.
 * @internal
 */
import { MAX_VERSION_AHEAD } from "./record.js";

/** What to do with a message, by its number: apply its entries. @internal */
export const APPLY = 0;
/** Apply its entries, then resync: messages were lost before it. @internal */
export const APPLY_AND_RESYNC = 1;
/** Skip it and resync: a repeat (forged, or a counter reset). @internal */
export const SKIP_AND_RESYNC = 2;
/** Skip it, resync, and report it: a number absurdly far ahead. @internal */
export const REFUSE = 3;

/** @internal */
export class Sequence {
  /** The newest counter value known (-1: none). */
  newest = -1;
  /** The number of the last message in sequence (-1: unknown), and of the last load: older messages are old news. */
  #last = -1;
  #floor = -1;
  /** Numbers of the messages received during a load, checked once it is done. */
  #duringLoad: number[] | undefined;
  /** Redis's counter at the last heartbeat, when it was ahead of the messages seen (-1: it was not). */
  #probe = -1;

  /** The number up to which every message is known to have arrived (-1: none known, or a load is running). */
  get through(): number {
    return this.#duringLoad === undefined ? this.#last : -1;
  }

  /** Forgets everything (a new epoch: numbers start again). */
  reset(): void {
    this.newest = this.#last = this.#floor = this.#probe = -1;
    this.#duringLoad = undefined;
  }

  /** Whether `seq` is more than 2^31 past the newest known. */
  farAhead(seq: number): boolean {
    return this.newest >= 0 && seq > this.newest + MAX_VERSION_AHEAD;
  }

  /** Takes a counter value from Redis's own reply. */
  saw(seq: number): void {
    if (seq > this.newest) this.newest = seq;
  }

  /** Judges a message by its number. */
  message(seq: number): number {
    if (this.farAhead(seq)) return REFUSE;
    this.saw(seq);
    if (this.#duringLoad !== undefined) {
      this.#duringLoad.push(seq);
      return APPLY;
    }
    const last = this.#last;
    if (last < 0 || seq === last + 1) {
      if (last >= 0) this.#last = seq;
      return APPLY;
    }
    // Old news (published before the last load read the state): the versions sort it out.
    if (seq <= this.#floor) return APPLY;
    if (seq <= last) return SKIP_AND_RESYNC;
    this.#last = seq;
    return APPLY_AND_RESYNC;
  }

  /** A load starts: the numbers received meanwhile are checked at its end. */
  loadStarted(): void {
    this.#duringLoad = [];
  }

  /** A load failed: nothing to check. */
  loadFailed(): void {
    this.#duringLoad = undefined;
  }

  /**
   * A load ended; `floor` is the counter its first call read. Says whether every message after it
   * arrived so far in order (else the load is to be done again).
   */
  loadEnded(floor: number): boolean {
    const seen = (this.#duringLoad ?? []).sort((x, y) => x - y);
    this.#duringLoad = undefined;
    let last = floor;
    let whole = true;
    for (const seq of seen) {
      if (seq <= last) continue;
      if (seq !== last + 1) {
        whole = false;
        break;
      }
      last = seq;
    }
    this.#floor = floor;
    this.#last = last;
    this.#probe = -1;
    return whole;
  }

  /** A heartbeat read Redis's counter: says whether a message was lost or forged. */
  heartbeat(seq: number): boolean {
    const last = this.#last;
    if (last < 0) return false;
    if (seq < last || (this.#probe >= 0 && last < this.#probe)) return true;
    this.#probe = seq > last ? seq : -1;
    return false;
  }
}
