import { addMember, deleteMember, fullBitset, lowestBit, nextMember, type Bitset } from "./bitset.js";
import { MinTree } from "./min-tree.js";
import { copyList, invalid, numberIn } from "./secret.js";

/**
 * How the router chooses among the keys that are ready. Every pick costs O(1), or O(log n) for
 * `weighted`, however many keys there are and however many are out.
 *
 * - `round-robin`: each ready key in turn, in the order given; while some keys are out, every ready
 *   key gets an equal share (±1).
 * - `fill-first`: always the first ready key in the order given; later keys serve only while the
 *   earlier ones are out.
 * - `weighted`: one finite weight `> 0` per key. Deterministic and smooth: over any run of W picks
 *   (W the sum of the ready keys' weights) each ready key gets its weight (±1), interleaved rather
 *   than in runs. A key that is out gives its share to the others in proportion to their weights,
 *   and gets no burst when it is back.
 * - `priority`: one integer tier per key; round-robin among the ready keys of the lowest tier that has
 *   any. When that tier is all out the next one serves, and traffic returns as soon as a better key
 *   is ready. (`fill-first` is the case of one key a tier.)
 * - `random`: uniform among the ready keys, drawing from `random` (default `Math.random`).
 *
 * @defaultValue `{ type: "round-robin" }`
 * @example
 * ```ts
 * // Two paid keys take most of the traffic, the free one a little.
 * new CredentialRouter([paidA, paidB, free], { strategy: { type: "weighted", weights: [5, 5, 1] } });
 * // Use the org's own keys first; fall back to the shared pool only when they are all out.
 * new CredentialRouter([own1, own2, pool1, pool2], { strategy: { type: "priority", tiers: [0, 0, 1, 1] } });
 * ```
 */
export type RoutingStrategy =
  | { type: "round-robin" }
  | { type: "fill-first" }
  | {
      type: "weighted";
      /** One finite weight `> 0` per key, in key order. */
      weights: readonly number[];
    }
  | {
      type: "priority";
      /** One integer tier per key, in key order; the lowest tier serves first. */
      tiers: readonly number[];
    }
  | {
      type: "random";
      /** The source of draws in `[0, 1)`. @defaultValue `Math.random` */
      random?: () => number;
    };

/**
 * The set of ready keys, ordered the way one strategy picks from it. The router tells it which
 * keys come and go; `pick` chooses one and advances the strategy's own position.
 * @internal
 */
export interface Picker {
  /**
   * The key at `index` is ready: it came back (`resumed`), or it is put back after being left out of
   * one pick (not `resumed`: the strategy's position must not move).
   */
  add(index: number, resumed: boolean): void;
  /** The key at `index` is no longer ready, or is left out of the next pick. */
  delete(index: number): void;
  /** The next ready key's index, or -1 when none is ready. */
  pick(): number;
}

/**
 * Checks a strategy and returns a frozen copy of it (arrays included), so that later changes to the
 * caller's object change nothing.
 * @internal
 */
export function copyStrategy(strategy: unknown, size: number): RoutingStrategy {
  if (typeof strategy !== "object" || strategy === null) invalid(TypeError, "strategy", 'an object with a "type"', strategy);
  const { type, weights, tiers, random } = strategy as Record<string, unknown>;
  switch (type) {
    case "round-robin":
    case "fill-first":
      return Object.freeze({ type });
    case "weighted":
      return Object.freeze({ type, weights: copyList<number>("strategy.weights", weights, size, numberIn((weight) => weight > 0 && weight < Infinity, "a finite number > 0")) });
    case "priority":
      return Object.freeze({ type, tiers: copyList<number>("strategy.tiers", tiers, size, numberIn(Number.isSafeInteger, "an integer")) });
    case "random":
      if (random !== undefined && typeof random !== "function") invalid(TypeError, "strategy.random", "a function", random);
      return Object.freeze(random ? { type, random: random as () => number } : { type });
  }
  return invalid(TypeError, "strategy.type", '"round-robin", "fill-first", "weighted", "priority" or "random"', type);
}

/**
 * Makes pickers for a strategy over `size` keys, each starting with every key ready and with its own
 * position: one for the router, one for each scope. What the strategy derives from its weights or
 * tiers is computed once and shared between them.
 * @internal
 */
export function pickerFactory(strategy: RoutingStrategy, size: number): () => Picker {
  switch (strategy.type) {
    case "round-robin":
      return () => new RoundRobin(size);
    case "fill-first":
      return () => {
        const ready = fullBitset(size);
        return { ...membership(ready), pick: () => nextMember(ready, 0) };
      };
    case "priority":
      return priorityPickers(strategy.tiers);
    case "weighted":
      return weightedPickers(strategy.weights);
    case "random":
      return () => randomPicker(size, strategy.random ?? Math.random);
    default: {
      const unreachable: never = strategy;
      return unreachable;
    }
  }
}

/**
 * Each ready key in turn: the first ready key at or after the cursor, wrapping around; the cursor
 * then moves to just past the key returned. (The Rust original advanced a start index by one on every
 * pick instead, which gave the key after a cooling one a double share.) The cursor stays within
 * 0..size. While every key is ready, a pick is the cursor itself; its fields are public so that the
 * router can take that path without a call (`nextKey`).
 * @internal
 */
export class RoundRobin implements Picker {
  readonly #ready: Bitset;
  /** The next key to try. */
  cursor = 0;
  /** How many keys are ready: all of them (`size`) in the common case. */
  count: number;

  /** The bitset's lowest level, the ready keys' own bits. */
  readonly #words: Uint32Array;

  constructor(readonly size: number) {
    this.#ready = fullBitset(size);
    this.#words = this.#ready[0]!;
    this.count = size;
  }

  add(index: number): void {
    addMember(this.#ready, index);
    this.count++;
  }

  delete(index: number): void {
    deleteMember(this.#ready, index);
    this.count--;
  }

  pick(): number {
    let index = this.cursor;
    if (this.count !== this.size) {
      // Most picks find a ready key in the cursor's own word: looked up here, one hop closer.
      const bits = this.#words[index >>> 5]! & (-1 << (index & 31));
      index = bits !== 0 ? (index & -32) | lowestBit(bits) : nextMember(this.#ready, index);
      if (index < 0) index = nextMember(this.#ready, 0);
      if (index < 0) return index;
    }
    // Back to 0 after the last key, so that a full rotation never needs a second search.
    this.cursor = index + 1 === this.size ? 0 : index + 1;
    return index;
  }
}

/** Keeps a bitset of ready keys, by key index or through `slotOf`. */
function membership(ready: Bitset, slotOf?: Int32Array): Pick<Picker, "add" | "delete"> {
  return {
    add: (index) => addMember(ready, slotOf ? slotOf[index]! : index),
    delete: (index) => deleteMember(ready, slotOf ? slotOf[index]! : index),
  };
}

/**
 * Keys laid out in "slots" sorted by `group` (then by index), so each group is a run of slots in one
 * bitset. Priority groups by tier; weighted by weight. The layout is shared; `runs().picker()` makes
 * the state of one picker: the bitset and a round-robin cursor per run, where `rotate` picks within
 * a run exactly as round-robin does over all keys.
 */
function runs(group: readonly number[]) {
  const size = group.length;
  const keyAt = Array.from(group.keys()).sort((a, b) => group[a]! - group[b]! || a - b);
  const slotOf = new Int32Array(size);
  /** For each slot, its run's number; for each run, its first slot and its end. */
  const runAt = new Int32Array(size);
  const first: number[] = [];
  const end: number[] = [];
  keyAt.forEach((index, slot) => {
    slotOf[index] = slot;
    if (slot === 0 || group[index] !== group[keyAt[slot - 1]!]) first.push(slot);
    runAt[slot] = first.length - 1;
    end[first.length - 1] = slot + 1;
  });
  return {
    keyAt,
    first,
    /** The run the key at `index` is in. */
    runOf: (index: number) => runAt[slotOf[index]!]!,
    /** A picker's own state over the layout. */
    picker() {
      const ready = fullBitset(size);
      const cursor = Int32Array.from(first);
      return {
        membership: membership(ready, slotOf),
        /** The run of the lowest ready slot, or -1. */
        lowest(): number {
          const slot = nextMember(ready, 0);
          return slot < 0 ? -1 : runAt[slot]!;
        },
        /** The key of the next ready slot in `run`, which must have one. */
        rotate(run: number): number {
          let slot = nextMember(ready, cursor[run]!);
          // Past the run's end: wrap to its start.
          if (slot < 0 || slot >= end[run]!) slot = nextMember(ready, first[run]!);
          cursor[run] = slot + 1;
          return keyAt[slot]!;
        },
      };
    },
  };
}

/**
 * Round-robin among the ready keys of the lowest tier that has any: the lowest ready slot names the
 * tier that serves.
 */
function priorityPickers(tiers: readonly number[]): () => Picker {
  const layout = runs(tiers);
  return () => {
    const { membership, lowest, rotate } = layout.picker();
    return {
      ...membership,
      pick() {
        const run = lowest();
        return run < 0 ? -1 : rotate(run);
      },
    };
  };
}

/** φ − 1: its multiples modulo 1 spread as evenly as any sequence can. */
const GOLDEN = 0.6180339887498949;

/**
 * Keys of equal weight form a class (a run), served round-robin among its ready keys; the classes
 * share the picks by earliest-deadline-first on a virtual clock. A class of k ready keys of weight w
 * is due every 1/(k·w) virtual time units; each pick serves the class due first and advances the
 * clock to its deadline. So each key gets its weight's share, a key that is out gives its share to
 * the others in proportion to their weights, and a pick costs O(log c) for c distinct weights,
 * however many keys there are. Classes start at phases spread by the golden ratio, so light keys
 * fall between a heavy key's picks instead of bunching up; a class that comes back is due no earlier
 * than one phase from now, with no catching up for the time it was out.
 */
function weightedPickers(weights: readonly number[]): () => Picker {
  const layout = runs(weights);
  const { keyAt, first, runOf } = layout;
  const classes = first.length;
  // Weights as fractions of the heaviest, so that k·w cannot overflow, and no less than 2^-30, so
  // that every interval stays finite (1e308 and 5e-324 are both "finite numbers > 0").
  const heaviest = weights.reduce((most, weight) => Math.max(most, weight));
  const weight = first.map((slot) => Math.max(weights[keyAt[slot]!]! / heaviest, 2 ** -30));
  const phase = first.map((_, run) => 1 - (run * GOLDEN) % 1);
  const sizes = first.map((slot, run) => (first[run + 1] ?? keyAt.length) - slot);
  return () => {
    const { membership, rotate } = layout.picker();
    /** By class: how many of its keys are ready, and when it is due; `heap` holds the due dates of those that have any. */
    const count = Int32Array.from(sizes);
    const due = new Float64Array(classes);
    const heap = new MinTree(classes, Infinity, Float64Array);
    /** Virtual time units between two picks of a class's keys: 1/(k·w). */
    const interval = (run: number) => 1 / (count[run]! * weight[run]!);
    let time = 0;
    for (let run = 0; run < classes; run++) heap.set(run, (due[run] = phase[run]! * interval(run)));
    return {
      add(index, resumed) {
        membership.add(index, resumed);
        const run = runOf(index);
        if (count[run]!++ === 0) {
          if (resumed) due[run] = Math.max(due[run]!, time + phase[run]! * interval(run));
          heap.set(run, due[run]!);
        }
      },
      delete(index) {
        membership.delete(index);
        const run = runOf(index);
        if (--count[run]! === 0) heap.set(run, Infinity);
      },
      pick() {
        if (heap.min === Infinity) return -1;
        const run = heap.argmin();
        time = due[run]!;
        heap.set(run, (due[run]! += interval(run)));
        // Past 2^20 (a million picks of the heaviest class), every deadline moves back by the virtual
        // time, so that float precision never runs out; amortised, that costs nothing.
        if (time > 2 ** 20) {
          for (let other = 0; other < classes; other++) due[other]! -= time;
          heap.shift(time);
          time = 0;
        }
        return rotate(run);
      },
    };
  };
}

/** Ready keys packed at the front of an array, so a uniform draw is one index. */
function randomPicker(size: number, random: () => number): Picker {
  const members = Int32Array.from({ length: size }, (_, index) => index);
  /** Where each key sits in `members`; the ready ones are the first `count`. */
  const position = Int32Array.from(members);
  let count = size;
  const move = (index: number, to: number) => {
    const other = members[to]!;
    const from = position[index]!;
    members[from] = other;
    position[other] = from;
    members[to] = index;
    position[index] = to;
  };
  return {
    add(index) {
      if (position[index]! >= count) move(index, count++);
    },
    delete(index) {
      if (position[index]! < count) move(index, --count);
    },
    pick() {
      if (count === 0) return -1;
      const at = Math.floor(random() * count);
      // A random source outside [0, 1) must not make the router return a key that is not ready.
      return members[at >= 0 && at < count ? at : 0]!;
    },
  };
}
