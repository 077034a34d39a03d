/**
 * `npm run bench:gateway`: what the example gateway adds to a call. The mock provider and the gateway
 * each run in a process of their own (as they would in production), on loopback; autocannon, in this
 * process, sends the same chat completion (a small JSON body, a JSON answer) either straight to the
 * mock with a key (the baseline) or through the gateway with the client token (ours). Rounds of the
 * two alternate, so a machine that gets busier mid-run weighs on both alike.
 *
 * Prints, from one run:
 * - latency at concurrency 1: p50 of each, and what the gateway adds (ours p50 minus baseline p50);
 * - throughput at concurrency 32: requests per second of each, and ours as a share of the baseline.
 * Then checks the targets: added p50 <= 0.3 ms, throughput >= 50% of direct.
 *
 * `--quick` runs short rounds (a smoke test of the script, not a measurement); `--profile <dir>` writes
 * a CPU profile of the gateway's process into `<dir>` (`.scratch/` is ignored by git).
 */
import { fork, type ChildProcess } from "node:child_process";
import { availableParallelism, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import type autocannon from "autocannon";

const KEYS = Array.from({ length: 8 }, (_, index) => `sk-bench-${String(index).padStart(4, "0")}-0123456789abcdef`);
const TOKEN = "bench-client-token-0123456789";
const BODY = JSON.stringify({ model: "mock-model", messages: [{ role: "user", content: "How fast is the gateway?" }] });
const PATH = "/v1/chat/completions";

/** What a child process says once it listens. */
interface Ready {
  url: string;
}

async function startMock(): Promise<string> {
  const { startMockUpstream } = await import("../examples/mock-upstream.js");
  // No limit to speak of, no errors, no slow answers: every request is served at once.
  const upstream = await startMockUpstream({ keys: KEYS, requestsPerWindow: 1e12, errorRate: 0, slowRate: 0 });
  return upstream.url;
}

async function startGatewayFor(upstream: string): Promise<string> {
  const { startGateway } = await import("../examples/gateway.js");
  // As `npm run gateway` runs it: round-robin, no per-request log.
  const gateway = await startGateway({ upstream, keys: KEYS, clientToken: TOKEN });
  return gateway.url;
}

interface Child {
  child: ChildProcess;
  url: string;
}

function start(args: string[], execArgv: string[] = []): Promise<Child> {
  const child = fork(fileURLToPath(import.meta.url), args, { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: [...process.execArgv, ...execArgv] });
  return new Promise((resolve, reject) => {
    child.once("message", (message) => resolve({ child, url: (message as Ready).url }));
    child.once("exit", (code) => reject(new Error(`the ${args[0]} process exited (${code}) before it listened`)));
  });
}

/** The CPU time a child has used so far, in microseconds. */
function cpuOf({ child }: Child): Promise<number> {
  return new Promise((resolve) => {
    child.once("message", (message) => resolve((message as { cpuMicros: number }).cpuMicros));
    child.send("cpu");
  });
}

interface Round {
  requests: number;
  requestsPerSecond: number;
  /** Each response's latency in milliseconds (2xx only). */
  latenciesMs: number[];
  errors: number;
  /** CPU time each child used during the round, in microseconds. */
  cpuMicros: number[];
}

// Loaded by the parent only: the children (mock, gateway) have no use for it.
let load: typeof autocannon;

async function round(url: string, authorization: string, connections: number, seconds: number, children: Child[] = []): Promise<Round> {
  const cpuBefore = await Promise.all(children.map(cpuOf));
  const latenciesMs: number[] = [];
  let errors = 0;
  const instance = load({
    url: url + PATH,
    method: "POST",
    headers: { "content-type": "application/json", authorization },
    body: BODY,
    connections,
    duration: seconds,
  });
  // autocannon's own histogram keeps whole milliseconds; the response event has the exact time.
  // (Its listener gets the client first, whatever @types/autocannon says.)
  (instance as unknown as NodeJS.EventEmitter).on("response", (_client: unknown, status: number, _bytes: number, responseTimeMs: number) => {
    if (status === 200) latenciesMs.push(responseTimeMs);
    else errors++;
  });
  const result = await instance;
  const cpuAfter = await Promise.all(children.map(cpuOf));
  errors += result.errors + result.timeouts;
  return {
    requests: result.requests.total,
    requestsPerSecond: result.requests.total / seconds,
    latenciesMs,
    errors,
    cpuMicros: cpuAfter.map((after, index) => after - cpuBefore[index]!),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  load = (await import("autocannon")).default;
  const quick = process.argv.includes("--quick");
  const rounds = quick ? 1 : 3;
  const seconds = quick ? 1 : 4;
  const loadAverage = () => loadavg().map((n) => n.toFixed(2)).join(" ");
  console.log(`example gateway overhead, Node ${process.version}, ${process.arch}, ${availableParallelism()} CPUs; load average before: ${loadAverage()}`);
  const profileAt = process.argv.indexOf("--profile");
  const mock = await start(["mock"]);
  const gateway = await start(["gateway", mock.url], profileAt === -1 ? [] : ["--cpu-prof", `--cpu-prof-dir=${process.argv[profileAt + 1]}`]);
  try {
    const direct = (connections: number) => round(mock.url, `Bearer ${KEYS[0]}`, connections, seconds, [mock, gateway]);
    const ours = (connections: number) => round(gateway.url, `Bearer ${TOKEN}`, connections, seconds, [mock, gateway]);
    // Warm-up: JIT, connection pools.
    await round(mock.url, `Bearer ${KEYS[0]}`, 8, 1);
    await round(gateway.url, `Bearer ${TOKEN}`, 8, 1);

    const measure = async (connections: number) => {
      const all = { direct: [] as Round[], ours: [] as Round[] };
      for (let index = 0; index < rounds; index++) {
        all.direct.push(await direct(connections));
        all.ours.push(await ours(connections));
      }
      return all;
    };
    const serial = await measure(1);
    const parallel = await measure(32);

    const p50 = (list: Round[]) => percentile(list.flatMap((r) => r.latenciesMs), 50);
    const p99 = (list: Round[]) => percentile(list.flatMap((r) => r.latenciesMs), 99);
    const rps = (list: Round[]) => median(list.map((r) => r.requestsPerSecond));
    /** Microseconds of CPU per request of child `index` (0 the mock, 1 the gateway). */
    const cpu = (list: Round[], index: number) => list.reduce((sum, r) => sum + r.cpuMicros[index]!, 0) / list.reduce((sum, r) => sum + r.requests, 0);
    const errors = [...serial.direct, ...serial.ours, ...parallel.direct, ...parallel.ours].reduce((sum, r) => sum + r.errors, 0);

    const addedMs = p50(serial.ours) - p50(serial.direct);
    const share = rps(parallel.ours) / rps(parallel.direct);
    const rows = [
      ["", "direct (baseline)", "via gateway (ours)", "ours vs baseline"],
      ["c=1   p50 latency", `${p50(serial.direct).toFixed(3)} ms`, `${p50(serial.ours).toFixed(3)} ms`, `+${addedMs.toFixed(3)} ms`],
      ["c=1   p99 latency", `${p99(serial.direct).toFixed(3)} ms`, `${p99(serial.ours).toFixed(3)} ms`, `+${(p99(serial.ours) - p99(serial.direct)).toFixed(3)} ms`],
      ["c=1   requests/s", rps(serial.direct).toFixed(0), rps(serial.ours).toFixed(0), `${((rps(serial.ours) / rps(serial.direct)) * 100).toFixed(0)}%`],
      ["c=32  requests/s", rps(parallel.direct).toFixed(0), rps(parallel.ours).toFixed(0), `${(share * 100).toFixed(0)}%`],
      [
        "c=32  CPU per request",
        `mock ${cpu(parallel.direct, 0).toFixed(0)} µs`,
        `mock ${cpu(parallel.ours, 0).toFixed(0)} + gateway ${cpu(parallel.ours, 1).toFixed(0)} µs`,
        `gateway ${(cpu(parallel.ours, 1) / cpu(parallel.direct, 0)).toFixed(2)}x mock`,
      ],
    ];
    const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
    console.log(`${rounds} alternating rounds of ${seconds} s per row; latency from every response, requests/s the median round\n`);
    for (const row of rows) console.log(row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("   "));
    console.log(`\nload average after: ${loadAverage()}${errors > 0 ? `; ${errors} requests failed or were not 200` : ""}`);
    console.log(`${addedMs <= 0.3 ? "PASS" : "MISS"}  added p50 latency at concurrency 1 <= 0.3 ms (${addedMs.toFixed(3)} ms)`);
    console.log(`${share >= 0.5 ? "PASS" : "MISS"}  throughput at concurrency 32 >= 50% of direct (${(share * 100).toFixed(0)}%)`);
  } finally {
    gateway.child.disconnect();
    mock.child.disconnect();
  }
}

// A child (the mock provider or the gateway, started by main in a process of its own), or the parent.
const role = process.argv[2];
if (role === "mock" || role === "gateway") {
  const url = role === "mock" ? await startMock() : await startGatewayFor(process.argv[3]!);
  process.send!({ url } satisfies Ready);
  // Asked for its CPU time around each round: what one request costs each process.
  process.on("message", () => {
    const { user, system } = process.cpuUsage();
    process.send!({ cpuMicros: user + system });
  });
  // Ends when the parent does: IPC closing is the signal (a clean exit, so a CPU profile is written).
  process.on("disconnect", () => process.exit(0));
} else {
  await main();
}
