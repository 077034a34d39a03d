/**
 * The built ESM bundle in a real browser (Chromium, driven by Playwright through Vitest's browser
 * mode), imported by the package's name as a user's bundler would resolve it: the `import` condition
 * of the exports map, `dist/index.js`.
 */
import { beforeAll, describe, expect, it } from "vitest";
import * as lib from "credential-router";
import { EXPECTED_ROUND, runRound, type RoundTranscript } from "../helpers/round.js";

describe("browser (the ESM build in Chromium)", () => {
  it("runs in a page, where Node's globals do not exist", () => {
    expect(typeof window).toBe("object");
    expect(typeof document).toBe("object");
    expect(navigator.userAgent).toMatch(/Chrome\//);
    expect(typeof (globalThis as { process?: unknown }).process).toBe("undefined");
    expect(typeof (globalThis as { require?: unknown }).require).toBe("undefined");
  });

  it("loads the built bundle, not the sources", async () => {
    const built = (await import("../../dist/index.js" as string)) as typeof lib;
    expect(lib.CredentialRouter).toBe(built.CredentialRouter);
  });

  describe("the shared round", () => {
    let transcript: RoundTranscript;
    beforeAll(async () => {
      transcript = await runRound(lib);
    });
    it.each(Object.keys(EXPECTED_ROUND) as (keyof RoundTranscript)[])("%s", (section) => {
      expect(transcript[section]).toEqual(EXPECTED_ROUND[section]);
    });
  });
});
