/**
 * A stand-in for an OpenAI-style provider, for the demo and the tests: chat completions (JSON, or
 * server-sent events with `"stream": true`), request and token limits per key and model that refill
 * continuously (token buckets, as OpenAI's limits do), told on every answer by OpenAI's
 * `x-ratelimit-limit-*`, `-remaining-*` and `-reset-*` headers and answered with 429 when spent, one or
 * more revoked keys (401), unknown keys answered 401 with the key echoed partly masked as OpenAI does,
 * occasional 500/503 drawn from a seeded PRNG, and some slow responses. It counts what it did for each
 * key. A test or a demo can revoke a key or throttle it while it runs.
 *
 * Run alone:
 *
 * ```sh
 * npx tsx examples/mock-upstream.ts --keys-file keys.txt [--revoked-keys-file revoked.txt] [--port 0]
 * ```
 */
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { parseArgs } from "node:util";
import { listen, runAsProgram } from "./program.js";

/** What the mock did for one key (or, in `total`, for every request). */
export interface MockKeyStats {
  /** Requests that presented this key (every request, in `total`). */
  requests: number;
  /** Requests answered 200. */
  served: number;
  /** Requests answered 429 (over the key's limit). */
  rateLimited: number;
  /** Requests answered 401 (revoked, unknown or missing key). */
  unauthorized: number;
  /** Requests answered 500 or 503 by the PRNG. */
  serverErrors: number;
  /** Streamed responses that reached `data: [DONE]`. */
  streamsCompleted: number;
  /** Streamed responses whose client went away before the end. */
  streamsAborted: number;
}

/** A copy of the mock's counters at one moment. */
export interface MockUpstreamStats {
  /** Every request, whatever key it presented (or none). */
  total: MockKeyStats;
  /** By the bearer token each request presented; requests without one are only in `total`. */
  byKey: Map<string, MockKeyStats>;
}

/** Options of {@link startMockUpstream}. */
export interface MockUpstreamOptions {
  /** The keys the mock accepts. Other bearer tokens get a 401. */
  keys: readonly string[];
  /**
   * Keys the mock knows but has revoked: a 401 with an OpenAI-style `invalid_api_key` body.
   * @defaultValue `[]`
   */
  revokedKeys?: readonly string[];
  /** @defaultValue `0` (a free port) */
  port?: number;
  /** @defaultValue `"127.0.0.1"` */
  host?: string;
  /**
   * How many requests each key may make per model per window. The budget refills continuously, one
   * request every `windowMs / requestsPerWindow` (a token bucket, full at first): a request that finds
   * less than one left gets a 429.
   * @defaultValue `20`
   */
  requestsPerWindow?: number;
  /**
   * How many tokens (prompt and completion, as `usage` counts them) each key may spend per model per
   * window, refilled the same way.
   * @defaultValue `1_000_000`
   */
  tokensPerWindow?: number;
  /**
   * The time over which a spent budget refills whole, in milliseconds (OpenAI's is a minute).
   * @defaultValue `1_000`
   */
  windowMs?: number;
  /**
   * How a spent budget comes back: `"continuous"`, a little at a time (a token bucket, as OpenAI's and
   * Anthropic's limits do), or `"window"`, whole at the end of a fixed window that opens with the
   * budget's first request (as a per-minute quota that resets at once).
   * @defaultValue `"continuous"`
   */
  refill?: "continuous" | "window";
  /**
   * Limits of their own for some models, by the request body's `model`; other models have the
   * defaults above. Each model has its own budgets on each key, as at OpenAI.
   * @defaultValue `{}`
   */
  modelLimits?: Readonly<Record<string, { requestsPerWindow?: number; tokensPerWindow?: number }>>;
  /**
   * Keys whose limits are a multiple of the others', as a higher usage tier has: each of the key's
   * limits (the default or the model's) times its factor, rounded, at least 1.
   * @defaultValue `{}` (every key 1)
   */
  keyLimitFactors?: Readonly<Record<string, number>>;
  /**
   * The share of admitted requests answered 500 or 503 (half each), from 0 to 1.
   * @defaultValue `0.02`
   */
  errorRate?: number;
  /**
   * The share of admitted requests that wait `slowMs` before answering, from 0 to 1.
   * @defaultValue `0.05`
   */
  slowRate?: number;
  /** @defaultValue `250` */
  slowMs?: number;
  /**
   * The pause between two chunks of a streamed response, in milliseconds.
   * @defaultValue `15`
   */
  chunkDelayMs?: number;
  /**
   * Seed of the PRNG that picks errors and slow responses: the same seed and the same order of
   * requests give the same answers.
   * @defaultValue `1`
   */
  seed?: number;
  /**
   * The clock of the rate limits, in milliseconds (tests pass one they move by hand).
   * @defaultValue `() => performance.now()`
   */
  now?: () => number;
  /**
   * Awaited before each content chunk of a stream is written (`index` from 0): lets a test hold a
   * stream at a known point. Not called for the final chunk or `[DONE]`.
   * @defaultValue `undefined`
   */
  beforeChunk?: (index: number) => void | Promise<void>;
  /**
   * The assistant's answer to a request body.
   * @defaultValue `You said: <the last user message>`
   */
  reply?: (body: ChatRequestBody) => string;
}

/** The part of a chat completion request the mock reads. */
export interface ChatRequestBody {
  model?: unknown;
  stream?: unknown;
  messages?: unknown;
}

/** A running mock upstream. */
export interface MockUpstream {
  /** Its origin, such as `http://127.0.0.1:41234`. */
  url: string;
  port: number;
  /** A copy of the counters. */
  stats(): MockUpstreamStats;
  /**
   * Revokes `key` from now on: its requests get the 401 of a revoked key, as if someone had deleted it
   * in the provider's console.
   */
  revoke(key: string): void;
  /**
   * Spends `key`'s request budget for `model` (every model it has used, and new ones, when none is
   * given) so that its next slot frees in `ms`: its requests get 429s until then.
   */
  throttle(key: string, ms: number, model?: string): void;
  /** Stops it: ends open connections and resolves once the port is closed. */
  close(): Promise<void>;
}

/**
 * A budget that refills continuously (a token bucket): `level` units at `updatedAt`, growing by
 * `limit` every `windowMs` up to `limit`. With `window`, it comes back whole instead, `windowMs` after
 * the first use since it was last whole.
 */
class Bucket {
  level: number;
  updatedAt: number;
  /** For a fixed window: when the window under way ends (Infinity while the budget is whole). */
  #windowEnd = Infinity;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    now: number,
    readonly window = false,
  ) {
    this.level = limit;
    this.updatedAt = now;
  }

  /** Brings the level up to `now`. */
  refill(now: number): void {
    if (this.window) {
      if (now >= this.#windowEnd) {
        this.level = this.limit;
        this.#windowEnd = Infinity;
      }
    } else if (now > this.updatedAt) {
      this.level = Math.min(this.limit, this.level + ((now - this.updatedAt) * this.limit) / this.windowMs);
    }
    this.updatedAt = now;
  }

  /** Takes `amount` units (the level may go below 0). */
  take(amount: number): void {
    if (this.window && this.#windowEnd === Infinity) this.#windowEnd = this.updatedAt + this.windowMs;
    this.level -= amount;
  }

  /** Lowers the level so that one unit is back in `ms` at the earliest. */
  spendUntil(ms: number): void {
    if (!this.window) return void (this.level = Math.min(this.level, 1 - (ms * this.limit) / this.windowMs));
    this.level = Math.min(this.level, 0);
    this.#windowEnd = Math.max(this.#windowEnd === Infinity ? 0 : this.#windowEnd, this.updatedAt + ms);
  }

  /** Milliseconds until `amount` units are there (0 when they are). */
  waitFor(amount: number): number {
    if (this.level >= Math.min(amount, this.limit)) return 0;
    if (this.window) return this.#windowEnd - this.updatedAt;
    return ((Math.min(amount, this.limit) - this.level) * this.windowMs) / this.limit;
  }

  /** Milliseconds until the budget is whole again: OpenAI's `x-ratelimit-reset-*`. */
  get resetMs(): number {
    if (this.window) return this.#windowEnd === Infinity ? 0 : this.#windowEnd - this.updatedAt;
    return ((this.limit - this.level) * this.windowMs) / this.limit;
  }

  /** Whole units left: OpenAI's `x-ratelimit-remaining-*`. */
  get remaining(): number {
    return Math.max(0, Math.floor(this.level));
  }
}

/** A key's budgets for one model. */
interface Budgets {
  requests: Bucket;
  tokens: Bucket;
}

/**
 * Starts the mock on `host:port` (a free port by default).
 * @example
 * ```ts
 * const upstream = await startMockUpstream({ keys: ["sk-test-aaaaaaaaaaaaaaaa"], requestsPerWindow: 5 });
 * // ... point a client at `${upstream.url}/v1` ...
 * console.log(upstream.stats().total.served);
 * await upstream.close();
 * ```
 */
export async function startMockUpstream(options: MockUpstreamOptions): Promise<MockUpstream> {
  const {
    keys,
    revokedKeys = [],
    port = 0,
    host = "127.0.0.1",
    requestsPerWindow = 20,
    tokensPerWindow = 1_000_000,
    windowMs = 1_000,
    refill = "continuous",
    modelLimits = {},
    keyLimitFactors = {},
    errorRate = 0.02,
    slowRate = 0.05,
    slowMs = 250,
    chunkDelayMs = 15,
    seed = 1,
    now = () => performance.now(),
    beforeChunk,
    reply = defaultReply,
  } = options;
  if (!Array.isArray(keys)) throw new TypeError("keys must be an array of strings");
  if (!Array.isArray(revokedKeys)) throw new TypeError("revokedKeys must be an array of strings");
  const checkLimit = (name: string, value: unknown) => {
    if (!(Number.isInteger(value) && (value as number) > 0)) throw new RangeError(`${name} must be a positive integer, received ${String(value)}`);
  };
  checkLimit("requestsPerWindow", requestsPerWindow);
  checkLimit("tokensPerWindow", tokensPerWindow);
  if (typeof modelLimits !== "object" || modelLimits === null) throw new TypeError("modelLimits must be an object");
  for (const [model, limits] of Object.entries(modelLimits)) {
    if (limits.requestsPerWindow !== undefined) checkLimit(`modelLimits[${JSON.stringify(model)}].requestsPerWindow`, limits.requestsPerWindow);
    if (limits.tokensPerWindow !== undefined) checkLimit(`modelLimits[${JSON.stringify(model)}].tokensPerWindow`, limits.tokensPerWindow);
  }
  if (typeof keyLimitFactors !== "object" || keyLimitFactors === null) throw new TypeError("keyLimitFactors must be an object");
  for (const factor of Object.values(keyLimitFactors)) {
    if (!(factor > 0 && factor < Infinity)) throw new RangeError(`keyLimitFactors must hold finite numbers > 0, received ${String(factor)}`);
  }
  if (!(windowMs > 0 && windowMs < Infinity)) throw new RangeError(`windowMs must be a finite number > 0, received ${windowMs}`);
  if (refill !== "continuous" && refill !== "window") throw new TypeError(`refill must be "continuous" or "window", received ${JSON.stringify(refill)}`);
  for (const [name, value] of [["slowMs", slowMs], ["chunkDelayMs", chunkDelayMs]] as const) {
    if (!(value >= 0 && value < Infinity)) throw new RangeError(`${name} must be a finite number >= 0, received ${value}`);
  }
  for (const [name, value] of [["errorRate", errorRate], ["slowRate", slowRate]] as const) {
    if (!(value >= 0 && value <= 1)) throw new RangeError(`${name} must be a number from 0 to 1, received ${value}`);
  }

  const accepted = new Set(keys);
  const revoked = new Set(revokedKeys);
  // By key, then by model ("" for the routes that name none).
  const budgets = new Map<string, Map<string, Budgets>>();
  const total = emptyStats();
  const byKey = new Map<string, MockKeyStats>();
  const random = mulberry32(seed);
  let nextId = 1;

  const budgetsOf = (key: string, model: string, time: number): Budgets => {
    let models = budgets.get(key);
    if (models === undefined) budgets.set(key, (models = new Map()));
    let found = models.get(model);
    if (found === undefined) {
      const own = Object.hasOwn(modelLimits, model) ? modelLimits[model]! : {};
      const factor = Object.hasOwn(keyLimitFactors, key) ? keyLimitFactors[key]! : 1;
      const scaled = (limit: number) => Math.max(1, Math.round(limit * factor));
      found = {
        requests: new Bucket(scaled(own.requestsPerWindow ?? requestsPerWindow), windowMs, time, refill === "window"),
        tokens: new Bucket(scaled(own.tokensPerWindow ?? tokensPerWindow), windowMs, time, refill === "window"),
      };
      models.set(model, found);
    }
    found.requests.refill(time);
    found.tokens.refill(time);
    return found;
  };

  // Keys throttled for every model, until when.
  const throttledUntil = new Map<string, number>();

  const count = (key: string | undefined, field: keyof MockKeyStats) => {
    total[field]++;
    if (key === undefined) return;
    let stats = byKey.get(key);
    if (stats === undefined) byKey.set(key, (stats = emptyStats()));
    stats[field]++;
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const requestId = `req_mock_${nextId++}`;
    response.setHeader("x-request-id", requestId);
    const key = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? "")?.[1];
    count(key, "requests");
    const path = new URL(request.url ?? "/", "http://mock.invalid").pathname;

    // Like the real thing: the key is checked before anything else, even the route.
    if (key === undefined || !accepted.has(key) || revoked.has(key)) {
      request.resume();
      count(key, "unauthorized");
      const message =
        key === undefined
          ? "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth."
          : revoked.has(key)
            ? "The API key provided has been revoked."
            : // As OpenAI words it, echoing the key with its middle masked.
              `Incorrect API key provided: ${echo(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`;
      return sendJson(response, 401, openAiError(message, "invalid_request_error", "invalid_api_key"));
    }

    // A chat completion's body is read first: its model chooses the budgets, its size their cost.
    const chat = request.method === "POST" && path === "/v1/chat/completions";
    let body: ChatRequestBody | undefined;
    if (chat) {
      try {
        body = JSON.parse(await readText(request)) as ChatRequestBody;
        if (typeof body !== "object" || body === null || !Array.isArray(body.messages)) throw new TypeError("messages");
      } catch {
        return sendJson(response, 400, openAiError("The body must be JSON with a `messages` array.", "invalid_request_error", "invalid_body"));
      }
    } else {
      request.resume();
    }
    const model = body === undefined ? "" : typeof body.model === "string" ? body.model : "mock-model";
    const text = body === undefined ? "" : reply(body);
    const promptTokens = body === undefined ? 0 : 8;
    const completionTokens = body === undefined ? 0 : pieces(text).length;
    const cost = promptTokens + completionTokens;

    const time = now();
    const { requests, tokens } = budgetsOf(key, model, time);
    const throttled = throttledUntil.get(key);
    if (throttled !== undefined && throttled > time) requests.spendUntil(throttled - time);
    const admitted = requests.level >= 1 && tokens.level >= Math.min(cost, tokens.limit);
    if (admitted) {
      requests.take(1);
      tokens.take(cost);
    }
    // OpenAI's headers, on every answer: the budgets as this request leaves them.
    response.setHeader("x-ratelimit-limit-requests", String(requests.limit));
    response.setHeader("x-ratelimit-limit-tokens", String(tokens.limit));
    response.setHeader("x-ratelimit-remaining-requests", String(requests.remaining));
    response.setHeader("x-ratelimit-remaining-tokens", String(tokens.remaining));
    response.setHeader("x-ratelimit-reset-requests", goDuration(requests.resetMs));
    response.setHeader("x-ratelimit-reset-tokens", goDuration(tokens.resetMs));
    if (!admitted) {
      count(key, "rateLimited");
      const which = requests.level < 1 ? "requests" : "tokens";
      const waitMs = Math.max(requests.waitFor(1), tokens.waitFor(cost));
      response.setHeader("retry-after", String(Math.max(1, Math.ceil(waitMs / 1_000))));
      response.setHeader("retry-after-ms", String(Math.ceil(waitMs)));
      const limit = which === "requests" ? requests.limit : tokens.limit;
      return sendJson(
        response,
        429,
        openAiError(
          `Rate limit reached for ${model || "this key"} on ${which} per ${goDuration(windowMs)}: Limit ${limit}, Requested ${which === "requests" ? 1 : cost}. Please try again in ${goDuration(waitMs)}.`,
          which,
          "rate_limit_exceeded",
        ),
      );
    }

    // Three draws for every admitted request, whatever happens to it, so that one seed gives one
    // sequence of answers.
    const failing = random() < errorRate;
    const failStatus = random() < 0.5 ? 500 : 503;
    const slow = random() < slowRate;

    if (!chat) {
      if (request.method === "GET" && path === "/v1/models") {
        count(key, "served");
        return sendJson(response, 200, { object: "list", data: [{ id: "mock-model", object: "model", created: 0, owned_by: "mock" }] });
      }
      return sendJson(response, 404, openAiError(`Unknown request URL: ${request.method} ${path}.`, "invalid_request_error", "unknown_url"));
    }

    if (slow) await sleep(slowMs);
    if (failing) {
      count(key, "serverErrors");
      return failStatus === 500
        ? sendJson(response, 500, openAiError("The server had an error while processing your request. Sorry about that!", "server_error", null))
        : sendJson(response, 503, openAiError("The engine is currently overloaded, please try again later.", "server_error", null));
    }

    count(key, "served");
    const id = `chatcmpl-${requestId}`;
    const created = Math.floor(Date.now() / 1_000);
    if (body!.stream !== true) {
      return sendJson(response, 200, {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: "stop" }],
        usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: cost },
      });
    }

    response.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
    response.flushHeaders();
    let gone = false;
    response.on("close", () => {
      if (!response.writableFinished) {
        gone = true;
        count(key, "streamsAborted");
      }
    });
    const chunk = (delta: object, finishReason: string | null) =>
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] })}\n\n`;
    response.write(chunk({ role: "assistant", content: "" }, null));
    const parts = pieces(text);
    for (let index = 0; index < parts.length; index++) {
      if (chunkDelayMs > 0) await sleep(chunkDelayMs);
      await beforeChunk?.(index);
      if (gone) return;
      response.write(chunk({ content: parts[index] }, null));
    }
    if (gone) return;
    response.end(`${chunk({}, "stop")}data: [DONE]\n\n`);
    count(key, "streamsCompleted");
  };

  const server = createServer((request, response) => {
    handle(request, response).catch(() => response.destroy());
  });
  const address = await listen(server, port, host);
  const origin = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  return {
    url: origin,
    port: address.port,
    stats: () => ({ total: { ...total }, byKey: new Map([...byKey].map(([name, stats]) => [name, { ...stats }])) }),
    revoke: (key) => void revoked.add(key),
    throttle: (key, ms, model) => {
      if (!(ms >= 0 && ms < Infinity)) throw new RangeError(`ms must be a finite number >= 0, received ${ms}`);
      const time = now();
      if (model !== undefined) return budgetsOf(key, model, time).requests.spendUntil(ms);
      // For every model: each request's budget is held down to it as it is read.
      throttledUntil.set(key, Math.max(throttledUntil.get(key) ?? -Infinity, time + ms));
    },
    close: () => closeServer(server),
  };
}

/** `You said: <the text of the last user message>`. */
function defaultReply(body: ChatRequestBody): string {
  const messages = Array.isArray(body.messages) ? (body.messages as Array<{ role?: unknown; content?: unknown }>) : [];
  const last = [...messages].reverse().find((message) => message?.role === "user");
  const content = last?.content;
  const text =
    typeof content === "string"
      ? content
      : Array.isArray(content)
        ? content.map((part: { text?: unknown }) => (typeof part?.text === "string" ? part.text : "")).join("")
        : "";
  return `You said: ${text}`;
}

/** The text cut into words, each with its following spaces: the chunks of a stream. */
function pieces(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? [text];
}

function emptyStats(): MockKeyStats {
  return { requests: 0, served: 0, rateLimited: 0, unauthorized: 0, serverErrors: 0, streamsCompleted: 0, streamsAborted: 0 };
}

function openAiError(message: string, type: string, code: string | null) {
  return { error: { message, type, param: null, code } };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

/**
 * A duration as Go prints it, which is how OpenAI sends `x-ratelimit-reset-*`: `"350ms"`, `"1.2s"`,
 * `"1m30s"`, to the millisecond above.
 */
export function goDuration(ms: number): string {
  // Whole milliseconds, rounded up: a wait read from it is never shorter than the real one.
  ms = Math.ceil(ms);
  if (ms < 1_000) return `${ms}ms`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = `${(ms - minutes * 60_000) / 1_000}s`;
  return minutes === 0 ? seconds : `${minutes}m${seconds}`;
}

/** A small seeded PRNG (mulberry32): numbers in [0, 1), the same sequence for the same seed. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

async function readText(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });
}

/** One key per line; blank lines and `#` comments are skipped. */
function readKeys(file: string): string[] {
  return readFileSync(file, "utf8")
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

/** A key as OpenAI's 401 echoes it: the first 7 and last 4 characters shown, the rest as `*`. */
function echo(key: string): string {
  return key.length > 11 ? `${key.slice(0, 7)}${"*".repeat(key.length - 11)}${key.slice(-4)}` : "*".repeat(key.length);
}

/** A key for people: its first and last 4 characters, as the router's hints show it. */
function mask(key: string): string {
  return key.length >= 16 ? `${key.slice(0, 4)}…${key.slice(-4)}` : "(short key)";
}

const USAGE = `usage: tsx examples/mock-upstream.ts --keys-file <file> [--revoked-keys-file <file>] [--port <n>] [--host <host>]
       [--requests-per-window <n>] [--tokens-per-window <n>] [--window-ms <ms>] [--refill continuous|window]
       [--error-rate <0..1>] [--seed <n>]
Starts a mock OpenAI-style upstream; prints "listening on <url>" and, on Ctrl-C, what each key got.`;

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        "keys-file": { type: "string" },
        "revoked-keys-file": { type: "string" },
        port: { type: "string", default: "0" },
        host: { type: "string", default: "127.0.0.1" },
        "requests-per-window": { type: "string" },
        "tokens-per-window": { type: "string" },
        "window-ms": { type: "string" },
        refill: { type: "string" },
        "error-rate": { type: "string" },
        seed: { type: "string" },
        help: { type: "boolean" },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values["keys-file"] === undefined) {
    console.error(`missing --keys-file\n${USAGE}`);
    return 2;
  }
  const number = (text: string | undefined) => (text === undefined ? undefined : Number(text));
  const options: MockUpstreamOptions = {
    keys: readKeys(values["keys-file"]),
    revokedKeys: values["revoked-keys-file"] === undefined ? [] : readKeys(values["revoked-keys-file"]),
    port: Number(values.port),
    host: values.host,
  };
  if (values.refill !== undefined) options.refill = values.refill as "continuous" | "window";
  for (const [name, value] of [
    ["requestsPerWindow", number(values["requests-per-window"])],
    ["tokensPerWindow", number(values["tokens-per-window"])],
    ["windowMs", number(values["window-ms"])],
    ["errorRate", number(values["error-rate"])],
    ["seed", number(values.seed)],
  ] as const) {
    if (value !== undefined) options[name] = value;
  }
  const upstream = await startMockUpstream(options);
  console.log(`listening on ${upstream.url}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  for (const [key, stats] of upstream.stats().byKey) {
    console.log(`${mask(key)}  requests ${stats.requests}  served ${stats.served}  429 ${stats.rateLimited}  401 ${stats.unauthorized}  5xx ${stats.serverErrors}`);
  }
  await upstream.close();
  return 0;
}

runAsProgram(import.meta.url, () => main(process.argv.slice(2)));

