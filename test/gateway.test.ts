import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import OpenAI from "openai";
import { afterEach, describe, expect, it, vi } from "vitest";
import { main, parseKeysFile, startGateway, type Gateway, type GatewayOptions } from "../examples/gateway.js";
import { startMockUpstream, type MockUpstream, type MockUpstreamOptions } from "../examples/mock-upstream.js";
import { listen } from "../examples/program.js";
import { CredentialRouter, fingerprint } from "../src/index.js";
import { manualClock } from "./helpers/fixtures.js";

// Each test starts its own upstream and gateway, so that it passes alone and in any order. Waits for
// an event are bounded by this, which a loaded machine never comes near.
vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 });
/** How long `vi.waitFor` may poll for something that happens within milliseconds on an idle machine. */
const EVENTUALLY = { timeout: 20_000, interval: 5 };

const TOKEN = "gateway-client-token-0123456789";
const KEY_A = "sk-test-AAAA1111bbbb2222cccc";
const KEY_B = "sk-test-BBBB3333dddd4444eeee";
const KEY_C = "sk-test-CCCC5555ffff6666gggg";
const REVOKED = "sk-test-REVOKED777hhhh8888";
const SECRETS = [KEY_A, KEY_B, KEY_C, REVOKED, TOKEN];

/** Every server the current test started, closed after it. */
const running: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

/** Log lines as they arrive, and a way to wait for one. */
class Logs {
  readonly lines: string[] = [];
  #waiting: Array<{ matches: (line: string) => boolean; resolve: (line: string) => void }> = [];

  readonly push = (line: string): void => {
    this.lines.push(line);
    for (const waiter of this.#waiting.filter(({ matches }) => matches(line))) {
      this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  };

  /** The first line (logged already or to come) that `matches`. */
  line(matches: (line: string) => boolean): Promise<string> {
    const found = this.lines.find(matches);
    return found !== undefined ? Promise.resolve(found) : new Promise((resolve) => this.#waiting.push({ matches, resolve }));
  }

  text(): string {
    return this.lines.join("\n");
  }
}

/** A mock upstream (no random errors, no delays unless asked) and a gateway in front of it. */
async function setup(
  upstreamOptions: Partial<MockUpstreamOptions> = {},
  gatewayOptions: Partial<GatewayOptions> = {},
): Promise<{ upstream: MockUpstream; gateway: Gateway; logs: Logs }> {
  const upstream = await startMockUpstream({
    keys: [KEY_A, KEY_B, KEY_C],
    revokedKeys: [REVOKED],
    errorRate: 0,
    slowRate: 0,
    chunkDelayMs: 0,
    now: manualClock(10_000).now,
    ...upstreamOptions,
  });
  running.push(upstream);
  const logs = new Logs();
  const options: GatewayOptions = {
    upstream: upstream.url,
    keys: [KEY_A, KEY_B, KEY_C],
    clientToken: TOKEN,
    log: logs.push,
    logRequests: true,
    ...gatewayOptions,
  };
  // The first ready key, always: each test knows which key a request goes to.
  if (!(options.keys instanceof CredentialRouter)) options.routerOptions ??= { strategy: { type: "fill-first" } };
  const gateway = await startGateway(options);
  running.push(gateway);
  return { upstream, gateway, logs };
}

/**
 * Mock options that hold a stream before its content chunk `index` until `release()`; `reached`
 * resolves when a stream gets there.
 */
function holdStream(index = 1) {
  let reached!: () => void;
  const hold = {
    reached: new Promise<void>((resolve) => (reached = resolve)),
    release: () => {},
    options: {
      beforeChunk: async (at: number) => {
        if (at !== index) return;
        const released = new Promise<void>((resolve) => (hold.release = resolve));
        reached();
        await released;
      },
    } satisfies Partial<MockUpstreamOptions>,
  };
  return hold;
}

function chat(
  gateway: Gateway,
  body: object = { model: "m", messages: [{ role: "user", content: "hello" }] },
  token: string | null = TOKEN,
  signal?: AbortSignal,
) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return fetch(`${gateway.url}/v1/chat/completions`, { method: "POST", headers, body: JSON.stringify(body), signal: signal ?? null });
}

/** A GET with the path sent as written (fetch would resolve dot segments before sending). */
function rawGet(url: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request(`${url}${path}`, { path, headers: { authorization: `Bearer ${TOKEN}` } }, (incoming) => {
      incoming.resume();
      resolve(incoming.statusCode ?? 0);
    });
    outgoing.on("error", reject);
    outgoing.end();
  });
}

/**
 * An upstream of the test's own making, for what the mock does not do (hang, set cookies, echo the
 * key); it records the headers of each request it gets.
 */
async function startFakeUpstream(handle: (request: IncomingMessage, response: ServerResponse) => void) {
  const received: IncomingHttpHeaders[] = [];
  const targets: string[] = [];
  const server = createServer((incoming, response) => {
    received.push(incoming.headers);
    targets.push(incoming.url ?? "");
    incoming.resume();
    handle(incoming, response);
  });
  const address = await listen(server, 0, "127.0.0.1");
  running.push({
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
  return { url: `http://127.0.0.1:${address.port}`, received, targets };
}

/** The bearer token a request to a fake upstream carried. */
const bearer = (incoming: IncomingMessage) => incoming.headers.authorization?.replace(/^Bearer /, "") ?? "";

/** A request through the gateway with exactly these headers; the answer's raw headers and text. */
function rawRequest(url: string, path: string, headers: Record<string, string>, body = "{}"): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(`${url}${path}`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, ...headers } }, (incoming) => {
      let text = "";
      incoming.setEncoding("utf8");
      incoming.on("data", (chunk: string) => (text += chunk));
      incoming.on("end", () => resolve({ status: incoming.statusCode ?? 0, headers: incoming.headers, text }));
      incoming.on("error", reject);
    });
    outgoing.on("error", reject);
    outgoing.end(body);
  });
}

function expectNoSecret(text: string) {
  for (const secret of SECRETS) expect(text).not.toContain(secret);
}

describe("gateway: client token", () => {
  it("answers 401 without a token, with a wrong one, or with another scheme, and never calls the upstream", async () => {
    const { upstream, gateway, logs } = await setup();
    const attempts = [
      chat(gateway, undefined, null),
      chat(gateway, undefined, "wrong-token"),
      chat(gateway, undefined, `${TOKEN}x`),
      chat(gateway, undefined, ""),
      fetch(`${gateway.url}/v1/chat/completions`, { method: "POST", headers: { authorization: `Basic ${TOKEN}` }, body: "{}" }),
      fetch(`${gateway.url}/keys`),
      fetch(`${gateway.url}/v1/models`, { headers: { authorization: "Bearer nope" } }),
    ];
    for (const response of await Promise.all(attempts)) {
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/);
      const body = (await response.json()) as { error: { code: string } };
      expect(body.error.code).toBe("invalid_gateway_token");
    }
    expect(upstream.stats().total.requests).toBe(0);
    expectNoSecret(logs.text());
  });

  it("lets the right token through, whatever the case of the scheme", async () => {
    const { upstream, gateway } = await setup();
    const response = await fetch(`${gateway.url}/v1/models`, { headers: { authorization: `bearer ${TOKEN}` } });
    expect(response.status).toBe(200);
    expect(upstream.stats().total.requests).toBe(1);
    // Once a token went through, near misses still do not, and the right spellings still do.
    for (const [authorization, status] of [
      [`bearer ${TOKEN}x`, 401],
      [`bearer ${TOKEN.slice(0, -1)}`, 401],
      [`Bearer ${TOKEN}`, 200],
      [`bearer ${TOKEN}`, 200],
      [`bearer  ${TOKEN} `, 200],
      [`Basic ${TOKEN}`, 401],
    ] as const) {
      const again = await fetch(`${gateway.url}/v1/models`, { headers: { authorization } });
      await again.text();
      expect([authorization, again.status]).toEqual([authorization, status]);
    }
    expect(upstream.stats().total.requests).toBe(4);
  });

  it("forwards the path and query under the upstream's base path, dot segments resolved", async () => {
    const upstream = await startFakeUpstream((_incoming, response) => response.end("{}"));
    const { gateway } = await setup({}, { upstream: `${upstream.url}/openai/` });
    for (const path of ["/v1/models", "/v1/models?limit=2&after=model-x", "/v1/files/file-abc.jsonl", "/v1/a/./b/../c?q=%20x", "/v1/x?q=a'b"]) {
      expect(await rawGet(gateway.url, path)).toBe(200);
    }
    expect(upstream.targets).toEqual([
      "/openai/v1/models",
      "/openai/v1/models?limit=2&after=model-x",
      "/openai/v1/files/file-abc.jsonl",
      "/openai/v1/a/c?q=%20x",
      "/openai/v1/x?q=a%27b",
    ]);
  });

  it("answers 404 outside /v1 and /keys, and does not let dot segments leave /v1", async () => {
    const { upstream, gateway } = await setup();
    expect(await rawGet(gateway.url, "/v1/../admin")).toBe(404);
    expect(await rawGet(gateway.url, "/v1/%2e%2e/admin")).toBe(404);
    expect(await rawGet(gateway.url, "/")).toBe(404);
    expect(upstream.stats().total.requests).toBe(0);
  });
});

describe("gateway: with the official OpenAI SDK as the client", () => {
  async function start() {
    const { upstream, gateway } = await setup();
    return { upstream, client: new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: TOKEN, maxRetries: 0 }) };
  }

  it("gets a chat completion", async () => {
    const { upstream, client } = await start();
    const completion = await client.chat.completions.create({ model: "mock-model", messages: [{ role: "user", content: "hello gateway" }] });
    expect(completion.choices[0]!.message.content).toBe("You said: hello gateway");
    // The upstream saw the key, not the client's token.
    expect(upstream.stats().byKey.get(KEY_A)!.served).toBe(1);
    expect(upstream.stats().byKey.has(TOKEN)).toBe(false);
  });

  it("streams a chat completion: several chunks that join into the answer", async () => {
    const { upstream, client } = await start();
    const stream = await client.chat.completions.create({
      model: "mock-model",
      messages: [{ role: "user", content: "stream this to me please" }],
      stream: true,
    });
    const parts: string[] = [];
    for await (const chunk of stream) parts.push(chunk.choices[0]?.delta.content ?? "");
    expect(parts.filter(Boolean).length).toBeGreaterThan(3);
    expect(parts.join("")).toBe("You said: stream this to me please");
    expect(upstream.stats().total.streamsCompleted).toBe(1);
  });

  it("raises the SDK's APIError with the upstream's status for a request the upstream refuses", async () => {
    const { client } = await start();
    const error = await client.chat.completions.create({ model: "m", messages: "nope" as never }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
  });
});

describe("gateway: rate limits", () => {
  it("moves to the next key on a 429 and cools the first one down for the upstream's Retry-After", async () => {
    // Pre-emptive cooldowns off: this is about the 429 itself (B's success spends B's window).
    const { upstream, gateway } = await setup({ requestsPerWindow: 1, windowMs: 60_000 }, { routerOptions: { strategy: { type: "fill-first" }, preemptive: false } });
    // Use up key A's budget for the model behind the gateway's back: the router still thinks A is ready.
    const body = JSON.stringify({ model: "m", messages: [{ role: "user", content: "hello" }] });
    await (await fetch(`${upstream.url}/v1/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${KEY_A}` }, body })).text();

    const response = await chat(gateway);
    expect(response.status).toBe(200);
    expect(response.headers.get("x-gateway-attempts")).toBe("2");
    await response.text();
    const stats = upstream.stats();
    expect(stats.byKey.get(KEY_A)).toMatchObject({ rateLimited: 1 });
    expect(stats.byKey.get(KEY_B)).toMatchObject({ served: 1 });

    // The mock's next slot is exactly 60 s away (its clock did not move): the cooldown follows it,
    // for the request's model only.
    expect(gateway.router.stateOf(KEY_A)).toEqual({ status: "ready" });
    const state = gateway.router.stateOf(KEY_A, "m");
    expect(state?.status).toBe("cooldown");
    const remainingMs = state?.status === "cooldown" ? state.remainingMs : 0;
    expect(remainingMs).toBeGreaterThan(50_000);
    expect(remainingMs).toBeLessThanOrEqual(60_000);
    expect(gateway.router.stateOf(KEY_B)).toEqual({ status: "ready" });
  });

  it("forwards the last key's 429 as it is when every key is rate-limited", async () => {
    const { gateway } = await setup({ requestsPerWindow: 1, windowMs: 60_000 }, { keys: [KEY_A], routerOptions: { strategy: { type: "fill-first" }, preemptive: false } });
    expect((await chat(gateway)).status).toBe(200);
    const limited = await chat(gateway);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("60");
    expect(limited.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe("rate_limit_exceeded");
  });

  it("answers 503 with a Retry-After in whole seconds when no key is left, without calling the upstream", async () => {
    const { upstream, gateway, logs } = await setup(
      { requestsPerWindow: 1, windowMs: 60_000 },
      { keys: [KEY_A, KEY_B], routerOptions: { strategy: { type: "fill-first" }, preemptive: false } },
    );
    expect((await chat(gateway)).status).toBe(200); // A
    expect((await chat(gateway)).status).toBe(200); // A 429 (cools), then B
    const before = upstream.stats().total.requests;
    // B is still ready to the router; its 429 is the last attempt's answer, forwarded.
    expect((await chat(gateway)).status).toBe(429);
    expect(upstream.stats().total.requests).toBe(before + 1);

    const busy = await chat(gateway);
    expect(busy.status).toBe(503);
    const retryAfter = busy.headers.get("retry-after");
    expect(retryAfter).toMatch(/^\d+$/);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(50);
    expect(Number(retryAfter)).toBeLessThanOrEqual(60);
    const body = (await busy.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("no_key_available");
    expect(upstream.stats().total.requests).toBe(before + 1);
    expectNoSecret(JSON.stringify(body) + logs.text());
  });
});

describe("gateway: models (scopes)", () => {
  const body = (model: unknown, extra: object = {}) => ({ messages: [{ role: "user", content: "hi" }], ...extra, model });

  it("keeps a 429 to the request's model: the key goes on serving the other models", async () => {
    const { upstream, gateway } = await setup(
      { requestsPerWindow: 1, windowMs: 60_000 },
      { keys: [KEY_A, KEY_B], routerOptions: { strategy: { type: "fill-first" }, preemptive: false } },
    );
    upstream.throttle(KEY_A, 60_000, "big");
    const big = await chat(gateway, { model: "big", messages: [] });
    expect(big.status).toBe(200);
    expect(big.headers.get("x-gateway-attempts")).toBe("2");
    await big.text();
    expect(gateway.router.stateOf(KEY_A, "big")?.status).toBe("cooldown");
    // Another model, with "model" not the first field: still key A, in one attempt.
    const small = await chat(gateway, body("small"));
    expect(small.headers.get("x-gateway-attempts")).toBe("1");
    await small.text();
    expect(upstream.stats().byKey.get(KEY_A)).toMatchObject({ served: 1, rateLimited: 1 });
    expect(gateway.router.snapshot()[0]!.scopes).toEqual([{ scope: "big", state: expect.objectContaining({ status: "cooldown" }), reason: "rate_limit" }]);
  });

  it("with scopeByModel false, a 429 for one model takes the key out for every model", async () => {
    const { upstream, gateway } = await setup(
      { requestsPerWindow: 1, windowMs: 60_000 },
      { keys: [KEY_A, KEY_B], scopeByModel: false, routerOptions: { strategy: { type: "fill-first" }, preemptive: false } },
    );
    upstream.throttle(KEY_A, 60_000, "big");
    await (await chat(gateway, { model: "big", messages: [] })).text();
    expect(gateway.router.stateOf(KEY_A)?.status).toBe("cooldown");
    const small = await chat(gateway, body("small"));
    expect(small.status).toBe(200);
    await small.text();
    // Key B served it: key A, which had budget for "small", was out.
    expect(upstream.stats().byKey.get(KEY_A)).toMatchObject({ served: 0, rateLimited: 1 });
    expect(upstream.stats().byKey.get(KEY_B)).toMatchObject({ served: 2 });
  });

  it("routes key-wide when the body names no model at its top level, or one that is not a string of at most 256 characters", async () => {
    const { upstream, gateway } = await setup({}, { keys: [KEY_A, KEY_B], routerOptions: { strategy: { type: "fill-first" }, preemptive: false } });
    const cooled: Array<string | undefined> = [];
    gateway.router.subscribe((event) => {
      if (event.type === "cooldown") cooled.push(event.scope);
    });
    for (const [index, text] of ['{"messages":[]}', '{"messages":[],"metadata":{"model":"big"}}', '{"model":7,"messages":[]}', `{"model":"${"x".repeat(300)}","messages":[]}`].entries()) {
      upstream.throttle(KEY_A, 60_000);
      gateway.router.clearCooldown(KEY_A);
      const answer = await rawRequest(gateway.url, "/v1/chat/completions", { "content-type": "application/json" }, text);
      expect(answer.headers["x-gateway-attempts"], text).toBe("2");
      expect(cooled[index], text).toBeUndefined();
    }
    expect(cooled).toHaveLength(4);
  });
});

describe("gateway: waiting for a key (maxWaitMs)", () => {
  it("waits for a cooling key to come back instead of answering 503", async () => {
    // One hand-moved clock for the mock's windows and the router's cooldowns: when the router finds no
    // key ready, the test moves it past key A's window, so the wait ends at once.
    let time = 10_000;
    const now = () => time;
    const { upstream, gateway } = await setup(
      { requestsPerWindow: 1, windowMs: 60_000, now },
      { keys: [KEY_A, KEY_B], maxWaitMs: 120_000, routerOptions: { strategy: { type: "fill-first" }, now, preemptive: false } },
    );
    expect((await chat(gateway)).status).toBe(200); // A
    expect((await chat(gateway)).status).toBe(200); // A 429, then B
    gateway.router.subscribe((event) => {
      if (event.type === "exhausted") time += 60_000;
    });
    // B answers 429 and A is cooling: the request waits for A, which serves it.
    const waited = await chat(gateway);
    expect(waited.status).toBe(200);
    expect(waited.headers.get("x-gateway-attempts")).toBe("2");
    await waited.text();
    expect(upstream.stats().byKey.get(KEY_A)).toMatchObject({ served: 2, rateLimited: 1 });
    expect(upstream.stats().byKey.get(KEY_B)).toMatchObject({ served: 1, rateLimited: 1 });
  });

  it("stops waiting when the client goes away, and calls the upstream no more", async () => {
    const { upstream, gateway, logs } = await setup({ requestsPerWindow: 1, windowMs: 60_000 }, { keys: [KEY_A, KEY_B], maxWaitMs: 60_000 });
    expect((await chat(gateway)).status).toBe(200); // A
    expect((await chat(gateway)).status).toBe(200); // A 429, then B
    const exhausted = new Promise<void>((resolve) => {
      const stop = gateway.router.subscribe((event) => {
        if (event.type === "exhausted") {
          stop();
          resolve();
        }
      });
    });
    const controller = new AbortController();
    const waiting = chat(gateway, undefined, TOKEN, controller.signal).catch((error: unknown) => error);
    await exhausted; // B answered 429 and no key is left: the request is now waiting for A.
    const before = upstream.stats().total.requests;
    controller.abort();
    expect(await waiting).toBeInstanceOf(Error);
    // The gateway notices the client left (and logs a 499) without a further upstream call.
    await logs.line((line) => line.includes(" 499 "));
    expect(upstream.stats().total.requests).toBe(before);
  });
});

describe("gateway: the client going away", () => {
  it("cancels the upstream call under way, tries no other key and marks none", async () => {
    let upstreamGone!: () => void;
    const cancelled = new Promise<void>((resolve) => (upstreamGone = resolve));
    let arrived!: () => void;
    const called = new Promise<void>((resolve) => (arrived = resolve));
    // Answers nothing; tells when a request arrives and when its connection closes.
    const upstream = await startFakeUpstream((_incoming, response) => {
      response.once("close", upstreamGone);
      arrived();
    });
    const { gateway, logs } = await setup({}, { upstream: upstream.url, keys: [KEY_A, KEY_B] });
    const controller = new AbortController();
    const pending = chat(gateway, undefined, TOKEN, controller.signal).catch((error: unknown) => error);
    await called;
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    await cancelled;
    await logs.line((line) => line.includes(" 499 "));
    expect(upstream.received).toHaveLength(1);
    expect(gateway.router.stateOf(KEY_A)).toEqual({ status: "ready" });
    expect(gateway.router.stateOf(KEY_B)).toEqual({ status: "ready" });
  });
});

describe("gateway: revoked keys", () => {
  it("blocks a key the upstream rejects with 401 and serves the request with the next key", async () => {
    const { upstream, gateway, logs } = await setup({}, { keys: [REVOKED, KEY_A] });
    const response = await chat(gateway);
    expect(response.status).toBe(200);
    expect(response.headers.get("x-gateway-attempts")).toBe("2");
    await response.text();
    expect(gateway.router.stateOf(REVOKED)).toEqual({ status: "blocked" });
    expect(upstream.stats().byKey.get(REVOKED)).toMatchObject({ unauthorized: 1 });

    // It stays out: the next request goes straight to the good key.
    const next = await chat(gateway);
    expect(next.headers.get("x-gateway-attempts")).toBe("1");
    await next.text();
    expect(upstream.stats().byKey.get(REVOKED)).toMatchObject({ requests: 1 });
    expect(logs.lines.some((line) => line.includes("blocked"))).toBe(true);
    expectNoSecret(logs.text());
  });

  it("answers 503 with the blockedRetryAfterMs Retry-After once every key is blocked", async () => {
    const { gateway } = await setup({}, { keys: [REVOKED] });
    expect((await chat(gateway)).status).toBe(401); // the last attempt's answer, forwarded
    const busy = await chat(gateway);
    expect(busy.status).toBe(503);
    expect(busy.headers.get("retry-after")).toBe("60");
    const body = (await busy.json()) as { error: { retry_after_ms: number | null } };
    expect(body.error.retry_after_ms).toBeNull();
  });
});

describe("gateway: GET /keys", () => {
  it("returns the router's snapshot with hints and states, and no key anywhere", async () => {
    const { gateway } = await setup({}, { keys: [KEY_A, KEY_B, REVOKED] });
    gateway.router.markBlocked(REVOKED);
    gateway.router.markErrorWithDelay(KEY_B, 30_000);
    const response = await fetch(`${gateway.url}/keys`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(response.status).toBe(200);
    const text = await response.text();
    expectNoSecret(text);
    const body = JSON.parse(text) as { size: number; nextReadyInMs: number; keys: Array<{ index: number; hint: string; state: { status: string } }> };
    expect(body.size).toBe(3);
    expect(body.nextReadyInMs).toBe(0);
    expect(body.keys.map(({ index, hint, state }) => [index, hint, state.status])).toEqual([
      [0, "sk-t…cccc", "ready"],
      [1, "sk-t…eeee", "cooldown"],
      [2, "sk-t…8888", "blocked"],
    ]);
    // Nor a fingerprint, which a client holding the token could test a guessed key against.
    expect(body.keys.map((row) => Object.keys(row).sort())).toEqual(Array(3).fill(["failures", "hint", "index", "state"]));
    expect(text).not.toContain(fingerprint(KEY_A));
  });

  it("accepts a router made by the caller", async () => {
    const router = new CredentialRouter([KEY_A, KEY_B], { labels: ["primary", "backup"] });
    const { gateway } = await setup({}, { keys: router });
    expect(gateway.router).toBe(router);
    const response = await fetch(`${gateway.url}/keys`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const body = (await response.json()) as { keys: Array<{ label: string }> };
    expect(body.keys.map((key) => key.label)).toEqual(["primary", "backup"]);
  });
});

describe("gateway: streaming", () => {
  it("passes each chunk on as it arrives: the first reaches the client while the upstream is still held", async () => {
    const hold = holdStream(1);
    const { upstream, gateway } = await setup(hold.options);
    const response = await chat(gateway, { model: "m", stream: true, messages: [{ role: "user", content: "alpha beta gamma" }] });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    // Read until the first content chunk ("You said: ") is in: a gateway that buffered would never get
    // here, since the upstream does not finish until released below.
    while (!text.includes('"content":"You ')) {
      const { value, done } = await reader.read();
      expect(done).toBe(false);
      text += decoder.decode(value, { stream: true });
    }
    await hold.reached;
    expect(text).not.toContain("[DONE]");
    expect(upstream.stats().total.streamsCompleted).toBe(0);

    hold.release();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
    expect(upstream.stats().total.streamsCompleted).toBe(1);
  });

  it("passes on a body far larger than the socket buffers whole, however fast the client reads", async () => {
    const piece = Buffer.alloc(64 * 1024);
    const pieces = 128; // 8 MiB
    const upstream = await startFakeUpstream(async (_incoming, response) => {
      response.writeHead(200, { "content-type": "application/octet-stream" });
      for (let index = 0; index < pieces; index++) {
        piece.fill(index % 256);
        if (!response.write(Buffer.from(piece))) await new Promise((resolve) => response.once("drain", resolve));
      }
      response.end();
    });
    const { gateway } = await setup({}, { upstream: upstream.url });
    const response = await chat(gateway);
    expect(response.status).toBe(200);
    // Read with a pause now and then, so that the gateway has to hold the upstream back.
    const reader = response.body!.getReader();
    /** The first byte of each piece, which tells the pieces apart. */
    const received: number[] = [];
    let length = 0;
    for (let read = 0; ; read++) {
      const { value, done } = await reader.read();
      if (done) break;
      for (let offset = (piece.length - (length % piece.length)) % piece.length; offset < value.length; offset += piece.length) received.push(value[offset]!);
      length += value.length;
      if (read % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    expect(length).toBe(pieces * piece.length);
    expect(received).toEqual(Array.from({ length: pieces }, (_, index) => index % 256));
  });

  it("cancels the upstream stream when the client goes away", async () => {
    const hold = holdStream(1);
    const { upstream, gateway } = await setup(hold.options);
    const response = await chat(gateway, { model: "m", stream: true, messages: [{ role: "user", content: "one two three" }] });
    const reader = response.body!.getReader();
    await hold.reached;
    await reader.cancel();
    // The mock counts the abort when its response closes, a moment after the gateway let go.
    await vi.waitFor(() => expect(upstream.stats().total.streamsAborted).toBe(1), EVENTUALLY);
    hold.release();
  });
});

describe("gateway: upstream timeout", () => {
  /** Each key's state and failure count, as a snapshot shows them. */
  const states = (gateway: Gateway) => gateway.router.snapshot().map(({ hint, state, failures }) => ({ hint, status: state.status, failures }));

  /**
   * What the router makes of a 504 from the upstream: a timeout must count against a key just the same
   * (a service fault: whatever the core does with one, cooling the key at once or after a few).
   */
  async function statesAfterA504(keys: string[], answer: (key: string) => number, requests = 1) {
    const upstream = await startFakeUpstream((incoming, response) => {
      response.writeHead(answer(bearer(incoming)), { "content-type": "application/json" });
      response.end("{}");
    });
    const { gateway } = await setup({}, { upstream: upstream.url, keys });
    const statuses: number[] = [];
    for (let index = 0; index < requests; index++) {
      const response = await chat(gateway);
      statuses.push(response.status);
      await response.text();
    }
    return { statuses, states: states(gateway) };
  }

  it("answers 504 when no key's upstream sends its headers within upstreamTimeoutMs, counting it against each key like a 504", async () => {
    // Takes each request and never answers it.
    const hung = await startFakeUpstream(() => {});
    const { gateway, logs } = await setup({}, { upstream: hung.url, keys: [KEY_A, KEY_B], upstreamTimeoutMs: 50 });
    const response = await chat(gateway);
    expect(response.status).toBe(504);
    expect(response.headers.get("x-gateway-attempts")).toBe("2");
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("upstream_timeout");
    expect(hung.received.map((headers) => headers.authorization)).toEqual([`Bearer ${KEY_A}`, `Bearer ${KEY_B}`]);
    expect(states(gateway)).toEqual((await statesAfterA504([KEY_A, KEY_B], () => 504)).states);
    expectNoSecret(JSON.stringify(body) + logs.text());
  });

  it("counts timeouts against a key as 504s, request after request", async () => {
    const hung = await startFakeUpstream(() => {});
    const { gateway } = await setup({}, { upstream: hung.url, keys: [KEY_A], upstreamTimeoutMs: 50 });
    // Enough for a core that cools a key only after a few faults in a row to have done it.
    const statuses: number[] = [];
    for (let index = 0; index < 3; index++) {
      const response = await chat(gateway);
      statuses.push(response.status);
      await response.text();
    }
    const after504s = await statesAfterA504([KEY_A], () => 504, 3);
    // A 504 the gateway makes, or a 503 once the key is out: the same as with the upstream's 504s.
    expect(statuses).toEqual(after504s.statuses);
    expect(states(gateway)).toEqual(after504s.states);
  });

  it("moves on to the next key when one key's request hangs", async () => {
    const upstream = await startFakeUpstream((incoming, response) => {
      if (bearer(incoming) === KEY_A) return; // hangs
      response.writeHead(200, { "content-type": "application/json" });
      response.end('{"ok":true}');
    });
    // Long enough that key B's prompt answer never runs into it, even on a loaded machine.
    const { gateway } = await setup({}, { upstream: upstream.url, keys: [KEY_A, KEY_B], upstreamTimeoutMs: 1_000 });
    const response = await chat(gateway);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
    expect(response.headers.get("x-gateway-attempts")).toBe("2");
    expect(states(gateway)).toEqual((await statesAfterA504([KEY_A, KEY_B], (key) => (key === KEY_A ? 504 : 200))).states);
    expect(gateway.router.stateOf(KEY_B)).toEqual({ status: "ready" });
  });

  it("cuts a stream that stalls for longer than upstreamTimeoutMs, and cools the key that served it", async () => {
    // Every stream stops after its first content chunk and never goes on.
    const hold = holdStream(1);
    const { gateway } = await setup(hold.options, { upstreamTimeoutMs: 1_000 });
    const response = await chat(gateway, { model: "m", stream: true, messages: [{ role: "user", content: "one two three" }] });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    let text = "";
    const cut = await (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        text += new TextDecoder().decode(value);
      }
    })().catch(() => true);
    expect(cut).toBe(true);
    expect(text).toContain('"content":"You ');
    expect(text).not.toContain("[DONE]");
    // Whichever key served the stream (a loaded machine could time out a key's headers first).
    const cooling = gateway.router.snapshot().filter((row) => row.state.status === "cooldown");
    expect(cooling.length).toBeGreaterThanOrEqual(1);
    // The service failed on that key: reason "server", as for the 5xx the core counts.
    expect(cooling.map((row) => row.reason)).toEqual(cooling.map(() => "server"));
    hold.release();
  });

  it("keeps waiting for a slow upstream by default", async () => {
    const { gateway } = await setup({ slowRate: 1, slowMs: 100 });
    expect((await chat(gateway)).status).toBe(200);
  });
});

describe("gateway: what crosses it", () => {
  it("forwards only the allow-listed request headers: no cookie, credential or account choice of the client's", async () => {
    const upstream = await startFakeUpstream((_incoming, response) => response.end("{}"));
    const { gateway } = await setup({}, { upstream: upstream.url });
    const sent = {
      // What an OpenAI or Anthropic SDK sends, and what providers need: forwarded.
      "content-type": "application/json",
      accept: "application/json",
      "user-agent": "OpenAI/JS 6.49.0",
      "openai-beta": "assistants=v2",
      "anthropic-version": "2023-06-01",
      "anthropic-beta": "prompt-caching-2024-07-31",
      "idempotency-key": "stainless-node-retry-1",
      "x-stainless-retry-count": "0",
      "x-stainless-lang": "js",
      // Credentials, cookies and account choices of the client's: dropped.
      cookie: "session=client-session",
      "x-api-key": "sk-ant-client-own-key-0000",
      "api-key": "azure-client-own-key-0000",
      "anthropic-api-key": "sk-ant-client-own-key-1111",
      "openai-organization": "org-someone-else",
      "openai-project": "proj_someone_else",
      "x-goog-api-key": "goog-client-own-key",
      "proxy-authorization": "Basic Y2xpZW50OnNlY3JldA==",
      "x-forwarded-for": "203.0.113.7",
      "x-anything-else": "dropped",
    };
    const answer = await rawRequest(gateway.url, "/v1/chat/completions", sent);
    expect(answer.status).toBe(200);
    const received = upstream.received[0]!;
    const forwarded = Object.keys(sent).filter((name) => name in received);
    expect(forwarded.sort()).toEqual(
      ["accept", "anthropic-beta", "anthropic-version", "content-type", "idempotency-key", "openai-beta", "user-agent", "x-stainless-lang", "x-stainless-retry-count"].sort(),
    );
    for (const name of forwarded) expect(received[name]).toBe(sent[name as keyof typeof sent]);
    expect(received.authorization).toBe(`Bearer ${KEY_A}`);
  });

  it("never passes the upstream's cookies on to the client", async () => {
    const upstream = await startFakeUpstream((_incoming, response) => {
      response.setHeader("set-cookie", ["__cf_bm=upstream-session; path=/; HttpOnly", "_cfuvid=another; path=/"]);
      response.setHeader("alt-svc", 'h3=":443"; ma=86400');
      response.setHeader("openai-organization", "operator-org");
      response.setHeader("x-request-id", "req_123");
      response.setHeader("content-type", "application/json");
      response.end("{}");
    });
    const { gateway } = await setup({}, { upstream: upstream.url });
    const answer = await rawRequest(gateway.url, "/v1/chat/completions", { "content-type": "application/json" });
    expect(answer.status).toBe(200);
    expect(answer.headers["set-cookie"]).toBeUndefined();
    expect(answer.headers["alt-svc"]).toBeUndefined();
    expect(answer.headers["openai-organization"]).toBeUndefined();
    expect(answer.headers["x-request-id"]).toBe("req_123");
  });

  it("masks the key where the upstream's error body echoes it, whole or partly masked", async () => {
    const upstream = await startFakeUpstream((incoming, response) => {
      const key = bearer(incoming);
      response.writeHead(401, { "content-type": "application/json" });
      // KEY_A is echoed whole, KEY_B the way OpenAI's 401 does it.
      const shown = key === KEY_A ? key : `${key.slice(0, 7)}${"*".repeat(key.length - 11)}${key.slice(-4)}`;
      response.end(JSON.stringify({ error: { message: `Incorrect API key provided: ${shown}. You can find your API key at https://platform.openai.com/account/api-keys.`, type: "invalid_request_error", code: "invalid_api_key" } }));
    });
    for (const [key, hint] of [
      [KEY_A, "sk-t…cccc"],
      [KEY_B, "sk-t…eeee"],
    ] as const) {
      const { gateway } = await setup({}, { upstream: upstream.url, keys: [key] });
      const response = await chat(gateway);
      expect(response.status).toBe(401);
      const text = await response.text();
      expect(Number(response.headers.get("content-length"))).toBe(new TextEncoder().encode(text).length);
      expect(text).not.toContain(key);
      expect(text).not.toContain(key.slice(-8));
      const body = JSON.parse(text) as { error: { message: string; code: string } };
      expect(body.error).toMatchObject({
        code: "invalid_api_key",
        message: `Incorrect API key provided: ${hint}. You can find your API key at https://platform.openai.com/account/api-keys.`,
      });
    }
  });

  it("masks the echo in the mock provider's OpenAI-style 401 for a key it does not know", async () => {
    const unknown = "sk-test-UNKNOWN999iiii0000";
    const { gateway } = await setup({}, { keys: [unknown] });
    const response = await chat(gateway);
    expect(response.status).toBe(401);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toBe("Incorrect API key provided: sk-t…0000. You can find your API key at https://platform.openai.com/account/api-keys.");
  });
});

describe("gateway: options", () => {
  it("rejects an upstreamTimeoutMs that is not a number, or out of range", async () => {
    const base = { upstream: "http://127.0.0.1:9", keys: [KEY_A], clientToken: TOKEN };
    await expect(startGateway({ ...base, upstreamTimeoutMs: "5000" as never })).rejects.toThrow(new TypeError("upstreamTimeoutMs must be a number, received string"));
    for (const value of [-1, Number.NaN, Infinity, 2 ** 31]) {
      await expect(startGateway({ ...base, upstreamTimeoutMs: value })).rejects.toThrow(RangeError);
    }
  });

  it("logs key state changes, and a line per request only with logRequests", async () => {
    const quiet = await setup({}, { keys: [REVOKED, KEY_A], logRequests: false });
    expect((await chat(quiet.gateway)).status).toBe(200);
    expect(quiet.logs.lines).toEqual(["key sk-t…8888 blocked: the upstream rejected it; it stays out until cleared"]);

    const chatty = await setup({}, { keys: [REVOKED, KEY_A], logRequests: true });
    expect((await chat(chatty.gateway)).status).toBe(200);
    expect(chatty.logs.lines).toHaveLength(2);
    expect(chatty.logs.lines[1]).toMatch(/^POST \/v1\/chat\/completions 200 \d+ms attempts=2 key=sk-t…cccc$/);
  });
});

describe("gateway: keys file", () => {
  it("reads one key per line, trimmed, without blank lines or # comments", () => {
    expect(parseKeysFile(`# production keys\n${KEY_A}\n\n   ${KEY_B}  \r\n#${KEY_C}\n`)).toEqual([KEY_A, KEY_B]);
  });
});

describe("gateway: command line", () => {
  const env = { GATEWAY_UPSTREAM: "http://127.0.0.1:9", GATEWAY_KEYS_FILE: "/nonexistent/keys.txt", GATEWAY_CLIENT_TOKEN: TOKEN };

  async function run(argv: string[], variables: Record<string, string>) {
    const errors: string[] = [];
    const spy = vi.spyOn(console, "error").mockImplementation((line: unknown) => void errors.push(String(line)));
    try {
      return { code: await main(argv, variables), errors: errors.join("\n") };
    } finally {
      spy.mockRestore();
    }
  }

  it("reads every flag from its environment variable, naming the variable in a usage error", async () => {
    for (const [variable, flag] of [
      ["GATEWAY_MAX_WAIT_MS", "--max-wait-ms"],
      ["GATEWAY_COOLDOWN_MS", "--cooldown-ms"],
      ["GATEWAY_UPSTREAM_TIMEOUT_MS", "--upstream-timeout-ms"],
      ["GATEWAY_PORT", "--port"],
    ]) {
      const { code, errors } = await run([], { ...env, [variable!]: "abc" });
      expect(code).toBe(2);
      expect(errors).toContain(`${flag} (or ${variable})`);
    }
    // Past what a timer holds.
    const tooLong = await run(["--upstream-timeout-ms", String(2 ** 31)], env);
    expect(tooLong.code).toBe(2);
    expect(tooLong.errors).toContain("--upstream-timeout-ms (or GATEWAY_UPSTREAM_TIMEOUT_MS) must be a number from 0 to 2147483647");
    const logging = await run([], { ...env, GATEWAY_LOG_REQUESTS: "yes please" });
    expect(logging.code).toBe(2);
    expect(logging.errors).toContain("GATEWAY_LOG_REQUESTS must be 1, true, 0 or false");
    const scopes = await run([], { ...env, GATEWAY_MODEL_SCOPES: "off" });
    expect(scopes.code).toBe(2);
    expect(scopes.errors).toContain("GATEWAY_MODEL_SCOPES must be 1, true, 0 or false");
    for (const port of ["abc", "70000", "-1"]) {
      const admin = await run([], { ...env, GATEWAY_ADMIN_PORT: port });
      expect(admin.code).toBe(2);
      expect(admin.errors).toContain("--admin-port (or GATEWAY_ADMIN_PORT) must be an integer from 0 to 65535");
    }
    // Valid values from the environment get as far as reading the keys file.
    const { code, errors } = await run([], {
      ...env,
      GATEWAY_MAX_WAIT_MS: "500",
      GATEWAY_COOLDOWN_MS: "1000",
      GATEWAY_UPSTREAM_TIMEOUT_MS: "30000",
      GATEWAY_LOG_REQUESTS: "1",
      GATEWAY_MODEL_SCOPES: "0",
      GATEWAY_ADMIN_PORT: "0",
    });
    expect(code).toBe(2);
    expect(errors).toContain("cannot read the keys file /nonexistent/keys.txt: ENOENT");
  });

  it("names what is missing, and never echoes the client token", async () => {
    const { code, errors } = await run(["--upstream", "http://127.0.0.1:9"], { GATEWAY_CLIENT_TOKEN: TOKEN });
    expect(code).toBe(2);
    expect(errors).toContain("missing --keys-file");
    expect(errors).not.toContain(TOKEN);
  });
});
