/**
 * The gateway's admin listener, for operators: on 127.0.0.1 only (as Envoy's admin listener), apart
 * from the port clients use, and without the client token.
 *
 * - `GET /`: a live dashboard (`./dashboard.html`: one file of HTML, CSS and JS, nothing loaded from
 *   elsewhere), one row per key, updated by the server-sent events of `GET /events`.
 * - `GET /events`: server-sent events: `hello` (everything, on connecting and when the admin watches
 *   another gateway), `keys` (the rows that changed, 50 ms after a change of state, when a cooldown
 *   ends, and each second for the counters), `tick` (each second: totals and the per-second series).
 * - `GET /metrics`: the router's metrics in Prometheus's text format, from `credential-router/otel`'s
 *   `instrument()` through the OpenTelemetry Prometheus exporter (see the README's "Watching your
 *   keys" for the names).
 * - `GET /keys`: what the gateway's own `GET /keys` answers.
 * - `POST /keys/<index>/clear`, `POST /keys/<index>/disable`: `router.clearCooldown(key)` (every
 *   scope too) and `router.markDisabled(key, { reason: "manual" })`.
 *
 * A browser page from anywhere could send requests to a loopback port, so:
 * - the `Host` header must name the loopback (`127.0.0.1`, `localhost`, `[::1]`, any port), which
 *   turns away pages that reach it through a DNS name rebound to 127.0.0.1;
 * - a POST must carry an `X-Requested-With` header (any value): a form cannot send one, and a page of
 *   another origin can send one only after a CORS preflight, which this listener never approves; a
 *   POST whose `Origin` (or `Sec-Fetch-Site`) says it comes from another origin is refused as well;
 * - the page cannot be framed (`frame-ancestors 'none'`), and runs only its own script and style
 *   (a Content-Security-Policy with their hashes).
 *
 * Every local user can reach a loopback port: on a shared machine, put the admin behind something
 * that authenticates. No page, event or answer holds a key: keys are shown by index, masked hint and
 * label.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import type { CredentialRouter, KeyStatus, RouterEvent } from "../src/index.js";
import { instrument } from "../src/otel/index.js";
import type { GatewaySeries, GatewayStats, GatewayTotals, KeyCounts } from "./gateway-stats.js";
import { listen } from "./program.js";

/** What the admin shows and acts on: one gateway's router, counters and keys. */
export interface AdminSource {
  router: CredentialRouter;
  stats: GatewayStats;
  /** The key at `index`, for the actions; `undefined` when the gateway does not know it. */
  keyAt(index: number): string | undefined;
  /**
   * A line under the dashboard's heading, such as the demo's phase.
   * @defaultValue `""`
   */
  title?: string;
}

/** Options of {@link startAdmin}. */
export interface AdminOptions {
  /** @defaultValue `0` (a free port) */
  port?: number;
  /**
   * How often the counters, the chart and the time left are sent to the dashboards, in milliseconds.
   * @defaultValue `1_000`
   */
  tickMs?: number;
  /**
   * How long after a router event the changed rows are sent, in milliseconds: the events of a burst
   * (a request that tries three keys) go out together.
   * @defaultValue `50`
   */
  eventDelayMs?: number;
}

/** A running admin listener. */
export interface Admin {
  /** Its origin, `http://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** Shows and acts on `source` from now on; open dashboards start over with it. */
  watch(source: AdminSource): void;
  /** Ends the event streams and closes the port. */
  close(): Promise<void>;
}

/** One key as the dashboard shows it. */
export interface KeyRow extends KeyCounts {
  index: number;
  hint: string;
  label?: string;
  state: KeyStatus;
  /** For a cooldown: how long it has left, in milliseconds, when the row was made. */
  remainingMs?: number;
  /** Why the key is out, when it is. */
  reason?: string;
  /** The scopes (models) in which the key is out. */
  scopes: Array<{ scope: string; state: KeyStatus; reason: string; remainingMs?: number }>;
}

/** The `hello` event: everything the dashboard shows. */
export interface HelloEvent {
  title: string;
  size: number;
  keys: KeyRow[];
  totals: GatewayTotals;
  series: GatewaySeries;
}

/** The header a POST must carry (any value). */
export const ACTION_HEADER = "x-requested-with";

const LOOPBACK_HOST = /^(?:127\.0\.0\.1|localhost|\[::1\])(?::\d{1,5})?$/i;
const KEY_ACTION = /^\/keys\/(\d{1,9})\/(clear|disable)$/;
const GET_ROUTES = new Set(["/", "/events", "/metrics", "/keys", "/favicon.ico"]);

/** The dashboard page, with a policy that lets it run its own script and style only. */
function loadPage(): { html: string; policy: string } {
  const html = readFileSync(new URL("./dashboard.html", import.meta.url), "utf8");
  const hashes = (tag: "script" | "style") =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((match) => `'sha256-${createHash("sha256").update(match[1]!).digest("base64")}'`).join(" ");
  const policy = [
    "default-src 'none'",
    `script-src ${hashes("script")}`,
    `style-src ${hashes("style")}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
  return { html, policy };
}

/**
 * Starts the admin listener on 127.0.0.1 (and nowhere else). It shows nothing until given a
 * gateway with {@link Admin.watch}.
 * @example
 * ```ts
 * const admin = await startAdmin({ port: 9090 });
 * admin.watch({ router: gateway.router, stats: gateway.stats, keyAt: (index) => keys[index] });
 * ```
 */
export async function startAdmin(options: AdminOptions = {}): Promise<Admin> {
  const { port = 0, tickMs = 1_000, eventDelayMs = 50 } = options;
  if (!(Number.isInteger(port) && port >= 0 && port <= 65_535)) throw new RangeError(`port must be an integer from 0 to 65535, received ${String(port)}`);
  if (!(tickMs >= 10 && tickMs < 2 ** 31)) throw new RangeError(`tickMs must be a number of milliseconds from 10, received ${String(tickMs)}`);
  if (!(eventDelayMs >= 0 && eventDelayMs < 2 ** 31)) throw new RangeError(`eventDelayMs must be a number of milliseconds from 0, received ${String(eventDelayMs)}`);
  const page = loadPage();
  let source: AdminSource | undefined;
  const streams = new Set<ServerResponse>();
  // What each dashboard was last sent of each row, to send only the rows that change.
  let sent: string[] = [];
  let unsubscribe: (() => void) | undefined;
  let tickTimer: NodeJS.Timeout | undefined;
  let soonTimer: NodeJS.Timeout | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  let framing = false;
  // The watched router's metrics: a meter provider of its own, read by the exporter at each scrape.
  let metrics: { exporter: PrometheusExporter; provider: MeterProvider; stop: () => void } | undefined;
  const measure = (next: AdminSource | undefined) => {
    if (metrics !== undefined) {
      metrics.stop();
      void metrics.provider.shutdown().catch(() => {});
      metrics = undefined;
    }
    if (next === undefined) return;
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({ readers: [exporter] });
    metrics = { exporter, provider, stop: instrument(next.router, { meter: provider.getMeter("credential-router") }) };
  };

  const broadcast = (event: string, data: unknown) => {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const stream of streams) stream.write(text);
  };

  /** The rows of the watched router, and a timer for the next cooldown to end. */
  const rows = (): KeyRow[] => {
    if (source === undefined) return [];
    framing = true;
    let snapshot;
    try {
      // Ends the cooldowns that ran out (their `ready` events belong to this frame).
      snapshot = source.router.snapshot();
    } finally {
      framing = false;
    }
    let nextEndMs = Infinity;
    const result = snapshot.map((key): KeyRow => {
      const row: KeyRow = { index: key.index, hint: key.hint, state: key.state.status, ...source!.stats.key(key.index), scopes: [] };
      if (key.label !== undefined) row.label = key.label;
      if (key.reason !== undefined) row.reason = key.reason;
      if (key.state.status === "cooldown") nextEndMs = Math.min(nextEndMs, (row.remainingMs = Math.ceil(key.state.remainingMs)));
      for (const { scope, state, reason } of key.scopes) {
        const entry: KeyRow["scopes"][number] = { scope, state: state.status, reason };
        if (state.status === "cooldown") nextEndMs = Math.min(nextEndMs, (entry.remainingMs = Math.ceil(state.remainingMs)));
        row.scopes.push(entry);
      }
      return row;
    });
    // The dashboard hears of a cooldown's end when it ends, not at the next tick.
    clearTimeout(expiryTimer);
    if (nextEndMs < tickMs) expiryTimer = setTimeout(sendChanges, nextEndMs + 5).unref();
    return result;
  };

  /** A row as compared from one frame to the next: time left as the deadline it points to. */
  const signature = (row: KeyRow, wallNow: number) =>
    JSON.stringify(row, (name, value: unknown) => (name === "remainingMs" ? Math.round((wallNow + (value as number)) / 100) : value));

  const hello = (): HelloEvent => {
    const keys = rows();
    const wallNow = Date.now();
    sent = keys.map((row) => signature(row, wallNow));
    return {
      title: source?.title ?? "",
      size: keys.length,
      keys,
      totals: source?.stats.totals() ?? { requests: 0, waited: 0, failed: 0, rateLimited: 0 },
      series: source?.stats.series() ?? { end: Math.floor(Date.now() / 1_000), requests: [], rateLimited: [] },
    };
  };

  function sendChanges(): void {
    clearTimeout(soonTimer);
    soonTimer = undefined;
    if (streams.size === 0 || source === undefined) return;
    const wallNow = Date.now();
    const changed = rows().filter((row) => {
      const text = signature(row, wallNow);
      if (sent[row.index] === text) return false;
      sent[row.index] = text;
      return true;
    });
    if (changed.length > 0) broadcast("keys", { keys: changed });
  }

  const onRouterEvent = (event: RouterEvent) => {
    if (event.type === "exhausted" || framing || soonTimer !== undefined) return;
    soonTimer = setTimeout(sendChanges, eventDelayMs).unref();
  };

  const tick = () => {
    if (source === undefined) return;
    sendChanges();
    broadcast("tick", { totals: source.stats.totals(), series: source.stats.series() });
  };

  /** Listens to the router and ticks while someone watches; stops when nobody does. */
  const follow = () => {
    const watching = streams.size > 0 && source !== undefined;
    if (watching && unsubscribe === undefined) {
      unsubscribe = source!.router.subscribe(onRouterEvent);
      tickTimer = setInterval(tick, tickMs).unref();
    } else if (!watching && unsubscribe !== undefined) {
      unsubscribe();
      unsubscribe = undefined;
      clearInterval(tickTimer);
      clearTimeout(soonTimer);
      clearTimeout(expiryTimer);
      soonTimer = undefined;
    }
  };

  const handle = (request: IncomingMessage, response: ServerResponse): void => {
    request.resume();
    response.setHeader("cache-control", "no-store");
    response.setHeader("x-content-type-options", "nosniff");
    response.setHeader("referrer-policy", "no-referrer");
    const method = request.method ?? "GET";
    const path = (request.url ?? "/").split("?")[0]!;
    if (!LOOPBACK_HOST.test(request.headers.host ?? "")) {
      return sendJson(response, 403, adminError("The admin listener answers only requests addressed to the loopback (Host 127.0.0.1 or localhost).", "wrong_host"));
    }

    const action = KEY_ACTION.exec(path);
    if (action !== null) {
      if (method !== "POST") {
        response.setHeader("allow", "POST");
        return sendJson(response, 405, adminError(`Use POST ${path}.`, "method_not_allowed"));
      }
      const refusal = crossSiteRefusal(request);
      if (refusal !== undefined) return sendJson(response, 403, adminError(refusal, "cross_site_request"));
      if (source === undefined) return sendJson(response, 503, adminError("The admin is not watching a gateway yet.", "no_gateway"));
      const index = Number(action[1]);
      if (index >= source.router.size) return sendJson(response, 404, adminError(`No key at index ${index}; there are ${source.router.size}.`, "no_such_key"));
      const key = source.keyAt(index);
      if (key === undefined) {
        return sendJson(response, 409, adminError(`The gateway has not used the key at index ${index} yet, and was given a router, not the keys: act on that router instead.`, "key_unknown"));
      }
      if (action[2] === "clear") source.router.clearCooldown(key);
      else source.router.markDisabled(key, { reason: "manual" });
      const row = source.router.snapshot()[index]!;
      return sendJson(response, 200, { index, hint: row.hint, state: row.state, ...(row.reason === undefined ? {} : { reason: row.reason }) });
    }

    if (!GET_ROUTES.has(path)) {
      return sendJson(response, 404, adminError(`No route for ${method} ${path}; the admin serves /, /events, /metrics, /keys and POST /keys/<index>/clear or /disable.`, "not_found"));
    }
    if (method !== "GET" && method !== "HEAD") {
      response.setHeader("allow", "GET, HEAD");
      return sendJson(response, 405, adminError(`Use GET ${path}.`, "method_not_allowed"));
    }
    switch (path) {
      case "/":
        response.writeHead(200, {
          "content-type": "text/html; charset=utf-8",
          "content-security-policy": page.policy,
          "x-frame-options": "DENY",
          "content-length": Buffer.byteLength(page.html),
        });
        return void response.end(method === "HEAD" ? undefined : page.html);
      case "/events":
        // The dashboards already open hear of what changed before the newcomer's hello counts it as sent.
        sendChanges();
        response.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", connection: "keep-alive" });
        // The browser reconnects after this long when the stream breaks.
        response.write(`retry: 1000\n\nevent: hello\ndata: ${JSON.stringify(hello())}\n\n`);
        streams.add(response);
        follow();
        response.on("close", () => {
          streams.delete(response);
          follow();
        });
        return;
      case "/keys":
        return sendJson(response, 200, source === undefined ? { size: 0, nextReadyInMs: null, keys: [] } : keyList(source.router));
      case "/metrics":
        if (metrics === undefined) return sendJson(response, 503, adminError("The admin is not watching a gateway yet.", "no_gateway"));
        return metrics.exporter.getMetricsRequestHandler(request, response);
      default:
        // The browser's favicon.ico: none.
        response.writeHead(204);
        return void response.end();
    }
  };

  const server = createServer(handle);
  const address = await listen(server, port, "127.0.0.1");
  return {
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    watch(next) {
      if (unsubscribe !== undefined) {
        unsubscribe();
        unsubscribe = undefined;
        clearInterval(tickTimer);
      }
      source = next;
      measure(next);
      follow();
      if (streams.size > 0) broadcast("hello", hello());
    },
    close: () => {
      source = undefined;
      measure(undefined);
      for (const stream of streams) stream.end();
      streams.clear();
      follow();
      return closeServer(server);
    },
  };
}

/**
 * Why a POST is refused as coming from another site, or `undefined` when it is not: it must carry
 * `X-Requested-With`, and its `Origin` and `Sec-Fetch-Site`, when sent, must say it comes from here.
 */
function crossSiteRefusal(request: IncomingMessage): string | undefined {
  if (request.headers[ACTION_HEADER] === undefined) {
    return "A key action needs an X-Requested-With header (any value): the dashboard sends one, a form on another site cannot.";
  }
  const { origin } = request.headers;
  if (origin !== undefined && origin !== `http://${request.headers.host}`) return "A key action must come from the admin's own origin.";
  const site = request.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none") return "A key action must come from the admin's own origin.";
  return undefined;
}

/** What `GET /keys` answers: each key's index, hint, label, state and failure count; no key, no fingerprint. */
export function keyList(router: CredentialRouter) {
  // Not the snapshot's `id`: a key's SHA-256 would let whoever reads this test a guessed key.
  const keys = router.snapshot().map(({ index, hint, label, state, failures }) => ({ index, hint, label, state, failures }));
  return { size: router.size, nextReadyInMs: router.nextReadyInMs() ?? null, keys };
}

function adminError(message: string, code: string) {
  return { error: { message, type: "admin_error", code } };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });
}
