/**
 * SHA-256 of a key's UTF-8 bytes, as 64 lowercase hex digits: how saved state, snapshots and shared
 * state name a key without containing it. Synchronous and dependency-free, because `crypto.subtle`
 * is async-only and `node:crypto` is not in every runtime.
 *
 * @example
 * ```ts
 * fingerprint("abc"); // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
 * ```
 */
export function fingerprint(key: string): string {
  // UTF-8 takes at most 3 bytes per UTF-16 code unit; then the padding: 0x80, zeros, and the length.
  const most = ((key.length * 3 + 8) >>> 6) * 64 + 64;
  if (most > bytes.length) bytes = new Uint8Array(most);
  let length = 0;
  // ASCII by hand (most keys), the rest by the encoder.
  while (length < key.length && key.charCodeAt(length) < 128) bytes[length] = key.charCodeAt(length++);
  if (length < key.length) length = encoder.encodeInto(key, bytes).written;
  const padded = ((length + 8) >>> 6) * 64 + 64;
  bytes.fill(0, length, padded);
  bytes[length] = 0x80;
  // The message length in bits, big-endian (keys are far shorter than 2^32 bits).
  const bits = length * 8;
  bytes[padded - 4] = bits >>> 24;
  bytes[padded - 3] = bits >>> 16;
  bytes[padded - 2] = bits >>> 8;
  bytes[padded - 1] = bits;
  const w = schedule;
  let h0 = INITIAL[0]!, h1 = INITIAL[1]!, h2 = INITIAL[2]!, h3 = INITIAL[3]!, h4 = INITIAL[4]!, h5 = INITIAL[5]!, h6 = INITIAL[6]!, h7 = INITIAL[7]!;
  for (let block = 0; block < padded; block += 64) {
    for (let t = 0, at = block; t < 16; t++, at += 4) w[t] = (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!;
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15]!;
      const b = w[t - 2]!;
      w[t] = (((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3)) + w[t - 16]! + (((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10)) + w[t - 7]!;
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let t = 0; t < 64; t++) {
      const t1 = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) + ((e & f) ^ (~e & g)) + ROUND[t]! + w[t]!) | 0;
      const t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
    h5 = (h5 + f) | 0;
    h6 = (h6 + g) | 0;
    h7 = (h7 + h) | 0;
  }
  return hex(h0) + hex(h1) + hex(h2) + hex(h3) + hex(h4) + hex(h5) + hex(h6) + hex(h7);
}

/** A 32-bit word as 8 hex digits. */
const hex = (word: number): string => HEX[word >>> 24]! + HEX[(word >>> 16) & 255]! + HEX[(word >>> 8) & 255]! + HEX[word & 255]!;
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));

const encoder = new TextEncoder();
/** Reused between calls: the message, padded, and the 64-word schedule. */
let bytes = new Uint8Array(256);
const schedule = new Int32Array(64);

/**
 * SHA-256's constants, derived as the standard defines them: the first 32 bits of the fractional
 * parts of the square roots of the first 8 primes (the initial hash) and of the cube roots of the
 * first 64 primes (the round constants).
 */
const INITIAL = new Int32Array(8);
const ROUND = new Int32Array(64);
for (let candidate = 2, found = 0; found < 64; candidate++) {
  let prime = true;
  for (let divisor = 2; divisor * divisor <= candidate; divisor++) if (candidate % divisor === 0) prime = false;
  if (prime) {
    if (found < 8) INITIAL[found] = (candidate ** 0.5 % 1) * 2 ** 32;
    ROUND[found++] = (Math.cbrt(candidate) % 1) * 2 ** 32;
  }
}
