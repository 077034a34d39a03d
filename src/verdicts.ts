import type { Reason } from "./key-state.js";
import { parseRetryAfter, parseRetryDelay, type HeadersLike } from "./retry-after.js";

/**
 * What a key deserves after an attempt, and whether `execute` goes on.
 *
 * - `success`: the key worked (`markSuccess`); stop and pass the outcome through.
 * - `pass`: not the key's fault and not worth another key (a 400, 404, 422…): stop, no mark.
 * - `retry`: not the key's fault, but another key may do (a network failure): no mark, next key.
 * - `fault`: the service failed, not the key (a 5xx, an overload): no mark, next key; a key with
 *   `serverFaultThreshold` faults in a row cools down (reason `server`), and a call moves on after
 *   faults at most `maxServerRetries` times.
 * - `cooldown`: cool the key down for `delayMs`, or else for the server's wait hint, or else for the
 *   escalating default; next key. In the call's scope unless `scoped: false`.
 * - `blocked`, `disabled`: take the key out until `clearCooldown`; next key. Key-wide unless
 *   `scoped: true`.
 */
export type Verdict =
  | { type: "success" }
  | { type: "pass" }
  | { type: "retry" }
  | { type: "fault" }
  | { type: "cooldown"; delayMs?: number | undefined; reason?: Reason | undefined; scoped?: boolean | undefined; group?: boolean | undefined }
  | { type: "blocked"; reason?: Reason | undefined; scoped?: boolean | undefined }
  | { type: "disabled"; reason?: Reason | undefined; scoped?: boolean | undefined };

/** What the rules read of one attempt's outcome. */
export interface ResponseFacts {
  type: "resolved" | "rejected";
  status: number | undefined;
  headers: HeadersLike | undefined;
  /** The parsed error body (JSON), or its text, or `undefined`. */
  body: unknown;
}

/** The default verdict of an outcome (the README's table). */
export function defaultVerdict({ status, type, headers, body }: ResponseFacts, quotaCooldownMs: number): Verdict {
  // A value with no status (a parsed body, a string) is what the caller asked for; a thrown error
  // with none, or with an XHR-style status 0, is a network failure.
  if (!status) return { type: type === "resolved" ? "success" : "retry" };
  // Thrown with a 3xx (a client that throws on redirects): not a success, nor the key's fault.
  if (status < 400) return { type: type === "resolved" ? "success" : "pass" };
  if (status === 429) return { type: "cooldown", delayMs: waitHint({ headers, body }), reason: "rate_limit" };
  if (status === 402) return { type: "cooldown", delayMs: quotaCooldownMs, reason: "quota" };
  if ([500, 502, 503, 504, 529].includes(status)) return { type: "fault" };
  if (status === 408 || status === 409) return { type: "retry" };
  return status === 401 || status === 403 ? { type: "blocked", reason: "auth" } : { type: "pass" };
}

/** The wait a failed response asks for, in milliseconds; `undefined` when none. */
export function waitHint({ headers, body }: Pick<ResponseFacts, "headers" | "body">): number | undefined {
  return (headers && parseRetryAfter(headers)) ?? parseRetryDelay(body);
}

/** For a success: how long to cool the key down before the provider answers 429. */
export function preemptiveDelay(headers: HeadersLike | undefined): number | undefined {
  return headers && parseRetryAfter(headers);
}
