/**
 * The shared record format (src/redis/record.ts): what every reader accepts today, including the
 * parts later versions will add (a reason after `until`, a scope after the fingerprint).
 */
import { describe, expect, it } from "vitest";
import { escapeText, readCount, readRecord, readState, unescapeText } from "../src/redis/record.js";

describe("shared record format", () => {
  const out = new Float64Array(3);

  it("reads version, status and until as integers, and ignores parts after until (a later reason)", () => {
    expect(readRecord("7|cooldown|1767225600000", out)).toBe(true);
    expect([...out]).toEqual([1, 1767225600000, 7]);
    expect(readRecord("8|blocked|0|auth", out)).toBe(true);
    expect([...out]).toEqual([2, 0, 8]);
  });

  it("refuses what it could not have written: floats, exponents, more than 16 digits, unknown statuses", () => {
    for (const text of ["1|cooldown|1.0000000001796062e+22", "1|cooldown|10000000000000000000", "1|paused|0", "x|ready|0", "1|ready|", "1|ready", ""]) {
      expect(readRecord(text, out), text).toBe(false);
    }
    expect(readState("cooldown|-5", 0, 11, out)).toBe(false);
    expect(readCount("1234567890123456")).toBe(-1);
    expect(readCount("007")).toBe(7);
  });

  it("escapes a reason or scope so that no separator, control character or lone surrogate is left, and back", () => {
    for (const text of ["rate_limit", "gpt-4o / mini", "a|b c%d", "retry in 5s\n", "clé", "\uD800 lone", "(x)*'!"]) {
      const escaped = escapeText(text);
      expect(escaped).toMatch(/^[A-Za-z0-9._~%-]*$/);
      expect(unescapeText(escaped)).toBe(text.replace(/\uD800/, "\uFFFD"));
    }
    expect(unescapeText("a b")).toBeUndefined();
    expect(unescapeText("%E0%A4%A")).toBeUndefined();
  });
});
