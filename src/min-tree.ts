/**
 * One number per key (or `absent`), with the smallest and the lowest key holding it found in O(1),
 * a change in O(log₁₆ n): level 0 holds the values, each level above the minimum of 16 entries of
 * the level below. No position table and no stale entries: it costs 1.07 values a key, so that a
 * scope's cooldowns stay small at any key count (32-bit values: 4.3 bytes a key).
 * @internal
 */
export class MinTree {
  readonly levels: (Float64Array | Uint32Array)[] = [];
  /** The top level: one entry, the smallest value. */
  readonly top: Float64Array | Uint32Array;

  /**
   * @param size - How many keys.
   * @param absent - The value of a key that is not in the tree, above every real value.
   * @param Values - The array type of the values.
   */
  constructor(
    size: number,
    readonly absent: number,
    Values: Float64ArrayConstructor | Uint32ArrayConstructor,
  ) {
    for (let length = Math.max(size, 1); ; length = (length + 15) >>> 4) {
      this.levels.push(new Values(length).fill(absent));
      if (length === 1) break;
    }
    this.top = this.levels[this.levels.length - 1]!;
  }

  /** The smallest value: `absent` when the tree is empty. */
  get min(): number {
    return this.top[0]!;
  }

  get(index: number): number {
    return this.levels[0]![index]!;
  }

  /** Sets the key's value (`absent` takes it out). */
  set(index: number, value: number): void {
    const { levels } = this;
    levels[0]![index] = value;
    for (let depth = 1; depth < levels.length; depth++) {
      const below = levels[depth - 1]!;
      const at = index >>> 4;
      let least = this.absent;
      for (let child = at << 4, end = Math.min(child + 16, below.length); child < end; child++) if (below[child]! < least) least = below[child]!;
      if (levels[depth]![at] === least) return;
      levels[depth]![at] = least;
      index = at;
    }
  }

  /** The lowest key holding the smallest value; only meaningful when the tree is not empty. */
  argmin(): number {
    const { levels } = this;
    const least = this.min;
    let index = 0;
    for (let depth = levels.length - 1; depth-- > 0; ) {
      const level = levels[depth]!;
      index <<= 4;
      while (level[index] !== least) index++;
    }
    return index;
  }

  /**
   * The lowest key holding the smallest value that is not in `skip`, or -1. It descends only into
   * blocks that can hold a better one, so it looks at O(16 · log₁₆ n) entries per key skipped.
   */
  argminExcept(skip: ReadonlySet<number>): number {
    const { levels } = this;
    let best = -1;
    let bestValue = this.absent;
    const visit = (depth: number, at: number): void => {
      const level = levels[depth]!;
      for (let child = at << 4, end = Math.min(child + 16, level.length); child < end; child++) {
        // A block whose minimum is not below the best found cannot hold a better key (ties go to
        // the lower key, met first).
        if (!(level[child]! < bestValue)) continue;
        if (depth !== 0) visit(depth - 1, child);
        else if (!skip.has(child)) (best = child), (bestValue = level[child]!);
      }
    };
    visit(levels.length - 1, 0);
    return best;
  }

  /** Takes `delta` off every value (none below 0): the order, and so every level, stays right. */
  shift(delta: number): void {
    for (const level of this.levels) {
      for (let at = 0; at < level.length; at++) if (level[at] !== this.absent) level[at] = Math.max(0, level[at]! - delta);
    }
  }
}
