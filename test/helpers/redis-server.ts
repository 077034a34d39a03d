/**
 * Starts a throwaway `redis-server` on loopback for the Redis adapter's tests and demos: a free port,
 * no persistence (`--save "" --appendonly no`), stopped (and restartable on the same port) by its
 * handle. Nothing is left running: the child is also killed when this process exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { createServer, Socket } from "node:net";
import { delimiter, join } from "node:path";

/** How to get a server on a machine without one. */
export const INSTALL_HINT = "apt-get install -y redis-server";

/** A running (or stopped, restartable) `redis-server`. */
export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  /** Whether the process is running. */
  readonly running: boolean;
  /** Stops the server (SIGTERM, then SIGKILL after 2 s) and waits for it to exit. Its data is lost. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
}

/**
 * The path of the `redis-server` binary, or undefined: `$REDIS_SERVER` when set (and only it, so
 * that `REDIS_SERVER=/nonexistent` plays a machine without one), else the first on `$PATH`, else
 * /usr/bin or /usr/local/bin.
 */
export function findRedisServer(): string | undefined {
  const chosen = process.env.REDIS_SERVER;
  const candidates =
    chosen !== undefined && chosen !== ""
      ? [chosen]
      : [
          ...(process.env.PATH ?? "").split(delimiter).filter(Boolean).map((dir) => join(dir, "redis-server")),
          "/usr/bin/redis-server",
          "/usr/local/bin/redis-server",
        ];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there: try the next one
    }
  }
  return undefined;
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed or interrupted run must not leave a server behind.
  process.once("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

/**
 * Starts `redis-server` on 127.0.0.1 at a free port (or `port`), without persistence.
 * @throws Error when no `redis-server` is installed or it does not start within 5 s.
 */
export async function startRedisServer(options: { port?: number; binary?: string; args?: readonly string[]; cwd?: string } = {}): Promise<RedisServer> {
  const binary = options.binary ?? findRedisServer();
  if (binary === undefined) throw new Error(`redis-server is not installed (${INSTALL_HINT})`);
  const port = options.port ?? (await freePort());
  const extra = options.args ?? [];
  installExitHook();
  let child: ChildProcess | undefined = await spawnServer(binary, port, extra, options.cwd);

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async stop() {
      const stopping = child;
      child = undefined;
      if (stopping !== undefined) await killChild(stopping);
    },
    async restart() {
      if (child !== undefined) await killChild(child);
      child = await spawnServer(binary, port, extra, options.cwd);
    },
  };
}

async function spawnServer(binary: string, port: number, extra: readonly string[] = [], cwd?: string): Promise<ChildProcess> {
  const child = spawn(
    binary,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", ...extra],
    { stdio: ["ignore", "ignore", "pipe"], ...(cwd === undefined ? {} : { cwd }) },
  );
  live.add(child);
  child.once("exit", () => live.delete(child));
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + 5_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}: ${stderr.trim()}`);
    if (await answersPing(port)) return child;
    if (Date.now() > deadline) {
      await killChild(child);
      throw new Error(`redis-server did not start on port ${port} within 5 s: ${stderr.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Whether something on the port answers a RESP `PING` with `+PONG`. */
export function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let answer = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.on("data", (chunk) => {
      answer += chunk.toString();
      if (answer.includes("\r\n")) done(answer.startsWith("+PONG"));
    });
    socket.connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
  });
}

function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill("SIGKILL"), 2_000);
    child.once("exit", () => {
      clearTimeout(force);
      resolve();
    });
    child.kill("SIGTERM");
  });
}
