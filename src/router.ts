import { IndexHeap } from "./index-heap.js";
import { BLOCKED, COOLDOWN, DISABLED, READY, type KeyState } from "./key-state.js";
import { checkDuration, resolveOptions, type CredentialRouterOptions } from "./options.js";
import { describe } from "./secret.js";
import { createPicker, type Picker, type RoutingStrategy } from "./strategy.js";

/**
 * Spreads requests over many API keys and keeps each key's health.
 *
 * `nextKey()` hands out the next ready key by the chosen strategy. After a response, tell the router
 * what the key deserves: `markErrorWithDelay` for a 429 with a `Retry-After`, `markError` for a
 * transient failure, `markBlocked` for a 401/403. Cooldowns end by themselves; blocked and disabled
 * keys wait for `clearCooldown`. The router schedules no timers and never reads the clock unless a
 * key is cooling.
 *
 * Keys are secrets: no message, `String()`, JSON or `inspect` output of the router contains one.
 *
 * @example
 * ```ts
 * const router = new CredentialRouter(["sk-one", "sk-two", "sk-three"], { cooldownMs: 10_000 });
 * const key = router.nextKey();
 * if (key === undefined) throw new Error(`all keys busy for ${router.nextReadyInMs()} ms`);
 * const response = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
 * if (response.status === 429) router.markErrorWithDelay(key, 20_000);
 * else if (response.status === 401) router.markBlocked(key);
 * ```
 */
export class CredentialRouter {
  readonly #keys: readonly string[];
  readonly #indexOf: Map<string, number>;
  readonly #strategy: RoutingStrategy;
  readonly #maxRetry: number | undefined;
  readonly #cooldownMs: number;
  readonly #now: () => number;

  /** Status code of each key (`READY` … `DISABLED`), by index. */
  readonly #status: Uint8Array;
  /** When each cooling key is ready again, on the `now` clock; meaningless for other keys. */
  readonly #deadline: Float64Array;
  /** The cooling keys, earliest deadline first: expiry looks only at the top. */
  readonly #cooling: IndexHeap;
  /** The ready keys, in the order the strategy picks them. */
  readonly #picker: Picker;
  #readyCount: number;

  /**
   * @param keys - The API keys, at least one, each a non-empty string, no duplicates. The router
   *   keeps its own copy.
   * @param options - See {@link CredentialRouterOptions}.
   * @throws TypeError when `keys` is not such a list (the message names the index, never the key),
   *   or an option is of the wrong kind.
   * @throws RangeError when a numeric option is out of range.
   */
  constructor(keys: readonly string[], options?: CredentialRouterOptions) {
    const { keys: copy, indexOf } = copyKeys(keys);
    const resolved = resolveOptions(options, copy.length);
    const size = copy.length;
    this.#keys = copy;
    this.#indexOf = indexOf;
    this.#strategy = resolved.strategy;
    this.#maxRetry = resolved.maxRetry;
    this.#cooldownMs = resolved.cooldownMs;
    this.#now = resolved.now;
    this.#status = new Uint8Array(size);
    this.#deadline = new Float64Array(size);
    this.#cooling = new IndexHeap(this.#deadline);
    this.#picker = createPicker(resolved.strategy, size);
    this.#readyCount = size;
  }

  /** How many keys the router holds, whatever their state. */
  get size(): number {
    return this.#keys.length;
  }

  /** The `maxRetry` option, or `undefined` when none was given. */
  get maxRetry(): number | undefined {
    return this.#maxRetry;
  }

  /** The routing strategy in use (a frozen copy of the option). */
  get strategy(): RoutingStrategy {
    return this.#strategy;
  }

  /**
   * The next ready key by the strategy, or `undefined` when every key is cooling, blocked or
   * disabled (then `nextReadyInMs()` says how long until one is back).
   */
  nextKey(): string | undefined {
    const index = this.#pick();
    return index === -1 ? undefined : this.#keys[index];
  }

  /**
   * Cools the key down for `cooldownMs`. A longer cooldown already running is kept, and a blocked or
   * disabled key stays so.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   */
  markError(key: string): boolean {
    return this.#coolDown(key, this.#cooldownMs);
  }

  /**
   * Cools the key down for `delayMs` milliseconds, such as a server's `Retry-After`. A longer
   * cooldown already running is kept, and a blocked or disabled key stays so.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   * @throws RangeError when `delayMs` is not a finite number `>= 0`.
   */
  markErrorWithDelay(key: string, delayMs: number): boolean {
    checkDuration("delayMs", delayMs);
    return this.#coolDown(key, delayMs);
  }

  /**
   * Takes the key out of rotation after a hard failure (401, 403) until `clearCooldown`. A disabled
   * key stays disabled.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   */
  markBlocked(key: string): boolean {
    return this.#raise(key, BLOCKED);
  }

  /**
   * Takes the key out of rotation on purpose until `clearCooldown`.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   */
  markDisabled(key: string): boolean {
    return this.#raise(key, DISABLED);
  }

  /**
   * Makes the key ready again, from any state. This is the only call that lowers a key's state.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   */
  clearCooldown(key: string): boolean {
    const index = this.#indexOf.get(key);
    if (index === undefined) return false;
    const status = this.#status[index]!;
    if (status === READY) return true;
    if (status === COOLDOWN) this.#cooling.delete(index);
    this.#becomeReady(index);
    return true;
  }

  /** The key's state now, or `undefined` for an unknown key. */
  stateOf(key: string): KeyState | undefined {
    const index = this.#indexOf.get(key);
    if (index === undefined) return undefined;
    if (this.#cooling.size !== 0) {
      const now = this.#now();
      this.#expire(now);
      if (this.#status[index] === COOLDOWN) return { status: "cooldown", remainingMs: this.#deadline[index]! - now };
    }
    switch (this.#status[index]) {
      case READY:
        return { status: "ready" };
      case BLOCKED:
        return { status: "blocked" };
      default:
        return { status: "disabled" };
    }
  }

  /**
   * How long until `nextKey()` can return a key: `0` when one is ready now, else the milliseconds
   * until the earliest cooldown ends, or `undefined` when every key is blocked or disabled.
   */
  nextReadyInMs(): number | undefined {
    if (this.#cooling.size === 0) return this.#readyCount === 0 ? undefined : 0;
    const now = this.#now();
    this.#expire(now);
    if (this.#readyCount !== 0) return 0;
    return this.#cooling.size === 0 ? undefined : this.#deadline[this.#cooling.peek()]! - now;
  }

  /** @returns `"[object CredentialRouter]"`. */
  get [Symbol.toStringTag](): string {
    return "CredentialRouter";
  }

  /** What `JSON.stringify` shows: the size and strategy, never a key. */
  toJSON(): { size: number; strategy: RoutingStrategy["type"] } {
    return { size: this.size, strategy: this.#strategy.type };
  }

  /** What Node's `util.inspect` and `console.log` show: the size and strategy, never a key. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `CredentialRouter { size: ${this.size}, strategy: '${this.#strategy.type}' }`;
  }

  #pick(): number {
    if (this.#cooling.size !== 0) this.#expire(this.#now());
    return this.#picker.pick();
  }

  /** Makes every key whose cooldown has ended ready, earliest first. */
  #expire(now: number): void {
    const cooling = this.#cooling;
    while (cooling.size !== 0) {
      const index = cooling.peek();
      if (this.#deadline[index]! > now) return;
      cooling.delete(index);
      this.#becomeReady(index);
    }
  }

  #becomeReady(index: number): void {
    this.#status[index] = READY;
    this.#picker.add(index);
    this.#readyCount++;
  }

  #leaveReady(index: number): void {
    this.#picker.delete(index);
    this.#readyCount--;
  }

  #coolDown(key: string, delayMs: number): boolean {
    const index = this.#indexOf.get(key);
    if (index === undefined) return false;
    if (this.#status[index]! > COOLDOWN) return true;
    const now = this.#now();
    // A window that has run out is over: this mark opens a new one rather than extending it.
    if (this.#cooling.size !== 0) this.#expire(now);
    const until = now + delayMs;
    if (this.#status[index] === COOLDOWN) {
      if (until <= this.#deadline[index]!) return true;
    } else {
      this.#status[index] = COOLDOWN;
      this.#leaveReady(index);
    }
    this.#deadline[index] = until;
    this.#cooling.set(index);
    return true;
  }

  #raise(key: string, status: typeof BLOCKED | typeof DISABLED): boolean {
    const index = this.#indexOf.get(key);
    if (index === undefined) return false;
    const before = this.#status[index]!;
    if (before >= status) return true;
    if (before === READY) this.#leaveReady(index);
    else if (before === COOLDOWN) this.#cooling.delete(index);
    this.#status[index] = status;
    return true;
  }
}

/**
 * Checks the key list and copies it, with a map from key to index. Messages name indices only.
 */
function copyKeys(keys: readonly string[]): { keys: readonly string[]; indexOf: Map<string, number> } {
  if (!Array.isArray(keys)) {
    throw new TypeError(`keys must be an array of strings, received ${describe(keys)}`);
  }
  if (keys.length === 0) throw new TypeError("CredentialRouter requires at least one key");
  const copy: string[] = [];
  const indexOf = new Map<string, number>();
  for (let index = 0; index < keys.length; index++) {
    const key: unknown = keys[index];
    if (typeof key !== "string" || key.length === 0) {
      throw new TypeError(`keys[${index}] must be a non-empty string, received ${describe(key)}`);
    }
    const first = indexOf.get(key);
    if (first !== undefined) throw new TypeError(`keys[${index}] duplicates keys[${first}]`);
    indexOf.set(key, index);
    copy.push(key);
  }
  return { keys: Object.freeze(copy), indexOf };
}
