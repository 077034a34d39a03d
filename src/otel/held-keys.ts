import type { Attributes } from "@opentelemetry/api";
import type { KeySnapshot, KeyStatus } from "credential-router";

/** One per-key series: its attributes, and its value at the last {@link HeldKeys.update}. */
interface Series {
  readonly attributes: Attributes;
  value: 0 | 1;
}

/**
 * The per-key series of the keys that wait for someone: blocked or disabled, key-wide or in a
 * scope. Each series is one key in one state for one reason, in one scope or key-wide; its value
 * is 1 while the key is so and 0 after. Attributes name the key by index, masked hint and label,
 * never by the key (nor by its fingerprint, which would let whoever reads the metrics test a
 * guessed key).
 *
 * Cooling keys get no series of their own: cooldowns come and go by the second on a busy router,
 * and since a metrics SDK may export every series it was ever given (see `StateCounts`), they would
 * leave a series for nearly every key. Blocked and disabled keys are few and stay until an operator
 * acts. A series, once made, is reported at every update (0 once the key is back), so that its last
 * value is never a stale 1.
 * @internal
 */
export class HeldKeys {
  /** Every series made, by an unambiguous text of its attributes. */
  readonly #series = new Map<string, Series>();

  /** Sets each series to what `rows` say, and returns them all. */
  update(rows: ReadonlyArray<KeySnapshot>): Iterable<Series> {
    for (const series of this.#series.values()) series.value = 0;
    for (const row of rows) {
      const { status } = row.state;
      if (status === "blocked" || status === "disabled") this.#hold(row, status, row.reason!, undefined);
      for (const { scope, state, reason } of row.scopes) {
        if (state.status === "blocked" || state.status === "disabled") this.#hold(row, state.status, reason, scope);
      }
    }
    return this.#series.values();
  }

  #hold(row: KeySnapshot, state: KeyStatus, reason: string, scope: string | undefined): void {
    const id = JSON.stringify([row.index, state, reason, scope ?? null]);
    let series = this.#series.get(id);
    if (series === undefined) {
      const attributes: Attributes = { index: row.index, hint: row.hint };
      if (row.label !== undefined) attributes["label"] = row.label;
      attributes["state"] = state;
      attributes["reason"] = reason;
      if (scope !== undefined) attributes["scope"] = scope;
      this.#series.set(id, (series = { attributes, value: 1 }));
    }
    series.value = 1;
  }
}
