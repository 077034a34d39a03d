/**
 * `npm run demo`: see credential-router work. Starts a mock OpenAI-style upstream (8 keys, one of them
 * revoked, a small request limit per key, a few 5xx) and the gateway in front of it, sends a few
 * hundred chat completions through the gateway with the official OpenAI SDK (some streamed), and
 * prints what each key went through.
 *
 * The pieces (load generator, progress line, table) live in `./load.ts`, re-exported here, so that
 * another entry point (several gateways sharing state, for instance) can reuse them.
 */
import { randomBytes } from "node:crypto";
import { startGateway } from "./gateway.js";
import { formatSummary, keyRows, printTable, runLoad, startProgress, stateCounts, type LoadProgress } from "./load.js";
import { mulberry32, startMockUpstream, type MockUpstream, type MockUpstreamOptions } from "./mock-upstream.js";
import { runAsProgram } from "./program.js";

export { formatSummary, formatTable, keyRows, percentile, printTable, runLoad, startProgress, stateCounts } from "./load.js";
export type { KeyRow, LoadOptions, LoadProgress, LoadResult } from "./load.js";

/** The demo's settings: the upstream's limits and the load sent at it. */
export const DEMO = {
  keys: 8,
  /** Which key the upstream has revoked. */
  revokedIndex: 5,
  requestsPerWindow: 12,
  windowMs: 1_000,
  errorRate: 0.02,
  slowRate: 0.05,
  slowMs: 300,
  chunkDelayMs: 10,
  seed: 7,
  requests: 300,
  concurrency: 16,
  streamEvery: 4,
  /** A request waits this long at most for a cooling key before the gateway answers 503. */
  maxWaitMs: 5_000,
  /** The whole run is cut off after this long, so the demo always ends. */
  deadlineMs: 18_000,
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

/** The demo's mock provider over `keys`: the one at `DEMO.revokedIndex` revoked, `DEMO`'s limits. */
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

async function main(): Promise<number> {
  const keys = demoKeys(DEMO.keys);
  const clientToken = randomBytes(16).toString("hex");
  const upstream = await startDemoUpstream(keys);
  const gateway = await startGateway({
    upstream: upstream.url,
    keys,
    clientToken,
    // Short default cooldowns (5xx without a Retry-After), to fit a demo of a few seconds.
    routerOptions: { cooldownMs: 500, maxCooldownMs: 4_000 },
    maxWaitMs: DEMO.maxWaitMs,
  });

  console.log(
    `mock upstream ${upstream.url}: ${DEMO.keys} keys (1 revoked), ${DEMO.requestsPerWindow} requests per key per ${DEMO.windowMs / 1_000} s, ` +
      `${DEMO.errorRate * 100}% 5xx, ${DEMO.slowRate * 100}% slow`,
  );
  console.log(`gateway       ${gateway.url}: round-robin over the ${DEMO.keys} keys, waits up to ${DEMO.maxWaitMs / 1_000} s for a cooling key`);
  console.log(
    `sending ${DEMO.requests} chat completions (1 in ${DEMO.streamEvery} streamed), ${DEMO.concurrency} at a time, with the OpenAI SDK...\n`,
  );

  let latest: LoadProgress = { requests: DEMO.requests, done: 0, served: 0, failed: 0, inFlight: 0, elapsedMs: 0 };
  const progress = startProgress(
    () =>
      `${latest.done}/${latest.requests} done, ${latest.served} served, ${latest.failed} failed, ${latest.inFlight} in flight | ` +
      `keys: ${stateCounts(gateway.router.snapshot())}`,
  );
  const deadline = AbortSignal.timeout(DEMO.deadlineMs);
  let result;
  try {
    result = await runLoad({
      baseUrls: [gateway.url],
      clientToken,
      requests: DEMO.requests,
      concurrency: DEMO.concurrency,
      streamEvery: DEMO.streamEvery,
      signal: deadline,
      onProgress: (now) => void (latest = now),
    });
  } finally {
    progress.stop();
  }

  console.log();
  printTable(keyRows(keys, gateway.router.snapshot(), upstream.stats()));
  console.log();
  console.log(formatSummary(result));
  await gateway.close();
  await upstream.close();
  if (deadline.aborted) {
    console.error(`\nthe run was cut off after ${DEMO.deadlineMs / 1_000} s`);
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
  if (args.length === 0) return main();
  console.error(`unknown arguments: ${args.join(" ")}\nusage: npm run demo [-- --instances <n> [--redis <url>]]`);
  return 2;
});
