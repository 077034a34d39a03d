/**
 * Several gateways in front of one upstream, twice: first each with its own router (independent),
 * then with their routers sharing key states through Redis (`attachRedis`). Prints how many 429s and
 * 401s the upstream saw in each mode: sharing means one gateway's 429 cools the key on all of them
 * and one gateway's 401 blocks it everywhere, so the upstream sees clearly fewer of both.
 *
 * The upstream's limits here are fixed windows that come back whole (`refill: "window"`, as a
 * per-minute quota that resets at once). Against limits that refill continuously (OpenAI's), a key
 * whose cooldown ends has one request's worth of budget, and every instance that learned of the
 * cooldown tries the key at the same moment: sharing then saves the 401s but not the 429s.
 *
 * ```sh
 * npx tsx examples/demo-instances.ts [--instances 4] [--redis redis://127.0.0.1:6379] [--requests 320] [--concurrency 4]
 * ```
 *
 * Without `--redis` (or `REDIS_URL`) it starts a throwaway `redis-server` on loopback, when one is
 * installed.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import Redis from "ioredis";
import { CredentialRouter } from "../src/index.js";
import { attachRedis, type RedisLink } from "../src/redis/index.js";
import { INSTALL_HINT, startRedisServer, type RedisServer } from "../test/helpers/redis-server.js";
import { DEMO, demoKeys, startDemoUpstream } from "./demo.js";
import { startGateway, type Gateway } from "./gateway.js";
import { runLoad } from "./load.js";
import { runAsProgram } from "./program.js";

/** Requests per key per window of this demo's upstream (fixed windows of `DEMO.windowMs`). */
const REQUESTS_PER_WINDOW = 12;

/** Options of {@link runInstancesDemo}. */
export interface InstancesDemoOptions {
  /** How many gateways run side by side (at least 2 to show anything). */
  instances: number;
  /**
   * The Redis to share state through.
   * @defaultValue a `redis-server` started on loopback for the run (needs one installed)
   */
  redisUrl?: string;
  /**
   * Chat completions sent in each mode, spread over the gateways in turn.
   * @defaultValue `320`
   */
  requests?: number;
  /**
   * How many requests are in flight at once, over all gateways. One per gateway is a fleet whose
   * clients each wait for an answer; far more piles requests onto each key as its window reopens,
   * and those 429s no shared state can avoid.
   * @defaultValue `instances`
   */
  concurrency?: number;
  /**
   * Where the report goes.
   * @defaultValue `console.log`
   */
  log?: (line: string) => void;
}

/** What the upstream saw in one mode. */
export interface ModeResult {
  /** 429s the upstream answered. */
  rateLimited: number;
  /** 401s the upstream answered (the revoked key). */
  unauthorized: number;
  /** Requests the clients got an answer for. */
  served: number;
  /** Requests that failed at the client. */
  failed: number;
  elapsedMs: number;
}

/** The two modes' results. */
export interface InstancesDemoResult {
  independent: ModeResult;
  shared: ModeResult;
}

/**
 * Runs the comparison and prints it.
 * @throws Error when no `redisUrl` is given and no `redis-server` is installed.
 * @example
 * ```ts
 * const { independent, shared } = await runInstancesDemo({ instances: 4 });
 * console.log(independent.rateLimited / shared.rateLimited); // how many times fewer 429s
 * ```
 */
export async function runInstancesDemo(options: InstancesDemoOptions): Promise<InstancesDemoResult> {
  const { instances, requests = 320, concurrency = instances, log = console.log } = options;
  for (const [name, value] of [["instances", instances], ["requests", requests], ["concurrency", concurrency]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, received ${value}`);
  }
  let server: RedisServer | undefined;
  let redisUrl = options.redisUrl;
  if (redisUrl === undefined) {
    server = await startRedisServer().catch((error: Error) => {
      throw new Error(`${error.message}; pass a Redis URL (--redis) or install redis-server (${INSTALL_HINT})`);
    });
    redisUrl = server.url;
  }
  const keys = demoKeys(DEMO.keys);
  log(
    `${instances} gateways, one mock upstream: ${DEMO.keys} keys (1 revoked), ${REQUESTS_PER_WINDOW} requests per key per fixed window of ` +
      `${DEMO.windowMs / 1_000} s; ${requests} chat completions per mode, ${concurrency} at a time, spread over the gateways` +
      `${server ? "" : `; Redis at ${redisUrl}`}\n`,
  );
  try {
    const independent = await runMode("independent", keys, instances, requests, concurrency, undefined, log);
    const shared = await runMode("shared via Redis", keys, instances, requests, concurrency, redisUrl, log);
    const fewer = (before: number, after: number) => (after === 0 ? (before === 0 ? "same" : `${before} -> 0`) : `${(before / after).toFixed(1)}x fewer`);
    log(`\nsharing state: ${fewer(independent.rateLimited, shared.rateLimited)} 429s, ${fewer(independent.unauthorized, shared.unauthorized)} 401s`);
    return { independent, shared };
  } finally {
    await server?.stop();
  }
}

async function runMode(
  name: string,
  keys: readonly string[],
  instances: number,
  requests: number,
  concurrency: number,
  redisUrl: string | undefined,
  log: (line: string) => void,
): Promise<ModeResult> {
  // A fresh upstream per mode: fresh windows, fresh counters, the same seeded errors.
  const upstream = await startDemoUpstream(keys, { slowRate: 0, chunkDelayMs: 2, requestsPerWindow: REQUESTS_PER_WINDOW, refill: "window" });
  const clientToken = randomBytes(16).toString("hex");
  // A namespace of its own, so that a run never starts from an earlier run's states.
  const namespace = `demo-instances-${randomBytes(6).toString("hex")}`;
  const clients: Redis[] = [];
  const links: RedisLink[] = [];
  const gateways: Gateway[] = [];
  try {
    for (let instance = 0; instance < instances; instance++) {
      const router = new CredentialRouter(keys, { cooldownMs: 500, maxCooldownMs: 4_000 });
      if (redisUrl !== undefined) {
        const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
        redis.on("error", () => {});
        clients.push(redis);
        const link = await attachRedis(router, redis, { namespace });
        if (link.status !== "ready") throw new Error(`Redis at ${redisUrl} cannot be reached (the link is ${link.status})`);
        links.push(link);
      }
      // Cooldowns key-wide: the Redis link shares key-wide states only (a state in one scope stays
      // with its instance), and sharing them is what this demo shows.
      gateways.push(await startGateway({ upstream: upstream.url, keys: router, clientToken, maxWaitMs: DEMO.maxWaitMs, scopeByModel: false }));
    }
    const result = await runLoad({
      baseUrls: gateways.map((gateway) => gateway.url),
      clientToken,
      requests,
      concurrency,
      streamEvery: DEMO.streamEvery,
      signal: AbortSignal.timeout(DEMO.deadlineMs / 2),
    });
    const { total } = upstream.stats();
    const mode: ModeResult = {
      rateLimited: total.rateLimited,
      unauthorized: total.unauthorized,
      served: result.served,
      failed: result.failed,
      elapsedMs: result.elapsedMs,
    };
    log(
      `${name.padEnd(17)} upstream saw ${String(mode.rateLimited).padStart(4)} 429s, ${String(mode.unauthorized).padStart(3)} 401s` +
        ` | clients: ${mode.served} served, ${mode.failed} failed, ${(mode.elapsedMs / 1_000).toFixed(1)} s`,
    );
    return mode;
  } finally {
    await Promise.all(gateways.map((gateway) => gateway.close()));
    await Promise.all(links.map((link) => link.close()));
    for (const redis of clients) redis.disconnect();
    await upstream.close();
  }
}

/** The command line: `--instances N [--redis redis://…] [--requests N] [--concurrency N]`. */
export async function instancesMain(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: { instances: { type: "string" }, redis: { type: "string" }, requests: { type: "string" }, concurrency: { type: "string" } },
  });
  const options: InstancesDemoOptions = { instances: Number(values.instances ?? 4) };
  const redisUrl = values.redis ?? process.env.REDIS_URL;
  if (redisUrl !== undefined) options.redisUrl = redisUrl;
  if (values.requests !== undefined) options.requests = Number(values.requests);
  if (values.concurrency !== undefined) options.concurrency = Number(values.concurrency);
  await runInstancesDemo(options);
  return 0;
}

runAsProgram(import.meta.url, () => instancesMain(process.argv.slice(2)));
