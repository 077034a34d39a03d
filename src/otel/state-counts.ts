import type { KeySnapshot, KeyStatus } from "credential-router";

/** The key states, in severity order: a state's position is its severity. @internal */
export const STATES: readonly KeyStatus[] = ["ready", "cooldown", "blocked", "disabled"];

const SEVERITY: Readonly<Record<KeyStatus, 0 | 1 | 2 | 3>> = { ready: 0, cooldown: 1, blocked: 2, disabled: 3 };

/** How many keys are in each state, indexed like {@link STATES}. @internal */
export type Counts = [ready: number, cooldown: number, blocked: number, disabled: number];

/**
 * The number of keys in each state, key-wide and in each scope, from one `snapshot()`.
 *
 * A key's state in a scope is what `nextKey(scope)` sees: the more severe of its key-wide state and
 * its state in the scope alone, so that a scope's `ready` count is the keys `nextKey(scope)` can
 * hand out, and its four counts add up to the number of keys.
 *
 * Every scope seen once is counted at every later call, also after the router has let it go (its
 * keys all back, or the least recently used dropped): the scope then routes as key-wide, and its
 * counts are the key-wide ones. A metrics SDK may keep exporting the last value of a series nobody
 * observes any more (the JavaScript SDK does, under cumulative temporality); reporting the scope's
 * true counts keeps that value true.
 * @internal
 */
export class StateCounts {
  /** Every scope seen, in the order first seen. */
  readonly #scopes = new Set<string>();

  /**
   * Counts `rows`: the key-wide counts, then each scope's (every scope ever seen, not only those
   * in `rows`).
   */
  count(rows: ReadonlyArray<KeySnapshot>): { keyWide: Counts; scopes: Map<string, Counts> } {
    const keyWide: Counts = [0, 0, 0, 0];
    for (const row of rows) keyWide[SEVERITY[row.state.status]]++;
    const scopes = new Map<string, Counts>();
    for (const row of rows) {
      if (row.scopes.length === 0) continue;
      const wide = SEVERITY[row.state.status];
      for (const { scope, state } of row.scopes) {
        let counts = scopes.get(scope);
        if (counts === undefined) scopes.set(scope, (counts = [...keyWide]));
        const here = SEVERITY[state.status];
        if (here <= wide) continue;
        counts[wide]--;
        counts[here]++;
      }
    }
    for (const scope of scopes.keys()) this.#scopes.add(scope);
    const all = new Map<string, Counts>();
    for (const scope of this.#scopes) all.set(scope, scopes.get(scope) ?? keyWide);
    return { keyWide, scopes: all };
  }
}
