import { afterEach, describe, expect, it } from "vitest";
import { goDuration, mulberry32, startMockUpstream, type MockUpstream, type MockUpstreamOptions } from "../examples/mock-upstream.js";
import { parseDuration, parseRetryAfter } from "../src/index.js";
import { manualClock } from "./helpers/fixtures.js";

const KEY_A = "sk-mock-AAAA1111bbbb2222cccc";
const KEY_B = "sk-mock-BBBB3333dddd4444eeee";
const REVOKED = "sk-mock-REVOKED5555ffff6666";

/** A clock the test moves by hand, for the rate-limit windows. */
const running: MockUpstream[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((upstream) => upstream.close()));
});

async function start(options: Partial<MockUpstreamOptions> = {}) {
  const clock = manualClock(10_000);
  const upstream = await startMockUpstream({
    keys: [KEY_A, KEY_B],
    revokedKeys: [REVOKED],
    errorRate: 0,
    slowRate: 0,
    chunkDelayMs: 0,
    now: clock.now,
    ...options,
  });
  running.push(upstream);
  return { upstream, clock };
}

function chat(upstream: MockUpstream, key: string | undefined, body: object = { model: "m", messages: [{ role: "user", content: "hello there" }] }) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  return fetch(`${upstream.url}/v1/chat/completions`, { method: "POST", headers, body: JSON.stringify(body) });
}

/** The JSON payloads of an SSE body, `[DONE]` as the string. */
function events(text: string): unknown[] {
  return text
    .split("\n\n")
    .filter((block) => block.startsWith("data: "))
    .map((block) => block.slice("data: ".length))
    .map((data) => (data === "[DONE]" ? data : JSON.parse(data)));
}

describe("mock upstream: chat completions", () => {
  it("answers a chat completion in OpenAI's shape, echoing the last user message", async () => {
    const { upstream } = await start();
    const response = await chat(upstream, KEY_A);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    const body = (await response.json()) as { object: string; choices: Array<{ message: { role: string; content: string }; finish_reason: string }> };
    expect(body.object).toBe("chat.completion");
    expect(body.choices[0]!.message).toMatchObject({ role: "assistant", content: "You said: hello there" });
    expect(body.choices[0]!.finish_reason).toBe("stop");
  });

  it("streams server-sent events with several chunks, then data: [DONE]", async () => {
    const { upstream } = await start();
    const response = await chat(upstream, KEY_A, { model: "m", stream: true, messages: [{ role: "user", content: "one two three" }] });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const all = events(await response.text());
    expect(all.at(-1)).toBe("[DONE]");
    const chunks = all.slice(0, -1) as Array<{ object: string; choices: Array<{ delta: { content?: string }; finish_reason: string | null }> }>;
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.every((chunk) => chunk.object === "chat.completion.chunk")).toBe(true);
    expect(chunks.map((chunk) => chunk.choices[0]!.delta.content ?? "").join("")).toBe("You said: one two three");
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("stop");
    expect(upstream.stats().byKey.get(KEY_A)!.streamsCompleted).toBe(1);
  });

  it("answers 400 to a body without messages and 404 to an unknown route", async () => {
    const { upstream } = await start();
    expect((await chat(upstream, KEY_A, { model: "m" })).status).toBe(400);
    const missing = await fetch(`${upstream.url}/v1/nothing`, { headers: { authorization: `Bearer ${KEY_A}` } });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("unknown_url");
  });
});

describe("mock upstream: rate limits", () => {
  it("counts down x-ratelimit-remaining-requests, and tells the token budget too", async () => {
    const { upstream } = await start({ requestsPerWindow: 3, tokensPerWindow: 1_000, windowMs: 1_000 });
    const remaining: Array<string | null> = [];
    const tokens: Array<string | null> = [];
    for (let i = 0; i < 3; i++) {
      const response = await chat(upstream, KEY_A);
      expect(response.status).toBe(200);
      expect(response.headers.get("x-ratelimit-limit-requests")).toBe("3");
      expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("1000");
      remaining.push(response.headers.get("x-ratelimit-remaining-requests"));
      tokens.push(response.headers.get("x-ratelimit-remaining-tokens"));
      const { usage } = (await response.json()) as { usage: { total_tokens: number } };
      // "You said: hello there": 8 prompt tokens and 4 completion tokens a request.
      expect(usage.total_tokens).toBe(12);
    }
    expect(remaining).toEqual(["2", "1", "0"]);
    expect(tokens).toEqual(["988", "976", "964"]);
  });

  it("refills continuously: one request every windowMs / requestsPerWindow, up to the limit", async () => {
    const { upstream, clock } = await start({ requestsPerWindow: 4, windowMs: 1_000 });
    for (let i = 0; i < 4; i++) expect((await chat(upstream, KEY_A)).status).toBe(200);
    expect((await chat(upstream, KEY_A)).status).toBe(429);
    clock.advance(249);
    expect((await chat(upstream, KEY_A)).status).toBe(429);
    clock.advance(1);
    const again = await chat(upstream, KEY_A);
    expect(again.status).toBe(200);
    expect(again.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    // The whole budget is back a window after it was spent, no more than the limit.
    clock.advance(10_000);
    const full = await chat(upstream, KEY_A);
    expect(full.headers.get("x-ratelimit-remaining-requests")).toBe("3");
    expect(full.headers.get("x-ratelimit-reset-requests")).toBe("250ms");
  });

  it("answers 429 when spent, with retry-after, retry-after-ms and x-ratelimit-* headers that agree", async () => {
    const { upstream, clock } = await start({ requestsPerWindow: 2, windowMs: 2_000 });
    await (await chat(upstream, KEY_A)).text();
    clock.advance(500);
    await (await chat(upstream, KEY_A)).text();
    clock.advance(300);
    const limited = await chat(upstream, KEY_A);
    expect(limited.status).toBe(429);
    // 2 - 1 + 0.5 - 1 + 0.3 = 0.8 requests left: one more in 200 ms, all 2 in 1.2 s.
    expect(limited.headers.get("retry-after")).toBe("1");
    expect(limited.headers.get("retry-after-ms")).toBe("200");
    expect(limited.headers.get("x-ratelimit-limit-requests")).toBe("2");
    expect(limited.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    expect(limited.headers.get("x-ratelimit-reset-requests")).toBe("1.2s");
    expect(parseDuration(limited.headers.get("x-ratelimit-reset-requests"))).toBe(1_200);
    // The library reads the wait from retry-after-ms; without it and retry-after, it reads the spent
    // budget as the time one slot frees, reset / limit: never shorter than the real wait.
    expect(parseRetryAfter(limited.headers)).toBe(200);
    const withoutMs = new Headers(limited.headers);
    withoutMs.delete("retry-after-ms");
    withoutMs.delete("retry-after");
    expect(parseRetryAfter(withoutMs)).toBe(600);
    withoutMs.delete("x-ratelimit-limit-requests");
    expect(parseRetryAfter(withoutMs)).toBe(1_200);
    const body = (await limited.json()) as { error: { code: string; type: string; message: string } };
    expect(body.error).toMatchObject({ code: "rate_limit_exceeded", type: "requests" });
    expect(body.error.message).toContain("Please try again in 200ms.");
  });

  it("never has a request wait for less than the pre-emptive cooldown or the 429's retry-after-ms says", async () => {
    // Random pauses between requests: after a success that leaves nothing (remaining 0), the key's
    // next slot is free once the pre-emptive delay the core reads (parseRetryAfter of a success) has
    // passed; after a 429, once its retry-after-ms has.
    const { upstream, clock } = await start({ requestsPerWindow: 7, windowMs: 3_000 });
    const random = mulberry32(11);
    let checked = 0;
    for (let i = 0; i < 150; i++) {
      const response = await chat(upstream, KEY_A);
      await response.text();
      const waitMs =
        response.status === 429
          ? Number(response.headers.get("retry-after-ms"))
          : response.headers.get("x-ratelimit-remaining-requests") === "0"
            ? parseRetryAfter(response.headers)
            : undefined;
      if (waitMs !== undefined) {
        clock.advance(Math.ceil(waitMs));
        const next = await chat(upstream, KEY_A);
        expect(next.status).toBe(200);
        await next.text();
        checked++;
      }
      clock.advance(Math.floor(random() * 400));
    }
    expect(checked).toBeGreaterThan(20);
  });

  it("answers 429 of type tokens when the token budget is short", async () => {
    const { upstream } = await start({ tokensPerWindow: 20, windowMs: 1_000 });
    expect((await chat(upstream, KEY_A)).status).toBe(200);
    const limited = await chat(upstream, KEY_A);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("x-ratelimit-remaining-tokens")).toBe("8");
    expect(limited.headers.get("x-ratelimit-remaining-requests")).not.toBe("0");
    // 12 tokens needed, 8 left, 20 a second: 200 ms.
    expect(limited.headers.get("retry-after-ms")).toBe("200");
    expect(((await limited.json()) as { error: { type: string } }).error.type).toBe("tokens");
  });

  it("keeps budgets per key and per model: one spent leaves the others alone", async () => {
    const { upstream } = await start({ requestsPerWindow: 1 });
    const model = (name: string) => ({ model: name, messages: [{ role: "user", content: "hi" }] });
    expect((await chat(upstream, KEY_A, model("big"))).status).toBe(200);
    expect((await chat(upstream, KEY_A, model("big"))).status).toBe(429);
    expect((await chat(upstream, KEY_A, model("small"))).status).toBe(200);
    expect((await chat(upstream, KEY_B, model("big"))).status).toBe(200);
  });

  it("scales a key's limits by its keyLimitFactors entry, as a usage tier does", async () => {
    const { upstream } = await start({ requestsPerWindow: 10, tokensPerWindow: 100, modelLimits: { big: { requestsPerWindow: 2 } }, keyLimitFactors: { [KEY_A]: 0.25, [KEY_B]: 3 } });
    const limits = async (key: string, model: string) => {
      const response = await chat(upstream, key, { model, messages: [] });
      await response.text();
      return [response.headers.get("x-ratelimit-limit-requests"), response.headers.get("x-ratelimit-limit-tokens")];
    };
    expect(await limits(KEY_A, "m")).toEqual(["3", "25"]);
    expect(await limits(KEY_B, "m")).toEqual(["30", "300"]);
    // Never below one request.
    expect(await limits(KEY_A, "big")).toEqual(["1", "25"]);
  });

  it("gives the models named in modelLimits limits of their own", async () => {
    const { upstream } = await start({ requestsPerWindow: 5, modelLimits: { big: { requestsPerWindow: 1 } } });
    const big = await chat(upstream, KEY_A, { model: "big", messages: [] });
    expect(big.headers.get("x-ratelimit-limit-requests")).toBe("1");
    expect((await chat(upstream, KEY_A, { model: "big", messages: [] })).status).toBe(429);
    const other = await chat(upstream, KEY_A, { model: "other", messages: [] });
    expect(other.headers.get("x-ratelimit-limit-requests")).toBe("5");
  });
});

describe("mock upstream: fixed windows (refill: window)", () => {
  it("gives the whole budget back at once, windowMs after the window's first request", async () => {
    const { upstream, clock } = await start({ requestsPerWindow: 2, windowMs: 1_000, refill: "window" });
    expect((await chat(upstream, KEY_A)).headers.get("x-ratelimit-reset-requests")).toBe("1s");
    clock.advance(400);
    expect((await chat(upstream, KEY_A)).status).toBe(200);
    const limited = await chat(upstream, KEY_A);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after-ms")).toBe("600");
    expect(limited.headers.get("x-ratelimit-reset-requests")).toBe("600ms");
    clock.advance(599);
    expect((await chat(upstream, KEY_A)).status).toBe(429);
    clock.advance(1);
    const again = await chat(upstream, KEY_A);
    expect(again.status).toBe(200);
    expect(again.headers.get("x-ratelimit-remaining-requests")).toBe("1");
  });

  it("throttles until the given time", async () => {
    const { upstream, clock } = await start({ requestsPerWindow: 5, refill: "window" });
    upstream.throttle(KEY_A, 3_000);
    expect((await chat(upstream, KEY_A)).headers.get("retry-after-ms")).toBe("3000");
    clock.advance(3_000);
    expect((await chat(upstream, KEY_A)).status).toBe(200);
  });
});

describe("mock upstream: changes while it runs", () => {
  it("throttle(): a key's requests get 429s for that long, for every model or one", async () => {
    const { upstream, clock } = await start({ requestsPerWindow: 10, windowMs: 1_000 });
    upstream.throttle(KEY_A, 5_000);
    const limited = await chat(upstream, KEY_A);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after-ms")).toBe("5000");
    expect((await chat(upstream, KEY_A, { model: "other", messages: [] })).status).toBe(429);
    expect((await chat(upstream, KEY_B)).status).toBe(200);
    clock.advance(5_000);
    expect((await chat(upstream, KEY_A)).status).toBe(200);

    upstream.throttle(KEY_B, 2_000, "m");
    expect((await chat(upstream, KEY_B)).status).toBe(429);
    expect((await chat(upstream, KEY_B, { model: "other", messages: [] })).status).toBe(200);
  });

  it("revoke(): a key that worked gets the 401 of a revoked key from then on", async () => {
    const { upstream } = await start();
    expect((await chat(upstream, KEY_B)).status).toBe(200);
    upstream.revoke(KEY_B);
    const refused = await chat(upstream, KEY_B);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toBe("The API key provided has been revoked.");
    expect((await chat(upstream, KEY_A)).status).toBe(200);
  });
});

describe("mock upstream: keys", () => {
  it("answers 401 with an OpenAI-style invalid_api_key body to a revoked key, an unknown key and no key", async () => {
    const { upstream } = await start();
    for (const key of [REVOKED, "sk-mock-unknown-0000000000", undefined]) {
      const response = await chat(upstream, key);
      expect(response.status).toBe(401);
      const body = (await response.json()) as { error: { code: string; type: string; message: string } };
      expect(body.error).toMatchObject({ code: "invalid_api_key", type: "invalid_request_error" });
      if (key !== undefined) expect(body.error.message).not.toContain(key);
    }
    // An unknown key is echoed as OpenAI does it: its middle masked.
    const unknown = await (await chat(upstream, "sk-mock-unknown-0000000000")).json();
    expect((unknown as { error: { message: string } }).error.message).toBe(
      "Incorrect API key provided: sk-mock***************0000. You can find your API key at https://platform.openai.com/account/api-keys.",
    );
    const stats = upstream.stats();
    expect(stats.byKey.get(REVOKED)).toMatchObject({ requests: 1, unauthorized: 1, served: 0 });
    expect(stats.total).toMatchObject({ requests: 4, unauthorized: 4, served: 0 });
  });
});

describe("mock upstream: server errors", () => {
  it("answers 500 or 503 to every admitted request at errorRate 1, and counts them", async () => {
    const { upstream } = await start({ errorRate: 1 });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await chat(upstream, KEY_A)).status);
    expect(statuses.every((status) => status === 500 || status === 503)).toBe(true);
    expect(upstream.stats().byKey.get(KEY_A)).toMatchObject({ requests: 8, serverErrors: 8, served: 0 });
  });

  it("draws the same errors from the same seed, and none at errorRate 0", async () => {
    const run = async (seed: number, errorRate: number) => {
      const { upstream } = await start({ errorRate, seed, requestsPerWindow: 100 });
      const statuses: number[] = [];
      for (let i = 0; i < 30; i++) statuses.push((await chat(upstream, KEY_A)).status);
      return statuses;
    };
    const first = await run(42, 0.3);
    expect(await run(42, 0.3)).toEqual(first);
    expect(first.some((status) => status >= 500)).toBe(true);
    expect(first.some((status) => status === 200)).toBe(true);
    expect((await run(42, 0)).every((status) => status === 200)).toBe(true);
  });

  it("still answers when a response is slow", async () => {
    const { upstream } = await start({ slowRate: 1, slowMs: 5 });
    expect((await chat(upstream, KEY_A)).status).toBe(200);
  });
});

describe("mock upstream: counters", () => {
  it("counts requests, served, 429s, 401s and 5xx per key and in total", async () => {
    const { upstream } = await start({ requestsPerWindow: 2 });
    for (let i = 0; i < 3; i++) await (await chat(upstream, KEY_A)).text();
    await (await chat(upstream, KEY_B)).text();
    await (await chat(upstream, REVOKED)).text();
    const stats = upstream.stats();
    expect(stats.byKey.get(KEY_A)).toMatchObject({ requests: 3, served: 2, rateLimited: 1, unauthorized: 0, serverErrors: 0 });
    expect(stats.byKey.get(KEY_B)).toMatchObject({ requests: 1, served: 1, rateLimited: 0 });
    expect(stats.total).toMatchObject({ requests: 5, served: 3, rateLimited: 1, unauthorized: 1, serverErrors: 0 });
    // A copy: changing it changes nothing in the mock.
    stats.total.requests = 99;
    expect(upstream.stats().total.requests).toBe(5);
  });

  it("rejects options out of range", async () => {
    await expect(startMockUpstream({ keys: [KEY_A], requestsPerWindow: 0 })).rejects.toThrow(RangeError);
    await expect(startMockUpstream({ keys: [KEY_A], errorRate: 2 })).rejects.toThrow(RangeError);
    await expect(startMockUpstream({ keys: [KEY_A], tokensPerWindow: 1.5 })).rejects.toThrow(/tokensPerWindow/);
    await expect(startMockUpstream({ keys: [KEY_A], windowMs: 0 })).rejects.toThrow(/windowMs/);
    await expect(startMockUpstream({ keys: [KEY_A], refill: "sometimes" as never })).rejects.toThrow(/refill/);
    await expect(startMockUpstream({ keys: [KEY_A], keyLimitFactors: { [KEY_A]: 0 } })).rejects.toThrow(/keyLimitFactors/);
    await expect(startMockUpstream({ keys: [KEY_A], modelLimits: { big: { requestsPerWindow: 0 } } })).rejects.toThrow(/modelLimits\["big"\]/);
  });
});

describe("mock upstream: helpers", () => {
  it("formats durations as Go does", () => {
    expect(goDuration(350)).toBe("350ms");
    expect(goDuration(1_200)).toBe("1.2s");
    expect(goDuration(90_000)).toBe("1m30s");
    // Rounded up to the millisecond, so that a wait read from it is never short.
    expect(goDuration(1_234.2)).toBe("1.235s");
    expect(goDuration(0.2)).toBe("1ms");
    for (const ms of [1, 350, 1_200, 59_999, 90_000]) expect(parseDuration(goDuration(ms))).toBe(ms);
  });

  it("draws the same numbers from the same seed", () => {
    const a = mulberry32(5);
    const b = mulberry32(5);
    const drawn = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(drawn);
    expect(drawn.every((value) => value >= 0 && value < 1)).toBe(true);
  });
});
