import { describe, expect, it } from "vitest";
import { MinTree } from "../src/min-tree.js";
import { seededRandom } from "./helpers/fixtures.js";

/** The obvious answer: the key with the lowest value, lowest key on ties, or -1. */
function naiveMin(values: Map<number, number>, skip: ReadonlySet<number> = new Set()): number {
  let best = -1;
  for (const [index, value] of values) {
    if (skip.has(index)) continue;
    if (best === -1 || value < values.get(best)! || (value === values.get(best) && index < best)) best = index;
  }
  return best;
}

// Sizes around the tree's block of 16, and one with three levels.
describe.each([1, 15, 16, 17, 200, 5_000])("MinTree of %i keys", (size) => {
  it("keeps the smallest value and its lowest key through sets, changes and removals", () => {
    for (const [absent, Values] of [
      [Infinity, Float64Array],
      [0xffffffff, Uint32Array],
    ] as const) {
      const tree = new MinTree(size, absent, Values);
      const values = new Map<number, number>();
      const random = seededRandom(size);
      for (let step = 0; step < 4_000; step++) {
        const index = Math.floor(random() * size);
        if (random() < 0.6) {
          // Coarse values, so that ties happen often.
          const value = Math.floor(random() * 50);
          tree.set(index, value);
          values.set(index, value);
        } else {
          tree.set(index, absent);
          values.delete(index);
        }
        const best = naiveMin(values);
        expect(tree.min).toBe(best < 0 ? absent : values.get(best));
        if (best >= 0) expect(tree.argmin()).toBe(best);
        expect(tree.get(index)).toBe(values.get(index) ?? absent);
      }
    }
  }, 30_000);

  it("argminExcept finds the lowest value outside the skipped keys, also after removals", () => {
    const tree = new MinTree(size, Infinity, Float64Array);
    const values = new Map<number, number>();
    const random = seededRandom(size + 1);
    for (let index = 0; index < size; index++) {
      const value = Math.floor(random() * 20);
      tree.set(index, value);
      values.set(index, value);
    }
    for (let round = 0; round < 300; round++) {
      const removed = Math.floor(random() * size);
      tree.set(removed, Infinity);
      values.delete(removed);
      const skip = new Set<number>();
      const count = Math.floor(random() * Math.min(size, 64));
      while (skip.size < count) skip.add(Math.floor(random() * size));
      expect(tree.argminExcept(skip)).toBe(naiveMin(values, skip));
    }
  }, 30_000);

  it("shift takes the same amount off every value, none below 0, and keeps the order", () => {
    const tree = new MinTree(size, 0xffffffff, Uint32Array);
    for (let index = 0; index < size; index += 2) tree.set(index, 1_000 + ((index * 7) % 13));
    const before = tree.argmin();
    tree.shift(1_005);
    expect(tree.argmin()).toBe(before);
    expect(tree.min).toBe(0);
    if (size > 1) expect(tree.get(1)).toBe(0xffffffff);
    for (let index = 0; index < size; index += 2) expect(tree.get(index)).toBe(Math.max(0, (index * 7) % 13 - 5));
  });
});

describe("MinTree", () => {
  it("is empty at first: min is the absent value and argminExcept is -1", () => {
    const tree = new MinTree(40, Infinity, Float64Array);
    expect(tree.min).toBe(Infinity);
    expect(tree.argminExcept(new Set())).toBe(-1);
  });
});
