import { MinTree } from "./min-tree.js";
import type { Picker } from "./strategy.js";

/** A scope's value for "not cooling". @internal */
export const ABSENT = 0xffffffff;

/**
 * The keys' states in one layer: key-wide (no `name`), or in one scope (a model, say) on top of
 * the key-wide state. A layer holds each key's status and reason, the deadlines of its cooling keys,
 * and a picker of its own with its own position, over the keys it lets through: for the key-wide
 * layer the keys ready key-wide, for a scope the keys ready both there and key-wide. A scope exists
 * only while one of its keys is out.
 *
 * Key-wide deadlines are exact. A scope keeps its deadlines as whole milliseconds after `base`,
 * rounded up (a key is back at most a millisecond late, never early), in 32 bits: with the status
 * and reason bytes, a scope costs about 6.4 bytes a key, so that a hundred scopes over 16,384 keys
 * fit in 11 MB.
 * @internal
 */
export class Layer {
  // What a pick reads, declared first: next to `picker` in the object.
  /**
   * The earliest deadline, as a clock reading; `Infinity` when no key cools. A field, not a look
   * into `until`, for the pick: one read where a tree's top level is three.
   */
  earliest = Infinity;
  /** Whether the scope was dropped: the router holds it no more. */
  dropped = false;
  /** When a scope was last used, for dropping the least recently used. */
  used = 0;
  /** Each key's status here (`READY` … `DISABLED`). */
  readonly status: Uint8Array;
  /** Each key's reason code, for a key that is out. */
  readonly reason: Uint8Array;
  /** Cooling keys' deadlines (in a scope, in milliseconds after `base`). */
  readonly until: MinTree;
  /** A clock reading under a scope's deadlines, moved forward when they would outgrow 32 bits. */
  base: number;
  /** How many keys are out here: a scope is dropped at 0. */
  out = 0;
  /** How many keys `picker` holds. */
  ready: number;
  /** How many times a key's state changed here: a version, for what is computed from the states. */
  changes = 0;
  /** The version (`changes` of this and the key-wide layer, summed) that `soonest` was computed at. */
  scanned = -1;
  /** In a scope: the earliest time a key is ready both here and key-wide, as of `scanned`. */
  soonest = Infinity;

  constructor(
    readonly name: string | undefined,
    size: number,
    readonly picker: Picker,
    ready: number,
    now: number,
  ) {
    this.status = new Uint8Array(size);
    this.reason = new Uint8Array(size);
    this.until = name === undefined ? new MinTree(size, Infinity, Float64Array) : new MinTree(size, ABSENT, Uint32Array);
    this.ready = ready;
    this.base = name === undefined ? 0 : Math.floor(now);
  }

  /** Stores a cooling key's deadline (a clock reading), or takes the key out with `undefined`. */
  setUntil(index: number, deadline: number | undefined, now: number): void {
    const { until } = this;
    if (deadline === undefined || this.name === undefined) {
      until.set(index, deadline ?? until.absent);
    } else {
      const ahead = Math.floor(now - this.base);
      if (ahead > 2 ** 31) {
        until.shift(ahead);
        this.base += ahead;
      }
      until.set(index, Math.min(Math.max(Math.ceil(deadline - this.base), 0), ABSENT - 1));
    }
    const { min, absent } = until;
    this.earliest = min === absent ? Infinity : this.base + min;
  }

  /** A cooling key's deadline, as a clock reading. */
  deadline(index: number): number {
    return this.base + this.until.get(index);
  }
}
