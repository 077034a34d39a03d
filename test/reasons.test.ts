import { describe, expect, it } from "vitest";
import { CredentialRouter, fingerprint, type RouterEvent } from "../src/index.js";
import { manualClock, KEY_A, KEY_B, KEY_C, KEYS } from "./helpers/fixtures.js";

function routerWith() {
  const clock = manualClock();
  const router = new CredentialRouter(KEYS, { now: clock.now, cooldownMs: 10_000 });
  const events: RouterEvent[] = [];
  router.subscribe((event) => void events.push(event));
  return { router, clock, events };
}

const reasons = (events: RouterEvent[]) => events.map((event) => (event.type === "exhausted" ? event.type : [event.type, event.reason]));

describe("reasons", () => {
  it("every mark says why, and a mark without a reason is manual", () => {
    const { router, events } = routerWith();
    router.markError(KEY_A, { reason: "server" });
    router.markErrorWithDelay(KEY_B, 5_000, { reason: "rate_limit" });
    router.markBlocked(KEY_C, { reason: "auth" });
    router.markDisabled(KEY_A, { reason: "rotated out" });
    router.markError(KEY_B);
    router.clearCooldown(KEY_C);
    expect(reasons(events)).toEqual([
      ["cooldown", "server"],
      ["cooldown", "rate_limit"],
      ["blocked", "auth"],
      ["disabled", "rotated out"],
      // B's 10 s default outlasts its 5 s: the longer cooldown, and its reason.
      ["cooldown", "manual"],
      ["ready", "cleared"],
    ]);
  });

  it("the reason is the current state's: a longer cooldown brings its reason, a shorter one changes nothing", () => {
    const { router, events } = routerWith();
    router.markErrorWithDelay(KEY_A, 1_000, { reason: "rate_limit" });
    router.markErrorWithDelay(KEY_A, 3_600_000, { reason: "quota" });
    router.markErrorWithDelay(KEY_A, 2_000, { reason: "rate_limit" });
    router.markBlocked(KEY_A);
    router.markBlocked(KEY_A, { reason: "auth" });
    expect(reasons(events)).toEqual([
      ["cooldown", "rate_limit"],
      ["cooldown", "quota"],
      ["blocked", "manual"],
    ]);
    expect(router.snapshot()[0]!.reason).toBe("manual");
  });

  it("snapshot rows carry the reason of a key that is out, and none for a ready key", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_B, 5_000, { reason: "quota" });
    const rows = router.snapshot();
    expect(rows[1]!.reason).toBe("quota");
    expect("reason" in rows[0]!).toBe(false);
  });

  it("saved state carries reasons, and a restore brings them back", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_A, 5_000, { reason: "quota" });
    router.markBlocked(KEY_B, { reason: "auth" });
    const saved = router.exportState();
    expect(saved.keys.map((entry) => entry.reason)).toEqual(["quota", "auth"]);
    const restored = new CredentialRouter(KEYS, { initialState: saved });
    expect(restored.snapshot().map((row) => row.reason)).toEqual(["quota", "auth", undefined]);
  });

  it("a saved entry without a reason is manual", () => {
    const router = new CredentialRouter(KEYS, {
      initialState: { version: 1, savedAt: Date.now(), keys: [{ id: fingerprint(KEY_C), status: "blocked" }] },
    });
    expect(router.snapshot()[2]!.reason).toBe("manual");
  });

  it.each([429, null, {}, ["quota"]])("a reason of %s is a TypeError naming reason, and changes nothing", (reason) => {
    const { router, events } = routerWith();
    for (const mark of [
      () => router.markError(KEY_A, { reason: reason as never }),
      () => router.markErrorWithDelay(KEY_A, 1, { reason: reason as never }),
      () => router.markBlocked(KEY_A, { reason: reason as never }),
      () => router.markDisabled(KEY_A, { reason: reason as never }),
    ]) {
      expect(mark).toThrow(TypeError);
      expect(mark).toThrow(/^reason must be a string/);
    }
    expect(events).toEqual([]);
    expect(() => router.importState({ version: 1, savedAt: 0, keys: [{ id: fingerprint(KEY_A), status: "blocked", reason: 7 as never }] })).toThrow(
      /^state\.keys\[0\]\.reason must be a string/,
    );
  });

  it.each([null, 7, "scope"])("options of %s are a TypeError", (options) => {
    const { router } = routerWith();
    expect(() => router.markError(KEY_A, options as never)).toThrow(/^options must be an object/);
  });

  it("a router tells at most 256 reasons apart; one more is a RangeError, and the mark changes nothing", () => {
    const { router } = routerWith();
    for (let count = 0; count < 251; count++) router.markErrorWithDelay(KEY_A, 1, { reason: `reason ${count}` });
    expect(() => router.markError(KEY_B, { reason: "one too many" })).toThrow(
      new RangeError("reason must be one of at most 256 distinct reasons, received a string"),
    );
    const entry = { id: fingerprint(KEY_B), status: "blocked" as const, reason: "one too many" };
    expect(() => router.importState({ version: 1, savedAt: 0, keys: [entry] })).toThrow(
      new RangeError("state.keys[].reason must be one of at most 256 distinct reasons, received a string"),
    );
    expect(router.stateOf(KEY_B)).toEqual({ status: "ready" });
    // Reasons already known still work, the five built-in ones included: they count among the 256.
    expect(router.markError(KEY_B, { reason: "reason 7" })).toBe(true);
    for (const reason of ["manual", "rate_limit", "quota", "auth", "server"]) {
      expect(router.markBlocked(KEY_C, { reason, scope: reason })).toBe(true);
      expect(router.snapshot()[2]!.scopes.find((row) => row.scope === reason)?.reason).toBe(reason);
    }
  });
});
