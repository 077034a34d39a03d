import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CredentialRouter, type RoutingStrategy } from "../src/index.js";
import { manualClock } from "./helpers/fixtures.js";

const letters = (count: number) => Array.from({ length: count }, (_, i) => String.fromCharCode(97 + i));

function picks(router: CredentialRouter, count: number): string[] {
  return Array.from({ length: count }, () => router.nextKey() ?? "-");
}

function countOf(served: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const key of served) counts[key] = (counts[key] ?? 0) + 1;
  return counts;
}

function longestRun(served: string[]): number {
  let longest = 0;
  let run = 0;
  served.forEach((key, i) => {
    run = key === served[i - 1] ? run + 1 : 1;
    longest = Math.max(longest, run);
  });
  return longest;
}

describe("weighted", () => {
  it("interleaves 5, 1, 1 smoothly instead of in runs", () => {
    const router = new CredentialRouter(letters(3), { strategy: { type: "weighted", weights: [5, 1, 1] } });
    const served = picks(router, 70);
    // Not "a a a a a b c": the light keys fall between the heavy key's picks.
    expect(countOf(served.slice(0, 7))).toEqual({ a: 5, b: 1, c: 1 });
    expect(longestRun(served)).toBeLessThanOrEqual(3);
    expect(countOf(served)).toEqual({ a: 50, b: 10, c: 10 });
  });

  it("every W consecutive picks give each key its weight ±1", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 8 }), (weights) => {
        const keys = letters(weights.length);
        const router = new CredentialRouter(keys, { strategy: { type: "weighted", weights } });
        const total = weights.reduce((sum, weight) => sum + weight, 0);
        const served = picks(router, total * 6);
        for (let start = 0; start + total <= served.length; start++) {
          const counts = countOf(served.slice(start, start + total));
          keys.forEach((key, i) => expect(Math.abs((counts[key] ?? 0) - weights[i]!)).toBeLessThanOrEqual(1));
        }
      }),
      { numRuns: 200 },
    );
  });

  it("gives a cooling key's share to the ready keys in proportion to their weights", () => {
    const clock = manualClock(0);
    const router = new CredentialRouter(letters(4), { now: clock.now, strategy: { type: "weighted", weights: [4, 2, 1, 3] } });
    router.markError("d");
    expect(countOf(picks(router, 700))).toEqual({ a: 400, b: 200, c: 100 });
  });

  it("gives a key back from cooldown its share, with no burst to catch up", () => {
    const clock = manualClock(0);
    const router = new CredentialRouter(letters(2), { now: clock.now, cooldownMs: 1_000, strategy: { type: "weighted", weights: [1, 1] } });
    router.markError("b");
    picks(router, 500);
    clock.advance(1_000);
    const served = picks(router, 20);
    expect(longestRun(served)).toBeLessThanOrEqual(2);
    expect(countOf(served)).toEqual({ a: 10, b: 10 });
  });

  it("accepts fractional weights", () => {
    const router = new CredentialRouter(letters(2), { strategy: { type: "weighted", weights: [0.25, 0.75] } });
    expect(countOf(picks(router, 400))).toEqual({ a: 100, b: 300 });
  });

  it("keeps its shares over millions of picks (the virtual clock is rebased)", () => {
    const router = new CredentialRouter(letters(2), { strategy: { type: "weighted", weights: [1e-3, 3e-3] } });
    picks(router, 3_000_000);
    expect(countOf(picks(router, 4_000))).toEqual({ a: 1_000, b: 3_000 });
  });

  it("never returns a key that is not ready", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.01, max: 100, noNaN: true }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(5), fc.constantFrom("cool", "block", "clear", "advance", "pick")), { maxLength: 80 }),
        (weights, steps) => {
          const clock = manualClock(0);
          const keys = letters(weights.length);
          const router = new CredentialRouter(keys, { now: clock.now, cooldownMs: 50, strategy: { type: "weighted", weights } });
          for (const [at, action] of steps) {
            const key = keys[at % keys.length]!;
            if (action === "cool") router.markError(key);
            else if (action === "block") router.markBlocked(key);
            else if (action === "clear") router.clearCooldown(key);
            else if (action === "advance") clock.advance(30);
            else {
              const picked = router.nextKey();
              if (picked === undefined) expect(keys.every((k) => router.stateOf(k)!.status !== "ready")).toBe(true);
              else expect(router.stateOf(picked)).toEqual({ status: "ready" });
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("priority", () => {
  it("round-robins within the lowest tier that has a ready key", () => {
    const router = new CredentialRouter(letters(5), { strategy: { type: "priority", tiers: [1, 0, 1, 0, 2] } });
    expect(picks(router, 4)).toEqual(["b", "d", "b", "d"]);
  });

  it("falls through to the next tier when a tier is all out, and returns as soon as a better key is ready", () => {
    const clock = manualClock(0);
    const router = new CredentialRouter(letters(5), {
      now: clock.now,
      cooldownMs: 100,
      strategy: { type: "priority", tiers: [1, 0, 1, 0, 2] },
    });
    router.markError("b");
    router.markBlocked("d");
    expect(picks(router, 3)).toEqual(["a", "c", "a"]);
    router.markError("a");
    router.markError("c");
    expect(picks(router, 2)).toEqual(["e", "e"]);
    clock.advance(100);
    expect(picks(router, 3)).toEqual(["b", "b", "b"]);
  });

  it("with one key a tier it is fill-first", () => {
    const keys = letters(4);
    const priority = new CredentialRouter(keys, { strategy: { type: "priority", tiers: [0, 1, 2, 3] } });
    const fillFirst = new CredentialRouter(keys, { strategy: { type: "fill-first" } });
    for (const router of [priority, fillFirst]) router.markError("a");
    expect(picks(priority, 5)).toEqual(picks(fillFirst, 5));
    expect(picks(priority, 2)).toEqual(["b", "b"]);
  });

  it("accepts negative tiers", () => {
    const router = new CredentialRouter(letters(3), { strategy: { type: "priority", tiers: [0, -5, 7] } });
    expect(picks(router, 2)).toEqual(["b", "b"]);
  });
});

describe("random", () => {
  it("draws uniformly among the ready keys with the injected source", () => {
    const draws = [0, 0.2, 0.4, 0.6, 0.8, 0.99];
    let next = 0;
    const router = new CredentialRouter(letters(5), { strategy: { type: "random", random: () => draws[next++ % draws.length]! } });
    router.markBlocked("c");
    const served = picks(router, 6);
    // The ready keys are a, b, d, e in some order: each fifth of [0, 1) maps to one of four slots.
    expect(new Set(served)).toEqual(new Set(["a", "b", "d", "e"]));
    expect(served).not.toContain("c");
  });

  it("gives each ready key about an equal share", () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) >>> 0) / 2 ** 32);
    const router = new CredentialRouter(letters(4), { strategy: { type: "random", random } });
    router.markDisabled("a");
    const counts = countOf(picks(router, 30_000));
    expect(counts.a).toBeUndefined();
    for (const key of ["b", "c", "d"]) expect(counts[key]).toBeGreaterThan(9_500);
  });

  it("never returns a key that is not ready, even from a broken random source", () => {
    for (const value of [1, -0.5, Number.NaN, 7]) {
      const router = new CredentialRouter(letters(3), { strategy: { type: "random", random: () => value } });
      router.markBlocked("a");
      router.markError("b");
      expect(picks(router, 3)).toEqual(["c", "c", "c"]);
    }
  });

  it("defaults to Math.random", () => {
    const router = new CredentialRouter(letters(3), { strategy: { type: "random" } });
    expect(router.strategy).toEqual({ type: "random" });
    expect(letters(3)).toContain(router.nextKey());
  });
});

describe("strategy validation", () => {
  const create = (strategy: unknown, size = 3) => () => new CredentialRouter(letters(size), { strategy: strategy as RoutingStrategy });

  it.each([
    [{ type: "weighted", weights: [1, 2] }, TypeError, "strategy.weights must be an array of 3, received an array of 2"],
    [{ type: "weighted" }, TypeError, "strategy.weights must be an array of 3, received undefined"],
    [{ type: "weighted", weights: [1, "2", 3] }, TypeError, "strategy.weights[1] must be a number"],
    [{ type: "weighted", weights: [1, 2, 0] }, RangeError, "strategy.weights[2] must be a finite number > 0, received 0"],
    [{ type: "weighted", weights: [1, -1, 3] }, RangeError, "strategy.weights[1]"],
    [{ type: "weighted", weights: [Infinity, 1, 3] }, RangeError, "strategy.weights[0]"],
    [{ type: "weighted", weights: [1, 1, Number.NaN] }, RangeError, "strategy.weights[2]"],
    [{ type: "priority", tiers: [0, 1] }, TypeError, "strategy.tiers must be an array of 3, received an array of 2"],
    [{ type: "priority", tiers: [0, 1.5, 2] }, RangeError, "strategy.tiers[1] must be an integer, received 1.5"],
    [{ type: "priority", tiers: [0, 1, Infinity] }, RangeError, "strategy.tiers[2]"],
    [{ type: "random", random: 0.5 }, TypeError, "strategy.random must be a function"],
  ])("%j is refused", (strategy, kind, message) => {
    expect(create(strategy)).toThrow(kind);
    expect(create(strategy)).toThrow(message);
  });

  it("copies and freezes weights and tiers", () => {
    const weights = [1, 2, 3];
    const router = new CredentialRouter(letters(3), { strategy: { type: "weighted", weights } });
    weights[0] = 100;
    const strategy = router.strategy as { weights: readonly number[] };
    expect(strategy.weights).toEqual([1, 2, 3]);
    expect(Object.isFrozen(strategy.weights)).toBe(true);
  });
});

describe("sparse weights and tiers", () => {
  it("a hole is refused, naming its index", () => {
    // eslint-disable-next-line no-sparse-arrays
    const weights = [1, , 3] as number[];
    expect(() => new CredentialRouter(letters(3), { strategy: { type: "weighted", weights } })).toThrow(
      "strategy.weights[1] must be a number, received undefined",
    );
  });
});

describe("weighted, with extreme weights", () => {
  it("keeps the shares of weights near the largest finite number", () => {
    const router = new CredentialRouter(letters(3), { strategy: { type: "weighted", weights: [1e308, 1e308, 5e307] } });
    expect(countOf(picks(router, 10_000))).toEqual({ a: 4_000, b: 4_000, c: 2_000 });
  });

  it("still serves a key of a vanishingly small weight when it is the only one ready", () => {
    const router = new CredentialRouter(letters(2), { strategy: { type: "weighted", weights: [1, 5e-324] } });
    expect(countOf(picks(router, 1_000))).toEqual({ a: 1_000 });
    router.markError("a");
    expect(picks(router, 3)).toEqual(["b", "b", "b"]);
    router.clearCooldown("a");
    expect(countOf(picks(router, 100))).toEqual({ a: 100 });
  });
});
