/**
 * An OpenAI-compatible HTTP gateway in front of many API keys: clients talk to it with the gateway's
 * own token, and it forwards each `/v1/*` request upstream with the key `router.execute` picks, moving
 * to another key on a 429, a 5xx, a revoked key or a network error. Response bodies (server-sent
 * events included) are streamed back as they arrive.
 *
 * Routes (each needs `Authorization: Bearer <client token>`, else 401):
 * - `/v1/*`, any method: forwarded to `<upstream>/v1/*`.
 * - `GET /keys`: each key's index, masked hint, label, state and failure count, never the key (nor
 *   its fingerprint, which would let a client holding the token test a guessed key).
 *
 * Answers it makes itself: 401 (wrong client token), 503 with `Retry-After` in whole seconds (no key
 * ready: until the first one is back, or `blockedRetryAfterMs` when every key is blocked), 502 (upstream unreachable with every key tried), 413 (body
 * over `maxBodyBytes`). Otherwise the upstream's answer is passed on, also the last key's failure
 * (such as its 429), with an `x-gateway-attempts` header saying how many keys were tried.
 *
 * Run alone:
 *
 * ```sh
 * GATEWAY_CLIENT_TOKEN="$TOKEN" npm run gateway -- --upstream https://api.openai.com --keys-file keys.txt --port 8080
 * ```
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { parseArgs } from "node:util";
import {
  CredentialRouter,
  fingerprint,
  isNoKeyAvailableError,
  type CredentialRouterOptions,
  type RouterEvent,
} from "../src/index.js";
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
   * Where log lines go (one per request, one per key state change); they name keys by hint only.
   * @defaultValue `undefined` (no logging)
   */
  log?: (line: string) => void;
}

/** A running gateway. */
export interface Gateway {
  /** Its origin, such as `http://127.0.0.1:8080`; clients use `${url}/v1` as their base URL. */
  url: string;
  port: number;
  /** The router that picks the keys. */
  router: CredentialRouter;
  /**
   * Stops accepting connections, lets the requests being answered finish, then ends every connection
   * and resolves once the port is closed.
   */
  close(): Promise<void>;
}

// Hop-by-hop headers (RFC 9110 section 7.6.1) are for one connection only. `host` and the body's
// length are set anew by fetch; `expect` is refused by undici; `authorization` is replaced by the key.
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]);
const NOT_FORWARDED = new Set([...HOP_BY_HOP, "host", "content-length", "expect", "authorization", "accept-encoding"]);
// The encodings fetch decodes: the body we stream back is no longer encoded, nor of the length the
// upstream announced.
const DECODED = new Set(["gzip", "x-gzip", "deflate", "br"]);

/**
 * Starts the gateway on `host:port`.
 * @throws TypeError for a missing or malformed option (messages never contain a key or the token).
 * @example
 * ```ts
 * const gateway = await startGateway({ upstream: "https://api.openai.com", keys, clientToken: "secret" });
 * const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "secret" });
 * ```
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { upstream, keys, clientToken, port = 0, host = "127.0.0.1", routerOptions, maxWaitMs = 0, maxBodyBytes = 32 * 1024 * 1024, blockedRetryAfterMs = 60_000, log } = options;
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
  if (keys instanceof CredentialRouter && routerOptions !== undefined) {
    throw new TypeError("routerOptions applies only when keys is a list; configure the router you pass instead");
  }
  const router = keys instanceof CredentialRouter ? keys : new CredentialRouter(keys, routerOptions);
  // Upstream paths go under the upstream's own base path, if it has one.
  const upstreamBase = upstreamUrl.origin + upstreamUrl.pathname.replace(/\/+$/, "");

  const expectedToken = sha256(clientToken);
  const authorized = (header: string | undefined): boolean => {
    const token = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "")?.[1];
    // Comparing digests of equal length, in constant time, leaks neither the token nor its length.
    return timingSafeEqual(sha256(token ?? ""), expectedToken) && token !== undefined;
  };

  const hintOf = log === undefined ? () => "" : hintLookup(router);
  const unsubscribe = log === undefined ? () => {} : router.subscribe((event) => log(describeEvent(event)));

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const startedAt = performance.now();
    const method = request.method ?? "GET";
    // Parsed, so that dot segments cannot step out of /v1 ("/v1/../x" is "/x").
    const url = new URL(request.url ?? "/", "http://gateway.invalid");
    const done = (status: number, detail = "") =>
      log?.(`${method} ${url.pathname} ${status} ${Math.round(performance.now() - startedAt)}ms${detail}`);

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
      const keys = router.snapshot().map(({ index, hint, label, state, failures }) => ({ index, hint, label, state, failures }));
      sendJson(response, 200, { size: router.size, nextReadyInMs: router.nextReadyInMs() ?? null, keys });
      return done(200);
    }

    if (url.pathname !== "/v1" && !url.pathname.startsWith("/v1/")) {
      request.resume();
      sendJson(response, 404, gatewayError(`No route for ${method} ${url.pathname}; the gateway serves /v1/* and GET /keys.`, "not_found"));
      return done(404);
    }

    // The client going away (before or during the answer) cancels the upstream call and any wait.
    const clientGone = new AbortController();
    response.on("close", () => {
      if (!response.writableFinished) clientGone.abort(new Error("the client closed the connection"));
    });

    let body: Uint8Array<ArrayBuffer> | undefined;
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

    const target = upstreamBase + url.pathname + url.search;
    const forwarded = forwardedHeaders(request.headers);
    let attempts = 0;
    let lastKey = "";
    let upstreamResponse: Response;
    try {
      upstreamResponse = await router.execute(
        (key, { attempt, signal }) => {
          attempts = attempt;
          lastKey = key;
          const headers = new Headers(forwarded);
          headers.set("authorization", `Bearer ${key}`);
          return fetch(target, { method, headers, body: body ?? null, signal, redirect: "manual" });
        },
        { signal: clientGone.signal, maxWaitMs },
      );
    } catch (error) {
      if (clientGone.signal.aborted) {
        response.destroy();
        return done(499, " (client gone)");
      }
      if (isNoKeyAvailableError(error)) {
        response.setHeader("retry-after", String(Math.ceil((error.retryAfterMs ?? blockedRetryAfterMs) / 1_000)));
        // The error's message names a duration or says every key is out, never a key.
        sendJson(response, 503, gatewayError(error.message, "no_key_available", { retry_after_ms: error.retryAfterMs === undefined ? null : Math.ceil(error.retryAfterMs) }));
        return done(503, error.retryAfterMs === undefined ? " (no key: all blocked)" : ` (no key for ${Math.ceil(error.retryAfterMs)}ms)`);
      }
      // A network failure on the last key tried. Its message is undici's ("fetch failed"); the cause
      // code (ECONNREFUSED...) is what helps, and neither holds a key.
      const code = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
      sendJson(response, 502, gatewayError(`The upstream could not be reached${typeof code === "string" ? ` (${code})` : ""}.`, "upstream_unreachable"));
      return done(502, ` attempts=${attempts}`);
    }

    response.writeHead(upstreamResponse.status, responseHeaders(upstreamResponse.headers, attempts));
    const detail = ` attempts=${attempts} key=${hintOf(lastKey)}`;
    if (upstreamResponse.body === null || method === "HEAD") {
      await upstreamResponse.body?.cancel().catch(() => {});
      response.end();
      return done(upstreamResponse.status, detail);
    }
    // Headers go out now, so that a client of a stream sees the response start before the first event.
    response.flushHeaders();
    try {
      await pipeline(Readable.fromWeb(upstreamResponse.body as NodeReadableStream<Uint8Array>), response);
      done(upstreamResponse.status, detail);
    } catch {
      // The client left, or the upstream broke off mid-body: nothing more can be said to the client.
      clientGone.abort(new Error("the response was cut short"));
      response.destroy();
      done(upstreamResponse.status, `${detail} (cut short)`);
    }
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
  const address = await listen(server, port, host);
  const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  return {
    url,
    port: address.port,
    router,
    close: () => {
      unsubscribe();
      closing = true;
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        if (active === 0) server.closeAllConnections();
        else server.closeIdleConnections();
      });
    },
  };
}

/** The client's request headers that go upstream: not hop-by-hop, not its own Authorization. */
function forwardedHeaders(incoming: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  // Headers the client named in `Connection` are hop-by-hop too.
  const listed = new Set(String(incoming.connection ?? "").toLowerCase().split(",").map((name) => name.trim()));
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || NOT_FORWARDED.has(name) || listed.has(name)) continue;
    for (const item of Array.isArray(value) ? value : [value]) headers.append(name, item);
  }
  return headers;
}

/** The upstream's response headers that go to the client. */
function responseHeaders(upstream: Headers, attempts: number): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  const listed = new Set((upstream.get("connection") ?? "").toLowerCase().split(",").map((name) => name.trim()));
  const encoding = upstream.get("content-encoding")?.trim().toLowerCase();
  const decoded = encoding !== undefined && DECODED.has(encoding);
  upstream.forEach((value, name) => {
    if (HOP_BY_HOP.has(name) || listed.has(name) || name === "set-cookie") return;
    if (decoded && (name === "content-encoding" || name === "content-length")) return;
    headers[name] = value;
  });
  const cookies = upstream.getSetCookie();
  if (cookies.length > 0) headers["set-cookie"] = cookies;
  headers["x-gateway-attempts"] = String(attempts);
  return headers;
}

/**
 * The masked hint of a key the router handed out, for log lines. `execute` gives `fn` the key but not
 * its index or hint, so the hint is found through the key's fingerprint, which snapshots carry.
 */
function hintLookup(router: CredentialRouter): (key: string) => string {
  let hintById: Map<string, string> | undefined;
  const cache = new Map<string, string>();
  return (key) => {
    let hint = cache.get(key);
    if (hint === undefined) {
      hintById ??= new Map(router.snapshot().map((row) => [row.id, row.hint]));
      hint = hintById.get(fingerprint(key)) ?? "?";
      cache.set(key, hint);
    }
    return hint;
  };
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

/** The whole request body, as bytes that fetch can send again with each key. */
async function readBody(request: IncomingMessage, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of request) {
    length += (chunk as Buffer).length;
    if (length > maxBytes) throw new BodyTooLargeError();
    chunks.push(chunk as Buffer);
  }
  const body = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
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
                          [--max-wait-ms <ms>] [--cooldown-ms <ms>]

  --upstream      where /v1/* goes, such as https://api.openai.com        (or GATEWAY_UPSTREAM)
  --keys-file     the API keys, one per line; blank lines and # comments  (or GATEWAY_KEYS_FILE)
                  are skipped
  --client-token  what clients send as "Authorization: Bearer <token>"   (or GATEWAY_CLIENT_TOKEN;
                  prefer the variable: arguments are visible to other users)
  --port          the port to listen on; 0 takes a free one (default 0)    (or GATEWAY_PORT)
  --host          the address to bind (default 127.0.0.1)                 (or GATEWAY_HOST)
  --max-wait-ms   how long a request may wait for a cooling key (default 0) (or GATEWAY_MAX_WAIT_MS)
  --cooldown-ms   how long a key cools after a 5xx without Retry-After     (or GATEWAY_COOLDOWN_MS)
                  (default 30000)`;

/**
 * The command line: starts a gateway from flags (or environment variables), prints
 * `listening on <url>`, logs requests to stderr and stops on SIGINT/SIGTERM.
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
  const durationTexts = { "max-wait-ms": values["max-wait-ms"] ?? env.GATEWAY_MAX_WAIT_MS, "cooldown-ms": values["cooldown-ms"] ?? env.GATEWAY_COOLDOWN_MS };
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
  for (const name of ["max-wait-ms", "cooldown-ms"] as const) {
    const text = durationTexts[name];
    if (text === undefined || text === "") continue;
    const value = Number(text);
    const variable = `GATEWAY_${name.toUpperCase().replaceAll("-", "_")}`;
    if (!(value >= 0 && value < Infinity)) return usageError(`--${name} (or ${variable}) must be a number >= 0, received ${JSON.stringify(text)}`);
    durations[name] = value;
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
    };
    if (durations["max-wait-ms"] !== undefined) options.maxWaitMs = durations["max-wait-ms"];
    if (durations["cooldown-ms"] !== undefined) options.routerOptions = { cooldownMs: durations["cooldown-ms"] };
    gateway = await startGateway(options);
  } catch (error) {
    // The router's and our own messages name indices and options, never a key.
    return usageError(error instanceof Error ? error.message : "the gateway could not start");
  }
  console.log(`listening on ${gateway.url}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await gateway.close();
  return 0;
}

runAsProgram(import.meta.url, () => main(process.argv.slice(2)));

