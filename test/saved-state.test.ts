import * as FakeTimers from "@sinonjs/fake-timers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CredentialRouter, fingerprint, type CredentialRouterOptions, type RouterEvent, type SavedState } from "../src/index.js";
import { KEY_A, KEY_B, KEY_C } from "./helpers/fixtures.js";

const KEY_D = "sk-proj-DDDD7777hhhh8888iiii";
const KEYS = [KEY_A, KEY_B, KEY_C, KEY_D];

const EPOCH = Date.UTC(2025, 0, 1);

let clock: FakeTimers.Clock;

beforeEach(() => {
  // Both clocks are faked: the router's (performance.now) and the wall clock saved state uses (Date).
  clock = FakeTimers.install({ now: EPOCH, toFake: ["setTimeout", "clearTimeout", "performance", "Date"] });
});

afterEach(() => {
  clock.uninstall();
});

function routerOf(keys: string[] = KEYS, options: CredentialRouterOptions = {}) {
  return new CredentialRouter(keys, { cooldownMs: 10_000, ...options });
}

/** A router with one key in each state: A cooling 5 s, B blocked, C disabled, D ready after a failure. */
function routerInEveryState(keys: string[] = KEYS, options: CredentialRouterOptions = {}) {
  const router = routerOf(keys, options);
  router.markError(KEY_D);
  clock.tick(10_000);
  router.markErrorWithDelay(KEY_A, 5_000);
  router.markBlocked(KEY_B);
  router.markDisabled(KEY_C);
  return router;
}

const roundTrip = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

describe("exportState", () => {
  it("a router with every key plainly ready exports no keys", () => {
    expect(routerOf().exportState()).toStrictEqual({ version: 1, savedAt: EPOCH, keys: [] });
  });

  it("exports cooling, blocked and disabled keys and runs of failures, by fingerprint, with wall-clock deadlines", () => {
    const router = routerInEveryState();
    const now = Date.now();
    expect(router.exportState()).toStrictEqual({
      version: 1,
      savedAt: now,
      keys: [
        { id: fingerprint(KEY_A), status: "cooldown", until: now + 5_000, reason: "manual", failures: 1 },
        { id: fingerprint(KEY_B), status: "blocked", reason: "manual" },
        { id: fingerprint(KEY_C), status: "disabled", reason: "manual" },
        { id: fingerprint(KEY_D), status: "ready", failures: 1 },
      ],
    });
  });

  it("exports a cooldown's remaining time, not its full length", () => {
    const router = routerOf();
    router.markErrorWithDelay(KEY_A, 5_000);
    clock.tick(2_000);
    expect(router.exportState().keys[0]).toMatchObject({ status: "cooldown", until: Date.now() + 3_000 });
  });

  it("a cooldown that has run out is exported as ended, keeping its failures", () => {
    const router = routerOf();
    router.markErrorWithDelay(KEY_A, 5_000);
    clock.tick(5_000);
    expect(router.exportState().keys).toStrictEqual([{ id: fingerprint(KEY_A), status: "ready", failures: 1 }]);
  });

  it("ids are the SHA-256 hex of each key, as fingerprint() gives it", () => {
    expect(fingerprint("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const ids = routerInEveryState().exportState().keys.map((entry) => entry.id);
    expect(ids).toEqual(KEYS.map(fingerprint));
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{64}$/);
  });

  it("never contains a key", () => {
    const text = JSON.stringify(routerInEveryState().exportState());
    for (const key of KEYS) {
      expect(text).not.toContain(key);
      expect(text).not.toContain(key.slice(4, -4));
    }
  });

  it("survives a JSON round trip unchanged", () => {
    const state = routerInEveryState().exportState();
    expect(roundTrip(state)).toStrictEqual(state);
  });
});

describe("initialState", () => {
  it("restores blocked and disabled keys as they were", () => {
    const saved = roundTrip(routerInEveryState().exportState());
    const restored = routerOf(KEYS, { initialState: saved });
    expect(restored.stateOf(KEY_B)).toEqual({ status: "blocked" });
    expect(restored.stateOf(KEY_C)).toEqual({ status: "disabled" });
    clock.tick(86_400_000);
    expect(restored.stateOf(KEY_B)).toEqual({ status: "blocked" });
    const picked = new Set(Array.from({ length: 8 }, () => restored.nextKey()));
    expect(picked.has(KEY_B) || picked.has(KEY_C)).toBe(false);
  });

  it("after a restart 10 s later, keeps what was left of a cooldown minus those 10 s", () => {
    const router = routerOf();
    router.markErrorWithDelay(KEY_A, 30_000);
    const saved = roundTrip(router.exportState());
    clock.tick(10_000);
    const restored = routerOf(KEYS, { initialState: saved });
    expect(restored.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 20_000 });
    expect(Array.from({ length: 3 }, () => restored.nextKey())).toEqual([KEY_B, KEY_C, KEY_D]);
    clock.tick(20_000);
    expect(restored.stateOf(KEY_A)).toEqual({ status: "ready" });
  });

  it("keeps the remaining time whatever the new process's monotonic clock reads", () => {
    const router = routerOf();
    router.markErrorWithDelay(KEY_A, 30_000);
    const saved = roundTrip(router.exportState());
    clock.tick(10_000);
    let monotonic = 3; // a new process: its monotonic clock starts near zero
    const restored = routerOf(KEYS, { initialState: saved, now: () => monotonic });
    expect(restored.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 20_000 });
    expect(restored.nextReadyInMs()).toBe(0);
    monotonic += 20_000;
    expect(restored.stateOf(KEY_A)).toEqual({ status: "ready" });
  });

  it("drops a cooldown that ended before the restore, but keeps its failures", () => {
    const router = routerOf([KEY_A], { cooldownMs: 1_000, maxCooldownMs: 60_000 });
    router.markError(KEY_A);
    const saved = roundTrip(router.exportState());
    clock.tick(1_000);
    const restored = routerOf([KEY_A], { cooldownMs: 1_000, maxCooldownMs: 60_000, initialState: saved });
    expect(restored.stateOf(KEY_A)).toEqual({ status: "ready" });
    expect(restored.snapshot()[0]!.failures).toBe(1);
    expect(restored.nextReadyInMs()).toBe(0);
  });

  it("carries failures over, so escalation goes on where it was", () => {
    const options = { cooldownMs: 1_000, maxCooldownMs: 60_000 };
    const router = routerOf([KEY_A], options);
    router.markError(KEY_A);
    clock.tick(1_000);
    router.markError(KEY_A);
    clock.tick(2_000);
    router.markError(KEY_A);
    expect(router.snapshot()[0]!.failures).toBe(3);
    const saved = roundTrip(router.exportState());
    clock.tick(4_000);
    const restored = routerOf([KEY_A], { ...options, initialState: saved });
    expect(restored.snapshot()[0]!.failures).toBe(3);
    restored.markError(KEY_A);
    expect(restored.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 8_000 });
  });

  it("follows each key by fingerprint when the list is reordered or changed", () => {
    const saved = roundTrip(routerInEveryState().exportState());
    const KEY_E = "sk-proj-EEEE9999jjjj0000kkkk";
    // B is gone, E is new, the rest moved.
    const restored = routerOf([KEY_E, KEY_C, KEY_D, KEY_A], { initialState: saved });
    expect(restored.snapshot().map((row) => [row.hint, row.state, row.failures])).toEqual([
      ["sk-p…kkkk", { status: "ready" }, 0],
      ["sk-p…gggg", { status: "disabled" }, 0],
      ["sk-p…iiii", { status: "ready" }, 1],
      ["sk-p…cccc", { status: "cooldown", remainingMs: 5_000 }, 1],
    ]);
    expect(restored.nextKey()).toBe(KEY_E);
    expect(restored.nextKey()).toBe(KEY_D);
    expect(restored.nextKey()).toBe(KEY_E);
  });

  it("restores nothing into a router whose keys are all different", () => {
    const saved = roundTrip(routerInEveryState().exportState());
    const others = ["sk-other-0000111122223333", "sk-other-4444555566667777"];
    const restored = routerOf(others, { initialState: saved });
    expect(restored.snapshot().map((row) => row.state)).toEqual([{ status: "ready" }, { status: "ready" }]);
    expect(restored.exportState().keys).toEqual([]);
  });

  it("a restored router exports what it was given", () => {
    const saved = roundTrip(routerInEveryState().exportState());
    expect(routerOf(KEYS, { initialState: saved }).exportState()).toStrictEqual(saved);
  });

  it("a restored router counts its ready keys right", () => {
    const saved = roundTrip(routerInEveryState().exportState());
    const restored = routerOf(KEYS, { initialState: saved });
    expect(restored.nextReadyInMs()).toBe(0);
    restored.markBlocked(KEY_D);
    expect(restored.nextKey()).toBeUndefined();
    expect(restored.nextReadyInMs()).toBe(5_000);
    restored.clearCooldown(KEY_B);
    expect(restored.nextKey()).toBe(KEY_B);
  });

  it("accepts a ready entry with failures and a cooldown entry without", () => {
    const initialState: SavedState = {
      version: 1,
      savedAt: EPOCH - 1_000,
      keys: [
        { id: fingerprint(KEY_A), status: "ready", failures: 2 },
        { id: fingerprint(KEY_B), status: "cooldown", until: EPOCH + 4_000 },
      ],
    };
    const restored = routerOf(KEYS, { initialState });
    expect(restored.snapshot().slice(0, 2).map((row) => [row.state, row.failures])).toEqual([
      [{ status: "ready" }, 2],
      [{ status: "cooldown", remainingMs: 4_000 }, 0],
    ]);
  });
});

describe("malformed initialState", () => {
  const id = fingerprint(KEY_A);
  const withKeys = (keys: unknown[]) => ({ version: 1, savedAt: EPOCH, keys });

  it.each<[string, string, unknown]>([
    ["null", "initialState", null],
    ["a string", "initialState", "{}"],
    ["a wrong version", "initialState.version", { version: 3, savedAt: EPOCH, keys: [] }],
    ["no version", "initialState.version", { savedAt: EPOCH, keys: [] }],
    ["no savedAt", "initialState.savedAt", { version: 1, keys: [] }],
    ["a string savedAt", "initialState.savedAt", { version: 1, savedAt: "2025-01-01", keys: [] }],
    ["keys not an array", "initialState.keys", { version: 1, savedAt: EPOCH, keys: {} }],
    ["an entry that is not an object", "initialState.keys[0]", withKeys([null])],
    ["an id that is not a fingerprint", "initialState.keys[0].id", withKeys([{ id: "abc", status: "blocked" }])],
    ["an id in upper case", "initialState.keys[0].id", withKeys([{ id: id.toUpperCase(), status: "blocked" }])],
    ["an unknown status", "initialState.keys[0].status", withKeys([{ id, status: "cooling" }])],
    ["a cooldown with no until", "initialState.keys[0].until", withKeys([{ id, status: "cooldown" }])],
    ["a cooldown with a string until", "initialState.keys[0].until", withKeys([{ id, status: "cooldown", until: "1735689600000" }])],
    ["a cooldown with a NaN until", "initialState.keys[0].until", withKeys([{ id, status: "cooldown", until: Number.NaN }])],
    ["a cooldown with an infinite until", "initialState.keys[0].until", withKeys([{ id, status: "cooldown", until: Infinity }])],
    ["negative failures", "initialState.keys[0].failures", withKeys([{ id, status: "ready", failures: -1 }])],
    ["fractional failures", "initialState.keys[0].failures", withKeys([{ id, status: "ready", failures: 1.5 }])],
    ["failures as a string", "initialState.keys[0].failures", withKeys([{ id, status: "ready", failures: "2" }])],
    ["failures past 32 bits", "initialState.keys[0].failures", withKeys([{ id, status: "ready", failures: 2 ** 32 }])],
    [
      "a bad second entry",
      "initialState.keys[1].status",
      withKeys([{ id, status: "blocked" }, { id: fingerprint(KEY_B), status: "gone" }]),
    ],
    [
      "the same key twice",
      "initialState.keys[1].id",
      withKeys([
        { id, status: "cooldown", until: EPOCH + 1_000 },
        { id, status: "cooldown", until: EPOCH + 2_000 },
      ]),
    ],
  ])("%s: a TypeError naming %s", (_name, path, initialState) => {
    const build = () => routerOf(KEYS, { initialState: initialState as SavedState });
    expect(build).toThrow(TypeError);
    const escaped = path.replace(/[.[\]]/g, (character) => `\\${character}`);
    expect(build).toThrow(new RegExp(`^${escaped} must be`));
  });

  it("never echoes a key passed where a fingerprint belongs", () => {
    let message = "";
    try {
      routerOf(KEYS, { initialState: withKeys([{ id: KEY_A, status: "blocked" }]) as SavedState });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^initialState\.keys\[0\]\.id must be/);
    expect(message).not.toContain(KEY_A);
    expect(message).not.toContain(KEY_A.slice(4, -4));
  });
});

describe("importState is all or nothing", () => {
  it("a sparse keys array throws before any entry is applied", () => {
    const router = routerOf();
    const keys: SavedState["keys"] = [{ id: fingerprint(KEY_A), status: "blocked" }];
    keys[2] = { id: fingerprint(KEY_B), status: "blocked" };
    expect(() => router.importState({ version: 1, savedAt: EPOCH, keys })).toThrow(/^state\.keys\[1\] must be an object/);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
  });

  it("a bad entry after good ones applies none of them", () => {
    const router = routerOf();
    const keys = [
      { id: fingerprint(KEY_A), status: "disabled" },
      { id: fingerprint(KEY_B), status: "cooldown", until: "soon" },
    ];
    expect(() => router.importState({ version: 1, savedAt: EPOCH, keys } as unknown as SavedState)).toThrow(/^state\.keys\[1\]\.until/);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
  });

  it("each field is read once: a getter that changes after the check cannot slip a bad status in", () => {
    const router = routerOf();
    let reads = 0;
    const entry = {
      id: fingerprint(KEY_A),
      get status() {
        return reads++ === 0 ? "blocked" : "nonsense";
      },
    };
    router.importState({ version: 1, savedAt: EPOCH, keys: [entry as never] });
    expect(reads).toBe(1);
    expect(router.stateOf(KEY_A)).toEqual({ status: "blocked" });
    expect(router.nextKey()).toBe(KEY_B);
    expect(router.snapshot()[0]!.state).toEqual({ status: "blocked" });
  });
});

describe("importState", () => {
  /** A router with KEY_A two failures into a run: ready again, its next default cooldown 40 s. */
  function routerAfterTwoFailures() {
    const router = routerOf(KEYS, { maxCooldownMs: 600_000 });
    router.markError(KEY_A);
    clock.tick(10_000);
    router.markError(KEY_A);
    clock.tick(20_000);
    expect(router.snapshot()[0]).toMatchObject({ state: { status: "ready" }, failures: 2 });
    return router;
  }

  const stateOf = (keys: SavedState["keys"]): SavedState => ({ version: 1, savedAt: Date.now(), keys });

  it("a ready entry without failures ends the key's run, as clearCooldown does", () => {
    const router = routerAfterTwoFailures();
    router.importState(stateOf([{ id: fingerprint(KEY_A), status: "ready" }]));
    expect(router.snapshot()[0]).toMatchObject({ state: { status: "ready" }, failures: 0 });
    router.markError(KEY_A);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 10_000 });
  });

  it.each(["cooldown", "blocked", "disabled"] as const)("a %s entry without failures keeps the key's own count", (status) => {
    const router = routerAfterTwoFailures();
    router.importState(stateOf([{ id: fingerprint(KEY_A), status, until: Date.now() + 5_000 }]));
    expect(router.snapshot()[0]).toMatchObject({ state: { status }, failures: 2 });
  });

  it("after an imported cooldown without failures, the run goes on where it was", () => {
    const router = routerAfterTwoFailures();
    router.importState(stateOf([{ id: fingerprint(KEY_A), status: "cooldown", until: Date.now() + 5_000 }]));
    clock.tick(5_000);
    router.markError(KEY_A);
    // The third window of the run: 10 s doubled twice.
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 40_000 });
  });

  it("an entry's failures replace the key's own, whatever its status", () => {
    const router = routerAfterTwoFailures();
    router.importState(stateOf([{ id: fingerprint(KEY_A), status: "blocked", failures: 5 }]));
    expect(router.snapshot()[0]).toMatchObject({ state: { status: "blocked" }, failures: 5 });
  });

  it("a cooldown that has already ended leaves a ready key alone, with no event, and the ready count right", () => {
    const router = routerOf([KEY_A, KEY_B]);
    const events: RouterEvent[] = [];
    router.subscribe((event) => void events.push(event));
    router.importState(stateOf([{ id: fingerprint(KEY_A), status: "cooldown", until: Date.now() - 1 }]));
    router.importState(stateOf([{ id: fingerprint(KEY_A), status: "cooldown", until: Date.now() }]));
    expect(events).toEqual([]);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    // Had the import added KEY_A to the ready keys a second time, one key would still seem ready.
    router.markBlocked(KEY_A);
    router.markBlocked(KEY_B);
    expect(router.nextKey()).toBeUndefined();
    expect(router.nextReadyInMs()).toBeUndefined();
  });

  it("a cooldown that has already ended makes a cooling key ready, with one ready event", () => {
    const router = routerOf([KEY_A, KEY_B]);
    router.markErrorWithDelay(KEY_A, 60_000);
    const events: RouterEvent[] = [];
    router.subscribe((event) => void events.push(event));
    router.importState(stateOf([{ id: fingerprint(KEY_A), status: "cooldown", until: Date.now() - 1 }]));
    expect(events).toMatchObject([{ type: "ready", index: 0 }]);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    expect(router.nextReadyInMs()).toBe(0);
  });

  it("a cooldown still running moves the deadline of a cooling key, with one cooldown event", () => {
    const router = routerOf([KEY_A, KEY_B]);
    router.markErrorWithDelay(KEY_A, 60_000);
    const events: RouterEvent[] = [];
    router.subscribe((event) => void events.push(event));
    router.importState(stateOf([{ id: fingerprint(KEY_A), status: "cooldown", until: Date.now() + 5_000 }]));
    router.importState(stateOf([{ id: fingerprint(KEY_A), status: "cooldown", until: Date.now() + 5_000 }]));
    expect(events).toMatchObject([{ type: "cooldown", index: 0, delayMs: 5_000 }]);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 5_000 });
    router.markBlocked(KEY_B);
    expect(router.nextReadyInMs()).toBe(5_000);
  });
});

describe("malformed initialState: edges", () => {
  it("accepts failures of 0", () => {
    const initialState: SavedState = { version: 1, savedAt: EPOCH, keys: [{ id: fingerprint(KEY_A), status: "blocked", failures: 0 }] };
    expect(routerOf(KEYS, { initialState }).stateOf(KEY_A)).toEqual({ status: "blocked" });
  });

  it.each([
    ["a 65-digit id", `${fingerprint(KEY_A)}0`],
    ["an id with a prefix", `0${fingerprint(KEY_A).slice(1)}x`],
  ])("refuses %s", (_, id) => {
    const initialState = { version: 1, savedAt: EPOCH, keys: [{ id, status: "blocked" }] } as SavedState;
    expect(() => routerOf(KEYS, { initialState })).toThrow("initialState.keys[0].id must be a SHA-256 fingerprint listed once");
  });
});

describe("malformed initialState: what the message says is expected", () => {
  const id = fingerprint(KEY_A);
  const withKeys = (keys: unknown[]) => ({ version: 1, savedAt: EPOCH, keys });

  it.each<[string, unknown]>([
    ["initialState must be an object from exportState()", null],
    ["initialState.version must be 1 or 2", { version: 3, savedAt: EPOCH, keys: [] }],
    ["initialState.savedAt must be an epoch time in ms", { version: 1, keys: [] }],
    ["initialState.keys must be an array", { version: 1, savedAt: EPOCH, keys: {} }],
    ["initialState.keys[0] must be an object", withKeys([5])],
    ["initialState.keys[0].id must be a SHA-256 fingerprint listed once", withKeys([{ id: [id], status: "blocked" }])],
    ["initialState.keys[0].status must be a key status", withKeys([{ id, status: "cooling" }])],
    ["initialState.keys[0].until must be an epoch time in ms", withKeys([{ id, status: "cooldown" }])],
    ["initialState.keys[0].failures must be an integer from 0 to 2^32-1", withKeys([{ id, status: "ready", failures: -1 }])],
  ])("%s", (message, initialState) => {
    expect(() => routerOf(KEYS, { initialState: initialState as SavedState })).toThrow(message);
  });
});

describe("importState: malformed state", () => {
  it("names the argument `state` in its message", () => {
    expect(() => routerOf().importState({ version: 3 } as unknown as SavedState)).toThrow("state.version must be 1 or 2");
  });
});
