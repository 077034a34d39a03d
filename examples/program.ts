/** How each example runs as a command: only when it is the program (tests and the demo import them). */
import { realpathSync } from "node:fs";
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
