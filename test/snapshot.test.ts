import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { CredentialRouter, type CredentialRouterOptions, type RouterEvent } from "../src/index.js";
import { manualClock, KEY_A, KEY_B, KEY_C } from "./helpers/fixtures.js";

const KEY_D = "sk-proj-DDDD7777hhhh8888iiii";
const KEYS = [KEY_A, KEY_B, KEY_C, KEY_D];

function routerWith(options: CredentialRouterOptions = {}, keys: string[] = KEYS) {
  const clock = manualClock();
  const router = new CredentialRouter(keys, { now: clock.now, cooldownMs: 10_000, ...options });
  return { router, clock };
}

describe("snapshot", () => {
  it("lists every key by index, with its hint, state and failures", () => {
    const { router, clock } = routerWith();
    router.markError(KEY_D);
    clock.advance(10_000);
    router.markErrorWithDelay(KEY_A, 4_000);
    router.markBlocked(KEY_B);
    router.markDisabled(KEY_C);
    clock.advance(1_000);
    const rows = router.snapshot();
    expect(rows).toHaveLength(4);
    expect(rows.map(({ index, hint, state, failures }) => ({ index, hint, state, failures }))).toStrictEqual([
      { index: 0, hint: "sk-p…cccc", state: { status: "cooldown", remainingMs: 3_000 }, failures: 1 },
      { index: 1, hint: "sk-p…eeee", state: { status: "blocked" }, failures: 0 },
      { index: 2, hint: "sk-p…gggg", state: { status: "disabled" }, failures: 0 },
      { index: 3, hint: "sk-p…iiii", state: { status: "ready" }, failures: 1 },
    ]);
  });

  it("a router with every key ready shows them all ready with no failures", () => {
    const { router } = routerWith();
    expect(router.snapshot().map((row) => [row.state, row.failures])).toEqual(KEYS.map(() => [{ status: "ready" }, 0]));
  });

  it("sees a cooldown that ran out as ready, and reports it as expired", () => {
    const { router, clock } = routerWith();
    router.markErrorWithDelay(KEY_B, 2_000);
    const events: RouterEvent[] = [];
    router.subscribe((event) => void events.push(event));
    clock.advance(2_000);
    expect(router.snapshot()[1]!.state).toEqual({ status: "ready" });
    expect(events).toEqual([{ type: "ready", index: 1, hint: "sk-p…eeee", reason: "expired" }]);
  });

  it("failures is the key's current run of failed windows", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 8_000 });
    router.markError(KEY_A);
    expect(router.snapshot()[0]!.failures).toBe(1);
    clock.advance(1_000);
    router.markError(KEY_A);
    router.markError(KEY_A);
    expect(router.snapshot()[0]!.failures).toBe(2);
    router.markSuccess(KEY_A);
    expect(router.snapshot()[0]!.failures).toBe(0);
  });

  it("is a copy: changing it changes nothing in the router", () => {
    const { router } = routerWith();
    const rows = router.snapshot() as unknown as { state: { status: string }; failures: number }[];
    rows[0]!.state.status = "blocked";
    rows[0]!.failures = 9;
    (rows as unknown[]).length = 0;
    expect(router.snapshot()[0]).toMatchObject({ index: 0, hint: "sk-p…cccc", state: { status: "ready" }, failures: 0 });
    expect(router.nextKey()).toBe(KEY_A);
  });

  it("contains no key, whatever the states", () => {
    const { router } = routerWith({ labels: ["a", "b", "c", "d"] });
    router.markError(KEY_A);
    router.markBlocked(KEY_B);
    router.markDisabled(KEY_C);
    const rows = router.snapshot();
    const shown = JSON.stringify(rows) + inspect(rows, { depth: 5 });
    for (const key of KEYS) {
      expect(shown).not.toContain(key);
      expect(shown).not.toContain(key.slice(4, -4));
    }
  });

  it("does not change the rotation", () => {
    const { router } = routerWith();
    expect(router.nextKey()).toBe(KEY_A);
    router.snapshot();
    router.snapshot();
    expect(router.nextKey()).toBe(KEY_B);
  });
});

describe("hints", () => {
  it("a key of 16 or more characters shows its first 4 and last 4 characters around …", () => {
    const keys = ["0123456789abcdef", "0123456789abcdefg", KEY_A];
    const { router } = routerWith({}, keys);
    expect(router.snapshot().map((row) => row.hint)).toEqual(["0123…cdef", "0123…defg", "sk-p…cccc"]);
  });

  it("a key shorter than 16 characters shows only #<index>", () => {
    const keys = ["0123456789abcde", "x", "short-key"];
    const { router } = routerWith({}, keys);
    expect(router.snapshot().map((row) => row.hint)).toEqual(["#0", "#1", "#2"]);
  });

  it("hides at least half of any masked key", () => {
    const { router } = routerWith({}, ["abcdefghijklmnop"]);
    const hint = router.snapshot()[0]!.hint;
    expect(hint).toBe("abcd…mnop");
    expect(hint).not.toContain("efghijkl");
  });

  it("two keys with the same ends have the same hint but different indices", () => {
    const keys = ["sk-p-1111111111-zzzz", "sk-p-2222222222-zzzz"];
    const { router } = routerWith({}, keys);
    expect(router.snapshot().map((row) => [row.index, row.hint])).toEqual([
      [0, "sk-p…zzzz"],
      [1, "sk-p…zzzz"],
    ]);
  });
});

describe("labels", () => {
  it("name each key in the snapshot", () => {
    const { router } = routerWith({ labels: ["prod-1", "prod-2", "batch", "spare"] });
    router.markBlocked(KEY_C);
    expect(router.snapshot().map((row) => [row.label, row.hint, row.state.status])).toEqual([
      ["prod-1", "sk-p…cccc", "ready"],
      ["prod-2", "sk-p…eeee", "ready"],
      ["batch", "sk-p…gggg", "blocked"],
      ["spare", "sk-p…iiii", "ready"],
    ]);
  });

  it("are absent from snapshot rows when none were given", () => {
    const { router } = routerWith();
    for (const row of router.snapshot()) expect(Object.keys(row)).not.toContain("label");
  });

  it("may be empty strings", () => {
    const { router } = routerWith({ labels: ["", "", "", ""] });
    expect(router.snapshot()[0]!.label).toBe("");
  });

  it("are copied: changing the array given later changes nothing", () => {
    const labels = ["prod-1", "prod-2", "batch", "spare"];
    const { router } = routerWith({ labels });
    labels[0] = "changed";
    labels.length = 1;
    expect(router.snapshot().map((row) => row.label)).toEqual(["prod-1", "prod-2", "batch", "spare"]);
  });

  it.each<[string, unknown, RegExp]>([
    ["too few", ["a", "b", "c"], /^labels must be an array/],
    ["too many", ["a", "b", "c", "d", "e"], /^labels must be an array/],
    ["not an array", "a,b,c,d", /^labels must be an array/],
    ["a non-string entry", ["a", "b", 3, "d"], /^labels\[2\] must be a string/],
    ["a null entry", ["a", null, "c", "d"], /^labels\[1\] must be a string/],
  ])("%s: throws a TypeError", (_name, labels, message) => {
    expect(() => routerWith({ labels: labels as string[] })).toThrow(TypeError);
    expect(() => routerWith({ labels: labels as string[] })).toThrow(message);
  });

  it("a label list with a hole throws a TypeError naming the missing entry", () => {
    const labels = ["a", "b", "c", "d"];
    delete labels[1];
    expect(() => routerWith({ labels })).toThrow(TypeError);
    expect(() => routerWith({ labels })).toThrow(/labels\[1\] must be a string/);
  });

  it("a key given as a label list is not echoed in the error", () => {
    let message = "";
    try {
      routerWith({ labels: KEY_A as unknown as string[] });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^labels/);
    expect(message).not.toContain(KEY_A);
    expect(message).not.toContain(KEY_A.slice(4, -4));
  });
});
