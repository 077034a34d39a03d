/**
 * A 4-ary min-heap of key indices ordered by a caller-owned priority array, lowest index first on
 * ties. Each index is in the heap at most once (a position table tracks where), so raising or
 * lowering a priority moves the entry instead of adding another: the heap never holds stale
 * entries and never grows past the number of keys.
 *
 * The heap keeps its own copy of each entry's priority beside the entry, so that sifting reads the
 * four children from one or two cache lines rather than from four places in the priority array:
 * that is what keeps a pick as fast at 16,384 keys as at 1,024. Call `set` after changing a
 * priority.
 * @internal
 */
export class IndexHeap {
  readonly #heap: Int32Array;
  /** `#priority[#heap[at]]`, by heap position. */
  readonly #keys: Float64Array;
  /** Position of each index in `#heap`, or -1 when it is not in the heap. */
  readonly #position: Int32Array;
  readonly #priority: Float64Array;
  /** How many indices are in the heap. */
  size = 0;

  constructor(priority: Float64Array) {
    this.#priority = priority;
    this.#heap = new Int32Array(priority.length);
    this.#keys = new Float64Array(priority.length);
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
    let bestAt = 0;
    for (const pending = this.size ? [0] : []; pending.length; ) {
      const at = pending.pop()!;
      const index = this.#heap[at]!;
      if (!skip.has(index)) {
        if (best < 0 || this.#before(at, index, bestAt, best)) [best, bestAt] = [index, at];
      } else {
        for (let child = 4 * at + 1; child <= 4 * at + 4 && child < this.size; child++) pending.push(child);
      }
    }
    return best;
  }

  /** Adds `index`, or moves it after its priority changed when it is already in. */
  set(index: number): void {
    const at = this.#position[index]!;
    this.#sift(index, this.#priority[index]!, at === -1 ? this.size++ : at);
  }

  delete(index: number): void {
    const at = this.#position[index]!;
    if (at === -1) return;
    this.#position[index] = -1;
    const last = --this.size;
    if (at !== last) this.#sift(this.#heap[last]!, this.#keys[last]!, at);
  }

  /**
   * Takes `delta` off every priority in the heap (its own copies; the caller does the same to its
   * array). Equal shifts keep the order.
   */
  shift(delta: number): void {
    for (let at = 0; at < this.size; at++) this.#keys[at]! -= delta;
  }

  /** Whether the entry at heap position `a` (holding `indexA`) comes before the one at `b`. */
  #before(a: number, indexA: number, b: number, indexB: number): boolean {
    return this.#keys[a]! < this.#keys[b]! || (this.#keys[a] === this.#keys[b] && indexA < indexB);
  }

  /** Places `index` (with priority `key`) at `at`, then moves it up or down until the heap is in order. */
  #sift(index: number, key: number, at: number): void {
    const heap = this.#heap;
    const keys = this.#keys;
    const size = this.size;
    const after = (other: number, otherKey: number) => otherKey > key || (otherKey === key && other > index);
    while (at > 0) {
      const parentAt = (at - 1) >> 2;
      if (!after(heap[parentAt]!, keys[parentAt]!)) break;
      this.#place(heap[parentAt]!, keys[parentAt]!, at);
      at = parentAt;
    }
    for (let first; (first = 4 * at + 1) < size; ) {
      let childAt = first;
      for (let other = first + 1; other < first + 4 && other < size; other++) {
        if (this.#before(other, heap[other]!, childAt, heap[childAt]!)) childAt = other;
      }
      if (after(heap[childAt]!, keys[childAt]!)) break;
      this.#place(heap[childAt]!, keys[childAt]!, at);
      at = childAt;
    }
    this.#place(index, key, at);
  }

  #place(index: number, key: number, at: number): void {
    this.#heap[at] = index;
    this.#keys[at] = key;
    this.#position[index] = at;
  }
}
