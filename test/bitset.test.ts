import { describe, expect, it } from "vitest";
import { addMember, deleteMember, fullBitset, nextMember } from "../src/bitset.js";
import { seededRandom } from "./helpers/fixtures.js";

/** The obvious answer: scan the members in order. */
function naiveNext(members: Set<number>, size: number, from: number): number {
  for (let i = Math.max(0, from); i < size; i++) if (members.has(i)) return i;
  return -1;
}

describe("bitset", () => {
  it.each([1, 31, 32, 33, 1_000, 1_024, 1_025, 40_000])("answers nextMember like a scan at size %i", (size) => {
    const random = seededRandom(size);
    const bits = fullBitset(size);
    const members = new Set(Array.from({ length: size }, (_, i) => i));
    for (let step = 0; step < 4_000; step++) {
      const member = Math.floor(random() * size);
      // Mostly deletions while the set is dense, so sparse sets (long searches) get tested too.
      if (random() < (members.size > size / 8 ? 0.3 : 0.6)) {
        addMember(bits, member);
        members.add(member);
      } else {
        deleteMember(bits, member);
        members.delete(member);
      }
      const from = Math.floor(random() * (size + 40));
      expect(nextMember(bits, from)).toBe(naiveNext(members, size, from));
      expect(nextMember(bits, 0)).toBe(naiveNext(members, size, 0));
    }
  });

  it("starts full, with nothing past the last member", () => {
    for (const size of [1, 5, 32, 33, 1_025]) {
      const bits = fullBitset(size);
      expect(nextMember(bits, 0)).toBe(0);
      expect(nextMember(bits, size - 1)).toBe(size - 1);
      expect(nextMember(bits, size)).toBe(-1);
    }
  });

  it("finds a lone member across every level", () => {
    const bits = fullBitset(40_000);
    for (let member = 0; member < 39_999; member++) deleteMember(bits, member);
    expect(nextMember(bits, 0)).toBe(39_999);
    expect(nextMember(bits, 39_999)).toBe(39_999);
    expect(nextMember(bits, 40_000)).toBe(-1);
    deleteMember(bits, 39_999);
    expect(nextMember(bits, 0)).toBe(-1);
  });

  it("adding twice and deleting an absent member change nothing", () => {
    const bits = fullBitset(100);
    for (let member = 0; member < 100; member++) if (member !== 64) deleteMember(bits, member);
    addMember(bits, 64);
    deleteMember(bits, 3);
    expect(nextMember(bits, 0)).toBe(64);
    deleteMember(bits, 64);
    expect(nextMember(bits, 0)).toBe(-1);
  });
});
