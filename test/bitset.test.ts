import { describe, expect, it } from "vitest";
import { Bitset } from "../src/bitset.js";

/** The obvious answer: scan the members in order. */
function naiveNext(members: Set<number>, size: number, from: number): number {
  for (let i = Math.max(0, from); i < size; i++) if (members.has(i)) return i;
  return -1;
}

/** A small deterministic generator, so a failure can be replayed. */
function lcg(seed: number) {
  return () => ((seed = (seed * 1_103_515_245 + 12_345) >>> 0) / 2 ** 32);
}

describe("Bitset", () => {
  it.each([1, 31, 32, 33, 1_000, 1_024, 1_025, 40_000])("answers next() like a scan at size %i", (size) => {
    const random = lcg(size);
    const bits = new Bitset(size);
    const members = new Set<number>();
    for (let step = 0; step < 4_000; step++) {
      const member = Math.floor(random() * size);
      // Mostly deletions once the set is dense, so sparse sets (long searches) get tested too.
      if (random() < (members.size > size / 8 ? 0.3 : 0.6)) {
        bits.add(member);
        members.add(member);
      } else {
        bits.delete(member);
        members.delete(member);
      }
      const from = Math.floor(random() * (size + 2));
      expect(bits.next(from)).toBe(naiveNext(members, size, from));
      expect(bits.next(0)).toBe(naiveNext(members, size, 0));
      expect(bits.has(member)).toBe(members.has(member));
    }
  });

  it("finds a lone member across every level", () => {
    const bits = new Bitset(40_000);
    bits.add(39_999);
    expect(bits.next(0)).toBe(39_999);
    expect(bits.next(39_999)).toBe(39_999);
    expect(bits.next(40_000)).toBe(-1);
    bits.delete(39_999);
    expect(bits.next(0)).toBe(-1);
  });

  it("adding twice and deleting an absent member change nothing", () => {
    const bits = new Bitset(100);
    bits.add(64);
    bits.add(64);
    bits.delete(3);
    expect(bits.next(0)).toBe(64);
    bits.delete(64);
    expect(bits.next(0)).toBe(-1);
  });
});
