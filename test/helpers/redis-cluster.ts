/**
 * Starts a throwaway 3-master Redis Cluster on loopback for the adapter's cluster tests: three
 * `redis-server --cluster-enabled yes` on free ports (each also needs its bus port, port + 10000),
 * joined with `redis-cli --cluster create`, in a temporary directory removed on stop. No persistence.
 */
import { execFile } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { findRedisServer, startRedisServer, type RedisServer } from "./redis-server.js";

/** A running cluster: its nodes' ports, and how to stop it. */
export interface RedisCluster {
  readonly ports: readonly number[];
  readonly nodes: readonly RedisServer[];
  stop(): Promise<void>;
}

/** The `redis-cli` beside `redis-server`, or on the usual paths; undefined when there is none. */
export function findRedisCli(server = findRedisServer()): string | undefined {
  const candidates = [...(server === undefined ? [] : [join(dirname(server), "redis-cli")]), "/usr/bin/redis-cli", "/usr/local/bin/redis-cli"];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A port below 55,536 that is free, and whose cluster bus port (+10,000) is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) {
      taken.add(port);
      taken.add(port + 10_000);
      return port;
    }
  }
  throw new Error("found no free port pair for a cluster node");
}

function run(binary: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${binary} ${args.join(" ")} failed: ${error.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

/**
 * Starts the cluster and waits until every node reports `cluster_state:ok` (at most 30 s).
 * @throws Error when redis-server or redis-cli is missing, or the cluster does not form.
 */
export async function startRedisCluster(options: { binary?: string; masters?: number } = {}): Promise<RedisCluster> {
  const binary = options.binary ?? findRedisServer();
  const cli = findRedisCli(binary);
  if (binary === undefined || cli === undefined) throw new Error("redis-server and redis-cli are needed for a cluster");
  const dir = mkdtempSync(join(tmpdir(), "credential-router-cluster-"));
  const nodes: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const taken = new Set<number>();
    for (let index = 0; index < (options.masters ?? 3); index++) {
      const port = await clusterPort(taken);
      const args = ["--cluster-enabled", "yes", "--cluster-config-file", join(dir, `nodes-${port}.conf`), "--cluster-node-timeout", "5000"];
      nodes.push(await startRedisServer({ binary, port, args, cwd: dir }));
    }
    const ports = nodes.map((node) => node.port);
    await run(cli, ["--cluster", "create", ...ports.map((port) => `127.0.0.1:${port}`), "--cluster-replicas", "0", "--cluster-yes"]);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const states = await Promise.all(ports.map((port) => run(cli, ["-p", String(port), "cluster", "info"])));
      if (states.every((info) => info.includes("cluster_state:ok"))) break;
      if (Date.now() > deadline) throw new Error("the cluster did not reach cluster_state:ok within 30 s");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { ports, nodes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
