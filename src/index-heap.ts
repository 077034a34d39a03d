/**
 * A min-heap of key indices ordered by a caller-owned priority array, lowest index first on
 * ties. Each index is in the heap at most once (a position table tracks where), so raising or
 * lowering a priority moves the entry instead of adding another: the heap never holds stale
 * entries and never grows past the number of keys.
 * @internal
 */
export class IndexHeap {
  readonly #heap: Int32Array;
  /** Position of each index in `#heap`, or -1 when it is not in the heap. */
  readonly #position: Int32Array;
  readonly #priority: Float64Array;
  /** How many indices are in the heap. */
  size = 0;

  constructor(priority: Float64Array) {
    this.#priority = priority;
    this.#heap = new Int32Array(priority.length);
    this.#position = new Int32Array(priority.length).fill(-1);
  }

  /** The index with the lowest priority; only meaningful when `size > 0`. */
  peek(): number {
    return this.#heap[0]!;
  }

  /**
   * The index with the lowest priority that is not in `skip`, or -1. Only entries whose ancestors
   * are all skipped can be that minimum, so this looks at no more than `4 * skip.size + 1` entries.
   */
  peekExcept(skip: ReadonlySet<number>): number {
    let best = -1;
    for (const pending = this.size ? [0] : []; pending.length; ) {
      const at = pending.pop()!;
      const index = this.#heap[at]!;
      if (!skip.has(index)) {
        if (best < 0 || this.#priority[index]! < this.#priority[best]! || (this.#priority[index] === this.#priority[best] && index < best)) best = index;
      } else {
        for (let child = 4 * at + 1; child <= 4 * at + 4 && child < this.size; child++) pending.push(child);
      }
    }
    return best;
  }

  /** Adds `index`, or moves it after its priority changed when it is already in. */
  set(index: number): void {
    const at = this.#position[index]!;
    this.#sift(index, at === -1 ? this.size++ : at);
  }

  delete(index: number): void {
    const at = this.#position[index]!;
    if (at === -1) return;
    this.#position[index] = -1;
    const last = this.#heap[--this.size]!;
    if (at !== this.size) this.#sift(last, at);
  }

  /**
   * Places `index` at `at`, then moves it up or down until the heap is in order again (lowest
   * priority first, lowest index on ties). The heap is 4-ary: half the depth of a binary one, which
   * matters most for the weighted strategy, whose every pick moves the top entry down.
   */
  #sift(index: number, at: number): void {
    const heap = this.#heap;
    const priority = this.#priority;
    const size = this.size;
    const key = priority[index]!;
    const before = (other: number, otherKey: number) => otherKey < key || (otherKey === key && other < index);
    while (at > 0) {
      const parent = heap[(at - 1) >> 2]!;
      if (before(parent, priority[parent]!)) break;
      this.#place(parent, at);
      at = (at - 1) >> 2;
    }
    for (let first; (first = 4 * at + 1) < size; ) {
      let child = heap[first]!;
      let childKey = priority[child]!;
      let childAt = first;
      for (let other = first + 1; other < first + 4 && other < size; other++) {
        const candidate = heap[other]!;
        const candidateKey = priority[candidate]!;
        if (candidateKey < childKey || (candidateKey === childKey && candidate < child)) {
          child = candidate;
          childKey = candidateKey;
          childAt = other;
        }
      }
      if (!before(child, childKey)) break;
      this.#place(child, at);
      at = childAt;
    }
    this.#place(index, at);
  }

  #place(index: number, at: number): void {
    this.#heap[at] = index;
    this.#position[index] = at;
  }
}
