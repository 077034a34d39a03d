/**
 * What the gateway counts as it works, for its dashboard and the demo: for each key, what the upstream
 * answered it; for each second of the last minutes, how many requests the gateway answered and how
 * many 429s the upstream sent; and how many requests had to wait for a key. Keys are counted by index,
 * never named.
 */

/** What the upstream answered one key. */
export interface KeyCounts {
  /** Attempts answered with a success (status below 400). */
  served: number;
  /** Attempts answered 429. */
  rateLimited: number;
  /** Attempts answered 401 or 403. */
  rejected: number;
  /** Attempts answered 5xx, or that failed without an answer (timeout, network error). */
  failed: number;
}

/** Totals since the gateway started. */
export interface GatewayTotals {
  /** Requests the gateway answered (any status, its own 503s included; not those whose client left). */
  requests: number;
  /** Of these, requests that waited 10 ms or more for a cooling key (before an attempt, or before a 503). */
  waited: number;
  /** Of these, requests answered 500 or above (the gateway's 502/503/504 and the upstream's 5xx). */
  failed: number;
  /** Attempts the upstream answered 429, over all keys. */
  rateLimited: number;
}

/** The per-second counts of the last minutes, oldest first, ending with the second under way. */
export interface GatewaySeries {
  /** The epoch second of the last entry (the one under way). */
  end: number;
  /** Requests answered in each second. */
  requests: number[];
  /** 429s from the upstream in each second. */
  rateLimited: number[];
}

/** Options of {@link GatewayStats}. */
export interface GatewayStatsOptions {
  /**
   * How many seconds of per-second counts are kept.
   * @defaultValue `300` (5 minutes)
   */
  historySeconds?: number;
  /**
   * The wall clock, in epoch milliseconds: it places counts in seconds.
   * @defaultValue `Date.now`
   */
  now?: () => number;
}

/** The gateway's counters. Each record is a few array writes: it runs for every request. */
export class GatewayStats {
  readonly #served: Uint32Array;
  readonly #rateLimited: Uint32Array;
  readonly #rejected: Uint32Array;
  readonly #failed: Uint32Array;
  readonly #totals: GatewayTotals = { requests: 0, waited: 0, failed: 0, rateLimited: 0 };
  readonly #now: () => number;
  // Ring buffers of per-second counts; #second is the epoch second at #slot.
  readonly #requestsPerSecond: Uint32Array;
  readonly #rateLimitedPerSecond: Uint32Array;
  #second: number;
  #slot = 0;

  /** @param size - How many keys the gateway has. */
  constructor(size: number, options: GatewayStatsOptions = {}) {
    const { historySeconds = 300, now = Date.now } = options;
    if (!(Number.isInteger(size) && size >= 0)) throw new RangeError(`size must be an integer >= 0, received ${size}`);
    if (!(Number.isInteger(historySeconds) && historySeconds > 0)) throw new RangeError(`historySeconds must be a positive integer, received ${historySeconds}`);
    this.#served = new Uint32Array(size);
    this.#rateLimited = new Uint32Array(size);
    this.#rejected = new Uint32Array(size);
    this.#failed = new Uint32Array(size);
    this.#requestsPerSecond = new Uint32Array(historySeconds);
    this.#rateLimitedPerSecond = new Uint32Array(historySeconds);
    this.#now = now;
    this.#second = Math.floor(now() / 1_000);
  }

  /** How many keys are counted. */
  get size(): number {
    return this.#served.length;
  }

  /**
   * An attempt of the key at `index` ended: the upstream answered `status`, or `0` for no answer
   * (a timeout, a network error).
   */
  attempt(index: number, status: number): void {
    if (!(index >= 0 && index < this.#served.length)) return;
    if (status > 0 && status < 400) this.#served[index]!++;
    else if (status === 429) {
      this.#rateLimited[index]!++;
      this.#totals.rateLimited++;
      this.#rateLimitedPerSecond[this.#advance()]!++;
    } else if (status === 401 || status === 403) this.#rejected[index]!++;
    else if (status === 0 || status >= 500) this.#failed[index]!++;
  }

  /** The gateway answered a request `status`; `waited` when it had to wait for a key first. */
  request(status: number, waited: boolean): void {
    this.#totals.requests++;
    if (waited) this.#totals.waited++;
    if (status >= 500) this.#totals.failed++;
    this.#requestsPerSecond[this.#advance()]!++;
  }

  /** What the upstream answered the key at `index` (zeros for an index out of range). */
  key(index: number): KeyCounts {
    return {
      served: this.#served[index] ?? 0,
      rateLimited: this.#rateLimited[index] ?? 0,
      rejected: this.#rejected[index] ?? 0,
      failed: this.#failed[index] ?? 0,
    };
  }

  /** A copy of the totals. */
  totals(): GatewayTotals {
    return { ...this.#totals };
  }

  /** The per-second counts of the last `historySeconds`, up to now. */
  series(): GatewaySeries {
    const slot = this.#advance();
    const length = this.#requestsPerSecond.length;
    const requests: number[] = [];
    const rateLimited: number[] = [];
    for (let offset = 1; offset <= length; offset++) {
      const at = (slot + offset) % length;
      requests.push(this.#requestsPerSecond[at]!);
      rateLimited.push(this.#rateLimitedPerSecond[at]!);
    }
    return { end: this.#second, requests, rateLimited };
  }

  /** The slot of the current second, once the seconds since the last record are zeroed. */
  #advance(): number {
    const second = Math.floor(this.#now() / 1_000);
    if (second <= this.#second) return this.#slot;
    const length = this.#requestsPerSecond.length;
    const steps = Math.min(second - this.#second, length);
    for (let step = 1; step <= steps; step++) {
      const at = (this.#slot + step) % length;
      this.#requestsPerSecond[at] = 0;
      this.#rateLimitedPerSecond[at] = 0;
    }
    this.#slot = (this.#slot + steps) % length;
    this.#second = second;
    return this.#slot;
  }
}
