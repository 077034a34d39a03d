/**
 * The built ESM bundle, loaded the way a Node user's `import` loads it: through the package's own
 * name, which Node resolves by the `exports` map to `dist/index.js` (self-reference).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import * as lib from "credential-router";
import * as otel from "credential-router/otel";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { EXPECTED_OTEL_ROUND, runOtelRound } from "./helpers/otel-round.js";
import { EXPECTED_ROUND, runRound, type RoundTranscript } from "./helpers/round.js";

const sections = Object.keys(EXPECTED_ROUND) as (keyof RoundTranscript)[];

describe("ESM build (import from credential-router)", () => {
  it("resolves to dist/index.js through the exports map", async () => {
    const resolved = fileURLToPath(import.meta.resolve("credential-router"));
    expect(resolved).toBe(fileURLToPath(new URL("../dist/index.js", import.meta.url)));
    // The module this file imported is that very file, not the sources.
    const built = (await import("../dist/index.js" as string)) as typeof lib;
    expect(lib.CredentialRouter).toBe(built.CredentialRouter);
  });

  it("has no import statements: it depends on nothing", () => {
    const code = readFileSync(new URL("../dist/index.js", import.meta.url), "utf8");
    expect(code).not.toMatch(/^\s*import\s/m);
    expect(code).not.toMatch(/\brequire\(/);
  });

  it("exports the public API", () => {
    expect(Object.keys(lib).sort()).toEqual(
      expect.arrayContaining(["CredentialRouter", "NoKeyAvailableError", "isNoKeyAvailableError", "parseRetryAfter", "parseRetryDelay", "parseDuration", "fingerprint"]),
    );
  });

  describe("the shared round", () => {
    let transcript: RoundTranscript;
    beforeAll(async () => {
      transcript = await runRound(lib);
    });
    it.each(sections)("%s", (section) => {
      expect(transcript[section]).toEqual(EXPECTED_ROUND[section]);
    });
  });
});

describe("ESM build of the OpenTelemetry entry (import from credential-router/otel)", () => {
  it("resolves to dist/otel.js through the exports map", async () => {
    expect(fileURLToPath(import.meta.resolve("credential-router/otel"))).toBe(fileURLToPath(new URL("../dist/otel.js", import.meta.url)));
    const built = (await import("../dist/otel.js" as string)) as typeof otel;
    expect(otel.instrument).toBe(built.instrument);
    expect(Object.keys(otel)).toEqual(["instrument"]);
  });

  it("imports nothing: not the core, not @opentelemetry/api", () => {
    const code = readFileSync(new URL("../dist/otel.js", import.meta.url), "utf8");
    expect(code).not.toMatch(/^\s*import\s/m);
    expect(code).not.toMatch(/\brequire\(|\bimport\(/);
  });

  it("is not in the main entry: a user who does not import it does not load it", () => {
    const code = readFileSync(new URL("../dist/index.js", import.meta.url), "utf8");
    expect(code).not.toMatch(/opentelemetry|\binstrument\b|otel/i);
    expect(Object.keys(lib)).not.toContain("instrument");
  });

  it("runs the shared round", () => {
    expect(runOtelRound(lib, otel)).toEqual(EXPECTED_OTEL_ROUND);
  });

  it("reports the built router to the OpenTelemetry SDK", async () => {
    class OnDemandReader extends MetricReader {
      protected override async onForceFlush(): Promise<void> {}
      protected override async onShutdown(): Promise<void> {}
    }
    const reader = new OnDemandReader();
    const router = new lib.CredentialRouter(["sk-esm-aaaa-1111-bbbb", "sk-esm-cccc-2222-dddd"]);
    const stop = otel.instrument(router, { meter: new MeterProvider({ readers: [reader] }).getMeter("dist-esm") });
    router.markBlocked("sk-esm-cccc-2222-dddd", { reason: "auth" });
    const { resourceMetrics } = await reader.collect();
    stop();
    const keys = resourceMetrics.scopeMetrics[0]!.metrics.find(({ descriptor }) => descriptor.name === "credential_router.keys")!;
    expect(keys.dataPoints.map(({ attributes, value }) => [attributes["state"], value])).toEqual([
      ["ready", 1],
      ["cooldown", 0],
      ["blocked", 1],
      ["disabled", 0],
    ]);
  });
});
