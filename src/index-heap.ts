/**
 * A binary min-heap of key indices ordered by a caller-owned priority array, lowest index first on
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
   * are all skipped can be that minimum, so this looks at no more than `2 * skip.size + 1` entries.
   */
  peekExcept(skip: ReadonlySet<number>): number {
    let best = -1;
    for (const pending = this.size ? [0] : []; pending.length; ) {
      const at = pending.pop()!;
      const index = this.#heap[at]!;
      if (!skip.has(index)) {
        if (best < 0 || this.#before(index, best)) best = index;
      } else {
        pending.push(...[2 * at + 1, 2 * at + 2].filter((child) => child < this.size));
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

  /** Less, lowest index first on ties. */
  #before(a: number, b: number): boolean {
    const priority = this.#priority;
    return priority[a]! < priority[b]! || (priority[a] === priority[b] && a < b);
  }

  /** Places `index` at `at`, then moves it up or down until the heap is in order again. */
  #sift(index: number, at: number): void {
    const heap = this.#heap;
    while (at > 0 && this.#before(index, heap[(at - 1) >> 1]!)) {
      this.#place(heap[(at - 1) >> 1]!, at);
      at = (at - 1) >> 1;
    }
    for (let child; (child = 2 * at + 1) < this.size; at = child) {
      if (child + 1 < this.size && this.#before(heap[child + 1]!, heap[child]!)) child++;
      if (!this.#before(heap[child]!, index)) break;
      this.#place(heap[child]!, at);
    }
    this.#place(index, at);
  }

  #place(index: number, at: number): void {
    this.#heap[at] = index;
    this.#position[index] = at;
  }
}
