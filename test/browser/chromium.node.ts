/**
 * Runs in the node project: under CI the browser suite is required, so a missing Chromium fails the
 * run here (with the other tests still run and counted) instead of passing silently. Elsewhere the
 * config prints one line and skips the browser suite.
 */
import { existsSync } from "node:fs";
import { describe, expect, inject, it } from "vitest";

describe("browser suite", () => {
  const { path, found, required } = inject("chromium");
  it.runIf(required || found)(`has Chromium at ${path} (required when CI=true; apt-get install -y chromium, or set CHROMIUM_PATH)`, () => {
    expect(found, `no Chromium at ${path}: install it with \`apt-get install -y chromium\` or set CHROMIUM_PATH`).toBe(true);
    expect(existsSync(path)).toBe(true);
  });
});
