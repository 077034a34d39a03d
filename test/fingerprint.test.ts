import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { fingerprint } from "../src/fingerprint.js";

const nodeSha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

describe("fingerprint", () => {
  it("is SHA-256 of the FIPS 180 test vectors", () => {
    expect(fingerprint("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(fingerprint("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(fingerprint("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")).toBe(
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    );
  });

  it("agrees with node:crypto at every length around the block boundaries", () => {
    for (let length = 0; length < 200; length++) {
      const text = Array.from({ length }, (_, i) => String.fromCharCode(33 + ((i * 7 + length) % 90))).join("");
      expect(fingerprint(text)).toBe(nodeSha256(text));
    }
  });

  it("hashes the UTF-8 bytes of non-ASCII keys", () => {
    for (const text of ["ключ-🔑-clé", "\u{1F600}".repeat(40), "é".repeat(63)]) {
      expect(fingerprint(text)).toBe(nodeSha256(text));
    }
  });

  it("hashes U+0080, the first code point past ASCII, as its two UTF-8 bytes", () => {
    for (const text of ["\u0080", "key-\u0080", "\u007f\u0080"]) expect(fingerprint(text)).toBe(nodeSha256(text));
  });

  it("hashes a long multi-byte key right when it is the first key hashed", async () => {
    // A fresh module, whose buffer has not grown yet: 90 three-byte characters need 320 bytes.
    vi.resetModules();
    const fresh = await import("../src/fingerprint.js");
    const text = "€".repeat(90);
    expect(fresh.fingerprint(text)).toBe(nodeSha256(text));
  });

  it("agrees with node:crypto on any well-formed text, long keys included", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 300 }), (text) => {
        expect(fingerprint(text)).toBe(nodeSha256(text));
      }),
      { numRuns: 500 },
    );
    const long = "k".repeat(100_003) + "🔑";
    expect(fingerprint(long)).toBe(nodeSha256(long));
    // And after a long one, a short one still comes out right (the buffer is reused).
    expect(fingerprint("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  }, 30_000);
});
