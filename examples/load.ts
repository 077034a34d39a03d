/**
 * The reusable parts of the demo: a load generator that talks to one or more gateways with the
 * official OpenAI SDK, a live progress line, and the per-key table and totals printed at the end.
 */
import OpenAI from "openai";
import type { KeySnapshot } from "../src/index.js";
import type { MockUpstreamStats } from "./mock-upstream.js";

/** Options of {@link runLoad}. */
export interface LoadOptions {
  /** Gateway origins (`http://127.0.0.1:8080`); requests go to each in turn. */
  baseUrls: readonly string[];
  /** The gateways' client token. */
  clientToken: string;
  /** How many requests to send in all. */
  requests: number;
  /** How many may be in flight at once. */
  concurrency: number;
  /**
   * Requests started per second, evenly spaced, as many independent clients send them (also while
   * earlier ones are still waiting, up to `concurrency`); `undefined` starts the next as soon as one
   * ends.
   * @defaultValue `undefined`
   */
  ratePerSecond?: number;
  /**
   * The model of each request, by its index (from 0).
   * @defaultValue `() => "mock-model"`
   */
  model?: (index: number) => string;
  /**
   * Every n-th request asks for a stream (`stream: true`); `0` streams none.
   * @defaultValue `4`
   */
  streamEvery?: number;
  /** Stops sending and aborts the requests in flight. */
  signal?: AbortSignal;
  /** Called after each request ends. */
  onProgress?: (progress: LoadProgress) => void;
}

/** How far a run is. */
export interface LoadProgress {
  requests: number;
  done: number;
  served: number;
  failed: number;
  inFlight: number;
  elapsedMs: number;
}

/** What a run came to. */
export interface LoadResult extends LoadProgress {
  /** How many of the served requests were streamed. */
  streamed: number;
  /** Failed requests by HTTP status (`"503"`) or error name. */
  failures: Map<string, number>;
  /** The latency of each served request, start to last byte, in ms, sorted. */
  latenciesMs: number[];
}

/**
 * Sends `requests` chat completions through the gateways with bounded concurrency, some streaming,
 * and measures them. The SDK's own retries are off, so what the client sees is what the gateway did.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { baseUrls, clientToken, requests, concurrency, streamEvery = 4, ratePerSecond, model = () => "mock-model", signal, onProgress } = options;
  if (baseUrls.length === 0) throw new TypeError("baseUrls must hold at least one gateway");
  if (ratePerSecond !== undefined && !(ratePerSecond > 0 && ratePerSecond < Infinity)) throw new RangeError(`ratePerSecond must be a finite number > 0, received ${ratePerSecond}`);
  // Each request has its own controller (the SDK leaves listeners on a signal shared by hundreds of
  // requests); `signal` aborts the ones in flight.
  const inFlight = new Set<AbortController>();
  const onAbort = () => inFlight.forEach((controller) => controller.abort(signal?.reason));
  signal?.addEventListener("abort", onAbort, { once: true });
  const clients = baseUrls.map((url) => new OpenAI({ baseURL: `${url}/v1`, apiKey: clientToken, maxRetries: 0, timeout: 15_000 }));
  const startedAt = performance.now();
  const result: LoadResult = { requests, done: 0, served: 0, failed: 0, inFlight: 0, elapsedMs: 0, streamed: 0, failures: new Map(), latenciesMs: [] };
  let next = 0;

  const one = async (index: number): Promise<void> => {
    const client = clients[index % clients.length]!;
    const streaming = streamEvery > 0 && index % streamEvery === streamEvery - 1;
    const messages = [{ role: "user" as const, content: `request ${index + 1} of ${requests}` }];
    const controller = new AbortController();
    inFlight.add(controller);
    const sentAt = performance.now();
    let text = "";
    try {
      if (streaming) {
        const stream = await client.chat.completions.create({ model: model(index), messages, stream: true }, { signal: controller.signal });
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      } else {
        const completion = await client.chat.completions.create({ model: model(index), messages }, { signal: controller.signal });
        text = completion.choices[0]?.message.content ?? "";
      }
    } finally {
      inFlight.delete(controller);
    }
    if (text === "") throw new Error("empty answer");
    result.latenciesMs.push(performance.now() - sentAt);
    result.served++;
    if (streaming) result.streamed++;
  };

  const worker = async (): Promise<void> => {
    while (next < requests && !signal?.aborted) {
      const index = next++;
      if (ratePerSecond !== undefined) {
        // The request's own start time, whatever became of the ones before it.
        const startAt = startedAt + (index * 1_000) / ratePerSecond;
        const pauseMs = startAt - performance.now();
        if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
        if (signal?.aborted) break;
      }
      result.inFlight++;
      try {
        await one(index);
      } catch (error) {
        result.failed++;
        const reason = error instanceof OpenAI.APIError && error.status !== undefined ? String(error.status) : error instanceof Error ? error.name : "error";
        result.failures.set(reason, (result.failures.get(reason) ?? 0) + 1);
      }
      result.inFlight--;
      result.done++;
      result.elapsedMs = performance.now() - startedAt;
      onProgress?.({ ...result });
    }
  };

  await Promise.all(Array.from({ length: Math.min(concurrency, requests) }, worker));
  signal?.removeEventListener("abort", onAbort);
  result.elapsedMs = performance.now() - startedAt;
  result.latenciesMs.sort((a, b) => a - b);
  return result;
}

/**
 * Shows a status line while something runs: rewritten in place every 100 ms on a terminal, printed as
 * a plain line every second otherwise (CI logs, pipes).
 * @returns `stop()`, which prints the line a last time and ends it.
 */
export function startProgress(status: () => string, output: NodeJS.WriteStream = process.stdout): { stop(): void } {
  const tty = output.isTTY === true;
  const draw = () => output.write(tty ? `\r${status()}\x1b[K` : `${status()}\n`);
  const timer = setInterval(draw, tty ? 100 : 1_000);
  return {
    stop() {
      clearInterval(timer);
      draw();
      if (tty) output.write("\n");
    },
  };
}

/** `3 ready, 4 cooling, 1 blocked`: how many keys are in each state. */
export function stateCounts(snapshot: ReadonlyArray<KeySnapshot>): string {
  const counts = { ready: 0, cooling: 0, blocked: 0, disabled: 0 };
  for (const { state } of snapshot) counts[state.status === "cooldown" ? "cooling" : state.status]++;
  return Object.entries(counts)
    .filter(([status, count]) => count > 0 || status === "ready")
    .map(([status, count]) => `${count} ${status}`)
    .join(", ");
}

/** One line of the per-key table. */
export interface KeyRow {
  /** The key's masked hint. */
  hint: string;
  /** Requests the upstream answered 200 with this key. */
  served: number;
  /** 429s the upstream answered with this key. */
  rateLimited: number;
  /** 401s the upstream answered with this key. */
  unauthorized: number;
  /** 500/503s the upstream answered with this key. */
  serverErrors: number;
  /** The key's state in the router at the end. */
  state: string;
}

/**
 * The table's rows: the router's snapshot (hints, states) joined with what the upstream counted for
 * each key. `keys` is only used to find each key's counters; no key goes into a row.
 */
export function keyRows(keys: readonly string[], snapshot: ReadonlyArray<KeySnapshot>, upstream: MockUpstreamStats): KeyRow[] {
  return snapshot.map(({ index, hint, state }) => {
    const stats = upstream.byKey.get(keys[index]!);
    return {
      hint,
      served: stats?.served ?? 0,
      rateLimited: stats?.rateLimited ?? 0,
      unauthorized: stats?.unauthorized ?? 0,
      serverErrors: stats?.serverErrors ?? 0,
      state: state.status === "cooldown" ? `cooldown ${(state.remainingMs / 1_000).toFixed(1)}s` : state.status,
    };
  });
}

/** The per-key table, with a total line. */
export function formatTable(rows: readonly KeyRow[]): string {
  const sum = (field: "served" | "rateLimited" | "unauthorized" | "serverErrors") => rows.reduce((total, row) => total + row[field], 0);
  const lines = [
    ["key", "served", "429s", "401s", "5xx", "state"],
    ...rows.map((row) => [row.hint, row.served, row.rateLimited, row.unauthorized, row.serverErrors, row.state].map(String)),
    ["total", sum("served"), sum("rateLimited"), sum("unauthorized"), sum("serverErrors"), ""].map(String),
  ];
  const widths = lines[0]!.map((_, column) => Math.max(...lines.map((line) => line[column]!.length)));
  const format = (line: string[]) =>
    line
      .map((cell, column) => (column === 0 || column === line.length - 1 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join("  ")
      .trimEnd();
  const rule = widths.map((width) => "-".repeat(width)).join("  ");
  return [format(lines[0]!), rule, ...lines.slice(1, -1).map(format), rule, format(lines.at(-1)!)].join("\n");
}

/** Prints {@link formatTable}. */
export function printTable(rows: readonly KeyRow[], write: (text: string) => void = console.log): void {
  write(formatTable(rows));
}

/** The `p`-th percentile (0 to 100) of sorted numbers, nearest rank; `NaN` when there are none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The totals line: served, failed (and why), latency percentiles, time. */
export function formatSummary(result: LoadResult): string {
  const failures = [...result.failures].map(([reason, count]) => `${count}× ${reason}`).join(", ");
  return [
    `requests: ${result.done} sent, ${result.served} served (${result.streamed} streamed), ${result.failed} failed${failures ? ` (${failures})` : ""}`,
    `latency:  p50 ${Math.round(percentile(result.latenciesMs, 50))} ms, p95 ${Math.round(percentile(result.latenciesMs, 95))} ms, max ${Math.round(result.latenciesMs.at(-1) ?? NaN)} ms`,
    `time:     ${(result.elapsedMs / 1_000).toFixed(1)} s`,
  ].join("\n");
}
