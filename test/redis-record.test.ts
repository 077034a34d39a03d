/**
 * The shared record format (src/redis/record.ts): what every reader accepts today, including the
 * parts later versions will add (a reason after `until`, a scope after the fingerprint).
 */
import { describe, expect, it } from "vitest";
import { escapeText, readCount, readReason, readRecord, readState, reasonText, unescapeText } from "../src/redis/record.js";

describe("shared record format", () => {
  const out = new Float64Array(3);

  it("reads version, status and until as integers, and says where until ends", () => {
    expect(readRecord("7|cooldown|1767225600000", out)).toBe(24);
    expect([...out]).toEqual([1, 1767225600000, 7]);
    expect(readRecord("8|blocked|0|auth", out)).toBe(11);
    expect([...out]).toEqual([2, 0, 8]);
  });

  it("reads the reason after until, and ignores parts after the reason (a later version's)", () => {
    const read = (text: string) => readReason(text, readRecord(text, out), text.length);
    expect(read("8|blocked|0|auth")).toBe("auth");
    expect(read(`9|cooldown|1767225600000|${reasonText("spend cap | team/α")}|more|parts`)).toBe("spend cap | team/α");
    // None, empty, or not one an instance could have escaped: no reason (the state still counts).
    for (const text of ["7|cooldown|1767225600000", "8|blocked|0|", "8|blocked|0|a b", "8|blocked|0|%zz", `8|blocked|0|${"a".repeat(1_001)}`]) {
      expect(read(text), text).toBeUndefined();
      expect(out[0]).toBe(text.includes("cooldown") ? 1 : 2);
    }
    // In a message: up to the entry's end.
    const message = "x 1 2 aa|blocked|0|quota bb|ready|5";
    const end = message.indexOf(" ", 7);
    expect(readReason(message, readState(message, 9, end, out), end)).toBe("quota");
    expect(reasonText("x".repeat(1_001))).toBe("");
  });

  it("refuses what it could not have written: floats, exponents, more than 16 digits, unknown statuses", () => {
    for (const text of ["1|cooldown|1.0000000001796062e+22", "1|cooldown|10000000000000000000", "1|paused|0", "x|ready|0", "1|ready|", "1|ready", ""]) {
      expect(readRecord(text, out), text).toBe(-1);
    }
    expect(readState("cooldown|-5", 0, 11, out)).toBe(-1);
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
