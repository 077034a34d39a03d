/**
 * The Redis adapter on a Redis Cluster (3 masters, started here on free loopback ports, stopped at
 * the end) through ioredis's `Cluster`, which swaps its subscriber connection by itself when that
 * connection dies: messages published meanwhile are lost, and the link must notice and resync.
 */
import Redis, { Cluster } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CredentialRouter } from "../src/index.js";
import { attachRedis, type RedisLink } from "../src/redis/index.js";
import { startRedisCluster, type RedisCluster } from "./helpers/redis-cluster.js";
import { describeRedis, KEYS, statuses, TEN_MINUTES, unhandled, waitFor } from "./helpers/redis-suite.js";

describeRedis("Redis adapter on a Redis Cluster", () => {
  let cluster: RedisCluster;
  const clients: Cluster[] = [];
  const links: RedisLink[] = [];
  const onUnhandled = (reason: unknown) => void unhandled.push(reason);

  beforeAll(async () => {
    process.on("unhandledRejection", onUnhandled);
    cluster = await startRedisCluster();
  }, 60_000);

  afterAll(async () => {
    await Promise.all(links.map((link) => link.close()));
    for (const client of clients) client.disconnect();
    await cluster?.stop();
    process.off("unhandledRejection", onUnhandled);
  }, 60_000);

  function client(): Cluster {
    const redis = new Cluster(
      cluster.ports.map((port) => ({ host: "127.0.0.1", port })),
      { clusterRetryStrategy: () => 50, redisOptions: { maxRetriesPerRequest: 5 } },
    );
    redis.on("error", () => {});
    clients.push(redis);
    return redis;
  }

  async function instance(namespace: string) {
    const router = new CredentialRouter(KEYS, { cooldownMs: TEN_MINUTES, maxCooldownMs: TEN_MINUTES });
    const link = await attachRedis(router, client(), { namespace });
    links.push(link);
    return { router, link };
  }

  it("shares marks, and recovers the marks lost when ioredis replaces its subscriber connection", async () => {
    const namespace = `cluster-${process.pid}`;
    const a = await instance(namespace);
    const b = await instance(namespace);
    expect([a.link.status, b.link.status]).toEqual(["ready", "ready"]);
    a.router.markBlocked(KEYS[0]!);
    await waitFor(() => b.router.stateOf(KEYS[0]!)?.status === "blocked", "B to see A's block");

    // Every node drops its subscriber connections: ioredis picks new ones by itself, silently.
    const admins = cluster.ports.map((port) => new Redis({ host: "127.0.0.1", port }));
    await Promise.all(admins.map((admin) => admin.ping()));
    try {
      // Marks made while the subscribers are being replaced again and again: the last round of
      // marks disables K1..K5.
      let killed = 0;
      for (let round = 0; round < 55; round++) {
        const kills = Promise.all(admins.map((admin) => admin.client("KILL", "TYPE", "pubsub")));
        const key = KEYS[1 + (round % 5)]!;
        if (Math.floor(round / 5) % 2 === 0) a.router.markDisabled(key);
        else a.router.clearCooldown(key);
        killed += (await kills).reduce((sum: number, count) => sum + Number(count), 0);
        await a.link.flush();
      }
      expect(killed).toBeGreaterThanOrEqual(10);
    } finally {
      for (const admin of admins) admin.disconnect();
    }
    expect(await a.link.flush()).toBe(true);
    await waitFor(
      () => statuses(b.router).slice(0, 6).every((status, index) => status === (index === 0 ? "blocked" : "disabled")),
      "B to hold all five marks",
    );
    b.router.clearCooldown(KEYS[1]!);
    await waitFor(() => a.router.stateOf(KEYS[1]!)?.status === "ready", "A to take B's clear");
    expect(unhandled).toEqual([]);
  });
});
