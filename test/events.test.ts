import { inspect } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CredentialRouter, type CredentialRouterOptions, type RouterEvent } from "../src/index.js";
import { manualClock, KEY_A, KEY_B, KEY_C, KEYS } from "./helpers/fixtures.js";

/** A router on a manual clock, with a listener that records every event. */
function listenedRouter(options: CredentialRouterOptions = {}, keys: string[] = KEYS) {
  const clock = manualClock();
  const router = new CredentialRouter(keys, { now: clock.now, cooldownMs: 10_000, ...options });
  const events: RouterEvent[] = [];
  const unsubscribe = router.subscribe((event) => void events.push(event));
  /** The events recorded since the last call. */
  const take = () => events.splice(0);
  return { router, clock, events, take, unsubscribe };
}

/** Waits for a real macrotask, after which Node has reported any unhandled rejection. */
const nextMacrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("subscribe and unsubscribe", () => {
  it("a listener hears what happens until it unsubscribes", () => {
    const { router, take, unsubscribe } = listenedRouter();
    router.markError(KEY_A);
    expect(take()).toHaveLength(1);
    unsubscribe();
    router.markBlocked(KEY_B);
    router.clearCooldown(KEY_A);
    expect(take()).toEqual([]);
  });

  it("unsubscribing twice is harmless and removes only its own subscription", () => {
    const { router, take } = listenedRouter();
    const other: RouterEvent[] = [];
    const stop = router.subscribe((event) => void other.push(event));
    stop();
    stop();
    router.markError(KEY_A);
    expect(take()).toHaveLength(1);
    expect(other).toEqual([]);
  });

  it("one function subscribed twice is called twice and needs two unsubscribes", () => {
    const { router } = listenedRouter();
    let calls = 0;
    const listener = () => void calls++;
    const first = router.subscribe(listener);
    const second = router.subscribe(listener);
    router.markError(KEY_A);
    expect(calls).toBe(2);
    first();
    router.markBlocked(KEY_A);
    expect(calls).toBe(3);
    second();
    router.clearCooldown(KEY_A);
    expect(calls).toBe(3);
  });

  it.each([undefined, null, "listener", {}])("rejects a listener of %s with a TypeError", (listener) => {
    const { router } = listenedRouter();
    expect(() => router.subscribe(listener as never)).toThrow(TypeError);
    expect(() => router.subscribe(listener as never)).toThrow(/listener must be a function/);
  });

  it("a key passed as a listener is not shown in the error", () => {
    const { router } = listenedRouter();
    expect(() => router.subscribe(KEY_A as never)).toThrow(/received a string$/);
  });

  it("a listener may unsubscribe itself while it is called", () => {
    const { router } = listenedRouter();
    const heard: string[] = [];
    const stop = router.subscribe((event) => {
      heard.push(event.type);
      stop();
    });
    const after: string[] = [];
    router.subscribe((event) => void after.push(event.type));
    router.markError(KEY_A);
    router.markBlocked(KEY_B);
    expect(heard).toEqual(["cooldown"]);
    expect(after).toEqual(["cooldown", "blocked"]);
  });

  it("a listener unsubscribed by an earlier one during an emit is not called in that emit", () => {
    const { router } = listenedRouter();
    const heard: string[] = [];
    let stopSecond = () => {};
    router.subscribe(() => {
      heard.push("first");
      stopSecond();
    });
    stopSecond = router.subscribe(() => void heard.push("second"));
    router.subscribe(() => void heard.push("third"));
    router.markError(KEY_A);
    expect(heard).toEqual(["first", "third"]);
  });

  it("a listener subscribed during an emit hears the next event, not the current one", () => {
    const { router } = listenedRouter();
    const late: string[] = [];
    let added = false;
    router.subscribe(() => {
      if (!added) router.subscribe((event) => void late.push(event.type));
      added = true;
    });
    router.markError(KEY_A);
    expect(late).toEqual([]);
    router.markBlocked(KEY_B);
    expect(late).toEqual(["blocked"]);
  });

  it("a listener sees the router already in its new state", () => {
    const { router } = listenedRouter();
    const states: unknown[] = [];
    router.subscribe(() => void states.push(router.stateOf(KEY_A)));
    router.markErrorWithDelay(KEY_A, 2_000);
    expect(states).toEqual([{ status: "cooldown", remainingMs: 2_000 }]);
  });
});

describe("a throwing listener", () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => void unhandled.push(reason);

  beforeEach(() => {
    unhandled.length = 0;
    process.on("unhandledRejection", onUnhandled);
    process.on("uncaughtException", onUnhandled);
  });

  afterEach(() => {
    process.off("unhandledRejection", onUnhandled);
    process.off("uncaughtException", onUnhandled);
  });

  it("never breaks routing: the mark works, later listeners still hear it, nobody sees the error", async () => {
    const { router, take } = listenedRouter({}, [KEY_A, KEY_B]);
    router.subscribe(() => {
      throw new Error("listener broke");
    });
    const after: string[] = [];
    router.subscribe((event) => void after.push(event.type));
    expect(router.markError(KEY_A)).toBe(true);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 10_000 });
    expect(router.nextKey()).toBe(KEY_B);
    expect(router.markBlocked(KEY_B)).toBe(true);
    expect(router.nextKey()).toBeUndefined();
    expect(take().map((event) => event.type)).toEqual(["cooldown", "blocked", "exhausted"]);
    expect(after).toEqual(["cooldown", "blocked", "exhausted"]);
    await nextMacrotask();
    expect(unhandled).toEqual([]);
  });

  it("does not disturb execute", async () => {
    const { router } = listenedRouter();
    router.subscribe(() => {
      throw new Error("listener broke");
    });
    const response = (await router.execute(async (key) =>
      key === KEY_A ? new Response("", { status: 429, headers: { "retry-after": "3" } }) : new Response("ok"),
    )) as Response;
    expect(response.status).toBe(200);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 3_000 });
    await nextMacrotask();
    expect(unhandled).toEqual([]);
  });

  it("an async listener that rejects reaches neither the caller nor the event loop", async () => {
    const { router, take } = listenedRouter();
    router.subscribe(async () => {
      throw new Error("async listener broke");
    });
    expect(router.markError(KEY_A)).toBe(true);
    expect(take()).toHaveLength(1);
    await nextMacrotask();
    await nextMacrotask();
    expect(unhandled).toEqual([]);
  });

  it("a listener that throws something other than an Error is dropped too", async () => {
    const { router, take } = listenedRouter();
    router.subscribe(() => {
      throw undefined;
    });
    expect(router.markDisabled(KEY_A)).toBe(true);
    expect(take()).toHaveLength(1);
    await nextMacrotask();
    expect(unhandled).toEqual([]);
  });
});

describe("events", () => {
  it("cooldown carries the key's index, hint and delayMs", () => {
    const { router, take } = listenedRouter();
    router.markErrorWithDelay(KEY_B, 1_500);
    router.markError(KEY_C);
    expect(take()).toEqual([
      { type: "cooldown", index: 1, hint: "sk-p…eeee", delayMs: 1_500, reason: "manual" },
      { type: "cooldown", index: 2, hint: "sk-p…gggg", delayMs: 10_000, reason: "manual" },
    ]);
  });

  it("blocked and disabled carry index and hint", () => {
    const { router, take } = listenedRouter();
    router.markBlocked(KEY_A);
    router.markDisabled(KEY_B);
    expect(take()).toEqual([
      { type: "blocked", index: 0, hint: "sk-p…cccc", reason: "manual" },
      { type: "disabled", index: 1, hint: "sk-p…eeee", reason: "manual" },
    ]);
  });

  it("a blocked key that gets disabled emits disabled", () => {
    const { router, take } = listenedRouter();
    router.markBlocked(KEY_A);
    router.markDisabled(KEY_A);
    expect(take().map((event) => event.type)).toEqual(["blocked", "disabled"]);
  });

  it("a cooling key that gets blocked emits blocked, and never comes back by itself", () => {
    const { router, clock, take } = listenedRouter();
    router.markError(KEY_A);
    router.markBlocked(KEY_A);
    clock.advance(60_000);
    router.nextKey();
    expect(take().map((event) => event.type)).toEqual(["cooldown", "blocked"]);
  });

  it("ready with reason cleared when clearCooldown brings a key back, from any state", () => {
    const { router, take } = listenedRouter();
    router.markError(KEY_A);
    router.markBlocked(KEY_B);
    router.markDisabled(KEY_C);
    take();
    router.clearCooldown(KEY_A);
    router.clearCooldown(KEY_B);
    router.clearCooldown(KEY_C);
    expect(take()).toEqual([
      { type: "ready", index: 0, hint: "sk-p…cccc", reason: "cleared" },
      { type: "ready", index: 1, hint: "sk-p…eeee", reason: "cleared" },
      { type: "ready", index: 2, hint: "sk-p…gggg", reason: "cleared" },
    ]);
  });

  it("ready with reason expired is seen lazily, by the next call that looks", () => {
    const { router, clock, take } = listenedRouter();
    router.markErrorWithDelay(KEY_A, 1_000);
    take();
    clock.advance(999);
    router.nextKey();
    expect(take().filter((event) => event.type === "ready")).toEqual([]);
    clock.advance(1);
    // Time alone emits nothing: nobody looked yet.
    expect(take()).toEqual([]);
    router.nextReadyInMs();
    expect(take()).toEqual([{ type: "ready", index: 0, hint: "sk-p…cccc", reason: "expired" }]);
  });

  it.each<[string, (router: CredentialRouter) => unknown]>([
    ["nextKey", (router) => router.nextKey()],
    ["stateOf", (router) => router.stateOf(KEY_B)],
    ["nextReadyInMs", (router) => router.nextReadyInMs()],
    ["snapshot", (router) => router.snapshot()],
    ["exportState", (router) => router.exportState()],
    ["markError of another key", (router) => router.markError(KEY_C)],
  ])("%s notices an expired cooldown", (_name, look) => {
    const { router, clock, take } = listenedRouter();
    router.markErrorWithDelay(KEY_A, 1_000);
    clock.advance(1_000);
    take();
    look(router);
    expect(take()).toContainEqual({ type: "ready", index: 0, hint: "sk-p…cccc", reason: "expired" });
  });

  it("expiries are reported earliest first", () => {
    const { router, clock, take } = listenedRouter();
    router.markErrorWithDelay(KEY_C, 300);
    router.markErrorWithDelay(KEY_A, 200);
    router.markErrorWithDelay(KEY_B, 100);
    take();
    clock.advance(1_000);
    router.nextReadyInMs();
    expect(take().map((event) => (event.type === "ready" ? event.index : -1))).toEqual([1, 0, 2]);
  });

  it("exhausted carries retryAfterMs when a pick finds no ready key", () => {
    const { router, clock, take } = listenedRouter();
    router.markErrorWithDelay(KEY_A, 4_000);
    router.markErrorWithDelay(KEY_B, 2_000);
    router.markBlocked(KEY_C);
    take();
    clock.advance(500);
    expect(router.nextKey()).toBeUndefined();
    expect(take()).toEqual([{ type: "exhausted", retryAfterMs: 1_500 }]);
  });

  it("exhausted has retryAfterMs undefined when every key is blocked or disabled", () => {
    const { router, take } = listenedRouter();
    router.markBlocked(KEY_A);
    router.markBlocked(KEY_B);
    router.markDisabled(KEY_C);
    take();
    router.nextKey();
    expect(take()).toEqual([{ type: "exhausted", retryAfterMs: undefined }]);
  });

  it("no exhausted while some key is ready", () => {
    const { router, take } = listenedRouter();
    router.markBlocked(KEY_A);
    take();
    router.nextKey();
    router.nextKey();
    expect(take()).toEqual([]);
  });

  it("execute turned away emits exhausted", async () => {
    const { router, take } = listenedRouter();
    for (const key of KEYS) router.markErrorWithDelay(key, 700);
    take();
    await expect(router.execute(async () => new Response("ok"))).rejects.toMatchObject({ code: "NO_KEY_AVAILABLE" });
    expect(take()).toEqual([{ type: "exhausted", retryAfterMs: 700 }]);
  });

  it("execute's marks are heard: cooldown for a 429's hint, blocked for a 401", async () => {
    const { router, take } = listenedRouter();
    await router.execute(async (key) => {
      if (key === KEY_A) return new Response("", { status: 429, headers: { "retry-after": "7" } });
      if (key === KEY_B) return new Response("", { status: 401 });
      return new Response("ok");
    });
    expect(take()).toEqual([
      { type: "cooldown", index: 0, hint: "sk-p…cccc", delayMs: 7_000, reason: "rate_limit" },
      { type: "blocked", index: 1, hint: "sk-p…eeee", reason: "auth" },
    ]);
  });

  it("events carry the key's label when labels were given, and no label property otherwise", () => {
    const labelled = listenedRouter({ labels: ["team-a", "team-b", "spare"] });
    labelled.router.markError(KEY_B);
    labelled.router.markBlocked(KEY_C);
    labelled.router.clearCooldown(KEY_B);
    expect(labelled.take()).toEqual([
      { type: "cooldown", index: 1, hint: "sk-p…eeee", label: "team-b", delayMs: 10_000, reason: "manual" },
      { type: "blocked", index: 2, hint: "sk-p…gggg", label: "spare", reason: "manual" },
      { type: "ready", index: 1, hint: "sk-p…eeee", label: "team-b", reason: "cleared" },
    ]);
    const plain = listenedRouter();
    plain.router.markError(KEY_B);
    expect(Object.keys(plain.take()[0]!)).not.toContain("label");
  });
});

describe("events only on change", () => {
  it("a cooldown mark on a blocked or disabled key emits nothing", () => {
    const { router, take } = listenedRouter();
    router.markBlocked(KEY_A);
    router.markDisabled(KEY_B);
    take();
    router.markError(KEY_A);
    router.markErrorWithDelay(KEY_A, 60_000);
    router.markError(KEY_B);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_A);
    router.markDisabled(KEY_B);
    expect(take()).toEqual([]);
  });

  it("a shorter cooldown on a cooling key emits nothing", () => {
    const { router, take } = listenedRouter();
    router.markErrorWithDelay(KEY_A, 5_000);
    take();
    router.markErrorWithDelay(KEY_A, 4_000);
    router.markErrorWithDelay(KEY_A, 5_000);
    expect(take()).toEqual([]);
  });

  it("a longer cooldown on a cooling key emits cooldown with the new delayMs", () => {
    const { router, clock, take } = listenedRouter();
    router.markErrorWithDelay(KEY_A, 5_000);
    clock.advance(1_000);
    take();
    router.markErrorWithDelay(KEY_A, 6_000);
    expect(take()).toEqual([{ type: "cooldown", index: 0, hint: "sk-p…cccc", delayMs: 6_000, reason: "manual" }]);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 6_000 });
  });

  it("clearCooldown on a ready key, markSuccess and marks of unknown keys emit nothing", () => {
    const { router, take } = listenedRouter();
    router.clearCooldown(KEY_A);
    router.markSuccess(KEY_A);
    router.markError("sk-proj-unknown-key-0000");
    router.markBlocked("sk-proj-unknown-key-0000");
    router.clearCooldown("sk-proj-unknown-key-0000");
    expect(take()).toEqual([]);
  });

  it("reads (stateOf, snapshot, nextReadyInMs) emit nothing when nothing expired", () => {
    const { router, take } = listenedRouter();
    router.markError(KEY_A);
    take();
    router.stateOf(KEY_A);
    router.snapshot();
    router.nextReadyInMs();
    router.exportState();
    expect(take()).toEqual([]);
  });
});

describe("events keep keys secret", () => {
  it("no event of a whole key lifecycle contains any key text", async () => {
    const { router, clock, take } = listenedRouter({ labels: ["one", "two", "three"] });
    router.markError(KEY_A);
    router.markErrorWithDelay(KEY_B, 100);
    clock.advance(100);
    router.nextKey();
    router.markBlocked(KEY_C);
    router.markDisabled(KEY_C);
    router.clearCooldown(KEY_C);
    router.markBlocked(KEY_A);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    router.nextKey();
    await router.execute(async () => new Response("ok")).catch(() => {});
    const events = take();
    expect(new Set(events.map((event) => event.type))).toEqual(
      new Set(["cooldown", "ready", "blocked", "disabled", "exhausted"]),
    );
    const shown = JSON.stringify(events) + inspect(events, { depth: 5 });
    for (const key of KEYS) {
      expect(shown).not.toContain(key);
      expect(shown).not.toContain(key.slice(4, -4));
    }
  });

  it("keys under 16 characters are named #<index>, with none of their text", () => {
    const short = ["short-key-1", "short-key-2"];
    const { router, take } = listenedRouter({}, short);
    router.markError(short[1]!);
    const [event] = take();
    expect(event).toMatchObject({ index: 1, hint: "#1" });
    expect(JSON.stringify(event)).not.toContain("short-key");
  });
});

describe("events emitted from inside a listener", () => {
  it("reach every listener after the event being delivered, in the order of the changes", () => {
    const { router } = listenedRouter();
    const seen: string[] = [];
    router.subscribe((event) => {
      if (event.type === "blocked" && event.index === 0) router.markError(KEY_B);
    });
    router.subscribe((event) => seen.push(`${event.type}:${"index" in event ? event.index : "-"}`));
    router.markBlocked(KEY_A);
    expect(seen).toEqual(["blocked:0", "cooldown:1"]);
  });
});

describe("events are built only for listeners", () => {
  /** A router whose keys all cool, on a clock that counts its reads. */
  function countingRouter() {
    const clock = manualClock();
    let reads = 0;
    const router = new CredentialRouter([KEY_A, KEY_B], {
      now: () => (reads++, clock.now()),
    });
    router.markErrorWithDelay(KEY_A, 5_000);
    router.markErrorWithDelay(KEY_B, 5_000);
    /** How many times the clock is read by one pick that finds no key. */
    const readsOfAPick = () => {
      reads = 0;
      expect(router.nextKey()).toBeUndefined();
      return reads;
    };
    return { router, readsOfAPick };
  }

  it("reads the caller's clock once for a pick that finds no key while nobody listens, and again to tell a listener", () => {
    const { router, readsOfAPick } = countingRouter();
    const quiet = readsOfAPick();
    expect(quiet).toBe(1);
    const seen: RouterEvent[] = [];
    const unsubscribe = router.subscribe((event) => void seen.push(event));
    expect(readsOfAPick()).toBe(2);
    expect(seen).toEqual([{ type: "exhausted", retryAfterMs: 5_000 }]);
    // Every subscription undone, the router is back to building nothing.
    unsubscribe();
    expect(readsOfAPick()).toBe(quiet);
    const unsubscribeTwice = [router.subscribe(() => {}), router.subscribe(() => {})];
    unsubscribeTwice.forEach((undo) => undo());
    expect(readsOfAPick()).toBe(quiet);
  });
});
