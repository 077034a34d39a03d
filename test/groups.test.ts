import { describe, expect, it } from "vitest";
import { CredentialRouter, type CredentialRouterOptions, type RouterEvent } from "../src/index.js";
import { manualClock, KEY_A, KEY_B, KEY_C } from "./helpers/fixtures.js";

const KEY_D = "sk-proj-DDDD7777hhhh8888iiii";
const KEYS = [KEY_A, KEY_B, KEY_C, KEY_D];
/** A and B are keys of one project; C is alone; D is in another project of its own. */
const GROUPS = ["project-1", "project-1", undefined, "project-2"];

function routerWith(options: CredentialRouterOptions = {}) {
  const clock = manualClock();
  const router = new CredentialRouter(KEYS, { now: clock.now, cooldownMs: 10_000, groups: GROUPS, ...options });
  const events: RouterEvent[] = [];
  router.subscribe((event) => void events.push(event));
  return { router, clock, events };
}

const states = (router: CredentialRouter, scope?: string) => KEYS.map((key) => router.stateOf(key, scope));

describe("groups: keys that share one quota", () => {
  it.each(["rate_limit", "quota"])("a %s cooldown cools every key of the group until the same deadline", (reason) => {
    const { router, events } = routerWith();
    router.markErrorWithDelay(KEY_A, 7_000, { reason });
    expect(states(router)).toEqual([
      { status: "cooldown", remainingMs: 7_000 },
      { status: "cooldown", remainingMs: 7_000 },
      { status: "ready" },
      { status: "ready" },
    ]);
    expect(events.map((event) => event.type === "cooldown" && [event.index, event.reason])).toEqual([
      [0, reason],
      [1, reason],
    ]);
  });

  it("spreads in the same scope only", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_B, 3_000, { reason: "rate_limit", scope: "gpt-4o" });
    expect(states(router, "gpt-4o").slice(0, 2)).toEqual([
      { status: "cooldown", remainingMs: 3_000 },
      { status: "cooldown", remainingMs: 3_000 },
    ]);
    expect(states(router)).toEqual(KEYS.map(() => ({ status: "ready" })));
    expect(router.nextKey("gpt-4o")).toBe(KEY_C);
  });

  it("a mark without a rate-limit reason stays on its key, unless given group: true", () => {
    const { router } = routerWith();
    router.markError(KEY_A);
    router.markErrorWithDelay(KEY_D, 1_000, { reason: "server" });
    expect(router.stateOf(KEY_B)).toEqual({ status: "ready" });
    router.markErrorWithDelay(KEY_A, 20_000, { reason: "billing", group: true });
    expect(router.stateOf(KEY_B)).toEqual({ status: "cooldown", remainingMs: 20_000 });
  });

  it("group: false keeps even a rate limit on its key", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_A, 5_000, { reason: "rate_limit", group: false });
    expect(router.stateOf(KEY_B)).toEqual({ status: "ready" });
  });

  it("a block never spreads", () => {
    const { router } = routerWith();
    router.markBlocked(KEY_A, { reason: "auth" });
    router.markDisabled(KEY_A, { reason: "rate_limit" });
    expect(router.stateOf(KEY_B)).toEqual({ status: "ready" });
  });

  it("spreads by the severity rule: a longer cooldown is kept, a blocked member stays blocked, a member's run of failures is its own", () => {
    const { router } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    router.markErrorWithDelay(KEY_B, 30_000, { reason: "rate_limit", group: false });
    router.markErrorWithDelay(KEY_A, 5_000, { reason: "rate_limit" });
    expect(router.stateOf(KEY_B)).toEqual({ status: "cooldown", remainingMs: 30_000 });
    router.markBlocked(KEY_D);
    const other = new CredentialRouter(KEYS, { now: () => 0, groups: [undefined, undefined, "g", "g"] });
    other.markBlocked(KEY_D);
    other.markErrorWithDelay(KEY_C, 5_000, { reason: "quota" });
    expect(other.stateOf(KEY_D)).toEqual({ status: "blocked" });
    expect(router.snapshot().map((row) => row.failures)).toEqual([1, 1, 0, 0]);
  });

  it("execute's rate limits spread to the group", async () => {
    const { router } = routerWith();
    const calls: string[] = [];
    const response = await router.execute(async (key) => {
      calls.push(key);
      return new Response("", { status: key === KEY_A ? 429 : 200, headers: key === KEY_A ? { "retry-after": "9" } : {} });
    });
    expect(response.status).toBe(200);
    // B shares A's quota: the call went on to C, not B.
    expect(calls).toEqual([KEY_A, KEY_C]);
    expect(router.stateOf(KEY_B)).toEqual({ status: "cooldown", remainingMs: 9_000 });
  });

  it("snapshot rows name the key's group", () => {
    const { router } = routerWith();
    expect(router.snapshot().map((row) => row.group)).toEqual(GROUPS);
    expect("group" in router.snapshot()[2]!).toBe(false);
  });

  it("groups of one key change nothing", () => {
    const router = new CredentialRouter(KEYS, { now: () => 0, groups: ["a", "b", "c", undefined] });
    router.markErrorWithDelay(KEY_A, 1_000, { reason: "rate_limit" });
    expect(states(router).filter((state) => state!.status !== "ready")).toHaveLength(1);
  });
});

describe("groups: bad input", () => {
  it.each([
    ["not an array", "groups", "a"],
    ["too short", "groups", ["a"]],
    ["too long", "groups", ["a", "a", "a", "a", "a"]],
  ])("a groups option %s is a TypeError naming %s", (_name, path, groups) => {
    expect(() => new CredentialRouter(KEYS, { groups: groups as never })).toThrow(new RegExp(`^${path} must be`));
  });

  it.each([7, null, {}])("a group of %s is a TypeError naming its index", (group) => {
    expect(() => new CredentialRouter(KEYS, { groups: ["a", group as never, "a", "a"] })).toThrow(/^groups\[1\] must be a string or undefined/);
  });

  it("a group option that is not a boolean is a TypeError naming group", () => {
    const { router } = routerWith();
    expect(() => router.markError(KEY_A, { group: "yes" as never })).toThrow(/^group must be a boolean/);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
  });
});
