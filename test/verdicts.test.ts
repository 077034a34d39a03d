import { afterEach, describe, expect, it, vi } from "vitest";
import type { HeadersLike } from "../src/retry-after.js";
import { defaultVerdict, preemptiveDelay, waitHint, type ResponseFacts, type Verdict } from "../src/verdicts.js";
import { DATE, NOW, providers, QUOTA_COOLDOWN_MS, type ErrorFixture } from "./fixtures/providers/index.js";

/** A failed response as `execute` sees it: resolved (a fetch Response) unless said otherwise. */
function facts(
  status: number | undefined,
  headers: Record<string, unknown> | HeadersLike | undefined = {},
  body: unknown = undefined,
  type: ResponseFacts["type"] = "resolved",
): ResponseFacts {
  return { type, status, headers: headers as HeadersLike, body };
}

const verdictOf = (status: number | undefined, headers?: Record<string, unknown> | HeadersLike, body?: unknown) =>
  defaultVerdict(facts(status, headers, body), QUOTA_COOLDOWN_MS, NOW);

const rateLimit = (delayMs: number | undefined): Verdict => ({ type: "cooldown", reason: "rate_limit", delayMs });
const quota = (delayMs = QUOTA_COOLDOWN_MS): Verdict => ({ type: "cooldown", reason: "quota", delayMs });

describe.each(providers.map((fixtures) => [fixtures.provider, fixtures] as const))("%s: documented responses", (_, fixtures) => {
  const judge = (fixture: ErrorFixture, headers: HeadersLike, body: unknown, type: ResponseFacts["type"]) =>
    defaultVerdict({ type, status: fixture.status, headers, body }, QUOTA_COOLDOWN_MS, NOW);

  it.each(fixtures.errors.map((fixture) => [fixture.name, fixture] as const))("%s", (_, fixture) => {
    // As fetch gives it (a Headers, the body parsed by execute)...
    expect(judge(fixture, new Headers(fixture.headers), fixture.body, "resolved")).toEqual(fixture.verdict);
    // ...as an SDK error carries it (a plain record of headers, thrown)...
    expect(judge(fixture, fixture.headers, fixture.body, "rejected")).toEqual(fixture.verdict);
    // ...and with the body still JSON text.
    expect(judge(fixture, fixture.headers, JSON.stringify(fixture.body), "resolved")).toEqual(fixture.verdict);
  });

  it.each(fixtures.successes.map((fixture) => [fixture.name, fixture] as const))("success: %s", (_, fixture) => {
    expect(preemptiveDelay(new Headers(fixture.headers), NOW)).toBe(fixture.delayMs);
    expect(preemptiveDelay(fixture.headers, NOW)).toBe(fixture.delayMs);
    // A success is never judged by its headers.
    expect(defaultVerdict(facts(200, fixture.headers), QUOTA_COOLDOWN_MS, NOW)).toEqual({ type: "success" });
  });
});

describe("defaultVerdict: the rows of issue 10", () => {
  it("Gemini 429 RESOURCE_EXHAUSTED with RetryInfo 37s: cools 37 s for rate_limit", () => {
    const body = {
      error: {
        code: 429,
        status: "RESOURCE_EXHAUSTED",
        details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "37s" }],
      },
    };
    expect(verdictOf(429, {}, body)).toEqual(rateLimit(37_000));
  });

  it("Gemini 400 INVALID_ARGUMENT with ErrorInfo API_KEY_INVALID: blocked for auth", () => {
    const body = {
      error: {
        code: 400,
        status: "INVALID_ARGUMENT",
        details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "API_KEY_INVALID" }],
      },
    };
    expect(verdictOf(400, {}, body)).toEqual({ type: "blocked", reason: "auth" });
  });

  it("OpenAI 429 insufficient_quota: cools quotaCooldownMs for quota", () => {
    const body = { error: { message: "You exceeded your current quota", type: "insufficient_quota", code: "insufficient_quota" } };
    expect(verdictOf(429, {}, body)).toEqual(quota());
    expect(defaultVerdict(facts(429, {}, body), 60_000, NOW)).toEqual(quota(60_000));
  });

  it("OpenAI 429 with only x-ratelimit-reset-requests: 6m0s and 'Please try again in 1.2s': 1.2 s", () => {
    const headers = { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s" };
    const body = { error: { message: "Rate limit reached for requests. Please try again in 1.2s." } };
    expect(verdictOf(429, headers, body)).toEqual(rateLimit(1200));
  });

  it("Anthropic 529 overloaded_error: a service fault, no key to blame", () => {
    expect(verdictOf(529, {}, { type: "error", error: { type: "overloaded_error", message: "Overloaded" } })).toEqual({
      type: "fault",
    });
  });

  it("a 429 with x-should-retry: false: pass, no mark", () => {
    expect(verdictOf(429, { "x-should-retry": "false", "retry-after": "3" })).toEqual({ type: "pass" });
  });

  it.each([
    ["3s", 3000],
    ["2, 3", 2000],
    ["1e2", 100_000],
  ])("retry-after: %s cools %i ms", (value, ms) => {
    expect(verdictOf(429, { "retry-after": value })).toEqual(rateLimit(ms));
    expect(verdictOf(429, new Headers({ "retry-after": value }))).toEqual(rateLimit(ms));
  });
});

describe("defaultVerdict: outcomes without an error status", () => {
  it("a value with no status is a success; a thrown error with none is a network failure", () => {
    expect(defaultVerdict(facts(undefined), QUOTA_COOLDOWN_MS, NOW)).toEqual({ type: "success" });
    expect(defaultVerdict(facts(undefined, undefined, undefined, "rejected"), QUOTA_COOLDOWN_MS, NOW)).toEqual({ type: "retry" });
  });

  it("a thrown status 0 (XHR) is a network failure", () => {
    expect(defaultVerdict(facts(0, undefined, undefined, "rejected"), QUOTA_COOLDOWN_MS, NOW)).toEqual({ type: "retry" });
  });

  it("a resolved status below 400 is a success, a thrown one passes through", () => {
    for (const status of [200, 201, 204, 304]) {
      expect(defaultVerdict(facts(status), QUOTA_COOLDOWN_MS, NOW)).toEqual({ type: "success" });
      expect(defaultVerdict(facts(status, {}, undefined, "rejected"), QUOTA_COOLDOWN_MS, NOW)).toEqual({ type: "pass" });
    }
  });

  it("a success is not judged by x-should-retry or its body", () => {
    const body = { error: { type: "overloaded_error" } };
    expect(verdictOf(200, { "x-should-retry": "true" }, body)).toEqual({ type: "success" });
  });
});

describe("defaultVerdict: x-should-retry", () => {
  it("false stops on any error status, marking nothing", () => {
    for (const status of [401, 402, 408, 429, 500, 503, 529]) {
      expect(verdictOf(status, { "x-should-retry": "false" })).toEqual({ type: "pass" });
    }
  });

  it("true moves on to the next key on any error status, marking nothing", () => {
    for (const status of [400, 401, 404, 429, 503]) {
      expect(verdictOf(status, { "X-Should-Retry": "true" })).toEqual({ type: "retry" });
    }
  });

  it("is read as the SDKs read it: only true and false count", () => {
    expect(verdictOf(429, { "x-should-retry": "yes" })).toEqual(rateLimit(undefined));
    // A header value that is a boolean, not text, says nothing.
    expect(verdictOf(429, { "x-should-retry": true })).toEqual(rateLimit(undefined));
    expect(verdictOf(401, { "x-should-retry": "FALSE" })).toEqual({ type: "blocked", reason: "auth" });
    expect(verdictOf(401, { "x-should-retry": " false " })).toEqual({ type: "pass" });
  });
});

describe("defaultVerdict: by status", () => {
  it.each([
    [401, { type: "blocked", reason: "auth" }],
    [403, { type: "blocked", reason: "auth" }],
    [402, quota()],
    [408, { type: "retry" }],
    [409, { type: "retry" }],
    [429, rateLimit(undefined)],
    [500, { type: "fault" }],
    [502, { type: "fault" }],
    [503, { type: "fault" }],
    [504, { type: "fault" }],
    [529, { type: "fault" }],
    [400, { type: "pass" }],
    [404, { type: "pass" }],
    [413, { type: "pass" }],
    [422, { type: "pass" }],
    [451, { type: "pass" }],
    [501, { type: "pass" }],
    [599, { type: "pass" }],
  ] as const)("%i with no body: %o", (status, verdict) => {
    expect(verdictOf(status)).toEqual(verdict);
  });

  it("a 5xx fault ignores the wait hint: it is not the key's", () => {
    expect(verdictOf(503, { "retry-after": "30" })).toEqual({ type: "fault" });
  });

  it("a 402 cools for the body's own delay when it names one, else quotaCooldownMs", () => {
    expect(verdictOf(402, { "retry-after": "5" })).toEqual(quota());
    expect(verdictOf(402, {}, { error: { message: "Out of credit. Please retry in 90s." } })).toEqual(quota(90_000));
  });
});

describe("defaultVerdict: rules read from the body", () => {
  it("Gemini's API_KEY_INVALID or API_KEY_EXPIRED blocks the key whatever the status", () => {
    const body = (reason: string) => ({ error: { details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason }] } });
    for (const status of [400, 403, 429, 500]) {
      expect(verdictOf(status, {}, body("API_KEY_INVALID"))).toEqual({ type: "blocked", reason: "auth" });
      expect(verdictOf(status, {}, body("API_KEY_EXPIRED"))).toEqual({ type: "blocked", reason: "auth" });
    }
    expect(verdictOf(400, {}, body("API_KEY_SERVICE_BLOCKED"))).toEqual({ type: "pass" });
  });

  it("OpenAI's insufficient_quota type or a billing code is a quota case whatever the status", () => {
    for (const code of [
      "credit_balance_exhausted",
      "organization_spend_limit_exceeded",
      "project_spend_limit_exceeded",
      "organization_usage_limit_exceeded",
      "insufficient_quota",
    ]) {
      expect(verdictOf(429, {}, { error: { type: "billing_error", code } })).toEqual(quota());
    }
    expect(verdictOf(429, {}, { error: { type: "insufficient_quota", code: null } })).toEqual(quota());
    expect(verdictOf(400, {}, { error: { type: "insufficient_quota" } })).toEqual(quota());
  });

  it("a quota case takes the body's own delay over the headers'", () => {
    const body = { error: { type: "insufficient_quota", message: "Please retry in 2m0s." } };
    expect(verdictOf(429, { "retry-after": "5" }, body)).toEqual(quota(120_000));
  });

  it("Anthropic's 'credit balance is too low' is a quota case on a 400 only", () => {
    const body = { type: "error", error: { type: "invalid_request_error", message: "Your credit balance is too low to access the Anthropic API." } };
    expect(verdictOf(400, {}, body)).toEqual(quota());
    expect(verdictOf(404, {}, body)).toEqual({ type: "pass" });
  });

  it("a Gemini QuotaFailure is a quota case only on a 429 naming a per-day quota", () => {
    const body = (quotaId: string) => ({
      error: { details: [{ "@type": "type.googleapis.com/google.rpc.QuotaFailure", violations: [{ quotaId }] }] },
    });
    expect(verdictOf(429, {}, body("GenerateRequestsPerDayPerProjectPerModel-FreeTier"))).toEqual(quota());
    expect(verdictOf(429, {}, body("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"))).toEqual(rateLimit(undefined));
    expect(verdictOf(403, {}, body("GenerateRequestsPerDayPerProjectPerModel-FreeTier"))).toEqual({ type: "blocked", reason: "auth" });
  });

  it("Anthropic's overloaded_error is a fault whatever the status", () => {
    const body = { type: "error", error: { type: "overloaded_error", message: "Overloaded" } };
    for (const status of [400, 429, 500, 529]) expect(verdictOf(status, { "retry-after": "9" }, body)).toEqual({ type: "fault" });
  });

  it("a field of another type, or a value that only contains the word, does not match", () => {
    expect(verdictOf(429, {}, { error: { type: ["insufficient_quota"], code: 1 } })).toEqual(rateLimit(undefined));
    expect(verdictOf(429, {}, { error: { type: "not_insufficient_quota" } })).toEqual(rateLimit(undefined));
    expect(verdictOf(503, {}, { error: { type: "overloaded_error_v2" } })).toEqual({ type: "fault" });
    // Each rule names a whole value: neither a longer one nor one with a prefix matches.
    expect(verdictOf(429, {}, { error: { type: "insufficient_quota_soon" } })).toEqual(rateLimit(undefined));
    for (const code of ["no_credit_balance_exhausted", "credit_balance_exhausted_soon"]) {
      expect(verdictOf(429, {}, { error: { code } })).toEqual(rateLimit(undefined));
    }
    for (const reason of ["NOT_API_KEY_INVALID", "API_KEY_EXPIRED_SOON"]) expect(verdictOf(400, {}, { error: { reason } })).toEqual({ type: "pass" });
    expect(verdictOf(400, {}, { error: { reason: { toString: () => "API_KEY_INVALID" } } })).toEqual({ type: "pass" });
  });

  it("the key's own fault comes before a service fault when a body names both", () => {
    const body = [
      { error: { type: "overloaded_error" } },
      { error: { details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "API_KEY_INVALID" }] } },
    ];
    expect(verdictOf(503, {}, body)).toEqual({ type: "blocked", reason: "auth" });
  });
});

describe("waitHint: the order of the hints", () => {
  const body = { error: { message: "Please try again in 1.5s." } };
  const window = { "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s" };

  it("retry-after-ms, then x-ms-retry-after-ms, then retry-after come first", () => {
    expect(waitHint({ headers: { "retry-after-ms": "250", "retry-after": "9", ...window }, body }, NOW)).toBe(250);
    expect(waitHint({ headers: { "x-ms-retry-after-ms": "350", "retry-after": "9", ...window }, body }, NOW)).toBe(350);
    expect(waitHint({ headers: { "retry-after": "9", ...window }, body }, NOW)).toBe(9000);
  });

  it("then the body", () => {
    expect(waitHint({ headers: window, body }, NOW)).toBe(1500);
    expect(waitHint({ headers: undefined, body }, NOW)).toBe(1500);
  });

  it("then an exhausted window, as the time one slot frees", () => {
    expect(waitHint({ headers: window, body: { error: { message: "Rate limit reached." } } }, NOW)).toBe(3000);
  });

  it("is undefined when nothing says how long", () => {
    expect(waitHint({ headers: {}, body: undefined }, NOW)).toBeUndefined();
    expect(waitHint({ headers: undefined, body: "Too Many Requests" }, NOW)).toBeUndefined();
  });

  it("reads an HTTP-date against the response's date header", () => {
    expect(waitHint({ headers: { date: DATE, "retry-after": "Mon, 01 Jan 2024 00:00:42 GMT" }, body: undefined }, NOW + 5000)).toBe(42_000);
  });

  it("falls through an invalid retry-after to the body", () => {
    expect(waitHint({ headers: { "retry-after": "5m" }, body }, NOW)).toBe(1500);
  });
});

describe("preemptiveDelay", () => {
  it("cools a key whose requests budget is spent until one slot frees", () => {
    const headers = { "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m0s" };
    expect(preemptiveDelay(headers, NOW)).toBe(1000);
  });

  it("takes the latest slot when several windows are spent", () => {
    const headers = {
      date: DATE,
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1m0s",
      "anthropic-ratelimit-tokens-limit": "10",
      "anthropic-ratelimit-tokens-remaining": "0",
      "anthropic-ratelimit-tokens-reset": "2024-01-01T00:00:30Z",
    };
    expect(preemptiveDelay(headers, NOW)).toBe(3000);
  });

  it("honours a retry-after on a success", () => {
    expect(preemptiveDelay({ "retry-after": "2" }, NOW)).toBe(2000);
  });

  it("is undefined when the budget is not spent, the reset has passed, or there are no headers", () => {
    expect(preemptiveDelay({ "x-ratelimit-remaining-requests": "1", "x-ratelimit-reset-requests": "1s" }, NOW)).toBeUndefined();
    expect(preemptiveDelay({ "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "0s" }, NOW)).toBeUndefined();
    const past = { date: DATE, "anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": "2023-12-31T23:59:00Z" };
    expect(preemptiveDelay(past, NOW)).toBeUndefined();
    expect(preemptiveDelay({ "x-ratelimit-remaining-requests": "0" }, NOW)).toBeUndefined();
    expect(preemptiveDelay(undefined, NOW)).toBeUndefined();
    expect(preemptiveDelay({}, NOW)).toBeUndefined();
  });
});

describe("the clock", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("defaults now to Date.now() for date headers", () => {
    vi.useFakeTimers({ now: NOW, toFake: ["Date"] });
    const headers = { "retry-after": "Mon, 01 Jan 2024 00:00:10 GMT" };
    expect(waitHint({ headers, body: undefined })).toBe(10_000);
    expect(defaultVerdict(facts(429, headers), QUOTA_COOLDOWN_MS)).toEqual(rateLimit(10_000));
    expect(preemptiveDelay(headers)).toBe(10_000);
  });
});

describe("bad input never throws", () => {
  const throwingGetters = Object.defineProperties(
    {},
    {
      error: { enumerable: true, get: () => { throw new Error("error getter"); } },
      type: { enumerable: true, get: () => { throw new Error("type getter"); } },
      "retry-after": { enumerable: true, get: () => { throw new Error("header getter"); } },
    },
  );
  const revocable = Proxy.revocable({}, {});
  revocable.revoke();
  const revoked: object = revocable.proxy;
  const trapAll = new Proxy(
    {},
    {
      get: () => { throw new Error("get trap"); },
      ownKeys: () => { throw new Error("ownKeys trap"); },
      has: () => { throw new Error("has trap"); },
      getPrototypeOf: () => { throw new Error("getPrototypeOf trap"); },
    },
  );
  const circular: Record<string, unknown> = { type: "error" };
  circular.error = circular;
  const bodies: [string, unknown][] = [
    ["text that is not JSON", "<html><body>502 Bad Gateway</body></html>"],
    ["an empty body", ""],
    ["no body", undefined],
    ["null", null],
    ["a number", 42],
    ["getters that throw", throwingGetters],
    ["a revoked Proxy", revoked],
    ["a Proxy that throws from every trap", trapAll],
    ["an array holding a revoked Proxy", [revoked, { error: revoked }]],
    ["a circular body", circular],
    ["nested deeper than the stack", Array.from({ length: 100_000 }).reduce<unknown>((inner) => ({ error: inner }), {})],
  ];

  it.each(bodies)("a body that is %s: judged by status and headers", (_, body) => {
    expect(verdictOf(429, { "retry-after": "3" }, body)).toEqual(rateLimit(3000));
    expect(verdictOf(401, {}, body)).toEqual({ type: "blocked", reason: "auth" });
    expect(verdictOf(400, {}, body)).toEqual({ type: "pass" });
    expect(waitHint({ headers: undefined, body }, NOW)).toBeUndefined();
  });

  it.each([
    ["getters that throw", throwingGetters],
    ["a revoked Proxy", revoked],
    ["a Proxy that throws from every trap", trapAll],
    ["a get that throws", { get: () => { throw new Error("get"); } }],
    ["a string", "retry-after: 3"],
  ])("headers that are %s: read as no headers", (_, headers) => {
    expect(verdictOf(429, headers as HeadersLike)).toEqual(rateLimit(undefined));
    expect(verdictOf(503, headers as HeadersLike)).toEqual({ type: "fault" });
    expect(preemptiveDelay(headers as HeadersLike, NOW)).toBeUndefined();
  });

  it("a huge text body is read without throwing", () => {
    const huge = "x".repeat(1_000_000) + " Please try again in 2s.";
    expect(verdictOf(429, {}, huge)).toEqual(rateLimit(2000));
  });
});
