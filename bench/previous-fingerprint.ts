/**
 * The pure-JS SHA-256 that `fingerprint` used before it was made faster, kept as the benchmark's
 * reference for that speed-up.
 */
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
  const bytes = [...new TextEncoder().encode(key), 0x80];
  const bits = (bytes.length - 1) * 8;
  while (bytes.length % 64 !== 56) bytes.push(0);
  // The message length in bits, as a big-endian 64-bit number.
  for (let shift = 56; shift >= 0; shift -= 8) bytes.push(Math.floor(bits / 2 ** shift) & 0xff);

  const hash = INITIAL.slice();
  const schedule: number[] = [];
  for (let block = 0; block < bytes.length; block += 64) {
    for (let t = 0; t < 64; t++) {
      const a = schedule[t - 15]!;
      const b = schedule[t - 2]!;
      schedule[t] =
        t < 16
          ? (bytes[block + 4 * t]! << 24) | (bytes[block + 4 * t + 1]! << 16) | (bytes[block + 4 * t + 2]! << 8) | bytes[block + 4 * t + 3]!
          : ((rotate(a, 7) ^ rotate(a, 18) ^ (a >>> 3)) + schedule[t - 16]! + (rotate(b, 17) ^ rotate(b, 19) ^ (b >>> 10)) + schedule[t - 7]!) | 0;
    }
    let [a, b, c, d, e, f, g, h] = hash as [number, number, number, number, number, number, number, number];
    for (let t = 0; t < 64; t++) {
      const t1 = h + (rotate(e, 6) ^ rotate(e, 11) ^ rotate(e, 25)) + ((e & f) ^ (~e & g)) + ROUND[t]! + schedule[t]!;
      const t2 = (rotate(a, 2) ^ rotate(a, 13) ^ rotate(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      [h, g, f, e, d, c, b, a] = [g, f, e, (d + t1) | 0, c, b, a, (t1 + t2) | 0];
    }
    [a, b, c, d, e, f, g, h].forEach((word, i) => (hash[i] = (hash[i]! + word) | 0));
  }
  return hash.map((word) => (word >>> 0).toString(16).padStart(8, "0")).join("");
}

function rotate(word: number, bits: number): number {
  return (word >>> bits) | (word << (32 - bits));
}

/**
 * SHA-256's constants, derived as the standard defines them: the first 32 bits of the fractional
 * parts of the square roots of the first 8 primes (the initial hash) and of the cube roots of the
 * first 64 primes (the round constants).
 */
const INITIAL: number[] = [];
const ROUND: number[] = [];
for (let candidate = 2; ROUND.length < 64; candidate++) {
  let prime = true;
  for (let divisor = 2; divisor * divisor <= candidate; divisor++) if (candidate % divisor === 0) prime = false;
  if (prime) {
    if (INITIAL.length < 8) INITIAL.push(((candidate ** 0.5 % 1) * 2 ** 32) | 0);
    ROUND.push(((Math.cbrt(candidate) % 1) * 2 ** 32) | 0);
  }
}
