/**
 * The state of one key, as {@link CredentialRouter.stateOf} and snapshots report it.
 *
 * - `ready`: handed out by `nextKey()`.
 * - `cooldown`: skipped for `remainingMs` more milliseconds (after a 429 or a transient error),
 *   then ready again without anyone having to act.
 * - `blocked`: the server rejected the key (401/403); skipped until `clearCooldown`.
 * - `disabled`: taken out of rotation on purpose; skipped until `clearCooldown`.
 *
 * Severity rises in that order, and a mark never lowers it: only `clearCooldown` does.
 */
export type KeyState =
  | { status: "ready" }
  | { status: "cooldown"; remainingMs: number }
  | { status: "blocked" }
  | { status: "disabled" };

/** The name of a {@link KeyState}. */
export type KeyStatus = KeyState["status"];

/** Status codes in severity order, so that "never downgrade" is a numeric comparison. @internal */
export const READY = 0;
/** @internal */
export const COOLDOWN = 1;
/** @internal */
export const BLOCKED = 2;
/** @internal */
export const DISABLED = 3;

/** Status names by code. @internal */
export const STATUS_NAMES: readonly KeyStatus[] = ["ready", "cooldown", "blocked", "disabled"];

/**
 * Why a key is out: one of the router's own reasons or any string of the caller's.
 *
 * - `rate_limit`: the provider's rate limit (a 429, or a budget the headers show exhausted).
 * - `quota`: the key's quota or credit is spent (billing, a per-day quota).
 * - `auth`: the provider rejected the key (401, 403, an invalid or expired key).
 * - `server`: the service failed on this key again and again (5xx, overloaded).
 * - `manual`: a mark without a reason.
 */
export type Reason = "rate_limit" | "quota" | "auth" | "server" | "manual" | (string & {});

/** The built-in reasons, by code; code 0 is the default. @internal */
export const REASONS: readonly string[] = ["manual", "rate_limit", "quota", "auth", "server"];
