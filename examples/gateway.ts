/**
 * An OpenAI-compatible HTTP gateway in front of many API keys: clients talk to it with the gateway's
 * own token, and it forwards each `/v1/*` request upstream with the key `router.execute` picks, moving
 * to another key on a 429, a 5xx, a timeout, a revoked key or a network error. Response bodies
 * (server-sent events included) are streamed back as they arrive.
 *
 * Routes (each needs `Authorization: Bearer <client token>`, else 401):
 * - `/v1/*`, any method: forwarded to `<upstream>/v1/*`. A JSON body's `model` is the call's scope
 *   (`execute(fn, { scope: model })`): a 429 for one model leaves the key in use for the others.
 * - `GET /keys`: each key's index, masked hint, label, state and failure count, never the key (nor
 *   its fingerprint, which would let a client holding the token test a guessed key).
 *
 * With `adminPort`, an admin listener on 127.0.0.1 serves a live dashboard, Prometheus metrics and
 * the operator's actions (see `./gateway-admin.ts`).
 *
 * Answers it makes itself: 401 (wrong client token), 503 with `Retry-After` in whole seconds (no key
 * ready: until the first one is back, or `blockedRetryAfterMs` when every key is blocked), 502
 * (upstream unreachable with every key tried), 504 (no answer within `upstreamTimeoutMs` with every
 * key tried), 413 (body over `maxBodyBytes`). Otherwise the upstream's answer is passed on, also the
 * last key's failure (such as its 429), with an `x-gateway-attempts` header saying how many keys were
 * tried.
 *
 * What crosses it is filtered (see `./gateway-hygiene.ts`): only an allow-list of request headers goes
 * upstream, the upstream's cookies never reach a client, and an error body that echoes the key shows
 * the key's masked hint instead.
 *
 * Run alone:
 *
 * ```sh
 * GATEWAY_CLIENT_TOKEN="$TOKEN" npm run gateway -- --upstream https://api.openai.com --keys-file keys.txt --port 8080
 * ```
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { CredentialRouter, isNoKeyAvailableError, type CredentialRouterOptions, type RouterEvent } from "../src/index.js";
import { keyList, startAdmin, type Admin } from "./gateway-admin.js";
import { clientResponseHeaders, forwardedRequestHeaders } from "./gateway-hygiene.js";
import { GatewayStats } from "./gateway-stats.js";
import { isBodyTimeout, openUpstream, UpstreamTimeoutError, type UpstreamAnswer } from "./gateway-upstream.js";
import { listen, runAsProgram } from "./program.js";

/** Options of {@link startGateway}. */
export interface GatewayOptions {
  /** The upstream's origin (and optional base path), such as `https://api.openai.com`. */
  upstream: string;
  /** The API keys, or a router already made (to attach listeners or shared state to it first). */
  keys: readonly string[] | CredentialRouter;
  /** The token clients must send as `Authorization: Bearer <token>`. */
  clientToken: string;
  /** @defaultValue `0` (a free port) */
  port?: number;
  /** @defaultValue `"127.0.0.1"` */
  host?: string;
  /** Options of the router made from `keys`; not allowed with a router. */
  routerOptions?: CredentialRouterOptions;
  /**
   * How long a request may wait for a cooling key to come back before the gateway answers 503.
   * @defaultValue `0` (never waits)
   */
  maxWaitMs?: number;
  /**
   * How long the gateway waits for the upstream's response headers, and for each next piece of a body
   * (a stream that stalls that long is cut), in milliseconds. A timeout counts against the key like a
   * 5xx (it cools down; the next key is tried), and the last key's is answered 504. `0` waits for ever.
   * @defaultValue `60_000`
   */
  upstreamTimeoutMs?: number;
  /**
   * The largest request body accepted (it is held in memory, to be sent again with another key).
   * @defaultValue `33_554_432` (32 MiB)
   */
  maxBodyBytes?: number;
  /**
   * The `Retry-After` of a 503 when every key is blocked or disabled, so no wait is known: a person
   * has to act, and clients should back off meanwhile.
   * @defaultValue `60_000`
   */
  blockedRetryAfterMs?: number;
  /**
   * Where log lines go: one per key state change, and one per request with `logRequests`. They name
   * keys by hint only.
   * @defaultValue `undefined` (no logging)
   */
  log?: (line: string) => void;
  /**
   * Whether `log` also gets a line per request (method, path, status, time, attempts, key hint).
   * @defaultValue `false`
   */
  logRequests?: boolean;
  /**
   * Whether a request's scope is its JSON body's `model` (the first field, or any top-level field of
   * a body up to 1 MiB), so that cooldowns are kept per model. Off, every call is key-wide.
   * @defaultValue `true`
   */
  scopeByModel?: boolean;
  /**
   * The port of the admin listener (dashboard, metrics, key actions), bound to 127.0.0.1 only;
   * `0` takes a free one.
   * @defaultValue `undefined` (no admin listener)
   */
  adminPort?: number;
}

/** A running gateway. */
export interface Gateway {
  /** Its origin, such as `http://127.0.0.1:8080`; clients use `${url}/v1` as their base URL. */
  url: string;
  /** The port it listens on (the one it got, when asked for port 0). */
  port: number;
  /** The router that picks the keys. */
  router: CredentialRouter;
  /** What the gateway counted: per key, per second, and requests that waited. */
  stats: GatewayStats;
  /** The admin listener's origin (`http://127.0.0.1:<port>`), when `adminPort` was given. */
  adminUrl: string | undefined;
  /**
   * Stops accepting connections, lets the requests being answered finish, then ends every connection
   * and resolves once the port is closed.
   */
  close(): Promise<void>;
}

/** How long a request must have waited for a key to count as one that waited (in `stats`). */
const WAITED_MS = 10;

/** The largest value a Node timer holds. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * Thrown by an attempt once the client has left. Its status, 499 (nginx's "client closed request"),
 * is a 4xx that `execute` neither marks a key for nor retries: the call ends there, without the cost
 * of a `classify` on every call.
 */
class ClientLeftError extends Error {
  readonly status = 499;
  constructor() {
    super("the client closed the connection");
  }
}

/**
 * Whether the client of a request went away, told to those who must stop: the upstream call (undici
 * takes an EventEmitter for a signal, and aborts on its `abort` event) and, when a request may wait
 * for a key, `execute`'s wait. An AbortController is made only then: in Node 20 one costs about
 * 10 µs (its collection included), a good share of all the gateway spends on a request.
 */
class ClientGone extends EventEmitter {
  gone = false;
  readonly #wait: AbortController | undefined;

  constructor(mayWait: boolean) {
    super();
    this.#wait = mayWait ? new AbortController() : undefined;
  }

  /** For `execute`, which then stops waiting for a key when the client leaves. */
  get waitSignal(): AbortSignal | undefined {
    return this.#wait?.signal;
  }

  leave(): void {
    this.gone = true;
    this.emit("abort");
    this.#wait?.abort(new Error("the client closed the connection"));
  }
}

/**
 * Starts the gateway on `host:port`.
 * @throws TypeError for a missing or malformed option, RangeError for a number out of range (messages
 * never contain a key or the token).
 * @example
 * ```ts
 * const gateway = await startGateway({ upstream: "https://api.openai.com", keys, clientToken: "secret" });
 * const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "secret" });
 * ```
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const {
    upstream,
    keys,
    clientToken,
    port = 0,
    host = "127.0.0.1",
    routerOptions,
    maxWaitMs = 0,
    upstreamTimeoutMs = 60_000,
    maxBodyBytes = 32 * 1024 * 1024,
    blockedRetryAfterMs = 60_000,
    log,
    logRequests = false,
    scopeByModel = true,
    adminPort,
  } = options;
  let upstreamUrl: URL;
  try {
    upstreamUrl = new URL(upstream);
  } catch {
    throw new TypeError("upstream must be an http(s) URL such as https://api.openai.com");
  }
  if (upstreamUrl.protocol !== "http:" && upstreamUrl.protocol !== "https:") {
    throw new TypeError("upstream must be an http(s) URL such as https://api.openai.com");
  }
  if (typeof clientToken !== "string" || clientToken === "") throw new TypeError("clientToken must be a non-empty string");
  if (typeof upstreamTimeoutMs !== "number") throw new TypeError(`upstreamTimeoutMs must be a number, received ${typeof upstreamTimeoutMs}`);
  if (!(upstreamTimeoutMs >= 0 && upstreamTimeoutMs <= MAX_TIMEOUT_MS)) {
    throw new RangeError(`upstreamTimeoutMs must be from 0 to ${MAX_TIMEOUT_MS}, received ${upstreamTimeoutMs}`);
  }
  if (keys instanceof CredentialRouter && routerOptions !== undefined) {
    throw new TypeError("routerOptions applies only when keys is a list; configure the router you pass instead");
  }
  if (typeof scopeByModel !== "boolean") throw new TypeError(`scopeByModel must be a boolean, received ${typeof scopeByModel}`);
  if (adminPort !== undefined && !(Number.isInteger(adminPort) && adminPort >= 0 && adminPort <= 65_535)) {
    throw new RangeError(`adminPort must be an integer from 0 to 65535, received ${String(adminPort)}`);
  }
  const router = keys instanceof CredentialRouter ? keys : new CredentialRouter(keys, routerOptions);
  const stats = new GatewayStats(router.size);
  // The admin's actions need a key by its index: the list given, or, with a router given, each key
  // as the gateway first uses it.
  const knownKeys: Array<string | undefined> = keys instanceof CredentialRouter ? [] : [...keys];
  const learnKeys = keys instanceof CredentialRouter;
  // Upstream paths go under the upstream's own base path, if it has one.
  const upstreamBasePath = upstreamUrl.pathname.replace(/\/+$/, "");
  const upstreamClient = openUpstream(upstreamUrl.origin, upstreamTimeoutMs);

  const expectedToken = sha256(clientToken);
  // Authorization headers found right once (a few spellings at most: "Bearer", "bearer"...) pass by a
  // Set lookup next time instead of a digest, which is a good share of a request's cost. A lookup
  // tells only whether the whole header is one of them, as the digests do.
  const rightHeaders = new Set<string>();
  const authorized = (header: string | undefined): boolean => {
    if (header === undefined) return false;
    if (rightHeaders.has(header)) return true;
    const token = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)?.[1];
    // Comparing digests of equal length, in constant time, leaks neither the token nor its length.
    const right = timingSafeEqual(sha256(token ?? ""), expectedToken) && token !== undefined;
    if (right && rightHeaders.size < 8) rightHeaders.add(header);
    return right;
  };

  const unsubscribe = log === undefined ? () => {} : router.subscribe((event) => log(describeEvent(event)));
  const requestLog = log !== undefined && logRequests ? log : undefined;

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const method = request.method ?? "GET";
    const url = requestPath(request.url ?? "/");
    // Nothing is measured or formatted for a log nobody asked for.
    const startedAt = requestLog === undefined ? 0 : performance.now();
    const done =
      requestLog === undefined
        ? ignore
        : (status: number, detail = "") => requestLog(`${method} ${url.pathname} ${status} ${Math.round(performance.now() - startedAt)}ms${detail}`);

    if (!authorized(request.headers.authorization)) {
      request.resume();
      response.setHeader("www-authenticate", 'Bearer realm="gateway"');
      sendJson(response, 401, gatewayError("Missing or wrong gateway token: send Authorization: Bearer <client token>.", "invalid_gateway_token"));
      return done(401);
    }

    if (url.pathname === "/keys") {
      request.resume();
      if (method !== "GET" && method !== "HEAD") {
        response.setHeader("allow", "GET, HEAD");
        sendJson(response, 405, gatewayError("Use GET /keys.", "method_not_allowed"));
        return done(405);
      }
      // Not the snapshot's `id`: a key's SHA-256 would let anyone with the client token test a guess.
      sendJson(response, 200, keyList(router));
      return done(200);
    }

    if (url.pathname !== "/v1" && !url.pathname.startsWith("/v1/")) {
      request.resume();
      sendJson(response, 404, gatewayError(`No route for ${method} ${url.pathname}; the gateway serves /v1/* and GET /keys.`, "not_found"));
      return done(404);
    }

    // The client going away (before or during the answer) cancels the upstream call and any wait.
    const client = new ClientGone(maxWaitMs > 0);
    response.on("close", () => {
      if (!response.writableFinished) client.leave();
    });

    let body: Uint8Array | undefined;
    if (method !== "GET" && method !== "HEAD") {
      try {
        body = await readBody(request, maxBodyBytes);
      } catch (error) {
        if (error instanceof BodyTooLargeError) {
          sendJson(response, 413, gatewayError(`The request body is over ${maxBodyBytes} bytes.`, "body_too_large"));
          return done(413);
        }
        response.destroy();
        return done(499, " (client gone)");
      }
    }

    const path = upstreamBasePath + url.pathname + url.search;
    const forwarded = forwardedRequestHeaders(request.headers);
    const scope = scopeByModel ? modelOf(body) : undefined;
    let attempts = 0;
    let lastKey = "";
    let lastHint = "";
    let latest: UpstreamAnswer | undefined;
    let answer: UpstreamAnswer;
    // Time spent in execute outside the attempts is time spent waiting for a key, but for a few
    // synchronous steps and any pause of the process (a garbage collection): a request waited when
    // that comes to WAITED_MS or more.
    const executeStartedAt = performance.now();
    let attemptsMs = 0;
    const waited = () => performance.now() - executeStartedAt - attemptsMs >= WAITED_MS;
    const answered = (status: number, detail?: string) => {
      stats.request(status, waited());
      done(status, detail);
    };
    try {
      answer = await router.execute(
        async (key, context) => {
          if (client.gone) throw new ClientLeftError();
          const attemptStartedAt = performance.now();
          attempts = context.attempt;
          lastKey = key;
          lastHint = context.hint;
          if (learnKeys) knownKeys[context.index] = key;
          // The same object for each attempt: undici reads the headers when the request is made.
          forwarded.authorization = `Bearer ${key}`;
          try {
            latest = await upstreamClient.send({ method, path, headers: forwarded, body, signal: client, key, hint: context.hint });
            stats.attempt(context.index, latest.status);
            return latest;
          } catch (error) {
            // Cut short because the client left: that says nothing of the key, and no other key is to
            // be tried (a 499, which execute passes on as it is).
            if (client.gone) throw new ClientLeftError();
            stats.attempt(context.index, 0);
            throw error;
          } finally {
            attemptsMs += performance.now() - attemptStartedAt;
          }
        },
        { signal: client.waitSignal, maxWaitMs, scope },
      );
    } catch (error) {
      // An error answer is read already; a success that nobody will stream is let go.
      if (latest?.bytes === undefined) latest?.body.destroy();
      if (client.gone) {
        response.destroy();
        return done(499, " (client gone)");
      }
      if (isNoKeyAvailableError(error)) {
        response.setHeader("retry-after", String(Math.ceil((error.retryAfterMs ?? blockedRetryAfterMs) / 1_000)));
        // The error's message names a duration or says every key is out, never a key.
        sendJson(response, 503, gatewayError(error.message, "no_key_available", { retry_after_ms: error.retryAfterMs === undefined ? null : Math.ceil(error.retryAfterMs) }));
        return answered(503, error.retryAfterMs === undefined ? " (no key: all blocked)" : ` (no key for ${Math.ceil(error.retryAfterMs)}ms)`);
      }
      if (error instanceof UpstreamTimeoutError) {
        response.setHeader("x-gateway-attempts", String(attempts));
        sendJson(response, 504, gatewayError(error.message, "upstream_timeout"));
        return answered(504, ` attempts=${attempts} (timeout)`);
      }
      // A network failure on the last key tried. Its code (ECONNREFUSED, UND_ERR_SOCKET...) is what
      // helps, and holds no key.
      const code = (error as { code?: unknown } | null)?.code ?? (error as { cause?: { code?: unknown } } | null)?.cause?.code;
      response.setHeader("x-gateway-attempts", String(attempts));
      sendJson(response, 502, gatewayError(`The upstream could not be reached${typeof code === "string" ? ` (${code})` : ""}.`, "upstream_unreachable"));
      return answered(502, ` attempts=${attempts}`);
    }

    if (client.gone) {
      if (answer.bytes === undefined) answer.body.destroy();
      return done(499, " (client gone)");
    }
    const detail = ` attempts=${attempts} key=${lastHint}`;
    const headers = clientResponseHeaders(answer.headers.all, answer.bytes !== undefined);
    headers["x-gateway-attempts"] = String(attempts);
    if (answer.bytes !== undefined) {
      headers["content-length"] = answer.bytes.byteLength;
      response.writeHead(answer.status, headers);
      response.end(method === "HEAD" ? undefined : answer.bytes);
      return answered(answer.status, detail);
    }
    response.writeHead(answer.status, headers);
    // Headers go out now when the length is unknown (a stream), so that its client sees the response
    // start before the first event; otherwise they leave with the body, in one write.
    if (headers["content-length"] === undefined) response.flushHeaders();
    // Counted once the headers are out: the time a stream takes is not the gateway's.
    stats.request(answer.status, waited());
    const failure = await forward(answer.body, response);
    if (failure === undefined) return done(answer.status, detail);
    // The client left, or the upstream broke off or stalled mid-body: nothing more can be said to the
    // client. A stall is the key's service failing, as a timeout before the headers is.
    response.destroy();
    if (isBodyTimeout(failure)) {
      router.markError(lastKey, { reason: "server" });
      return done(answer.status, `${detail} (upstream stalled: cut)`);
    }
    done(answer.status, `${detail} (cut short)`);
  };

  // Requests being answered: close() waits for them, then ends every connection left (idle ones, and
  // ones a client opened but never used, which closeIdleConnections does not count as idle).
  let active = 0;
  let closing = false;
  const server = createServer((request, response) => {
    active++;
    response.on("close", () => {
      if (--active === 0 && closing) server.closeAllConnections();
    });
    handle(request, response).catch(() => {
      // Not expected; never let it leave the request hanging, and never print it (it could hold a
      // header value).
      if (!response.headersSent) sendJson(response, 500, gatewayError("The gateway failed.", "gateway_error"));
      else response.destroy();
    });
  });
  const address = await listen(server, port, host).catch(async (error: unknown) => {
    await upstreamClient.close();
    throw error;
  });
  let admin: Admin | undefined;
  if (adminPort !== undefined) {
    try {
      admin = await startAdmin({ port: adminPort });
      admin.watch({ router, stats, keyAt: (index) => knownKeys[index] });
    } catch (error) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await upstreamClient.close();
      throw error;
    }
  }
  const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  return {
    url,
    port: address.port,
    router,
    stats,
    adminUrl: admin?.url,
    close: async () => {
      unsubscribe();
      closing = true;
      const closed = new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        if (active === 0) server.closeAllConnections();
        else server.closeIdleConnections();
      });
      await Promise.all([closed, admin?.close()]);
      await upstreamClient.close();
    },
  };
}

function ignore(): void {}

/** The longest model name taken as a scope; a longer one leaves the call key-wide. */
const MAX_MODEL_LENGTH = 256;
/** The largest body parsed whole to find its `model` when it is not the first field. */
const MAX_PARSED_BODY_BYTES = 1024 * 1024;
// `{"model":"name"` at the start of a body, as the SDKs write it: read without parsing the rest.
const MODEL_FIRST = /^\s*\{\s*"model"\s*:\s*"([^"\\]{1,256})"/;

/**
 * The `model` of a JSON request body, the call's scope: from its first field (most clients put it
 * first), else by parsing the body when it is at most 1 MiB. `undefined` when there is none.
 */
function modelOf(body: Uint8Array | undefined): string | undefined {
  if (body === undefined || body.byteLength === 0) return undefined;
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const first = MODEL_FIRST.exec(bytes.toString("utf8", 0, Math.min(bytes.byteLength, MAX_MODEL_LENGTH + 32)));
  if (first !== null) return first[1];
  if (bytes.byteLength > MAX_PARSED_BODY_BYTES) return undefined;
  try {
    const model = (JSON.parse(bytes.toString("utf8")) as { model?: unknown } | null)?.model;
    return typeof model === "string" && model !== "" && model.length <= MAX_MODEL_LENGTH ? model : undefined;
  } catch {
    return undefined;
  }
}

// A path without dot segments, percent-escapes or backslashes, and a query of characters URL parsing
// leaves alone: taken as it is, as `new URL` would give it back (which costs a few µs a request).
const PLAIN_PATH = /^(\/[\w\-/]*)(\?[\w\-.~&=+,:@/]*)?$/;

/**
 * The path and query of a request target, normalised: dot segments resolved ("/v1/../x" is "/x"), so
 * that they cannot step out of /v1.
 */
function requestPath(target: string): { pathname: string; search: string } {
  const plain = PLAIN_PATH.exec(target);
  if (plain !== null) return { pathname: plain[1]!, search: plain[2] ?? "" };
  const { pathname, search } = new URL(target, "http://gateway.invalid");
  return { pathname, search };
}

function describeEvent(event: RouterEvent): string {
  switch (event.type) {
    case "cooldown":
      return `key ${event.hint} cooling down for ${Math.ceil(event.delayMs)}ms`;
    case "blocked":
      return `key ${event.hint} blocked: the upstream rejected it; it stays out until cleared`;
    case "disabled":
      return `key ${event.hint} disabled`;
    case "ready":
      return `key ${event.hint} ready again (${event.reason})`;
    case "exhausted":
      return event.retryAfterMs === undefined ? "no key left: all blocked or disabled" : `no key ready for ${Math.ceil(event.retryAfterMs)}ms`;
    default: {
      const unknown: never = event;
      return `router event ${(unknown as { type: string }).type}`;
    }
  }
}

function gatewayError(message: string, code: string, extra: Record<string, unknown> = {}) {
  return { error: { message, type: "gateway_error", code, ...extra } };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

class BodyTooLargeError extends Error {}

/**
 * Streams an upstream body to the client. Resolves once it is all sent (`undefined`), or with why it
 * was not: the upstream's error, or the client's leaving (the upstream body is then let go). Written
 * out rather than `stream.pipeline` (an AbortController and an AbortError per call) or `pipe` (twice
 * the listeners): this runs for every request.
 */
function forward(body: Readable, response: ServerResponse): Promise<unknown> {
  return new Promise((resolve) => {
    if (response.destroyed) {
      body.destroy();
      return resolve(new Error("the client closed the connection"));
    }
    body.on("data", (chunk: Buffer) => {
      // The client reads slower than the upstream sends: hold the upstream until it catches up.
      if (!response.write(chunk)) {
        body.pause();
        response.once("drain", () => body.resume());
      }
    });
    body.once("end", () => response.end());
    body.once("error", resolve);
    response.once("finish", () => resolve(undefined));
    response.once("close", () => {
      if (response.writableFinished) return;
      body.destroy();
      resolve(new Error("the client closed the connection"));
    });
  });
}

/** The whole request body, as bytes that can be sent again with each key. */
function readBody(request: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    request.on("data", (chunk: Buffer) => {
      if (length > maxBytes) return; // over the limit: the rest is read only to be thrown away
      length += chunk.length;
      if (length <= maxBytes) return void chunks.push(chunk);
      chunks.length = 0;
      reject(new BodyTooLargeError());
    });
    request.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length)));
    request.once("error", reject);
    // The client went away mid-body: no "end" and, on a closed connection, no "error" either.
    request.once("close", () => {
      if (!request.complete) reject(new Error("the client closed the connection"));
    });
  });
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** A keys file: one key per line, trimmed; blank lines and lines starting with `#` are skipped. */
export function parseKeysFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

const USAGE = `usage: npm run gateway -- --upstream <origin> --keys-file <file> --client-token <token> [--port <n>] [--host <host>]
                          [--max-wait-ms <ms>] [--cooldown-ms <ms>] [--upstream-timeout-ms <ms>] [--log-requests]
                          [--no-model-scopes] [--admin-port <n>]

  --upstream             where /v1/* goes, such as https://api.openai.com   (or GATEWAY_UPSTREAM)
  --keys-file            the API keys, one per line; blank lines and        (or GATEWAY_KEYS_FILE)
                         # comments are skipped
  --client-token         what clients send as "Authorization: Bearer <token>" (or GATEWAY_CLIENT_TOKEN;
                         prefer the variable: arguments are visible to other users)
  --port                 the port to listen on; 0 takes a free one          (or GATEWAY_PORT)
                         (default 0)
  --host                 the address to bind (default 127.0.0.1)            (or GATEWAY_HOST)
  --max-wait-ms          how long a request may wait for a cooling key      (or GATEWAY_MAX_WAIT_MS)
                         (default 0)
  --cooldown-ms          how long a key cools after a 5xx or a timeout      (or GATEWAY_COOLDOWN_MS)
                         without Retry-After (default 30000)
  --upstream-timeout-ms  how long to wait for the upstream's headers, and   (or GATEWAY_UPSTREAM_TIMEOUT_MS)
                         for each next piece of a body; 0 waits for ever
                         (default 60000)
  --log-requests         a line on stderr per request, besides the lines    (or GATEWAY_LOG_REQUESTS=1)
                         for key state changes
  --no-model-scopes      one cooldown per key for every model, instead of   (or GATEWAY_MODEL_SCOPES=0)
                         one per key and request body "model"
  --admin-port           serve the dashboard, /metrics and key actions on   (or GATEWAY_ADMIN_PORT)
                         127.0.0.1 at this port (0: a free one); default off`;

/**
 * The command line: starts a gateway from flags (or environment variables), prints
 * `listening on <url>`, logs key state changes (and with `--log-requests` each request) to stderr and
 * stops on SIGINT/SIGTERM.
 * @returns The exit code: 0 after a clean stop, 2 for bad usage.
 */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        upstream: { type: "string" },
        "keys-file": { type: "string" },
        port: { type: "string" },
        host: { type: "string" },
        "client-token": { type: "string" },
        "max-wait-ms": { type: "string" },
        "cooldown-ms": { type: "string" },
        "upstream-timeout-ms": { type: "string" },
        "log-requests": { type: "boolean" },
        "no-model-scopes": { type: "boolean" },
        "admin-port": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const upstream = values.upstream ?? env.GATEWAY_UPSTREAM;
  const keysFile = values["keys-file"] ?? env.GATEWAY_KEYS_FILE;
  const clientToken = values["client-token"] ?? env.GATEWAY_CLIENT_TOKEN;
  const portText = values.port ?? env.GATEWAY_PORT ?? "0";
  const durationTexts = {
    "max-wait-ms": values["max-wait-ms"] ?? env.GATEWAY_MAX_WAIT_MS,
    "cooldown-ms": values["cooldown-ms"] ?? env.GATEWAY_COOLDOWN_MS,
    "upstream-timeout-ms": values["upstream-timeout-ms"] ?? env.GATEWAY_UPSTREAM_TIMEOUT_MS,
  };
  const logRequestsText = values["log-requests"] ? "1" : (env.GATEWAY_LOG_REQUESTS ?? "");
  const modelScopesText = values["no-model-scopes"] ? "0" : (env.GATEWAY_MODEL_SCOPES ?? "");
  const adminPortText = values["admin-port"] ?? env.GATEWAY_ADMIN_PORT ?? "";
  const host = values.host ?? env.GATEWAY_HOST ?? "127.0.0.1";
  const missing = [
    upstream === undefined || upstream === "" ? "--upstream" : "",
    keysFile === undefined || keysFile === "" ? "--keys-file" : "",
    clientToken === undefined || clientToken === "" ? "--client-token" : "",
  ].filter(Boolean);
  const usageError = (message: string) => {
    console.error(`error: ${message}\n\n${USAGE}`);
    return 2;
  };
  if (missing.length > 0) return usageError(`missing ${missing.join(", ")}`);
  const port = Number(portText);
  if (!(Number.isInteger(port) && port >= 0 && port <= 65_535)) return usageError(`--port (or GATEWAY_PORT) must be an integer from 0 to 65535, received ${JSON.stringify(portText)}`);
  const durations: Record<string, number | undefined> = {};
  for (const name of ["max-wait-ms", "cooldown-ms", "upstream-timeout-ms"] as const) {
    const text = durationTexts[name];
    if (text === undefined || text === "") continue;
    const value = Number(text);
    const variable = `GATEWAY_${name.toUpperCase().replaceAll("-", "_")}`;
    // A timer holds at most MAX_TIMEOUT_MS; the other durations are the router's, which checks them.
    const max = name === "upstream-timeout-ms" ? MAX_TIMEOUT_MS : Infinity;
    if (!(value >= 0 && value < Infinity && value <= max)) {
      return usageError(`--${name} (or ${variable}) must be a number ${max < Infinity ? `from 0 to ${max}` : ">= 0"}, received ${JSON.stringify(text)}`);
    }
    durations[name] = value;
  }
  if (!["", "0", "1", "false", "true"].includes(logRequestsText)) {
    return usageError(`GATEWAY_LOG_REQUESTS must be 1, true, 0 or false, received ${JSON.stringify(logRequestsText)}`);
  }
  if (!["", "0", "1", "false", "true"].includes(modelScopesText)) {
    return usageError(`GATEWAY_MODEL_SCOPES must be 1, true, 0 or false, received ${JSON.stringify(modelScopesText)}`);
  }
  const adminPort = adminPortText === "" ? undefined : Number(adminPortText);
  if (adminPort !== undefined && !(Number.isInteger(adminPort) && adminPort >= 0 && adminPort <= 65_535)) {
    return usageError(`--admin-port (or GATEWAY_ADMIN_PORT) must be an integer from 0 to 65535, received ${JSON.stringify(adminPortText)}`);
  }
  let keys: string[];
  try {
    keys = parseKeysFile(await readFile(keysFile!, "utf8"));
  } catch (error) {
    return usageError(`cannot read the keys file ${keysFile}: ${(error as NodeJS.ErrnoException).code ?? "unreadable"}`);
  }
  if (keys.length === 0) return usageError(`the keys file ${keysFile} holds no keys`);

  let gateway: Gateway;
  try {
    const options: GatewayOptions = {
      upstream: upstream!,
      keys,
      clientToken: clientToken!,
      port,
      host,
      log: (line) => console.error(`${new Date().toISOString()} ${line}`),
      logRequests: logRequestsText === "1" || logRequestsText === "true",
      scopeByModel: modelScopesText !== "0" && modelScopesText !== "false",
    };
    if (adminPort !== undefined) options.adminPort = adminPort;
    if (durations["max-wait-ms"] !== undefined) options.maxWaitMs = durations["max-wait-ms"];
    if (durations["upstream-timeout-ms"] !== undefined) options.upstreamTimeoutMs = durations["upstream-timeout-ms"];
    if (durations["cooldown-ms"] !== undefined) options.routerOptions = { cooldownMs: durations["cooldown-ms"] };
    gateway = await startGateway(options);
  } catch (error) {
    // The router's and our own messages name indices and options, never a key.
    return usageError(error instanceof Error ? error.message : "the gateway could not start");
  }
  console.log(`listening on ${gateway.url}`);
  if (gateway.adminUrl !== undefined) console.log(`dashboard on ${gateway.adminUrl}/ (metrics: ${gateway.adminUrl}/metrics)`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await gateway.close();
  return 0;
}

runAsProgram(import.meta.url, () => main(process.argv.slice(2)));

