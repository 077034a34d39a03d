import { describe, expect, it } from "vitest";
import { CredentialRouter, fingerprint, type CredentialRouterOptions, type RouterEvent } from "../src/index.js";
import { manualClock, KEY_A, KEY_B, KEY_C } from "./helpers/fixtures.js";

const KEYS = [KEY_A, KEY_B, KEY_C];
const MODEL = "gpt-4o";
const OTHER = "gpt-4o-mini";

function routerWith(options: CredentialRouterOptions = {}, keys: string[] = KEYS) {
  const clock = manualClock();
  const router = new CredentialRouter(keys, { now: clock.now, cooldownMs: 10_000, ...options });
  const events: RouterEvent[] = [];
  router.subscribe((event) => void events.push(event));
  return { router, clock, events };
}

const picks = (router: CredentialRouter, count: number, scope?: string) => Array.from({ length: count }, () => router.nextKey(scope) ?? "-");

describe("scopes: a mark in a scope takes the key out there only", () => {
  it("a cooldown in one model leaves the key in rotation for the others and key-wide", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_A, 5_000, { scope: MODEL, reason: "rate_limit" });
    expect(picks(router, 4, MODEL)).toEqual([KEY_B, KEY_C, KEY_B, KEY_C]);
    expect(picks(router, 3, OTHER)).toEqual([KEY_A, KEY_B, KEY_C]);
    expect(picks(router, 3)).toEqual([KEY_A, KEY_B, KEY_C]);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    expect(router.stateOf(KEY_A, MODEL)).toEqual({ status: "cooldown", remainingMs: 5_000 });
    expect(router.stateOf(KEY_A, OTHER)).toEqual({ status: "ready" });
  });

  it("the key comes back in the scope when its cooldown ends, with an expired event that names the scope", () => {
    const { router, clock, events } = routerWith();
    router.markErrorWithDelay(KEY_A, 5_000, { scope: MODEL });
    clock.advance(5_000);
    expect(router.nextKey(MODEL)).toBe(KEY_A);
    expect(events).toEqual([
      { type: "cooldown", index: 0, hint: "sk-p…cccc", delayMs: 5_000, reason: "manual", scope: MODEL },
      { type: "ready", index: 0, hint: "sk-p…cccc", reason: "expired", scope: MODEL },
    ]);
  });

  it("a block in a scope keeps the key out of that scope only, until cleared there", () => {
    const { router } = routerWith();
    router.markBlocked(KEY_B, { scope: MODEL, reason: "model_not_found" });
    expect(picks(router, 2, MODEL)).toEqual([KEY_A, KEY_C]);
    expect(picks(router, 3, OTHER)).toEqual([KEY_A, KEY_B, KEY_C]);
    expect(router.stateOf(KEY_B, MODEL)).toEqual({ status: "blocked" });
    expect(router.clearCooldown(KEY_B, { scope: OTHER })).toBe(true);
    expect(router.stateOf(KEY_B, MODEL)).toEqual({ status: "blocked" });
    router.clearCooldown(KEY_B, { scope: MODEL });
    expect(router.stateOf(KEY_B, MODEL)).toEqual({ status: "ready" });
  });

  it("a mark without a scope takes the key out of every scope", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_C, 7_000, { scope: MODEL });
    router.markBlocked(KEY_A);
    expect(picks(router, 2, MODEL)).toEqual([KEY_B, KEY_B]);
    expect(picks(router, 2, OTHER)).toEqual([KEY_B, KEY_C]);
    expect(router.stateOf(KEY_A, MODEL)).toEqual({ status: "blocked" });
  });

  it("stateOf in a scope is the worse of the key-wide state and the scope's, and of two cooldowns the longer", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_A, 3_000);
    router.markErrorWithDelay(KEY_A, 8_000, { scope: MODEL });
    expect(router.stateOf(KEY_A, MODEL)).toEqual({ status: "cooldown", remainingMs: 8_000 });
    router.markErrorWithDelay(KEY_B, 9_000);
    router.markErrorWithDelay(KEY_B, 2_000, { scope: MODEL });
    expect(router.stateOf(KEY_B, MODEL)).toEqual({ status: "cooldown", remainingMs: 9_000 });
    router.markBlocked(KEY_C, { scope: MODEL });
    router.markErrorWithDelay(KEY_C, 1_000);
    expect(router.stateOf(KEY_C, MODEL)).toEqual({ status: "blocked" });
    expect(router.stateOf(KEY_C)).toEqual({ status: "cooldown", remainingMs: 1_000 });
  });

  it("clearCooldown without a scope clears the key key-wide and in every scope", () => {
    const { router, events } = routerWith();
    router.markErrorWithDelay(KEY_A, 5_000, { scope: MODEL });
    router.markBlocked(KEY_A, { scope: OTHER });
    router.markDisabled(KEY_A);
    events.length = 0;
    router.clearCooldown(KEY_A);
    expect([router.stateOf(KEY_A), router.stateOf(KEY_A, MODEL), router.stateOf(KEY_A, OTHER)]).toEqual([
      { status: "ready" },
      { status: "ready" },
      { status: "ready" },
    ]);
    expect(events.map((event) => (event.type === "ready" ? [event.reason, event.scope] : event.type))).toEqual([
      ["cleared", undefined],
      ["cleared", MODEL],
      ["cleared", OTHER],
    ]);
  });

  it("a scope no one marked routes as key-wide, and an unknown key is false in a scope too", () => {
    const { router } = routerWith();
    expect(picks(router, 3, "never-marked")).toEqual([KEY_A, KEY_B, KEY_C]);
    expect(router.markError("sk-unknown-0000000000", { scope: MODEL })).toBe(false);
    expect(router.snapshot().every((row) => row.scopes.length === 0)).toBe(true);
  });

  it("a scope named like an Object.prototype member is a scope like any other", () => {
    const { router, clock } = routerWith();
    const names = ["__proto__", "constructor", "toString", "hasOwnProperty"];
    names.forEach((name, turn) => {
      expect(picks(router, 3, name)).toEqual([KEY_A, KEY_B, KEY_C]);
      expect(router.stateOf(KEY_B, name)).toEqual({ status: "ready" });
      router.markErrorWithDelay(KEY_B, 1_000 * (turn + 1), { scope: name });
      expect(picks(router, 2, name)).toEqual([KEY_A, KEY_C]);
      expect(router.stateOf(KEY_B, name)).toEqual({ status: "cooldown", remainingMs: 1_000 * (turn + 1) });
      expect(router.stateOf(KEY_B)).toEqual({ status: "ready" });
    });
    expect(router.snapshot()[1]!.scopes.map((row) => row.scope)).toEqual(names);
    clock.advance(1_000);
    expect(picks(router, 3, "__proto__")).toEqual([KEY_A, KEY_B, KEY_C]);
    expect(router.snapshot()[1]!.scopes.map((row) => row.scope)).toEqual(names.slice(1));
  });
});

describe("scopes: fairness", () => {
  it("each scope keeps its own round-robin position over the keys", () => {
    const keys = [KEY_A, KEY_B, KEY_C, "sk-proj-DDDD7777hhhh8888iiii"];
    const { router } = routerWith({}, keys);
    // Both scopes live, each with the last key out.
    router.markBlocked(keys[3]!, { scope: MODEL });
    router.markBlocked(keys[3]!, { scope: OTHER });
    const served: Record<string, string[]> = { [MODEL]: [], [OTHER]: [] };
    for (let round = 0; round < 6; round++) {
      served[MODEL]!.push(router.nextKey(MODEL)!);
      served[OTHER]!.push(router.nextKey(OTHER)!);
    }
    // Interleaved calls do not take turns from each other: each scope cycles through every key.
    expect(served[MODEL]).toEqual([KEY_A, KEY_B, KEY_C, KEY_A, KEY_B, KEY_C]);
    expect(served[OTHER]).toEqual([KEY_A, KEY_B, KEY_C, KEY_A, KEY_B, KEY_C]);
  });

  it("a key that comes back key-wide returns to the scopes where it is ready", () => {
    const { router, clock } = routerWith();
    router.markBlocked(KEY_C, { scope: MODEL });
    router.markErrorWithDelay(KEY_A, 1_000);
    expect(picks(router, 2, MODEL)).toEqual([KEY_B, KEY_B]);
    clock.advance(1_000);
    expect(picks(router, 2, MODEL)).toEqual([KEY_A, KEY_B]);
  });

  it("works with every strategy", () => {
    for (const strategy of [
      { type: "fill-first" },
      { type: "weighted", weights: [3, 1, 1] },
      { type: "priority", tiers: [0, 1, 1] },
      { type: "random", random: () => 0.99 },
    ] as const) {
      const { router } = routerWith({ strategy });
      router.markBlocked(KEY_C, { scope: MODEL });
      router.markBlocked(KEY_A, { scope: OTHER });
      const model = new Set(picks(router, 12, MODEL));
      const other = new Set(picks(router, 12, OTHER));
      expect([...model].sort()).toEqual(strategy.type === "fill-first" || strategy.type === "priority" ? [KEY_A] : strategy.type === "random" ? [KEY_B] : [KEY_A, KEY_B]);
      expect(other.has(KEY_A)).toBe(false);
      expect(other.size).toBeGreaterThan(0);
    }
  });
});

describe("scopes: nextReadyInMs and exhausted", () => {
  it("is how long until a key is ready both key-wide and in the scope", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_A, 9_000);
    router.markErrorWithDelay(KEY_A, 2_000, { scope: MODEL });
    router.markErrorWithDelay(KEY_B, 6_000, { scope: MODEL });
    router.markBlocked(KEY_C, { scope: MODEL });
    router.markErrorWithDelay(KEY_C, 1_000);
    // A is back in the scope at 2 s but key-wide at 9 s; B at 6 s; C never (blocked in the scope).
    expect(router.nextReadyInMs(MODEL)).toBe(6_000);
    expect(router.nextReadyInMs()).toBe(0);
    expect(router.nextKey(MODEL)).toBeUndefined();
  });

  it("is undefined when every key is blocked in the scope or key-wide", () => {
    const { router } = routerWith();
    router.markBlocked(KEY_A, { scope: MODEL });
    router.markBlocked(KEY_B);
    router.markDisabled(KEY_C, { scope: MODEL });
    expect(router.nextReadyInMs(MODEL)).toBeUndefined();
    expect(router.nextReadyInMs(OTHER)).toBe(0);
  });

  it("an exhausted pick in a scope names the scope and says when a key is back there", () => {
    const { router, events } = routerWith();
    for (const key of KEYS) router.markErrorWithDelay(key, 4_000, { scope: MODEL });
    events.length = 0;
    expect(router.nextKey(MODEL)).toBeUndefined();
    expect(events).toEqual([{ type: "exhausted", retryAfterMs: 4_000, scope: MODEL }]);
    expect(router.nextKey()).toBe(KEY_A);
  });

  it("the wait in an exhausted scope follows every change, key-wide, in the scope and of the clock", () => {
    const { router, clock, events } = routerWith();
    const waits = () => {
      events.length = 0;
      expect(router.nextKey(MODEL)).toBeUndefined();
      const told = events.find((event) => event.type === "exhausted");
      expect(told).toMatchObject({ type: "exhausted", scope: MODEL });
      const wait = router.nextReadyInMs(MODEL);
      expect(told && "retryAfterMs" in told ? told.retryAfterMs : "none").toBe(wait);
      return wait;
    };
    KEYS.forEach((key, at) => router.markErrorWithDelay(key, 5_000 + 1_000 * at, { scope: MODEL }));
    expect(waits()).toBe(5_000);
    router.markBlocked(KEY_A);
    expect(waits()).toBe(6_000);
    router.markErrorWithDelay(KEY_B, 9_000);
    expect(waits()).toBe(7_000);
    router.markBlocked(KEY_C, { scope: MODEL });
    expect(waits()).toBe(9_000);
    clock.advance(1_000);
    expect(waits()).toBe(8_000);
    router.markErrorWithDelay(KEY_C, 2_000);
    expect(waits()).toBe(8_000);
    router.clearCooldown(KEY_C, { scope: MODEL });
    expect(waits()).toBe(2_000);
    router.markDisabled(KEY_B);
    expect(waits()).toBe(2_000);
    router.markBlocked(KEY_C);
    expect(waits()).toBeUndefined();
    router.clearCooldown(KEY_A);
    expect(router.nextKey(MODEL)).toBe(KEY_A);
  });
});

describe("scopes: lifetime and bounds", () => {
  it("a scope whose keys are all ready again holds no state: it leaves snapshots and saved state", () => {
    const { router, clock } = routerWith();
    router.markErrorWithDelay(KEY_A, 1_000, { scope: MODEL });
    expect(router.exportState().version).toBe(2);
    clock.advance(1_000);
    expect(router.snapshot().every((row) => row.scopes.length === 0)).toBe(true);
    expect(router.exportState()).toMatchObject({ version: 1, keys: [{ status: "ready", failures: 1 }] });
  });

  it("past maxScopes the least recently used scope is dropped, and its cooldowns forgotten", () => {
    const { router } = routerWith({ maxScopes: 2 });
    router.markErrorWithDelay(KEY_A, 9_000, { scope: "one" });
    router.markErrorWithDelay(KEY_A, 9_000, { scope: "two" });
    // Using "one" makes "two" the least recently used.
    expect(router.nextKey("one")).toBe(KEY_B);
    router.markErrorWithDelay(KEY_A, 9_000, { scope: "three" });
    expect(router.stateOf(KEY_A, "two")).toEqual({ status: "ready" });
    expect(router.stateOf(KEY_A, "one")).toEqual({ status: "cooldown", remainingMs: 9_000 });
    expect(router.stateOf(KEY_A, "three")).toEqual({ status: "cooldown", remainingMs: 9_000 });
    expect(new Set(router.snapshot()[0]!.scopes.map((row) => row.scope))).toEqual(new Set(["one", "three"]));
  });

  it("a scoped deadline is kept to the millisecond, rounded up, also far into a long-running clock", () => {
    let time = 1_000.25;
    const router = new CredentialRouter(KEYS, { now: () => time });
    router.markErrorWithDelay(KEY_A, 1_500.5, { scope: MODEL });
    // 1 000.25 + 1 500.5 = 2 500.75, kept as 2 501: back at most a millisecond late, never early.
    time = 2_500.75;
    expect(router.nextKey(MODEL)).toBe(KEY_B);
    time = 2_501;
    expect(router.stateOf(KEY_A, MODEL)).toEqual({ status: "ready" });
    // Months later (past 2^32 ms from the scope's start), deadlines still hold.
    router.markBlocked(KEY_C, { scope: MODEL });
    for (const step of [2 ** 31, 2 ** 31, 2 ** 31]) {
      time += step;
      router.markErrorWithDelay(KEY_A, 60_000, { scope: MODEL });
      expect(router.stateOf(KEY_A, MODEL)).toEqual({ status: "cooldown", remainingMs: 60_000 });
      time += 59_999;
      expect(router.nextKey(MODEL)).toBe(KEY_B);
      time += 1;
      expect(router.stateOf(KEY_A, MODEL)).toEqual({ status: "ready" });
    }
  });

  it("key-wide deadlines are exact, to the fraction of a millisecond", () => {
    let time = 1_000.25;
    const router = new CredentialRouter(KEYS, { now: () => time });
    router.markErrorWithDelay(KEY_A, 1_500.5);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 1_500.5 });
    time = 2_500.75;
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
  });

  it("a scoped cooldown lasts as long as asked, wherever the clock stands, up to 2^32-2 ms", () => {
    const DAY = 86_400_000;
    // A scope opened 24 days into the clock (just under 2^31 ms) keeps a 40-day cooldown whole.
    let time = 2 ** 31 - 1_000;
    const router = new CredentialRouter(KEYS, { now: () => time, maxRetryAfterMs: 100 * DAY });
    router.markErrorWithDelay(KEY_A, 40 * DAY, { scope: MODEL });
    expect(router.stateOf(KEY_A, MODEL)).toEqual({ status: "cooldown", remainingMs: 40 * DAY });
    // Longer than the 32 bits a scope keeps a deadline in: cut to 2^32-2 ms (49.7 days), not to none.
    router.markErrorWithDelay(KEY_B, 60 * DAY, { scope: MODEL });
    expect(router.stateOf(KEY_B, MODEL)).toEqual({ status: "cooldown", remainingMs: 2 ** 32 - 2 });
    time += 49 * DAY;
    expect(router.stateOf(KEY_B, MODEL)).toMatchObject({ status: "cooldown" });
  });

  it("a key's run of failures counts cooldowns in every scope", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    router.markError(KEY_A, { scope: MODEL });
    router.markError(KEY_A, { scope: OTHER });
    expect(router.stateOf(KEY_A, OTHER)).toEqual({ status: "cooldown", remainingMs: 2_000 });
    clock.advance(2_000);
    router.markSuccess(KEY_A);
    router.markError(KEY_A);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 1_000 });
  });
});

describe("scopes: saved state", () => {
  it("exports scoped states as version 2 entries and imports them back", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_A, 5_000, { scope: MODEL, reason: "rate_limit" });
    router.markBlocked(KEY_B, { scope: OTHER, reason: "model_not_found" });
    router.markDisabled(KEY_C);
    const saved = router.exportState();
    expect(saved.version).toBe(2);
    expect(saved.keys.map(({ status, scope, reason }) => ({ status, scope, reason }))).toEqual([
      // A's cooldown in the scope opened a window of A's run of failures, which is key-wide.
      { status: "ready", scope: undefined, reason: undefined },
      { status: "disabled", scope: undefined, reason: "manual" },
      { status: "cooldown", scope: MODEL, reason: "rate_limit" },
      { status: "blocked", scope: OTHER, reason: "model_not_found" },
    ]);
    const restored = new CredentialRouter(KEYS, { now: manualClock().now, initialState: JSON.parse(JSON.stringify(saved)) });
    expect(restored.stateOf(KEY_A, MODEL)).toMatchObject({ status: "cooldown" });
    expect(restored.stateOf(KEY_A)).toEqual({ status: "ready" });
    expect(restored.stateOf(KEY_B, OTHER)).toEqual({ status: "blocked" });
    expect(restored.snapshot()[1]!.scopes).toEqual([{ scope: OTHER, state: { status: "blocked" }, reason: "model_not_found" }]);
  });

  it("a scoped ready entry clears the key in that scope", () => {
    const { router } = routerWith();
    router.markBlocked(KEY_A, { scope: MODEL });
    router.importState({ version: 2, savedAt: Date.now(), keys: [{ id: router.snapshot()[0]!.id, status: "ready", scope: MODEL }] });
    expect(router.stateOf(KEY_A, MODEL)).toEqual({ status: "ready" });
  });

  it("a key out key-wide and in several scopes, the empty scope among them, survives the round trip", () => {
    const { router } = routerWith();
    router.markBlocked(KEY_A);
    router.markBlocked(KEY_A, { scope: "" });
    router.markBlocked(KEY_A, { scope: MODEL });
    router.markErrorWithDelay(KEY_A, 5_000, { scope: OTHER });
    const copy = routerWith().router;
    copy.importState(router.exportState());
    expect(copy.snapshot()[0]!.state).toEqual({ status: "blocked" });
    expect(copy.snapshot()[0]!.scopes.map(({ scope, state }) => [scope, state.status])).toEqual([
      ["", "blocked"],
      [MODEL, "blocked"],
      [OTHER, "cooldown"],
    ]);
  });

  it("keys whose cooldowns ended before an import are reported back in the order they ended", () => {
    const { router, clock, events } = routerWith();
    router.markErrorWithDelay(KEY_A, 300, { scope: MODEL });
    router.markErrorWithDelay(KEY_C, 200, { scope: MODEL });
    clock.advance(4_000);
    // Nothing has looked since both ended; the import of B's cooldown finds them still listed.
    router.importState({ version: 2, savedAt: Date.now(), keys: [{ id: fingerprint(KEY_B), status: "cooldown", until: Date.now() + 10_000, scope: MODEL }] });
    router.nextKey(MODEL);
    expect(events.filter((event) => event.type === "ready").map((event) => "index" in event && event.index)).toEqual([2, 0]);
  });

  it("a scoped entry neither reads nor ends the key's run of failures, nor lowers its key-wide state", () => {
    const { router, events } = routerWith();
    router.markError(KEY_A);
    router.markBlocked(KEY_B);
    events.length = 0;
    const entries = [KEY_A, KEY_B].map((key) => ({ id: fingerprint(key), status: "ready" as const, failures: 5, scope: MODEL }));
    router.importState({ version: 2, savedAt: Date.now(), keys: entries });
    expect(router.snapshot().map((row) => [row.state.status, row.failures])).toEqual([
      ["cooldown", 1],
      ["blocked", 0],
      ["ready", 0],
    ]);
    // A ready entry for a scope that holds nothing opens none: nothing changed.
    expect(router.exportState().version).toBe(1);
    expect(events).toEqual([]);
  });

  it("an entry for a key this router does not hold changes nothing and tells no one", () => {
    const { router, events } = routerWith();
    router.importState({ version: 1, savedAt: Date.now(), keys: [{ id: fingerprint("sk-someone-elses-key"), status: "blocked" }] });
    expect(events).toEqual([]);
    router.markBlocked(KEY_A);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    expect(router.nextReadyInMs()).toBeUndefined();
  });

  it("refuses a scope in a version 1 state, and a scope that is not a string", () => {
    const { router } = routerWith();
    const id = router.snapshot()[0]!.id;
    expect(() => router.importState({ version: 1, savedAt: 0, keys: [{ id, status: "blocked", scope: MODEL }] })).toThrow(
      /^state\.keys\[0\]\.scope must be a string, in version 2/,
    );
    // All or nothing: the good entry before the bad one is not applied either.
    const bad = [{ id, status: "blocked" }, { id, status: "blocked", scope: 7 as never }] as const;
    expect(() => router.importState({ version: 2, savedAt: 0, keys: [...bad] })).toThrow(
      new TypeError("state.keys[1].scope must be a string, in version 2, received 7"),
    );
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    // One key may have one entry per scope, but not two for the same scope.
    const twice = [{ id, status: "blocked", scope: MODEL }, { id, status: "ready", scope: MODEL }] as const;
    expect(() => router.importState({ version: 2, savedAt: 0, keys: [...twice] })).toThrow(/^state\.keys\[1\]\.id/);
    expect(router.stateOf(KEY_A, MODEL)).toEqual({ status: "ready" });
  });
});

describe("scopes: bad input", () => {
  it.each([7, null, {}, ["gpt"]])("a scope of %s is a TypeError naming scope, and changes nothing", (scope) => {
    const { router } = routerWith();
    expect(() => router.nextKey(scope as never)).toThrow(/^scope must be a string/);
    expect(() => router.markError(KEY_A, { scope: scope as never })).toThrow(/^scope must be a string/);
    expect(() => router.clearCooldown(KEY_A, { scope: scope as never })).toThrow(/^scope must be a string/);
    expect(() => router.stateOf(KEY_A, scope as never)).toThrow(/^scope must be a string/);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
  });

  it.each([0, 1.5, -1, Number.NaN])("a maxScopes of %s is a RangeError", (maxScopes) => {
    expect(() => new CredentialRouter(KEYS, { maxScopes })).toThrow(/^maxScopes must be a positive integer/);
  });
});

describe("scopes: execute", () => {
  it("routes in the scope, cools a rate-limited key there, and blocks a rejected key key-wide", async () => {
    const { router } = routerWith();
    const calls: string[] = [];
    const answer = (key: string) => {
      calls.push(key);
      return key === KEY_A ? new Response("", { status: 429, headers: { "retry-after": "5" } }) : new Response("", { status: key === KEY_B ? 401 : 200 });
    };
    expect((await router.execute(async (key) => answer(key), { scope: MODEL })).status).toBe(200);
    expect(calls).toEqual([KEY_A, KEY_B, KEY_C]);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    expect(router.stateOf(KEY_A, MODEL)).toEqual({ status: "cooldown", remainingMs: 5_000 });
    expect(router.stateOf(KEY_B)).toEqual({ status: "blocked" });
    // The other model still gets A; no model gets B.
    expect(new Set(picks(router, 4, OTHER))).toEqual(new Set([KEY_A, KEY_C]));
  });

  it("rejects with NoKeyAvailableError carrying the scope's wait when no key is ready in it", async () => {
    const { router } = routerWith();
    for (const key of KEYS) router.markErrorWithDelay(key, 3_000, { scope: MODEL });
    await expect(router.execute(async () => 1, { scope: MODEL })).rejects.toMatchObject({ retryAfterMs: 3_000 });
    await expect(router.execute(async () => 1, { scope: OTHER })).resolves.toBe(1);
  });
});
