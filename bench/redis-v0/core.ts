// The few core helpers the baseline used, copied so that it does not follow the core's changes.
export const READY = 0;
export const COOLDOWN = 1;
export const BLOCKED = 2;
export const DISABLED = 3;
export const STATUS_NAMES = ["ready", "cooldown", "blocked", "disabled"] as const;

export function describe(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean" || value == null) return String(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}
