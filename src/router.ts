import { Emitter, type KeyRef, type RouterEvent, type RouterListener } from "./events.js";
import { execute, type ExecuteHost, type ExecuteOptions, type KeyContext } from "./execute.js";
import { fingerprint } from "./fingerprint.js";
import { IndexHeap } from "./index-heap.js";
import { BLOCKED, COOLDOWN, DISABLED, READY, STATUS_NAMES, type KeyState } from "./key-state.js";
import { checkDuration, resolveOptions, type CredentialRouterOptions, type ResolvedOptions } from "./options.js";
import { checkSavedState, type SavedKeyState, type SavedState } from "./saved-state.js";
import { invalid, maskKey } from "./secret.js";
import { createPicker, type Picker, type RoutingStrategy } from "./strategy.js";

/** One row of {@link CredentialRouter.snapshot}: a key's state, named without the key. */
export interface KeySnapshot extends KeyRef {
  /** The key's fingerprint (SHA-256, hex), as in saved state: the same key has the same id everywhere. */
  id: string;
  /** The key's state at the time of the snapshot. */
  state: KeyState;
  /** Consecutive failed cooldown windows; the next default cooldown grows from it. */
  failures: number;
}

/**
 * Spreads requests over many API keys and keeps each key's health.
 *
 * `nextKey()` hands out the next ready key by the chosen strategy. After a response, tell the router
 * what the key deserves: `markErrorWithDelay` for a 429 with a `Retry-After`, `markError` for a
 * transient failure, `markBlocked` for a 401/403. Or let `execute` do all of that around each call.
 * Cooldowns end by themselves; blocked and disabled keys wait for `clearCooldown`. The router
 * schedules no timers and never reads the clock unless a key is cooling.
 *
 * Keys are secrets: no message, event, snapshot, `String()`, JSON or `inspect` output of the router
 * contains one.
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
  /** The checked options, defaults filled in. */
  readonly #options: ResolvedOptions;
  readonly #now: () => number;
  readonly #events = new Emitter<RouterEvent>();

  /** Status code of each key (`READY` … `DISABLED`), by index. */
  readonly #status: Uint8Array;
  /** When each cooling key is ready again, on the `now` clock; meaningless for other keys. */
  readonly #deadline: Float64Array;
  /** Consecutive failed cooldown windows of each key. */
  readonly #failures: Uint32Array;
  /** The cooling keys, earliest deadline first: expiry looks only at the top. */
  readonly #cooling: IndexHeap;
  /** The ready keys, in the order the strategy picks them. */
  readonly #picker: Picker;
  #readyCount: number;
  /** SHA-256 of each key, computed the first time saved state needs them. */
  #fingerprints: readonly string[] | undefined;
  #indexOfFingerprint: Map<string, number> | undefined;
  #host: ExecuteHost | undefined;

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
    this.#options = resolved;
    this.#now = resolved.now;
    this.#status = new Uint8Array(size);
    this.#deadline = new Float64Array(size);
    this.#failures = new Uint32Array(size);
    this.#cooling = new IndexHeap(this.#deadline);
    this.#picker = createPicker(resolved.strategy, size);
    this.#readyCount = size;
    if (resolved.initialState !== undefined) this.importState(resolved.initialState);
  }

  /** How many keys the router holds, whatever their state. */
  get size(): number {
    return this.#keys.length;
  }

  /** The `maxRetry` option, or `undefined` when none was given. */
  get maxRetry(): number | undefined {
    return this.#options.maxRetry;
  }

  /** The routing strategy in use (a frozen copy of the option). */
  get strategy(): RoutingStrategy {
    return this.#options.strategy;
  }

  /**
   * The next ready key by the strategy, or `undefined` when every key is cooling, blocked or
   * disabled (then `nextReadyInMs()` says how long until one is back).
   */
  nextKey(): string | undefined {
    // The hot path, kept apart from execute's picks that pass over tried keys. While keys cool, a
    // pick costs one clock read and a look at the earliest deadline; #expire runs only when one ended.
    const cooling = this.#cooling;
    if (cooling.size !== 0 && this.#deadline[cooling.peek()]! <= this.#now()) this.#expire();
    const index = this.#picker.pick();
    return index < 0 ? this.#exhausted() : this.#keys[index];
  }

  /**
   * Cools the key down for the default time: `cooldownMs`, doubled for each consecutive failed
   * window up to `maxCooldownMs`. A mark while the key is already cooling opens no new window (and
   * does not escalate); a longer cooldown already running is kept, and a blocked or disabled key
   * stays so.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   */
  markError(key: string): boolean {
    return this.#coolDown(this.#indexOf.get(key), undefined);
  }

  /**
   * Cools the key down for `delayMs` milliseconds, such as a server's `Retry-After`; delays over
   * `maxRetryAfterMs` are cut to it. A longer cooldown already running is kept, and a blocked or
   * disabled key stays so.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   * @throws RangeError when `delayMs` is not a finite number `>= 0`.
   */
  markErrorWithDelay(key: string, delayMs: number): boolean {
    checkDuration("delayMs", delayMs);
    return this.#coolDown(this.#indexOf.get(key), Math.min(delayMs, this.#options.maxRetryAfterMs));
  }

  /**
   * Takes the key out of rotation after a hard failure (401, 403) until `clearCooldown`. A disabled
   * key stays disabled.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   */
  markBlocked(key: string): boolean {
    return this.#raise(this.#indexOf.get(key), BLOCKED);
  }

  /**
   * Takes the key out of rotation on purpose until `clearCooldown`.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   */
  markDisabled(key: string): boolean {
    return this.#raise(this.#indexOf.get(key), DISABLED);
  }

  /**
   * Records that a request with the key succeeded: its run of failures ends, so its next default
   * cooldown starts again from `cooldownMs`. Its state does not change (a success of a request sent
   * before a 429 does not end that 429's cooldown).
   * @returns `true` for a known key, `false` for an unknown one.
   */
  markSuccess(key: string): boolean {
    const index = this.#indexOf.get(key);
    if (index === undefined) return false;
    this.#failures[index] = 0;
    return true;
  }

  /**
   * Makes the key ready again, from any state, and ends its run of failures. This is the only call
   * that lowers a key's state.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   */
  clearCooldown(key: string): boolean {
    const index = this.#indexOf.get(key);
    if (index === undefined) return false;
    this.#failures[index] = 0;
    if (this.#status[index] !== READY) this.#set(index, READY, 0);
    return true;
  }

  /** The key's state now, or `undefined` for an unknown key. */
  stateOf(key: string): KeyState | undefined {
    const index = this.#indexOf.get(key);
    if (index === undefined) return undefined;
    return this.#stateAt(index, this.#cooling.size === 0 ? 0 : this.#expire());
  }

  /**
   * How long until `nextKey()` can return a key: `0` when one is ready now, else the milliseconds
   * until the earliest cooldown ends, or `undefined` when every key is blocked or disabled.
   */
  nextReadyInMs(): number | undefined {
    if (this.#cooling.size === 0) return this.#readyCount === 0 ? undefined : 0;
    const now = this.#expire();
    if (this.#readyCount !== 0) return 0;
    return this.#cooling.size === 0 ? undefined : this.#deadline[this.#cooling.peek()]! - now;
  }

  /**
   * Listens to what happens to the keys (see {@link RouterEvent}). Events carry the key's index,
   * masked hint and label, never the key. A listener that throws does not disturb routing; its
   * error is dropped.
   * @returns A function that unsubscribes; safe to call at any time, also from inside a listener.
   * @example
   * ```ts
   * const stop = router.subscribe((event) => {
   *   if (event.type === "blocked") console.warn(`key ${event.hint} was rejected; rotate it`);
   * });
   * ```
   */
  subscribe(listener: RouterListener): () => void {
    return this.#events.subscribe(listener);
  }

  /** Every key's state, by index, for dashboards and health checks. Contains no key. */
  snapshot(): ReadonlyArray<KeySnapshot> {
    const now = this.#cooling.size === 0 ? 0 : this.#expire();
    const ids = this.#fingerprintList();
    return this.#keys.map((_, index) =>
      this.#ref(index, { id: ids[index]!, state: this.#stateAt(index, now), failures: this.#failures[index]! }),
    );
  }

  /**
   * The keys' states as a JSON-safe value to persist and pass back as the `initialState` option,
   * such as across a restart. Keys are named by SHA-256 fingerprint, never by text; cooldown
   * deadlines are wall-clock times (`Date.now()`), so the remaining time survives the restart.
   */
  exportState(): SavedState {
    const now = this.#cooling.size === 0 ? 0 : this.#expire();
    const wallNow = Date.now();
    const ids = this.#fingerprintList();
    const keys: SavedKeyState[] = [];
    for (let index = 0; index < this.#keys.length; index++) {
      const status = this.#status[index]!;
      const failures = this.#failures[index]!;
      if (status === READY && failures === 0) continue;
      const entry: SavedKeyState = { id: ids[index]!, status: STATUS_NAMES[status]! };
      if (status === COOLDOWN) entry.until = wallNow + (this.#deadline[index]! - now);
      if (failures !== 0) entry.failures = failures;
      keys.push(entry);
    }
    return { version: 1, savedAt: wallNow, keys };
  }

  /**
   * Sets the keys listed in `state` (from `exportState()`, another instance or a shared store) to
   * exactly the states given, and tells the listeners. Unlike the marks, this may lower a state: it is
   * how a state decided elsewhere (an admin's `clearCooldown` on another instance) arrives here.
   * Entries for keys this router does not hold are ignored; cooldowns that have ended make the key
   * ready. An entry's `failures`, when given, replaces the key's own; without it the key keeps its
   * own count (an entry that makes a key ready without `failures` still ends its run, as
   * `clearCooldown` does).
   * @throws TypeError when `state` is not shaped like {@link SavedState}.
   */
  importState(state: SavedState): void {
    checkSavedState(state, "state");
    const indexOf = this.#fingerprintIndex();
    const now = this.#now();
    const wallNow = Date.now();
    for (const { id, status, until = 0, failures } of state.keys) {
      const index = indexOf.get(id);
      if (index === undefined) continue;
      if (failures !== undefined) this.#failures[index] = failures;
      else if (status === "ready") this.#failures[index] = 0;
      const deadline = now + (until - wallNow);
      const code = status === "cooldown" && deadline <= now ? READY : STATUS_NAMES.indexOf(status);
      if (code !== this.#status[index] || (code === COOLDOWN && deadline !== this.#deadline[index])) {
        this.#set(index, code, now, deadline);
      }
    }
  }

  /**
   * Calls `fn` with a key and decides from its outcome what the key deserves and whether to try
   * another: success, cooldown (with the server's wait hint), blocked, or not the key's fault.
   * See {@link ExecuteOptions} and the README for the full rules.
   * @returns What `fn` resolved to, on the first success or the last attempt.
   * @throws {@link NoKeyAvailableError} when no key could be tried at all; `signal.reason` when the
   *   signal aborts; otherwise the last attempt's own error.
   * @example
   * ```ts
   * const response = await router.execute((key, { signal }) =>
   *   fetch(url, { headers: { authorization: `Bearer ${key}` }, signal }),
   * );
   * ```
   */
  execute<T>(fn: (key: string, context: KeyContext) => T | PromiseLike<T>, options?: ExecuteOptions): Promise<T> {
    this.#host ??= {
      pick: (tried) => this.#pick(tried),
      waitMs: (tried) => {
        const index = this.#cooling.peekExcept(tried);
        return index < 0 ? undefined : this.#deadline[index]! - this.#now();
      },
      key: (index) => this.#keys[index]!,
      ref: (index, fields) => this.#ref(index, fields),
    };
    return execute(this, this.#host, fn, options);
  }

  /** The next ready key's index by the strategy that is not in `tried`, or -1. */
  #pick(tried: ReadonlySet<number>): number {
    if (this.#cooling.size !== 0) this.#expire();
    // Pass over the tried keys the strategy offers, hiding each for the rest of this pick only: the
    // cost is the number of tried keys met, not of keys tried (round-robin's cursor has usually
    // moved past them already).
    const hidden: number[] = [];
    let index: number;
    while ((index = this.#picker.pick()) >= 0 && tried.has(index)) {
      this.#picker.delete(index);
      hidden.push(index);
    }
    for (const other of hidden) this.#picker.add(other, false);
    if (index < 0) this.#exhausted();
    return index;
  }

  /** Tells the listeners, when no key at all is ready, how long until one is. */
  #exhausted(): undefined {
    if (this.#readyCount === 0 && this.#events.active) {
      // Read the earliest deadline without expiring it: the pick that found no key stands, and
      // telling the listeners must not make a key ready under it.
      const cooling = this.#cooling;
      const retryAfterMs = cooling.size === 0 ? undefined : Math.max(0, this.#deadline[cooling.peek()]! - this.#now());
      this.#events.emit({ type: "exhausted", retryAfterMs });
    }
    return undefined;
  }

  /** Makes every key whose cooldown has ended ready, earliest first; returns the time it read. */
  #expire(): number {
    const now = this.#now();
    const cooling = this.#cooling;
    while (cooling.size !== 0 && this.#deadline[cooling.peek()]! <= now) this.#set(cooling.peek(), READY, now, 0, "expired");
    return now;
  }

  /**
   * Puts the key in `status` (until `until`, for a cooldown) and tells the listeners: the one place a
   * key's state changes, so the picker, the cooling heap and the ready count always agree.
   */
  #set(index: number, status: number, now: number, until = 0, reason: "cleared" | "expired" = "cleared"): void {
    const before = this.#status[index]!;
    this.#status[index] = status;
    if (before === READY) {
      this.#picker.delete(index);
      this.#readyCount--;
    } else if (status === READY) {
      this.#picker.add(index, true);
      this.#readyCount++;
    }
    if (status === COOLDOWN) {
      this.#deadline[index] = until;
      this.#cooling.set(index);
    } else if (before === COOLDOWN) {
      this.#cooling.delete(index);
    }
    if (this.#events.active) {
      this.#events.emit(
        this.#ref(
          index,
          status === COOLDOWN
            ? { type: "cooldown", delayMs: until - now }
            : status === READY
              ? { type: "ready", reason }
              : { type: status === BLOCKED ? "blocked" : "disabled" },
        ) as RouterEvent,
      );
    }
  }

  /** Cools the key down for `delayMs`, or for its escalating default when that is `undefined`. */
  #coolDown(index: number | undefined, delayMs: number | undefined): boolean {
    if (index === undefined) return false;
    // A window that has run out is over: this mark opens a new one rather than extending it. Expiry
    // comes first, as its events may run listeners that mark this very key.
    const now = this.#cooling.size === 0 ? this.#now() : this.#expire();
    if (this.#status[index]! > COOLDOWN) return true;
    const opening = this.#status[index] === READY;
    if (opening) this.#failures[index]!++;
    // At least one window: a success while this one runs ends the run, not this cooldown.
    const { cooldownMs, maxCooldownMs } = this.#options;
    delayMs ??= Math.min(cooldownMs * 2 ** Math.min(Math.max(this.#failures[index]!, 1) - 1, 1023), maxCooldownMs);
    if (opening || now + delayMs > this.#deadline[index]!) this.#set(index, COOLDOWN, now, now + delayMs);
    return true;
  }

  #raise(index: number | undefined, status: typeof BLOCKED | typeof DISABLED): boolean {
    if (index === undefined) return false;
    if (this.#status[index]! < status) this.#set(index, status, 0);
    return true;
  }

  #stateAt(index: number, now: number): KeyState {
    const status = this.#status[index]!;
    return status === COOLDOWN
      ? { status: "cooldown", remainingMs: this.#deadline[index]! - now }
      : { status: STATUS_NAMES[status] as "ready" | "blocked" | "disabled" };
  }

  /**
   * Adds which key it is (index, hint, label) to `fields`. Adding to the object, rather than
   * spreading one into another, keeps event building cheap on the engines we measured.
   */
  #ref<T extends object>(index: number, fields: T): T & KeyRef {
    const ref = fields as T & KeyRef;
    ref.index = index;
    ref.hint = maskKey(this.#keys[index]!, index);
    const { labels } = this.#options;
    if (labels) ref.label = labels[index]!;
    return ref;
  }

  #fingerprintList(): readonly string[] {
    return (this.#fingerprints ??= this.#keys.map(fingerprint));
  }

  #fingerprintIndex(): Map<string, number> {
    return (this.#indexOfFingerprint ??= new Map(this.#fingerprintList().map((id, index) => [id, index])));
  }
}

/**
 * Checks the key list and copies it, with a map from key to index. Messages name indices only.
 */
function copyKeys(keys: readonly string[]): { keys: readonly string[]; indexOf: Map<string, number> } {
  if (!Array.isArray(keys)) invalid(TypeError, "keys", "an array of strings", keys);
  if (keys.length === 0) throw new TypeError("CredentialRouter requires at least one key");
  const indexOf = new Map<string, number>();
  // Index loops, not forEach: a hole in a sparse array must be seen, not skipped.
  for (let index = 0; index < keys.length; index++) {
    const key: unknown = keys[index];
    if (typeof key !== "string" || key === "") invalid(TypeError, `keys[${index}]`, "a non-empty string", key);
    const first = indexOf.get(key);
    if (first !== undefined) throw new TypeError(`keys[${index}] duplicates keys[${first}]`);
    indexOf.set(key, index);
  }
  // A private copy, not frozen: V8 reads elements of a frozen array markedly slower, on the hot path.
  return { keys: [...keys], indexOf };
}
