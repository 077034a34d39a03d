/**
 * Type tests for the public API, as a user imports it. Checked by `tsc -p test/tsconfig.json`
 * (`npm run typecheck`) and by Vitest's typecheck mode in the node project, which reports each `it`.
 * Nothing here runs: misuse is pinned down with `@ts-expect-error`, which fails if the line compiles.
 */
import { describe, expectTypeOf, it } from "vitest";
import {
  CredentialRouter,
  NoKeyAvailableError,
  isNoKeyAvailableError,
  parseRetryAfter,
  parseRetryDelay,
  type CooldownOptions,
  type CredentialRouterOptions,
  type MarkOptions,
  type Reason,
  type ScopeOptions,
  type ExecuteOptions,
  type KeyContext,
  type KeyRef,
  type KeyState,
  type KeyStatus,
  type Outcome,
  type RouterEvent,
  type RoutingStrategy,
  type Verdict,
} from "credential-router";

declare const router: CredentialRouter;

describe("RoutingStrategy", () => {
  it("accepts each variant with the fields it needs", () => {
    expectTypeOf({ type: "round-robin" } as const).toExtend<RoutingStrategy>();
    expectTypeOf({ type: "fill-first" } as const).toExtend<RoutingStrategy>();
    expectTypeOf({ type: "weighted", weights: [5, 5, 1] } as const).toExtend<RoutingStrategy>();
    expectTypeOf({ type: "priority", tiers: [0, 0, 1] } as const).toExtend<RoutingStrategy>();
    expectTypeOf({ type: "random" } as const).toExtend<RoutingStrategy>();
    expectTypeOf({ type: "random", random: Math.random } as const).toExtend<RoutingStrategy>();
    new CredentialRouter(["a", "b"], { strategy: { type: "weighted", weights: [2, 1] } });
    new CredentialRouter(["a", "b"], { strategy: { type: "priority", tiers: [0, 1] } });
    new CredentialRouter(["a", "b"], { strategy: { type: "random", random: () => 0.5 } });
  });

  it("names exactly five types", () => {
    expectTypeOf<RoutingStrategy["type"]>().toEqualTypeOf<"round-robin" | "fill-first" | "weighted" | "priority" | "random">();
  });

  it("narrows on type to the variant's fields", () => {
    const strategy = router.strategy;
    if (strategy.type === "weighted") expectTypeOf(strategy.weights).toEqualTypeOf<readonly number[]>();
    if (strategy.type === "priority") expectTypeOf(strategy.tiers).toEqualTypeOf<readonly number[]>();
    if (strategy.type === "random") expectTypeOf(strategy.random).toEqualTypeOf<(() => number) | undefined>();
    if (strategy.type === "round-robin") expectTypeOf(strategy).toEqualTypeOf<{ type: "round-robin" }>();
  });

  it("rejects a variant without its fields, or with another's", () => {
    // @ts-expect-error weighted needs weights
    new CredentialRouter(["a"], { strategy: { type: "weighted" } });
    // @ts-expect-error priority needs tiers
    new CredentialRouter(["a"], { strategy: { type: "priority" } });
    // @ts-expect-error weights are numbers
    new CredentialRouter(["a"], { strategy: { type: "weighted", weights: ["1"] } });
    // @ts-expect-error round-robin takes no weights
    new CredentialRouter(["a"], { strategy: { type: "round-robin", weights: [1] } });
    // @ts-expect-error random's source is a function returning a number
    new CredentialRouter(["a"], { strategy: { type: "random", random: 0.5 } });
    // @ts-expect-error there is no such strategy
    new CredentialRouter(["a"], { strategy: { type: "least-used" } });
    // @ts-expect-error a strategy is an object, not its name
    new CredentialRouter(["a"], { strategy: "round-robin" });
  });
});

describe("CredentialRouter", () => {
  it("takes a list of keys and optional options", () => {
    expectTypeOf(CredentialRouter).constructorParameters.toEqualTypeOf<
      [keys: readonly string[], options?: CredentialRouterOptions]
    >();
    expectTypeOf<CredentialRouterOptions["now"]>().toEqualTypeOf<(() => number) | undefined>();
    // @ts-expect-error keys are strings
    new CredentialRouter([1, 2]);
    // @ts-expect-error cooldownMs is a number of milliseconds
    new CredentialRouter(["a"], { cooldownMs: "30s" });
    // @ts-expect-error no such option
    new CredentialRouter(["a"], { cooldown: 30_000 });
  });

  it("returns a key or undefined, and booleans from marks", () => {
    expectTypeOf(router.nextKey()).toEqualTypeOf<string | undefined>();
    expectTypeOf(router.nextReadyInMs()).toEqualTypeOf<number | undefined>();
    expectTypeOf(router.markError).toEqualTypeOf<(key: string, options?: CooldownOptions) => boolean>();
    expectTypeOf(router.markErrorWithDelay).toEqualTypeOf<(key: string, delayMs: number, options?: CooldownOptions) => boolean>();
    expectTypeOf(router.markBlocked).parameter(1).toEqualTypeOf<MarkOptions | undefined>();
    expectTypeOf(router.clearCooldown).parameter(1).toEqualTypeOf<ScopeOptions | undefined>();
    expectTypeOf(router.nextKey).parameter(0).toEqualTypeOf<string | undefined>();
    expectTypeOf<MarkOptions["reason"]>().toEqualTypeOf<Reason | undefined>();
    // Any string is a reason, and the built-in ones are suggested.
    expectTypeOf<"rate_limit">().toExtend<Reason>();
    expectTypeOf<"model_gone">().toExtend<Reason>();
    // @ts-expect-error a reason is a string
    router.markError("a", { reason: 429 });
    // @ts-expect-error group is for cooldowns
    router.markBlocked("a", { group: true });
    expectTypeOf(router.markBlocked).returns.toEqualTypeOf<boolean>();
    expectTypeOf(router.markDisabled).returns.toEqualTypeOf<boolean>();
    expectTypeOf(router.clearCooldown).returns.toEqualTypeOf<boolean>();
    expectTypeOf(router.size).toEqualTypeOf<number>();
    expectTypeOf(router.maxRetry).toEqualTypeOf<number | undefined>();
    // @ts-expect-error the delay is a number of milliseconds
    router.markErrorWithDelay("a", "7");
  });

  it("keeps its properties read-only", () => {
    // @ts-expect-error size is a getter only
    router.size = 3;
    // @ts-expect-error the strategy cannot be swapped
    router.strategy = { type: "fill-first" };
  });

  it("subscribes a listener and returns its unsubscribe", () => {
    expectTypeOf(router.subscribe).parameter(0).toEqualTypeOf<(event: RouterEvent) => void>();
    expectTypeOf(router.subscribe(() => {})).toEqualTypeOf<() => void>();
  });
});

describe("KeyState", () => {
  it("has remainingMs only on cooldown", () => {
    const state = router.stateOf("a");
    expectTypeOf(state).toEqualTypeOf<KeyState | undefined>();
    if (state === undefined) return;
    // @ts-expect-error remainingMs is not on every state
    void state.remainingMs;
    switch (state.status) {
      case "cooldown":
        expectTypeOf(state.remainingMs).toEqualTypeOf<number>();
        break;
      case "ready":
      case "blocked":
      case "disabled":
        expectTypeOf(state).toEqualTypeOf<{ status: "ready" } | { status: "blocked" } | { status: "disabled" }>();
        expectTypeOf(state).not.toHaveProperty("remainingMs");
        break;
      default:
        expectTypeOf(state).toBeNever();
    }
  });

  it("names its statuses", () => {
    expectTypeOf<KeyStatus>().toEqualTypeOf<"ready" | "cooldown" | "blocked" | "disabled">();
    // @ts-expect-error a cooldown state carries its remaining time
    const missing: KeyState = { status: "cooldown" };
    void missing;
  });
});

describe("execute", () => {
  it("resolves to what fn resolves to", () => {
    expectTypeOf(router.execute(async () => new Response())).toEqualTypeOf<Promise<Response>>();
    expectTypeOf(router.execute(async () => 42)).toEqualTypeOf<Promise<number>>();
    expectTypeOf(router.execute((key) => Promise.resolve({ key }))).toEqualTypeOf<Promise<{ key: string }>>();
  });

  it("passes fn the key and its context", () => {
    router.execute(async (key, context) => {
      expectTypeOf(key).toEqualTypeOf<string>();
      expectTypeOf(context).toEqualTypeOf<KeyContext>();
      expectTypeOf(context.attempt).toEqualTypeOf<number>();
      expectTypeOf(context.signal).toEqualTypeOf<AbortSignal>();
    });
  });

  it("takes options, with classify returning a verdict or undefined", () => {
    expectTypeOf(router.execute).parameter(1).toEqualTypeOf<ExecuteOptions | undefined>();
    router.execute(async () => new Response(), {
      maxAttempts: 2,
      maxWaitMs: 0,
      signal: new AbortController().signal,
      classify: (outcome) => {
        expectTypeOf(outcome).toEqualTypeOf<Outcome>();
        expectTypeOf(outcome.status).toEqualTypeOf<number | undefined>();
        if (outcome.type === "rejected") expectTypeOf(outcome.error).toBeUnknown();
        else expectTypeOf(outcome.value).toBeUnknown();
        return outcome.status === 529 ? { type: "cooldown", delayMs: 1_000 } : undefined;
      },
    });
  });

  it("accepts a synchronous fn, and rejects unknown verdicts", () => {
    expectTypeOf(router.execute((key) => key.length)).toEqualTypeOf<Promise<number>>();
    // @ts-expect-error not a verdict
    router.execute(async () => 1, { classify: () => ({ type: "retry-later" }) });
    // @ts-expect-error maxWaitMs is a number
    router.execute(async () => 1, { maxWaitMs: "1s" });
  });
});

describe("Verdict", () => {
  it("is one of seven, with delayMs and group only on cooldown", () => {
    expectTypeOf<Verdict["type"]>().toEqualTypeOf<"success" | "pass" | "retry" | "fault" | "cooldown" | "blocked" | "disabled">();
    expectTypeOf<Extract<Verdict, { type: "cooldown" }>>().toEqualTypeOf<{
      type: "cooldown";
      delayMs?: number | undefined;
      reason?: Reason | undefined;
      scoped?: boolean | undefined;
      group?: boolean | undefined;
    }>();
    expectTypeOf<Extract<Verdict, { type: "blocked" }>>().toEqualTypeOf<{ type: "blocked"; reason?: Reason | undefined; scoped?: boolean | undefined }>();
    expectTypeOf({ type: "cooldown" } as const).toExtend<Verdict>();
    // @ts-expect-error delayMs belongs to cooldown
    const wrong: Verdict = { type: "blocked", delayMs: 5 };
    void wrong;
  });
});

describe("RouterEvent", () => {
  it("narrows on type", () => {
    router.subscribe((event) => {
      expectTypeOf(event.type).toEqualTypeOf<"cooldown" | "blocked" | "disabled" | "ready" | "exhausted">();
      switch (event.type) {
        case "cooldown":
          expectTypeOf(event.delayMs).toEqualTypeOf<number>();
          expectTypeOf(event).toExtend<KeyRef>();
          break;
        case "ready":
          expectTypeOf(event.reason).toEqualTypeOf<"cleared" | "expired">();
          expectTypeOf(event.index).toEqualTypeOf<number>();
          break;
        case "blocked":
        case "disabled":
          expectTypeOf(event.hint).toEqualTypeOf<string>();
          expectTypeOf(event.label).toEqualTypeOf<string | undefined>();
          break;
        case "exhausted":
          expectTypeOf(event.retryAfterMs).toEqualTypeOf<number | undefined>();
          // @ts-expect-error an exhausted event is about no key in particular
          void event.index;
          break;
        default:
          expectTypeOf(event).toBeNever();
      }
    });
  });

  it("never carries the key", () => {
    expectTypeOf<KeyRef>().not.toHaveProperty("key");
    expectTypeOf<RouterEvent>().not.toHaveProperty("key");
  });
});

describe("NoKeyAvailableError", () => {
  it("narrows unknown through its guard", () => {
    const error: unknown = new Error("x");
    expectTypeOf(isNoKeyAvailableError).guards.toEqualTypeOf<NoKeyAvailableError>();
    if (isNoKeyAvailableError(error)) {
      expectTypeOf(error.retryAfterMs).toEqualTypeOf<number | undefined>();
      expectTypeOf(error.code).toEqualTypeOf<"NO_KEY_AVAILABLE">();
      expectTypeOf(error.name).toEqualTypeOf<"NoKeyAvailableError">();
    }
    // @ts-expect-error unknown until narrowed
    void error.retryAfterMs;
  });

  it("is an Error with read-only fields", () => {
    const error = new NoKeyAvailableError(1_000);
    expectTypeOf(error).toExtend<Error>();
    // @ts-expect-error read-only
    error.retryAfterMs = 0;
    // @ts-expect-error retryAfterMs is required, if undefined
    new NoKeyAvailableError();
  });
});

describe("parsers", () => {
  it("take headers or bodies and return milliseconds or undefined", () => {
    expectTypeOf(parseRetryAfter(new Headers())).toEqualTypeOf<number | undefined>();
    expectTypeOf(parseRetryAfter({ "retry-after": "1" }, Date.now())).toEqualTypeOf<number | undefined>();
    expectTypeOf(parseRetryDelay({})).toEqualTypeOf<number | undefined>();
    // @ts-expect-error headers are an object
    parseRetryAfter("1");
  });
});
