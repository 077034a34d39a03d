/**
 * Which (key, scope) pairs an instance shares, each a slot with a record in Redis: slot `i < keys` is
 * key `i` key-wide (field: the fingerprint), and the slots after are the key's states in a scope
 * (field `"<fingerprint>/<escaped scope>"`), made when a scope first holds a state and freed when it
 * holds none any more. The mirror and the outbox keep their per-slot arrays as long as
 * {@link Slots.capacity}.
 * @internal
 */
import { escapeText, unescapeText } from "./record.js";

/** The longest scoped field read from Redis: a fingerprint, a slash and an escaped scope of 1,000 characters. @internal */
export const MAX_FIELD_LENGTH = 64 + 1 + 1_000;

interface Scope {
  /** The name as records carry it. */
  escaped: string;
  /** Slot by key index. */
  slots: Map<number, number>;
}

/** @internal */
export class Slots {
  /** Each key's fingerprint, by index. */
  readonly ids: readonly string[];
  readonly #indexOfId: Map<string, number>;
  /** Slots there is room for in the per-slot arrays (grows by doubling). */
  capacity: number;
  /** Per slot: the key's index, the Redis field, the scope (`undefined`: key-wide, or a free slot). */
  keyOf: Int32Array;
  readonly field: string[];
  readonly scope: Array<string | undefined>;
  readonly #free: number[] = [];
  #next: number;
  readonly #scopes = new Map<string, Scope>();
  readonly #scopeOfEscaped = new Map<string, string>();
  readonly #slotOfField = new Map<string, number>();
  /** Called with the new capacity when it grows. */
  readonly #grow: (capacity: number) => void;

  constructor(ids: readonly string[], grow: (capacity: number) => void) {
    this.ids = ids;
    this.#indexOfId = new Map(ids.map((id, index) => [id, index]));
    this.#grow = grow;
    const size = ids.length;
    this.#next = size;
    this.capacity = size + 16;
    this.keyOf = new Int32Array(this.capacity);
    for (let index = 0; index < size; index++) this.keyOf[index] = index;
    this.field = [...ids];
    this.scope = new Array<string | undefined>(size).fill(undefined);
  }

  /** The number of key-wide slots (one per key). */
  get keys(): number {
    return this.ids.length;
  }

  /** One past the highest slot in use: the slots to look over. */
  get end(): number {
    return this.#next;
  }

  /** Whether a slot past the key-wide ones is in use. */
  live(slot: number): boolean {
    return slot < this.ids.length || this.scope[slot] !== undefined;
  }

  /** The key index of a fingerprint, or `undefined` for a key this router does not hold. */
  indexOf(id: string): number | undefined {
    return this.#indexOfId.get(id);
  }

  /** The slot of a key in a scope, made if there is none (key-wide: the key's index). */
  slotIn(index: number, scope: string | undefined): number {
    if (scope === undefined) return index;
    let entry = this.#scopes.get(scope);
    if (entry === undefined) {
      entry = { escaped: escapeText(scope), slots: new Map() };
      this.#scopes.set(scope, entry);
    }
    let slot = entry.slots.get(index);
    if (slot === undefined) {
      slot = this.#take();
      const field = `${this.ids[index]!}/${entry.escaped}`;
      this.keyOf[slot] = index;
      this.field[slot] = field;
      this.scope[slot] = scope;
      entry.slots.set(index, slot);
      this.#slotOfField.set(field, slot);
    }
    return slot;
  }

  /** The slot of a scoped field read from Redis: -1 when unknown (see `make`), -2 when malformed. */
  slotOfField(field: string, make: boolean): number {
    const slot = this.#slotOfField.get(field);
    if (slot !== undefined) return slot;
    if (field.length > MAX_FIELD_LENGTH || field.charCodeAt(64) !== 47) return -2;
    const escaped = field.slice(65);
    let scope = this.#scopeOfEscaped.get(escaped);
    if (scope === undefined) {
      const name = unescapeText(escaped);
      // Only the one way of writing each name: another would be a second record for one scope.
      if (name === undefined || escapeText(name) !== escaped) return -2;
      scope = name;
      if (this.#scopeOfEscaped.size >= 4_096) this.#scopeOfEscaped.clear();
      this.#scopeOfEscaped.set(escaped, scope);
    }
    const index = this.#indexOfId.get(field.slice(0, 64));
    if (index === undefined || !make) return -1;
    return this.slotIn(index, scope);
  }

  /** Frees a scoped slot (its arrays must be back at their zero values). */
  release(slot: number): void {
    const scope = this.scope[slot]!;
    const entry = this.#scopes.get(scope)!;
    entry.slots.delete(this.keyOf[slot]!);
    if (entry.slots.size === 0) this.#scopes.delete(scope);
    this.#slotOfField.delete(this.field[slot]!);
    this.field[slot] = "";
    this.scope[slot] = undefined;
    this.#free.push(slot);
  }

  #take(): number {
    const slot = this.#free.pop();
    if (slot !== undefined) return slot;
    if (this.#next === this.capacity) {
      this.capacity *= 2;
      const keyOf = new Int32Array(this.capacity);
      keyOf.set(this.keyOf);
      this.keyOf = keyOf;
      this.#grow(this.capacity);
    }
    return this.#next++;
  }
}

/** A copy of `array` with room for `capacity` items, the new ones zero. @internal */
export function grown<T extends Uint8Array | Float64Array>(array: T, capacity: number): T {
  const copy = new (array.constructor as new (length: number) => T)(capacity);
  copy.set(array);
  return copy;
}
