/**
 * A set of small non-negative integers with an O(log₃₂ n) "next member at or after i" query.
 *
 * Level 0 holds one bit per member; each higher level holds one bit per non-empty word of the
 * level below, up to a single word. At 16,384 members that is three levels, so a search looks at
 * no more than six words however sparse the set is. Plain functions over typed arrays: the hot
 * path stays monomorphic and the bundle small.
 * @internal
 */
export type Bitset = Uint32Array[];

/** A bitset for members `0..size-1`, holding all of them. @internal */
export function fullBitset(size: number): Bitset {
  const levels: Bitset = [];
  let words = size;
  do {
    words = (words + 31) >>> 5 || 1;
    levels.push(new Uint32Array(words));
  } while (words > 1);
  for (let member = 0; member < size; member++) addMember(levels, member);
  return levels;
}

/** @internal */
export function addMember(levels: Bitset, member: number): void {
  for (const level of levels) {
    const word = member >>> 5;
    const before = level[word]!;
    level[word] = before | (1 << (member & 31));
    // The levels above already know this word is non-empty.
    if (before !== 0) return;
    member = word;
  }
}

/** @internal */
export function deleteMember(levels: Bitset, member: number): void {
  for (const level of levels) {
    const word = member >>> 5;
    const after = level[word]! & ~(1 << (member & 31));
    level[word] = after;
    // The word still has members, so the levels above stay as they are.
    if (after !== 0) return;
    member = word;
  }
}

/** The smallest member `>= from`, or -1 when there is none. @internal */
export function nextMember(levels: Bitset, from: number): number {
  // The common case first: a member in the word `from` falls in.
  const members = levels[0]!;
  let word = from >>> 5;
  let bits = word < members.length ? members[word]! & (-1 << (from & 31)) : 0;
  if (bits !== 0) return (word << 5) | lowestBit(bits);
  // Otherwise climb until a level has a non-empty word after ours, then descend its lowest bits.
  let depth = 0;
  do {
    if (++depth === levels.length) return -1;
    from = word + 1;
    word = from >>> 5;
    const level = levels[depth]!;
    bits = word < level.length ? level[word]! & (-1 << (from & 31)) : 0;
  } while (bits === 0);
  let position = (word << 5) | lowestBit(bits);
  while (depth > 0) position = (position << 5) | lowestBit(levels[--depth]![position]!);
  return position;
}

/** Index of the lowest set bit of a non-zero 32-bit word. @internal */
export function lowestBit(bits: number): number {
  return 31 - Math.clz32(bits & -bits);
}
