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
  #size = 0;

  constructor(priority: Float64Array) {
    this.#priority = priority;
    this.#heap = new Int32Array(priority.length);
    this.#position = new Int32Array(priority.length).fill(-1);
  }

  get size(): number {
    return this.#size;
  }

  /** The index with the lowest priority; only meaningful when `size > 0`. */
  peek(): number {
    return this.#heap[0]!;
  }

  has(index: number): boolean {
    return this.#position[index] !== -1;
  }

  /** Adds `index`, or moves it after its priority changed when it is already in. */
  set(index: number): void {
    const at = this.#position[index]!;
    if (at === -1) {
      this.#place(index, this.#size++);
      this.#up(this.#size - 1);
    } else if (!this.#up(at)) {
      this.#down(at);
    }
  }

  delete(index: number): void {
    const at = this.#position[index]!;
    if (at === -1) return;
    this.#position[index] = -1;
    const last = this.#heap[--this.#size]!;
    if (at === this.#size) return;
    this.#place(last, at);
    if (!this.#up(at)) this.#down(at);
  }


  #less(a: number, b: number): boolean {
    const pa = this.#priority[a]!;
    const pb = this.#priority[b]!;
    return pa < pb || (pa === pb && a < b);
  }

  #place(index: number, at: number): void {
    this.#heap[at] = index;
    this.#position[index] = at;
  }

  /** Moves the entry at `at` towards the root; returns whether it moved. */
  #up(at: number): boolean {
    const index = this.#heap[at]!;
    const start = at;
    while (at > 0) {
      const parentAt = (at - 1) >> 1;
      const parent = this.#heap[parentAt]!;
      if (!this.#less(index, parent)) break;
      this.#place(parent, at);
      at = parentAt;
    }
    this.#place(index, at);
    return at !== start;
  }

  #down(at: number): void {
    const index = this.#heap[at]!;
    const size = this.#size;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= size) break;
      const right = child + 1;
      if (right < size && this.#less(this.#heap[right]!, this.#heap[child]!)) child = right;
      const smallest = this.#heap[child]!;
      if (!this.#less(smallest, index)) break;
      this.#place(smallest, at);
      at = child;
    }
    this.#place(index, at);
  }
}
