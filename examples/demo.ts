/**
 * `npm run demo`: see credential-router work. Starts a mock OpenAI-style provider (8 keys, one of them
 * revoked, the others at different usage tiers, limits that refill continuously, a few 5xx), the
 * gateway in front of it and the gateway's dashboard, and sends the same 300 chat completions through
 * the gateway four times with the official OpenAI SDK (some streamed), to compare:
 *
 * 1. and 2. pre-emptive cooldowns on and off (the router's `preemptive` option): how many 429s the
 *    provider sent;
 * 3. and 4. two models with limits of their own, with cooldowns per model (the gateway's scopes) and
 *    per key: how many requests waited for a key and how many failed.
 *
 * Each run gets a fresh provider and gateway with the same settings and seed, and the same requests
 * on the same schedule (started at a steady rate, as many clients send them, not one after another),
 * so that the only difference between two runs is the option compared.
 *
 * The pieces (load generator, progress line, table) live in `./load.ts`, re-exported here, so that
 * another entry point (several gateways sharing state, for instance) can reuse them.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { startAdmin, type Admin } from "./gateway-admin.js";
import { startGateway, type Gateway } from "./gateway.js";
import type { GatewayTotals } from "./gateway-stats.js";
import { formatSummary, keyRows, printTable, runLoad, startProgress, stateCounts, type LoadProgress, type LoadResult } from "./load.js";
import { mulberry32, startMockUpstream, type MockKeyStats, type MockUpstream, type MockUpstreamOptions } from "./mock-upstream.js";
import { runAsProgram } from "./program.js";

export { formatSummary, formatTable, keyRows, percentile, printTable, runLoad, startProgress, stateCounts } from "./load.js";
export type { KeyRow, LoadOptions, LoadProgress, LoadResult } from "./load.js";

/** The demo's settings: the provider's limits and the load sent at it. */
export const DEMO = {
  keys: 8,
  /** Which key the provider has revoked. */
  revokedIndex: 5,
  /** Requests per key per window at tier 1x, for the demo's one model and for `mock-small`. */
  requestsPerWindow: 10,
  /** Each key's limits as a multiple of the 1x ones, as usage tiers give them (the revoked key's is not used). */
  tiers: [0.3, 0.3, 0.6, 1, 2, 1, 3, 4],
  windowMs: 1_000,
  errorRate: 0.02,
  slowRate: 0.05,
  slowMs: 300,
  chunkDelayMs: 10,
  seed: 7,
  requests: 300,
  /** Requests started per second. */
  ratePerSecond: 80,
  /** At most this many in flight (the rate decides, unless the gateway falls far behind). */
  concurrency: 64,
  streamEvery: 4,
  /** The two models of runs 3 and 4: one request in `largeEvery` is for `large`, whose limit is `largeRequestsPerWindow` at 1x. */
  models: { large: "mock-large", small: "mock-small", largeEvery: 3, largeRequestsPerWindow: 2 },
  /** A request waits this long at most for a cooling key before the gateway answers 503. */
  maxWaitMs: 5_000,
  /** Each run is cut off after this long, so the demo always ends. */
  deadlineMs: 20_000,
} as const;

/** `count` made-up keys that look like real ones (`sk-demo-…`), the same on every run. */
export function demoKeys(count: number, seed = 1): string[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, () => {
    let hex = "";
    while (hex.length < 32) hex += Math.floor(random() * 16).toString(16);
    return `sk-demo-${hex}`;
  });
}

/** The demo's mock provider over `keys`: the one at `DEMO.revokedIndex` revoked, `DEMO`'s limits (every key at 1x). */
export function startDemoUpstream(keys: readonly string[], overrides: Partial<MockUpstreamOptions> = {}): Promise<MockUpstream> {
  const revoked = keys[DEMO.revokedIndex]!;
  return startMockUpstream({
    keys: keys.filter((key) => key !== revoked),
    revokedKeys: [revoked],
    requestsPerWindow: DEMO.requestsPerWindow,
    windowMs: DEMO.windowMs,
    errorRate: DEMO.errorRate,
    slowRate: DEMO.slowRate,
    slowMs: DEMO.slowMs,
    chunkDelayMs: DEMO.chunkDelayMs,
    seed: DEMO.seed,
    ...overrides,
  });
}

/** One run of the demo: what is compared, and what came of it. */
export interface DemoRun {
  /** `1/4 pre-emptive cooldowns on`, and so on. */
  name: string;
  /** What the provider counted. */
  provider: MockKeyStats;
  /** What the clients saw. */
  clients: LoadResult;
  /** What the gateway counted (requests that waited for a key). */
  gateway: GatewayTotals;
}

interface RunSettings {
  name: string;
  preemptive: boolean;
  scopeByModel: boolean;
  twoModels: boolean;
  keys: readonly string[];
  admin: Admin;
  /** Prints the per-key table at the end of the run. */
  table: boolean;
  /** Leaves the gateway and provider running (for `--hold`); they are returned to be closed later. */
  keepOpen: boolean;
}

/** Runs the demo's load once against a fresh provider and gateway. */
async function runOnce(settings: RunSettings): Promise<{ run: DemoRun; open: Array<Gateway | MockUpstream> }> {
  const { name, preemptive, scopeByModel, twoModels, keys, admin } = settings;
  const clientToken = randomBytes(16).toString("hex");
  const tiers = Object.fromEntries(keys.map((key, index) => [key, DEMO.tiers[index]!]));
  const upstream = await startDemoUpstream(keys, {
    keyLimitFactors: tiers,
    modelLimits: { [DEMO.models.large]: { requestsPerWindow: DEMO.models.largeRequestsPerWindow } },
  });
  const gateway = await startGateway({
    upstream: upstream.url,
    keys,
    clientToken,
    scopeByModel,
    // Short default cooldowns (5xx without a Retry-After), to fit a demo of a few seconds.
    routerOptions: { cooldownMs: 500, maxCooldownMs: 4_000, preemptive },
    maxWaitMs: DEMO.maxWaitMs,
  });
  admin.watch({ router: gateway.router, stats: gateway.stats, keyAt: (index) => keys[index], title: name });

  console.log(name);
  let latest: LoadProgress = { requests: DEMO.requests, done: 0, served: 0, failed: 0, inFlight: 0, elapsedMs: 0 };
  const progress = startProgress(
    () =>
      `  ${latest.done}/${latest.requests} done, ${latest.served} served, ${latest.failed} failed, ${latest.inFlight} in flight | ` +
      `429s from the provider: ${upstream.stats().total.rateLimited} | keys: ${stateCounts(gateway.router.snapshot())}`,
  );
  const deadline = AbortSignal.timeout(DEMO.deadlineMs);
  let clients: LoadResult;
  try {
    clients = await runLoad({
      baseUrls: [gateway.url],
      clientToken,
      requests: DEMO.requests,
      concurrency: DEMO.concurrency,
      ratePerSecond: DEMO.ratePerSecond,
      streamEvery: DEMO.streamEvery,
      model: twoModels ? (index) => (index % DEMO.models.largeEvery === 0 ? DEMO.models.large : DEMO.models.small) : () => "mock-model",
      signal: deadline,
      onProgress: (now) => void (latest = now),
    });
  } finally {
    progress.stop();
  }
  if (settings.table) {
    console.log();
    printTable(keyRows(keys, gateway.router.snapshot(), upstream.stats()));
    console.log();
    console.log(formatSummary(clients));
    console.log();
  }
  const run: DemoRun = { name, provider: upstream.stats().total, clients, gateway: gateway.stats.totals() };
  if (settings.keepOpen) return { run, open: [gateway, upstream] };
  await gateway.close();
  await upstream.close();
  return { run, open: [] };
}

/** `3 (2× 503)`: failures and why. */
function failures(result: LoadResult): string {
  const why = [...result.failures].map(([reason, count]) => `${count}× ${reason}`).join(", ");
  return why === "" ? String(result.failed) : `${result.failed} (${why})`;
}

/** `96% fewer`, `2.5x more`… of `after` against `before`. */
function change(before: number, after: number, noun = "fewer"): string {
  if (before === after) return "same";
  if (after < before) return `${Math.round((1 - after / before) * 100)}% ${noun}`;
  return before === 0 ? `${after} more` : `${(after / before).toFixed(1)}x more`;
}

/** A table of runs side by side: a label column, then one column a run. */
function sideBySide(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const lines = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...lines.map((line) => (line[column] ?? "").length)));
  return lines
    .map((line) => line.map((cell, column) => (column === 0 || column === line.length - 1 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("   ").trimEnd())
    .join("\n");
}

/** The comparison of runs 1 and 2. */
export function formatPreemptive(on: DemoRun, off: DemoRun): string {
  return [
    "Pre-emptive cooldowns (the router's `preemptive` option), one model:",
    sideBySide(
      ["", "on", "off", ""],
      [
        ["429s from the provider", String(on.provider.rateLimited), String(off.provider.rateLimited), `${change(off.provider.rateLimited, on.provider.rateLimited)} with them on`],
        ["requests served", `${on.clients.served}/${on.clients.requests}`, `${off.clients.served}/${off.clients.requests}`, ""],
        ["failed", failures(on.clients), failures(off.clients), ""],
        ["requests that waited for a key", String(on.gateway.waited), String(off.gateway.waited), ""],
      ],
    ),
  ].join("\n");
}

/** The comparison of runs 3 and 4. */
export function formatScopes(scoped: DemoRun, unscoped: DemoRun): string {
  const { large, small, largeEvery, largeRequestsPerWindow } = DEMO.models;
  return [
    `Cooldowns per model (the gateway's scopes: execute(fn, { scope: model })), 1 request in ${largeEvery} for ${large} ` +
      `(${largeRequestsPerWindow} requests/s per key at 1x), the rest for ${small} (${DEMO.requestsPerWindow}/s):`,
    sideBySide(
      ["", "per model", "per key", ""],
      [
        ["requests that waited for a key", String(scoped.gateway.waited), String(unscoped.gateway.waited), `${change(unscoped.gateway.waited, scoped.gateway.waited)} per model`],
        ["failed", failures(scoped.clients), failures(unscoped.clients), ""],
        ["requests served", `${scoped.clients.served}/${scoped.clients.requests}`, `${unscoped.clients.served}/${unscoped.clients.requests}`, ""],
        ["429s from the provider", String(scoped.provider.rateLimited), String(unscoped.provider.rateLimited), ""],
      ],
    ),
  ].join("\n");
}

const USAGE = `usage: npm run demo [-- --hold] [--admin-port <n>]
       npm run demo -- --instances <n> [--redis <url>] [--requests <n>] [--concurrency <n>]

  --hold          keep the dashboard (and the last run's gateway) up after the runs, until Ctrl-C
  --admin-port    the dashboard's port on 127.0.0.1 (default: a free one)
  --instances     several gateways, each on its own and then sharing state through Redis`;

async function main(argv: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: { hold: { type: "boolean" }, "admin-port": { type: "string" }, help: { type: "boolean", short: "h" } } }));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const adminPort = Number(values["admin-port"] ?? 0);
  if (!(Number.isInteger(adminPort) && adminPort >= 0 && adminPort <= 65_535)) {
    console.error(`--admin-port must be an integer from 0 to 65535, received ${JSON.stringify(values["admin-port"])}\n\n${USAGE}`);
    return 2;
  }
  const keys = demoKeys(DEMO.keys);
  const admin = await startAdmin({ port: adminPort });
  const tiers = DEMO.tiers.filter((_, index) => index !== DEMO.revokedIndex);
  console.log(`dashboard: ${admin.url}/  (live while the demo runs${values.hold ? "; it stays up until Ctrl-C" : "; --hold keeps it up afterwards"})`);
  console.log(
    `provider:  a mock of OpenAI, ${DEMO.keys} keys (1 revoked) at ${new Set(tiers).size} usage tiers: ${Math.min(...tiers) * DEMO.requestsPerWindow} to ` +
      `${Math.max(...tiers) * DEMO.requestsPerWindow} requests per second per key, refilled continuously; ${DEMO.errorRate * 100}% 5xx, ${DEMO.slowRate * 100}% slow`,
  );
  console.log(
    `load:      ${DEMO.requests} chat completions at ${DEMO.ratePerSecond} per second (1 in ${DEMO.streamEvery} streamed) through the gateway, ` +
      `which waits up to ${DEMO.maxWaitMs / 1_000} s for a cooling key;\n           every run has a fresh provider and gateway, the same seed and the same schedule\n`,
  );

  const open: Array<Gateway | MockUpstream> = [];
  const runs: DemoRun[] = [];
  const plan = [
    { name: "1/4 pre-emptive cooldowns on", preemptive: true, scopeByModel: true, twoModels: false, table: true },
    { name: "2/4 pre-emptive cooldowns off", preemptive: false, scopeByModel: true, twoModels: false, table: false },
    { name: "3/4 two models, cooldowns per model", preemptive: true, scopeByModel: true, twoModels: true, table: false },
    { name: "4/4 two models, cooldowns per key", preemptive: true, scopeByModel: false, twoModels: true, table: false },
  ];
  for (const [index, step] of plan.entries()) {
    const { run, open: left } = await runOnce({ ...step, keys, admin, keepOpen: values.hold === true && index === plan.length - 1 });
    runs.push(run);
    open.push(...left);
  }
  console.log();
  console.log(formatPreemptive(runs[0]!, runs[1]!));
  console.log();
  console.log(formatScopes(runs[2]!, runs[3]!));
  const cut = runs.some((run) => run.clients.done < DEMO.requests);

  if (values.hold) {
    console.log(`\nthe dashboard stays up at ${admin.url}/ with the last run's gateway; Ctrl-C ends it`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
  }
  for (const server of open) await server.close();
  await admin.close();
  if (cut) {
    console.error(`\na run was cut off after ${DEMO.deadlineMs / 1_000} s`);
    return 1;
  }
  return 0;
}

// `npm run demo -- --instances 3`: several gateways, independent and then sharing state via Redis.
runAsProgram(import.meta.url, async () => {
  const args = process.argv.slice(2);
  // Also `--instances=3`; the other arguments go to that demo, whose parser names what it doesn't know.
  if (args.some((arg) => arg === "--instances" || arg.startsWith("--instances="))) {
    return (await import("./demo-instances.js")).instancesMain(args);
  }
  return main(args);
});
