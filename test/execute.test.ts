import { getEventListeners } from "node:events";
import { inspect } from "node:util";
import * as FakeTimers from "@sinonjs/fake-timers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  CredentialRouter,
  NoKeyAvailableError,
  isNoKeyAvailableError,
  type CredentialRouterOptions,
  type KeyContext,
  type Outcome,
  type RouterEvent,
  type Verdict,
} from "../src/index.js";
import { manualClock, KEY_A, KEY_B, KEY_C, KEYS } from "./helpers/fixtures.js";

function routerWith(options: CredentialRouterOptions = {}, keys: string[] = KEYS) {
  const clock = manualClock();
  const router = new CredentialRouter(keys, { now: clock.now, cooldownMs: 10_000, ...options });
  return { router, clock };
}

type Answer = (key: string, context: KeyContext) => unknown;

/**
 * A fake upstream: each key answers by its own script (`fallback` for the others). An answer that
 * throws makes the call reject. Records each call.
 */
function upstream(answers: Record<string, Answer> = {}, fallback: Answer = () => ok()) {
  const calls: { key: string; attempt: number; signal: AbortSignal }[] = [];
  const fn = async (key: string, context: KeyContext): Promise<unknown> => {
    calls.push({ key, attempt: context.attempt, signal: context.signal });
    return (answers[key] ?? fallback)(key, context);
  };
  return { fn, calls, keys: () => calls.map((call) => call.key) };
}

const ok = (body = "ok") => new Response(body, { status: 200 });
const respond = (status: number, headers: Record<string, string> = {}, body = "error") =>
  new Response(body, { status, headers });
/** An error shaped like the OpenAI and Anthropic SDKs' `APIError`. */
const apiError = (status: number, fields: Record<string, unknown> = {}) =>
  Object.assign(new Error(`${status} status code`), { status, ...fields });
const fail = (error: unknown) => (): never => {
  throw error;
};

const RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo";

/** Follows a promise without awaiting it, so a test can ask whether it settled yet. */
function track<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown; rejected: boolean } = { settled: false, rejected: false };
  promise.then(
    (value) => {
      state.settled = true;
      state.value = value;
    },
    (error: unknown) => {
      state.settled = true;
      state.rejected = true;
      state.error = error;
    },
  );
  return state;
}

/** The text of everything a value shows: JSON, String, inspect, and an error's message and stack. */
function everythingShown(value: unknown): string {
  const parts = [JSON.stringify(value) ?? "", String(value), inspect(value, { depth: 10, showHidden: true })];
  if (value instanceof Error) parts.push(value.message, value.stack ?? "");
  return parts.join("\n");
}

function expectNoKeyIn(text: string) {
  for (const key of KEYS) {
    expect(text).not.toContain(key);
    // Not even the middle part a hint leaves out.
    expect(text).not.toContain(key.slice(4, -4));
  }
}

describe("execute: success", () => {
  it("returns what fn resolved to, calling it once with the first key, attempt 1 and a signal", async () => {
    const { router } = routerWith();
    const { fn, calls } = upstream();
    const response = (await router.execute(fn)) as Response;
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("ok");
    expect(calls).toHaveLength(1);
    expect(calls[0]!.key).toBe(KEY_A);
    expect(calls[0]!.attempt).toBe(1);
    expect(calls[0]!.signal).toBeInstanceOf(AbortSignal);
    expect(calls[0]!.signal.aborted).toBe(false);
  });

  it("hands fn the caller's own signal", async () => {
    const { router } = routerWith();
    const controller = new AbortController();
    const { fn, calls } = upstream();
    await router.execute(fn, { signal: controller.signal });
    expect(calls[0]!.signal).toBe(controller.signal);
  });

  it("without a caller's signal, each call gets a signal of its own that never aborts", async () => {
    // Not one shared by every call: fetch leaves a listener on the signal it is given.
    const { router } = routerWith();
    const { fn, calls } = upstream();
    await router.execute(fn);
    await router.execute(fn);
    expect(calls[0]!.signal).not.toBe(calls[1]!.signal);
    expect(calls.map((call) => call.signal.aborted)).toEqual([false, false]);
  });

  it("takes a resolved value with no status as a success: one call, the value returned", async () => {
    const { router } = routerWith();
    const { fn, keys } = upstream({}, () => ({ choices: ["hello"] }));
    await expect(router.execute(fn)).resolves.toEqual({ choices: ["hello"] });
    expect(keys()).toEqual([KEY_A]);
  });

  it("takes a plain string result as a success", async () => {
    const { router } = routerWith();
    const { fn, keys } = upstream({}, () => "hello");
    await expect(router.execute(fn)).resolves.toBe("hello");
    expect(keys()).toEqual([KEY_A]);
  });

  it.each([200, 204, 302, 399])("takes a status %i as a success", async (status) => {
    const { router } = routerWith();
    const { fn, keys } = upstream({}, () => ({ status, data: "x" }));
    await expect(router.execute(fn)).resolves.toEqual({ status, data: "x" });
    expect(keys()).toEqual([KEY_A]);
  });

  it("a success ends the key's run of failures (markSuccess)", async () => {
    const { router, clock } = routerWith();
    router.markError(KEY_A);
    clock.advance(10_000);
    expect(router.snapshot()[0]!.failures).toBe(1);
    await router.execute(upstream().fn);
    expect(router.snapshot()[0]!.failures).toBe(0);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
  });

  it("a success with a resolved value that has no status also ends the run of failures", async () => {
    const { router, clock } = routerWith();
    router.markError(KEY_A);
    clock.advance(10_000);
    await router.execute(upstream({}, () => "fine").fn);
    expect(router.snapshot()[0]!.failures).toBe(0);
  });
});

describe("markSuccess", () => {
  it("starts the next default cooldown again from cooldownMs", () => {
    const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 8_000 });
    router.markError(KEY_A);
    clock.advance(1_000);
    router.markError(KEY_A);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 2_000 });
    clock.advance(2_000);
    expect(router.markSuccess(KEY_A)).toBe(true);
    router.markError(KEY_A);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 1_000 });
  });

  it("does not end a cooldown that is running", () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_A, 5_000);
    router.markSuccess(KEY_A);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 5_000 });
    expect(router.snapshot()[0]!.failures).toBe(0);
  });

  it("does not bring a blocked key back", () => {
    const { router } = routerWith();
    router.markBlocked(KEY_A);
    router.markSuccess(KEY_A);
    expect(router.stateOf(KEY_A)).toEqual({ status: "blocked" });
  });

  it("returns false for an unknown key", () => {
    const { router } = routerWith();
    expect(router.markSuccess("sk-proj-unknown-key-0000")).toBe(false);
    expect(router.markSuccess(KEY_B)).toBe(true);
  });
});

describe("execute: default verdicts", () => {
  describe("429", () => {
    it("cools the key for a Response's Retry-After and tries the next key", async () => {
      const { router } = routerWith();
      const { fn, calls } = upstream({ [KEY_A]: () => respond(429, { "retry-after": "7" }) });
      const response = (await router.execute(fn)) as Response;
      expect(response.status).toBe(200);
      expect(calls.map(({ key, attempt }) => [key, attempt])).toEqual([
        [KEY_A, 1],
        [KEY_B, 2],
      ]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 7_000 });
      expect(router.stateOf(KEY_B)).toEqual({ status: "ready" });
    });

    it("reads retry-after-ms", async () => {
      const { router } = routerWith();
      await router.execute(upstream({ [KEY_A]: () => respond(429, { "retry-after-ms": "1500" }) }).fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 1_500 });
    });

    it("reads an HTTP-date Retry-After against the response's Date", async () => {
      const { router } = routerWith();
      const headers = { date: "Sun, 06 Nov 1994 08:49:37 GMT", "retry-after": "Sun, 06 Nov 1994 08:50:07 GMT" };
      await router.execute(upstream({ [KEY_A]: () => respond(429, headers) }).fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 30_000 });
    });

    it("cools the key for a thrown SDK error's headers (a plain record)", async () => {
      const { router } = routerWith();
      const { fn, keys } = upstream({ [KEY_A]: fail(apiError(429, { headers: { "retry-after": "7" } })) });
      const response = (await router.execute(fn)) as Response;
      expect(response.status).toBe(200);
      expect(keys()).toEqual([KEY_A, KEY_B]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 7_000 });
    });

    it("cools the key for a thrown SDK error's headers (a Headers)", async () => {
      const { router } = routerWith();
      const error = apiError(429, { headers: new Headers({ "Retry-After": "3" }) });
      await router.execute(upstream({ [KEY_A]: fail(error) }).fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 3_000 });
    });

    it("prefers the headers over the error's body", async () => {
      const { router } = routerWith();
      const error = apiError(429, {
        headers: { "retry-after": "7" },
        error: { code: 429, details: [{ "@type": RETRY_INFO, retryDelay: "12s" }] },
      });
      await router.execute(upstream({ [KEY_A]: fail(error) }).fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 7_000 });
    });

    it("falls back to an OpenAI-style error member's message (error.error)", async () => {
      const { router } = routerWith();
      const error = apiError(429, {
        headers: {},
        error: { message: "Rate limit reached for gpt-4o. Please try again in 1.5s.", type: "requests" },
      });
      await router.execute(upstream({ [KEY_A]: fail(error) }).fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 1_500 });
    });

    it("falls back to an Anthropic-style whole body (error.error holding { error })", async () => {
      const { router } = routerWith();
      const error = apiError(429, {
        error: { type: "error", error: { type: "rate_limit_error", message: "Please retry after 20 seconds" } },
      });
      await router.execute(upstream({ [KEY_A]: fail(error) }).fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 20_000 });
    });

    it("falls back to a Gemini RetryInfo in the error's details (error.error)", async () => {
      const { router } = routerWith();
      const error = apiError(429, {
        error: { code: 429, status: "RESOURCE_EXHAUSTED", details: [{ "@type": RETRY_INFO, retryDelay: "12s" }] },
      });
      await router.execute(upstream({ [KEY_A]: fail(error) }).fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 12_000 });
    });

    it("falls back to a Gemini RetryInfo in a parsed body (error.body)", async () => {
      const { router } = routerWith();
      const error = apiError(429, { body: { error: { code: 429, details: [{ "@type": RETRY_INFO, retryDelay: "12s" }] } } });
      await router.execute(upstream({ [KEY_A]: fail(error) }).fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 12_000 });
    });

    it("reads a Response's body from a clone: a hint in it is used and the body stays whole", async () => {
      const { router } = routerWith({}, [KEY_A]);
      const body = JSON.stringify({ error: { message: "Please retry in 30s" } });
      const response = (await router.execute(upstream({}, () => respond(429, {}, body)).fn)) as Response;
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 30_000 });
      expect(response.bodyUsed).toBe(false);
      expect(await response.text()).toBe(body);
    });

    it("with no hint, cools for the escalating default", async () => {
      const { router, clock } = routerWith({ cooldownMs: 1_000, maxCooldownMs: 8_000 }, [KEY_A]);
      const { fn } = upstream({}, () => respond(429));
      await router.execute(fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 1_000 });
      clock.advance(1_000);
      await router.execute(fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 2_000 });
      clock.advance(2_000);
      await router.execute(fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 4_000 });
    });
  });

  describe("401, 403", () => {
    it.each([401, 403])("a %i Response blocks the key (reason auth) and tries the next", async (status) => {
      const { router } = routerWith();
      const { fn, keys } = upstream({ [KEY_A]: () => respond(status) });
      expect(((await router.execute(fn)) as Response).status).toBe(200);
      expect(keys()).toEqual([KEY_A, KEY_B]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "blocked" });
      expect(router.snapshot()[0]!.reason).toBe("auth");
    });

    it.each([401, 403])("a thrown %i SDK error blocks the key", async (status) => {
      const { router } = routerWith();
      await router.execute(upstream({ [KEY_A]: fail(apiError(status, { headers: {} })) }).fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "blocked" });
    });
  });

  describe("402", () => {
    it("a 402 Response cools the key for quotaCooldownMs (reason quota) and tries the next", async () => {
      const { router } = routerWith({ quotaCooldownMs: 600_000 });
      const { fn, keys } = upstream({ [KEY_A]: () => respond(402) });
      expect(((await router.execute(fn)) as Response).status).toBe(200);
      expect(keys()).toEqual([KEY_A, KEY_B]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 600_000 });
      expect(router.snapshot()[0]!.reason).toBe("quota");
    });
  });

  describe("408, 409", () => {
    it.each([408, 409])("a %i Response tries the next key and marks nothing", async (status) => {
      const { router } = routerWith();
      const { fn, keys } = upstream({ [KEY_A]: () => respond(status) });
      expect(((await router.execute(fn)) as Response).status).toBe(200);
      expect(keys()).toEqual([KEY_A, KEY_B]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    });
  });

  describe("service faults (5xx, 529)", () => {
    it.each([500, 502, 503, 504, 529])("a %i Response tries the next key and marks nothing", async (status) => {
      const { router } = routerWith();
      const { fn, keys } = upstream({ [KEY_A]: () => respond(status) });
      expect(((await router.execute(fn)) as Response).status).toBe(200);
      expect(keys()).toEqual([KEY_A, KEY_B]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    });

    it("a 503 with a Retry-After still marks nothing: the service is down, not the key", async () => {
      const { router } = routerWith();
      await router.execute(upstream({ [KEY_A]: () => respond(503, { "retry-after": "3" }) }).fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    });

    it("an overloaded service: one call tries at most 1 + maxServerRetries keys, then passes the last fault through", async () => {
      const { router } = routerWith({}, [KEY_A, KEY_B, KEY_C, "sk-key-d-0123456789"]);
      const { fn, keys } = upstream({}, () => respond(529));
      expect(((await router.execute(fn)) as Response).status).toBe(529);
      expect(keys()).toEqual([KEY_A, KEY_B, KEY_C]);
      const again = upstream({}, () => respond(503));
      await router.execute(again.fn, { maxServerRetries: 0 });
      expect(again.calls).toHaveLength(1);
      expect(router.snapshot().map((row) => row.state.status)).toEqual(["ready", "ready", "ready", "ready"]);
    });

    it("a key with serverFaultThreshold faults in a row cools for its default, reason server; a success between resets the count", async () => {
      const { router } = routerWith({ serverFaultThreshold: 3, cooldownMs: 1_000 }, [KEY_A]);
      let status = 500;
      const call = () => router.execute(async () => respond(status));
      await call();
      await call();
      status = 200;
      await call();
      status = 500;
      await call();
      await call();
      expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
      await call();
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 1_000 });
      expect(router.snapshot()[0]!.reason).toBe("server");
    });

    it("reads an axios-like error's response.status and response.headers", async () => {
      const { router } = routerWith();
      const error = Object.assign(new Error("Request failed with status code 429"), {
        response: { status: 429, headers: { "retry-after": "3" } },
      });
      const { fn, keys } = upstream({ [KEY_A]: fail(error) });
      await router.execute(fn);
      expect(keys()).toEqual([KEY_A, KEY_B]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 3_000 });
    });

    it("reads response.headers of an error that has its own status but no headers (axios >= 1.7)", async () => {
      const { router } = routerWith();
      const error = Object.assign(new Error("Request failed with status code 429"), {
        status: 429,
        response: { status: 429, headers: { "retry-after": "4" } },
      });
      await router.execute(upstream({ [KEY_A]: fail(error) }).fn);
      expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 4_000 });
    });
  });

  describe("other statuses pass through", () => {
    it.each([400, 404, 413, 422, 501])("a %i Response is returned as is, with no retry and no mark", async (status) => {
      const { router, clock } = routerWith();
      router.markError(KEY_A);
      clock.advance(10_000);
      const sent = respond(status, {}, "bad request");
      const { fn, keys } = upstream({ [KEY_A]: () => sent });
      const received = await router.execute(fn);
      expect(received).toBe(sent);
      expect(sent.bodyUsed).toBe(false);
      expect(keys()).toEqual([KEY_A]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
      // Not a success either: the run of failures goes on.
      expect(router.snapshot()[0]!.failures).toBe(1);
    });

    it.each([400, 404, 422])("a thrown %i error is rethrown as is, with no retry and no mark", async (status) => {
      const { router } = routerWith();
      const error = apiError(status, { headers: {} });
      const { fn, keys } = upstream({ [KEY_A]: fail(error) });
      await expect(router.execute(fn)).rejects.toBe(error);
      expect(keys()).toEqual([KEY_A]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    });
  });

  describe("thrown errors with a status below 400", () => {
    it.each([304, 200])("a thrown %i is not a success: rethrown as is, no mark, the failures kept", async (status) => {
      const { router, clock } = routerWith();
      router.markError(KEY_A);
      clock.advance(10_000);
      const error = apiError(status, { headers: {} });
      const { fn, keys } = upstream({ [KEY_A]: fail(error) });
      await expect(router.execute(fn)).rejects.toBe(error);
      expect(keys()).toEqual([KEY_A]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
      expect(router.snapshot()[0]!.failures).toBe(1);
    });

    it("a thrown status 0 (an XHR-style network failure) tries the next key without marking this one", async () => {
      const { router, clock } = routerWith();
      router.markError(KEY_A);
      clock.advance(10_000);
      const { fn, keys } = upstream({ [KEY_A]: fail(apiError(0)) });
      expect(((await router.execute(fn)) as Response).status).toBe(200);
      expect(keys()).toEqual([KEY_A, KEY_B]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
      expect(router.snapshot()[0]!.failures).toBe(1);
    });
  });

  describe("errors with no status", () => {
    it("a network failure tries the next key without marking this one", async () => {
      const { router } = routerWith();
      const { fn, keys } = upstream({ [KEY_A]: fail(new TypeError("fetch failed")) });
      expect(((await router.execute(fn)) as Response).status).toBe(200);
      expect(keys()).toEqual([KEY_A, KEY_B]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
      expect(router.snapshot()[0]!.failures).toBe(0);
    });

    it("when every key fails so, rejects with the last attempt's own error", async () => {
      const { router } = routerWith();
      const errors = KEYS.map((_, index) => new TypeError(`fetch failed ${index}`));
      const { fn, keys } = upstream({ [KEY_A]: fail(errors[0]), [KEY_B]: fail(errors[1]), [KEY_C]: fail(errors[2]) });
      await expect(router.execute(fn)).rejects.toBe(errors[2]);
      expect(keys()).toEqual(KEYS);
      expect(KEYS.map((key) => router.stateOf(key)!.status)).toEqual(["ready", "ready", "ready"]);
    });

    it("a non-object thrown value is a network-like failure too", async () => {
      const { router } = routerWith();
      const { fn, keys } = upstream({ [KEY_A]: fail("boom") });
      expect(((await router.execute(fn)) as Response).status).toBe(200);
      expect(keys()).toEqual([KEY_A, KEY_B]);
    });

    it("a status getter that throws reads as no status", async () => {
      const { router } = routerWith();
      const hostile = Object.defineProperty(new Error("odd"), "status", {
        get() {
          throw new Error("no");
        },
      });
      const { fn, keys } = upstream({ [KEY_A]: fail(hostile) });
      expect(((await router.execute(fn)) as Response).status).toBe(200);
      expect(keys()).toEqual([KEY_A, KEY_B]);
      expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    });
  });
});

describe("execute: classify", () => {
  it("sees the attempt, status, headers and value, named by index and hint, never by key", async () => {
    const { router } = routerWith();
    const seen: Outcome[] = [];
    const { fn } = upstream({ [KEY_A]: () => respond(429, { "retry-after": "7" }) });
    await router.execute(fn, {
      classify: (outcome) => {
        seen.push(outcome);
        return undefined;
      },
    });
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatchObject({ type: "resolved", attempt: 1, status: 429, index: 0, hint: "sk-p…cccc" });
    expect((seen[0]!.headers as Headers).get("retry-after")).toBe("7");
    expect(seen[1]).toMatchObject({ type: "resolved", attempt: 2, status: 200, index: 1, hint: "sk-p…eeee" });
    for (const outcome of seen) {
      const { value: _value, headers: _headers, ...rest } = outcome as Outcome & { value?: unknown };
      expectNoKeyIn(everythingShown(rest));
    }
  });

  it("sees the key's label when the router has labels", async () => {
    const { router } = routerWith({ labels: ["prod", "batch", "spare"] });
    const seen: Outcome[] = [];
    await router.execute(upstream().fn, { classify: (outcome) => void seen.push(outcome) });
    expect(seen[0]).toMatchObject({ index: 0, hint: "sk-p…cccc", label: "prod" });
  });

  it("sees a thrown error as a rejected outcome with its status and headers", async () => {
    const { router } = routerWith();
    const error = apiError(503, { headers: { "x-request-id": "r1" } });
    const seen: Outcome[] = [];
    await router.execute(upstream({ [KEY_A]: fail(error) }).fn, {
      classify: (outcome) => void seen.push(outcome),
    });
    expect(seen[0]).toMatchObject({ type: "rejected", error, status: 503, headers: { "x-request-id": "r1" } });
  });

  it("returning undefined keeps the default verdict", async () => {
    const { router } = routerWith();
    const { fn, keys } = upstream({ [KEY_A]: () => respond(401) });
    await router.execute(fn, { classify: () => undefined });
    expect(keys()).toEqual([KEY_A, KEY_B]);
    expect(router.stateOf(KEY_A)).toEqual({ status: "blocked" });
  });

  it("can cool a key down for a 200 whose body says it is rate-limited, for its own delay", async () => {
    const { router } = routerWith();
    const { fn, keys } = upstream({ [KEY_A]: () => ({ status: 200, error: "quota" }) });
    const result = await router.execute(fn, {
      classify: (outcome) =>
        outcome.type === "resolved" && (outcome.value as { error?: string }).error === "quota"
          ? { type: "cooldown", delayMs: 5_000 }
          : undefined,
    });
    expect((result as Response).status).toBe(200);
    expect(keys()).toEqual([KEY_A, KEY_B]);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 5_000 });
  });

  it("a cooldown verdict without delayMs uses the server's hint, else the default", async () => {
    const { router } = routerWith();
    const { fn } = upstream({ [KEY_A]: () => respond(409, { "retry-after": "2" }), [KEY_B]: () => respond(409) });
    await router.execute(fn, { classify: (outcome) => (outcome.status === 409 ? { type: "cooldown" } : undefined) });
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 2_000 });
    expect(router.stateOf(KEY_B)).toEqual({ status: "cooldown", remainingMs: 10_000 });
  });

  it("a cooldown verdict whose delayMs is undefined uses the server's hint, like one without it", async () => {
    const { router } = routerWith();
    const { fn } = upstream({ [KEY_A]: () => respond(429, { "retry-after": "60" }) });
    const maybe: number | undefined = undefined;
    await router.execute(fn, { classify: (outcome) => (outcome.status === 429 ? { type: "cooldown", delayMs: maybe } : undefined) });
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 60_000 });
  });

  it.each<[string, Verdict, string]>([
    ["blocked", { type: "blocked" }, "blocked"],
    ["disabled", { type: "disabled" }, "disabled"],
    ["retry", { type: "retry" }, "ready"],
  ])("a %s verdict marks the key so and tries the next", async (_name, verdict, state) => {
    const { router } = routerWith();
    const { fn, keys } = upstream({ [KEY_A]: () => respond(404) });
    await router.execute(fn, { classify: (outcome) => (outcome.index === 0 ? verdict : undefined) });
    expect(keys()).toEqual([KEY_A, KEY_B]);
    expect(router.stateOf(KEY_A)!.status).toBe(state);
  });

  it("a pass verdict stops at once with no mark, even for a 503", async () => {
    const { router } = routerWith();
    const sent = respond(503);
    const { fn, keys } = upstream({ [KEY_A]: () => sent });
    expect(await router.execute(fn, { classify: () => ({ type: "pass" }) })).toBe(sent);
    expect(keys()).toEqual([KEY_A]);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
  });

  it("a success verdict for a thrown error ends the run of failures and rethrows the error", async () => {
    const { router, clock } = routerWith();
    router.markError(KEY_A);
    clock.advance(10_000);
    const error = apiError(409);
    const { fn, keys } = upstream({ [KEY_A]: fail(error) });
    await expect(router.execute(fn, { classify: () => ({ type: "success" }) })).rejects.toBe(error);
    expect(keys()).toEqual([KEY_A]);
    expect(router.snapshot()[0]!.failures).toBe(0);
  });

  it("an unknown verdict rejects with a TypeError", async () => {
    const { router } = routerWith();
    const classify = () => ({ type: "maybe" }) as unknown as Verdict;
    await expect(router.execute(upstream().fn, { classify })).rejects.toThrow(TypeError);
  });

  it("a classify that throws rejects the call with its error", async () => {
    const { router } = routerWith();
    const oops = new Error("classify broke");
    await expect(
      router.execute(upstream().fn, {
        classify: () => {
          throw oops;
        },
      }),
    ).rejects.toBe(oops);
  });

  it.each([-1, Number.NaN, Infinity])("a cooldown delayMs of %s rejects with a RangeError and marks nothing", async (delayMs) => {
    const { router } = routerWith();
    await expect(
      router.execute(upstream().fn, { classify: () => ({ type: "cooldown", delayMs }) }),
    ).rejects.toThrow(RangeError);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
  });
});

describe("execute: attempts", () => {
  it("counts attempts from 1 and never tries a key twice in one call", async () => {
    const { router } = routerWith();
    const { fn, calls } = upstream({}, () => respond(503));
    const response = (await router.execute(fn, { maxAttempts: 10 })) as Response;
    expect(response.status).toBe(503);
    expect(calls.map(({ key, attempt }) => [key, attempt])).toEqual([
      [KEY_A, 1],
      [KEY_B, 2],
      [KEY_C, 3],
    ]);
  });

  it("does not try a key twice even when it is still ready after its failure", async () => {
    const { router } = routerWith();
    const { fn, keys } = upstream({}, fail(new TypeError("fetch failed")));
    await expect(router.execute(fn, { maxAttempts: 5 })).rejects.toThrow("fetch failed");
    expect(keys()).toEqual(KEYS);
  });

  it("stops after maxAttempts", async () => {
    const { router } = routerWith();
    const { fn, keys } = upstream({}, () => respond(503));
    expect(((await router.execute(fn, { maxAttempts: 2 })) as Response).status).toBe(503);
    expect(keys()).toEqual([KEY_A, KEY_B]);
    expect(router.stateOf(KEY_C)).toEqual({ status: "ready" });
  });

  it("defaults maxAttempts to the router's maxRetry", async () => {
    const { router } = routerWith({ maxRetry: 2 });
    const { fn, keys } = upstream({}, () => respond(503));
    await router.execute(fn);
    expect(keys()).toEqual([KEY_A, KEY_B]);
  });

  it("defaults maxAttempts to the number of keys without maxRetry", async () => {
    const { router } = routerWith();
    const { fn, keys } = upstream({}, () => respond(503));
    await router.execute(fn);
    expect(keys()).toEqual(KEYS);
  });

  it("passes over cooling and blocked keys", async () => {
    const { router } = routerWith();
    router.markError(KEY_A);
    router.markBlocked(KEY_B);
    const { fn, keys } = upstream();
    await router.execute(fn);
    expect(keys()).toEqual([KEY_C]);
  });
});

describe("execute: when no key is ready", () => {
  it("rejects with NoKeyAvailableError carrying nextReadyInMs(), without calling fn", async () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_A, 4_000);
    router.markErrorWithDelay(KEY_B, 2_500);
    router.markBlocked(KEY_C);
    const { fn, calls } = upstream();
    const error = await router.execute(fn).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NoKeyAvailableError);
    expect(isNoKeyAvailableError(error)).toBe(true);
    expect((error as NoKeyAvailableError).retryAfterMs).toBe(2_500);
    expect((error as NoKeyAvailableError).retryAfterMs).toBe(router.nextReadyInMs());
    expect(calls).toHaveLength(0);
  });

  it("gives retryAfterMs undefined when every key is blocked or disabled", async () => {
    const { router } = routerWith();
    router.markBlocked(KEY_A);
    router.markBlocked(KEY_B);
    router.markDisabled(KEY_C);
    const error = await router.execute(upstream().fn, { maxWaitMs: 60_000 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NoKeyAvailableError);
    expect((error as NoKeyAvailableError).retryAfterMs).toBeUndefined();
  });

  it("after some attempts, returns the last attempt's outcome rather than NoKeyAvailableError", async () => {
    const { router } = routerWith();
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    const sent = respond(429, { "retry-after": "5" }, "slow down");
    const { fn, keys } = upstream({ [KEY_A]: () => sent });
    const received = await router.execute(fn);
    expect(received).toBe(sent);
    expect(keys()).toEqual([KEY_A]);
    // The response a proxy would forward is untouched.
    expect(sent.bodyUsed).toBe(false);
    expect(await sent.text()).toBe("slow down");
  });

  it("after some attempts, rethrows the last attempt's error", async () => {
    const { router } = routerWith({}, [KEY_A]);
    const error = apiError(429, { headers: { "retry-after": "5" } });
    await expect(router.execute(upstream({}, fail(error)).fn)).rejects.toBe(error);
  });
});

describe("execute: discarded responses", () => {
  it("cancels the body of a Response it moved past, and leaves the returned one whole", async () => {
    const { router } = routerWith();
    const first = new Response("x", { status: 429 });
    const { fn } = upstream({ [KEY_A]: () => first, [KEY_B]: () => ok("second") });
    const returned = (await router.execute(fn)) as Response;
    expect(first.bodyUsed).toBe(true);
    await expect(first.text()).rejects.toThrow();
    expect(returned.bodyUsed).toBe(false);
    expect(await returned.text()).toBe("second");
  });

  it("cancels every intermediate body but not the last attempt's", async () => {
    const { router } = routerWith();
    const responses = KEYS.map((_, index) => new Response(`r${index}`, { status: 503 }));
    const { fn } = upstream({ [KEY_A]: () => responses[0], [KEY_B]: () => responses[1], [KEY_C]: () => responses[2] });
    expect(await router.execute(fn)).toBe(responses[2]);
    expect(responses.map((response) => response.bodyUsed)).toEqual([true, true, false]);
    expect(await responses[2]!.text()).toBe("r2");
  });

  it("cancels the body of a Response carried by an error it moved past (ky's HTTPError)", async () => {
    const { router } = routerWith();
    const response = new Response("x", { status: 503 });
    const { fn } = upstream({ [KEY_A]: fail(Object.assign(new Error("HTTP 503"), { response })), [KEY_B]: () => ok() });
    expect(((await router.execute(fn)) as Response).status).toBe(200);
    expect(response.bodyUsed).toBe(true);
  });

  it("cancels the body when classify throws, and rejects with classify's error", async () => {
    const { router } = routerWith();
    const response = new Response("x", { status: 200 });
    const broken = new Error("classify broke");
    const { fn } = upstream({ [KEY_A]: () => response });
    await expect(
      router.execute(fn, {
        classify: () => {
          throw broken;
        },
      }),
    ).rejects.toBe(broken);
    expect(response.bodyUsed).toBe(true);
  });

  it("leaves a body alone that fn already locked", async () => {
    const { router } = routerWith();
    const first = new Response("x", { status: 429 });
    const reader = first.body!.getReader();
    const { fn } = upstream({ [KEY_A]: () => first });
    expect(((await router.execute(fn)) as Response).status).toBe(200);
    expect((await reader.read()).done).toBe(false);
  });
});

describe("execute: abort", () => {
  it("rejects with signal.reason without calling fn when the signal already aborted", async () => {
    const { router } = routerWith();
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    controller.abort(reason);
    const { fn, calls } = upstream();
    await expect(router.execute(fn, { signal: controller.signal })).rejects.toBe(reason);
    expect(calls).toHaveLength(0);
  });

  it("an attempt that fails because of the abort rejects with signal.reason and marks nothing", async () => {
    const { router } = routerWith();
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    const { fn, keys } = upstream({
      [KEY_A]: (_key, { signal }) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener("abort", () => reject(new DOMException("This operation was aborted", "AbortError")));
          controller.abort(reason);
        }),
    });
    await expect(router.execute(fn, { signal: controller.signal })).rejects.toBe(reason);
    expect(keys()).toEqual([KEY_A]);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    expect(router.snapshot()[0]!.failures).toBe(0);
  });

  it("checks the signal before each attempt; the failed attempt's status still marks its key", async () => {
    const { router } = routerWith();
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    const first = respond(429);
    const { fn, keys } = upstream({
      [KEY_A]: () => {
        controller.abort(reason);
        return first;
      },
    });
    await expect(router.execute(fn, { signal: controller.signal })).rejects.toBe(reason);
    expect(keys()).toEqual([KEY_A]);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 10_000 });
    // Nobody will see that response: its body is released.
    expect(first.bodyUsed).toBe(true);
  });

  it("an fn that ignores its signal: the abort rejects the call at once, and the late response is released", async () => {
    const { router } = routerWith();
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    let answer!: (response: Response) => void;
    const late = new Response("late body");
    const call = track(router.execute(() => new Promise<Response>((resolve) => (answer = resolve)), { signal: controller.signal }));
    await Promise.resolve();
    controller.abort(reason);
    await new Promise((resolve) => setImmediate(resolve));
    expect(call).toMatchObject({ settled: true, rejected: true, error: reason });
    // The attempt's result arrives after all: nobody will see it, so its body is released.
    answer(late);
    await new Promise((resolve) => setImmediate(resolve));
    expect(late.bodyUsed).toBe(true);
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
  });

  it("an fn that ignores its signal and rejects late: the late error goes nowhere", async () => {
    const { router } = routerWith();
    const controller = new AbortController();
    let fail!: (error: Error) => void;
    const call = router.execute(() => new Promise<Response>((_, reject) => (fail = reject)), { signal: controller.signal });
    controller.abort(new Error("stop"));
    await expect(call).rejects.toThrow("stop");
    fail(new Error("late failure"));
    await new Promise((resolve) => setImmediate(resolve));
  });

  it("a network failure without an abort is retried even with a signal", async () => {
    const { router } = routerWith();
    const controller = new AbortController();
    const { fn, keys } = upstream({ [KEY_A]: fail(new TypeError("fetch failed")) });
    expect(((await router.execute(fn, { signal: controller.signal })) as Response).status).toBe(200);
    expect(keys()).toEqual([KEY_A, KEY_B]);
  });
});

describe("execute: waiting (maxWaitMs)", () => {
  let clock: FakeTimers.Clock;

  beforeEach(() => {
    clock = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout", "performance", "Date"] });
  });

  afterEach(() => {
    clock.uninstall();
  });

  /** A router on the faked `performance.now()`, the default clock. */
  function fakeTimeRouter(options: CredentialRouterOptions = {}) {
    return new CredentialRouter(KEYS, { cooldownMs: 10_000, ...options });
  }

  it("waits for the earliest cooldown when it ends within maxWaitMs, then tries that key", async () => {
    const router = fakeTimeRouter();
    router.markErrorWithDelay(KEY_A, 5_000);
    router.markErrorWithDelay(KEY_B, 1_000);
    router.markBlocked(KEY_C);
    const { fn, keys } = upstream();
    const result = track(router.execute(fn, { maxWaitMs: 1_500 }));
    await clock.tickAsync(999);
    expect(result.settled).toBe(false);
    expect(keys()).toEqual([]);
    await clock.tickAsync(1);
    expect(keys()).toEqual([KEY_B]);
    expect(result.settled).toBe(true);
    expect((result.value as Response).status).toBe(200);
    expect(clock.countTimers()).toBe(0);
  });

  it("an abort made by a listener while execute looks for a key ends the wait at once", async () => {
    const router = fakeTimeRouter();
    for (const key of KEYS) router.markErrorWithDelay(key, 5_000);
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    router.subscribe((event) => event.type === "exhausted" && controller.abort(reason));
    const { fn, calls } = upstream();
    const result = track(router.execute(fn, { signal: controller.signal, maxWaitMs: 10_000 }));
    await clock.tickAsync(0);
    expect(result.settled).toBe(true);
    expect(result.error).toBe(reason);
    expect(calls).toHaveLength(0);
    expect(clock.countTimers()).toBe(0);
  });

  it("an exhausted listener that clears a key: the call goes on with that key instead of rejecting", async () => {
    const { router } = routerWith();
    for (const key of KEYS) router.markBlocked(key);
    router.subscribe((event) => {
      if (event.type === "exhausted") router.clearCooldown(KEY_B);
    });
    const { fn, keys } = upstream();
    expect(((await router.execute(fn)) as Response).status).toBe(200);
    expect(keys()).toEqual([KEY_B]);
  });

  it("a cooldown that ends while the exhausted event is told is waited for, not reported as no key", async () => {
    // Every read of this clock moves it on by 1 ms, so the deadline passes between the pick and the event.
    let time = 0;
    const router = fakeTimeRouter({ now: () => time++ });
    router.markErrorWithDelay(KEY_A, 10);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    const told: unknown[] = [];
    router.subscribe((event) => event.type === "exhausted" && told.push(event.retryAfterMs));
    time = 9;
    const { fn, keys } = upstream();
    const result = track(router.execute(fn));
    await clock.tickAsync(0);
    expect(told).toEqual([0]);
    expect(result.settled).toBe(true);
    expect(result.rejected).toBe(false);
    expect(keys()).toEqual([KEY_A]);
    expect(clock.countTimers()).toBe(0);
  });

  it("a timer that fires just before the router's clock reaches the deadline does not end the call", async () => {
    // The router's clock runs a little slow against the timers, as Node's cached loop time can.
    const router = fakeTimeRouter({ now: () => performance.now() * 0.999 });
    router.markErrorWithDelay(KEY_A, 20);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    const result = track(router.execute(upstream().fn, { maxWaitMs: 20 }));
    await clock.tickAsync(25);
    expect(result.settled).toBe(true);
    expect((result.value as Response).status).toBe(200);
  });

  it("waits for weeks when asked, past what one timer can hold", async () => {
    const day = 86_400_000;
    const router = fakeTimeRouter({ maxRetryAfterMs: 60 * day });
    router.markErrorWithDelay(KEY_A, 30 * day);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    const result = track(router.execute(upstream().fn, { maxWaitMs: 40 * day }));
    await clock.tickAsync(30 * day - 1);
    expect(result.settled).toBe(false);
    await clock.tickAsync(1);
    expect((result.value as Response).status).toBe(200);
    expect(clock.countTimers()).toBe(0);
  });

  it("in a scope, waits for an untried key only, also when the scope's wait was just computed for everyone", async () => {
    const router = fakeTimeRouter();
    // Someone listens: the pick that finds no key computes the scope's wait (for any key) to tell them.
    router.subscribe(() => {});
    router.markErrorWithDelay(KEY_B, 5_000, { scope: "gpt-4o" });
    router.markErrorWithDelay(KEY_C, 5_000, { scope: "gpt-4o" });
    const { fn, keys } = upstream({ [KEY_A]: () => respond(429, { "retry-after": "1" }) });
    const result = track(router.execute(fn, { scope: "gpt-4o", maxWaitMs: 2_000 }));
    await clock.tickAsync(0);
    // A, tried, is back in 1 s; B and C, untried, in 5 s, past maxWaitMs: the call ends with A's 429.
    expect(result.settled).toBe(true);
    expect((result.value as Response).status).toBe(429);
    expect(keys()).toEqual([KEY_A]);
    // And the scope's own wait, for any key, is still A's.
    expect(router.nextReadyInMs("gpt-4o")).toBe(1_000);
    expect(clock.countTimers()).toBe(0);
  });

  it("waits when the cooldown ends exactly at maxWaitMs", async () => {
    const router = fakeTimeRouter();
    router.markErrorWithDelay(KEY_A, 1_000);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    const result = track(router.execute(upstream().fn, { maxWaitMs: 1_000 }));
    await clock.tickAsync(1_000);
    expect(result.settled).toBe(true);
    expect((result.value as Response).status).toBe(200);
    expect(clock.countTimers()).toBe(0);
  });

  it("does not wait when the cooldown ends after maxWaitMs: rejects at once", async () => {
    const router = fakeTimeRouter();
    router.markErrorWithDelay(KEY_A, 5_000);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    const { fn, calls } = upstream();
    const result = track(router.execute(fn, { maxWaitMs: 4_999 }));
    await clock.tickAsync(0);
    expect(result.settled).toBe(true);
    expect(result.error).toBeInstanceOf(NoKeyAvailableError);
    expect((result.error as NoKeyAvailableError).retryAfterMs).toBe(5_000);
    expect(calls).toHaveLength(0);
    expect(clock.countTimers()).toBe(0);
  });

  it("does not wait by default", async () => {
    const router = fakeTimeRouter();
    router.markErrorWithDelay(KEY_A, 1);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    const result = track(router.execute(upstream().fn));
    await clock.tickAsync(0);
    expect(result.error).toBeInstanceOf(NoKeyAvailableError);
    expect(clock.countTimers()).toBe(0);
  });

  it("does not wait by default, whatever the origin of the router's clock", async () => {
    const router = fakeTimeRouter({ now: () => performance.now() - 60_000 });
    router.markErrorWithDelay(KEY_A, 1_000);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    const { fn, calls } = upstream();
    const result = track(router.execute(fn));
    await clock.tickAsync(0);
    expect(result.settled).toBe(true);
    expect(result.error).toBeInstanceOf(NoKeyAvailableError);
    await clock.tickAsync(1_000);
    expect(calls).toHaveLength(0);
    expect(clock.countTimers()).toBe(0);
  });

  it("spends maxWaitMs as one budget across waits", async () => {
    const router = fakeTimeRouter();
    router.markErrorWithDelay(KEY_A, 1_000);
    router.markErrorWithDelay(KEY_B, 3_000);
    router.markBlocked(KEY_C);
    const sent = respond(503);
    const { fn, keys } = upstream({ [KEY_A]: () => sent });
    const result = track(router.execute(fn, { maxWaitMs: 2_500 }));
    await clock.tickAsync(1_000);
    // A was tried at 1 s; B is back 2 s later, but only 1.5 s of the budget is left.
    expect(keys()).toEqual([KEY_A]);
    expect(result.settled).toBe(true);
    expect(result.value).toBe(sent);
    expect(sent.bodyUsed).toBe(false);
    expect(clock.countTimers()).toBe(0);
  });

  it("waits only for keys not yet tried in the call", async () => {
    const router = fakeTimeRouter();
    router.markErrorWithDelay(KEY_B, 5_000);
    router.markBlocked(KEY_C);
    const { fn, keys } = upstream({ [KEY_A]: () => respond(503, { "retry-after": "1" }) });
    // A is back in 1 s, but was tried; B is 5 s away.
    const short = track(router.execute(fn, { maxWaitMs: 3_000 }));
    await clock.tickAsync(0);
    expect(short.settled).toBe(true);
    expect((short.value as Response).status).toBe(503);
    expect(keys()).toEqual([KEY_A]);

    await clock.tickAsync(1_000); // A is ready again
    const long = track(router.execute(fn, { maxWaitMs: 6_000 }));
    await clock.tickAsync(0);
    expect(keys()).toEqual([KEY_A, KEY_A]);
    expect(long.settled).toBe(false);
    await clock.tickAsync(3_999);
    expect(long.settled).toBe(false);
    await clock.tickAsync(1);
    expect(keys()).toEqual([KEY_A, KEY_A, KEY_B]);
    expect((long.value as Response).status).toBe(200);
    expect(clock.countTimers()).toBe(0);
  });

  it("an abort ends the wait at once with signal.reason and leaves no timer", async () => {
    const router = fakeTimeRouter();
    router.markErrorWithDelay(KEY_A, 10_000);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    const { fn, calls } = upstream();
    const result = track(router.execute(fn, { maxWaitMs: 60_000, signal: controller.signal }));
    await clock.tickAsync(2_000);
    expect(result.settled).toBe(false);
    expect(clock.countTimers()).toBe(1);
    controller.abort(reason);
    await clock.tickAsync(0);
    expect(result.settled).toBe(true);
    expect(result.error).toBe(reason);
    expect(clock.countTimers()).toBe(0);
    await clock.tickAsync(10_000);
    expect(calls).toHaveLength(0);
  });

  it("an abort during a wait releases the body of the response it moved past", async () => {
    const router = fakeTimeRouter();
    router.markErrorWithDelay(KEY_B, 10_000);
    router.markBlocked(KEY_C);
    const controller = new AbortController();
    const first = respond(429, { "retry-after": "60" });
    const result = track(router.execute(upstream({ [KEY_A]: () => first }).fn, { maxWaitMs: 60_000, signal: controller.signal }));
    await clock.tickAsync(1_000);
    expect(result.settled).toBe(false);
    controller.abort(new Error("stop"));
    await clock.tickAsync(0);
    expect(result.rejected).toBe(true);
    expect(first.bodyUsed).toBe(true);
    expect(clock.countTimers()).toBe(0);
  });

  it("a success after a wait leaves no timer and no abort listener behind", async () => {
    const router = fakeTimeRouter();
    router.markErrorWithDelay(KEY_A, 500);
    router.markBlocked(KEY_B);
    router.markBlocked(KEY_C);
    const controller = new AbortController();
    const added: string[] = [];
    const removed: string[] = [];
    const signal = controller.signal;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((type: string, ...rest: [EventListener, AddEventListenerOptions?]) => {
      added.push(type);
      add(type, ...rest);
    }) as typeof signal.addEventListener;
    signal.removeEventListener = ((type: string, ...rest: [EventListener, EventListenerOptions?]) => {
      removed.push(type);
      remove(type, ...rest);
    }) as typeof signal.removeEventListener;
    const result = track(router.execute(upstream().fn, { maxWaitMs: 1_000, signal }));
    await clock.tickAsync(500);
    expect((result.value as Response).status).toBe(200);
    // One listener for the wait, one for the attempt: each taken off again.
    expect(added).toEqual(["abort", "abort"]);
    expect(removed).toEqual(added);
    expect(clock.countTimers()).toBe(0);
  });
});

describe("execute: bad options", () => {
  it.each([0, -1, 1.5, Number.NaN, Infinity, "2"])("rejects a maxAttempts of %s with a RangeError", async (maxAttempts) => {
    const { router } = routerWith();
    const { fn, calls } = upstream();
    await expect(router.execute(fn, { maxAttempts: maxAttempts as number })).rejects.toThrow(RangeError);
    await expect(router.execute(fn, { maxAttempts: maxAttempts as number })).rejects.toThrow(/maxAttempts/);
    expect(calls).toHaveLength(0);
  });

  it.each([-1, Number.NaN, Infinity, -Infinity])("rejects a maxWaitMs of %s with a RangeError", async (maxWaitMs) => {
    const { router } = routerWith();
    const { fn, calls } = upstream();
    await expect(router.execute(fn, { maxWaitMs })).rejects.toThrow(RangeError);
    await expect(router.execute(fn, { maxWaitMs })).rejects.toThrow(/maxWaitMs/);
    expect(calls).toHaveLength(0);
  });

  it.each([undefined, null, "fetch", 42])("rejects an fn of %s with a TypeError, as a rejection", async (fn) => {
    const { router } = routerWith();
    let promise: Promise<unknown> | undefined;
    expect(() => {
      promise = router.execute(fn as never);
    }).not.toThrow();
    await expect(promise).rejects.toThrow(TypeError);
    await expect(promise).rejects.toThrow(/fn must be a function/);
  });

  it.each([null, "retry", {}])("rejects a classify of %s with a TypeError", async (classify) => {
    const { router } = routerWith();
    const { fn, calls } = upstream();
    await expect(router.execute(fn, { classify: classify as never })).rejects.toThrow(TypeError);
    await expect(router.execute(fn, { classify: classify as never })).rejects.toThrow(/classify/);
    expect(calls).toHaveLength(0);
  });

  it.each([null, "fast", 3])("rejects options of %s with a TypeError", async (options) => {
    const { router } = routerWith();
    const { fn, calls } = upstream();
    await expect(router.execute(fn, options as never)).rejects.toThrow(TypeError);
    await expect(router.execute(fn, options as never)).rejects.toThrow(/options must be an object/);
    expect(calls).toHaveLength(0);
  });

  it("rejects a signal that is not an AbortSignal with a TypeError", async () => {
    const { router } = routerWith();
    await expect(router.execute(upstream().fn, { signal: "stop" as never })).rejects.toThrow(/signal must be an AbortSignal/);
  });

  it("names no key in a message, even when a key is passed as an option", async () => {
    const { router } = routerWith();
    const errors = await Promise.all([
      router.execute(KEY_A as never).catch((error: unknown) => error),
      router.execute(upstream().fn, { maxAttempts: KEY_A as never }).catch((error: unknown) => error),
      router.execute(upstream().fn, { maxWaitMs: KEY_A as never }).catch((error: unknown) => error),
      router.execute(upstream().fn, { classify: KEY_A as never }).catch((error: unknown) => error),
    ]);
    for (const error of errors) {
      expect(error).toBeInstanceOf(Error);
      expectNoKeyIn(everythingShown(error));
    }
  });
});

describe("execute: keys stay secret", () => {
  it("a NoKeyAvailableError contains no key in its message, stack, JSON or inspect output", async () => {
    const { router } = routerWith();
    for (const key of KEYS) router.markErrorWithDelay(key, 1_234.5);
    const error = await router.execute(upstream().fn).catch((caught: unknown) => caught);
    expect(isNoKeyAvailableError(error)).toBe(true);
    expect((error as Error).message).toContain("1235 ms");
    expectNoKeyIn(everythingShown(error));
  });

  it("an exhausted router's error has no key whatever the keys' states", async () => {
    const { router } = routerWith();
    router.markBlocked(KEY_A);
    router.markDisabled(KEY_B);
    router.markErrorWithDelay(KEY_C, 100);
    const error = await router.execute(upstream().fn).catch((caught: unknown) => caught);
    expectNoKeyIn(everythingShown(error));
  });
});

/** mulberry32: a tiny seeded PRNG, so the load test is the same on every run. */
function seededRandom(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** What the fake upstream throws when it throws with a status, like an SDK's `APIError`. */
class UpstreamError extends Error {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string>,
  ) {
    super(`upstream answered ${status}`);
  }
}

/** What the fake upstream throws for an axios-like failure: the status is on `response`. */
class UpstreamResponseError extends Error {
  readonly response: { status: number; headers: Record<string, string> };
  constructor(status: number) {
    super(`Request failed with status code ${status}`);
    this.response = { status, headers: {} };
  }
}

describe("under load", () => {
  let clock: FakeTimers.Clock;

  beforeEach(() => {
    clock = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout", "performance", "Date"] });
  });

  afterEach(() => {
    clock.uninstall();
  });

  it(
    "10,000 overlapping calls over 50 keys each settle once, leave no timer, and leave each key as the upstream's answers say",
    async () => {
      const CALLS = 10_000;
      const keys = Array.from({ length: 50 }, (_, index) => `sk-load-${String(index).padStart(2, "0")}-abcdefghijkl`);
      const indexOf = new Map(keys.map((key, index) => [key, index]));
      const revoked = new Set([keys[7]!, keys[31]!]);
      const cooldownMs = 2_000;
      const maxRetryAfterMs = 20_000;
      const router = new CredentialRouter(keys, { cooldownMs, maxRetryAfterMs, maxRetry: 4 });
      const random = seededRandom(0x5eed);

      // What the router should end up knowing, kept from each answer as the upstream gives it: with
      // maxCooldownMs = cooldownMs nothing escalates, so a key cools until the latest deadline any
      // answer set, and answers in the same instant may arrive in any order.
      const coolUntil = new Float64Array(keys.length);
      const answers = { hinted429: 0, clamped429: 0, plain429: 0, thrown429: 0, server: 0, revoked: 0, network: 0, pass: 0, ok: 0 };
      const coolFor = (index: number, delayMs: number) => {
        coolUntil[index] = Math.max(coolUntil[index]!, performance.now() + Math.min(delayMs, maxRetryAfterMs));
      };

      const callUpstream = async (key: string): Promise<Response> => {
        const index = indexOf.get(key)!;
        // A few microtask hops, so that answers come back out of call order.
        for (let hops = Math.floor(random() * 4); hops > 0; hops--) await undefined;
        if (revoked.has(key)) {
          answers.revoked++;
          return new Response("invalid api key", { status: 401 });
        }
        const roll = random();
        if (roll < 0.1) {
          const seconds = 1 + Math.floor(random() * 9);
          answers.hinted429++;
          coolFor(index, seconds * 1_000);
          return new Response("slow down", { status: 429, headers: { "retry-after": String(seconds) } });
        }
        if (roll < 0.15) {
          const delayMs = 500 + Math.floor(random() * 5_000);
          answers.thrown429++;
          coolFor(index, delayMs);
          throw new UpstreamError(429, { "retry-after-ms": String(delayMs) });
        }
        if (roll < 0.16) {
          answers.clamped429++;
          coolFor(index, 3_600_000);
          return new Response("", { status: 429, headers: { "retry-after": "3600" } });
        }
        if (roll < 0.19) {
          answers.plain429++;
          coolFor(index, cooldownMs);
          return new Response("", { status: 429 });
        }
        if (roll < 0.23) {
          answers.server++;
          coolFor(index, cooldownMs);
          return new Response("", { status: 503 });
        }
        if (roll < 0.25) {
          answers.server++;
          coolFor(index, cooldownMs);
          throw new UpstreamResponseError(502);
        }
        if (roll < 0.32) {
          answers.network++;
          throw new TypeError("fetch failed");
        }
        if (roll < 0.33) {
          answers.pass++;
          return new Response("no such model", { status: 404 });
        }
        answers.ok++;
        return new Response("ok");
      };

      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => void unhandled.push(reason);
      process.on("unhandledRejection", onUnhandled);
      process.on("uncaughtException", onUnhandled);
      try {
        const settledTimes = new Uint32Array(CALLS);
        const settledAt = new Float64Array(CALLS).fill(-1);
        const values: unknown[] = [];
        const errors: unknown[] = [];
        const start = (call: number) => {
          const options = call % 5 === 0 ? { maxWaitMs: 5_000 } : {};
          router.execute(callUpstream, options).then(
            (value) => {
              settledTimes[call]!++;
              settledAt[call] = performance.now();
              values.push(value);
            },
            (error: unknown) => {
              settledTimes[call]!++;
              settledAt[call] = performance.now();
              errors.push(error);
            },
          );
        };
        // Half at once, then bursts of 1,000 every 700 ms while the first ones still wait: a burst
        // that finds every key cooling is turned away.
        for (let call = 0; call < CALLS / 2; call++) start(call);
        for (let burst = 0; burst < 5; burst++) {
          setTimeout(() => {
            for (let call = CALLS / 2 + burst * 1_000; call < CALLS / 2 + (burst + 1) * 1_000; call++) start(call);
          }, (burst + 1) * 700);
        }
        let rounds = 0;
        while (values.length + errors.length < CALLS) {
          await clock.tickAsync(100);
          if (++rounds > 10_000) throw new Error("the calls never all settled");
        }
        await clock.tickAsync(0);
        await new Promise<void>((resolve) => setImmediate(resolve));

        // Every call settled, once, with a value or a typed error.
        expect(values.length + errors.length).toBe(CALLS);
        expect(settledTimes.every((times) => times === 1)).toBe(true);
        for (const value of values) expect(value).toBeInstanceOf(Response);
        const noKey = errors.filter(isNoKeyAvailableError);
        const upstreamErrors = errors.filter(
          (error) =>
            error instanceof UpstreamError ||
            error instanceof UpstreamResponseError ||
            (error instanceof TypeError && error.message === "fetch failed"),
        );
        expect(noKey.length + upstreamErrors.length).toBe(errors.length);
        for (const error of noKey) {
          expect(error.retryAfterMs === undefined || error.retryAfterMs > 0).toBe(true);
        }
        expect(unhandled).toEqual([]);
        expect(clock.countTimers()).toBe(0);

        // The run did what it is meant to: every kind of answer, calls that waited, calls turned away.
        for (const count of Object.values(answers)) expect(count).toBeGreaterThan(0);
        expect(noKey.length).toBeGreaterThan(0);
        expect(Array.from(settledAt).some((time) => time > 0)).toBe(true);

        // Each key is as the upstream left it.
        const now = performance.now();
        const expected = keys.map((key, index) =>
          revoked.has(key)
            ? { status: "blocked" }
            : coolUntil[index]! > now
              ? { status: "cooldown", remainingMs: coolUntil[index]! - now }
              : { status: "ready" },
        );
        expect(router.snapshot().map((row) => row.state)).toEqual(expected);
        expect(expected.filter((state) => state.status === "cooldown").length).toBeGreaterThan(0);

        // No cooldown outlasts maxRetryAfterMs; the revoked keys never come back by themselves.
        await clock.tickAsync(maxRetryAfterMs);
        expect(router.snapshot().map((row) => row.state.status)).toEqual(
          keys.map((key) => (revoked.has(key) ? "blocked" : "ready")),
        );
      } finally {
        process.off("unhandledRejection", onUnhandled);
        process.off("uncaughtException", onUnhandled);
      }
    },
    120_000,
  );
});

describe("execute: error bodies", () => {
  /** A classify that records each outcome's body and keeps the default verdict. */
  function bodies() {
    const seen: unknown[] = [];
    return { seen, classify: (outcome: Outcome) => void seen.push(outcome.body) };
  }

  it("parses a JSON error body from a clone, for classify and the default rules; the response keeps its body", async () => {
    const { router } = routerWith({}, [KEY_A]);
    const { seen, classify } = bodies();
    const body = JSON.stringify({ error: { code: "insufficient_quota", message: "You exceeded your current quota." } });
    const response = (await router.execute(async () => respond(429, { "content-type": "application/json" }, body), { classify })) as Response;
    expect(seen).toEqual([JSON.parse(body)]);
    expect(await response.text()).toBe(body);
  });

  it("gives a body that is not JSON as its text, and an empty one as undefined", async () => {
    const { router } = routerWith({}, [KEY_A, KEY_B]);
    const { seen, classify } = bodies();
    await router.execute(upstream({ [KEY_A]: () => respond(400, {}, "<html>Bad gateway</html>"), [KEY_B]: () => respond(404, {}, "") }).fn, {
      classify: (outcome) => (classify(outcome), outcome.status === 400 ? { type: "retry" } : undefined),
    });
    expect(seen).toEqual(["<html>Bad gateway</html>", undefined]);
  });

  it("reads at most 64 KiB of a huge body", async () => {
    const { router } = routerWith({}, [KEY_A]);
    const { seen, classify } = bodies();
    const huge = "x".repeat(200_000);
    const response = (await router.execute(async () => respond(400, {}, huge), { classify })) as Response;
    expect((seen[0] as string).length).toBe(65_536);
    expect((await response.text()).length).toBe(200_000);
  });

  it("a body that never ends is cut at 64 KiB, and its stream cancelled", async () => {
    const { router } = routerWith({}, [KEY_A]);
    const { seen, classify } = bodies();
    let pulls = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulls++;
        controller.enqueue(new Uint8Array(4_096).fill(120));
      },
    });
    await router.execute(async () => new Response(endless, { status: 500 }), { classify, maxServerRetries: 0 });
    expect((seen[0] as string).length).toBe(65_536);
    // 16 chunks make 64 KiB: reading stopped there, and the clone's branch was let go.
    expect(pulls).toBeLessThan(24);
  });

  it("a body that stalls is given up when the caller aborts, and the call rejects with the reason", async () => {
    const { router } = routerWith({}, [KEY_A]);
    const controller = new AbortController();
    let reads = 0;
    // The first chunk comes; asking for the second aborts the call, and none ever comes.
    const stalled = new ReadableStream<Uint8Array>({
      pull(stream) {
        if (reads++ === 0) stream.enqueue(new TextEncoder().encode('{"error":'));
        else controller.abort(new Error("enough"));
      },
    });
    const call = router.execute(async () => new Response(stalled, { status: 429 }), { signal: controller.signal });
    await expect(call).rejects.toThrow("enough");
  });

  it("a body already read by fn is no body, and no error", async () => {
    const { router } = routerWith({}, [KEY_A, KEY_B]);
    const { seen, classify } = bodies();
    await router.execute(
      upstream({
        [KEY_A]: async () => {
          const response = respond(429, {}, '{"error":{"message":"Please retry in 7s"}}');
          await response.text();
          return response;
        },
      }).fn,
      { classify },
    );
    expect(seen[0]).toBeUndefined();
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 10_000 });
  });

  it("takes the body an SDK error carries (error.error), and a resolved value's plain body", async () => {
    const { router } = routerWith({}, [KEY_A, KEY_B, KEY_C]);
    const { seen, classify } = bodies();
    const inner = { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" };
    // Every key answers 429: the last attempt's error is rethrown.
    await router.execute(
      upstream({
        [KEY_A]: fail(apiError(429, { headers: {}, error: inner })),
        [KEY_B]: () => ({ status: 429, headers: {}, body: { error: inner } }),
        [KEY_C]: fail(Object.assign(new Error("Request failed"), { response: { status: 429, headers: {}, data: { error: inner } } })),
      }).fn,
      { classify },
    ).catch(() => {});
    expect(seen).toEqual([inner, { error: inner }, { error: inner }]);
  });

  it("never reads the body of a success", async () => {
    const { router } = routerWith({}, [KEY_A]);
    const { seen, classify } = bodies();
    const response = (await router.execute(async () => ok("fine"), { classify })) as Response;
    expect(seen).toEqual([undefined]);
    expect(response.bodyUsed).toBe(false);
  });
});

describe("execute: the exhausted event", () => {
  function listen(router: CredentialRouter) {
    const exhausted: unknown[] = [];
    router.subscribe((event) => {
      if (event.type === "exhausted") exhausted.push(event.retryAfterMs);
    });
    return exhausted;
  }

  it("is not told when execute has tried every key and they are all still ready", async () => {
    const { router } = routerWith();
    const exhausted = listen(router);
    const error = new TypeError("fetch failed");
    const { fn, keys } = upstream({}, fail(error));
    await expect(router.execute(fn, { maxAttempts: 5 })).rejects.toBe(error);
    expect(keys()).toEqual(KEYS);
    expect(exhausted).toEqual([]);
  });

  it("is not told when the keys execute did not try are out but the tried ones are still ready", async () => {
    const { router } = routerWith();
    router.markErrorWithDelay(KEY_C, 5_000);
    const exhausted = listen(router);
    const error = new TypeError("fetch failed");
    const { fn, keys } = upstream({}, fail(error));
    await expect(router.execute(fn, { maxAttempts: 3 })).rejects.toBe(error);
    expect(keys()).toEqual([KEY_A, KEY_B]);
    expect(exhausted).toEqual([]);
    expect(router.nextKey()).toBe(KEY_A);
  });

  it("is told once when execute's attempts leave no key ready", async () => {
    const { router } = routerWith();
    router.markBlocked(KEY_C);
    const exhausted = listen(router);
    const { fn, keys } = upstream({}, () => respond(429, { "retry-after": "7" }));
    expect(((await router.execute(fn, { maxAttempts: 3 })) as Response).status).toBe(429);
    expect(keys()).toEqual([KEY_A, KEY_B]);
    expect(exhausted).toEqual([7_000]);
  });
});

describe("execute: abort on the last attempt", () => {
  it("an abort during the last allowed attempt rejects with signal.reason, not the attempt's error, and marks nothing", async () => {
    const { router } = routerWith();
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    const seen: number[] = [];
    const { fn, keys } = upstream({}, (_key, { attempt }) => {
      if (attempt < 2) return respond(503);
      controller.abort(reason);
      throw new DOMException("This operation was aborted", "AbortError");
    });
    // classify would cool down any key whose attempt it sees: the aborted one must never reach it.
    const classify = (outcome: Outcome): Verdict => (seen.push(outcome.attempt), { type: "cooldown" });
    await expect(router.execute(fn, { signal: controller.signal, maxAttempts: 2, classify })).rejects.toBe(reason);
    expect(keys()).toEqual([KEY_A, KEY_B]);
    expect(seen).toEqual([1]);
    expect(router.stateOf(KEY_B)).toEqual({ status: "ready" });
  });

  it("an abort during the only attempt rejects with signal.reason", async () => {
    const { router } = routerWith({}, [KEY_A]);
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    const { fn } = upstream({}, () => {
      controller.abort(reason);
      throw new TypeError("fetch failed");
    });
    await expect(router.execute(fn, { signal: controller.signal })).rejects.toBe(reason);
    expect(router.snapshot()[0]).toMatchObject({ state: { status: "ready" }, failures: 0 });
  });

  it("an error with a status thrown as the caller aborts still marks its key, then rejects with signal.reason", async () => {
    const { router } = routerWith();
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    const { fn, keys } = upstream({}, () => {
      controller.abort(reason);
      throw apiError(429, { headers: { "retry-after": "30" } });
    });
    await expect(router.execute(fn, { signal: controller.signal })).rejects.toBe(reason);
    expect(keys()).toEqual([KEY_A]);
    // The server did answer 429 for this key: that says something about the key, abort or not.
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 30_000 });
  });
});

describe("execute: what a bad argument's message says", () => {
  it("a classify that is not a function", async () => {
    const { router } = routerWith();
    await expect(router.execute(upstream().fn, { classify: "retry" as never })).rejects.toThrow("classify must be a function, received a string");
  });

  it("a verdict classify returned that is not a Verdict", async () => {
    const { router } = routerWith();
    const classify = () => ({ type: "later" }) as unknown as Verdict;
    await expect(router.execute(upstream().fn, { classify })).rejects.toThrow("classify's verdict must be a Verdict");
  });

  it.each([
    [{ maxServerRetries: -1 }, RangeError, "maxServerRetries must be an integer >= 0, received -1"],
    [{ maxServerRetries: 1.5 }, RangeError, "maxServerRetries must be an integer >= 0, received 1.5"],
    [{ scope: 7 }, TypeError, "scope must be a string, received 7"],
    [{ preemptive: "yes" }, TypeError, "preemptive must be a boolean, received a string"],
  ] as const)("%o, before any attempt", async (options, kind, message) => {
    const { router } = routerWith();
    const { fn, calls } = upstream();
    await expect(router.execute(fn, options as never)).rejects.toThrow(new kind(message));
    expect(calls).toHaveLength(0);
  });

  it("a null signal is refused like any other non-signal", async () => {
    const { router } = routerWith();
    const { fn, calls } = upstream();
    await expect(router.execute(fn, { signal: null as never })).rejects.toThrow("signal must be an AbortSignal, received null");
    expect(calls).toHaveLength(0);
  });
});

describe("execute: preemptive cooldowns", () => {
  // 60 requests a minute and none left: one slot frees in 1 s.
  const spent = { "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m0s" };
  const MODEL = "gpt-4o";

  it("a success that shows its budget spent is returned, and its key rests until a slot frees, in the call's scope", async () => {
    const { router } = routerWith();
    const events: RouterEvent[] = [];
    router.subscribe((event) => void events.push(event));
    const response = (await router.execute(async () => new Response("fine", { headers: spent }), { scope: MODEL })) as Response;
    expect(await response.text()).toBe("fine");
    expect(router.stateOf(KEY_A, MODEL)).toEqual({ status: "cooldown", remainingMs: 1_000 });
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    expect(events).toMatchObject([{ type: "cooldown", index: 0, reason: "rate_limit", delayMs: 1_000, scope: MODEL }]);
  });

  it("rests no key when preemptive is off, for the call or for the router", async () => {
    const { router } = routerWith();
    await router.execute(async () => new Response("fine", { headers: spent }), { preemptive: false });
    expect(router.stateOf(KEY_A)).toEqual({ status: "ready" });
    const quiet = routerWith({ preemptive: false }).router;
    await quiet.execute(async () => new Response("fine", { headers: spent }));
    expect(quiet.stateOf(KEY_A)).toEqual({ status: "ready" });
  });

  it("rests no key for a success with budget left, a value without headers, or one that only looks like a response", async () => {
    const { router } = routerWith();
    await router.execute(async () => new Response("fine", { headers: { ...spent, "x-ratelimit-remaining-requests": "5" } }));
    await router.execute(async () => "plain");
    // No status anywhere: not a response, so its headers are not read.
    await router.execute(async () => ({ response: { headers: spent } }));
    expect(router.snapshot().map((row) => row.state)).toEqual([{ status: "ready" }, { status: "ready" }, { status: "ready" }]);
  });

  it("classify's success verdict rests a spent key too; any other verdict does not", async () => {
    const { router } = routerWith();
    const answer = async () => new Response("fine", { headers: spent });
    await router.execute(answer, { classify: () => ({ type: "success" }) });
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 1_000 });
    await router.execute(answer, { classify: () => ({ type: "pass" }) });
    expect(router.stateOf(KEY_B)).toEqual({ status: "ready" });
    await router.execute(answer, { classify: () => ({ type: "success" }), preemptive: false });
    expect(router.stateOf(KEY_B)).toEqual({ status: "ready" });
  });
});

describe("execute: what classify is shown", () => {
  function outcomes() {
    const seen: Outcome[] = [];
    return { seen, classify: (outcome: Outcome): Verdict => (seen.push(outcome), { type: "pass" }) };
  }

  it("headers that are not an object, or null, are no headers", async () => {
    const { router } = routerWith();
    const { seen, classify } = outcomes();
    await router.execute(fail(apiError(429, { headers: "retry-after: 5" })), { classify }).catch(() => {});
    await router.execute(fail(Object.assign(new Error("429"), { response: { status: 429, headers: null } })), { classify }).catch(() => {});
    expect(seen.map((outcome) => outcome.headers)).toEqual([undefined, undefined]);
    expect(seen.map((outcome) => outcome.status)).toEqual([429, 429]);
  });

  it("a value whose body is a Node stream has no parsed body", async () => {
    const { router } = routerWith();
    const { seen, classify } = outcomes();
    await router.execute(async () => ({ status: 500, body: { pipe() {} } }), { classify });
    expect(seen[0]!.body).toBeUndefined();
  });

  it("takes the body an error carries as data (ofetch), and cools for the wait it names", async () => {
    const { router } = routerWith({}, [KEY_A]);
    await router.execute(fail(Object.assign(new Error("429"), { status: 429, data: { error: { message: "Please retry in 3s" } } }))).catch(() => {});
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 3_000 });
  });

  it("reads 64 KiB of a body whose chunks cross the limit", async () => {
    const { router } = routerWith({}, [KEY_A]);
    const { seen, classify } = outcomes();
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(60_000).fill(120));
        controller.enqueue(new Uint8Array(10_000).fill(121));
        controller.close();
      },
    });
    await router.execute(async () => new Response(chunked, { status: 400 }), { classify });
    expect(seen[0]!.body).toBe("x".repeat(60_000) + "y".repeat(5_536));
  });
});

describe("execute: the caller's signal", () => {
  it("fn may answer synchronously, with a value or with nothing", async () => {
    const { router } = routerWith();
    const { signal } = new AbortController();
    expect(await router.execute(() => "plain", { signal })).toBe("plain");
    expect(await router.execute(() => undefined, { signal })).toBeUndefined();
  });

  it("a response fn already had when it aborted is returned whole", async () => {
    const { router } = routerWith();
    const controller = new AbortController();
    const fn = () => {
      controller.abort(new Error("late"));
      return Promise.resolve(ok("fine"));
    };
    const response = (await router.execute(fn, { signal: controller.signal })) as Response;
    expect(await response.text()).toBe("fine");
  });

  it("an error response fn already had when it aborted is not read: the call rejects with the reason", async () => {
    const { router } = routerWith();
    const controller = new AbortController();
    // A body that never comes: reading it would never end.
    const never = new ReadableStream<Uint8Array>({ pull: () => new Promise<void>(() => {}) });
    const fn = () => {
      controller.abort(new Error("late"));
      return Promise.resolve(new Response(never, { status: 429 }));
    };
    await expect(router.execute(fn, { signal: controller.signal })).rejects.toThrow("late");
  }, 10_000);

  it("is left with no listener of execute's once the call is over, its error body read", async () => {
    const { router } = routerWith({}, [KEY_A, KEY_B]);
    const { signal } = new AbortController();
    await router.execute(upstream({ [KEY_A]: () => respond(429, {}, '{"error":{"message":"Please retry in 2s"}}') }).fn, { signal });
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 2_000 });
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
  });
});

describe("execute: where a verdict's mark applies", () => {
  it("a cooldown is in the call's scope, or key-wide with scoped: false", async () => {
    const { router } = routerWith({}, [KEY_A]);
    const cool = (scoped?: boolean) => router.execute(async () => respond(500), { scope: "m", classify: () => ({ type: "cooldown", delayMs: 5_000, scoped }) });
    await cool();
    expect([router.stateOf(KEY_A), router.stateOf(KEY_A, "m")]).toEqual([{ status: "ready" }, { status: "cooldown", remainingMs: 5_000 }]);
    router.clearCooldown(KEY_A);
    await cool(false);
    expect(router.stateOf(KEY_A)).toEqual({ status: "cooldown", remainingMs: 5_000 });
  });
});
