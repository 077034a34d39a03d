import { Bitset } from "./bitset.js";
import { describe } from "./secret.js";

/**
 * How the router chooses among the keys that are ready.
 *
 * - `round-robin`: each ready key in turn, in the order given; a key that cools down gives its
 *   turns to the others evenly.
 * - `fill-first`: always the first ready key in the order given; later keys serve only while the
 *   earlier ones are out.
 *
 * @defaultValue `{ type: "round-robin" }`
 */
export type RoutingStrategy = { type: "round-robin" } | { type: "fill-first" };

/**
 * The set of ready keys, ordered the way one strategy picks from it. The router tells it which
 * keys come and go; `pick` chooses one and advances the strategy's own position.
 * @internal
 */
export interface Picker {
  /** The key at `index` became ready. */
  add(index: number): void;
  /** The key at `index` is no longer ready. */
  delete(index: number): void;
  /** The next ready key's index, or -1 when none is ready. */
  pick(): number;
  /** Takes a ready key out of the running for a moment, without touching the strategy's position. */
  hide(index: number): void;
  /** Undoes `hide`. */
  unhide(index: number): void;
}

/**
 * Checks a strategy and returns a frozen copy of it, so that later changes to the caller's object
 * change nothing.
 * @internal
 */
export function copyStrategy(strategy: unknown, size: number): RoutingStrategy {
  if (typeof strategy !== "object" || strategy === null) {
    throw new TypeError(`strategy must be an object with a "type", received ${describe(strategy)}`);
  }
  const type: unknown = (strategy as { type?: unknown }).type;
  switch (type) {
    case "round-robin":
    case "fill-first":
      return Object.freeze({ type });
    default:
      throw new TypeError(
        `strategy.type must be "round-robin" or "fill-first", received ${
          typeof type === "string" ? JSON.stringify(type.slice(0, 32)) : describe(type)
        }`,
      );
  }
}

/** Builds the picker for a strategy over `size` keys, all ready. @internal */
export function createPicker(strategy: RoutingStrategy, size: number): Picker {
  switch (strategy.type) {
    case "round-robin":
      return new RoundRobinPicker(size);
    case "fill-first":
      return new FillFirstPicker(size);
    default: {
      const unreachable: never = strategy;
      return unreachable;
    }
  }
}

/** Ready keys as a bitset in key order; hiding is the same as leaving. */
abstract class BitsetPicker implements Picker {
  protected readonly ready: Bitset;

  constructor(size: number) {
    this.ready = new Bitset(size);
    for (let index = 0; index < size; index++) this.ready.add(index);
  }

  add(index: number): void {
    this.ready.add(index);
  }

  delete(index: number): void {
    this.ready.delete(index);
  }

  hide(index: number): void {
    this.ready.delete(index);
  }

  unhide(index: number): void {
    this.ready.add(index);
  }

  abstract pick(): number;
}

/**
 * The first ready key at or after the cursor, wrapping around; the cursor then moves to just past
 * the key returned. (The Rust original advanced a start index by one on every pick instead, which
 * gave the key after a cooling one a double share.) The cursor stays within `0..size`.
 */
class RoundRobinPicker extends BitsetPicker {
  #cursor = 0;

  pick(): number {
    let index = this.ready.next(this.#cursor);
    if (index === -1) {
      index = this.ready.next(0);
      if (index === -1) return -1;
    }
    this.#cursor = index + 1;
    return index;
  }
}

/** The first ready key in key order. */
class FillFirstPicker extends BitsetPicker {
  pick(): number {
    return this.ready.next(0);
  }
}
