/**
 * The Redis adapter with each client kind it accepts: ioredis, node-redis 5 (`redis`) and node-redis
 * 4 (`redis4`, an npm alias), all on one namespace of a real `redis-server`, through marks, clears,
 * dropped connections and close().
 */
import { expect, it } from "vitest";
import { createClient as createClient5 } from "redis";
import { createClient as createClient4 } from "redis4";
import { CredentialRouter } from "../src/index.js";
import { attachRedis, type RedisLink } from "../src/redis/index.js";
import { describeRedis, KEYS, redisContext, statusReached, statuses, TEN_MINUTES, unhandled, waitFor } from "./helpers/redis-suite.js";

describeRedis("Redis adapter with ioredis, node-redis 5 and node-redis 4", () => {
  const redis = redisContext();

  it("instances on the three clients share marks and clears, recover dropped connections, and close cleanly", async () => {
    const ns = redis.namespace();
    const url = `redis://127.0.0.1:${redis.server.port}`;
    const five = createClient5({ url, socket: { reconnectStrategy: () => 50 } });
    const four = createClient4({ url, socket: { reconnectStrategy: () => 50 } });
    for (const client of [five, four]) client.on("error", () => {});
    await Promise.all([five.connect(), four.connect()]);
    try {
      const make = async (client: Parameters<typeof attachRedis>[1]) => {
        const router = new CredentialRouter(KEYS, { cooldownMs: TEN_MINUTES, maxCooldownMs: TEN_MINUTES });
        const link: RedisLink = await attachRedis(router, client, { namespace: ns });
        redis.links.push(link);
        const errors: unknown[] = [];
        link.subscribe((event) => void (event.type === "error" && errors.push(event.error)));
        return { router, link, errors };
      };
      const a = await make(redis.client());
      const b = await make(five);
      const c = await make(four);
      expect([a.link.status, b.link.status, c.link.status]).toEqual(["ready", "ready", "ready"]);
      const all = [a, b, c];
      const agree = (index: number, status: string) => all.every((instance) => statuses(instance.router)[index] === status);

      a.router.markBlocked(KEYS[0]!);
      b.router.markErrorWithDelay(KEYS[1]!, 60_000);
      c.router.markDisabled(KEYS[2]!);
      await waitFor(() => agree(0, "blocked") && agree(1, "cooldown") && agree(2, "disabled"), "every instance to hold every mark");
      c.router.clearCooldown(KEYS[0]!);
      await waitFor(() => agree(0, "ready"), "every instance to take C's clear");

      // Every connection but the reader's drops; each link goes offline, comes back and resyncs.
      const offline = all.map((instance) => statusReached(instance.link, "offline"));
      await redis.reader.client("KILL", "TYPE", "pubsub");
      await redis.reader.client("KILL", "TYPE", "normal", "SKIPME", "yes");
      await Promise.all(offline);
      await Promise.all(all.map((instance) => statusReached(instance.link, "ready")));
      b.router.markBlocked(KEYS[3]!);
      await waitFor(() => agree(3, "blocked"), "every instance to take B's block after the reconnect");
      for (const instance of all) expect(await instance.link.flush()).toBe(true);

      // close() ends the subscriber connection each link opened, and only that one.
      const connections = async () => String(await redis.reader.client("LIST")).trim().split("\n").length;
      const before = await connections();
      await Promise.all(all.map((instance) => instance.link.close()));
      await waitFor(async () => (await connections()) === before - 3, "the three subscriber connections to end");
      expect(await five.ping()).toBe("PONG");
      expect(await four.ping()).toBe("PONG");
      expect(unhandled).toEqual([]);
    } finally {
      await Promise.allSettled([five.quit(), four.quit()]);
    }
  });

  it("rejects a client of no kind it knows, naming what is missing", () => {
    const router = new CredentialRouter(KEYS);
    expect(() => attachRedis(router, { evalSha: () => {} } as never)).toThrow(TypeError);
    expect(() => attachRedis(router, {} as never)).toThrow(/redis/);
  });
});
