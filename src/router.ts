import { Emitter, type KeyRef, type RouterEvent, type RouterListener } from "./events.js";
import { execute, type ExecuteHost, type ExecuteOptions, type KeyContext } from "./execute.js";
import { fingerprint } from "./fingerprint.js";
import { BLOCKED, COOLDOWN, DISABLED, READY, REASONS, STATUS_NAMES, type KeyState, type Reason } from "./key-state.js";
import { checkDuration, resolveOptions, type CredentialRouterOptions, type ResolvedOptions } from "./options.js";
import { checkSavedState, type SavedKeyState, type SavedState } from "./saved-state.js";
import { Layer } from "./layer.js";
import { invalid, maskKey } from "./secret.js";
import { pickerFactory, RoundRobin, type Picker, type RoutingStrategy } from "./strategy.js";

/** Options of the marks that take a key out: why, and where. */
export interface MarkOptions {
  /**
   * Why the key is out, carried by events, snapshots, saved state and Redis records.
   * @defaultValue `"manual"`
   */
  reason?: Reason | undefined;
  /**
   * The scope the mark applies in (a model name, or any string): the key is out for that scope
   * only. Without one, the key is out for every scope.
   * @defaultValue `undefined` (key-wide)
   */
  scope?: string | undefined;
}

/** Options of `markError` and `markErrorWithDelay`. */
export interface CooldownOptions extends MarkOptions {
  /**
   * Whether the cooldown spreads to every key of the key's group (the `groups` option), in the same
   * scope, until the same deadline.
   * @defaultValue `true` for reasons `"rate_limit"` and `"quota"`, else `false`
   */
  group?: boolean | undefined;
}

/** Options of the calls that read or clear one scope. */
export interface ScopeOptions {
  /**
   * The scope; without one, the call is key-wide (and `clearCooldown` clears every scope too).
   * @defaultValue `undefined`
   */
  scope?: string | undefined;
}

/** A key's state in one scope where it is not ready, in a {@link KeySnapshot}. */
export interface ScopeSnapshot {
  /** The scope's name. */
  scope: string;
  /** The key's state in the scope alone (its key-wide state is the row's). */
  state: KeyState;
  /** Why the key is out in the scope. */
  reason: Reason;
}

/** One row of {@link CredentialRouter.snapshot}: a key's state, named without the key. */
export interface KeySnapshot extends KeyRef {
  /** The key's fingerprint (SHA-256, hex), as in saved state: the same key has the same id everywhere. */
  id: string;
  /** The key's key-wide state at the time of the snapshot. */
  state: KeyState;
  /** Why the key is out key-wide; absent when it is ready. */
  reason?: Reason;
  /** Consecutive failed cooldown windows; the next default cooldown grows from it. */
  failures: number;
  /** The key's entry in the `groups` option, when it has one. */
  group?: string;
  /** Each scope in which the key is out, whatever its key-wide state. */
  scopes: ScopeSnapshot[];
}

/** No keys tried. */
const NONE: ReadonlySet<number> = new Set();

/** The most reasons a router tells apart (built-in ones included): they are stored in a byte a key. */
const MAX_REASONS = 256;
const RATE_LIMIT = 1;
const QUOTA = 2;

/** A key's state in one layer alone. */
function stateIn(layer: Layer, index: number, now: number): KeyState {
  const status = layer.status[index]!;
  return status === COOLDOWN ? { status: "cooldown", remainingMs: layer.deadline(index) - now } : { status: STATUS_NAMES[status] as "ready" | "blocked" | "disabled" };
}

/** Counts the key in or out of the keys the layer's picker holds. */
function admit(layer: Layer, index: number, ready: boolean): void {
  layer.ready += ready ? 1 : -1;
  if (ready) layer.picker.add(index, true);
  else layer.picker.delete(index);
}

/** When the key is ready in the layer: already (`-Infinity`), at its deadline, or never (`Infinity`). */
function readyAt(layer: Layer, index: number): number {
  const status = layer.status[index];
  return status === READY ? -Infinity : status === COOLDOWN ? layer.deadline(index) : Infinity;
}

/** The `scope` of an options object, checked. */
function scopeOf(options: ScopeOptions | undefined): string | undefined {
  if (options !== undefined && (typeof options !== "object" || options === null)) invalid(TypeError, "options", "an object", options);
  const scope = options?.scope;
  if (scope !== undefined && typeof scope !== "string") invalid(TypeError, "scope", "a string", scope);
  return scope;
}

/** Checks the key list and maps each key to its index. Messages name indices only. */
function indexKeys(keys: readonly string[]): Map<string, number> {
  if (!Array.isArray(keys)) invalid(TypeError, "keys", "an array of strings", keys);
  if (keys.length === 0) throw new TypeError("CredentialRouter requires at least one key");
  const indexOf = new Map<string, number>();
  // Index loops, not forEach: a hole in a sparse array must be seen, not skipped.
  for (let index = 0; index < keys.length; index++) {
    const key: unknown = keys[index];
    if (typeof key !== "string" || key === "") invalid(TypeError, `keys[${index}]`, "a non-empty string", key);
    // A lone surrogate has no UTF-8 form: two such keys would share a fingerprint.
    if (/\p{Cs}/u.test(key)) invalid(TypeError, `keys[${index}]`, "well-formed UTF-16 (no lone surrogate)", "a string with one");
    const first = indexOf.get(key);
    if (first !== undefined) throw new TypeError(`keys[${index}] duplicates keys[${first}]`);
    indexOf.set(key, index);
  }
  return indexOf;
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
 * Providers limit each key per model: pass a scope (the model) to route and mark per model, and
 * `groups` for keys that share one quota.
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
 * if (response.status === 429) router.markErrorWithDelay(key, 20_000, { reason: "rate_limit" });
 * else if (response.status === 401) router.markBlocked(key, { reason: "auth" });
 * ```
 */
export class CredentialRouter {
  readonly #keys: readonly string[];
  readonly #indexOf: Map<string, number>;
  /** The checked options, defaults filled in. */
  readonly #options: ResolvedOptions;
  readonly #now: () => number;
  readonly #events = new Emitter<RouterEvent>();
  /** The key-wide states, and a picker over the keys ready key-wide. */
  readonly #all: Layer;
  /** The scopes in which some key is out, by name, in the order they opened. */
  readonly #scopes = new Map<string, Layer>();
  /**
   * The same scopes, for the pick's lookup: V8 finds a name in a prototype-less object faster than
   * in a `Map` (about 6 ns of the scoped pick's 105 in `npm run bench`). The `Map` keeps the order.
   */
  readonly #byName: Record<string, Layer | undefined> = Object.create(null);
  readonly #newPicker: () => Picker;
  /** The key-wide picker when the strategy is round-robin, for `nextKey`'s fast path. */
  readonly #roundRobin: RoundRobin | undefined;
  /** Consecutive failed cooldown windows of each key. */
  readonly #failures: Uint32Array;
  /**
   * How many doublings of `cooldownMs` reach `maxCooldownMs`: a longer run of failures doubles no
   * further, and a mark stays clear of `2 ** n` for a large n, which costs V8 about as much as the
   * rest of the mark. At most 1,024, where `2 ** n` is `Infinity` and the delay `maxCooldownMs` (only
   * a `cooldownMs` more than 2^1023 times below `maxCooldownMs` gets there early).
   */
  readonly #doublings: number;
  /** Consecutive service faults of each key (see `serverFaultThreshold`). */
  readonly #faults: Uint32Array;
  /** Counts scope uses, to find the least recently used. */
  #tick = 0;
  /** For each key of a group of two or more, the group's keys. */
  readonly #members: (readonly number[] | undefined)[] = [];
  /** Reason names by code, and back. */
  readonly #reasonNames: string[] = [...REASONS];
  readonly #reasonCodes = new Map(REASONS.map((name, code) => [name, code]));
  #picks = 0;
  /** Each key's masked hint, made the first time it is needed. */
  readonly #hints: string[] = [];
  /** SHA-256 of each key, computed the first time saved state needs them. */
  #fingerprints: readonly string[] | undefined;
  #indexOfFingerprint: Map<string, number> | undefined;
  #host: ExecuteHost | undefined;

  /**
   * @param keys - The API keys, at least one, each a non-empty, well-formed string, no duplicates.
   *   The router keeps its own copy.
   * @param options - See {@link CredentialRouterOptions}.
   * @throws TypeError when `keys` is not such a list (the message names the index, never the key),
   *   or an option is of the wrong kind.
   * @throws RangeError when a numeric option is out of range.
   */
  constructor(keys: readonly string[], options?: CredentialRouterOptions) {
    this.#indexOf = indexKeys(keys);
    // A private copy, not frozen: V8 reads elements of a frozen array markedly slower, on the hot path.
    this.#keys = [...keys];
    const size = this.#keys.length;
    const resolved = resolveOptions(options, size);
    this.#options = resolved;
    this.#now = resolved.now;
    this.#newPicker = pickerFactory(resolved.strategy, size);
    this.#all = new Layer(undefined, size, this.#newPicker(), size, 0);
    this.#roundRobin = this.#all.picker instanceof RoundRobin ? this.#all.picker : undefined;
    this.#failures = new Uint32Array(size);
    this.#faults = new Uint32Array(size);
    const { cooldownMs, maxCooldownMs } = resolved;
    let doublings = 0;
    while (cooldownMs > 0 && cooldownMs * 2 ** doublings < maxCooldownMs) doublings++;
    this.#doublings = doublings;
    const groups = new Map<string, number[]>();
    resolved.groups?.forEach((group, index) => {
      if (group === undefined) return;
      const members = groups.get(group) ?? [];
      groups.set(group, members);
      members.push(index);
      if (members.length > 1) for (const member of members) this.#members[member] = members;
    });
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

  /** How many keys the router has handed out (by `nextKey` and `execute`'s attempts), for metrics. */
  get picks(): number {
    return this.#picks;
  }

  /**
   * The next ready key by the strategy, or `undefined` when every key is cooling, blocked or
   * disabled (then `nextReadyInMs()` says how long until one is back).
   * @param scope - Route in this scope (a model, say): a key ready both key-wide and in the scope,
   *   chosen by the scope's own position in the strategy.
   */
  nextKey(scope?: string): string | undefined {
    if (scope !== undefined) return this.#nextIn(scope);
    // The hot path, kept apart from execute's picks that pass over tried keys. Round-robin with every
    // key ready is the cursor itself, without a call.
    const rr = this.#roundRobin;
    if (rr !== undefined && rr.count === rr.size) {
      const index = rr.cursor;
      rr.cursor = index + 1 === rr.size ? 0 : index + 1;
      this.#picks++;
      return this.#keys[index];
    }
    // While keys cool, a pick costs one clock read and a look at the earliest deadline; #expire runs
    // only when one ended.
    const all = this.#all;
    const earliest = all.earliest;
    if (earliest !== Infinity) {
      const now = this.#now();
      if (earliest <= now) this.#expire(all, now);
    }
    const index = all.picker.pick();
    if (index < 0) return this.#exhausted(undefined, all);
    this.#picks++;
    return this.#keys[index];
  }

  /**
   * Cools the key down for the default time: `cooldownMs`, doubled for each consecutive failed
   * window up to `maxCooldownMs`. A mark while the key is already cooling opens no new window (and
   * does not escalate); a longer cooldown already running is kept, and a blocked or disabled key
   * stays so.
   * @param options - `reason`, `scope` and `group`: see {@link CooldownOptions}.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   * @throws TypeError when an option is of the wrong kind.
   */
  markError(key: string, options?: CooldownOptions): boolean {
    return this.#mark(key, COOLDOWN, undefined, options);
  }

  /**
   * Cools the key down for `delayMs` milliseconds, such as a server's `Retry-After`; delays over
   * `maxRetryAfterMs` are cut to it. A longer cooldown already running is kept, and a blocked or
   * disabled key stays so.
   * @param options - `reason`, `scope` and `group`: see {@link CooldownOptions}.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   * @throws RangeError when `delayMs` is not a finite number `>= 0`.
   */
  markErrorWithDelay(key: string, delayMs: number, options?: CooldownOptions): boolean {
    checkDuration("delayMs", delayMs);
    return this.#mark(key, COOLDOWN, Math.min(delayMs, this.#options.maxRetryAfterMs), options);
  }

  /**
   * Takes the key out of rotation after a hard failure (401, 403) until `clearCooldown`. A disabled
   * key stays disabled.
   * @param options - `reason` and `scope`: see {@link MarkOptions}.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   */
  markBlocked(key: string, options?: MarkOptions): boolean {
    return this.#mark(key, BLOCKED, undefined, options);
  }

  /**
   * Takes the key out of rotation on purpose until `clearCooldown`.
   * @param options - `reason` and `scope`: see {@link MarkOptions}.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   */
  markDisabled(key: string, options?: MarkOptions): boolean {
    return this.#mark(key, DISABLED, undefined, options);
  }

  /**
   * Records that a request with the key succeeded: its run of failures (and of service faults)
   * ends, so its next default cooldown starts again from `cooldownMs`. Its state does not change (a
   * success of a request sent before a 429 does not end that 429's cooldown).
   * @returns `true` for a known key, `false` for an unknown one.
   */
  markSuccess(key: string): boolean {
    const index = this.#indexOf.get(key);
    if (index === undefined) return false;
    this.#failures[index] = this.#faults[index] = 0;
    return true;
  }

  /**
   * Makes the key ready again: without a scope, key-wide and in every scope, and its run of failures
   * ends; with one, in that scope only. This is the only call that lowers a key's state.
   * @returns `true` for a known key, `false` (and no change) for an unknown one.
   */
  clearCooldown(key: string, options?: ScopeOptions): boolean {
    const name = scopeOf(options);
    const index = this.#indexOf.get(key);
    if (index === undefined) return false;
    if (name === undefined) this.#failures[index] = this.#faults[index] = 0;
    for (const layer of name === undefined ? this.#layers() : [this.#scopes.get(name)]) {
      if (layer !== undefined && layer.status[index] !== READY) this.#set(layer, index, READY, 0);
    }
    return true;
  }

  /**
   * The key's state now, or `undefined` for an unknown key.
   * @param scope - The state `nextKey(scope)` sees: the more severe of the key-wide state and the
   *   state in the scope (of two cooldowns, the longer).
   */
  stateOf(key: string, scope?: string): KeyState | undefined {
    const layer = this.#layer(scope);
    const index = this.#indexOf.get(key);
    if (index === undefined) return undefined;
    const now = this.#settle(layer);
    const all = this.#all;
    const status = layer.status[index]!;
    // The more severe; of two cooldowns, the longer.
    const severer = status > all.status[index]! || (status === COOLDOWN && all.status[index] === COOLDOWN && layer.deadline(index) > all.deadline(index));
    return stateIn(severer ? layer : all, index, now);
  }

  /**
   * How long until `nextKey()` can return a key: `0` when one is ready now, else the milliseconds
   * until the earliest cooldown ends, or `undefined` when every key is blocked or disabled.
   * @param scope - For `nextKey(scope)`: until a key is ready both key-wide and in the scope.
   */
  nextReadyInMs(scope?: string): number | undefined {
    const layer = this.#layer(scope);
    const now = this.#settle(layer);
    return layer.ready !== 0 ? 0 : this.#waitMs(layer, now);
  }

  /**
   * Listens to what happens to the keys (see {@link RouterEvent}). Events carry the key's index,
   * masked hint and label, never the key. A listener that throws does not disturb routing; its
   * error is dropped.
   * @returns A function that unsubscribes; safe to call at any time, also from inside a listener.
   * @example
   * ```ts
   * const stop = router.subscribe((event) => {
   *   if (event.type === "blocked") console.warn(`key ${event.hint} was rejected (${event.reason}); rotate it`);
   * });
   * ```
   */
  subscribe(listener: RouterListener): () => void {
    return this.#events.subscribe(listener);
  }

  /**
   * Every key's state, by index, for dashboards and health checks: key-wide, and in each scope
   * where the key is out. Contains no key.
   */
  snapshot(): ReadonlyArray<KeySnapshot> {
    const now = this.#settleAll();
    const ids = this.#fingerprintList();
    const { groups } = this.#options;
    const all = this.#all;
    const rows = this.#keys.map((_, index) => {
      const row = this.#ref(index, { id: ids[index]!, state: stateIn(all, index, now), failures: this.#failures[index]!, scopes: [] }) as KeySnapshot;
      if (all.status[index] !== READY) row.reason = this.#reasonNames[all.reason[index]!]!;
      const group = groups?.[index];
      if (group !== undefined) row.group = group;
      return row;
    });
    for (const layer of this.#scopes.values()) {
      layer.status.forEach((status, index) => {
        if (status !== READY) rows[index]!.scopes.push({ scope: layer.name!, state: stateIn(layer, index, now), reason: this.#reasonNames[layer.reason[index]!]! });
      });
    }
    return rows;
  }

  /**
   * The keys' states as a JSON-safe value to persist and pass back as the `initialState` option,
   * such as across a restart: key-wide, and in each scope. Keys are named by SHA-256 fingerprint,
   * never by text; cooldown deadlines are wall-clock times (`Date.now()`), so the remaining time
   * survives the restart.
   */
  exportState(): SavedState {
    const now = this.#settleAll();
    const wallNow = Date.now();
    const keys: SavedKeyState[] = [];
    for (const layer of this.#layers()) {
      layer.status.forEach((status, index) => {
        const failures = layer === this.#all ? this.#failures[index]! : 0;
        if (status === READY && failures === 0) return;
        const saved: SavedKeyState = { id: this.#fingerprintAt(index), status: STATUS_NAMES[status]! };
        if (status === COOLDOWN) saved.until = wallNow + (layer.deadline(index) - now);
        if (status !== READY) saved.reason = this.#reasonNames[layer.reason[index]!]!;
        if (failures !== 0) saved.failures = failures;
        if (layer.name !== undefined) saved.scope = layer.name;
        keys.push(saved);
      });
    }
    return { version: this.#scopes.size === 0 ? 1 : 2, savedAt: wallNow, keys };
  }

  /**
   * Sets the keys listed in `state` (from `exportState()`, another instance or a shared store) to
   * exactly the states given, key-wide or in a scope, and tells the listeners. Unlike the marks, this
   * may lower a state: it is how a state decided elsewhere (an admin's `clearCooldown` on another
   * instance) arrives here. Entries for keys this router does not hold are ignored; cooldowns that
   * have ended make the key ready. An entry's `failures`, when given, replaces the key's own; without
   * it the key keeps its own count (a key-wide entry that makes a key ready without `failures` still
   * ends its run, as `clearCooldown` does). All or nothing: a bad entry anywhere throws before any
   * is applied.
   * @throws TypeError when `state` is not shaped like {@link SavedState}.
   * @throws RangeError when it names more distinct reasons than a router holds (256).
   */
  importState(state: SavedState): void {
    const entries = checkSavedState(state, "state");
    const reasons = entries.map(({ reason }) => this.#reasonCode(reason, "state.keys[].reason"));
    const indexOf = this.#fingerprintIndex();
    const now = this.#now();
    const wallNow = Date.now();
    entries.forEach(({ id, status, until = 0, failures, scope }, at) => {
      const index = indexOf.get(id);
      if (index === undefined) return;
      const deadline = now + (until - wallNow);
      const code = status === "cooldown" && deadline <= now ? READY : STATUS_NAMES.indexOf(status);
      // A key-wide entry's count, or the end of the run for a ready key.
      if (scope === undefined && (failures !== undefined || status === "ready")) this.#failures[index] = failures ?? 0;
      const layer = code === READY ? this.#layer(scope) : this.#scope(scope, now);
      if ((layer !== this.#all || scope === undefined) && (code !== layer.status[index] || (code === COOLDOWN && deadline !== layer.deadline(index)))) {
        this.#set(layer, index, code, now, deadline, reasons[at]);
      }
    });
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
      pick: (tried, scope) => {
        let index = this.#pickExcept(tried, scope);
        if (index < 0 && this.#events.active) {
          this.#exhausted(scope, this.#layer(scope));
          // Listeners told that no key is ready may have made one ready: look once more.
          index = this.#pickExcept(tried, scope);
        }
        if (index >= 0) this.#picks++;
        return index;
      },
      waitMs: (tried, scope) => this.#waitMs(this.#layer(scope), this.#now(), tried),
      keys: this.#keys,
      success: (index) => void (this.#failures[index] = this.#faults[index] = 0),
      ref: (index, fields) => this.#ref(index, fields),
      fault: (index) => {
        if (++this.#faults[index]! < this.#options.serverFaultThreshold) return false;
        this.#faults[index] = 0;
        return true;
      },
      options: this.#options,
    };
    return execute(this, this.#host, fn, options);
  }

  /** `nextKey(scope)`. */
  #nextIn(name: string): string | undefined {
    const index = this.#pickExcept(undefined, name);
    if (index < 0) return this.#exhausted(name, this.#layer(name));
    this.#picks++;
    return this.#keys[index];
  }

  /** The next ready key's index by the strategy that is not in `tried`, in the scope, or -1. */
  #pickExcept(tried: ReadonlySet<number> | undefined, name: string | undefined): number {
    const layer = this.#layer(name);
    this.#settle(layer);
    const { picker } = layer.dropped ? this.#all : layer;
    let index = picker.pick();
    if (tried === undefined || index < 0 || !tried.has(index)) return index;
    // Pass over the tried keys the strategy offers, hiding each for the rest of this pick only: the
    // cost is the number of tried keys met, not of keys tried (round-robin's cursor has usually
    // moved past them already).
    const hidden: number[] = [];
    do {
      picker.delete(index);
      hidden.push(index);
    } while ((index = picker.pick()) >= 0 && tried.has(index));
    for (const other of hidden) picker.add(other, false);
    return index;
  }

  /**
   * Tells the listeners, when no key at all is ready (in the scope), how long until one is. Returns
   * `undefined`, for the pick that found none.
   */
  #exhausted(name: string | undefined, layer: Layer): undefined {
    if (layer.ready !== 0 || !this.#events.active) return undefined;
    // Read the deadlines without expiring anything: the pick that found no key stands, and telling
    // the listeners must not make a key ready under it.
    const retryAfterMs = this.#waitMs(layer, this.#all.earliest < Infinity || layer.earliest < Infinity ? this.#now() : 0);
    this.#events.emit(name === undefined ? { type: "exhausted", retryAfterMs } : { type: "exhausted", retryAfterMs, scope: name });
    return undefined;
  }

  /**
   * Milliseconds until a key that is not in `tried` is ready (both key-wide and in the scope), or
   * `undefined` when none will be by itself. In a scope, a scan of every key, which runs only when
   * no key is ready there, and once per change: the answer is kept until the scope or the key-wide
   * layer changes (a service that keeps asking an exhausted scope pays for one scan).
   */
  #waitMs(layer: Layer, now: number, tried: ReadonlySet<number> = NONE): number | undefined {
    const all = this.#all;
    let earliest = Infinity;
    if (layer === all) {
      const index = all.until.argminExcept(tried);
      if (index >= 0) earliest = all.deadline(index);
    } else {
      // Both layers' counts of changes only grow, so their sum names one state of the two. Only the
      // answer for every key is kept: a call's tried keys ask another question.
      const version = all.changes + layer.changes;
      const forEveryKey = tried.size === 0;
      if (forEveryKey && layer.scanned === version) {
        earliest = layer.soonest;
      } else {
        for (let index = 0; index < this.#keys.length; index++) {
          if (!tried.has(index)) earliest = Math.min(earliest, Math.max(readyAt(all, index), readyAt(layer, index)));
        }
        if (forEveryKey) {
          layer.scanned = version;
          layer.soonest = earliest;
        }
      }
    }
    return earliest === Infinity ? undefined : Math.max(0, earliest - now);
  }

  /**
   * The layer of a scope name: the key-wide one for no name, or a scope that holds no state (which
   * routes as the key-wide one), else the live scope, marked as used.
   */
  #layer(name: string | undefined): Layer {
    if (name === undefined) return this.#all;
    if (typeof name !== "string") invalid(TypeError, "scope", "a string", name);
    const layer = this.#byName[name];
    if (layer === undefined) return this.#all;
    layer.used = ++this.#tick;
    return layer;
  }

  /** The layer of a scope name, made when the scope holds no state yet (at `now`, or the clock's time for 0). */
  #scope(name: string | undefined, now: number): Layer {
    const layer = this.#layer(name);
    return layer === this.#all && name !== undefined ? this.#open(name, now || this.#now()) : layer;
  }

  /** Makes a scope for `name`, dropping the one used least recently when there are `maxScopes`. */
  #open(name: string, now: number): Layer {
    if (this.#scopes.size >= this.#options.maxScopes) {
      let oldest: Layer | undefined;
      for (const layer of this.#scopes.values()) if (oldest === undefined || layer.used < oldest.used) oldest = layer;
      this.#drop(oldest!);
    }
    const all = this.#all;
    const picker = this.#newPicker();
    all.status.forEach((status, index) => status !== READY && picker.delete(index));
    const layer = new Layer(name, this.#keys.length, picker, all.ready, now);
    layer.used = ++this.#tick;
    this.#scopes.set(name, layer);
    this.#byName[name] = layer;
    return layer;
  }

  /** Expires what has ended key-wide and in `layer`; returns the time it read (0 when it needed none). */
  #settle(layer: Layer): number {
    const all = this.#all;
    const wide = all.earliest;
    const own = layer.earliest;
    if (wide === Infinity && own === Infinity) return 0;
    const now = this.#now();
    if (wide <= now) this.#expire(all, now);
    // Expiry may have run listeners that dropped the scope: expire it only if it is still live.
    if (own <= now && !layer.dropped) this.#expire(layer, now);
    return now;
  }

  /** Forgets a scope: its keys are all ready again, or it is the least recently used of too many. */
  #drop(layer: Layer): void {
    this.#scopes.delete(layer.name!);
    delete this.#byName[layer.name!];
    layer.dropped = true;
  }

  /** The key-wide layer and every live scope. */
  #layers(): Layer[] {
    return [this.#all, ...this.#scopes.values()];
  }

  /** Expires everything that has ended, key-wide and in every scope. */
  #settleAll(): number {
    const layers = this.#layers();
    // The clock is read only when some key cools.
    const now = layers.some((layer) => layer.earliest < Infinity) ? this.#now() : 0;
    for (const layer of layers) this.#expire(layer, now);
    return now;
  }

  /** Makes every key of `layer` whose cooldown has ended ready, earliest first. */
  #expire(layer: Layer, now: number): void {
    while (layer.earliest <= now) this.#set(layer, layer.until.argmin(), READY, now, 0, 0, "expired");
  }

  /**
   * Puts the key in `status` in `layer` (until `until`, for a cooldown) and tells the listeners: the
   * one place a key's state changes, so the pickers, the deadlines and the counts always agree. A
   * scope whose keys are all ready again is dropped.
   */
  #set(layer: Layer, index: number, status: number, now: number, until = 0, reason = 0, why: "cleared" | "expired" = "cleared"): void {
    const before = layer.status[index]!;
    const all = this.#all;
    layer.changes++;
    layer.status[index] = status;
    layer.reason[index] = reason;
    if ((before === READY) !== (status === READY)) {
      const ready = status === READY;
      layer.out += ready ? -1 : 1;
      if (layer === all) {
        admit(all, index, ready);
        // The scopes' pickers hold the keys ready both there and key-wide.
        for (const scope of this.#scopes.values()) if (scope.status[index] === READY) admit(scope, index, ready);
      } else {
        if (all.status[index] === READY) admit(layer, index, ready);
        if (layer.out === 0) this.#drop(layer);
      }
    }
    layer.setUntil(index, status === COOLDOWN ? until : undefined, now);
    if (this.#events.active) {
      const fields =
        status === READY
          ? { type: "ready", reason: why }
          : { type: STATUS_NAMES[status], reason: this.#reasonNames[reason], ...(status === COOLDOWN && { delayMs: layer.deadline(index) - now }) };
      const event = this.#ref(index, fields) as RouterEvent;
      if (layer.name !== undefined) event.scope = layer.name;
      this.#events.emit(event);
    }
  }

  /** The code of a reason, made the first time the reason is seen; 0 (`"manual"`) for `undefined`. */
  #reasonCode(reason: unknown, name: string): number {
    if (reason === undefined) return 0;
    if (typeof reason !== "string") invalid(TypeError, name, "a string", reason);
    let code = this.#reasonCodes.get(reason);
    if (code === undefined) {
      if (this.#reasonNames.length === MAX_REASONS) invalid(RangeError, name, `one of at most ${MAX_REASONS} distinct reasons`, "another");
      this.#reasonCodes.set(reason, (code = this.#reasonNames.push(reason) - 1));
    }
    return code;
  }

  /**
   * The marks: raises the key to `status` or, for `COOLDOWN`, cools it down for `delayMs` (its
   * escalating default when `undefined`), spreading to its group when the options say so. Bad
   * options throw before anything changes.
   */
  #mark(key: string, status: number, delayMs: number | undefined, options: CooldownOptions | undefined): boolean {
    const scope = scopeOf(options);
    const reason = this.#reasonCode(options?.reason, "reason");
    const group = options?.group;
    if (group !== undefined && typeof group !== "boolean") invalid(TypeError, "group", "a boolean", group);
    const index = this.#indexOf.get(key);
    if (index === undefined) return false;
    // A window that has run out is over: a cooldown opens a new one rather than extending it. Expiry
    // comes first, as its events may run listeners that mark this very key (or drop the scope).
    let now = this.#settle(this.#layer(scope));
    const layer = this.#scope(scope, now);
    if (status !== COOLDOWN) {
      if (layer.status[index]! < status) this.#set(layer, index, status, now, 0, reason);
      return true;
    }
    now ||= this.#now();
    if (layer.status[index] === READY) this.#failures[index]!++;
    // At least one window: a success while this one runs ends the run, not this cooldown.
    const { cooldownMs, maxCooldownMs } = this.#options;
    const doublings = Math.min(Math.max(this.#failures[index]!, 1) - 1, this.#doublings);
    delayMs ??= Math.min(cooldownMs * (doublings < 31 ? 1 << doublings : 2 ** doublings), maxCooldownMs);
    const until = now + delayMs;
    const spread = group ?? (reason === RATE_LIMIT || reason === QUOTA);
    // The key alone, or its whole group: by count, as a one-key array on every mark costs an allocation.
    const members = (spread && this.#members[index]) || undefined;
    for (let at = 0, count = members?.length ?? 1; at < count; at++) {
      const member = members === undefined ? index : members[at]!;
      const before = layer.status[member];
      if (before === READY || (before === COOLDOWN && until > layer.deadline(member))) this.#set(layer, member, COOLDOWN, now, until, reason);
    }
    return true;
  }

  /**
   * Adds which key it is (index, hint, label) to `fields`. Adding to the object, rather than
   * spreading one into another, keeps event building cheap on the engines we measured.
   */
  #ref<T extends object>(index: number, fields: T): T & KeyRef {
    const ref = fields as T & KeyRef;
    ref.index = index;
    ref.hint = this.#hints[index] ??= maskKey(this.#keys[index]!, index);
    const { labels } = this.#options;
    if (labels) ref.label = labels[index]!;
    return ref;
  }

  #fingerprintAt(index: number): string {
    return this.#fingerprints?.[index] ?? fingerprint(this.#keys[index]!);
  }

  #fingerprintList(): readonly string[] {
    return (this.#fingerprints ??= this.#keys.map(fingerprint));
  }

  #fingerprintIndex(): Map<string, number> {
    return (this.#indexOfFingerprint ??= new Map(this.#fingerprintList().map((id, index) => [id, index])));
  }
}
