/** What the examples share: running as a command only when they are the program, and listening. */
import { realpathSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";

/**
 * Runs `main` and exits with its code when the module at `moduleUrl` is the program Node started;
 * does nothing when the module was imported. A failure prints one line (never a stack with a key in
 * it) and exits 1.
 */
export function runAsProgram(moduleUrl: string, main: () => Promise<number>): void {
  let isProgram = false;
  try {
    isProgram = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(moduleUrl);
  } catch {
    // An argv[1] that is not a file: not us.
  }
  if (!isProgram) return;
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
}

/** Starts `server` on `host:port` (port 0: a free one) and resolves with the address it got. */
export function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
