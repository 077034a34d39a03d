import { inspect } from "node:util";
import * as FakeTimers from "@sinonjs/fake-timers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CredentialRouter, type CredentialRouterOptions } from "../src/index.js";
import { manualClock } from "./helpers/fixtures.js";

function routerWith(keys: string[], options: CredentialRouterOptions = {}) {
  const clock = manualClock();
  const router = new CredentialRouter(keys, { now: clock.now, ...options });
  return { router, clock };
}

function picks(router: CredentialRouter, count: number): (string | undefined)[] {
  return Array.from({ length: count }, () => router.nextKey());
}

const MINUTE = 60_000;

describe("ported from the Rust original", () => {
  it("round-robin cycles through the keys in order", () => {
    const { router } = routerWith(["key-a", "key-b", "key-c"], { cooldownMs: MINUTE });
    expect(picks(router, 4)).toEqual(["key-a", "key-b", "key-c", "key-a"]);
  });

  it("skips a key in cooldown", () => {
    const { router } = routerWith(["key-a", "key-b"], { cooldownMs: MINUTE });
    router.markError("key-a");
    expect(router.nextKey()).toBe("key-b");
  });

  it("returns undefined when every key is cooling", () => {
    const { router } = routerWith(["key-a", "key-b"], { cooldownMs: MINUTE });
    router.markError("key-a");
    router.markError("key-b");
    expect(router.nextKey()).toBeUndefined();
  });

  it("clearCooldown makes a cooling key usable again", () => {
    const { router } = routerWith(["key-a"], { cooldownMs: MINUTE });
    router.markError("key-a");
    expect(router.nextKey()).toBeUndefined();
    router.clearCooldown("key-a");
    expect(router.nextKey()).toBe("key-a");
  });

  it("a single key is returned again and again", () => {
    const { router } = routerWith(["only-key"], { cooldownMs: MINUTE });
    expect(picks(router, 2)).toEqual(["only-key", "only-key"]);
  });

  it("size counts the keys", () => {
    const { router } = routerWith(["a", "b"], { cooldownMs: 1_000 });
    expect(router.size).toBe(2);
  });

  it("an empty key list is refused", () => {
    expect(() => new CredentialRouter([])).toThrow(/at least one key/);
  });

  it("fill-first always picks the first ready key", () => {
    const { router } = routerWith(["key-a", "key-b", "key-c"], { strategy: { type: "fill-first" } });
    expect(picks(router, 3)).toEqual(["key-a", "key-a", "key-a"]);
  });

  it("fill-first skips cooling keys in order", () => {
    const { router } = routerWith(["key-a", "key-b", "key-c"], { strategy: { type: "fill-first" } });
    router.markError("key-a");
    expect(router.nextKey()).toBe("key-b");
    router.markError("key-b");
    expect(router.nextKey()).toBe("key-c");
    router.markError("key-c");
    expect(router.nextKey()).toBeUndefined();
  });

  it("an expired cooldown is promoted back to ready", () => {
    const { router, clock } = routerWith(["key-a"], { cooldownMs: 1 });
    router.markError("key-a");
    expect(router.nextKey()).toBeUndefined();
    clock.advance(5);
    expect(router.nextKey()).toBe("key-a");
  });

  it("a blocked key is never promoted by time", () => {
    const { router, clock } = routerWith(["key-a", "key-b"], { cooldownMs: 1 });
    router.markBlocked("key-a");
    clock.advance(5);
    expect(picks(router, 3)).toEqual(["key-b", "key-b", "key-b"]);
    clock.advance(365 * 24 * 3_600_000);
    expect(router.stateOf("key-a")).toEqual({ status: "blocked" });
  });

  it("a disabled key is never promoted by time", () => {
    const { router, clock } = routerWith(["key-a", "key-b"], { cooldownMs: 1 });
    router.markDisabled("key-a");
    clock.advance(5);
    expect(picks(router, 3)).toEqual(["key-b", "key-b", "key-b"]);
    expect(router.stateOf("key-a")).toEqual({ status: "disabled" });
  });

  it("clearCooldown restores a blocked key", () => {
    const { router } = routerWith(["key-a"]);
    router.markBlocked("key-a");
    expect(router.nextKey()).toBeUndefined();
    router.clearCooldown("key-a");
    expect(router.nextKey()).toBe("key-a");
  });

  it("clearCooldown restores a disabled key", () => {
    const { router } = routerWith(["key-a"]);
    router.markDisabled("key-a");
    expect(router.nextKey()).toBeUndefined();
    router.clearCooldown("key-a");
    expect(router.nextKey()).toBe("key-a");
  });

  it("maxRetry is undefined unless given", () => {
    expect(routerWith(["a", "b", "c"]).router.maxRetry).toBeUndefined();
    expect(routerWith(["a", "b", "c"], { maxRetry: 2 }).router.maxRetry).toBe(2);
  });

  it("the default strategy is round-robin", () => {
    const { router } = routerWith(["a", "b"]);
    expect(router.strategy).toEqual({ type: "round-robin" });
    expect(picks(router, 3)).toEqual(["a", "b", "a"]);
  });

  it("the strategy option is used", () => {
    const { router } = routerWith(["a", "b"], { strategy: { type: "fill-first" } });
    expect(router.strategy).toEqual({ type: "fill-first" });
    expect(picks(router, 2)).toEqual(["a", "a"]);
  });

  it("returns undefined when every key is blocked", () => {
    const { router } = routerWith(["key-a", "key-b"]);
    router.markBlocked("key-a");
    router.markBlocked("key-b");
    expect(router.nextKey()).toBeUndefined();
  });

  it("with disabled, blocked and cooling keys only the ready one is served", () => {
    const { router } = routerWith(["key-a", "key-b", "key-c", "key-d"], { strategy: { type: "fill-first" } });
    router.markDisabled("key-a");
    router.markBlocked("key-b");
    router.markError("key-c");
    expect(picks(router, 2)).toEqual(["key-d", "key-d"]);
  });
});

describe("fair round-robin (correction 1)", () => {
  it("the key after a cooling key gets no double share", () => {
    const { router } = routerWith(["a", "b", "c", "d"]);
    router.markError("b");
    const counts = new Map<string, number>();
    for (const key of picks(router, 300)) counts.set(key!, (counts.get(key!) ?? 0) + 1);
    expect(Object.fromEntries(counts)).toEqual({ a: 100, c: 100, d: 100 });
  });

  it("continues just past the key it returned", () => {
    const { router } = routerWith(["a", "b", "c", "d", "e"]);
    expect(picks(router, 2)).toEqual(["a", "b"]);
    router.markError("c");
    router.markError("d");
    expect(picks(router, 4)).toEqual(["e", "a", "b", "e"]);
  });

  it("each ready key gets an equal share (±1) while others cool, over any window", () => {
    const keys = Array.from({ length: 10 }, (_, i) => `key-${i}`);
    const { router, clock } = routerWith(keys, { cooldownMs: 50 });
    const cooling = new Set(["key-1", "key-2", "key-5", "key-9"]);
    for (const key of cooling) router.markError(key);
    const ready = keys.filter((key) => !cooling.has(key));
    const served = picks(router, 6 * 7 + 3);
    for (let start = 0; start + ready.length <= served.length; start++) {
      expect(new Set(served.slice(start, start + ready.length))).toEqual(new Set(ready));
    }
    clock.advance(50);
    expect(new Set(picks(router, keys.length))).toEqual(new Set(keys));
  });

  it("a key back from cooldown takes its turn where it stands in the order", () => {
    const { router, clock } = routerWith(["a", "b", "c"], { cooldownMs: 10 });
    router.markError("b");
    expect(picks(router, 3)).toEqual(["a", "c", "a"]);
    clock.advance(10);
    expect(picks(router, 4)).toEqual(["b", "c", "a", "b"]);
  });
});

describe("marks never downgrade (correction 2)", () => {
  it("a late cooldown mark leaves a blocked key blocked", () => {
    const { router, clock } = routerWith(["a", "b"]);
    router.markBlocked("a");
    expect(router.markError("a")).toBe(true);
    expect(router.markErrorWithDelay("a", 5)).toBe(true);
    clock.advance(10);
    expect(router.stateOf("a")).toEqual({ status: "blocked" });
    expect(picks(router, 2)).toEqual(["b", "b"]);
  });

  it("a cooldown mark leaves a disabled key disabled", () => {
    const { router, clock } = routerWith(["a", "b"]);
    router.markDisabled("a");
    router.markError("a");
    clock.advance(MINUTE);
    expect(router.stateOf("a")).toEqual({ status: "disabled" });
  });

  it("markBlocked leaves a disabled key disabled", () => {
    const { router } = routerWith(["a"]);
    router.markDisabled("a");
    expect(router.markBlocked("a")).toBe(true);
    expect(router.stateOf("a")).toEqual({ status: "disabled" });
  });

  it("markBlocked and markDisabled raise a cooling key, which then never expires", () => {
    const { router, clock } = routerWith(["a", "b"], { cooldownMs: 100 });
    router.markError("a");
    router.markBlocked("a");
    router.markError("b");
    router.markDisabled("b");
    clock.advance(1_000);
    expect(router.stateOf("a")).toEqual({ status: "blocked" });
    expect(router.stateOf("b")).toEqual({ status: "disabled" });
    expect(router.nextReadyInMs()).toBeUndefined();
  });

  it("markDisabled raises a blocked key", () => {
    const { router } = routerWith(["a"]);
    router.markBlocked("a");
    router.markDisabled("a");
    expect(router.stateOf("a")).toEqual({ status: "disabled" });
  });

  it("a shorter cooldown never shortens a longer one", () => {
    const { router, clock } = routerWith(["a"], { cooldownMs: 1_000 });
    router.markErrorWithDelay("a", 10_000);
    router.markError("a");
    router.markErrorWithDelay("a", 5);
    expect(router.stateOf("a")).toEqual({ status: "cooldown", remainingMs: 10_000 });
    clock.advance(9_999);
    expect(router.nextKey()).toBeUndefined();
    clock.advance(1);
    expect(router.nextKey()).toBe("a");
  });

  it("a longer cooldown extends a shorter one", () => {
    const { router, clock } = routerWith(["a"], { cooldownMs: 1_000 });
    router.markError("a");
    clock.advance(500);
    router.markErrorWithDelay("a", 2_000);
    expect(router.stateOf("a")).toEqual({ status: "cooldown", remainingMs: 2_000 });
  });

  it("a mark after a cooldown ran out opens a new window from now", () => {
    const { router, clock } = routerWith(["a"], { cooldownMs: 1_000 });
    router.markError("a");
    clock.advance(1_500);
    router.markErrorWithDelay("a", 100);
    expect(router.stateOf("a")).toEqual({ status: "cooldown", remainingMs: 100 });
  });

  it("only clearCooldown lowers a state", () => {
    const { router } = routerWith(["a"]);
    router.markDisabled("a");
    router.markBlocked("a");
    router.markError("a");
    expect(router.stateOf("a")).toEqual({ status: "disabled" });
    router.clearCooldown("a");
    expect(router.stateOf("a")).toEqual({ status: "ready" });
  });
});

describe("cooldown timing (correction 3)", () => {
  it("a cooldown ends exactly when now() reaches the deadline", () => {
    const { router, clock } = routerWith(["a"], { cooldownMs: 1_000 });
    router.markError("a");
    clock.advance(999.5);
    expect(router.nextKey()).toBeUndefined();
    expect(router.stateOf("a")).toEqual({ status: "cooldown", remainingMs: 0.5 });
    clock.advance(0.5);
    expect(router.stateOf("a")).toEqual({ status: "ready" });
    expect(router.nextKey()).toBe("a");
  });

  it("a zero delay cools nothing", () => {
    const { router } = routerWith(["a"], { cooldownMs: 0 });
    router.markError("a");
    expect(router.nextKey()).toBe("a");
    router.markErrorWithDelay("a", 0);
    expect(router.nextReadyInMs()).toBe(0);
  });

  it("the clock is read only while a key is cooling", () => {
    let reads = 0;
    const router = new CredentialRouter(["a", "b"], {
      now: () => {
        reads++;
        return 0;
      },
    });
    picks(router, 10);
    router.stateOf("a");
    router.nextReadyInMs();
    router.markBlocked("a");
    router.clearCooldown("a");
    expect(reads).toBe(0);
    router.markError("a");
    expect(reads).toBe(1);
    router.nextKey();
    expect(reads).toBe(2);
  });
});

describe("nextReadyInMs (correction 4)", () => {
  it("is 0 while some key is ready", () => {
    const { router } = routerWith(["a", "b"]);
    expect(router.nextReadyInMs()).toBe(0);
    router.markError("a");
    expect(router.nextReadyInMs()).toBe(0);
  });

  it("is the time until the earliest cooldown ends when none is ready", () => {
    const { router, clock } = routerWith(["a", "b", "c"]);
    router.markErrorWithDelay("a", 3_000);
    router.markErrorWithDelay("b", 1_000);
    router.markBlocked("c");
    expect(router.nextReadyInMs()).toBe(1_000);
    clock.advance(400);
    expect(router.nextReadyInMs()).toBe(600);
    clock.advance(600);
    expect(router.nextReadyInMs()).toBe(0);
    router.markErrorWithDelay("b", 5_000);
    expect(router.nextReadyInMs()).toBe(2_000);
  });

  it("is undefined when every key is blocked or disabled", () => {
    const { router } = routerWith(["a", "b"]);
    router.markBlocked("a");
    router.markDisabled("b");
    expect(router.nextReadyInMs()).toBeUndefined();
  });
});

describe("bounded round-robin position (correction 5)", () => {
  it("keeps rotating correctly after many more picks than keys", () => {
    const { router } = routerWith(["a", "b", "c"]);
    picks(router, 3 * 100_000);
    expect(picks(router, 4)).toEqual(["a", "b", "c", "a"]);
  });
});

describe("unknown keys", () => {
  it("marks and clearCooldown return false and change nothing", () => {
    const { router } = routerWith(["a", "b"]);
    expect(router.markError("zz")).toBe(false);
    expect(router.markErrorWithDelay("zz", 10)).toBe(false);
    expect(router.markBlocked("zz")).toBe(false);
    expect(router.markDisabled("zz")).toBe(false);
    expect(router.clearCooldown("zz")).toBe(false);
    expect(picks(router, 4)).toEqual(["a", "b", "a", "b"]);
  });

  it("known keys return true", () => {
    const { router } = routerWith(["a"]);
    expect(router.markError("a")).toBe(true);
    expect(router.markErrorWithDelay("a", 1)).toBe(true);
    expect(router.markBlocked("a")).toBe(true);
    expect(router.markDisabled("a")).toBe(true);
    expect(router.clearCooldown("a")).toBe(true);
    expect(router.clearCooldown("a")).toBe(true);
  });

  it("stateOf is undefined for an unknown key", () => {
    const { router } = routerWith(["a"]);
    expect(router.stateOf("b")).toBeUndefined();
    expect(router.stateOf("a")).toEqual({ status: "ready" });
  });
});

describe("bad input", () => {
  const SECRET = "sk-live-0123456789abcdef";

  it.each([
    ["not an array", "sk-a" as unknown, /keys must be an array/],
    ["an empty array", [], /at least one key/],
    ["a non-string entry", ["sk-a", 7], /keys\[1\] must be a non-empty string/],
    ["an empty string", ["sk-a", "sk-b", ""], /keys\[2\] must be a non-empty string/],
    // A lone surrogate has no UTF-8 form: "k\uD800" and "k\uDC00" would share one fingerprint, and a
    // saved state naming it twice would fail to restore.
    ["a lone high surrogate", ["sk-a", "k\uD800"], /^keys\[1\] must be well-formed UTF-16 \(no lone surrogate\), received a string$/],
    ["a lone low surrogate", ["k\uDC00x", "sk-b"], /keys\[0\] must be well-formed UTF-16/],
  ])("keys that are %s throw a TypeError", (_, keys, message) => {
    expect(() => new CredentialRouter(keys as string[])).toThrow(TypeError);
    expect(() => new CredentialRouter(keys as string[])).toThrow(message);
  });

  it("a key with a surrogate pair (an emoji) is well-formed and accepted", () => {
    const router = new CredentialRouter(["sk-🔑-one", "sk-🔑-two"]);
    expect(router.nextKey()).toBe("sk-🔑-one");
    expect(new Set(router.snapshot().map((row) => row.id)).size).toBe(2);
  });

  it("a duplicate key throws a TypeError naming both indices, never the key", () => {
    const create = () => new CredentialRouter(["k0", "k1", SECRET, "k3", SECRET]);
    expect(create).toThrow(TypeError);
    expect(create).toThrow("keys[4] duplicates keys[2]");
    try {
      create();
    } catch (error) {
      expect(String(error)).not.toContain(SECRET);
    }
  });

  it.each([-1, Number.NaN, Infinity, "100", null])("cooldownMs %s throws a RangeError", (cooldownMs) => {
    expect(() => new CredentialRouter(["a"], { cooldownMs: cooldownMs as number })).toThrow(RangeError);
    expect(() => new CredentialRouter(["a"], { cooldownMs: cooldownMs as number })).toThrow(/cooldownMs/);
  });

  it.each([0, -2, 1.5, Number.NaN, "3"])("maxRetry %s throws a RangeError", (maxRetry) => {
    expect(() => new CredentialRouter(["a"], { maxRetry: maxRetry as number })).toThrow(RangeError);
    expect(() => new CredentialRouter(["a"], { maxRetry: maxRetry as number })).toThrow(/maxRetry/);
  });

  it.each([{ type: "least-used" }, { type: undefined }, "round-robin", null])(
    "strategy %j throws a TypeError",
    (strategy) => {
      const create = () => new CredentialRouter(["a"], { strategy: strategy as never });
      expect(create).toThrow(TypeError);
      expect(create).toThrow(/strategy/);
    },
  );

  it("a now that is not a function throws a TypeError", () => {
    expect(() => new CredentialRouter(["a"], { now: 5 as never })).toThrow(TypeError);
  });

  it.each([-1, Number.NaN, Infinity, -Infinity, "5", undefined])(
    "markErrorWithDelay with delayMs %s throws a RangeError and changes nothing",
    (delayMs) => {
      const { router } = routerWith(["a", "b"]);
      expect(() => router.markErrorWithDelay("a", delayMs as number)).toThrow(RangeError);
      expect(() => router.markErrorWithDelay("a", delayMs as number)).toThrow(/delayMs/);
      expect(router.stateOf("a")).toEqual({ status: "ready" });
    },
  );

  it("a key passed where a delay belongs is not echoed in the message", () => {
    const { router } = routerWith(["a"]);
    expect(() => router.markErrorWithDelay("a", SECRET as never)).toThrow(/received a string$/);
  });

  it("the router copies the key list", () => {
    const keys = ["a", "b"];
    const router = new CredentialRouter(keys);
    keys[0] = "changed";
    keys.push("c");
    expect(router.size).toBe(2);
    expect(picks(router, 3)).toEqual(["a", "b", "a"]);
    expect(router.markError("a")).toBe(true);
    expect(router.markError("changed")).toBe(false);
  });

  it("the router copies the strategy", () => {
    const strategy: { type: "round-robin" | "fill-first" } = { type: "fill-first" };
    const router = new CredentialRouter(["a", "b"], { strategy });
    strategy.type = "round-robin";
    expect(router.strategy).toEqual({ type: "fill-first" });
    expect(picks(router, 2)).toEqual(["a", "a"]);
    expect(Object.isFrozen(router.strategy)).toBe(true);
  });
});

describe("keys never leak", () => {
  const keys = ["sk-proj-AAAA1111bbbb2222cccc", "sk-proj-ZZZZ9999yyyy8888xxxx"];

  it("String, JSON and inspect show no key", () => {
    const router = new CredentialRouter(keys, { labels: ["first", "second"] });
    router.markError(keys[0]!);
    router.markBlocked(keys[1]!);
    const shown = [String(router), `${router}`, JSON.stringify(router), inspect(router, { showHidden: true, depth: 5 })];
    for (const text of shown) for (const key of keys) expect(text).not.toContain(key);
    expect(JSON.stringify(router)).toBe("{}");
    expect(inspect(router)).toBe("CredentialRouter {}");
  });

  it("the router has no enumerable own properties to walk into", () => {
    const router = new CredentialRouter(keys);
    expect(Object.keys(router)).toEqual([]);
    expect(Object.getOwnPropertyNames(router)).toEqual([]);
  });
});

describe("the default clock, driven by fake timers", () => {
  let clock: FakeTimers.Clock;

  beforeEach(() => {
    clock = FakeTimers.install({ toFake: ["performance", "Date"] });
  });

  afterEach(() => {
    clock.uninstall();
  });

  it("cooldowns follow performance.now()", () => {
    const router = new CredentialRouter(["a", "b"], { cooldownMs: 30_000 });
    router.markError("a");
    expect(router.stateOf("a")).toEqual({ status: "cooldown", remainingMs: 30_000 });
    clock.tick(29_999);
    expect(picks(router, 2)).toEqual(["b", "b"]);
    expect(router.nextReadyInMs()).toBe(0);
    router.markError("b");
    expect(router.nextReadyInMs()).toBe(1);
    clock.tick(1);
    expect(router.stateOf("a")).toEqual({ status: "ready" });
    expect(router.nextKey()).toBe("a");
  });

  it("the default cooldown is 30 seconds", () => {
    const router = new CredentialRouter(["a"]);
    router.markError("a");
    expect(router.nextReadyInMs()).toBe(30_000);
  });
});

describe("sparse arrays", () => {
  it("a hole in the key list is refused like any non-string entry", () => {
    // eslint-disable-next-line no-sparse-arrays
    const keys = ["a", , "c"] as string[];
    expect(() => new CredentialRouter(keys)).toThrow("keys[1] must be a non-empty string, received undefined");
  });
});

describe("a clock that misbehaves", () => {
  it("a NaN reading counts as the last good one: no deadline is poisoned, every cooldown still ends", () => {
    let time = 1_000;
    let broken = true;
    const router = new CredentialRouter(["a", "b"], { cooldownMs: 1_000, now: () => (broken ? Number.NaN : time) });
    router.markError("a");
    broken = false;
    router.markError("b");
    expect(router.stateOf("b")).toEqual({ status: "cooldown", remainingMs: 1_000 });
    time += 10_000;
    expect(router.stateOf("a")).toEqual({ status: "ready" });
    expect(router.stateOf("b")).toEqual({ status: "ready" });
    expect(router.nextReadyInMs()).toBe(0);
  });

  it("a clock that goes backwards only makes cooldowns longer", () => {
    let time = 5_000;
    const router = new CredentialRouter(["a"], { cooldownMs: 1_000, now: () => time });
    router.markError("a");
    time -= 2_000;
    expect(router.stateOf("a")).toEqual({ status: "cooldown", remainingMs: 3_000 });
    time += 3_000;
    expect(router.nextKey()).toBe("a");
  });
});

describe("listeners that mark keys", () => {
  it("a mark on an expired key, whose expiry makes a listener disable it, leaves it disabled", () => {
    const clock = manualClock();
    const router = new CredentialRouter(["a", "b"], { now: clock.now, cooldownMs: 100 });
    router.subscribe((event) => {
      if (event.type === "ready" && event.reason === "expired" && event.index === 0) router.markDisabled("a");
    });
    router.markError("a");
    clock.advance(100);
    router.markError("a");
    expect(router.stateOf("a")).toEqual({ status: "disabled" });
  });
});

describe("no clock read while no key is cooling", () => {
  it("picks, reads of state, exports and execute never call now() while no key cools", async () => {
    let reads = 0;
    const keys = ["sk-clock-0000aaaa1111", "sk-clock-2222bbbb3333", "sk-clock-4444cccc5555"];
    const router = new CredentialRouter(keys, { now: () => (reads++, 0) });
    router.markBlocked(keys[1]!);
    router.markDisabled(keys[2]!);
    router.markSuccess(keys[0]!);
    expect(router.nextKey()).toBe(keys[0]);
    expect(router.stateOf(keys[0]!)).toEqual({ status: "ready" });
    expect(router.nextReadyInMs()).toBe(0);
    expect(router.snapshot().map((row) => row.state.status)).toEqual(["ready", "blocked", "disabled"]);
    expect(router.exportState().keys).toHaveLength(2);
    expect(await router.execute(() => "ok")).toBe("ok");
    expect(reads).toBe(0);
    // One cooling key, and the clock is read.
    router.markError(keys[0]!);
    expect(reads).toBeGreaterThan(0);
  });
});

describe("router.picks", () => {
  it("counts the keys handed out, by nextKey (in a scope too) and by execute's attempts, and no pick that found none", async () => {
    const keys = ["key-a", "key-b", "key-c"];
    const { router } = routerWith(keys);
    router.nextKey();
    router.nextKey();
    expect(router.picks).toBe(2);
    // Two attempts (key-c, then key-a): the first fails for another key to try, the second answers.
    await router.execute((_, { attempt }) => (attempt === 1 ? Promise.reject(new Error("network")) : "ok"));
    expect(router.picks).toBe(4);
    router.markBlocked("key-a");
    router.nextKey();
    router.nextKey("m");
    expect(router.picks).toBe(6);
    router.markBlocked("key-b");
    router.markBlocked("key-c");
    expect(router.nextKey()).toBeUndefined();
    expect(router.nextKey("m")).toBeUndefined();
    await expect(router.execute(() => "ok")).rejects.toThrow();
    expect(router.picks).toBe(6);
  });
});

describe("execute passes over the keys it tried", () => {
  it("with fill-first, the key after a tried first key is the next one tried", async () => {
    const { router } = routerWith(["key-a", "key-b", "key-c"], { strategy: { type: "fill-first" } });
    const tried: string[] = [];
    const result = await router.execute((key) => (tried.push(key), key === "key-a" ? Promise.reject(new Error("network")) : key));
    expect([result, tried]).toEqual(["key-b", ["key-a", "key-b"]]);
  });

  it("never tries a key twice in one call, even with maxAttempts above the key count", async () => {
    const { router } = routerWith(["key-a", "key-b"]);
    router.nextKey();
    const tried: string[] = [];
    await expect(router.execute((key) => (tried.push(key), Promise.reject(new Error("network"))), { maxAttempts: 5 })).rejects.toThrow("network");
    expect(tried).toEqual(["key-b", "key-a"]);
  });

  it("in a scope, waits only for a key it has not tried", async () => {
    const { router } = routerWith(["key-a", "key-b"]);
    router.markBlocked("key-b");
    // key-a rests 1 s in the scope after its 429; no other key will be back, so the call ends at once.
    const response = (await router.execute(async () => new Response("slow down", { status: 429, headers: { "retry-after": "1" } }), {
      scope: "m",
      maxWaitMs: 60_000,
    })) as Response;
    expect(response.status).toBe(429);
  }, 10_000);
});

describe("events carry a scope only when the change is in one", () => {
  it("a key-wide mark's event and a key-wide exhausted event have no scope field", () => {
    const events: unknown[] = [];
    const { router } = routerWith(["key-a"]);
    router.subscribe((event) => void events.push(event));
    router.markBlocked("key-a");
    router.nextKey();
    expect(events).toStrictEqual([
      { type: "blocked", reason: "manual", index: 0, hint: "#0" },
      { type: "exhausted", retryAfterMs: undefined },
    ]);
  });

  it("a scope's exhausted event says how long until a key cooling key-wide is back", () => {
    const events: unknown[] = [];
    const { router } = routerWith(["key-a", "key-b"]);
    router.markBlocked("key-a", { scope: "m" });
    router.markErrorWithDelay("key-b", 5_000);
    router.subscribe((event) => void events.push(event));
    router.nextKey("m");
    expect(events).toStrictEqual([{ type: "exhausted", retryAfterMs: 5_000, scope: "m" }]);
  });
});

describe("maxScopes drops the scope used least recently", () => {
  it("of scopes opened one after another and not used since, the first", () => {
    const { router } = routerWith(["key-a", "key-b"], { maxScopes: 2 });
    for (const scope of ["one", "two", "three"]) router.markBlocked("key-a", { scope });
    expect(["one", "two", "three"].map((scope) => router.stateOf("key-a", scope)!.status)).toEqual(["ready", "blocked", "blocked"]);
  });

  it("of three, the one whose turn came longest ago", () => {
    const { router } = routerWith(["key-a", "key-b"], { maxScopes: 3 });
    for (const scope of ["one", "two", "three"]) router.markBlocked("key-a", { scope });
    router.nextKey("two");
    router.nextKey("three");
    router.nextKey("one");
    router.nextKey("three");
    router.markBlocked("key-a", { scope: "four" });
    expect(["one", "two", "three", "four"].map((scope) => router.stateOf("key-a", scope)!.status)).toEqual(["blocked", "ready", "blocked", "blocked"]);
  });
});
