/**
 * One process of the Redis CPU benchmark (bench/redis.ts forks it): `--instances` routers, each
 * attached to Redis with the adapter `--impl ours|v0` (or none: `--impl none`, the baseline loop),
 * marking `--rate` transitions a second in all (spread over the instances and over their own keys, in
 * `--half 0|1` of the keys) once told to go. After `--warm-up` ms it measures `--seconds` and reports
 * the CPU its process used (user + system), the transitions its first router made and those it received,
 * and the messages its first router's link received.
 *
 * bench/redis.ts runs it bundled by esbuild, not through tsx: the package's built files (`dist`, as
 * users run them) and the adapter before issue 9 compiled alike.
 */
import Redis from "ioredis";
import { CredentialRouter } from "credential-router";
import { attachRedis as attachOurs } from "credential-router/redis";
import { attachRedis as attachV0 } from "./redis-v0/index.js";

const argument = (name: string) => process.argv[process.argv.indexOf(name) + 1]!;
const impl = argument("--impl");
const rate = Number(argument("--rate"));
const seconds = Number(argument("--seconds"));
const half = Number(argument("--half"));
const instances = Number(argument("--instances"));
const warmUpMs = Number(argument("--warm-up"));
const KEY_COUNT = 64;
const keys = Array.from({ length: KEY_COUNT }, (_, index) => `sk-bench-${index.toString(36).padStart(6, "0")}-secret-value`);

interface Member {
  router: CredentialRouter;
  keys: string[];
  redis?: Redis;
  link?: { close(): Promise<void> };
}
const members: Member[] = [];
let received = 0;
let messages = 0;
const perInstance = 32 / instances;
for (let member = 0; member < instances; member++) {
  const router = new CredentialRouter(keys, { cooldownMs: 600_000 });
  const own = keys.slice(half * 32 + member * perInstance, half * 32 + (member + 1) * perInstance);
  if (member === 0) {
    router.subscribe((event) => {
      if (event.type !== "exhausted" && Math.floor(event.index / 32) !== half) received++;
    });
  }
  const entry: Member = { router, keys: own };
  if (impl !== "none") {
    entry.redis = new Redis(argument("--redis"));
    if (member === 0) {
      // Counts the messages the first router's subscriber connection receives (its own included).
      const duplicate = entry.redis.duplicate.bind(entry.redis);
      entry.redis.duplicate = ((...options: Parameters<Redis["duplicate"]>) => {
        const subscriber = duplicate(...options);
        subscriber.on("message", () => void messages++);
        return subscriber;
      }) as Redis["duplicate"];
    }
    const attach = impl === "v0" ? attachV0 : attachOurs;
    entry.link = await attach(router, entry.redis as never, { namespace: argument("--namespace") });
  }
  members.push(entry);
}

process.send!({ type: "ready" });
process.once("message", () => {
  // Marking starts at once; the measure starts after a warm-up (modules loaded, code compiled).
  const started = performance.now();
  let cpu: NodeJS.CpuUsage | undefined;
  let receivedBefore = 0;
  let messagesBefore = 0;
  let total = 0;
  let sentBefore = 0;
  const timer = setInterval(() => {
    const elapsed = performance.now() - started;
    if (cpu === undefined && elapsed >= warmUpMs) {
      cpu = process.cpuUsage();
      receivedBefore = received;
      messagesBefore = messages;
      sentBefore = total;
    }
    const due = Math.min(Math.floor((elapsed / 1_000) * rate), rate * (seconds + warmUpMs / 1_000));
    while (total < due) {
      // Round the instances: each marks its keys in turn, block then clear.
      const member = members[total % instances]!;
      const turn = Math.floor(total / instances);
      const key = member.keys[turn % member.keys.length]!;
      if (Math.floor(turn / member.keys.length) % 2 === 0) member.router.markBlocked(key);
      else member.router.clearCooldown(key);
      total++;
    }
    if (cpu !== undefined && elapsed >= warmUpMs + seconds * 1_000 + 500) {
      // Half a second more for the last changes to arrive, then report.
      clearInterval(timer);
      const used = process.cpuUsage(cpu);
      const report = { type: "done", cpuMicros: used.user + used.system, sent: total - sentBefore, received: received - receivedBefore, messages: messages - messagesBefore };
      process.send!(report, async () => {
        await Promise.all(members.map((member) => member.link?.close()));
        for (const member of members) member.redis?.disconnect();
        process.exit(0);
      });
    }
  }, 1);
});
