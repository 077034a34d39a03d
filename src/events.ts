import type { Reason } from "./key-state.js";
import { invalid } from "./secret.js";

/**
 * Which key an event is about: its position in the key list, its masked hint, and its label when
 * the router was given labels. Never the key itself.
 */
export interface KeyRef {
  /** The key's position in the list given to the router. */
  index: number;
  /** The key masked for logs: `"sk-p…Xy9Z"` for a key of 16 or more characters, else `"#<index>"`. */
  hint: string;
  /** The key's entry in the `labels` option, when there is one. */
  label?: string;
}

/**
 * What the router tells its subscribers. A key event is emitted only when the key's state or
 * deadline actually changes; `scope` is there when the change is in one scope only (see
 * `nextKey(scope)`), and absent for a key-wide one.
 *
 * - `cooldown`: the key cools down (again, or longer); `delayMs` is how long from now.
 * - `blocked`, `disabled`: the key is out until `clearCooldown`.
 * - `ready`: the key is back, because `clearCooldown` was called (`"cleared"`) or its cooldown ran out
 *   (`"expired"`, seen lazily by the next call that looks).
 * - `exhausted`: a pick found no ready key; `retryAfterMs` is `nextReadyInMs()` at that moment.
 *
 * `reason` says why the key is out: the reason of the mark (see {@link Reason}).
 */
export type RouterEvent =
  | (KeyRef & { type: "cooldown"; delayMs: number; reason: Reason; scope?: string })
  | (KeyRef & { type: "blocked"; reason: Reason; scope?: string })
  | (KeyRef & { type: "disabled"; reason: Reason; scope?: string })
  | (KeyRef & { type: "ready"; reason: "cleared" | "expired"; scope?: string })
  | { type: "exhausted"; retryAfterMs: number | undefined; scope?: string };

/** A subscriber to {@link RouterEvent}s. */
export type RouterListener = (event: RouterEvent) => void;

/**
 * A list of listeners. Subscribing and unsubscribing replace the list rather than change it, so an
 * emit in progress walks the list it started with, and a listener may unsubscribe itself or any
 * other safely (one unsubscribed mid-emit is not called). A listener that throws (or, being async,
 * rejects) is skipped over: routing must not fail because a log call did.
 * @internal
 */
export class Emitter<E> {
  #listeners: ReadonlyArray<(event: E) => unknown> = [];
  /** The event being delivered, then those emitted meanwhile. */
  readonly #queue: E[] = [];

  /** Whether anyone listens: events are only built when this is true. */
  get active(): boolean {
    return this.#listeners.length !== 0;
  }

  subscribe(listener: (event: E) => void): () => void {
    if (typeof listener !== "function") invalid(TypeError, "listener", "a function", listener);
    // Each subscription is its own entry, so subscribing one function twice needs two unsubscribes,
    // and an entry unsubscribed during an emit is not called later in that emit.
    let live = true;
    const entry = (event: E): unknown => (live ? listener(event) : undefined);
    this.#listeners = [...this.#listeners, entry];
    return () => {
      live = false;
      this.#listeners = this.#listeners.filter((other) => other !== entry);
    };
  }

  emit(event: E): void {
    // Breadth-first: an event emitted by a listener (a mark made inside a listener) waits until the
    // current one has reached every listener, so that all listeners see events in the order of the
    // changes they report.
    this.#queue.push(event);
    if (this.#queue.length > 1) return;
    for (let next: E | undefined = event; next !== undefined; this.#queue.shift(), next = this.#queue[0]) {
      for (const listener of this.#listeners) {
        try {
          // An async listener throws by rejecting: that, too, must not reach the event loop.
          const result: unknown = listener(next);
          if (typeof (result as PromiseLike<unknown> | null)?.then === "function") {
            (result as PromiseLike<unknown>).then(undefined, ignore);
          }
        } catch {
          // Deliberately dropped: neither the caller of a mark nor the event loop should see it.
        }
      }
    }
  }
}

function ignore(): void {}
