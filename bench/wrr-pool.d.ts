/** The few methods of wrr-pool 1.1.4 (which ships no types) that the benchmark uses. */
declare module "wrr-pool" {
  export default class Pool {
    add(value: unknown, weight?: number): void;
    next(): unknown;
    updateWeight(predicate: (value: unknown) => boolean, weight: number): number | undefined;
  }
}
