/**
 * The OpenTelemetry entry's ESM build in a real browser (Chromium, as `round.test.ts`), imported by
 * the package's names as a user's bundler resolves them: `dist/index.js` and `dist/otel.js`.
 */
import { describe, expect, it } from "vitest";
import * as lib from "credential-router";
import * as otel from "credential-router/otel";
import { EXPECTED_OTEL_ROUND, runOtelRound } from "../helpers/otel-round.js";

describe("browser (the OpenTelemetry entry's ESM build in Chromium)", () => {
  it("loads the built bundle, not the sources", async () => {
    const built = (await import("../../dist/otel.js" as string)) as typeof otel;
    expect(otel.instrument).toBe(built.instrument);
  });

  it("runs the shared round", () => {
    expect(runOtelRound(lib, otel)).toEqual(EXPECTED_OTEL_ROUND);
  });
});
