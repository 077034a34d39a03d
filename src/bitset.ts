/**
 * A set of small non-negative integers with an O(log₃₂ n) "next member at or after i" query.
 *
 * Level 0 holds one bit per member; each higher level holds one bit per non-empty word of the
 * level below, up to a single word. At 16,384 members that is three levels, so a search looks at
 * no more than six words however sparse the set is.
 * @internal
 */
export class Bitset {
  readonly #levels: Uint32Array[] = [];

  constructor(size: number) {
    let words: number;
    do {
      words = (size + 31) >>> 5 || 1;
      this.#levels.push(new Uint32Array(words));
      size = words;
    } while (words > 1);
  }

  add(member: number): void {
    for (const level of this.#levels) {
      const word = member >>> 5;
      const before = level[word]!;
      level[word] = before | (1 << (member & 31));
      // The levels above already know this word is non-empty.
      if (before !== 0) return;
      member = word;
    }
  }

  delete(member: number): void {
    for (const level of this.#levels) {
      const word = member >>> 5;
      const after = level[word]! & ~(1 << (member & 31));
      level[word] = after;
      // The word still has members, so the levels above stay as they are.
      if (after !== 0) return;
      member = word;
    }
  }

  has(member: number): boolean {
    return (this.#levels[0]![member >>> 5]! & (1 << (member & 31))) !== 0;
  }

  /** The smallest member `>= from`, or -1 when there is none. */
  next(from: number): number {
    const levels = this.#levels;
    let depth = 0;
    let position = from;
    for (;;) {
      const level = levels[depth]!;
      const word = position >>> 5;
      if (word >= level.length) return -1;
      const bits = level[word]! & (-1 << (position & 31));
      if (bits !== 0) {
        position = (word << 5) | lowestBit(bits);
        break;
      }
      if (++depth === levels.length) return -1;
      position = word + 1;
    }
    while (depth > 0) {
      depth--;
      position = (position << 5) | lowestBit(levels[depth]![position]!);
    }
    return position;
  }
}

/** Index of the lowest set bit of a non-zero 32-bit word. */
function lowestBit(bits: number): number {
  return 31 - Math.clz32(bits & -bits);
}
