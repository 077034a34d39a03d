/**
 * `npm run bench:gateway`: what the example gateway adds to a call. The mock provider, the gateway and
 * a bare proxy each run in a process of their own (as they would in production), on loopback;
 * autocannon, in this process, sends the same chat completion (a small JSON body, a JSON answer)
 * straight to the mock with a key (the baseline), through the bare proxy, and through the gateway with
 * the client token (ours), in alternating rounds, so a machine that gets busier mid-run weighs on each
 * alike. The bare proxy (node:http in, undici's Pool out, the body piped back, nothing checked) is the
 * floor of any Node proxy, to tell the gateway's own cost from the platform's.
 *
 * Prints, from one run:
 * - latency at concurrency 1: p50 and p99 of each, and what the gateway adds (its p50 minus direct's);
 * - throughput at concurrency 32: requests per second of each, the gateway's as a share of direct's
 *   (each gateway round against the direct round just before it, so that both saw the same load);
 * - CPU time per request of each process at concurrency 32.
 * Then checks the targets: added p50 <= 0.3 ms, throughput >= 50% of direct.
 *
 * `--quick` runs short rounds (a smoke test of the script, not a measurement); `--profile <dir>` writes
 * CPU profiles of the gateway and of the bare proxy into `<dir>/gateway` and `<dir>/bare-proxy` (the
 * largest file in each is the main thread's; `.scratch/` is ignored by git).
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
  const upstream = await startMockUpstream({ keys: KEYS, requestsPerWindow: 1e12, tokensPerWindow: 1e12, errorRate: 0, slowRate: 0 });
  return upstream.url;
}

async function startGatewayFor(upstream: string): Promise<string> {
  const { startGateway } = await import("../examples/gateway.js");
  // As `npm run gateway` runs it: round-robin, no per-request log.
  const gateway = await startGateway({ upstream, keys: KEYS, clientToken: TOKEN });
  return gateway.url;
}

/** node:http in, undici out, nothing checked, nothing filtered: the least a proxy in Node does. */
async function startBareProxy(upstream: string): Promise<string> {
  const { createServer } = await import("node:http");
  const { Pool } = await import("undici");
  const { listen } = await import("../examples/program.js");
  const pool = new Pool(upstream);
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const headers = { "content-type": "application/json", authorization: `Bearer ${KEYS[0]}` };
      pool.request({ method: "POST", path: request.url!, headers, body: Buffer.concat(chunks) }).then(
        (answer) => {
          response.writeHead(answer.statusCode, { "content-type": String(answer.headers["content-type"]), "content-length": String(answer.headers["content-length"]) });
          answer.body.pipe(response);
        },
        () => response.destroy(),
      );
    });
  });
  const address = await listen(server, 0, "127.0.0.1");
  return `http://127.0.0.1:${address.port}`;
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
  /** CPU time each child, then this process (the load generator), used during the round, in µs. */
  cpuMicros: number[];
}

// Loaded by the parent only: the children (mock, gateway) have no use for it.
let load: typeof autocannon;

async function round(url: string, authorization: string, connections: number, seconds: number, children: Child[] = []): Promise<Round> {
  const cpuBefore = await Promise.all(children.map(cpuOf));
  const ownBefore = process.cpuUsage();
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
  const own = process.cpuUsage(ownBefore);
  const cpuAfter = await Promise.all(children.map(cpuOf));
  errors += result.errors + result.timeouts;
  return {
    requests: result.requests.total,
    requestsPerSecond: result.requests.total / seconds,
    latenciesMs,
    errors,
    cpuMicros: [...cpuAfter.map((after, index) => after - cpuBefore[index]!), own.user + own.system],
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
  const rounds = quick ? 1 : 5;
  const seconds = quick ? 1 : 3;
  const loadAverage = () => loadavg().map((n) => n.toFixed(2)).join(" ");
  console.log(`example gateway overhead, Node ${process.version}, ${process.arch}, ${availableParallelism()} CPUs; load average before: ${loadAverage()}`);
  const profileAt = process.argv.indexOf("--profile");
  const mock = await start(["mock"]);
  // A folder each: Node writes one profile per thread (tsx's loader has one too), named by pid and thread.
  const profile = (name: string) => (profileAt === -1 ? [] : ["--cpu-prof", `--cpu-prof-dir=${process.argv[profileAt + 1]}/${name}`]);
  const bare = await start(["bare", mock.url], profile("bare-proxy"));
  const gateway = await start(["gateway", mock.url], profile("gateway"));
  const children = [mock, bare, gateway];
  try {
    // The three ways to the mock; the CPU of every process is read around each round.
    const targets = [
      { name: "direct", url: mock.url, authorization: `Bearer ${KEYS[0]}` },
      { name: "bare", url: bare.url, authorization: "" },
      { name: "gateway", url: gateway.url, authorization: `Bearer ${TOKEN}` },
    ];
    for (const target of targets) await round(target.url, target.authorization, 8, 1); // warm-up: JIT, pools

    const measure = async (connections: number) => {
      const all: Round[][] = targets.map(() => []);
      for (let index = 0; index < rounds; index++) {
        for (const [at, target] of targets.entries()) all[at]!.push(await round(target.url, target.authorization, connections, seconds, children));
      }
      return all;
    };
    const [serialDirect, serialBare, serialOurs] = await measure(1);
    const [parallelDirect, parallelBare, parallelOurs] = await measure(32);

    const p50 = (list: Round[]) => percentile(list.flatMap((r) => r.latenciesMs), 50);
    const p99 = (list: Round[]) => percentile(list.flatMap((r) => r.latenciesMs), 99);
    const rps = (list: Round[]) => median(list.map((r) => r.requestsPerSecond));
    /** Microseconds of CPU per request of process `index` (0 mock, 1 bare proxy, 2 gateway, 3 load generator). */
    const cpu = (list: Round[], index: number) => list.reduce((sum, r) => sum + r.cpuMicros[index]!, 0) / list.reduce((sum, r) => sum + r.requests, 0);
    const errors = [serialDirect, serialBare, serialOurs, parallelDirect, parallelBare, parallelOurs].flat().reduce((sum, r) => sum + r.errors, 0);

    const addedMs = p50(serialOurs!) - p50(serialDirect!);
    // Each round of ours against the round of direct just before it, under the same load; the median.
    const share = median(parallelOurs!.map((r, index) => r.requestsPerSecond / parallelDirect![index]!.requestsPerSecond));
    const ms = (value: number) => `${value.toFixed(3)} ms`;
    const rows = [
      ["", "direct (baseline)", "bare proxy", "gateway (ours)", "gateway vs direct"],
      ["c=1   p50 latency", ms(p50(serialDirect!)), ms(p50(serialBare!)), ms(p50(serialOurs!)), `+${addedMs.toFixed(3)} ms`],
      ["c=1   p99 latency", ms(p99(serialDirect!)), ms(p99(serialBare!)), ms(p99(serialOurs!)), `+${(p99(serialOurs!) - p99(serialDirect!)).toFixed(3)} ms`],
      ["c=32  requests/s", rps(parallelDirect!).toFixed(0), rps(parallelBare!).toFixed(0), rps(parallelOurs!).toFixed(0), `${(share * 100).toFixed(0)}%`],
      [
        "c=32  CPU µs/request",
        `mock ${cpu(parallelDirect!, 0).toFixed(0)}`,
        `proxy ${cpu(parallelBare!, 1).toFixed(0)}`,
        `gateway ${cpu(parallelOurs!, 2).toFixed(0)}`,
        `${(cpu(parallelOurs!, 2) / cpu(parallelDirect!, 0)).toFixed(2)}x the mock's`,
      ],
      [
        "      (mock, load gen.)",
        `-, ${cpu(parallelDirect!, 3).toFixed(0)}`,
        `${cpu(parallelBare!, 0).toFixed(0)}, ${cpu(parallelBare!, 3).toFixed(0)}`,
        `${cpu(parallelOurs!, 0).toFixed(0)}, ${cpu(parallelOurs!, 3).toFixed(0)}`,
        "",
      ],
    ];
    const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
    console.log(
      `${rounds} alternating rounds of ${seconds} s per row; latency from every response; requests/s the median round, ` +
        `and the share the median of each round's against the direct round before it\n`,
    );
    for (const row of rows) console.log(row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("   "));
    console.log(`\nload average after: ${loadAverage()}${errors > 0 ? `; ${errors} requests failed or were not 200` : ""}`);
    console.log(`${addedMs <= 0.3 ? "PASS" : "MISS"}  added p50 latency at concurrency 1 <= 0.3 ms (${addedMs.toFixed(3)} ms)`);
    console.log(`${share >= 0.5 ? "PASS" : "MISS"}  throughput at concurrency 32 >= 50% of direct (${(share * 100).toFixed(0)}%)`);
  } finally {
    for (const { child } of children) child.disconnect();
  }
}

// A child (the mock provider, the bare proxy or the gateway, started by main in a process of its own),
// or the parent.
const role = process.argv[2];
if (role === "mock" || role === "bare" || role === "gateway") {
  const url = role === "mock" ? await startMock() : role === "bare" ? await startBareProxy(process.argv[3]!) : await startGatewayFor(process.argv[3]!);
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
