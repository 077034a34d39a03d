/**
 * Model-based test: random sequences of operations run on the router and on a small reference model
 * (the Rust original's linear scans, with the documented corrections), which must agree on every
 * returned key, every state and every return value.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CredentialRouter, type KeyState, type RoutingStrategy } from "../src/index.js";

type Status = KeyState["status"];

/** Obviously correct, and slow: every call scans every key. */
class ReferenceRouter {
  readonly status: Status[];
  readonly until: number[];
  readonly failures: number[];
  /** One cursor per tier (round-robin is one tier, fill-first one key a tier). */
  readonly cursor = new Map<number, number>();
  time = 0;

  constructor(
    readonly keys: string[],
    readonly tiers: number[],
    readonly options: { cooldownMs: number; maxCooldownMs: number; maxRetryAfterMs: number },
  ) {
    this.status = keys.map(() => "ready");
    this.until = keys.map(() => 0);
    this.failures = keys.map(() => 0);
  }

  expire(): void {
    this.status.forEach((status, index) => {
      if (status === "cooldown" && this.until[index]! <= this.time) this.status[index] = "ready";
    });
  }

  nextKey(): string | undefined {
    this.expire();
    const ready = this.keys.map((_, index) => index).filter((index) => this.status[index] === "ready");
    if (ready.length === 0) return undefined;
    const tier = Math.min(...ready.map((index) => this.tiers[index]!));
    const members = this.keys.map((_, index) => index).filter((index) => this.tiers[index] === tier);
    const start = this.cursor.get(tier) ?? 0;
    for (let step = 0; step < members.length; step++) {
      const position = (start + step) % members.length;
      const index = members[position]!;
      if (this.status[index] === "ready") {
        this.cursor.set(tier, (position + 1) % members.length);
        return this.keys[index];
      }
    }
    throw new Error("unreachable: the tier has a ready key");
  }

  coolDown(key: string, delayMs?: number): boolean {
    const index = this.keys.indexOf(key);
    if (index === -1) return false;
    if (this.status[index] === "blocked" || this.status[index] === "disabled") return true;
    this.expire();
    if (this.status[index] === "ready") this.failures[index]!++;
    const delay =
      delayMs === undefined
        ? Math.min(this.options.cooldownMs * 2 ** (Math.max(this.failures[index]!, 1) - 1), this.options.maxCooldownMs)
        : Math.min(delayMs, this.options.maxRetryAfterMs);
    const until = this.time + delay;
    if (this.status[index] === "ready") {
      this.status[index] = "cooldown";
      this.until[index] = until;
    } else {
      this.until[index] = Math.max(this.until[index]!, until);
    }
    return true;
  }

  raise(key: string, status: "blocked" | "disabled"): boolean {
    const index = this.keys.indexOf(key);
    if (index === -1) return false;
    const severity: Status[] = ["ready", "cooldown", "blocked", "disabled"];
    if (severity.indexOf(this.status[index]!) < severity.indexOf(status)) this.status[index] = status;
    return true;
  }

  markSuccess(key: string): boolean {
    const index = this.keys.indexOf(key);
    if (index === -1) return false;
    this.failures[index] = 0;
    return true;
  }

  clearCooldown(key: string): boolean {
    const index = this.keys.indexOf(key);
    if (index === -1) return false;
    this.failures[index] = 0;
    this.status[index] = "ready";
    return true;
  }

  stateOf(key: string): KeyState | undefined {
    const index = this.keys.indexOf(key);
    if (index === -1) return undefined;
    this.expire();
    const status = this.status[index]!;
    return status === "cooldown" ? { status, remainingMs: this.until[index]! - this.time } : ({ status } as KeyState);
  }

  nextReadyInMs(): number | undefined {
    this.expire();
    if (this.status.includes("ready")) return 0;
    const cooling = this.until.filter((_, index) => this.status[index] === "cooldown");
    return cooling.length === 0 ? undefined : Math.min(...cooling) - this.time;
  }
}

type Operation =
  | { op: "nextKey" }
  | { op: "markError" | "markBlocked" | "markDisabled" | "markSuccess" | "clearCooldown" | "stateOf"; key: number }
  | { op: "markErrorWithDelay"; key: number; delayMs: number }
  | { op: "advance"; ms: number }
  | { op: "nextReadyInMs" };

/** Key positions past the list stand for unknown keys. */
const operation = (size: number): fc.Arbitrary<Operation> => {
  const key = fc.nat(size);
  return fc.oneof(
    { weight: 6, arbitrary: fc.constant({ op: "nextKey" as const }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("markError" as const), key }) },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant("markErrorWithDelay" as const), key, delayMs: fc.integer({ min: 0, max: 5_000 }) }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constantFrom("markBlocked" as const, "markDisabled" as const, "markSuccess" as const, "clearCooldown" as const),
        key,
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("stateOf" as const), key }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 3_000 }) }) },
    { weight: 1, arbitrary: fc.constant({ op: "nextReadyInMs" as const }) },
  );
};

const scenario = fc
  .integer({ min: 1, max: 7 })
  .chain((size) =>
    fc.record({
      size: fc.constant(size),
      tiers: fc.array(fc.integer({ min: -1, max: 2 }), { minLength: size, maxLength: size }),
      cooldownMs: fc.constantFrom(0, 100, 1_000),
      growth: fc.constantFrom(1, 4, 100),
      maxRetryAfterMs: fc.constantFrom(500, 86_400_000),
      operations: fc.array(operation(size), { maxLength: 120 }),
    }),
  );

function check(kind: "round-robin" | "fill-first" | "priority") {
  fc.assert(
    fc.property(scenario, ({ size, tiers, cooldownMs, growth, maxRetryAfterMs, operations }) => {
      const keys = Array.from({ length: size }, (_, index) => `key-${index}`);
      const modelTiers = kind === "round-robin" ? keys.map(() => 0) : kind === "fill-first" ? keys.map((_, i) => i) : tiers;
      const strategy: RoutingStrategy = kind === "priority" ? { type: kind, tiers } : { type: kind };
      const options = { cooldownMs, maxCooldownMs: cooldownMs * growth, maxRetryAfterMs };
      const model = new ReferenceRouter(keys, modelTiers, options);
      const router = new CredentialRouter(keys, { ...options, strategy, now: () => model.time });
      const name = (key: number) => keys[key] ?? `unknown-${key}`;

      for (const step of operations) {
        switch (step.op) {
          case "nextKey":
            expect(router.nextKey()).toBe(model.nextKey());
            break;
          case "markError":
            expect(router.markError(name(step.key))).toBe(model.coolDown(name(step.key)));
            break;
          case "markErrorWithDelay":
            expect(router.markErrorWithDelay(name(step.key), step.delayMs)).toBe(model.coolDown(name(step.key), step.delayMs));
            break;
          case "markBlocked":
            expect(router.markBlocked(name(step.key))).toBe(model.raise(name(step.key), "blocked"));
            break;
          case "markDisabled":
            expect(router.markDisabled(name(step.key))).toBe(model.raise(name(step.key), "disabled"));
            break;
          case "markSuccess":
            expect(router.markSuccess(name(step.key))).toBe(model.markSuccess(name(step.key)));
            break;
          case "clearCooldown":
            expect(router.clearCooldown(name(step.key))).toBe(model.clearCooldown(name(step.key)));
            break;
          case "stateOf":
            expect(router.stateOf(name(step.key))).toEqual(model.stateOf(name(step.key)));
            break;
          case "advance":
            model.time += step.ms;
            break;
          case "nextReadyInMs":
            expect(router.nextReadyInMs()).toBe(model.nextReadyInMs());
            break;
        }
      }
      // Finally, every key's state and failure count agree.
      const snapshot = router.snapshot();
      keys.forEach((key, index) => {
        expect(snapshot[index]!.state).toEqual(model.stateOf(key));
        expect(snapshot[index]!.failures).toBe(model.failures[index]);
      });
    }),
    { numRuns: 1_000 },
  );
}

/** 1,000 runs of up to 120 operations: a fraction of a second when quiet, many times that on busy cores or under Stryker. */
const MODEL_TEST_TIMEOUT_MS = 60_000;

describe("the router agrees with the reference model", () => {
  it("under round-robin", () => check("round-robin"), MODEL_TEST_TIMEOUT_MS);
  it("under fill-first", () => check("fill-first"), MODEL_TEST_TIMEOUT_MS);
  it("under priority tiers", () => check("priority"), MODEL_TEST_TIMEOUT_MS);
});
