import { inspect } from "node:util";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { CredentialRouter, NoKeyAvailableError, isNoKeyAvailableError } from "../src/index.js";
import { KEY_A, KEY_B } from "./helpers/fixtures.js";

/** A NoKeyAvailableError made in another realm by another copy of the class: same name and code. */
function foreignNoKeyAvailableError(retryAfterMs: number | undefined): unknown {
  return runInNewContext(
    `class NoKeyAvailableError extends Error {
      constructor(retryAfterMs) {
        super("No API key is available");
        this.name = "NoKeyAvailableError";
        this.code = "NO_KEY_AVAILABLE";
        this.retryAfterMs = retryAfterMs;
      }
    }
    new NoKeyAvailableError(retryAfterMs);`,
    { retryAfterMs },
  );
}

describe("NoKeyAvailableError", () => {
  it("is an Error with a fixed name and code and the retryAfterMs it was given", () => {
    const error = new NoKeyAvailableError(1_500);
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(NoKeyAvailableError);
    expect(error.name).toBe("NoKeyAvailableError");
    expect(error.code).toBe("NO_KEY_AVAILABLE");
    expect(error.retryAfterMs).toBe(1_500);
  });

  it("says in its message when the next key is back, in whole milliseconds rounded up", () => {
    expect(new NoKeyAvailableError(1_500).message).toBe("No API key is available: the next one is ready in 1500 ms");
    expect(new NoKeyAvailableError(0.2).message).toBe("No API key is available: the next one is ready in 1 ms");
  });

  it("says when no key will come back by itself", () => {
    const error = new NoKeyAvailableError(undefined);
    expect(error.retryAfterMs).toBeUndefined();
    expect(error.message).toBe("No API key is available: every key is blocked or disabled");
  });

  it("keeps a cause", () => {
    const cause = new Error("last attempt");
    expect(new NoKeyAvailableError(10, { cause }).cause).toBe(cause);
  });

  it("shows its name in String(), the stack and inspect", () => {
    const error = new NoKeyAvailableError(250);
    expect(String(error)).toBe("NoKeyAvailableError: No API key is available: the next one is ready in 250 ms");
    expect(error.stack!.split("\n")[0]).toBe(String(error));
    expect(inspect(error)).toContain("NoKeyAvailableError: No API key is available");
  });

  it("serializes its name, code and retryAfterMs to JSON", () => {
    expect(JSON.parse(JSON.stringify(new NoKeyAvailableError(250)))).toEqual({
      name: "NoKeyAvailableError",
      code: "NO_KEY_AVAILABLE",
      retryAfterMs: 250,
    });
  });

  it("is what execute rejects with when no key could be tried, with retryAfterMs = nextReadyInMs()", async () => {
    let time = 0;
    const router = new CredentialRouter([KEY_A, KEY_B], { now: () => time });
    router.markErrorWithDelay(KEY_A, 9_000);
    router.markErrorWithDelay(KEY_B, 4_000);
    time = 1_000;
    const error = await router.execute(async () => "never").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NoKeyAvailableError);
    expect((error as NoKeyAvailableError).retryAfterMs).toBe(3_000);
    expect(router.nextReadyInMs()).toBe(3_000);
    for (const shown of [String(error), (error as Error).stack, JSON.stringify(error), inspect(error)]) {
      expect(shown).not.toContain(KEY_A);
      expect(shown).not.toContain(KEY_B);
    }
  });
});

describe("isNoKeyAvailableError", () => {
  it("recognizes a real one", () => {
    expect(isNoKeyAvailableError(new NoKeyAvailableError(5))).toBe(true);
    expect(isNoKeyAvailableError(new NoKeyAvailableError(undefined))).toBe(true);
  });

  it("recognizes one made in another realm, where instanceof says no", () => {
    const foreign = foreignNoKeyAvailableError(250);
    expect(foreign instanceof NoKeyAvailableError).toBe(false);
    expect(foreign instanceof Error).toBe(false);
    expect(isNoKeyAvailableError(foreign)).toBe(true);
    expect((foreign as NoKeyAvailableError).retryAfterMs).toBe(250);
  });

  it("judges a plain object that crossed JSON or structured clone by its name and code", () => {
    const error = new NoKeyAvailableError(250);
    const viaJson: unknown = JSON.parse(JSON.stringify(error));
    expect(isNoKeyAvailableError(viaJson)).toBe(true);
    const viaClone: unknown = structuredClone({ name: error.name, code: error.code, retryAfterMs: 250 });
    expect(isNoKeyAvailableError(viaClone)).toBe(true);
    expect(isNoKeyAvailableError({ name: "NoKeyAvailableError", code: "NO_KEY_AVAILABLE" })).toBe(true);
  });

  it.each<[string, unknown]>([
    ["the right name with another code", { name: "NoKeyAvailableError", code: "ENOKEY" }],
    ["the right code with another name", { name: "Error", code: "NO_KEY_AVAILABLE" }],
    ["the name alone", { name: "NoKeyAvailableError" }],
    ["the code alone", Object.assign(new Error("x"), { code: "NO_KEY_AVAILABLE" })],
    ["a plain Error", new Error("No API key is available")],
    ["a TypeError", new TypeError("fetch failed")],
    ["the name as a string", "NoKeyAvailableError"],
    ["null", null],
    ["undefined", undefined],
    ["a number", 429],
  ])("says no to %s", (_name, value) => {
    expect(isNoKeyAvailableError(value)).toBe(false);
  });

  it("narrows the type so retryAfterMs can be read", () => {
    const caught: unknown = foreignNoKeyAvailableError(undefined);
    if (!isNoKeyAvailableError(caught)) throw new Error("expected a NoKeyAvailableError");
    const retryAfterMs: number | undefined = caught.retryAfterMs;
    expect(retryAfterMs).toBeUndefined();
  });
});
