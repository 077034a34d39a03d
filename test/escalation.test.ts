import { describe, expect, it } from "vitest";
import { CredentialRouter, type CredentialRouterOptions, type RouterEvent } from "../src/index.js";
import { manualClock, KEY_A, KEY_B } from "./helpers/fixtures.js";

function routerWith(options: CredentialRouterOptions = {}, keys: string[] = [KEY_A, KEY_B]) {
  const clock = manualClock();
  const router = new CredentialRouter(keys, { now: clock.now, ...options });
  return { router, clock };
}

const remaining = (router: CredentialRouter, key = KEY_A) => {
  const state = router.stateOf(key)!;
  return state.status === "cooldown" ? state.remainingMs : state.status;
};
const failures = (router: CredentialRouter, index = 0) => router.snapshot()[index]!.failures;

/** Marks the key, notes how long its window is, and waits the window out. */
function windows(router: CredentialRouter, clock: ReturnType<typeof manualClock>, count: number): number[] {
  const lengths: number[] = [];
  for (let n = 0; n < count; n++) {
    router.markError(KEY_A);
    const length = remaining(router) as number;
    lengths.push(length);
    clock.advance(length);
  }
  return lengths;
}

describe("escalation (maxCooldownMs)", () => {
  it("without maxCooldownMs, every failed window lasts cooldownMs", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000 });
    expect(windows(router, clock, 5)).toEqual([1_000, 1_000, 1_000, 1_000, 1_000]);
    expect(failures(router)).toBe(5);
  });

  it("the n-th consecutive failed window lasts cooldownMs * 2^(n-1): 1 s, 2 s, 4 s, 8 s", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    expect(windows(router, clock, 4)).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(failures(router)).toBe(4);
  });

  it("stops growing at maxCooldownMs", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 5_000 });
    expect(windows(router, clock, 6)).toEqual([1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
  });

  it("maxCooldownMs equal to cooldownMs means no growth", () => {
    const { router, clock } = routerWith({ cooldownMs: 3_000, maxCooldownMs: 3_000 });
    expect(windows(router, clock, 3)).toEqual([3_000, 3_000, 3_000]);
  });

  it("keeps doubling past 2^31 ms in whole steps, up to maxCooldownMs", () => {
    const { router, clock } = routerWith({ cooldownMs: 1, maxCooldownMs: 2 ** 40 });
    const lengths = windows(router, clock, 43);
    expect(lengths.slice(29, 34)).toEqual([2 ** 29, 2 ** 30, 2 ** 31, 2 ** 32, 2 ** 33]);
    expect(lengths).toEqual(lengths.map((_, n) => Math.min(2 ** n, 2 ** 40)));
  });

  it("doubles a cooldownMs far below maxCooldownMs all the way up to it (Number.MIN_VALUE to 1 ms)", () => {
    const { router, clock } = routerWith({ cooldownMs: Number.MIN_VALUE, maxCooldownMs: 1 });
    let last: number | string = "none";
    // 2^1074 times Number.MIN_VALUE is 1: the 1,075th failed window lasts maxCooldownMs.
    for (let n = 0; n < 1_080; n++) {
      router.markError(KEY_A);
      last = remaining(router);
      if (typeof last === "number") clock.advance(last);
    }
    expect(last).toBe(1);
    expect(failures(router)).toBe(1_080);
  });

  it("a cooldownMs of 0 never takes the key out, whatever maxCooldownMs and however many failures", () => {
    const { router, clock } = routerWith({ cooldownMs: 0, maxCooldownMs: 60_000 });
    expect(windows(router, clock, 1_100)).toEqual(Array(1_100).fill("ready"));
    expect(failures(router)).toBe(1_100);
  });

  it("stays at maxCooldownMs over a very long run of failures", () => {
    const { router, clock } = routerWith({ cooldownMs: 1, maxCooldownMs: 10 });
    const lengths = windows(router, clock, 2_000);
    expect(lengths.slice(-3)).toEqual([10, 10, 10]);
    expect(failures(router)).toBe(2_000);
  });

  it("a markError while the key is cooling opens no new window and does not escalate", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    router.markError(KEY_A);
    clock.advance(500);
    router.markError(KEY_A);
    // The deadline moves to the later of the two: now + this window's 1 s.
    expect(remaining(router)).toBe(1_000);
    expect(failures(router)).toBe(1);
    clock.advance(1_000);
    router.markError(KEY_A);
    expect(remaining(router)).toBe(2_000);
    expect(failures(router)).toBe(2);
  });

  it("a markError in the same instant as the window opened changes nothing", () => {
    const { router } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    const events: RouterEvent[] = [];
    router.markError(KEY_A);
    router.subscribe((event) => void events.push(event));
    router.markError(KEY_A);
    router.markError(KEY_A);
    expect(remaining(router)).toBe(1_000);
    expect(failures(router)).toBe(1);
    expect(events).toEqual([]);
  });

  it("a markError on a key cooling for a longer server delay keeps the server's deadline", () => {
    const { router } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    router.markErrorWithDelay(KEY_A, 30_000);
    router.markError(KEY_A);
    expect(remaining(router)).toBe(30_000);
    expect(failures(router)).toBe(1);
  });

  it("a window opened by markErrorWithDelay counts as a failed window", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    router.markErrorWithDelay(KEY_A, 500);
    expect(failures(router)).toBe(1);
    clock.advance(500);
    router.markError(KEY_A);
    expect(remaining(router)).toBe(2_000);
    expect(failures(router)).toBe(2);
  });

  it("markErrorWithDelay on a cooling key does not escalate", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    router.markError(KEY_A);
    router.markErrorWithDelay(KEY_A, 5_000);
    router.markErrorWithDelay(KEY_A, 7_000);
    expect(failures(router)).toBe(1);
    clock.advance(7_000);
    router.markError(KEY_A);
    expect(remaining(router)).toBe(2_000);
  });

  it("an expired window followed by a new mark escalates, even if nothing looked in between", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    router.markError(KEY_A);
    clock.advance(5_000);
    router.markError(KEY_A);
    expect(remaining(router)).toBe(2_000);
    expect(failures(router)).toBe(2);
  });

  it("a window ends exactly at its deadline: a mark then opens the next one", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    router.markError(KEY_A);
    clock.advance(999);
    router.markError(KEY_A);
    expect(failures(router)).toBe(1);
    clock.advance(1_000);
    router.markError(KEY_A);
    expect(failures(router)).toBe(2);
    expect(remaining(router)).toBe(2_000);
  });

  it("a markError on a cooling key whose run markSuccess ended still moves the deadline a full cooldownMs on", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    router.markError(KEY_A);
    clock.advance(900);
    router.markSuccess(KEY_A);
    clock.advance(50);
    router.markError(KEY_A);
    // The later of the two deadlines: 50 ms ago + 1 s is later than the window's end in 50 ms.
    expect(remaining(router)).toBe(1_000);
    expect(failures(router)).toBe(0);
  });

  it("requests in flight on one key: a 429 without a hint after another request's success cools it for at least cooldownMs", async () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 }, [KEY_A]);
    const gates: (() => void)[] = [];
    const answer = (status: number) => () =>
      router.execute(() => new Promise<Response>((resolve) => gates.push(() => resolve(new Response("", { status })))));
    const first = answer(429)();
    const second = answer(200)();
    const third = answer(429)();
    gates[0]!();
    await first;
    expect(remaining(router)).toBe(1_000);
    clock.advance(500);
    gates[1]!();
    await second;
    clock.advance(100);
    gates[2]!();
    await third;
    expect(remaining(router)).toBe(1_000);
  });

  it("markSuccess starts the count again", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    windows(router, clock, 3);
    router.markSuccess(KEY_A);
    expect(failures(router)).toBe(0);
    expect(windows(router, clock, 2)).toEqual([1_000, 2_000]);
  });

  it("clearCooldown starts the count again, also while the key cools", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    windows(router, clock, 2);
    router.markError(KEY_A);
    expect(remaining(router)).toBe(4_000);
    router.clearCooldown(KEY_A);
    expect(failures(router)).toBe(0);
    router.markError(KEY_A);
    expect(remaining(router)).toBe(1_000);
  });

  it("marks on a blocked or disabled key do not count", () => {
    const { router } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    router.markBlocked(KEY_A);
    router.markError(KEY_A);
    router.markErrorWithDelay(KEY_A, 5_000);
    router.markDisabled(KEY_B);
    router.markError(KEY_B);
    expect(failures(router, 0)).toBe(0);
    expect(failures(router, 1)).toBe(0);
  });

  it("each key escalates on its own", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 });
    windows(router, clock, 3);
    router.markError(KEY_B);
    expect(remaining(router, KEY_B)).toBe(1_000);
  });

  it("execute's default cooldowns escalate, and a success ends the run", async () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 60_000 }, [KEY_A]);
    let status = 429;
    const call = () => router.execute(async () => new Response("", { status }));
    await call();
    expect(remaining(router)).toBe(1_000);
    clock.advance(1_000);
    await call();
    expect(remaining(router)).toBe(2_000);
    clock.advance(2_000);
    status = 200;
    await call();
    expect(failures(router)).toBe(0);
    status = 429;
    await call();
    expect(remaining(router)).toBe(1_000);
  });

  it.each<[string, CredentialRouterOptions, RegExp]>([
    ["maxCooldownMs below cooldownMs", { cooldownMs: 2_000, maxCooldownMs: 1_000 }, /maxCooldownMs/],
    ["maxCooldownMs below the default cooldownMs", { maxCooldownMs: 1_000 }, /maxCooldownMs/],
    ["a negative maxCooldownMs", { maxCooldownMs: -1 }, /maxCooldownMs/],
    ["a NaN maxCooldownMs", { maxCooldownMs: Number.NaN }, /maxCooldownMs/],
    ["an infinite maxCooldownMs", { maxCooldownMs: Infinity }, /maxCooldownMs/],
  ])("rejects %s with a RangeError", (_name, options, message) => {
    expect(() => routerWith(options)).toThrow(RangeError);
    expect(() => routerWith(options)).toThrow(message);
  });
});

describe("maxRetryAfterMs", () => {
  it("defaults to 24 hours: a longer markErrorWithDelay is cut to it", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_A, 48 * 3_600_000);
    expect(remaining(router)).toBe(86_400_000);
  });

  it("cuts longer server delays to it and leaves shorter and equal ones alone", () => {
    const { router } = routerWith({ maxRetryAfterMs: 60_000 });
    router.markErrorWithDelay(KEY_A, 120_000);
    router.markErrorWithDelay(KEY_B, 30_000);
    expect(remaining(router, KEY_A)).toBe(60_000);
    expect(remaining(router, KEY_B)).toBe(30_000);
    const other = routerWith({ maxRetryAfterMs: 60_000 }).router;
    other.markErrorWithDelay(KEY_A, 60_000);
    expect(remaining(other)).toBe(60_000);
  });

  it("the cooldown event reports the delay after the cut", () => {
    const { router } = routerWith({ maxRetryAfterMs: 60_000 });
    const events: RouterEvent[] = [];
    router.subscribe((event) => void events.push(event));
    router.markErrorWithDelay(KEY_A, 3_600_000);
    expect(events).toEqual([{ type: "cooldown", index: 0, hint: "sk-p…cccc", delayMs: 60_000, reason: "manual" }]);
  });

  it("cuts execute's Retry-After header", async () => {
    const { router } = routerWith({ maxRetryAfterMs: 60_000 });
    await router.execute(async (key) =>
      key === KEY_A ? new Response("", { status: 429, headers: { "retry-after": "999999" } }) : new Response("ok"),
    );
    expect(remaining(router)).toBe(60_000);
  });

  it("cuts execute's hint from an error's body", async () => {
    const { router } = routerWith({ maxRetryAfterMs: 60_000 });
    const error = Object.assign(new Error("quota"), {
      status: 429,
      error: { details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "86400s" }] },
    });
    await router.execute(async (key) => {
      if (key === KEY_A) throw error;
      return new Response("ok");
    });
    expect(remaining(router)).toBe(60_000);
  });

  it("does not cut the default cooldown, which is the router's own", () => {
    const { router } = routerWith({ cooldownMs: 120_000, maxRetryAfterMs: 60_000 });
    router.markError(KEY_A);
    expect(remaining(router)).toBe(120_000);
  });

  it("a server delay of 0 cools the key for no time at all, but counts as a failed window", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_A, 0);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    expect(failures(router)).toBe(1);
  });

  it.each([-1, Number.NaN, Infinity])("rejects a maxRetryAfterMs of %s with a RangeError", (maxRetryAfterMs) => {
    expect(() => routerWith({ maxRetryAfterMs })).toThrow(RangeError);
    expect(() => routerWith({ maxRetryAfterMs })).toThrow(/maxRetryAfterMs/);
  });

  it("markErrorWithDelay still rejects a bad delay before any cut", () => {
    const { router } = routerWith({ maxRetryAfterMs: 60_000 });
    expect(() => router.markErrorWithDelay(KEY_A, Infinity)).toThrow(RangeError);
    expect(() => router.markErrorWithDelay(KEY_A, -5)).toThrow(RangeError);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
  });
});
