/**
 * `credential-router/otel` against the real OpenTelemetry metrics SDK: a `MeterProvider` with a
 * metric reader that the test collects on demand (no export interval, no real clock), and the
 * router's clock moved by hand.
 */
import type { Attributes } from "@opentelemetry/api";
import { readFileSync } from "node:fs";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { DataPointType, MeterProvider, MetricReader, type MetricData, type ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { describe, expect, it } from "vitest";
import { CredentialRouter, type CredentialRouterOptions } from "../src/index.js";
import { instrument, type InstrumentedRouter, type InstrumentOptions } from "../src/otel/index.js";
import { KEY_A, KEY_B, KEY_C, manualClock, seededRandom } from "./helpers/fixtures.js";

const KEY_D = "sk-proj-DDDD7777hhhh8888iiii";
const KEYS = [KEY_A, KEY_B, KEY_C, KEY_D];

/** A reader that exports nothing by itself: the test calls `collect()`. */
class OnDemandReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

interface Point {
  attributes: Attributes;
  value: number;
}

function setup(routerOptions: CredentialRouterOptions = {}, keys: readonly string[] = KEYS, options: Partial<InstrumentOptions> = {}) {
  const clock = manualClock();
  const router = new CredentialRouter(keys, { now: clock.now, cooldownMs: 10_000, ...routerOptions });
  const reader = new OnDemandReader();
  const meter = new MeterProvider({ readers: [reader] }).getMeter("credential-router-test");
  const stop = instrument(router, { meter, ...options });
  /** The data points of one collection, by metric name. */
  const collect = async (): Promise<Map<string, Point[]>> => {
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    return pointsOf(resourceMetrics);
  };
  return { router, clock, reader, meter, stop, collect };
}

function pointsOf(resourceMetrics: ResourceMetrics): Map<string, Point[]> {
  const metrics = new Map<string, Point[]>();
  for (const { metrics: scoped } of resourceMetrics.scopeMetrics) {
    for (const { descriptor, dataPoints } of scoped) {
      metrics.set(descriptor.name, dataPoints.map(({ attributes, value }) => ({ attributes, value: value as number })));
    }
  }
  return metrics;
}

/** The keys gauge as `{ ready, cooldown, blocked, disabled }`, key-wide or in one scope. */
function statesIn(points: Point[] | undefined, scope?: string): Record<string, number> {
  const states: Record<string, number> = {};
  for (const { attributes, value } of points ?? []) {
    if (attributes["scope"] !== scope) continue;
    expect(attributes["state"] as string in states).toBe(false);
    states[attributes["state"] as string] = value;
  }
  return states;
}

/** A counter's value for exactly these attributes (0 when it has no such series). */
function valueAt(points: Point[] | undefined, attributes: Attributes): number {
  const matches = (points ?? []).filter((point) => JSON.stringify(sorted(point.attributes)) === JSON.stringify(sorted(attributes)));
  expect(matches.length).toBeLessThanOrEqual(1);
  return matches[0]?.value ?? 0;
}

function sorted(attributes: Attributes): [string, unknown][] {
  return Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : 1));
}

/** A router that counts calls to `subscribe`, `snapshot` and the unsubscribe `subscribe` returned. */
function watched(router: CredentialRouter) {
  const calls = { subscribe: 0, snapshot: 0, unsubscribe: 0 };
  const wrapper: InstrumentedRouter = {
    subscribe(listener) {
      calls.subscribe++;
      const unsubscribe = router.subscribe(listener);
      return () => {
        calls.unsubscribe++;
        unsubscribe();
      };
    },
    snapshot() {
      calls.snapshot++;
      return router.snapshot();
    },
    get picks() {
      return router.picks;
    },
  };
  return { wrapper, calls };
}

describe("credential-router/otel", () => {
  describe("the keys gauge (credential_router.keys)", () => {
    it("counts keys by key-wide state, as the router changes", async () => {
      const { router, clock, collect } = setup();
      expect(statesIn((await collect()).get("credential_router.keys"))).toEqual({ ready: 4, cooldown: 0, blocked: 0, disabled: 0 });
      router.markErrorWithDelay(KEY_A, 2_000, { reason: "rate_limit" });
      router.markBlocked(KEY_B, { reason: "auth" });
      router.markDisabled(KEY_C);
      expect(statesIn((await collect()).get("credential_router.keys"))).toEqual({ ready: 1, cooldown: 1, blocked: 1, disabled: 1 });
      clock.advance(2_000);
      router.clearCooldown(KEY_C);
      expect(statesIn((await collect()).get("credential_router.keys"))).toEqual({ ready: 3, cooldown: 0, blocked: 1, disabled: 0 });
    });

    it("counts each scope as nextKey(scope) sees it: its ready keys are the ones it hands out", async () => {
      const { router, collect } = setup();
      router.markErrorWithDelay(KEY_A, 5_000, { scope: "gpt-4o" });
      router.markBlocked(KEY_B, { scope: "gpt-4o" });
      // Out key-wide, and less so in the scope: the key-wide state is what counts there.
      router.markDisabled(KEY_C);
      router.markErrorWithDelay(KEY_C, 5_000, { scope: "gpt-4o" });
      router.markErrorWithDelay(KEY_D, 5_000, { scope: "o3" });
      const keys = (await collect()).get("credential_router.keys");
      expect(statesIn(keys)).toEqual({ ready: 3, cooldown: 0, blocked: 0, disabled: 1 });
      expect(statesIn(keys, "gpt-4o")).toEqual({ ready: 1, cooldown: 1, blocked: 1, disabled: 1 });
      expect(statesIn(keys, "o3")).toEqual({ ready: 2, cooldown: 1, blocked: 0, disabled: 1 });
      const handedOut = new Set(Array.from({ length: 8 }, () => router.nextKey("gpt-4o")));
      expect(handedOut).toEqual(new Set([KEY_D]));
    });

    it("reports a scope the router let go with the key-wide counts, not its last ones", async () => {
      const { router, clock, collect } = setup();
      router.markErrorWithDelay(KEY_A, 1_000, { scope: "gpt-4o" });
      router.markBlocked(KEY_B, { scope: "gpt-4o" });
      expect(statesIn((await collect()).get("credential_router.keys"), "gpt-4o")).toEqual({ ready: 2, cooldown: 1, blocked: 1, disabled: 0 });
      clock.advance(1_000);
      router.clearCooldown(KEY_B, { scope: "gpt-4o" });
      router.markDisabled(KEY_D);
      expect(router.snapshot().some((row) => row.scopes.length > 0)).toBe(false);
      const keys = (await collect()).get("credential_router.keys");
      expect(statesIn(keys, "gpt-4o")).toEqual({ ready: 3, cooldown: 0, blocked: 0, disabled: 1 });
      expect(statesIn(keys)).toEqual({ ready: 3, cooldown: 0, blocked: 0, disabled: 1 });
    });
  });

  describe("the held keys gauge (credential_router.key.state)", () => {
    it("has a series for each blocked or disabled key, by index, hint, label, state, reason and scope", async () => {
      const { router, collect } = setup({ labels: ["team-a", "team-b", "team-c", "team-d"] });
      router.markBlocked(KEY_B, { reason: "auth" });
      router.markDisabled(KEY_C, { reason: "quota", scope: "o3" });
      router.markErrorWithDelay(KEY_A, 5_000, { reason: "rate_limit" });
      router.markErrorWithDelay(KEY_D, 5_000, { scope: "o3" });
      expect((await collect()).get("credential_router.key.state")).toEqual(
        expect.arrayContaining([
          { attributes: { index: 1, hint: "sk-p…eeee", label: "team-b", state: "blocked", reason: "auth" }, value: 1 },
          { attributes: { index: 2, hint: "sk-p…gggg", label: "team-c", state: "disabled", reason: "quota", scope: "o3" }, value: 1 },
        ]),
      );
      // Cooling keys are counted by the keys gauge, not listed.
      expect((await collect()).get("credential_router.key.state")).toHaveLength(2);
    });

    it("turns a series to 0 when its key is back or out for another reason, and keeps reporting it", async () => {
      const { router, collect } = setup();
      router.markBlocked(KEY_A, { reason: "auth" });
      router.markBlocked(KEY_B, { reason: "auth" });
      await collect();
      router.clearCooldown(KEY_A);
      router.markDisabled(KEY_B, { reason: "manual" });
      const held = (await collect()).get("credential_router.key.state");
      expect(held).toHaveLength(3);
      expect(valueAt(held, { index: 0, hint: "sk-p…cccc", state: "blocked", reason: "auth" })).toBe(0);
      expect(valueAt(held, { index: 1, hint: "sk-p…eeee", state: "blocked", reason: "auth" })).toBe(0);
      expect(valueAt(held, { index: 1, hint: "sk-p…eeee", state: "disabled", reason: "manual" })).toBe(1);
      expect(held!.filter(({ value }) => value === 0)).toHaveLength(2);
    });

    it("names a short key by its index: its hint is #<index>", async () => {
      const { router, collect } = setup({}, ["short-key-1", "short-key-2"]);
      router.markBlocked("short-key-2", { reason: "auth" });
      expect((await collect()).get("credential_router.key.state")).toEqual([{ attributes: { index: 1, hint: "#1", state: "blocked", reason: "auth" }, value: 1 }]);
    });
  });

  describe("the counters", () => {
    it("picks counts every key handed out, by nextKey and execute, since the router was made", async () => {
      const { router, collect } = setup();
      router.nextKey();
      await router.execute(async () => "ok");
      router.nextKey("gpt-4o");
      expect((await collect()).get("credential_router.picks")).toEqual([{ attributes: {}, value: 3 }]);
      router.nextKey();
      expect((await collect()).get("credential_router.picks")).toEqual([{ attributes: {}, value: router.picks }]);
      expect(router.picks).toBe(4);
    });

    it("marks counts each key's state change by state, reason and scope", async () => {
      const { router, collect } = setup({ groups: ["org-1", "org-1", undefined, undefined] });
      router.markErrorWithDelay(KEY_A, 2_000, { reason: "rate_limit" }); // cools the whole group: 2 keys
      router.markErrorWithDelay(KEY_A, 1_000, { reason: "rate_limit" }); // shorter: changes nothing
      router.markErrorWithDelay(KEY_A, 3_000, { reason: "rate_limit", group: false }); // longer: counts
      router.markErrorWithDelay(KEY_C, 3_000, { reason: "rate_limit", scope: "o3" });
      router.markBlocked(KEY_D, { reason: "auth" });
      router.markBlocked(KEY_D, { reason: "auth" }); // already blocked: changes nothing
      router.markDisabled(KEY_D);
      const marks = (await collect()).get("credential_router.marks");
      expect(marks).toHaveLength(4);
      expect(valueAt(marks, { state: "cooldown", reason: "rate_limit" })).toBe(3);
      expect(valueAt(marks, { state: "cooldown", reason: "rate_limit", scope: "o3" })).toBe(1);
      expect(valueAt(marks, { state: "blocked", reason: "auth" })).toBe(1);
      expect(valueAt(marks, { state: "disabled", reason: "manual" })).toBe(1);
    });

    it("exhaustions counts picks that found no key, by scope, from 0", async () => {
      const { router, collect } = setup({}, [KEY_A, KEY_B]);
      expect((await collect()).get("credential_router.exhaustions")).toEqual([{ attributes: {}, value: 0 }]);
      router.markErrorWithDelay(KEY_A, 1_000, { scope: "o3" });
      router.markErrorWithDelay(KEY_B, 1_000, { scope: "o3" });
      expect(router.nextKey("o3")).toBeUndefined();
      expect(router.nextKey("o3")).toBeUndefined();
      router.markBlocked(KEY_A);
      router.markBlocked(KEY_B);
      expect(router.nextKey()).toBeUndefined();
      const exhaustions = (await collect()).get("credential_router.exhaustions");
      expect(valueAt(exhaustions, {})).toBe(1);
      expect(valueAt(exhaustions, { scope: "o3" })).toBe(2);
    });
  });

  describe("names", () => {
    it("names the five metrics under credential_router, with their units", async () => {
      const { router, reader } = setup();
      router.markBlocked(KEY_A);
      router.nextKey();
      const { resourceMetrics } = await reader.collect();
      const descriptors = resourceMetrics.scopeMetrics.flatMap(({ metrics }) => metrics.map(({ descriptor: { name, unit } }) => [name, unit]));
      expect(Object.fromEntries(descriptors)).toEqual({
        "credential_router.keys": "{key}",
        "credential_router.key.state": "{key}",
        "credential_router.picks": "{pick}",
        "credential_router.marks": "{mark}",
        "credential_router.exhaustions": "{exhaustion}",
      });
    });

    it("takes another prefix from name, so that one meter can watch two routers", async () => {
      const reader = new OnDemandReader();
      const meter = new MeterProvider({ readers: [reader] }).getMeter("two-routers");
      const openai = new CredentialRouter([KEY_A, KEY_B]);
      const anthropic = new CredentialRouter([KEY_C]);
      instrument(openai, { meter, name: "openai_keys" });
      instrument(anthropic, { meter, name: "anthropic_keys" });
      openai.markBlocked(KEY_A);
      const metrics = pointsOf((await reader.collect()).resourceMetrics);
      expect(statesIn(metrics.get("openai_keys.keys"))).toEqual({ ready: 1, cooldown: 0, blocked: 1, disabled: 0 });
      expect(statesIn(metrics.get("anthropic_keys.keys"))).toEqual({ ready: 1, cooldown: 0, blocked: 0, disabled: 0 });
      expect([...metrics.keys()].every((name) => /^(openai|anthropic)_keys\./.test(name))).toBe(true);
    });
  });

  describe("keys stay secret", () => {
    /** Whether `text` contains 8 or more consecutive characters of `secret`. */
    function leaks(text: string, secret: string): boolean {
      for (let start = 0; start + 8 <= secret.length; start++) if (text.includes(secret.slice(start, start + 8))) return true;
      return false;
    }

    it("no key, nor 8 characters of one, nor a fingerprint appears anywhere in an export", async () => {
      const random = seededRandom(13);
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
      const word = (length: number) => Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join("");
      // Long keys (masked hints) and short ones (hint "#<index>"); labels that are not secrets.
      const keys = [...Array.from({ length: 6 }, () => `sk-${word(45)}`), word(12), word(9)];
      const { router, reader, clock } = setup({ labels: keys.map((_, index) => `team-${index}`), groups: keys.map((_, index) => `org-${index % 3}`) }, keys);
      router.markErrorWithDelay(keys[0]!, 5_000, { reason: "rate_limit" });
      router.markErrorWithDelay(keys[1]!, 5_000, { reason: "quota", scope: "gpt-4o" });
      router.markBlocked(keys[2]!, { reason: "auth" });
      router.markBlocked(keys[6]!, { reason: "auth", scope: "o3" });
      router.markDisabled(keys[7]!, { reason: "billing" });
      for (let i = 0; i < 20; i++) router.nextKey(i % 2 === 0 ? "gpt-4o" : undefined);
      await router.execute(async () => new Response("slow down", { status: 429, headers: { "retry-after": "3" } }), { maxAttempts: 2 }).catch(() => undefined);
      clock.advance(6_000);
      const { resourceMetrics } = await reader.collect();
      const text = JSON.stringify(resourceMetrics) + new PrometheusSerializer().serialize(resourceMetrics);
      // The export is not empty: it names keys by hint and label, states, reasons and scopes.
      for (const expected of ["sk-", "#6", "team-7", "auth", "billing", "gpt-4o", "o3"]) expect(text).toContain(expected);
      const ids = router.snapshot().map(({ id }) => id);
      for (const secret of [...keys, ...ids]) expect(leaks(text, secret), "a key or fingerprint leaked").toBe(false);
      // The check itself finds a leak when there is one.
      expect(leaks(`x${keys[3]!.slice(10, 18)}x`, keys[3]!)).toBe(true);
    });
  });

  describe("stop", () => {
    it("unsubscribes and removes the callback: nothing the router does later reaches the metrics", async () => {
      const router = new CredentialRouter(KEYS);
      const { wrapper, calls } = watched(router);
      const reader = new OnDemandReader();
      const meter = new MeterProvider({ readers: [reader] }).getMeter("stop");
      const stop = instrument(wrapper, { meter });
      router.markBlocked(KEY_A, { reason: "auth" });
      router.nextKey();
      const before = pointsOf((await reader.collect()).resourceMetrics);
      expect(calls.snapshot).toBe(1);
      stop();
      expect(calls.unsubscribe).toBe(1);
      router.markBlocked(KEY_B, { reason: "auth" });
      router.markDisabled(KEY_C);
      expect(router.nextKey()).toBe(KEY_D);
      const after = pointsOf((await reader.collect()).resourceMetrics);
      expect(calls.snapshot).toBe(1);
      // The SDK may repeat a series' last value or drop it; it has no new one.
      for (const [name, points] of after) expect(points, name).toEqual(before.get(name));
      expect(valueAt(after.get("credential_router.marks"), { state: "blocked", reason: "auth" })).toBe(1);
    });

    it("is idempotent: a second call removes nothing twice", () => {
      const router = new CredentialRouter(KEYS);
      const { wrapper, calls } = watched(router);
      const meter = new MeterProvider().getMeter("stop-twice");
      let removals = 0;
      const removeBatchObservableCallback: typeof meter.removeBatchObservableCallback = (callback, observables) => {
        removals++;
        meter.removeBatchObservableCallback(callback, observables);
      };
      const stop = instrument(wrapper, { meter: { ...bound(meter), removeBatchObservableCallback } });
      stop();
      stop();
      expect([removals, calls.unsubscribe]).toEqual([1, 1]);
    });
  });

  describe("arguments", () => {
    const meter = new MeterProvider().getMeter("arguments");
    const router = new CredentialRouter(KEYS);

    it("a router without subscribe, snapshot or picks is a TypeError naming it", () => {
      expect(() => instrument(undefined as never, { meter })).toThrow(new TypeError("router must be an object, received undefined"));
      expect(() => instrument({ snapshot: () => [], picks: 0 } as never, { meter })).toThrow(new TypeError("router.subscribe must be a function, received undefined"));
      expect(() => instrument({ subscribe: () => () => {}, picks: 0 } as never, { meter })).toThrow(new TypeError("router.snapshot must be a function, received undefined"));
      expect(() => instrument({ subscribe: () => () => {}, snapshot: () => [] } as never, { meter })).toThrow(new TypeError("router.picks must be a number, received undefined"));
    });

    it("a meter without a method it needs is a TypeError naming the method", () => {
      expect(() => instrument(router, undefined as never)).toThrow(new TypeError("options must be an object, received undefined"));
      expect(() => instrument(router, {} as never)).toThrow(new TypeError("meter must be an OpenTelemetry Meter, received undefined"));
      const { removeBatchObservableCallback: _, ...withoutRemove } = bound(meter);
      expect(() => instrument(router, { meter: withoutRemove as never })).toThrow(
        new TypeError("meter.removeBatchObservableCallback must be a function, received undefined"),
      );
    });

    it("a name that is not a metric name prefix is a TypeError, which does not echo it", () => {
      for (const name of ["", "9lives", "credential router", "keys{x}", "a".repeat(201), 7]) {
        expect(() => instrument(router, { meter, name: name as string }), String(name)).toThrow(TypeError);
      }
      expect(() => instrument(router, { meter, name: "credential router" })).toThrow(/^name must be .*, received a string$/);
    });

    it("a failed call leaves the router unwatched", () => {
      const { wrapper, calls } = watched(router);
      expect(() => instrument(wrapper, { meter, name: "" })).toThrow(TypeError);
      expect(calls).toEqual({ subscribe: 0, snapshot: 0, unsubscribe: 0 });
    });
  });
});

/** The meter's methods, bound, as a plain object a test can change. */
function bound<T extends object>(meter: T): T {
  const copy = {} as Record<string, unknown>;
  for (const name of ["createCounter", "createObservableCounter", "createObservableGauge", "addBatchObservableCallback", "removeBatchObservableCallback"]) {
    copy[name] = (meter as Record<string, (...args: unknown[]) => unknown>)[name]!.bind(meter);
  }
  return copy as T;
}

describe("the README's \"Watching your keys\"", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("\n## Watching your keys\n"), readme.indexOf("\n## API\n"));
  const table = [...section.matchAll(/^\| `([\w.]+)` +\| ([a-z ]+?) +\| `([^`]+)` +\| ([^|]*?) *\|/gm)].map(([, name, instrument, unit, attributes]) => ({
    name: name!,
    instrument: instrument!,
    unit: unit!,
    attributes: [...attributes!.matchAll(/`(\w+)(\?)?`/g)].map(([, attribute, optional]) => ({ attribute: attribute!, optional: optional === "?" })),
  }));
  const sample = /```text\n([\s\S]*?)```/.exec(section)![1]!.trim().split("\n");

  /** The README's scene: three keys, 40 picks, a 429 on two of them for gpt-4o, a 401 on the third. */
  async function scrape() {
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const meter = new MeterProvider({ readers: [exporter] }).getMeter("credential-router");
    const router = new CredentialRouter([KEY_A, KEY_B, KEY_C], { labels: ["team-a", "team-b", "team-c"], now: () => 0 });
    instrument(router, { meter });
    for (let i = 0; i < 40; i++) router.nextKey();
    router.markErrorWithDelay(KEY_A, 20_000, { reason: "rate_limit", scope: "gpt-4o" });
    router.markBlocked(KEY_B, { reason: "auth" });
    expect([router.nextKey("gpt-4o"), router.nextKey("gpt-4o")]).toEqual([KEY_C, KEY_C]);
    router.markErrorWithDelay(KEY_C, 20_000, { reason: "rate_limit", scope: "gpt-4o" });
    expect(router.nextKey("gpt-4o")).toBeUndefined();
    const { resourceMetrics, errors } = await exporter.collect();
    expect(errors).toEqual([]);
    return { resourceMetrics, text: new PrometheusSerializer().serialize(resourceMetrics) };
  }

  it("names every metric exported, with its instrument, unit and attributes", async () => {
    const { resourceMetrics } = await scrape();
    // What an exporter sees of each kind of instrument: a gauge, or a monotonic sum.
    const kinds: Record<string, string> = { "observable gauge": "gauge", "observable counter": "monotonic sum", counter: "monotonic sum" };
    const kindOf = (metric: MetricData) =>
      metric.dataPointType === DataPointType.GAUGE ? "gauge" : metric.dataPointType === DataPointType.SUM && metric.isMonotonic ? "monotonic sum" : "other";
    const metrics = resourceMetrics.scopeMetrics.flatMap(({ metrics }) => metrics);
    expect(table.map(({ name }) => name).sort()).toEqual(metrics.map(({ descriptor }) => descriptor.name).sort());
    for (const metric of metrics) {
      const { descriptor, dataPoints } = metric;
      const row = table.find(({ name }) => name === descriptor.name)!;
      expect([kindOf(metric), descriptor.unit], row.name).toEqual([kinds[row.instrument], row.unit]);
      expect(dataPoints.length, row.name).toBeGreaterThan(0);
      for (const { attributes } of dataPoints) {
        expect(Object.keys(attributes).every((name) => row.attributes.some(({ attribute }) => attribute === name)), `${row.name} ${JSON.stringify(attributes)}`).toBe(true);
        for (const { attribute, optional } of row.attributes) if (!optional) expect(attributes, row.name).toHaveProperty(attribute);
      }
    }
  });

  it("shows a scrape the exporter really serves", async () => {
    const { text } = await scrape();
    const lines = text.split("\n").map((line) => line.replace(/,?otel_scope_name="credential-router"/, "").replace("{}", ""));
    expect(sample.length).toBeGreaterThanOrEqual(14);
    for (const line of sample) expect(lines).toContain(line);
    // Every series of the five metrics is in the sample.
    expect(lines.filter((line) => line.startsWith("credential_router_"))).toEqual(expect.arrayContaining(sample));
    expect(lines.filter((line) => line.startsWith("credential_router_")).length).toBe(sample.length);
  });
});

