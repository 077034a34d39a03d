/**
 * Model-based test: random sequences of operations run on the router and on a small reference model
 * (the Rust original's linear scans, with the documented corrections, and scopes and groups written
 * the obvious way), which must agree on every returned key, every state and every return value.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CredentialRouter, type KeyState, type KeySnapshot, type RoutingStrategy } from "../src/index.js";

type Status = KeyState["status"];
const SEVERITY: Status[] = ["ready", "cooldown", "blocked", "disabled"];

/** The keys' states in one layer: key-wide (""), or a scope. */
class ModelLayer {
  readonly status: Status[];
  readonly until: number[];
  readonly reason: string[];
  /** One cursor per tier (round-robin is one tier, fill-first one key a tier). */
  readonly cursor = new Map<number, number>();

  constructor(size: number) {
    this.status = Array.from({ length: size }, () => "ready");
    this.until = Array.from({ length: size }, () => 0);
    this.reason = Array.from({ length: size }, () => "");
  }

  get out(): boolean {
    return this.status.some((status) => status !== "ready");
  }

  expire(time: number): void {
    this.status.forEach((status, index) => {
      if (status === "cooldown" && this.until[index]! <= time) this.status[index] = "ready";
    });
  }

  stateOf(index: number, time: number): KeyState {
    const status = this.status[index]!;
    return status === "cooldown" ? { status, remainingMs: this.until[index]! - time } : ({ status } as KeyState);
  }

  /** When the key is ready here: now, its deadline, or never. */
  readyAt(index: number, time: number): number {
    const status = this.status[index]!;
    return status === "ready" ? time : status === "cooldown" ? this.until[index]! : Infinity;
  }
}

interface Mark {
  scope?: string | undefined;
  reason?: string | undefined;
  group?: boolean | undefined;
}

/** Obviously correct, and slow: every call scans every key. */
class ReferenceRouter {
  /** The key-wide layer, and the scopes in which some key is out. */
  readonly wide: ModelLayer;
  readonly scopes = new Map<string, ModelLayer>();
  readonly failures: number[];
  time = 0;

  constructor(
    readonly keys: string[],
    readonly tiers: number[],
    readonly groups: (string | undefined)[],
    readonly options: { cooldownMs: number; maxCooldownMs: number; maxRetryAfterMs: number },
  ) {
    this.wide = new ModelLayer(keys.length);
    this.failures = keys.map(() => 0);
  }

  /** Expires the key-wide layer and the scope (dropping it when all its keys are ready again). */
  settle(scope: string | undefined): void {
    this.wide.expire(this.time);
    const layer = scope === undefined ? undefined : this.scopes.get(scope);
    if (layer === undefined) return;
    layer.expire(this.time);
    if (!layer.out) this.scopes.delete(scope!);
  }

  /** The live scope, else the key-wide layer. */
  layer(scope: string | undefined): ModelLayer {
    return (scope !== undefined && this.scopes.get(scope)) || this.wide;
  }

  /** The live scope, or a new one. */
  open(scope: string | undefined): ModelLayer {
    if (scope === undefined) return this.wide;
    let layer = this.scopes.get(scope);
    if (layer === undefined) this.scopes.set(scope, (layer = new ModelLayer(this.keys.length)));
    return layer;
  }

  dropIfReady(scope: string | undefined): void {
    if (scope !== undefined && this.scopes.get(scope)?.out === false) this.scopes.delete(scope);
  }

  isReady(index: number, layer: ModelLayer): boolean {
    return this.wide.status[index] === "ready" && layer.status[index] === "ready";
  }

  nextKey(scope?: string): string | undefined {
    this.settle(scope);
    const layer = this.layer(scope);
    const ready = this.keys.map((_, index) => index).filter((index) => this.isReady(index, layer));
    if (ready.length === 0) return undefined;
    const tier = Math.min(...ready.map((index) => this.tiers[index]!));
    const members = this.keys.map((_, index) => index).filter((index) => this.tiers[index] === tier);
    const start = layer.cursor.get(tier) ?? 0;
    for (let step = 0; step < members.length; step++) {
      const position = (start + step) % members.length;
      const index = members[position]!;
      if (this.isReady(index, layer)) {
        layer.cursor.set(tier, (position + 1) % members.length);
        return this.keys[index];
      }
    }
    throw new Error("unreachable: the tier has a ready key");
  }

  coolDown(key: string, delayMs: number | undefined, { scope, reason = "manual", group }: Mark): boolean {
    const index = this.keys.indexOf(key);
    if (index === -1) return false;
    this.settle(scope);
    const layer = this.open(scope);
    if (layer.status[index] === "ready") this.failures[index]!++;
    const delay =
      delayMs === undefined
        ? Math.min(this.options.cooldownMs * 2 ** (Math.max(this.failures[index]!, 1) - 1), this.options.maxCooldownMs)
        : Math.min(delayMs, this.options.maxRetryAfterMs);
    const until = this.time + delay;
    const spread = group ?? (reason === "rate_limit" || reason === "quota");
    const name = this.groups[index];
    const members = spread && name !== undefined ? this.keys.map((_, i) => i).filter((i) => this.groups[i] === name) : [index];
    for (const member of members) {
      const status = layer.status[member];
      if (status === "ready" || (status === "cooldown" && until > layer.until[member]!)) {
        layer.status[member] = "cooldown";
        layer.until[member] = until;
        layer.reason[member] = reason;
      }
    }
    this.dropIfReady(scope);
    return true;
  }

  raise(key: string, status: "blocked" | "disabled", { scope, reason = "manual" }: Mark): boolean {
    const index = this.keys.indexOf(key);
    if (index === -1) return false;
    this.settle(scope);
    const layer = this.open(scope);
    if (SEVERITY.indexOf(layer.status[index]!) < SEVERITY.indexOf(status)) {
      layer.status[index] = status;
      layer.reason[index] = reason;
    }
    return true;
  }

  markSuccess(key: string): boolean {
    const index = this.keys.indexOf(key);
    if (index === -1) return false;
    this.failures[index] = 0;
    return true;
  }

  clearCooldown(key: string, scope?: string): boolean {
    const index = this.keys.indexOf(key);
    if (index === -1) return false;
    if (scope === undefined) {
      this.failures[index] = 0;
      this.wide.status[index] = "ready";
      for (const [name, layer] of this.scopes) {
        layer.status[index] = "ready";
        this.dropIfReady(name);
      }
    } else if (this.scopes.has(scope)) {
      this.scopes.get(scope)!.status[index] = "ready";
      this.dropIfReady(scope);
    }
    return true;
  }

  stateOf(key: string, scope?: string): KeyState | undefined {
    const index = this.keys.indexOf(key);
    if (index === -1) return undefined;
    this.settle(scope);
    const wide = this.wide.stateOf(index, this.time);
    const here = this.layer(scope).stateOf(index, this.time);
    const worse =
      SEVERITY.indexOf(here.status) > SEVERITY.indexOf(wide.status) ||
      (here.status === "cooldown" && wide.status === "cooldown" && here.remainingMs > wide.remainingMs);
    return worse ? here : wide;
  }

  nextReadyInMs(scope?: string): number | undefined {
    this.settle(scope);
    const layer = this.layer(scope);
    const earliest = Math.min(...this.keys.map((_, index) => Math.max(this.wide.readyAt(index, this.time), layer.readyAt(index, this.time))));
    return earliest === Infinity ? undefined : earliest - this.time;
  }

  /** What `snapshot()` shows of one key, after everything that ended has expired. */
  row(index: number): Pick<KeySnapshot, "state" | "failures" | "scopes"> & { reason?: string } {
    const row: Pick<KeySnapshot, "state" | "failures" | "scopes"> & { reason?: string } = {
      state: this.wide.stateOf(index, this.time),
      failures: this.failures[index]!,
      scopes: [],
    };
    if (this.wide.status[index] !== "ready") row.reason = this.wide.reason[index]!;
    for (const [scope, layer] of this.scopes) {
      if (layer.status[index] !== "ready") row.scopes.push({ scope, state: layer.stateOf(index, this.time), reason: layer.reason[index]! });
    }
    return row;
  }

  settleAll(): void {
    this.wide.expire(this.time);
    for (const scope of [...this.scopes.keys()]) this.settle(scope);
  }
}

type Operation =
  | { op: "nextKey" | "nextReadyInMs"; scope?: string | undefined }
  | { op: "markError" | "markBlocked" | "markDisabled"; key: number; mark: Mark }
  | { op: "markSuccess"; key: number }
  | { op: "clearCooldown" | "stateOf"; key: number; scope?: string | undefined }
  | { op: "markErrorWithDelay"; key: number; delayMs: number; mark: Mark }
  | { op: "advance"; ms: number };

/** No scope, or one of a few names, so that scopes meet often. */
const scopeArbitrary = (scoped: boolean) => (scoped ? fc.constantFrom(undefined, undefined, "gpt-4o", "gpt-4o-mini") : fc.constant(undefined));

/** Key positions past the list stand for unknown keys. */
const operation = (size: number, scoped: boolean): fc.Arbitrary<Operation> => {
  const key = fc.nat(size);
  const scope = scopeArbitrary(scoped);
  const mark = fc.record(
    {
      scope,
      reason: fc.constantFrom(undefined, "rate_limit", "quota", "manual", "model_gone"),
      group: fc.constantFrom(undefined, true, false),
    },
    { requiredKeys: [] },
  );
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant("nextKey" as const), scope }, { requiredKeys: ["op"] }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("markError" as const), key, mark }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("markErrorWithDelay" as const), key, delayMs: fc.integer({ min: 0, max: 5_000 }), mark }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constantFrom("markBlocked" as const, "markDisabled" as const), key, mark }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("markSuccess" as const), key }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("clearCooldown" as const), key, scope }, { requiredKeys: ["op", "key"] }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("stateOf" as const), key, scope }, { requiredKeys: ["op", "key"] }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 3_000 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("nextReadyInMs" as const), scope }, { requiredKeys: ["op"] }) },
  );
};

const scenario = (scoped: boolean) =>
  fc
    .integer({ min: 1, max: 7 })
    .chain((size) =>
      fc.record({
        size: fc.constant(size),
        tiers: fc.array(fc.integer({ min: -1, max: 2 }), { minLength: size, maxLength: size }),
        groups: scoped
          ? fc.array(fc.constantFrom(undefined, "project-1", "project-2"), { minLength: size, maxLength: size })
          : fc.constant(Array.from({ length: size }, () => undefined)),
        cooldownMs: fc.constantFrom(0, 100, 1_000),
        growth: fc.constantFrom(1, 4, 100),
        maxRetryAfterMs: fc.constantFrom(500, 86_400_000),
        operations: fc.array(operation(size, scoped), { maxLength: 120 }),
      }),
    );

function check(kind: "round-robin" | "fill-first" | "priority", scoped = false) {
  fc.assert(
    fc.property(scenario(scoped), ({ size, tiers, groups, cooldownMs, growth, maxRetryAfterMs, operations }) => {
      const keys = Array.from({ length: size }, (_, index) => `key-${index}`);
      const modelTiers = kind === "round-robin" ? keys.map(() => 0) : kind === "fill-first" ? keys.map((_, i) => i) : tiers;
      const strategy: RoutingStrategy = kind === "priority" ? { type: kind, tiers } : { type: kind };
      const options = { cooldownMs, maxCooldownMs: cooldownMs * growth, maxRetryAfterMs };
      const model = new ReferenceRouter(keys, modelTiers, groups, options);
      const router = new CredentialRouter(keys, { ...options, strategy, groups, now: () => model.time });
      const name = (key: number) => keys[key] ?? `unknown-${key}`;

      for (const step of operations) {
        switch (step.op) {
          case "nextKey":
            expect(router.nextKey(step.scope)).toBe(model.nextKey(step.scope));
            break;
          case "markError":
            expect(router.markError(name(step.key), step.mark)).toBe(model.coolDown(name(step.key), undefined, step.mark));
            break;
          case "markErrorWithDelay":
            expect(router.markErrorWithDelay(name(step.key), step.delayMs, step.mark)).toBe(model.coolDown(name(step.key), step.delayMs, step.mark));
            break;
          case "markBlocked":
            expect(router.markBlocked(name(step.key), step.mark)).toBe(model.raise(name(step.key), "blocked", step.mark));
            break;
          case "markDisabled":
            expect(router.markDisabled(name(step.key), step.mark)).toBe(model.raise(name(step.key), "disabled", step.mark));
            break;
          case "markSuccess":
            expect(router.markSuccess(name(step.key))).toBe(model.markSuccess(name(step.key)));
            break;
          case "clearCooldown":
            expect(router.clearCooldown(name(step.key), { scope: step.scope })).toBe(model.clearCooldown(name(step.key), step.scope));
            break;
          case "stateOf":
            expect(router.stateOf(name(step.key), step.scope)).toEqual(model.stateOf(name(step.key), step.scope));
            break;
          case "advance":
            model.time += step.ms;
            break;
          case "nextReadyInMs":
            expect(router.nextReadyInMs(step.scope)).toBe(model.nextReadyInMs(step.scope));
            break;
        }
      }
      // Finally, every key's state, reason, failure count and scoped states agree.
      const snapshot = router.snapshot();
      model.settleAll();
      keys.forEach((_, index) => {
        const { state, reason, failures, scopes } = snapshot[index]!;
        expect({ state, reason, failures, scopes }).toEqual(model.row(index));
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
  it("with scopes, groups and reasons, under round-robin", () => check("round-robin", true), MODEL_TEST_TIMEOUT_MS);
  it("with scopes, groups and reasons, under priority tiers", () => check("priority", true), MODEL_TEST_TIMEOUT_MS);
});
