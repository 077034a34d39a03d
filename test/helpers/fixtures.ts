/** What many test files share: a hand-moved clock, a seeded random source, and secret-looking keys. */

/** A clock the test moves by hand. */
export function manualClock(start = 1_000) {
  let time = start;
  return {
    now: () => time,
    advance(ms: number) {
      time += ms;
    },
  };
}

/** A small deterministic random source in [0, 1), so that a failure can be replayed. */
export function seededRandom(seed: number): () => number {
  return () => ((seed = (seed * 1_103_515_245 + 12_345) >>> 0) / 2 ** 32);
}

/** Keys of 16 or more characters, so that their hints are masked ("sk-p…cccc"), never `#<index>`. */
export const KEY_A = "sk-proj-AAAA1111bbbb2222cccc";
export const KEY_B = "sk-proj-BBBB3333dddd4444eeee";
export const KEY_C = "sk-proj-CCCC5555ffff6666gggg";
export const KEYS = [KEY_A, KEY_B, KEY_C];
