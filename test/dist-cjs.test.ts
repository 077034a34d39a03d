/**
 * The built CommonJS bundle, loaded by a real CommonJS `require`: `createRequire` gives this file
 * Node's own CJS loader, which resolves the package's name by the `exports` map's `require`
 * condition to `dist/index.cjs` and evaluates it as CommonJS (Vitest's transform is not involved).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import type * as Library from "credential-router";
import type * as Otel from "credential-router/otel";
import { EXPECTED_OTEL_ROUND, runOtelRound } from "./helpers/otel-round.js";
import { EXPECTED_ROUND, runRound, type RoundTranscript } from "./helpers/round.js";

const require = createRequire(import.meta.url);
const sections = Object.keys(EXPECTED_ROUND) as (keyof RoundTranscript)[];

describe("CommonJS build (require(\"credential-router\"))", () => {
  it("works from a plain .cjs program, the Redis and OpenTelemetry entries included", () => {
    const program = fileURLToPath(new URL("./fixtures/require-round.cjs", import.meta.url));
    const result = JSON.parse(execFileSync(process.execPath, [program], { encoding: "utf8" })) as Record<string, unknown>;
    expect(result).toEqual({
      picks: ["sk-cjs-aaaa-1111-bbbb", "sk-cjs-cccc-2222-dddd", "sk-cjs-aaaa-1111-bbbb"],
      afterMark: "sk-cjs-cccc-2222-dddd",
      // The only ready key answered 429: it cools down, no other key is ready, and the 429 is
      // passed through for the caller to forward.
      status: 429,
      cooled: { status: "blocked" },
      noKey: true,
      redisEntry: "function",
      // One key blocked, the other disabled, as the SDK collected them through the CJS entry.
      otelKeys: [
        ["ready", 0],
        ["cooldown", 0],
        ["blocked", 1],
        ["disabled", 1],
      ],
    });
  });

  it("resolves to dist/index.cjs through the exports map", () => {
    expect(require.resolve("credential-router")).toBe(fileURLToPath(new URL("../dist/index.cjs", import.meta.url)));
  });

  it("is loaded as a CommonJS module", () => {
    const lib = require("credential-router") as typeof Library;
    const cached = require.cache[require.resolve("credential-router")];
    expect(cached?.exports).toBe(lib);
    expect(cached?.loaded).toBe(true);
  });

  it("exports the same names as the ESM build", async () => {
    const cjs = require("credential-router") as typeof Library;
    const esm = (await import("../dist/index.js" as string)) as typeof Library;
    expect(Object.keys(cjs).sort()).toEqual(Object.keys(esm).sort());
    // Two builds, two copies: a CJS and an ESM consumer in one process do not share classes.
    expect(cjs.CredentialRouter).not.toBe(esm.CredentialRouter);
  });

  it("errors from one copy are recognised by the other's guard", async () => {
    const cjs = require("credential-router") as typeof Library;
    const esm = (await import("../dist/index.js" as string)) as typeof Library;
    expect(esm.isNoKeyAvailableError(new cjs.NoKeyAvailableError(5))).toBe(true);
    expect(cjs.isNoKeyAvailableError(new esm.NoKeyAvailableError(undefined))).toBe(true);
  });

  describe("the shared round", () => {
    let transcript: RoundTranscript;
    beforeAll(async () => {
      transcript = await runRound(require("credential-router") as typeof Library);
    });
    it.each(sections)("%s", (section) => {
      expect(transcript[section]).toEqual(EXPECTED_ROUND[section]);
    });
  });
});

describe("CommonJS build of the OpenTelemetry entry (require(\"credential-router/otel\"))", () => {
  it("resolves to dist/otel.cjs through the exports map, and loads as CommonJS", () => {
    expect(require.resolve("credential-router/otel")).toBe(fileURLToPath(new URL("../dist/otel.cjs", import.meta.url)));
    const otel = require("credential-router/otel") as typeof Otel;
    expect(require.cache[require.resolve("credential-router/otel")]?.exports).toBe(otel);
  });

  it("exports the same names as the ESM build, and requires nothing", async () => {
    const esm = (await import("../dist/otel.js" as string)) as typeof Otel;
    expect(Object.keys(require("credential-router/otel") as typeof Otel).sort()).toEqual(Object.keys(esm).sort());
    expect(readFileSync(new URL("../dist/otel.cjs", import.meta.url), "utf8")).not.toMatch(/\brequire\(/);
  });

  it("runs the shared round with the CommonJS core", () => {
    expect(runOtelRound(require("credential-router") as typeof Library, require("credential-router/otel") as typeof Otel)).toEqual(EXPECTED_OTEL_ROUND);
  });
});

