/**
 * `npm run bench`: the router (as built in dist/) against bench/baseline.ts, a port of the Rust
 * original's algorithm, in one run. Prints ns/op for both and the ratio, then checks the targets.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { measure } from "mitata";
import { CredentialRouter, type RoutingStrategy } from "credential-router";
import { BaselineRouter, baselineExecute } from "./baseline.js";

/** What a scenario does with a router: ours or the baseline. */
interface Router {
  nextKey(): string | undefined;
  markError(key: string): unknown;
  markErrorWithDelay(key: string, delayMs: number): unknown;
  markBlocked(key: string): unknown;
}

interface Scenario {
  name: string;
  size: number;
  strategy?: RoutingStrategy;
  /** Puts a router (ours or the baseline) into the scenario's state. */
  setup?: (router: Router, keys: string[]) => void;
  /** One operation, measured. A virtual clock is passed for scenarios that need time to move. */
  op: (router: Router, clock: { time: number }) => unknown;
  /** Whether the routers run on the virtual clock instead of performance.now(). */
  virtualClock?: boolean;
  async?: boolean;
}

const HOUR = 3_600_000;
const SIZES = [4, 64, 1_024, 16_384];
const pick = (router: Router) => router.nextKey();

function keysOf(size: number): string[] {
  return Array.from({ length: size }, (_, index) => `sk-bench-${index.toString(36).padStart(6, "0")}-secret`);
}

function strategyFor(type: RoutingStrategy["type"], size: number): RoutingStrategy {
  switch (type) {
    case "weighted":
      return { type, weights: Array.from({ length: size }, (_, index) => 1 + (index % 5)) };
    case "priority":
      return { type, tiers: Array.from({ length: size }, (_, index) => (index < size / 2 ? 0 : 1)) };
    default:
      return { type } as RoutingStrategy;
  }
}

const scenarios: Scenario[] = [];
for (const type of ["round-robin", "fill-first", "weighted", "priority", "random"] as const) {
  for (const size of SIZES) scenarios.push({ name: `all ready, ${type}`, size, strategy: strategyFor(type, size), op: pick });
}
for (const size of [1_024, 16_384]) {
  scenarios.push({
    name: "90% cooling, strided",
    size,
    setup: (router, keys) => keys.forEach((key, index) => index % 10 !== 0 && router.markErrorWithDelay(key, HOUR)),
    op: pick,
  });
  scenarios.push({
    name: "90% cooling, contiguous",
    size,
    setup: (router, keys) => keys.forEach((key, index) => index < keys.length * 0.9 && router.markErrorWithDelay(key, HOUR)),
    op: pick,
  });
  scenarios.push({
    name: "99.9% blocked",
    size,
    setup: (router, keys) => {
      const ready = Math.ceil(keys.length / 1_000);
      keys.forEach((key, index) => index < keys.length - ready && router.markBlocked(key));
    },
    op: pick,
  });
  scenarios.push({
    name: "markError + nextKey cycle",
    size,
    virtualClock: true,
    op: (router, clock) => {
      clock.time++;
      const key = router.nextKey();
      if (key !== undefined) router.markError(key);
    },
  });
  scenarios.push({
    name: "every key cooling",
    size,
    setup: (router, keys) => keys.forEach((key) => router.markErrorWithDelay(key, HOUR)),
    op: pick,
  });
}
for (const size of [4, 1_024, 16_384]) {
  scenarios.push({
    name: "execute, fn resolves at once",
    size,
    async: true,
    op: (router) =>
      router instanceof CredentialRouter
        ? router.execute(async () => 1)
        : baselineExecute(router as unknown as BaselineRouter, async () => 1, size),
  });
}

interface Row {
  name: string;
  size: number;
  ours: number;
  baseline: number;
}

async function time(scenario: Scenario, make: (keys: string[], options: object) => Router): Promise<number> {
  const keys = keysOf(scenario.size);
  const clock = { time: 0 };
  const options = {
    ...(scenario.strategy && { strategy: scenario.strategy }),
    ...(scenario.virtualClock && { now: () => clock.time, cooldownMs: scenario.size / 2 }),
  };
  const router = make(keys, options);
  scenario.setup?.(router, keys);
  const op = scenario.op;
  const stats = scenario.async ? await measure(async () => op(router, clock)) : await measure(() => op(router, clock));
  return stats.avg;
}

/**
 * Each measurement runs in a fresh process, as each service runs one router configuration: otherwise
 * the JIT state one scenario leaves (call sites that have seen five strategies) taxes the next.
 */
const [mode, scenarioArg, implementation] = process.argv.slice(2);
if (mode === "--measure") {
  const scenario = scenarios[Number(scenarioArg)]!;
  const ns =
    implementation === "ours"
      ? await time(scenario, (keys, options) => new CredentialRouter(keys, options))
      : await time(scenario, (keys, options) => new BaselineRouter(keys, options));
  console.log(JSON.stringify(ns));
  process.exit(0);
}

function measureApart(index: number, implementation: "ours" | "baseline"): number {
  const script = fileURLToPath(import.meta.url);
  const output = execFileSync(process.execPath, [...process.execArgv, script, "--measure", String(index), implementation], {
    encoding: "utf8",
  });
  return JSON.parse(output.trim().split("\n").pop()!) as number;
}

const rows: Row[] = [];
const width = { name: 32, size: 7, number: 13 };
const line = (cells: string[]) =>
  console.log(
    cells[0]!.padEnd(width.name) + cells[1]!.padStart(width.size) + cells.slice(2).map((cell) => cell.padStart(width.number)).join(""),
  );
const format = (ns: number) => (ns >= 10_000 ? `${(ns / 1_000).toFixed(1)} µs` : `${ns.toFixed(1)} ns`);

console.log(`credential-router benchmark, Node ${process.version}, ${process.arch}\n`);
line(["scenario", "keys", "ours", "baseline", "ratio"]);
scenarios.forEach((scenario, index) => {
  const ours = measureApart(index, "ours");
  const baseline = measureApart(index, "baseline");
  rows.push({ name: scenario.name, size: scenario.size, ours, baseline });
  line([scenario.name, String(scenario.size), format(ours), format(baseline), `${(baseline / ours).toFixed(1)}×`]);
});

// Heap per router, beyond the key strings (which the caller holds anyway).
const gc = (globalThis as { gc?: () => void }).gc;
function heapPerRouter(make: (keys: string[]) => unknown): number | undefined {
  if (gc === undefined) return undefined;
  const keys = keysOf(16_384);
  const routers: unknown[] = [];
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let count = 0; count < 10; count++) routers.push(make(keys));
  gc();
  const after = process.memoryUsage().heapUsed;
  return routers.length && (after - before) / routers.length;
}
const heapOurs = heapPerRouter((keys) => new CredentialRouter(keys));
const heapBaseline = heapPerRouter((keys) => new BaselineRouter(keys));
const megabytes = (bytes: number | undefined) => (bytes === undefined ? "n/a (run with --expose-gc)" : `${(bytes / 2 ** 20).toFixed(2)} MB`);
console.log(`\nheap per 16,384-key router: ours ${megabytes(heapOurs)}, baseline ${megabytes(heapBaseline)}`);

// The targets, as ratios measured in this run.
const row = (name: string, size: number) => rows.find((r) => r.name === name && r.size === size)!;
const checks: [string, boolean][] = [
  ["all ready, 4 keys, round-robin: >= 5x the baseline", row("all ready, round-robin", 4).baseline / row("all ready, round-robin", 4).ours >= 5],
  ["all ready, 16,384 keys, round-robin: >= 1,000x", row("all ready, round-robin", 16_384).baseline / row("all ready, round-robin", 16_384).ours >= 1_000],
  [
    "90% cooling at 16,384 keys: >= 500x (strided and contiguous)",
    ["90% cooling, strided", "90% cooling, contiguous"].every((name) => row(name, 16_384).baseline / row(name, 16_384).ours >= 500),
  ],
  ["markError + nextKey at 1,024 keys: >= 10x", row("markError + nextKey cycle", 1_024).baseline / row("markError + nextKey cycle", 1_024).ours >= 10],
  ["every key cooling at 1,024 keys: >= 30x", row("every key cooling", 1_024).baseline / row("every key cooling", 1_024).ours >= 30],
  [
    "flat: ours at 16,384 keys within 1.5x of ours at 1,024, every scenario",
    rows.filter((r) => r.size === 16_384).every((big) => big.ours <= 1.5 * row(big.name, 1_024).ours),
  ],
  ["heap per 16,384-key router under 4 MB", heapOurs !== undefined && heapOurs < 4 * 2 ** 20],
  // Not an issue's target: a guard, since one thrown-and-caught error per call once made execute 25x slower.
  ["execute at 4 keys: >= 3x the baseline's loop", row("execute, fn resolves at once", 4).baseline / row("execute, fn resolves at once", 4).ours >= 3],
];
console.log("");
for (const [name, ok] of checks) console.log(`${ok ? "PASS" : "MISS"}  ${name}`);
for (const big of rows.filter((r) => r.size === 16_384)) {
  const ratio = big.ours / row(big.name, 1_024).ours;
  if (ratio > 1.5) console.log(`      ${big.name}: 16,384 keys take ${ratio.toFixed(2)}x the time of 1,024`);
}
