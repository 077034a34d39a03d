import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CredentialRouter, NoKeyAvailableError, isNoKeyAvailableError, type RouterEvent, type RoutingStrategy } from "../src/index.js";
import { manualClock } from "./helpers/fixtures.js";

/**
 * For the tests that make millions of picks or hundreds of property runs: well under a second on a
 * quiet machine, many times that on two busy cores or under Stryker's instrumentation.
 */
const HEAVY_TEST_TIMEOUT_MS = 60_000;

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
  }, HEAVY_TEST_TIMEOUT_MS);

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
  }, HEAVY_TEST_TIMEOUT_MS);

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

/** Each window of W consecutive picks (W the sum of the weights) gives each key its weight ±1. */
function expectSmooth(served: string[], weights: readonly number[]) {
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  for (let start = 0; start + total <= served.length; start++) {
    const counts = countOf(served.slice(start, start + total));
    weights.forEach((weight, i) => expect(Math.abs((counts[letters(weights.length)[i]!] ?? 0) - weight)).toBeLessThanOrEqual(1));
  }
}

describe("weighted: a key coming back", () => {
  it("a light key that comes back waits its phase: it is not served first, and then gets its share", () => {
    const router = new CredentialRouter(["a", "b"], { strategy: { type: "weighted", weights: [1, 3] } });
    picks(router, 8);
    router.markBlocked("a");
    picks(router, 5);
    router.clearCooldown("a");
    const served = picks(router, 12);
    expect(served.slice(0, 2)).toEqual(["b", "b"]);
    expect(countOf(served)).toEqual({ a: 3, b: 9 });
  });

  it("a key of unequal weight back from a long cooldown gets its share, with no burst to catch up", () => {
    const clock = manualClock(0);
    const weights = [3, 2, 1];
    const router = new CredentialRouter(letters(3), { now: clock.now, cooldownMs: 60_000, strategy: { type: "weighted", weights } });
    router.markError("c");
    expect(countOf(picks(router, 500))).toEqual({ a: 300, b: 200 });
    clock.advance(60_000);
    const served = picks(router, 60);
    // A catch-up would serve c many times in a row for the 500 picks it missed.
    expect(longestRun(served)).toBeLessThanOrEqual(2);
    expectSmooth(served, weights);
    expect(countOf(served)).toEqual({ a: 30, b: 20, c: 10 });
  });

  it("a heavy key back from cooldown takes its share again at once", () => {
    const clock = manualClock(0);
    const weights = [1, 4];
    const router = new CredentialRouter(letters(2), { now: clock.now, cooldownMs: 1_000, strategy: { type: "weighted", weights } });
    router.markError("b");
    expect(picks(router, 50)).toEqual(Array(50).fill("a"));
    clock.advance(1_000);
    const served = picks(router, 50);
    expectSmooth(served, weights);
    expect(countOf(served)).toEqual({ a: 10, b: 40 });
  });
  it("a key out and back before its next turn (a zero Retry-After) keeps its turn: no extra pick, none lost", () => {
    const clock = manualClock(0);
    const strategy: RoutingStrategy = { type: "weighted", weights: [1, 3, 2] };
    const undisturbed = new CredentialRouter(letters(3), { strategy });
    const router = new CredentialRouter(letters(3), { now: clock.now, strategy });
    const served: string[] = [];
    for (let pick = 0; pick < 60; pick++) {
      const key = router.nextKey()!;
      served.push(key);
      router.markErrorWithDelay(key, 0);
    }
    expect(served).toEqual(picks(undisturbed, 60));
  });
});

describe("weighted: the virtual clock over a very long run", () => {
  it(
    "keeps exact shares after the clock has run far enough for floats to drop fractions (the rebase)",
    () => {
      // c and d weigh so little that each of their picks moves the virtual clock by 2^30 units (the
      // floor of 2^-30 of the heaviest weight). Without the rebase, 2^18 such picks take the clock to
      // 2^48, where a double keeps only 1/16ths: a's interval (5/3) would round to 27/16 and its share
      // drift from 3/8 to 16/43. Two such classes, so that the rebase must move both deadlines and
      // the heap's copies of them alike.
      const router = new CredentialRouter(letters(4), { strategy: { type: "weighted", weights: [3, 5, 1e-12, 2e-12] } });
      router.markBlocked("a");
      router.markBlocked("b");
      const light = picks(router, 2 ** 18);
      expect(countOf(light)).toEqual({ c: 2 ** 17, d: 2 ** 17 });
      expect(longestRun(light)).toBe(1);
      router.clearCooldown("a");
      router.clearCooldown("b");
      const served = picks(router, 8_000);
      expect(countOf(served)).toEqual({ a: 3_000, b: 5_000 });
      expectSmooth(served, [3, 5]);
    },
    HEAVY_TEST_TIMEOUT_MS,
  );
});

describe("random: keys leaving and coming back", () => {
  /** Draws that walk through [0, 1) in steps of 1/97, so every ready slot is drawn again and again. */
  const sweep = () => {
    let step = 0;
    return () => (step++ % 97) / 97;
  };

  it("never serves a cooling key, serves it again once its cooldown ends, and serves every ready key", () => {
    const clock = manualClock(0);
    const router = new CredentialRouter(letters(4), { now: clock.now, cooldownMs: 1_000, strategy: { type: "random", random: sweep() } });
    router.markError("b");
    router.markBlocked("d");
    expect(new Set(picks(router, 200))).toEqual(new Set(["a", "c"]));
    clock.advance(999);
    expect(new Set(picks(router, 200))).toEqual(new Set(["a", "c"]));
    clock.advance(1);
    expect(new Set(picks(router, 200))).toEqual(new Set(["a", "b", "c"]));
    router.clearCooldown("d");
    const counts = countOf(picks(router, 4_000));
    for (const key of letters(4)) expect(counts[key]).toBeGreaterThan(900);
  });

  it("a key that leaves and comes back in any order is served again, and only ready keys are", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(4), fc.boolean()), { maxLength: 60 }), (steps) => {
        const keys = letters(5);
        const router = new CredentialRouter(keys, { strategy: { type: "random", random: sweep() } });
        const out = new Set<string>();
        for (const [at, leave] of steps) {
          const key = keys[at]!;
          if (leave) {
            router.markBlocked(key);
            out.add(key);
          } else {
            router.clearCooldown(key);
            out.delete(key);
          }
          // 97 draws of the sweep cover every slot of up to 5 ready keys.
          const ready = keys.filter((k) => !out.has(k));
          expect(new Set(picks(router, 97))).toEqual(new Set(ready.length === 0 ? ["-"] : ready));
        }
      }),
      { numRuns: 100 },
    );
  });

  it("runs out of keys: nextKey is undefined, the exhausted event fires, and execute rejects", async () => {
    const clock = manualClock(0);
    const router = new CredentialRouter(letters(3), { now: clock.now, cooldownMs: 1_000, strategy: { type: "random", random: sweep() } });
    const events: RouterEvent[] = [];
    router.subscribe((event) => void events.push(event));
    router.markBlocked("a");
    router.markError("b");
    clock.advance(400);
    router.markError("c");
    events.length = 0;
    expect(picks(router, 5)).toEqual(["-", "-", "-", "-", "-"]);
    expect(events).toEqual(Array(5).fill({ type: "exhausted", retryAfterMs: 600 }));
    let called = 0;
    const error = await router.execute(() => called++).catch((caught: unknown) => caught);
    expect(isNoKeyAvailableError(error)).toBe(true);
    expect((error as NoKeyAvailableError).retryAfterMs).toBe(600);
    expect(called).toBe(0);
    clock.advance(600);
    expect(new Set(picks(router, 50))).toEqual(new Set(["b"]));
  });
});

describe("priority: every key out", () => {
  it("execute rejects with NoKeyAvailableError without calling fn, and the exhausted event fires", async () => {
    const clock = manualClock(0);
    const strategy: RoutingStrategy = { type: "priority", tiers: [0, 0, 1, 2] };
    const router = new CredentialRouter(letters(4), { now: clock.now, cooldownMs: 1_000, strategy });
    const events: RouterEvent[] = [];
    router.subscribe((event) => void events.push(event));
    router.markBlocked("a");
    router.markErrorWithDelay("b", 3_000);
    router.markDisabled("c");
    router.markErrorWithDelay("d", 2_000);
    events.length = 0;
    let called = 0;
    const error = await router.execute(() => called++).catch((caught: unknown) => caught);
    expect(isNoKeyAvailableError(error)).toBe(true);
    expect((error as NoKeyAvailableError).retryAfterMs).toBe(2_000);
    expect(called).toBe(0);
    expect(events).toEqual([{ type: "exhausted", retryAfterMs: 2_000 }]);
    expect(router.nextKey()).toBeUndefined();
    clock.advance(2_000);
    expect(picks(router, 2)).toEqual(["d", "d"]);
  });

  it("execute goes down the tiers as the better keys are rejected, then rejects when none is left", async () => {
    const router = new CredentialRouter(letters(3), { strategy: { type: "priority", tiers: [2, 0, 1] } });
    const events: RouterEvent[] = [];
    router.subscribe((event) => void events.push(event));
    const tried: string[] = [];
    const last = await router.execute((key) => {
      tried.push(key);
      return { status: 401 };
    });
    expect(last).toEqual({ status: 401 });
    expect(tried).toEqual(["b", "c", "a"]);
    expect(events.filter((event) => event.type === "exhausted")).toEqual([]);
    await expect(router.execute(() => "never")).rejects.toThrow(NoKeyAvailableError);
    expect(events.at(-1)).toEqual({ type: "exhausted", retryAfterMs: undefined });
  });
});

describe("strategy validation: what the message says", () => {
  it("a strategy that is not an object, or of an unknown type, names what is expected", () => {
    const create = (strategy: unknown) => () => new CredentialRouter(letters(2), { strategy: strategy as RoutingStrategy });
    expect(create(null)).toThrow('strategy must be an object with a "type", received null');
    expect(create("round-robin")).toThrow('strategy must be an object with a "type", received a string');
    expect(create({ type: "fastest" })).toThrow('strategy.type must be "round-robin", "fill-first", "weighted", "priority" or "random"');
  });
});

describe("round-robin: after every key was out", () => {
  it("goes on from where it was, not from the first key", () => {
    const router = new CredentialRouter(letters(3));
    expect(router.nextKey()).toBe("a");
    for (const key of letters(3)) router.markBlocked(key);
    expect(router.nextKey()).toBeUndefined();
    for (const key of letters(3)) router.clearCooldown(key);
    expect(picks(router, 4)).toEqual(["b", "c", "a", "b"]);
  });
});

describe("round-robin over many keys, some out", () => {
  it("passes over a stretch of keys that are all out to the next ready one, in key order, at any position", () => {
    // 160 keys: five 32-key words of the ready set. Out: all of 32-63 (a whole word), and 100-140
    // (across the end of one word and the start of the next).
    const keys = Array.from({ length: 160 }, (_, index) => `sk-many-keys-${String(index).padStart(3, "0")}`);
    const router = new CredentialRouter(keys);
    const out = (index: number) => (index >= 32 && index < 64) || (index >= 100 && index <= 140);
    keys.forEach((key, index) => out(index) && router.markBlocked(key));
    const ready = keys.filter((_, index) => !out(index));
    const served = Array.from({ length: ready.length * 2 + 5 }, () => router.nextKey());
    expect(served).toEqual([...ready, ...ready, ...ready.slice(0, 5)]);
    // A key back in the middle of an empty stretch takes its turn there.
    router.clearCooldown(keys[120]!);
    const next = ready.slice(5).findIndex((key) => key > keys[120]!) + 5;
    expect(Array.from({ length: ready.length - 5 + 1 }, () => router.nextKey())).toEqual([...ready.slice(5, next), keys[120], ...ready.slice(next)]);
  });
});

describe("weighted: every key out", () => {
  it("nextKey finds no key, counts no pick, and the exhausted event fires", () => {
    const router = new CredentialRouter(letters(3), { strategy: { type: "weighted", weights: [1, 2, 3] } });
    const events: RouterEvent[] = [];
    router.subscribe((event) => void events.push(event));
    for (const key of letters(3)) router.markBlocked(key);
    events.length = 0;
    expect(router.nextKey()).toBeUndefined();
    expect(router.picks).toBe(0);
    expect(events).toEqual([{ type: "exhausted", retryAfterMs: undefined }]);
  });
});
