import { describe, expect, it } from "vitest";
import { CredentialRouter, type CredentialRouterOptions } from "../src/index.js";
import { KEY_A, KEYS } from "./helpers/fixtures.js";

const make = (options: unknown) => () => new CredentialRouter(KEYS, options as CredentialRouterOptions);

describe("router options: what a bad one's message says", () => {
  it.each([
    ["a string", "fast", "options must be an object, received a string"],
    ["null", null, "options must be an object, received null"],
  ])("options that are %s are a TypeError", (_, options, message) => {
    expect(make(options)).toThrow(new TypeError(message));
  });

  it.each([
    [{ cooldownMs: -1 }, RangeError, "cooldownMs must be a finite number >= 0, received -1"],
    // A value that is not a number is named by its kind, a number or a boolean by itself.
    [{ cooldownMs: true }, RangeError, "cooldownMs must be a finite number >= 0, received true"],
    [{ cooldownMs: {} }, RangeError, "cooldownMs must be a finite number >= 0, received an object"],
    [{ cooldownMs: 1_000, maxCooldownMs: 500 }, RangeError, "maxCooldownMs must be >= cooldownMs (1000), received 500"],
    [{ quotaCooldownMs: Infinity }, RangeError, "quotaCooldownMs must be a finite number >= 0, received Infinity"],
    [{ serverFaultThreshold: 0 }, RangeError, "serverFaultThreshold must be a positive integer, received 0"],
    [{ now: 5 }, TypeError, "now must be a function returning milliseconds, received 5"],
    [{ preemptive: "yes" }, TypeError, "preemptive must be a boolean, received a string"],
  ] as const)("%o", (options, kind, message) => {
    expect(make(options)).toThrow(new kind(message));
  });
});

describe("router options: the clock", () => {
  it("a reading that is not a number, such as a numeric string, counts as the last good one", () => {
    const readings: unknown[] = [1_000, "5000", 1_200];
    let last: unknown = 1_000;
    const router = new CredentialRouter(KEYS, { now: () => (last = readings.length > 0 ? readings.shift() : last) as number });
    router.markErrorWithDelay(KEY_A, 500);
    // "5000" reads as 1 000: the cooldown has 500 ms left, not none.
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 500 });
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 300 });
  });
});
