/**
 * What the Redis test files share: the skip rule (no `redis-server`: skipped with one line, except
 * under `CI=true`, where it fails), a server per file with its clients and links cleaned up after,
 * instances (a router attached to a namespace), and waits that end on the awaited condition with a
 * generous bound (latency belongs in the bench, not in a test).
 */
import Redis from "ioredis";
import { afterAll, beforeAll, describe, it } from "vitest";
import { CredentialRouter, type CredentialRouterOptions } from "../../src/index.js";
import { attachRedis, type AttachRedisOptions, type RedisLike, type RedisLink, type RedisSyncError } from "../../src/redis/index.js";
import { findRedisServer, INSTALL_HINT, startRedisServer, type RedisServer } from "./redis-server.js";

export const BINARY = findRedisServer();
// As vitest.config.ts reads it: any value but "false" counts.
export const IN_CI = Boolean(process.env.CI) && process.env.CI !== "false";

/** A `describe` that runs only where `redis-server` is installed (and fails under CI where it is not). */
export function describeRedis(name: string, body: () => void): void {
  if (BINARY === undefined) {
    if (IN_CI) {
      describe(`${name} under CI`, () => {
        it("needs redis-server installed", () => {
          throw new Error(`redis-server is not installed; CI must run the Redis suites (${INSTALL_HINT})`);
        });
      });
    } else {
      console.log(`${name} skipped: redis-server is not installed (install it with: ${INSTALL_HINT})`);
    }
  }
  describe.skipIf(BINARY === undefined)(name, { timeout: 60_000 }, body);
}

export const KEYS = Array.from({ length: 8 }, (_, index) => `sk-live-${index}${"Q7x9".repeat(4)}-${(index * 7919).toString(36)}zz`);
export const TEN_MINUTES = 600_000;

export interface Instance {
  router: CredentialRouter;
  link: RedisLink;
  errors: RedisSyncError[];
}

/** Polls `condition` (every few ms) until it holds; fails after `timeoutMs`, a bound meant never to be reached. */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const start = performance.now();
  while (!(await condition())) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves with the link's next status event that satisfies `accept`, or its current status if it does already. */
export function statusReached(link: RedisLink, status: RedisLink["status"], timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (link.status === status) return resolve();
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`the link did not become ${status} within ${timeoutMs} ms (it is ${link.status})`));
    }, timeoutMs);
    const stop = link.subscribe((event) => {
      if (event.type === "status" && event.status === status) {
        clearTimeout(timer);
        stop();
        resolve();
      }
    });
  });
}

/** The statuses of a router's keys, in key order. */
export const statuses = (router: CredentialRouter) => router.snapshot().map((row) => row.state.status);

/** Every promise rejection nobody handled while a file ran; the adapter must cause none. */
export const unhandled: unknown[] = [];

/**
 * A server for the calling `describe` block, started before its tests and stopped after them, with
 * a factory of ioredis clients and instances that are all ended with it.
 */
export function redisContext() {
  const context = {
    server: undefined as unknown as RedisServer,
    /** A plain connection for reading and poking what Redis holds. */
    reader: undefined as unknown as Redis,
    clients: [] as Redis[],
    links: [] as RedisLink[],
    namespaces: 0,
    client(port?: number): Redis {
      const redis = new Redis({ host: "127.0.0.1", port: port ?? context.server.port, retryStrategy: () => 50, maxRetriesPerRequest: 5 });
      // Outages are part of the tests: the test's own connections expect their errors.
      redis.on("error", () => {});
      context.clients.push(redis);
      return redis;
    },
    namespace(): string {
      return `test-${process.pid}-${Math.random().toString(36).slice(2, 8)}-${++context.namespaces}`;
    },
    async instance(
      namespace: string,
      options: { redis?: RedisLike | Redis; keys?: readonly string[]; router?: CredentialRouterOptions; attach?: AttachRedisOptions } = {},
    ): Promise<Instance> {
      const router = new CredentialRouter(options.keys ?? KEYS, { cooldownMs: TEN_MINUTES, maxCooldownMs: TEN_MINUTES, ...options.router });
      const link = await attachRedis(router, options.redis ?? context.client(), { namespace, ...options.attach });
      context.links.push(link);
      const errors: RedisSyncError[] = [];
      link.subscribe((event) => void (event.type === "error" && errors.push(event.error)));
      return { router, link, errors };
    },
  };
  const onUnhandled = (reason: unknown) => void unhandled.push(reason);
  beforeAll(async () => {
    process.on("unhandledRejection", onUnhandled);
    context.server = await startRedisServer({ binary: BINARY! });
    context.reader = context.client();
  });
  afterAll(async () => {
    await Promise.all(context.links.map((link) => link.close()));
    for (const redis of context.clients) redis.disconnect();
    await context.server?.stop();
    process.off("unhandledRejection", onUnhandled);
  });
  return context;
}

/**
 * An ioredis-shaped client that passes every command to `real`, except that each script call can be
 * delayed (`latencyMs`: a slower network) and `duplicate()` can be made to throw.
 */
export function slowClient(real: Redis, options: { latencyMs?: number; duplicate?: () => never } = {}): RedisLike & { scriptCalls: number } {
  const delay = () => new Promise((resolve) => setTimeout(resolve, options.latencyMs ?? 0));
  const wrapped = {
    scriptCalls: 0,
    get status() {
      return real.status;
    },
    evalsha: async (sha: string, count: number, ...rest: string[]) => {
      wrapped.scriptCalls++;
      if (options.latencyMs) await delay();
      return real.evalsha(sha, count, ...rest);
    },
    eval: async (script: string, count: number, ...rest: string[]) => {
      wrapped.scriptCalls++;
      if (options.latencyMs) await delay();
      return real.eval(script, count, ...rest);
    },
    duplicate: options.duplicate ?? (() => real.duplicate()),
    on: (event: "ready" | "close" | "end", listener: () => void) => real.on(event, listener),
    off: (event: "ready" | "close" | "end", listener: () => void) => real.off(event, listener),
  };
  return wrapped;
}
