import type { Attributes, BatchObservableCallback, Meter } from "@opentelemetry/api";
import type { CredentialRouter, RouterEvent } from "credential-router";
import { describe } from "../secret.js";
import { HeldKeys } from "./held-keys.js";
import { STATES, StateCounts, type Counts } from "./state-counts.js";

/** What {@link instrument} reads from a router: a `CredentialRouter`, or anything shaped like one. */
export type InstrumentedRouter = Pick<CredentialRouter, "subscribe" | "snapshot" | "picks">;

/** The methods of an OpenTelemetry `Meter` that {@link instrument} uses. */
export type MeterLike = Pick<
  Meter,
  "createCounter" | "createObservableCounter" | "createObservableGauge" | "addBatchObservableCallback" | "removeBatchObservableCallback"
>;

/** Options of {@link instrument}. */
export interface InstrumentOptions {
  /**
   * The meter that makes the instruments: `metrics.getMeter("credential-router")` from
   * `@opentelemetry/api`, or a `MeterProvider`'s `getMeter(…)`.
   */
  meter: MeterLike;
  /**
   * The prefix of every metric name: give each router its own when one meter watches several.
   * A letter, then up to 199 letters, digits, `_`, `.`, `-` or `/`.
   * @defaultValue `"credential_router"`
   */
  name?: string | undefined;
}

const DEFAULT_NAME = "credential_router";
const NAME = /^[A-Za-z][\w.\-/]{0,199}$/;
const METER_METHODS = ["createCounter", "createObservableCounter", "createObservableGauge", "addBatchObservableCallback", "removeBatchObservableCallback"] as const;

/** The key-wide series of the keys gauge, one attribute set a state, made once. */
const KEY_WIDE: readonly Attributes[] = STATES.map((state) => ({ state }));

/**
 * Reports a router's keys to OpenTelemetry: how many keys are in each state (key-wide and in each
 * scope), which keys are blocked or disabled and why, and counts of picks, marks and exhausted
 * picks. The gauges are read from `router.snapshot()` when the SDK collects; the mark and
 * exhaustion counters count the router's events from now on. No attribute carries a key or its
 * fingerprint: keys are named by index, masked hint and label.
 *
 * With the default `name`:
 *
 * | metric                          | instrument         | unit           | attributes                                             |
 * | ------------------------------- | ------------------ | -------------- | ------------------------------------------------------ |
 * | `credential_router.keys`        | observable gauge   | `{key}`        | `state`, `scope?`                                      |
 * | `credential_router.key.state`   | observable gauge   | `{key}`        | `index`, `hint`, `label?`, `state`, `reason`, `scope?` |
 * | `credential_router.picks`       | observable counter | `{pick}`       |                                                        |
 * | `credential_router.marks`       | counter            | `{mark}`       | `state`, `reason`, `scope?`                            |
 * | `credential_router.exhaustions` | counter            | `{exhaustion}` | `scope?`                                               |
 *
 * See the README's "Watching your keys" for what each means, and their cardinality.
 *
 * @param router - The router to watch.
 * @param options - The meter, and the metric names' prefix (see {@link InstrumentOptions}).
 * @returns A function that stops: it unsubscribes from the router and removes the gauges'
 *   callback. Calling it again does nothing.
 * @throws TypeError when `router` lacks `subscribe`, `snapshot` or `picks`, `meter` lacks a method
 *   this needs, or `name` is not such a prefix.
 * @example
 * ```ts
 * import { metrics } from "@opentelemetry/api";
 * import { instrument } from "credential-router/otel";
 *
 * const stop = instrument(router, { meter: metrics.getMeter("credential-router") });
 * // on shutdown:
 * stop();
 * ```
 */
export function instrument(router: InstrumentedRouter, options: InstrumentOptions): () => void {
  if (typeof router !== "object" || router === null) throw new TypeError(`router must be an object, received ${describe(router)}`);
  for (const method of ["subscribe", "snapshot"] as const) {
    if (typeof router[method] !== "function") throw new TypeError(`router.${method} must be a function, received ${describe(router[method])}`);
  }
  if (typeof router.picks !== "number") throw new TypeError(`router.picks must be a number, received ${describe(router.picks)}`);
  if (typeof options !== "object" || options === null) throw new TypeError(`options must be an object, received ${describe(options)}`);
  const { meter, name = DEFAULT_NAME } = options;
  if (typeof meter !== "object" || meter === null) throw new TypeError(`meter must be an OpenTelemetry Meter, received ${describe(meter)}`);
  for (const method of METER_METHODS) {
    if (typeof meter[method] !== "function") throw new TypeError(`meter.${method} must be a function, received ${describe(meter[method])}`);
  }
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new TypeError(`name must be a letter, then up to 199 letters, digits, _ . - or /, received ${describe(name)}`);
  }

  const keys = meter.createObservableGauge(`${name}.keys`, {
    unit: "{key}",
    description: "Keys by state: key-wide, or with scope as nextKey(scope) sees them (the more severe of the key-wide state and the scope's)",
  });
  const held = meter.createObservableGauge(`${name}.key.state`, {
    unit: "{key}",
    description: "1 while the key is blocked or disabled (key-wide, or in scope) for reason, 0 once it is back; only such keys have a series",
  });
  const picks = meter.createObservableCounter(`${name}.picks`, { unit: "{pick}", description: "Keys handed out by nextKey and execute" });
  const marks = meter.createCounter(`${name}.marks`, {
    unit: "{mark}",
    description: "Keys that went into cooldown, blocked or disabled (or cooled longer), by state, reason and scope",
  });
  const exhaustions = meter.createCounter(`${name}.exhaustions`, { unit: "{exhaustion}", description: "Picks that found no ready key" });

  const counts = new StateCounts();
  const heldKeys = new HeldKeys();
  /** The keys gauge's attribute sets of each scope, made once. */
  const scoped = new Map<string, readonly Attributes[]>();
  const observables = [keys, held, picks];
  const observe: BatchObservableCallback = (result) => {
    result.observe(picks, router.picks);
    const rows = router.snapshot();
    const { keyWide, scopes } = counts.count(rows);
    const report = (counts: Counts, attributes: readonly Attributes[]): void => counts.forEach((count, state) => result.observe(keys, count, attributes[state]));
    report(keyWide, KEY_WIDE);
    for (const [scope, scopeCounts] of scopes) {
      let attributes = scoped.get(scope);
      if (attributes === undefined) scoped.set(scope, (attributes = STATES.map((state) => ({ state, scope }))));
      report(scopeCounts, attributes);
    }
    for (const { attributes, value } of heldKeys.update(rows)) result.observe(held, value, attributes);
  };
  exhaustions.add(0);
  const unsubscribe = router.subscribe((event: RouterEvent) => {
    switch (event.type) {
      case "cooldown":
      case "blocked":
      case "disabled":
        marks.add(1, withScope({ state: event.type, reason: event.reason }, event.scope));
        break;
      case "exhausted":
        exhaustions.add(1, withScope({}, event.scope));
        break;
      case "ready":
        break;
      default: {
        const unreachable: never = event;
        return unreachable;
      }
    }
  });
  meter.addBatchObservableCallback(observe, observables);

  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    unsubscribe();
    meter.removeBatchObservableCallback(observe, observables);
  };
}

function withScope(attributes: Attributes, scope: string | undefined): Attributes {
  if (scope !== undefined) attributes["scope"] = scope;
  return attributes;
}
