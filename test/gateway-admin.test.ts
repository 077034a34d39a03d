import { readFileSync } from "node:fs";
import { request, type IncomingMessage } from "node:http";
import { afterEach, describe, expect, it, vi } from "vitest";
import { startAdmin, type HelloEvent, type KeyRow } from "../examples/gateway-admin.js";
import { startGateway, type Gateway, type GatewayOptions } from "../examples/gateway.js";
import { GatewayStats } from "../examples/gateway-stats.js";
import { startMockUpstream, type MockUpstream } from "../examples/mock-upstream.js";
import { CredentialRouter, fingerprint } from "../src/index.js";
import { manualClock } from "./helpers/fixtures.js";

// Each test starts its own servers, so that it passes alone and in any order; waits for an event are
// bounded far above what a loaded machine needs.
vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 });

const TOKEN = "gateway-client-token-0123456789";
const KEY_A = "sk-test-AAAA1111bbbb2222cccc";
const KEY_B = "sk-test-BBBB3333dddd4444eeee";
const REVOKED = "sk-test-REVOKED777hhhh8888";
const SECRETS = [KEY_A, KEY_B, REVOKED, TOKEN, ...[KEY_A, KEY_B, REVOKED].map(fingerprint)];

const running: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

/** A mock provider (no random errors or delays, a clock that does not move) and a gateway with an admin listener. */
async function setup(gatewayOptions: Partial<GatewayOptions> = {}): Promise<{ upstream: MockUpstream; gateway: Gateway; admin: string }> {
  const upstream = await startMockUpstream({ keys: [KEY_A, KEY_B], revokedKeys: [REVOKED], errorRate: 0, slowRate: 0, chunkDelayMs: 0, now: manualClock(10_000).now });
  running.push(upstream);
  const options: GatewayOptions = { upstream: upstream.url, keys: [REVOKED, KEY_A, KEY_B], clientToken: TOKEN, adminPort: 0, ...gatewayOptions };
  // The first ready key, always; no pre-emptive cooldowns: each test knows which key a request goes to.
  if (!(options.keys instanceof CredentialRouter)) options.routerOptions ??= { strategy: { type: "fill-first" }, preemptive: false, labels: ["old", "main", "spare"] };
  const gateway = await startGateway(options);
  running.push(gateway);
  return { upstream, gateway, admin: gateway.adminUrl! };
}

function chat(gateway: Gateway, model: string) {
  return fetch(`${gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });
}

/** A request to the admin with exactly these headers (fetch would not let a test set Host or Origin). */
function raw(url: string, method: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method, headers }, (incoming) => {
      let text = "";
      incoming.setEncoding("utf8");
      incoming.on("data", (chunk: string) => (text += chunk));
      incoming.on("end", () => resolve({ status: incoming.statusCode ?? 0, text }));
    });
    outgoing.on("error", reject);
    outgoing.end();
  });
}

/** The dashboard's event stream, parsed: every event so far, and a way to wait for the next one that matches. */
async function events(url: string) {
  const incoming = await new Promise<IncomingMessage>((resolve, reject) => request(`${url}/events`, resolve).on("error", reject).end());
  const seen: Array<{ event: string; data: unknown; text: string }> = [];
  const waiting: Array<{ matches: (event: string, data: unknown) => boolean; resolve: (data: unknown) => void }> = [];
  let buffer = "";
  incoming.setEncoding("utf8");
  incoming.on("data", (chunk: string) => {
    buffer += chunk;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event === undefined || data === undefined) continue;
      const parsed = JSON.parse(data) as unknown;
      seen.push({ event, data: parsed, text: block });
      for (const waiter of waiting.filter(({ matches }) => matches(event, parsed))) {
        waiting.splice(waiting.indexOf(waiter), 1);
        waiter.resolve(parsed);
      }
    }
  });
  return {
    seen,
    next<T>(event: string, matches: (data: T) => boolean = () => true): Promise<T> {
      const found = seen.find((entry) => entry.event === event && matches(entry.data as T));
      if (found !== undefined) return Promise.resolve(found.data as T);
      return new Promise((resolve) => waiting.push({ matches: (name, data) => name === event && matches(data as T), resolve: resolve as (data: unknown) => void }));
    },
    close: () => incoming.destroy(),
  };
}

/**
 * Prometheus's text format, parsed: each sample as its name, labels and value. Comments (HELP, TYPE,
 * UNIT) are skipped; label values are unescaped (\\, \", \n).
 */
function parsePrometheus(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const samples = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (match === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (match[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)",?/g)) {
      labels[name!] = value!.replace(/\\(.)/g, (_, escaped: string) => (escaped === "n" ? "\n" : escaped));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

describe("gateway admin: GET /metrics", () => {
  it("serves every metric the README names, with the values of what the router did, and no key", async () => {
    const { upstream, gateway, admin } = await setup();
    // One request: the revoked key is blocked (401), key A cools for gpt-4o (429), key B serves it.
    upstream.throttle(KEY_A, 60_000, "gpt-4o");
    const first = await chat(gateway, "gpt-4o");
    expect(first.headers.get("x-gateway-attempts")).toBe("3");
    await first.text();
    // Another: key B cools for gpt-4o too, and no key is left for it (an exhausted pick).
    upstream.throttle(KEY_B, 60_000, "gpt-4o");
    expect((await chat(gateway, "gpt-4o")).status).toBe(429);

    const response = await fetch(`${admin}/metrics`);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await response.text();
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    const samples = parsePrometheus(text).map(({ name, labels: { otel_scope_name: _, ...labels }, value }) => ({ name, labels, value }));
    const value = (name: string, labels: Record<string, string>) => samples.find((sample) => sample.name === name && JSON.stringify(sample.labels) === JSON.stringify(labels))?.value;

    // The README's metric table, in Prometheus's names: dots become _, counters end in _total.
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("\n## Watching your keys\n"), readme.indexOf("\n## API\n"));
    const named = [...section.matchAll(/^\| `(credential_router\.[\w.]+)` +\| ([a-z ]+?) +\|/gm)].map(([, name, instrument]) =>
      name!.replaceAll(".", "_") + (instrument!.endsWith("counter") ? "_total" : ""),
    );
    expect(named.sort()).toEqual([
      "credential_router_exhaustions_total",
      "credential_router_key_state",
      "credential_router_keys",
      "credential_router_marks_total",
      "credential_router_picks_total",
    ]);
    for (const name of named) expect(samples.some((sample) => sample.name === name), name).toBe(true);

    expect(value("credential_router_keys", { state: "ready" })).toBe(2);
    expect(value("credential_router_keys", { state: "blocked" })).toBe(1);
    expect(value("credential_router_keys", { state: "cooldown" })).toBe(0);
    expect(value("credential_router_keys", { state: "cooldown", scope: "gpt-4o" })).toBe(2);
    expect(value("credential_router_keys", { state: "ready", scope: "gpt-4o" })).toBe(0);
    expect(value("credential_router_key_state", { index: "0", hint: "sk-t…8888", label: "old", state: "blocked", reason: "auth" })).toBe(1);
    expect(value("credential_router_picks_total", {})).toBe(gateway.router.picks);
    expect(gateway.router.picks).toBe(4);
    expect(value("credential_router_marks_total", { state: "blocked", reason: "auth" })).toBe(1);
    expect(value("credential_router_marks_total", { state: "cooldown", reason: "rate_limit", scope: "gpt-4o" })).toBe(2);
    expect(value("credential_router_exhaustions_total", { scope: "gpt-4o" })).toBe(1);
    expect(value("credential_router_exhaustions_total", {})).toBe(0);
  });
});

describe("gateway admin: key actions", () => {
  it("clears a blocked key (every scope too) and disables a key, by index", async () => {
    const { upstream, gateway, admin } = await setup();
    upstream.throttle(KEY_A, 60_000, "gpt-4o");
    await (await chat(gateway, "gpt-4o")).text();
    expect(gateway.router.stateOf(REVOKED)).toEqual({ status: "blocked" });
    expect(gateway.router.stateOf(KEY_A, "gpt-4o")?.status).toBe("cooldown");

    const cleared = await fetch(`${admin}/keys/0/clear`, { method: "POST", headers: { "x-requested-with": "test" } });
    expect(cleared.status).toBe(200);
    expect(await cleared.json()).toEqual({ index: 0, hint: "sk-t…8888", state: { status: "ready" } });
    expect(gateway.router.stateOf(REVOKED)).toEqual({ status: "ready" });
    expect((await fetch(`${admin}/keys/1/clear`, { method: "POST", headers: { "x-requested-with": "test" } })).status).toBe(200);
    expect(gateway.router.stateOf(KEY_A, "gpt-4o")).toEqual({ status: "ready" });

    const disabled = await fetch(`${admin}/keys/2/disable`, { method: "POST", headers: { "x-requested-with": "test" } });
    expect(await disabled.json()).toEqual({ index: 2, hint: "sk-t…eeee", state: { status: "disabled" }, reason: "manual" });
    expect(gateway.router.stateOf(KEY_B)).toEqual({ status: "disabled" });
  });

  it("refuses a POST a page of another site could send: no X-Requested-With, another Origin, a cross-site fetch", async () => {
    const { gateway, admin } = await setup();
    gateway.router.markBlocked(KEY_A, { reason: "auth" });
    const url = `${admin}/keys/1/clear`;
    const host = new URL(admin).host;
    for (const headers of [
      {},
      { "content-type": "application/x-www-form-urlencoded" },
      { "x-requested-with": "x", origin: "https://evil.example" },
      { "x-requested-with": "x", origin: `http://localhost:1` },
      { "x-requested-with": "x", "sec-fetch-site": "cross-site" },
      { "x-requested-with": "x", "sec-fetch-site": "same-site" },
    ]) {
      const answer = await raw(url, "POST", headers);
      expect(answer.status, JSON.stringify(headers)).toBe(403);
      expect(JSON.parse(answer.text).error.code).toBe("cross_site_request");
    }
    expect(gateway.router.stateOf(KEY_A)).toEqual({ status: "blocked" });
    // The dashboard's own request: same origin.
    expect((await raw(url, "POST", { "x-requested-with": "dashboard", origin: `http://${host}`, "sec-fetch-site": "same-origin" })).status).toBe(200);
    expect(gateway.router.stateOf(KEY_A)).toEqual({ status: "ready" });
  });

  it("answers only requests addressed to the loopback (a DNS name rebound to 127.0.0.1 is turned away)", async () => {
    const { admin } = await setup();
    const port = new URL(admin).port;
    for (const host of [`evil.example:${port}`, "evil.example", `127.0.0.1.evil.example:${port}`]) {
      expect((await raw(`${admin}/`, "GET", { host })).status, host).toBe(403);
      expect((await raw(`${admin}/keys/1/disable`, "POST", { host, "x-requested-with": "x" })).status, host).toBe(403);
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, "localhost:8443", `[::1]:${port}`]) {
      expect((await raw(`${admin}/keys`, "GET", { host })).status, host).toBe(200);
    }
  });

  it("answers 404 for an index out of range, 405 for a GET, and 409 for a key the gateway has not seen when it was given a router", async () => {
    const router = new CredentialRouter([REVOKED, KEY_A, KEY_B]);
    const { gateway, admin } = await setup({ keys: router });
    const post = (path: string) => fetch(`${admin}${path}`, { method: "POST", headers: { "x-requested-with": "test" } });
    expect((await post("/keys/3/clear")).status).toBe(404);
    expect((await post("/keys/-1/clear")).status).toBe(404);
    expect((await post("/nothing")).status).toBe(404);
    expect((await fetch(`${admin}/keys/1/clear`)).status).toBe(405);
    const unknown = await post("/keys/1/disable");
    expect(unknown.status).toBe(409);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("key_unknown");
    // Once a request has used it, the gateway knows it.
    await (await chat(gateway, "m")).text();
    expect((await post("/keys/0/clear")).status).toBe(200);
  });
});

describe("gateway admin: the dashboard's data", () => {
  it("serves GET /keys as the gateway does, without fingerprints", async () => {
    const { gateway, admin } = await setup();
    gateway.router.markBlocked(REVOKED, { reason: "auth" });
    const viaAdmin = await (await fetch(`${admin}/keys`)).json();
    const viaGateway = await (await fetch(`${gateway.url}/keys`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    expect(viaAdmin).toEqual(viaGateway);
    expect(JSON.stringify(viaAdmin)).not.toContain(fingerprint(REVOKED));
  });

  it("streams a hello with every row, then the rows that change, each with what the provider answered its key", async () => {
    const { upstream, gateway, admin } = await setup();
    const stream = await events(admin);
    try {
      const hello = await stream.next<HelloEvent>("hello");
      expect(hello.keys.map(({ index, hint, label, state }) => ({ index, hint, label, state }))).toEqual([
        { index: 0, hint: "sk-t…8888", label: "old", state: "ready" },
        { index: 1, hint: "sk-t…cccc", label: "main", state: "ready" },
        { index: 2, hint: "sk-t…eeee", label: "spare", state: "ready" },
      ]);
      upstream.throttle(KEY_A, 60_000, "gpt-4o");
      await (await chat(gateway, "gpt-4o")).text();
      const blocked = await stream.next<{ keys: KeyRow[] }>("keys", ({ keys }) => keys.some((row) => row.index === 0 && row.state === "blocked"));
      expect(blocked.keys.find((row) => row.index === 0)).toMatchObject({ reason: "auth", rejected: 1, served: 0 });
      const cooling = await stream.next<{ keys: KeyRow[] }>("keys", ({ keys }) => keys.some((row) => row.index === 1 && row.scopes.length > 0));
      const rowA = cooling.keys.find((row) => row.index === 1)!;
      expect(rowA).toMatchObject({ state: "ready", rateLimited: 1, served: 0 });
      expect(rowA.scopes).toEqual([{ scope: "gpt-4o", state: "cooldown", reason: "rate_limit", remainingMs: expect.any(Number) }]);
      expect(rowA.scopes[0]!.remainingMs).toBeGreaterThan(50_000);
      const tick = await stream.next<{ totals: { requests: number; rateLimited: number } }>("tick", ({ totals }) => totals.requests === 1);
      expect(tick.totals).toMatchObject({ requests: 1, rateLimited: 1, failed: 0 });
      for (const { text } of stream.seen) for (const secret of SECRETS) expect(text).not.toContain(secret);
    } finally {
      stream.close();
    }
  });

  it("tells the dashboards already open of a change before a new one's hello counts it as sent", async () => {
    // Nothing is sent by timer during the test: only a newcomer's arrival can send the change.
    const admin = await startAdmin({ tickMs: 3_600_000, eventDelayMs: 3_600_000 });
    running.push(admin);
    const router = new CredentialRouter([KEY_A, KEY_B]);
    admin.watch({ router, stats: new GatewayStats(2), keyAt: () => undefined });
    const first = await events(admin.url);
    let second: Awaited<ReturnType<typeof events>> | undefined;
    try {
      await first.next<HelloEvent>("hello");
      router.markBlocked(KEY_B, { reason: "auth" });
      second = await events(admin.url);
      const change = await first.next<{ keys: KeyRow[] }>("keys");
      expect(change.keys.map(({ index, state }) => [index, state])).toEqual([[1, "blocked"]]);
      // The newcomer has it in its hello.
      expect((await second.next<HelloEvent>("hello")).keys[1]!.state).toBe("blocked");
    } finally {
      first.close();
      second?.close();
    }
  });

  it("starts the dashboards over when it watches another gateway", async () => {
    const admin = await startAdmin();
    running.push(admin);
    const stream = await events(admin.url);
    try {
      const first = new CredentialRouter([KEY_A]);
      admin.watch({ router: first, stats: new GatewayStats(1), keyAt: () => KEY_A, title: "run 1" });
      expect((await stream.next<HelloEvent>("hello", ({ title }) => title === "run 1")).size).toBe(1);
      const second = new CredentialRouter([KEY_A, KEY_B]);
      admin.watch({ router: second, stats: new GatewayStats(2), keyAt: () => undefined, title: "run 2" });
      expect((await stream.next<HelloEvent>("hello", ({ title }) => title === "run 2")).size).toBe(2);
      // Marks on the router it no longer watches are not its business.
      first.markBlocked(KEY_A);
      second.markBlocked(KEY_B);
      const change = await stream.next<{ keys: KeyRow[] }>("keys");
      expect(change.keys.map(({ index, state }) => [index, state])).toEqual([[1, "blocked"]]);
    } finally {
      stream.close();
    }
  });

  it("serves one self-contained page: its own script and style only, nothing from elsewhere, no framing", async () => {
    const { admin } = await setup();
    const page = await fetch(`${admin}/`);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const policy = page.headers.get("content-security-policy")!;
    expect(policy).toMatch(/script-src 'sha256-[\w+/=]+'/);
    expect(policy).toContain("default-src 'none'");
    expect(policy).toContain("frame-ancestors 'none'");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    const html = await page.text();
    expect(html).not.toMatch(/\b(?:src|href)=|@import|url\(|https?:\/\//);
    for (const secret of SECRETS) expect(html).not.toContain(secret);
  });

  it("listens on 127.0.0.1 only, and closes with the gateway", async () => {
    const { gateway, admin } = await setup();
    expect(new URL(admin).hostname).toBe("127.0.0.1");
    running.splice(running.indexOf(gateway), 1);
    await gateway.close();
    await expect(fetch(`${admin}/keys`)).rejects.toThrow();
  });

  it("rejects an adminPort out of range", async () => {
    await expect(startGateway({ upstream: "http://127.0.0.1:9", keys: [KEY_A], clientToken: TOKEN, adminPort: 70_000 })).rejects.toThrow(RangeError);
    await expect(startAdmin({ port: -1 })).rejects.toThrow(RangeError);
    await expect(startAdmin({ tickMs: 0 })).rejects.toThrow(/tickMs/);
    await expect(startAdmin({ eventDelayMs: -1 })).rejects.toThrow(/eventDelayMs/);
  });
});
