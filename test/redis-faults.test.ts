/**
 * The Redis adapter under faults and hostile input (issue 9), against a real `redis-server`: an
 * operator's edits, forged and corrupt records, a busy router resyncing, a failed attach, deadlines
 * too large to write, and pruning.
 */
import { afterEach, expect, it, vi } from "vitest";
import { CredentialRouter, fingerprint } from "../src/index.js";
import { attachRedis, type RedisLink } from "../src/redis/index.js";
import {
  describeRedis,
  KEYS,
  redisContext,
  slowClient,
  statusReached,
  statuses,
  TEN_MINUTES,
  unhandled,
  waitFor,
  type Instance,
} from "./helpers/redis-suite.js";

const [K0, K1, K2, K3, K4, K5] = KEYS as [string, string, string, string, string, string];
const DAY = 86_400_000;
const remainingOf = (instance: Instance, key: string) => (instance.router.stateOf(key) as { remainingMs?: number }).remainingMs ?? 0;

/** Marks keys K4..K7 (block, clear, alternately) at >= 1,000 marks a second until stopped, whatever the timer rate. */
function markingLoop(router: CredentialRouter): { stop: () => number } {
  const started = performance.now();
  let marks = 0;
  const timer = setInterval(() => {
    const due = Math.ceil(((performance.now() - started) / 1_000) * 1_000);
    while (marks < due) {
      const key = KEYS[4 + (marks % 4)]!;
      if (Math.floor(marks / 4) % 2 === 0) router.markBlocked(key);
      else router.clearCooldown(key);
      marks++;
    }
  }, 1);
  return {
    stop: () => {
      clearInterval(timer);
      return marks / ((performance.now() - started) / 1_000);
    },
  };
}

describeRedis("Redis adapter under faults", () => {
  const redis = redisContext();
  const stateKey = (ns: string) => `{${ns}}:state`;

  afterEach(() => {
    vi.useRealTimers();
  });

  it("an own mark is never reverted when an operator removed the key's record (its own reply is the newest state)", async () => {
    const ns = redis.namespace();
    const a = await redis.instance(ns);
    const b = await redis.instance(ns);
    // B knows K0 at a few versions in.
    for (let round = 0; round < 2; round++) {
      b.router.markBlocked(K0);
      b.router.clearCooldown(K0);
    }
    expect(await b.link.flush()).toBe(true);
    await waitFor(() => a.router.stateOf(K0)?.status === "ready" && b.router.stateOf(K0)?.status === "ready", "both to hold K0 ready");
    // An operator resets the key.
    await redis.reader.hdel(stateKey(ns), fingerprint(K0));
    b.router.markBlocked(K0); // a 401
    expect(await b.link.flush()).toBe(true);
    expect(b.router.stateOf(K0)?.status).toBe("blocked");
    await waitFor(() => a.router.stateOf(K0)?.status === "blocked", "A to take B's block");
    expect((await redis.reader.hget(stateKey(ns), fingerprint(K0)))?.split("|")[1]).toBe("blocked");
    expect(b.link.status).toBe("ready");
    expect(b.router.stateOf(K0)?.status).toBe("blocked");
  });

  it("a reply older than the state known (the namespace's counter reset too) makes the writer load the key again", async () => {
    const ns = redis.namespace();
    const a = await redis.instance(ns);
    const b = await redis.instance(ns);
    for (let round = 0; round < 3; round++) {
      a.router.markBlocked(K1);
      a.router.clearCooldown(K1);
    }
    expect(await a.link.flush()).toBe(true);
    await waitFor(() => b.router.stateOf(K1)?.status === "ready", "B to hold K1 ready");
    // Everything about K1 and the counters goes, but not the epoch: versions restart within it.
    await redis.reader.hdel(stateKey(ns), fingerprint(K1), "seq");
    b.router.markDisabled(K1);
    expect(await b.link.flush()).toBe(true);
    await waitFor(() => a.router.stateOf(K1)?.status === "disabled", "A to take B's disable");
    expect(b.router.stateOf(K1)?.status).toBe("disabled");
    a.router.clearCooldown(K1);
    await waitFor(() => b.router.stateOf(K1)?.status === "ready", "B to take A's clear after the reset");
  });

  it("a forged record cannot pin a key: deadlines are capped, absurd versions refused and reported, and a clear wins", async () => {
    const ns = redis.namespace();
    const attach = { maxRetryAfterMs: TEN_MINUTES };
    const a = await redis.instance(ns, { attach });
    const b = await redis.instance(ns, { attach });
    a.router.markBlocked(K2);
    await waitFor(() => b.router.stateOf(K2)?.status === "blocked", "B to see K2 blocked");
    const id = fingerprint(K2);
    const epoch = await redis.reader.hget(stateKey(ns), "epoch");
    const seq = Number(await redis.reader.hget(stateKey(ns), "seq"));
    const channel = `{${ns}}:changes`;
    // As in the report: a cooldown for ~317,000 years, at an absurd version, in either message format.
    await redis.reader.publish(channel, `x ${epoch} ${id}|999999999999999|cooldown|9999999999999999`);
    await redis.reader.publish(channel, `x ${epoch} ${seq + 2 ** 31 + 1} ${id}|cooldown|9999999999999999`);
    // And one at a plausible version: taken, but its deadline is capped at maxRetryAfterMs from now.
    await redis.reader.publish(channel, `x ${epoch} ${seq + 1} ${fingerprint(K3)}|cooldown|9999999999999999`);
    await waitFor(() => b.errors.some((error) => /ahead/.test(error.message)), "B to report the version far ahead");
    await waitFor(() => b.router.stateOf(K3)?.status !== "ready" || b.link.status !== "ready", "B to take or resync the plausible forgery");
    expect(remainingOf(b, K3)).toBeLessThanOrEqual(TEN_MINUTES + 1_000);
    expect(b.router.stateOf(K2)?.status).toBe("blocked");
    // Stored forgeries too: a new instance reads the capped deadline.
    await redis.reader.hset(stateKey(ns), fingerprint(K4), "999999999999999|cooldown|9999999999999999");
    const c = await redis.instance(ns, { attach });
    expect(c.router.stateOf(K4)?.status).toBe("cooldown");
    expect(remainingOf(c, K4)).toBeLessThanOrEqual(TEN_MINUTES + 1_000);
    // A clear on any instance that holds the key out wins over all of it, everywhere.
    a.router.clearCooldown(K2);
    b.router.clearCooldown(K3);
    c.router.clearCooldown(K4);
    await waitFor(
      () => [a, b, c].every((instance) => [K2, K3, K4].every((key) => instance.router.stateOf(key)?.status === "ready")),
      "every instance to hold K2, K3 and K4 ready",
    );
    for (const key of [K2, K3, K4]) {
      const record = await redis.reader.hget(stateKey(ns), fingerprint(key));
      expect(record === null || record.split("|")[1] === "ready").toBe(true);
    }
    for (const error of [...a.errors, ...b.errors, ...c.errors]) for (const key of KEYS) expect(error.message).not.toContain(key);
  });

  it("a cooldown too long to write is written as a capped integer that every reader parses", async () => {
    const ns = redis.namespace();
    const a = await redis.instance(ns, { router: { maxRetryAfterMs: 1e22, maxCooldownMs: 1e22 } });
    const b = await redis.instance(ns);
    a.router.markErrorWithDelay(K5, 1e22);
    expect(await a.link.flush()).toBe(true);
    const record = (await redis.reader.hget(stateKey(ns), fingerprint(K5)))!;
    expect(record).toMatch(/^\d+\|cooldown\|\d+\|manual$/);
    const until = Number(record.split("|")[2]);
    expect(until).toBeLessThanOrEqual(Date.now() + DAY);
    expect(until).toBeGreaterThan(Date.now() + DAY - 60_000);
    await waitFor(() => b.router.stateOf(K5)?.status === "cooldown", "B to see K5 cooling");
    expect(remainingOf(b, K5)).toBeLessThanOrEqual(DAY);
    expect(a.errors).toEqual([]);
    expect(b.errors).toEqual([]);
  });

  it("attachRedis on a busy router (1,000 marks/s, 3 ms round trips) resolves ready", async () => {
    const ns = redis.namespace();
    const router = new CredentialRouter(KEYS, { cooldownMs: TEN_MINUTES });
    const loop = markingLoop(router);
    let link: RedisLink | undefined;
    try {
      link = await attachRedis(router, slowClient(redis.client(), { latencyMs: 3 }), { namespace: ns, attachTimeoutMs: 20_000 });
      redis.links.push(link);
      expect(link.status).toBe("ready");
    } finally {
      expect(loop.stop()).toBeGreaterThanOrEqual(500);
    }
  });

  it("resyncs in a bounded number of round trips while the router keeps marking, and stays live", async () => {
    const ns = redis.namespace();
    const real = redis.client();
    const slow = slowClient(real, { latencyMs: 3 });
    const a = await redis.instance(ns, { redis: slow });
    const b = await redis.instance(ns);
    const loop = markingLoop(a.router);
    try {
      // The connection drops and comes back while A marks.
      const offline = statusReached(a.link, "offline");
      await redis.reader.client("KILL", "TYPE", "pubsub");
      await offline;
      await statusReached(a.link, "ready");
      // Another instance's block reaches A, and A's flush settles, while the marking goes on.
      b.router.markBlocked(K0);
      await waitFor(() => a.router.stateOf(K0)?.status === "blocked", "A to take B's block while marking");
      expect(await a.link.flush()).toBe(true);
    } finally {
      expect(loop.stop()).toBeGreaterThanOrEqual(500);
    }
    expect(await a.link.flush()).toBe(true);
    await waitFor(async () => {
      const shared = await redis.reader.hmget(stateKey(ns), ...KEYS.slice(4).map(fingerprint));
      return KEYS.slice(4).every((key, index) => (shared[index]?.split("|")[1] ?? "ready") === a.router.stateOf(key)!.status);
    }, "Redis to hold A's last marks");
    expect(unhandled).toEqual([]);
  });

  it("a failed attachRedis leaves nothing behind: no listener, no write, no unhandled rejection", async () => {
    const real = redis.client();
    await real.ping();
    const listeners = () => ["ready", "close", "end"].map((event) => real.listenerCount(event));
    const before = listeners();
    const failing = slowClient(real, {
      duplicate: () => {
        throw new Error("no more connections");
      },
    });
    const router = new CredentialRouter(KEYS);
    const routerListeners = vi.fn();
    router.subscribe(routerListeners);
    expect(() => attachRedis(router, failing, { namespace: redis.namespace() })).toThrow("no more connections");
    router.markBlocked(K0);
    router.clearCooldown(K0);
    real.emit("ready");
    real.emit("close");
    real.emit("ready");
    await real.ping();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(listeners()).toEqual(before);
    expect(failing.scriptCalls).toBe(0);
    expect(routerListeners).toHaveBeenCalledTimes(2);
    expect(unhandled).toEqual([]);
  });

  it("prunes: ready records past a day, keys no instance holds, and the batch key with its instance", async () => {
    const ns = redis.namespace();
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    // Ten rounds of instances, each with 64 keys of its own, a day apart.
    for (let round = 0; round < 10; round++) {
      const keys = Array.from({ length: 64 }, (_, index) => `sk-round-${round}-${index}-${"z".repeat(20)}`);
      const instance = await redis.instance(ns, { keys });
      instance.router.markBlocked(keys[0]!);
      instance.router.markErrorWithDelay(keys[1]!, 60_000);
      instance.router.markErrorWithDelay(keys[2]!, 1);
      instance.router.markBlocked(keys[3]!);
      instance.router.clearCooldown(keys[3]!);
      expect(await instance.link.flush()).toBe(true);
      const guard = `{${ns}}:batch:${instance.link.instanceId}`;
      expect(await redis.reader.pttl(guard)).toBeLessThan(DAY);
      await instance.link.close();
      expect(await redis.reader.exists(guard)).toBe(0);
      vi.setSystemTime(Date.now() + DAY + 60_000);
    }
    // Today's instance holds 8 keys: the hash holds at most those (and its bookkeeping fields).
    const today = await redis.instance(ns);
    today.router.markBlocked(K0);
    today.router.clearCooldown(K1);
    today.router.markErrorWithDelay(K2, 1);
    expect(await today.link.flush()).toBe(true);
    await waitFor(async () => (await redis.reader.hlen(stateKey(ns))) <= KEYS.length + 3, "the hash to shrink to the keys in use");
    expect(await redis.reader.zcard(`{${ns}}:held`)).toBeLessThanOrEqual(KEYS.length);
    // A day on, today's ready records (a clear, an ended cooldown) go; its block stays.
    vi.setSystemTime(Date.now() + DAY + 60_000);
    await waitFor(
      async () => (await redis.reader.hmget(stateKey(ns), fingerprint(K1), fingerprint(K2))).every((value) => value === null),
      "the old ready records to go",
    );
    expect((await redis.reader.hget(stateKey(ns), fingerprint(K0)))?.split("|")[1]).toBe("blocked");
    expect(statuses(today.router).slice(0, 3)).toEqual(["blocked", "ready", "ready"]);
    expect(today.errors).toEqual([]);
  });
});
