/**
 * The Redis adapter against a real `redis-server` that this suite starts on loopback (and stops).
 * Without `redis-server` the suite is skipped with one line saying so, except under `CI=true`,
 * where a missing server fails the run.
 */
import Redis from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CredentialRouter, fingerprint, type KeyState, type RouterEvent } from "../src/index.js";
import {
  attachRedis,
  isRedisSyncError,
  type RedisLike,
  type RedisLink,
  type RedisSubscriberLike,
  type RedisSyncError,
  type SharedRouter,
} from "../src/redis/index.js";
import { seededRandom } from "./helpers/fixtures.js";
import { findRedisServer, freePort, INSTALL_HINT, startRedisServer, type RedisServer } from "./helpers/redis-server.js";

const BINARY = findRedisServer();
// As vitest.config.ts reads it: any value but "false" counts.
const IN_CI = Boolean(process.env.CI) && process.env.CI !== "false";
if (BINARY === undefined && !IN_CI) {
  console.log(`Redis suite skipped: redis-server is not installed (install it with: ${INSTALL_HINT})`);
}

if (BINARY === undefined && IN_CI) {
  describe("Redis suite under CI", () => {
    it("needs redis-server installed", () => {
      throw new Error(`redis-server is not installed; CI must run the Redis suite (${INSTALL_HINT})`);
    });
  });
}

const KEYS = Array.from({ length: 8 }, (_, index) => `sk-live-${index}${"Q7x9".repeat(4)}-${(index * 7919).toString(36)}zz`);
const [K0, K1, K2, K3, K4, K5, K6, K7] = KEYS as [string, string, string, string, string, string, string, string];
const TEN_MINUTES = 600_000;
/** How far two instances' views of one cooldown deadline may differ (each converts to its own clock). */
const DEADLINE_TOLERANCE_MS = 50;

/** Every promise rejection nobody handled while the suite ran; the adapter must cause none. */
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);

/** A promise and the function that resolves it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/**
 * A client that passes every command to `real` except those given in `overrides`; it keeps the
 * subscriber connection it opens, so that a test can listen to what reaches the link.
 */
function wrapClient(real: Redis, overrides: Partial<Pick<RedisLike, "evalsha">> & { status?: () => string } = {}) {
  const subscribers: Redis[] = [];
  const wrapped: RedisLike = {
    get status() {
      return overrides.status?.() ?? real.status;
    },
    evalsha: overrides.evalsha ?? ((sha, count, ...rest) => real.evalsha(sha, count, ...rest)),
    eval: (script, count, ...rest) => real.eval(script, count, ...rest),
    duplicate: (): RedisSubscriberLike => {
      const subscriber = real.duplicate();
      subscribers.push(subscriber);
      return subscriber;
    },
    on: (event, listener) => real.on(event, listener),
    off: (event, listener) => real.off(event, listener),
  };
  return { wrapped, subscribers };
}

/** The types of the key events a router emits for the key at `index`, in order, from now on. */
function eventsOf(router: CredentialRouter, index: number): string[] {
  const seen: string[] = [];
  router.subscribe((event: RouterEvent) => {
    if (event.type !== "exhausted" && event.index === index) seen.push(event.type);
  });
  return seen;
}

interface Instance {
  router: CredentialRouter;
  redis: Redis | RedisLike;
  link: RedisLink;
  errors: RedisSyncError[];
}

describe.skipIf(BINARY === undefined)("Redis adapter", { timeout: 60_000 }, () => {
  let server: RedisServer;
  /** A raw connection that records everything published, on every channel. */
  let capture: Redis;
  /** A plain connection for reading what Redis holds. */
  let reader: Redis;
  const published: Array<{ channel: string; message: string }> = [];
  const clients: Redis[] = [];
  const links: RedisLink[] = [];
  let namespaces = 0;

  beforeAll(async () => {
    process.on("unhandledRejection", onUnhandled);
    server = await startRedisServer({ binary: BINARY! });
    capture = client();
    capture.on("pmessage", (_pattern: string, channel: string, message: string) => void published.push({ channel, message }));
    await capture.psubscribe("*");
    reader = client();
  });

  afterAll(async () => {
    await Promise.all(links.map((link) => link.close()));
    for (const redis of clients) redis.disconnect();
    await server?.stop();
    process.off("unhandledRejection", onUnhandled);
  });

  function client(port = server.port): Redis {
    const redis = new Redis({ host: "127.0.0.1", port, retryStrategy: () => 50, maxRetriesPerRequest: 5 });
    // Outages are part of the tests: the test's own connections expect their errors.
    redis.on("error", () => {});
    clients.push(redis);
    return redis;
  }

  function namespace(): string {
    return `test-${process.pid}-${++namespaces}`;
  }

  async function instance(ns: string, redis: Redis | RedisLike = client()): Promise<Instance> {
    const router = new CredentialRouter(KEYS, { cooldownMs: TEN_MINUTES, maxCooldownMs: TEN_MINUTES });
    const link = await attachRedis(router, redis, { namespace: ns });
    links.push(link);
    const errors: RedisSyncError[] = [];
    link.subscribe((event) => void (event.type === "error" && errors.push(event.error)));
    return { router, redis, link, errors };
  }

  /**
   * Polls `condition` until it holds. The bound is generous, never meant to be reached on a loaded
   * machine: how fast a change spreads is measured by the bench, not asserted here.
   */
  async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
    const start = performance.now();
    while (!(await condition())) {
      if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  const statusOf = (instance: Instance, key: string) => instance.router.stateOf(key)?.status;

  /** Each key's state as wall-clock data: `cooldown@<epoch ms>` or the status name. */
  function view(router: CredentialRouter): Array<{ status: string; until?: number }> {
    const now = Date.now();
    return router.snapshot().map(({ state }) =>
      state.status === "cooldown" ? { status: "cooldown", until: now + state.remainingMs } : { status: state.status },
    );
  }

  /** The shared state Redis holds for `KEYS`, in the same form as {@link view}. */
  async function redisView(ns: string): Promise<Array<{ status: string; until?: number }>> {
    const hash = await reader.hgetall(`{${ns}}:state`);
    const now = Date.now();
    return KEYS.map((key) => {
      const record = hash[fingerprint(key)];
      if (record === undefined) return { status: "ready" };
      const [, status, until] = record.split("|") as [string, string, string];
      if (status === "cooldown") return Number(until) > now ? { status, until: Number(until) } : { status: "ready" };
      return { status };
    });
  }

  function agree(a: ReturnType<typeof view>, b: ReturnType<typeof view>): boolean {
    return a.every(
      (left, index) =>
        left.status === b[index]!.status &&
        (left.status !== "cooldown" || Math.abs(left.until! - b[index]!.until!) <= DEADLINE_TOLERANCE_MS),
    );
  }

  /** Waits until every message published so far has reached the capture connection. */
  async function drainPublished(): Promise<void> {
    const marker = `marker-${Math.random()}`;
    const sender = client();
    await sender.publish("test-marker", marker);
    await waitFor(() => published.some((entry) => entry.message === marker), "the marker message");
    sender.disconnect();
  }

  describe("sharing between instances", () => {
    // Each test has a namespace and two instances of its own: it passes alone and in any order.
    let ns: string;
    let a: Instance;
    let b: Instance;

    beforeEach(async () => {
      ns = namespace();
      a = await instance(ns);
      b = await instance(ns);
      expect(a.link.status).toBe("ready");
      expect(b.link.status).toBe("ready");
    });

    /** A cools K0 down for a minute and blocks K1; resolves once B holds both. */
    async function coolAndBlock(): Promise<void> {
      a.router.markErrorWithDelay(K0, 60_000);
      a.router.markBlocked(K1);
      await waitFor(() => statusOf(b, K0) === "cooldown" && statusOf(b, K1) === "blocked", "B to see K0 cooling and K1 blocked");
    }

    it("a key A cools down or blocks is skipped by B", async () => {
      await coolAndBlock();
      // Same deadline on both, within clock conversion.
      const remainingA = (a.router.stateOf(K0) as Extract<KeyState, { status: "cooldown" }>).remainingMs;
      const remainingB = (b.router.stateOf(K0) as Extract<KeyState, { status: "cooldown" }>).remainingMs;
      expect(Math.abs(remainingA - remainingB)).toBeLessThan(DEADLINE_TOLERANCE_MS);
      for (let pick = 0; pick < 3 * KEYS.length; pick++) expect([K0, K1]).not.toContain(b.router.nextKey());
    });

    it("a state arrives with its reason: a quota cooldown on A is a quota cooldown on B, a custom reason survives as written", async () => {
      const custom = "spend cap | team/α — 50 €";
      const reasonsOn = (router: CredentialRouter, index: number) => {
        const seen: string[] = [];
        router.subscribe((event) => void (event.type !== "exhausted" && event.index === index && seen.push(`${event.type}:${event.reason}`)));
        return seen;
      };
      const eventsK0 = reasonsOn(b.router, 0);
      const eventsK1 = reasonsOn(b.router, 1);
      a.router.markErrorWithDelay(K0, 60_000, { reason: "quota" });
      a.router.markBlocked(K1, { reason: custom });
      a.router.markDisabled(K2, { reason: "auth" });
      await waitFor(() => statusOf(b, K0) === "cooldown" && statusOf(b, K1) === "blocked" && statusOf(b, K2) === "disabled", "B to take A's states");
      expect(eventsK0).toEqual(["cooldown:quota"]);
      expect(eventsK1).toEqual([`blocked:${custom}`]);
      expect(b.router.snapshot().slice(0, 3).map((row) => row.reason)).toEqual(["quota", custom, "auth"]);
      // As stored: escaped, so that no separator is left in the record.
      const record = await reader.hget(`{${ns}}:state`, fingerprint(K1));
      expect(record).toMatch(/^\d+\|blocked\|0\|[A-Za-z0-9._~%-]+$/);
      // An instance that attaches later loads the reasons with the states.
      const c = await instance(ns);
      expect(c.router.snapshot().slice(0, 3).map((row) => row.reason)).toEqual(["quota", custom, "auth"]);
      // A longer cooldown for another reason takes its reason along.
      b.router.markErrorWithDelay(K0, 120_000, { reason: "rate_limit" });
      await waitFor(() => a.router.snapshot()[0]!.reason === "rate_limit", "A to take B's longer cooldown with its reason");
      // A block offered by a router restored with K1 blocked for "auth" changes nothing: the first
      // block's reason stays in Redis.
      const restored = new CredentialRouter(KEYS);
      restored.markBlocked(K1, { reason: "auth" });
      const link = await attachRedis(restored, client(), { namespace: ns });
      links.push(link);
      expect(await link.flush()).toBe(true);
      expect(await reader.hget(`{${ns}}:state`, fingerprint(K1))).toBe(record);
      expect([...a.errors, ...b.errors, ...c.errors]).toEqual([]);
      await c.link.close();
    });

    it("an instance attached later starts with the current states", async () => {
      await coolAndBlock();
      const c = await instance(ns);
      // No waiting: attachRedis resolved after loading the shared state.
      expect(statusOf(c, K0)).toBe("cooldown");
      expect(statusOf(c, K1)).toBe("blocked");
      expect(agree(view(c.router), view(a.router))).toBe(true);
      await c.link.close();
    });

    it("clearCooldown on B restores the key on A", async () => {
      await coolAndBlock();
      b.router.clearCooldown(K1);
      await waitFor(() => statusOf(a, K1) === "ready", "A to see K1 cleared");
      b.router.clearCooldown(K0);
      await waitFor(() => statusOf(a, K0) === "ready", "A to see K0 cleared");
    });

    it("a 429 racing a 401 never undoes the block, in either order", async () => {
      a.router.markBlocked(K2);
      b.router.markErrorWithDelay(K2, 30_000);
      b.router.markErrorWithDelay(K3, 30_000);
      a.router.markBlocked(K3);
      await waitFor(
        () => [a, b].every((instance) => statusOf(instance, K2) === "blocked" && statusOf(instance, K3) === "blocked"),
        "both to hold K2 and K3 blocked",
      );
      expect((await redisView(ns)).slice(2, 4)).toEqual([{ status: "blocked" }, { status: "blocked" }]);
    });

    it("a cooldown never shortens a longer one from another instance", async () => {
      a.router.markErrorWithDelay(K4, 120_000);
      await waitFor(() => statusOf(b, K4) === "cooldown", "B to see K4 cooling");
      // B's own router keeps the longer deadline, so this shorter one changes nothing, anywhere.
      b.router.markErrorWithDelay(K4, 1_000);
      b.router.markErrorWithDelay(K4, 180_000);
      await waitFor(() => ((a.router.stateOf(K4) as { remainingMs?: number }).remainingMs ?? 0) > 150_000, "A to see the longer cooldown");
      expect(agree(view(a.router), view(b.router))).toBe(true);
    });

    it("a state applied from another instance is not written or published again (no echo)", async () => {
      // Two instances whose script calls carrying transitions are counted (the heartbeat's carry none).
      const writes = [0, 0];
      const counted = (who: number) => {
        const real = client();
        return wrapClient(real, {
          evalsha: (sha, count, ...rest) => {
            if (rest.length > count + 10) writes[who]!++;
            return real.evalsha(sha, count, ...rest);
          },
        }).wrapped;
      };
      const writerClient = counted(0);
      const c = await instance(ns, writerClient);
      const readerClient = counted(1);
      const d = await instance(ns, readerClient);
      await drainPublished();
      const before = published.length;
      writes.fill(0); // the loads at attach were calls with transitions too
      c.router.markDisabled(K5);
      c.router.markErrorWithDelay(K6, 90_000);
      await waitFor(() => statusOf(d, K5) === "disabled" && statusOf(d, K6) === "cooldown", "D to see K5 disabled and K6 cooling");
      expect(await d.link.flush()).toBe(true);
      expect(await c.link.flush()).toBe(true);
      await drainPublished();
      // One write (C's batch of both marks), one message: D wrote nothing back.
      expect(writes).toEqual([1, 0]);
      const ours = published.slice(before).filter((entry) => entry.channel === `{${ns}}:changes`);
      expect(ours).toHaveLength(1);
      expect(ours[0]!.message.startsWith(`${c.link.instanceId} `)).toBe(true);
    });

    it("ignores messages older than the last applied version, and malformed ones, without throwing", async () => {
      const forger = client();
      const id = fingerprint(K5);
      a.router.markDisabled(K5);
      expect(await a.link.flush()).toBe(true);
      await waitFor(() => statusOf(b, K5) === "disabled", "B to see K5 disabled");
      const epoch = await reader.hget(`{${ns}}:state`, "epoch");
      const seq = Number(await reader.hget(`{${ns}}:state`, "seq"));
      // A "ready" repeating the version both hold is ignored (and makes them load the state again, as
      // a repeat is forged or a counter reset); so is one of another epoch (news from before a loss).
      await forger.publish(`{${ns}}:changes`, `someone-else ${epoch} ${seq} ${id}|ready|0`);
      await forger.publish(`{${ns}}:changes`, `someone-else another-epoch ${seq + 1} ${id}|ready|0`);
      // Old news (a counter both passed) with entries that are not entries.
      await forger.publish(`{${ns}}:changes`, `someone-else ${epoch} 0 not|an|entry ${"x".repeat(10)}`);
      // Both instances subscribe, so both report it; wait for both before clearing, or A's report can land later.
      const reported = (who: Instance) => who.errors.some((error) => error.operation === "message");
      await waitFor(() => reported(a) && reported(b), "A and B to report the malformed message");
      expect(statusOf(b, K5)).toBe("disabled");
      expect(statusOf(a, K5)).toBe("disabled");
      for (const error of [...a.errors, ...b.errors]) {
        expect(isRedisSyncError(error)).toBe(true);
        for (const key of KEYS) expect(`${error.message} ${String(error.cause)}`).not.toContain(key);
      }
      expect(b.errors.map((error) => error.message)).toEqual(["Redis sync failed (message): 2 malformed entries were skipped"]);
      expect(await a.link.flush()).toBe(true);
      expect(await b.link.flush()).toBe(true);
      expect([statusOf(a, K5), statusOf(b, K5)]).toEqual(["disabled", "disabled"]);
      forger.disconnect();
    });

    it("reads entries as another instance writes them: the reason after until, and a field per scope", async () => {
      const epoch = await reader.hget(`{${ns}}:state`, "epoch");
      const seq = Number(await reader.hget(`{${ns}}:state`, "seq"));
      const id = fingerprint(K6);
      // As another instance writes it: the records, then the message.
      await reader.hset(`{${ns}}:state`, `${id}/gpt-4o`, `${seq + 1}|disabled|0`, id, `${seq + 1}|blocked|0|auth%20failed`, "seq", String(seq + 1));
      await reader.publish(`{${ns}}:changes`, `newer ${epoch} ${seq + 1} ${id}/gpt-4o|disabled|0 ${id}|blocked|0|auth%20failed`);
      await waitFor(() => statusOf(a, K6) === "blocked" && statusOf(b, K6) === "blocked", "both to take the key-wide block");
      expect([a, b].map((instance) => instance.router.snapshot()[6]!.reason)).toEqual(["auth failed", "auth failed"]);
      expect([a, b].map((instance) => instance.router.snapshot()[6]!.scopes)).toEqual([
        [{ scope: "gpt-4o", state: { status: "disabled" }, reason: "manual" }],
        [{ scope: "gpt-4o", state: { status: "disabled" }, reason: "manual" }],
      ]);
      expect([...a.errors, ...b.errors]).toEqual([]);
    });

    it("falls back from EVALSHA to EVAL when the server lost its script cache", async () => {
      a.router.markBlocked(K5);
      await waitFor(() => statusOf(b, K5) === "blocked", "B to see K5 blocked");
      await reader.script("FLUSH");
      a.router.clearCooldown(K5);
      await waitFor(() => statusOf(b, K5) === "ready", "B to see K5 cleared after SCRIPT FLUSH");
      expect(a.errors).toEqual([]);
    });
  });

  describe("transitions in flight", () => {
    /**
     * Instances A and B on a fresh namespace. A's script calls can be held (`hold.when`): before they
     * reach Redis ("send") or with their reply held back ("reply"), until `hold.release` resolves.
     * `fromB()` resolves once A's link has received B's next message (the link's listener runs first).
     */
    async function pair() {
      const ns = namespace();
      const real = client();
      const hold = { when: "never" as "never" | "send" | "reply", calls: 0, release: deferred() };
      const { wrapped, subscribers } = wrapClient(real, {
        evalsha: async (sha, count, ...rest) => {
          // Only calls that carry transitions (the heartbeat's carry none).
          const when = rest.length > count + 10 ? hold.when : "never";
          if (when !== "never") hold.calls++;
          if (when === "send") await hold.release.promise;
          const reply = await real.evalsha(sha, count, ...rest);
          if (when === "reply") await hold.release.promise;
          return reply;
        },
      });
      const router = new CredentialRouter(KEYS, { cooldownMs: TEN_MINUTES, maxCooldownMs: TEN_MINUTES });
      const link = await attachRedis(router, wrapped, { namespace: ns });
      links.push(link);
      const a: Instance = { router, redis: real, link, errors: [] };
      link.subscribe((event) => void (event.type === "error" && a.errors.push(event.error)));
      const b = await instance(ns);
      const fromB = () =>
        new Promise<void>((resolve) => {
          const onMessage = (_channel: string, message: string) => {
            if (!message.startsWith(`${b.link.instanceId} `)) return;
            subscribers[0]!.off("message", onMessage);
            resolve();
          };
          subscribers[0]!.on("message", onMessage);
        });
      const release = () => {
        hold.when = "never";
        hold.release.resolve();
      };
      return { ns, a, b, hold, fromB, release };
    }

    const remainingOf = (instance: Instance, key: string) => (instance.router.stateOf(key) as { remainingMs?: number }).remainingMs ?? 0;

    it("a stale 429 or a shorter cooldown from another instance never undoes a transition still in flight", async () => {
      const { ns, a, b, hold, fromB, release } = await pair();
      const eventsK2 = eventsOf(a.router, 2);
      const eventsK3 = eventsOf(a.router, 3);
      hold.when = "send";
      a.router.markBlocked(K2); // a 401 seen by A
      a.router.markErrorWithDelay(K3, TEN_MINUTES);
      await waitFor(() => hold.calls === 1, "A's write to be on its way");
      // B's 429s reach Redis first; A receives them while its own write is still in flight.
      const received = fromB();
      b.router.markErrorWithDelay(K2, 30_000);
      b.router.markErrorWithDelay(K3, 60_000);
      await received;
      expect(statusOf(a, K2)).toBe("blocked");
      expect(remainingOf(a, K3)).toBeGreaterThan(TEN_MINUTES - 5_000);

      release();
      expect(await a.link.flush()).toBe(true);
      await waitFor(() => statusOf(b, K2) === "blocked" && remainingOf(b, K3) > TEN_MINUTES - 5_000, "B to take A's states");
      expect(eventsK2).toEqual(["blocked"]);
      expect(eventsK3).toEqual(["cooldown"]);
      const shared = await redisView(ns);
      expect(shared[2]).toEqual({ status: "blocked" });
      expect(agree(shared, view(a.router)) && agree(view(a.router), view(b.router))).toBe(true);
      expect([...a.errors, ...b.errors]).toEqual([]);
    });

    it("a clear that reached Redis before a transition in flight lowers nothing: the transition wins", async () => {
      const { ns, a, b, hold, fromB, release } = await pair();
      b.router.markErrorWithDelay(K4, 60_000);
      await waitFor(() => statusOf(a, K4) === "cooldown", "A to see K4 cooling");
      const events = eventsOf(a.router, 4);
      hold.when = "send";
      a.router.markBlocked(K4);
      await waitFor(() => hold.calls === 1, "A's write to be on its way");
      const received = fromB();
      b.router.clearCooldown(K4);
      await received;
      expect(statusOf(a, K4)).toBe("blocked");

      release();
      expect(await a.link.flush()).toBe(true);
      // A's block was merged after B's clear: it holds everywhere.
      await waitFor(() => statusOf(b, K4) === "blocked", "B to take A's block");
      expect(events).toEqual(["blocked"]);
      expect((await redisView(ns))[4]).toEqual({ status: "blocked" });
    });

    it("a clear that reached Redis after a transition in flight applies once the reply is in", async () => {
      const { ns, a, b, hold, fromB, release } = await pair();
      const events = eventsOf(a.router, 5);
      hold.when = "reply";
      a.router.markBlocked(K5);
      // A's script ran (B has its block), A's reply is held.
      await waitFor(() => statusOf(b, K5) === "blocked", "B to see A's block");
      const received = fromB();
      b.router.clearCooldown(K5);
      await received;
      // Until its reply says which came first, A keeps its own block.
      expect(statusOf(a, K5)).toBe("blocked");

      release();
      await waitFor(() => statusOf(a, K5) === "ready", "A to apply the newer clear");
      expect(await a.link.flush()).toBe(true);
      expect(events).toEqual(["blocked", "ready"]);
      expect((await redisView(ns))[5]).toEqual({ status: "ready" });
      expect(agree(view(a.router), view(b.router))).toBe(true);
    });
  });

  describe("attaching", () => {
    it("keys cooling, blocked or disabled locally stay so on attach, whatever older record Redis holds", async () => {
      const ns = namespace();
      // Yesterday, an instance cooled K0 and K1 down briefly and K2 for a minute; the records stay.
      const old = await instance(ns);
      old.router.markErrorWithDelay(K0, 1);
      old.router.markErrorWithDelay(K1, 1);
      old.router.markErrorWithDelay(K2, 60_000);
      expect(await old.link.flush()).toBe(true);
      await waitFor(async () => {
        const shared = await redisView(ns);
        return shared[0]!.status === "ready" && shared[1]!.status === "ready";
      }, "the short cooldowns to end");

      // Today, an instance restarts from its saved state: K0 was revoked, K2 cools for ten minutes.
      const saved = new CredentialRouter(KEYS);
      saved.markBlocked(K0);
      saved.markErrorWithDelay(K2, TEN_MINUTES);
      const router = new CredentialRouter(KEYS, { initialState: saved.exportState() });
      const link = await attachRedis(router, client(), { namespace: ns });
      links.push(link);
      expect(link.status).toBe("ready");
      expect(router.stateOf(K0)?.status).toBe("blocked");
      expect((router.stateOf(K2) as { remainingMs: number }).remainingMs).toBeGreaterThan(TEN_MINUTES - 5_000);
      for (let pick = 0; pick < 3 * KEYS.length; pick++) expect([K0, K2]).not.toContain(router.nextKey());
      expect(agree(await redisView(ns), view(router))).toBe(true);
      await waitFor(() => statusOf(old, K0) === "blocked", "the other instance to take the block");

      // The same after close(), a block while detached, and attaching again.
      await link.close();
      router.markBlocked(K1);
      const again = await attachRedis(router, client(), { namespace: ns });
      links.push(again);
      expect(router.stateOf(K1)?.status).toBe("blocked");
      expect((await redisView(ns))[1]).toEqual({ status: "blocked" });
      await waitFor(() => statusOf(old, K1) === "blocked", "the other instance to take the second block");
      expect(old.errors).toEqual([]);
    });

    it("a state restored from before a clear does not undo the clear", async () => {
      const ns = namespace();
      const a = await instance(ns);
      const b = await instance(ns);
      a.router.markBlocked(K0);
      a.router.markDisabled(K1);
      await waitFor(() => statusOf(b, K0) === "blocked" && statusOf(b, K1) === "disabled", "B to take A's states");
      const saved = a.router.exportState();
      // An admin clears both keys everywhere; later, an instance starts from the older saved state.
      b.router.clearCooldown(K0);
      b.router.clearCooldown(K1);
      await waitFor(() => statusOf(a, K0) === "ready" && statusOf(a, K1) === "ready", "A to take the clears");
      const router = new CredentialRouter(KEYS, { initialState: saved });
      expect(router.stateOf(K0)?.status).toBe("blocked");
      const link = await attachRedis(router, client(), { namespace: ns });
      links.push(link);
      expect(link.status).toBe("ready");
      expect([router.stateOf(K0)?.status, router.stateOf(K1)?.status]).toEqual(["ready", "ready"]);
      expect(await link.flush()).toBe(true);
      expect((await redisView(ns)).slice(0, 2)).toEqual([{ status: "ready" }, { status: "ready" }]);
      expect([statusOf(a, K0), statusOf(b, K1)]).toEqual(["ready", "ready"]);
    });
  });

  describe("applying other instances' changes", () => {
    it("reads no snapshot per change, and keeps this instance's failure counts except on a clear", async () => {
      const ns = namespace();
      const router = new CredentialRouter(KEYS, {
        initialState: {
          version: 1,
          savedAt: Date.now(),
          keys: [
            { id: fingerprint(K0), status: "ready", failures: 3 },
            { id: fingerprint(K1), status: "ready", failures: 2 },
          ],
        },
      });
      let snapshots = 0;
      const counted: SharedRouter = {
        subscribe: (listener) => router.subscribe(listener),
        importState: (state) => router.importState(state),
        snapshot: () => {
          snapshots++;
          return router.snapshot();
        },
      };
      const link = await attachRedis(counted, client(), { namespace: ns });
      links.push(link);
      const b = await instance(ns);
      snapshots = 0;
      const failuresOf = (index: number) => router.snapshot()[index]!.failures;

      b.router.markErrorWithDelay(K0, 60_000);
      b.router.markBlocked(K1);
      await waitFor(() => router.stateOf(K0)?.status === "cooldown" && router.stateOf(K1)?.status === "blocked", "the marks to arrive");
      expect(snapshots).toBe(0);
      expect([failuresOf(0), failuresOf(1)]).toEqual([3, 2]);
      b.router.clearCooldown(K1);
      await waitFor(() => router.stateOf(K1)?.status === "ready", "the clear to arrive");
      expect(snapshots).toBe(0);
      expect([failuresOf(0), failuresOf(1)]).toEqual([3, 0]);
    });

    it("writes the marks a listener makes while a change from another instance is applied", async () => {
      const ns = namespace();
      const a = await instance(ns);
      const b = await instance(ns);
      // A's operator rule: when K0 is revoked, its twin K1 goes too.
      a.router.subscribe((event) => {
        if (event.type === "blocked" && event.index === 0) a.router.markDisabled(K1);
      });
      b.router.markBlocked(K0);
      await waitFor(() => statusOf(a, K1) === "disabled", "A's listener to disable K1");
      await waitFor(() => statusOf(b, K1) === "disabled", "B to see the mark A's listener made");
      expect((await redisView(ns)).slice(0, 2)).toEqual([{ status: "blocked" }, { status: "disabled" }]);
    });

    it("a listener that marks a key from inside its ready event leaves Redis with the mark, not the clear", async () => {
      const ns = namespace();
      const router = new CredentialRouter(KEYS, { cooldownMs: TEN_MINUTES });
      // Subscribed before the link, so this listener hears each event first: it re-cools K2 whenever
      // K2 is cleared, here or elsewhere.
      router.subscribe((event) => {
        if (event.type === "ready" && event.reason === "cleared" && event.index === 2) router.markErrorWithDelay(K2, 60_000);
      });
      const link = await attachRedis(router, client(), { namespace: ns });
      links.push(link);
      const b = await instance(ns);
      router.markBlocked(K2);
      router.clearCooldown(K2);
      expect(router.stateOf(K2)?.status).toBe("cooldown");
      expect(await link.flush()).toBe(true);
      expect((await redisView(ns))[2]!.status).toBe("cooldown");
      await waitFor(() => statusOf(b, K2) === "cooldown", "B to see K2 cooling");

      // The same when the clear comes from another instance.
      b.router.clearCooldown(K2);
      await waitFor(() => statusOf(b, K2) === "cooldown" && router.stateOf(K2)?.status === "cooldown", "K2 to cool again on both");
      expect(await link.flush()).toBe(true);
      expect((await redisView(ns))[2]!.status).toBe("cooldown");
    });
  });

  describe("outages", () => {
    it(
      "keeps routing while Redis is down, then converges, transitions made meanwhile included",
      async () => {
        const ns = namespace();
        const a = await instance(ns);
        const b = await instance(ns);
        a.router.markBlocked(K0);
        b.router.markErrorWithDelay(K1, TEN_MINUTES);
        await waitFor(() => statusOf(b, K0) === "blocked" && statusOf(a, K1) === "cooldown", "the first states to spread");

        await server.stop();
        await waitFor(() => a.link.status === "offline" && b.link.status === "offline", "both links to go offline");
        // Routing goes on from local state; nothing throws.
        for (let pick = 0; pick < 20; pick++) {
          expect([K0, K1]).not.toContain(a.router.nextKey());
          expect(b.router.nextKey()).toBeDefined();
        }
        expect(a.router.markBlocked(K2)).toBe(true);
        expect(a.router.clearCooldown(K0)).toBe(true);
        expect(b.router.markDisabled(K3)).toBe(true);
        expect(b.router.markErrorWithDelay(K4, TEN_MINUTES)).toBe(true);
        expect(b.router.markErrorWithDelay(K4, TEN_MINUTES + 5_000)).toBe(true);
        expect(a.router.markError(K5)).toBe(true);
        expect(await a.link.flush()).toBe(false);
        // The failed reconnection attempts are reported, once per outage.
        await waitFor(() => a.errors.some((error) => error.operation === "connect"), "A to report the outage");

        // Back, empty (no persistence): the instances write what they did and what they hold.
        await server.restart();
        await waitFor(() => a.link.status === "ready" && b.link.status === "ready", "both links to be ready again", 5_000);
        await waitFor(
          () => agree(view(a.router), view(b.router)) && statusOf(a, K3) === "disabled" && statusOf(b, K2) === "blocked",
          "A and B to agree",
        );
        const expected = ["ready", "cooldown", "blocked", "disabled", "cooldown", "cooldown", "ready", "ready"];
        expect(view(a.router).map((entry) => entry.status)).toEqual(expected);
        const shared = await redisView(ns);
        expect(agree(shared, view(a.router))).toBe(true);
        // The errors reported on the way name no key.
        for (const error of [...a.errors, ...b.errors]) {
          for (const key of KEYS) expect(`${error.message} ${String(error.cause)} ${(error.cause as Error)?.stack}`).not.toContain(key);
        }
        expect(unhandled).toEqual([]);
      },
      15_000,
    );

    it("flush() resolves false when the connection drops while a write is in flight", async () => {
      const ns = namespace();
      const real = client();
      const release = deferred();
      let sent = false;
      let dropped = false;
      let armed = false;
      const { wrapped } = wrapClient(real, {
        status: () => (dropped ? "reconnecting" : real.status),
        // As ioredis with `maxRetriesPerRequest: null` does: a command sent before the drop waits.
        evalsha: async (sha, count, ...rest) => {
          // Writes from now on, not the load at attach nor the heartbeat.
          if (!armed || rest.length <= count + 10) return real.evalsha(sha, count, ...rest);
          sent = true;
          await release.promise;
          return real.evalsha(sha, count, ...rest);
        },
      });
      const router = new CredentialRouter(KEYS);
      const link = await attachRedis(router, wrapped, { namespace: ns });
      links.push(link);
      expect(link.status).toBe("ready");
      armed = true;
      router.markBlocked(K0);
      await waitFor(() => sent, "the write to be in flight");
      const flushed = link.flush();
      dropped = true;
      real.emit("close");
      expect(link.status).toBe("offline");
      let guard: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([flushed, new Promise((resolve) => (guard = setTimeout(resolve, 2_000, "still pending")))]);
      clearTimeout(guard);
      expect(outcome).toBe(false);
      expect(await link.flush()).toBe(false);

      // Back: the held write goes through, the link resyncs.
      dropped = false;
      release.resolve();
      real.emit("ready");
      await waitFor(() => link.status === "ready", "the link to be ready again");
      expect(await link.flush()).toBe(true);
      expect((await redisView(ns))[0]).toEqual({ status: "blocked" });
    });

    it("attachRedis resolves offline when Redis is down, and syncs once it is up", async () => {
      const port = await freePort();
      const ns = namespace();
      const router = new CredentialRouter(KEYS, { cooldownMs: TEN_MINUTES });
      router.markBlocked(K6);
      const link = await attachRedis(router, client(port), { namespace: ns });
      links.push(link);
      expect(link.status).toBe("offline");
      expect(router.nextKey()).toBeDefined();
      router.markDisabled(K7);

      const late = await startRedisServer({ binary: BINARY!, port });
      try {
        await waitFor(() => link.status === "ready", "the link to connect", 5_000);
        const peer = new CredentialRouter(KEYS);
        const peerLink = await attachRedis(peer, client(port), { namespace: ns });
        expect(peer.stateOf(K6)?.status).toBe("blocked");
        expect(peer.stateOf(K7)?.status).toBe("disabled");
        await peerLink.close();
        await link.close();
      } finally {
        await late.stop();
      }
      expect(unhandled).toEqual([]);
    });
  });

  describe("when Redis loses the shared state", () => {
    /** Drops the namespace's shared state, as FLUSHDB, eviction or a restart without persistence do. */
    const lose = (ns: string) => reader.del(`{${ns}}:state`);

    it("a writer keeps its own mark, and every instance offers what it holds again", async () => {
      const ns = namespace();
      const a = await instance(ns);
      const b = await instance(ns);
      a.router.markDisabled(K0);
      b.router.markErrorWithDelay(K1, TEN_MINUTES);
      b.router.markBlocked(K2);
      await waitFor(() => statusOf(b, K0) === "disabled" && statusOf(a, K1) === "cooldown" && statusOf(a, K2) === "blocked", "the first states to spread");
      // A clear before the loss stays a clear: nobody offers K2 again.
      a.router.clearCooldown(K2);
      await waitFor(() => statusOf(b, K2) === "ready", "B to take the clear");

      await lose(ns);
      // No disconnect: A learns of the loss from its own write's reply (a new epoch).
      a.router.markBlocked(K3);
      expect(await a.link.flush()).toBe(true);
      await waitFor(async () => {
        const shared = (await redisView(ns)).map((entry) => entry.status);
        return shared.slice(0, 4).join() === "disabled,cooldown,ready,blocked" && statusOf(b, K3) === "blocked";
      }, "Redis to hold every state again, and B the new block");
      expect(await a.link.flush()).toBe(true);
      expect(await b.link.flush()).toBe(true);
      expect(view(a.router).map((entry) => entry.status).slice(0, 4)).toEqual(["disabled", "cooldown", "ready", "blocked"]);
      expect(agree(view(a.router), view(b.router))).toBe(true);
      expect(agree(await redisView(ns), view(a.router))).toBe(true);
      expect([...a.errors, ...b.errors]).toEqual([]);
    });

    it("a stale 429 written after the loss does not undo a disable or shorten a cooldown held from before", async () => {
      const ns = namespace();
      const a = await instance(ns);
      const b = await instance(ns);
      a.router.markDisabled(K0);
      a.router.markErrorWithDelay(K1, TEN_MINUTES);
      await waitFor(() => statusOf(b, K0) === "disabled" && statusOf(b, K1) === "cooldown", "B to take A's states");

      await lose(ns);
      // A new instance, knowing nothing, writes first: short cooldowns on both keys.
      const c = await instance(ns);
      c.router.markErrorWithDelay(K0, 2_000);
      c.router.markErrorWithDelay(K1, 2_000);
      await waitFor(
        () => [a, b, c].every((instance) => statusOf(instance, K0) === "disabled"),
        "every instance to hold K0 disabled",
      );
      for (const instance of [a, b, c]) expect(await instance.link.flush()).toBe(true);
      for (const instance of [a, b, c]) {
        expect((instance.router.stateOf(K1) as { remainingMs: number }).remainingMs).toBeGreaterThan(TEN_MINUTES - 10_000);
      }
      const shared = await redisView(ns);
      expect(shared[0]).toEqual({ status: "disabled" });
      expect(agree(shared, view(c.router))).toBe(true);
      expect([...a.errors, ...b.errors, ...c.errors]).toEqual([]);
    });
  });

  it(
    "4 instances x 1,000 random marks agree with each other and with Redis at the end",
    async () => {
      const ns = namespace();
      const instances = await Promise.all([0, 1, 2, 3].map(() => instance(ns)));
      const run = async (instance: Instance, seed: number) => {
        const random = seededRandom(seed);
        const { router } = instance;
        for (let mark = 0; mark < 1_000; mark++) {
          const key = KEYS[Math.floor(random() * KEYS.length)]!;
          const roll = random();
          if (roll < 0.4) router.markErrorWithDelay(key, TEN_MINUTES + Math.floor(random() * 60_000));
          else if (roll < 0.55) router.markError(key);
          else if (roll < 0.68) router.markBlocked(key);
          else if (roll < 0.72) router.markDisabled(key);
          else router.clearCooldown(key);
          router.nextKey();
          // Let the network in now and then, so that the instances interleave.
          if (mark % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      };
      await Promise.all(instances.map((instance, index) => run(instance, 0x5eed + index)));
      expect(await Promise.all(instances.map((instance) => instance.link.flush()))).toEqual([true, true, true, true]);
      await waitFor(() => instances.every((instance) => agree(view(instance.router), view(instances[0]!.router))), "the instances to agree", 5_000);
      const shared = await redisView(ns);
      for (const instance of instances) {
        expect(agree(view(instance.router), shared), JSON.stringify({ local: view(instance.router), shared })).toBe(true);
        expect(instance.errors).toEqual([]);
      }
    },
    15_000,
  );

  it("close() detaches: the router works alone, only the link's own connection is ended", async () => {
    const ns = namespace();
    const redis = client();
    await redis.ping();
    const connections = async () => String(await redis.client("LIST")).trim().split("\n").length;
    const before = await connections();
    const a = await instance(ns, redis);
    const b = await instance(ns);
    await waitFor(() => a.link.status === "ready", "A to be ready");
    expect(await connections()).toBe(before + 3); // A's subscriber, B's client and subscriber
    await a.link.close();
    expect(a.link.status).toBe("closed");
    expect(await redis.ping()).toBe("PONG");
    await waitFor(async () => (await connections()) === before + 2, "the subscriber connection to end");
    a.router.markBlocked(K0);
    expect(a.router.stateOf(K0)?.status).toBe("blocked");
    b.router.markDisabled(K1);
    expect(await b.link.flush()).toBe(true);
    await drainPublished();
    expect(a.router.stateOf(K1)?.status).toBe("ready");
    expect(b.router.stateOf(K0)?.status).toBe("ready");
    expect(await a.link.flush()).toBe(false);
  });

  it("under load, the marks made within writeIntervalMs go out in one write and one message", async () => {
    const ns = namespace();
    const real = client();
    let writes = 0;
    const { wrapped } = wrapClient(real, {
      evalsha: (sha, count, ...rest) => {
        if (rest.length > count + 10) writes++;
        return real.evalsha(sha, count, ...rest);
      },
    });
    const router = new CredentialRouter(KEYS, { cooldownMs: TEN_MINUTES });
    const link = await attachRedis(router, wrapped, { namespace: ns, writeIntervalMs: 500 });
    links.push(link);
    const b = await instance(ns);
    writes = 0;
    // After a quiet spell, a mark goes at once; the next ones wait for the interval, together.
    router.markBlocked(K0);
    await waitFor(() => statusOf(b, K0) === "blocked", "B to see the first mark");
    // Marks a few milliseconds apart: each would have had a write of its own.
    const pause = () => new Promise((resolve) => setTimeout(resolve, 5));
    router.markBlocked(K1);
    await pause();
    router.markDisabled(K2);
    await pause();
    router.markErrorWithDelay(K3, 60_000);
    expect(await link.flush()).toBe(true);
    expect(writes).toBe(2);
    await waitFor(() => statusOf(b, K1) === "blocked" && statusOf(b, K2) === "disabled" && statusOf(b, K3) === "cooldown", "B to see the batch");
  });

  it("rejects bad arguments at once, naming the option and never a key", () => {
    const router = new CredentialRouter(KEYS);
    const redis = client();
    expect(() => attachRedis({} as never, redis)).toThrow(TypeError);
    expect(() => attachRedis(router, {} as never)).toThrow(/redis\.evalsha \(ioredis\) or redis\.evalSha \(node-redis\) must be a function/);
    expect(() => attachRedis(router, redis, { namespace: "" })).toThrow(TypeError);
    expect(() => attachRedis(router, redis, { namespace: "a{b}" })).toThrow(/namespace/);
    expect(() => attachRedis(router, redis, { namespace: K0 as never, attachTimeoutMs: -1 })).toThrow(RangeError);
    expect(() => attachRedis(router, redis, { namespace: 42 as never })).toThrow(/received 42/);
    expect(() => attachRedis(router, redis, { maxRetryAfterMs: 0 })).toThrow(RangeError);
    expect(() => attachRedis(router, redis, { writeIntervalMs: -1 })).toThrow(/writeIntervalMs must be a finite number >= 0, received -1/);
    try {
      attachRedis(router, redis, { namespace: `${K0} ` });
    } catch (error) {
      expect(String(error)).not.toContain(K0);
    }
  });

  it("stores and publishes no key: only fingerprints", async () => {
    // Data of its own, so that the test stands alone.
    const ns = namespace();
    const a = await instance(ns);
    const b = await instance(ns);
    for (const [index, key] of KEYS.entries()) {
      if (index % 2 === 0) a.router.markBlocked(key);
      else b.router.markErrorWithDelay(key, 60_000);
      b.router.clearCooldown(key);
    }
    expect(await a.link.flush()).toBe(true);
    expect(await b.link.flush()).toBe(true);
    await drainPublished();
    const found: string[] = [];
    let cursor = "0";
    do {
      const [next, names] = await reader.scan(cursor, "COUNT", 1_000);
      cursor = next;
      for (const name of names) {
        found.push(name);
        const type = await reader.type(name);
        if (type === "string") found.push(String(await reader.get(name)));
        else if (type === "hash") found.push(...Object.entries(await reader.hgetall(name)).flat());
        else if (type === "list") found.push(...(await reader.lrange(name, 0, -1)));
        else if (type === "set") found.push(...(await reader.smembers(name)));
        else if (type === "zset") found.push(...(await reader.zrange(name, 0, -1, "WITHSCORES")));
        else if (type === "stream") found.push(JSON.stringify(await reader.xrange(name, "-", "+")));
        else found.push(`unexpected type ${type}`);
      }
    } while (cursor !== "0");
    const everything = [...found, ...published.flatMap((entry) => [entry.channel, entry.message])].join("\n");
    // The scan saw real data, and fingerprints are how keys are named there.
    expect(found.length).toBeGreaterThan(2);
    expect(published.length).toBeGreaterThan(1);
    expect(everything).toContain(fingerprint(K0));
    for (const key of KEYS) {
      expect(everything).not.toContain(key);
      // Nor a masked hint's halves joined, nor the key's distinctive middle.
      expect(everything).not.toContain(key.slice(4, -4));
    }
    expect(everything).not.toContain("…");
  });
});
