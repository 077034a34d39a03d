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
  const length = encoder.encodeInto(key, bytes).written;
  const padded = ((length + 8) >>> 6) * 64 + 64;
  bytes.fill(0, length, padded);
  bytes[length] = 0x80;
  // The message length in bits, big-endian (keys are far shorter than 2^32 bits).
  for (let at = 1; at < 5; at++) bytes[padded - at] = (length * 8) >>> (8 * at - 8);
  const w = schedule;
  const hash = INITIAL.slice();
  for (let block = 0; block < padded; block += 64) {
    let a = hash[0]!, b = hash[1]!, c = hash[2]!, d = hash[3]!, e = hash[4]!, f = hash[5]!, g = hash[6]!, h = hash[7]!;
    for (let t = 0; t < 64; t++) {
      const x = w[t - 15]!;
      const y = w[t - 2]!;
      const at = block + 4 * t;
      // The message schedule, a word a round.
      w[t] =
        t < 16
          ? (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!
          : (rotate(x, 7) ^ rotate(x, 18) ^ (x >>> 3)) + w[t - 16]! + (rotate(y, 17) ^ rotate(y, 19) ^ (y >>> 10)) + w[t - 7]!;
      const t1 = (h + (rotate(e, 6) ^ rotate(e, 11) ^ rotate(e, 25)) + ((e & f) ^ (~e & g)) + ROUND[t]! + w[t]!) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + (rotate(b, 2) ^ rotate(b, 13) ^ rotate(b, 22)) + ((b & c) ^ (b & d) ^ (c & d))) | 0;
    }
    hash[0]! += a;
    hash[1]! += b;
    hash[2]! += c;
    hash[3]! += d;
    hash[4]! += e;
    hash[5]! += f;
    hash[6]! += g;
    hash[7]! += h;
  }
  let hex = "";
  for (const word of hash) for (let shift = 24; shift >= 0; shift -= 8) hex += HEX[(word >>> shift) & 255]!;
  return hex;
}

const rotate = (word: number, bits: number): number => (word >>> bits) | (word << (32 - bits));
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
