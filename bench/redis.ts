/**
 * `npm run bench` (or, after `npm run build`, `TSX_TSCONFIG_PATH=bench/tsx.tsconfig.json tsx bench/redis.ts [--redis
 * redis://host:port] [--warm-up <ms>]`): what the Redis adapter costs, built as users run it.
 *
 * 1. Propagation latency: instance A marks a key, instance B's router emits the change; 200 marks
 *    (block, then clear, alternately) over loopback; p50 / p99 / max. Twice: each mark as soon as the
 *    last one arrived (it waits for the rest of `writeIntervalMs`, as marks under load do), and each
 *    after a quiet spell longer than the interval (written at once).
 * 2. Local cost of a mark: the same marks on a router with the adapter attached (ours) and on one
 *    without (baseline), in one run; ns/op and the ratio ours / baseline. The network write happens
 *    in the background, batched; this is what the caller of the mark pays. A third router with a
 *    listener that does nothing shows how much of that is the core building the event.
 *
 * 3. CPU per transition on an instance, sent and received: one process marks 1,000 transitions a
 *    second and receives 4,000 a second from 4 instances in a peer process (1,000 a second each,
 *    one a millisecond, as a busy fleet marks), for 4 s; its CPU (user + system) less
 *    that of the same marking loop without the adapter, divided by the transitions it sent and
 *    received. Ours beside the adapter before issue 9 (bench/redis-v0), in the same run, alternated,
 *    best of three each; the target is at least 3x less CPU. Measured after 8 s of the same load, as
 *    an instance runs for hours: at a few hundred calls a second, V8 is still compiling the adapter's
 *    and the client's code after 1.5 s (a profile shows its compiler threads busy), a cost paid once
 *    at start that `--warm-up <ms>` shows (1,500 counts mostly that).
 *
 * Without `--redis` (or `REDIS_URL`) it starts a throwaway `redis-server` on loopback.
 */
import { fork } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import Redis from "ioredis";
import { measure } from "mitata";
import { CredentialRouter } from "credential-router";
import { attachRedis, type RedisLink } from "credential-router/redis";
import { startRedisServer, type RedisServer } from "../test/helpers/redis-server.js";
import { assertBuilt } from "./built.js";

assertBuilt();

const KEY_COUNT = 64;
const MARKS = 200;
/** More than the default `writeIntervalMs`: the next mark is written at once. */
const QUIET_MS = 40;
const CPU_SECONDS = 4;
const keys = Array.from({ length: KEY_COUNT }, (_, index) => `sk-bench-${index.toString(36).padStart(6, "0")}-secret-value`);

function argument(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}

const warmUpMs = Number(argument("--warm-up") ?? 8_000);

let server: RedisServer | undefined;
let url = argument("--redis") ?? process.env.REDIS_URL;
if (url === undefined) {
  try {
    server = await startRedisServer();
  } catch (error) {
    // `npm run bench` runs this after the core benchmark: without a Redis, say so and stop cleanly.
    console.log(`\nRedis benchmark skipped: ${(error as Error).message}; or pass --redis <url>`);
    process.exit(0);
  }
  url = server.url;
}

const clients: Redis[] = [];
const links: RedisLink[] = [];
async function attached(namespace: string): Promise<CredentialRouter> {
  const router = new CredentialRouter(keys, { cooldownMs: 600_000 });
  const redis = new Redis(url!);
  clients.push(redis);
  const link = await attachRedis(router, redis, { namespace });
  if (link.status !== "ready") throw new Error(`the link is ${link.status}, not ready`);
  links.push(link);
  return router;
}

interface CpuReport {
  cpuMicros: number;
  sent: number;
  received: number;
  messages: number;
}

/**
 * The measured processes' script, bundled: the package's own built files as users run them (the
 * package imports itself by name), and the adapter before issue 9 compiled the same way. Not through
 * tsx, whose loader compiles with `keepNames`: every closure a loop makes gets a naming call, which
 * weighs on the per-entry checks of `importState` and on the old adapter alike. It is written inside
 * the package (ignored by git), where the package's name resolves to itself.
 */
const cpuScript = fileURLToPath(new URL("./.out/redis-cpu.mjs", import.meta.url));
await build({
  entryPoints: [fileURLToPath(new URL("./redis-cpu.ts", import.meta.url))],
  outfile: cpuScript,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // Left to Node, which resolves the package's own name to its exports (`dist`), not to the sources
  // the tsconfig maps it to.
  external: ["ioredis", "credential-router", "credential-router/redis"],
  logLevel: "warning",
});

/** Runs the measured process (and, with `peerRate`, a peer on the same namespace); resolves with the measured one's report. */
async function cpuRun(impl: "ours" | "v0" | "none", peerRate: number): Promise<CpuReport> {
  const namespace = `bench-cpu-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const start = (half: number, rate: number, kind: string, instances: number) =>
    fork(
      cpuScript,
      ["--impl", kind, "--rate", String(rate), "--seconds", String(CPU_SECONDS), "--warm-up", String(warmUpMs), "--half", String(half), "--instances", String(instances), "--redis", url!, "--namespace", namespace],
      { execArgv: [] },
    );
  const children = [start(0, 1_000, impl, 1), ...(peerRate > 0 ? [start(1, peerRate, impl, 4) ] : [])];
  const exits = children.map((child) => new Promise<number | null>((resolve) => child.once("exit", resolve)));
  const reports = children.map(
    (child, index) =>
      new Promise<CpuReport>((resolve, reject) => {
        child.on("message", (message: { type: string } & CpuReport) => void (message.type === "done" && resolve(message)));
        void exits[index]!.then((code) => reject(new Error(`a benchmark process exited with ${code}`)));
      }),
  );
  await Promise.all(children.map((child) => new Promise<void>((resolve) => child.once("message", () => resolve()))));
  for (const child of children) child.send("go");
  const [measured, peer] = await Promise.all(reports);
  await Promise.all(exits);
  // The fleet's transitions this instance had to learn of: the peers' marks, whether or not they
  // were folded together before reaching Redis (ours writes the net change of a few milliseconds).
  return { ...measured!, received: peer?.sent ?? 0 };
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

try {
  console.log(`credential-router/redis benchmark, Node ${process.version}, ${KEY_COUNT} keys, ${url}\n`);

  // 1. Propagation latency.
  const namespace = `bench-${process.pid}-${Date.now()}`;
  const a = await attached(namespace);
  const b = await attached(namespace);
  let arrived: (() => void) | undefined;
  b.subscribe((event) => {
    if (event.type === "blocked" || (event.type === "ready" && event.reason === "cleared")) arrived?.();
  });
  // One counter over both runs: block, then clear, each key in turn, so that every mark is a change.
  let mark = 0;
  const propagation = async (marks: number, quietMs: number) => {
    const latencies: number[] = [];
    for (const last = mark + marks; mark < last; mark++) {
      if (quietMs > 0) await new Promise((resolve) => setTimeout(resolve, quietMs));
      const key = keys[mark % KEY_COUNT]!;
      const seen = new Promise<void>((resolve) => (arrived = resolve));
      const start = performance.now();
      if (Math.floor(mark / KEY_COUNT) % 2 === 0) a.markBlocked(key);
      else a.clearCooldown(key);
      await seen;
      latencies.push(performance.now() - start);
    }
    latencies.sort((x, y) => x - y);
    return `p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, max ${latencies.at(-1)!.toFixed(2)} ms`;
  };
  console.log(`propagation A -> B, ${MARKS} marks, each as soon as the last arrived: ${await propagation(MARKS, 0)}`);
  console.log(`propagation A -> B, ${MARKS / 2} marks, each after ${QUIET_MS} ms without one: ${await propagation(MARKS / 2, QUIET_MS)}\n`);

  // 2. Local cost of a mark, with and without the adapter. A third router has a listener that does
  // nothing: what any subscriber costs the core (building the event), apart from the adapter's work.
  const withAdapter = await attached(`${namespace}-cost`);
  const alone = new CredentialRouter(keys, { cooldownMs: 600_000 });
  const listened = new CredentialRouter(keys, { cooldownMs: 600_000 });
  listened.subscribe(() => {});
  const routers = [withAdapter, alone, listened];
  type Op = (router: CredentialRouter, state: { n: number }) => unknown;
  const scenarios: Array<[string, Op, ((router: CredentialRouter) => void)?]> = [
    ["nextKey, every key ready", (router) => router.nextKey()],
    [
      "markBlocked + clearCooldown (2 transitions)",
      (router, state) => {
        const key = keys[state.n++ % KEY_COUNT]!;
        router.markBlocked(key);
        router.clearCooldown(key);
      },
    ],
    [
      "markErrorWithDelay, longer each time (1 transition)",
      (router, state) => router.markErrorWithDelay(keys[state.n % KEY_COUNT]!, 60_000 + state.n++),
    ],
    ["markErrorWithDelay, shorter than running (no change)", (router) => router.markErrorWithDelay(keys[1]!, 1_000)],
    [
      "nextKey, every key out ('exhausted' event)",
      (router) => router.nextKey(),
      (router) => keys.forEach((key) => router.markDisabled(key)),
    ],
  ];
  const time = async (router: CredentialRouter, op: Op) => {
    const state = { n: 0 };
    return (await measure(() => op(router, state))).avg;
  };
  const width = 52;
  const cell = (text: string, size = 12) => text.padStart(size);
  console.log(
    "local cost per op".padEnd(width) +
      cell("ours") +
      cell("baseline") +
      cell("ours/base", 11) +
      cell("no-op sub.") +
      cell("ours/no-op", 12),
  );
  for (const [name, op, setup] of scenarios) {
    if (setup) routers.forEach(setup);
    // Alternated, best of two each, so that no side always runs on a colder JIT.
    const best = { ours: Infinity, baseline: Infinity, listened: Infinity };
    for (let round = 0; round < 2; round++) {
      best.baseline = Math.min(best.baseline, await time(alone, op));
      best.ours = Math.min(best.ours, await time(withAdapter, op));
      best.listened = Math.min(best.listened, await time(listened, op));
    }
    const ns = (value: number) => `${value.toFixed(1)} ns`;
    console.log(
      name.padEnd(width) +
        cell(ns(best.ours)) +
        cell(ns(best.baseline)) +
        cell(`${(best.ours / best.baseline).toFixed(2)}x`, 11) +
        cell(ns(best.listened)) +
        cell(`${(best.ours / best.listened).toFixed(2)}x`, 12),
    );
  }
  // The marks above were written to Redis in the background; the link must still be in sync.
  await Promise.all(links.map((link) => link.flush()));
  await Promise.all(links.splice(0).map((link) => link.close()));

  // 3. CPU per transition, ours beside the adapter before issue 9, each in processes of its own.
  const load = () => loadavg()[0]!.toFixed(2);
  console.log(
    `\nCPU per transition on an instance: it marks 1,000/s, 4 peers 4,000/s, for ${CPU_SECONDS} s after ${warmUpMs / 1_000} s of the same; its CPU less\n` +
      `the same loop without adapter, per transition made (here or by the peers); ours beside the adapter before issue 9 (load average ${load()})`,
  );
  const best = { ours: Infinity, v0: Infinity };
  for (let round = 0; round < 3; round++) {
    const base = await cpuRun("none", 0);
    for (const impl of ["v0", "ours"] as const) {
      const run = await cpuRun(impl, 4_000);
      const perTransition = (run.cpuMicros - base.cpuMicros) / (run.sent + run.received);
      console.log(
        `  round ${round + 1}, ${impl === "v0" ? "before" : "ours  "}: ${(run.cpuMicros / 1_000).toFixed(0)} ms CPU (loop alone ${(base.cpuMicros / 1_000).toFixed(0)} ms), ` +
          `${run.sent} made here + ${run.received} made by the peers (${run.messages} messages in): ${perTransition.toFixed(2)} µs a transition`,
      );
      best[impl] = Math.min(best[impl], perTransition);
    }
  }
  const ratio = best.v0 / best.ours;
  console.log(
    `${ratio >= 3 ? "PASS" : "MISS"}  CPU per transition on an instance >= 3x less than before issue 9 ` +
      `(ours ${best.ours.toFixed(2)} µs, before ${best.v0.toFixed(2)} µs: ${ratio.toFixed(1)}x; load average ${load()})`,
  );
} finally {
  await Promise.all(links.map((link) => link.close()));
  for (const redis of clients) redis.disconnect();
  await server?.stop();
}
