import { describe, expect, it } from "vitest";
import { IndexHeap } from "../src/index-heap.js";
import { seededRandom } from "./helpers/fixtures.js";

/** The obvious answer: the member with the lowest priority, lowest index on ties. */
function naiveMin(members: Set<number>, priority: Float64Array): number {
  let best = -1;
  for (const index of members) {
    if (best === -1 || priority[index]! < priority[best]! || (priority[index] === priority[best] && index < best)) {
      best = index;
    }
  }
  return best;
}

/** 20,000 steps, each checked by a linear scan: half a second when quiet, past the 5 s default on busy cores or under Stryker. */
const HEAVY_TEST_TIMEOUT_MS = 60_000;

describe("IndexHeap", () => {
  it("keeps the lowest priority on top through sets, moves and deletes", () => {
    const size = 200;
    const priority = new Float64Array(size);
    const heap = new IndexHeap(priority);
    const members = new Set<number>();
    const random = seededRandom(7);
    for (let step = 0; step < 20_000; step++) {
      const index = Math.floor(random() * size);
      if (random() < 0.6) {
        // Coarse priorities, so ties happen often.
        priority[index] = Math.floor(random() * 50);
        heap.set(index);
        members.add(index);
      } else {
        heap.delete(index);
        members.delete(index);
      }
      expect(heap.size).toBe(members.size);
      if (members.size > 0) expect(heap.peek()).toBe(naiveMin(members, priority));
    }
  }, HEAVY_TEST_TIMEOUT_MS);

  it("never holds an index twice, however often it is set", () => {
    const priority = new Float64Array(3);
    const heap = new IndexHeap(priority);
    for (let round = 0; round < 1_000; round++) {
      priority[1] = round % 7;
      heap.set(1);
    }
    expect(heap.size).toBe(1);
    heap.delete(1);
    expect(heap.size).toBe(0);
  });
});


describe("IndexHeap.peekExcept", () => {
  it("finds the lowest priority outside the skipped set", () => {
    const size = 64;
    const priority = new Float64Array(size);
    const heap = new IndexHeap(priority);
    const random = seededRandom(11);
    for (let index = 0; index < size; index++) {
      priority[index] = Math.floor(random() * 20);
      heap.set(index);
    }
    for (let round = 0; round < 500; round++) {
      const skip = new Set<number>();
      const count = Math.floor(random() * size);
      while (skip.size < count) skip.add(Math.floor(random() * size));
      const rest = new Set([...Array(size).keys()].filter((index) => !skip.has(index)));
      expect(heap.peekExcept(skip)).toBe(rest.size === 0 ? -1 : naiveMin(rest, priority));
    }
  });

  it("is -1 on an empty heap", () => {
    expect(new IndexHeap(new Float64Array(4)).peekExcept(new Set())).toBe(-1);
  });
});

describe("IndexHeap.peekExcept after deletes", () => {
  it("never returns a deleted index, and finds the lowest priority outside the skipped set", () => {
    const size = 64;
    const priority = new Float64Array(size);
    const heap = new IndexHeap(priority);
    const members = new Set<number>();
    const random = seededRandom(23);
    for (let step = 0; step < 3_000; step++) {
      const index = Math.floor(random() * size);
      // More deletes than sets, so the heap often shrinks and leaves stale entries past its end.
      if (random() < 0.45) {
        priority[index] = Math.floor(random() * 10);
        heap.set(index);
        members.add(index);
      } else {
        heap.delete(index);
        members.delete(index);
      }
      const skip = new Set<number>();
      const skipCount = Math.floor(random() * (members.size + 1));
      const pool = [...members];
      while (skip.size < skipCount) skip.add(pool[Math.floor(random() * pool.length)]!);
      // Also skip some indices that are not in the heap: they must change nothing.
      skip.add(Math.floor(random() * size));
      const rest = new Set([...members].filter((member) => !skip.has(member)));
      expect(heap.peekExcept(skip)).toBe(rest.size === 0 ? -1 : naiveMin(rest, priority));
    }
  });

  it("after deleting the minimum, skipping the new top gives the next one, not the deleted entry", () => {
    const priority = new Float64Array([0, 5, 6, 7, 8, 9]);
    const heap = new IndexHeap(priority);
    for (let index = 0; index < priority.length; index++) heap.set(index);
    heap.delete(0);
    heap.delete(5);
    expect(heap.size).toBe(4);
    expect(heap.peek()).toBe(1);
    expect(heap.peekExcept(new Set([1]))).toBe(2);
    expect(heap.peekExcept(new Set([1, 2, 3]))).toBe(4);
    expect(heap.peekExcept(new Set([1, 2, 3, 4]))).toBe(-1);
  });
});
