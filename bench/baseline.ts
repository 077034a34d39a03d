/**
 * The baseline: a faithful port of the Rust original's algorithm (byokey-provider's
 * `CredentialRouter`), so the benchmark compares like with like in one run.
 *
 * - `next_key` reads the clock, walks every key to promote expired cooldowns, then scans from a start
 *   index that is pre-incremented on every call (round-robin) or from the front (fill-first).
 * - Marks find the key by a linear search (`keys.iter().position`) and overwrite its state.
 *
 * States are kept in typed arrays rather than objects, which makes the baseline faster, not slower,
 * than a literal port. The strategies the original lacks are written the way a gateway's home-made
 * rotation usually does them: nginx's smooth weighted round-robin (a pass over all keys per pick),
 * priority as "lowest tier first, then round-robin by scanning", random as "collect the ready keys,
 * draw one".
 */
import type { RoutingStrategy } from "credential-router";

const READY = 0;
const COOLDOWN = 1;
const BLOCKED = 2;
const DISABLED = 3;

export class BaselineRouter {
  readonly #keys: string[];
  readonly #status: Uint8Array;
  readonly #until: Float64Array;
  #index = 0;
  readonly #cooldownMs: number;
  readonly #strategy: RoutingStrategy;
  readonly #now: () => number;
  /** Smooth weighted round-robin's running weights. */
  readonly #current: Float64Array;

  constructor(keys: string[], options: { cooldownMs?: number; strategy?: RoutingStrategy; now?: () => number } = {}) {
    if (keys.length === 0) throw new Error("CredentialRouter requires at least one key");
    this.#keys = [...keys];
    this.#status = new Uint8Array(keys.length);
    this.#until = new Float64Array(keys.length);
    this.#cooldownMs = options.cooldownMs ?? 30_000;
    this.#strategy = options.strategy ?? { type: "round-robin" };
    this.#now = options.now ?? (() => performance.now());
    this.#current = new Float64Array(keys.length);
  }

  nextKey(): string | undefined {
    const length = this.#keys.length;
    const now = this.#now();
    const status = this.#status;
    for (let index = 0; index < length; index++) {
      if (status[index] === COOLDOWN && now >= this.#until[index]!) status[index] = READY;
    }
    const strategy = this.#strategy;
    switch (strategy.type) {
      case "round-robin": {
        const start = this.#index++ % length;
        for (let step = 0; step < length; step++) {
          const index = (start + step) % length;
          if (status[index] === READY) return this.#keys[index];
        }
        return undefined;
      }
      case "fill-first": {
        for (let index = 0; index < length; index++) if (status[index] === READY) return this.#keys[index];
        return undefined;
      }
      case "weighted": {
        let total = 0;
        let best = -1;
        for (let index = 0; index < length; index++) {
          if (status[index] !== READY) continue;
          const weight = strategy.weights[index]!;
          this.#current[index]! += weight;
          total += weight;
          if (best === -1 || this.#current[index]! > this.#current[best]!) best = index;
        }
        if (best === -1) return undefined;
        this.#current[best]! -= total;
        return this.#keys[best];
      }
      case "priority": {
        let tier = Infinity;
        for (let index = 0; index < length; index++) {
          if (status[index] === READY && strategy.tiers[index]! < tier) tier = strategy.tiers[index]!;
        }
        if (tier === Infinity) return undefined;
        const start = this.#index++ % length;
        for (let step = 0; step < length; step++) {
          const index = (start + step) % length;
          if (status[index] === READY && strategy.tiers[index] === tier) return this.#keys[index];
        }
        return undefined;
      }
      case "random": {
        const ready: number[] = [];
        for (let index = 0; index < length; index++) if (status[index] === READY) ready.push(index);
        if (ready.length === 0) return undefined;
        return this.#keys[ready[Math.floor((strategy.random ?? Math.random)() * ready.length)]!];
      }
    }
  }

  markError(key: string): void {
    this.markErrorWithDelay(key, this.#cooldownMs);
  }

  markErrorWithDelay(key: string, delayMs: number): void {
    const index = this.#keys.indexOf(key);
    if (index !== -1) {
      this.#status[index] = COOLDOWN;
      this.#until[index] = this.#now() + delayMs;
    }
  }

  markBlocked(key: string): void {
    const index = this.#keys.indexOf(key);
    if (index !== -1) this.#status[index] = BLOCKED;
  }

  markDisabled(key: string): void {
    const index = this.#keys.indexOf(key);
    if (index !== -1) this.#status[index] = DISABLED;
  }

  clearCooldown(key: string): void {
    const index = this.#keys.indexOf(key);
    if (index !== -1) this.#status[index] = READY;
  }
}

/**
 * The retry loop a gateway writes around the original router: take a key, call, on failure cool the
 * key down and take the next.
 */
export async function baselineExecute<T>(
  router: BaselineRouter,
  fn: (key: string) => Promise<T>,
  maxAttempts: number,
): Promise<T> {
  let lastError: unknown = new Error("no key available");
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const key = router.nextKey();
    if (key === undefined) break;
    try {
      return await fn(key);
    } catch (error) {
      lastError = error;
      router.markError(key);
    }
  }
  throw lastError;
}
