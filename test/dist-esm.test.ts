/**
 * The built ESM bundle, loaded the way a Node user's `import` loads it: through the package's own
 * name, which Node resolves by the `exports` map to `dist/index.js` (self-reference).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import * as lib from "credential-router";
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
