import type { Reason } from "./key-state.js";
import { bodyParts, headerHints, headerReader, parseRetryAfter, parseRetryDelay, property, type HeadersLike } from "./retry-after.js";


/**
 * What a key deserves after an attempt, and whether `execute` goes on.
 *
 * - `success`: the key worked; stop and pass the outcome through.
 * - `pass`: stop, mark nothing, pass the outcome through (a 400, 404, 422…).
 * - `retry`: not the key's fault, but another key may do (a network error, 408, 409): next key, no mark.
 * - `fault`: a service fault (500, 502, 503, 504, 529, Anthropic `overloaded_error`) that no key is to
 *   blame for: next key, no mark.
 * - `cooldown`: cool the key for `delayMs` (else the escalating default), for `reason`; next key.
 * - `blocked`, `disabled`: take the key out until it is cleared, for `reason`; next key.
 *
 * `scoped` marks the key in the call's scope only; `group` spreads a cooldown to the key's group. The
 * defaults set neither.
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
  /** Whether the attempt resolved or threw. */
  type: "resolved" | "rejected";
  /** The HTTP status, when one was found. */
  status: number | undefined;
  /** The response headers, when found. */
  headers: HeadersLike | undefined;
  /** The error body: parsed JSON (object or array), its text, or `undefined`. */
  body: unknown;
}

type Ruling = readonly [type: Verdict["type"], reason?: Reason];
const AUTH: Ruling = ["blocked", "auth"];
const QUOTA: Ruling = ["cooldown", "quota"];
const FAULT: Ruling = ["fault"];
const RETRY: Ruling = ["retry"];

type BodyRule = readonly [status: number, field: string, pattern: RegExp, ruling: Ruling];

// Rules read from the error body, first match winning; status 0 is any error status. The field is looked
// for in the body and, at any depth, its `error`, `details` and `violations` and an array's items.
const BODY_RULES: readonly BodyRule[] = [
  // Gemini: a key that is not valid or has expired (ErrorInfo.reason), whatever the status (400 today).
  // https://ai.google.dev/gemini-api/docs/troubleshooting
  [0, "reason", /^API_KEY_(?:INVALID|EXPIRED)$/, AUTH],
  // OpenAI: billing errors have the type insufficient_quota, or one of these codes (429).
  // https://platform.openai.com/docs/guides/error-codes
  [0, "type", /^insufficient_quota$/, QUOTA],
  [
    0,
    "code",
    /^(?:insufficient_quota|credit_balance_exhausted|(?:organization|project)_spend_limit_exceeded|organization_usage_limit_exceeded)$/,
    QUOTA,
  ],
  // Anthropic: 400 "Your credit balance is too low to access the Anthropic API."
  // https://docs.claude.com/en/api/errors
  [400, "message", /credit balance is too low/i, QUOTA],
  // Gemini: a 429 whose QuotaFailure names a per-day quota ("GenerateRequestsPerDayPerProjectPerModel").
  // https://ai.google.dev/gemini-api/docs/rate-limits
  [429, "quotaId", /PerDay/, QUOTA],
  // Anthropic: overloaded_error (529 today) is the service's state, not the key's, whatever the status.
  // https://docs.claude.com/en/api/errors
  [0, "type", /^overloaded_error$/, FAULT],
];

// Rules by status alone, for an error status that no body rule matched; any other status passes.
// 401, 403: a bad key, at every provider (https://platform.openai.com/docs/guides/error-codes).
// 402: out of credit (https://openrouter.ai/docs/api/reference/errors-and-debugging, https://docs.claude.com/en/api/errors,
// https://api-docs.deepseek.com/quick_start/error_codes).
// 408, 409, 429, 5xx: what the official SDKs retry (`shouldRetry` in openai-node and anthropic-sdk-typescript).
const STATUS_RULES: Record<number, Ruling> = {
  401: AUTH,
  402: QUOTA,
  403: AUTH,
  408: RETRY,
  409: RETRY,
  429: ["cooldown", "rate_limit"],
  500: FAULT,
  502: FAULT,
  503: FAULT,
  504: FAULT,
  529: FAULT,
};

/**
 * The default verdict for an attempt's outcome (the README's "Default verdicts" table). A cooldown carries
 * its reason and delay: for a rate limit, the response's wait hint (`undefined` when it has none, for the
 * escalating default); for a quota, the body's own delay, else `quotaCooldownMs`. Never throws.
 * @param facts - The attempt's outcome: whether it resolved, its status, headers and parsed body.
 * @param quotaCooldownMs - How long a key out of quota or credit cools when the body names no delay.
 * @param now - The current time in epoch milliseconds, for date headers; defaults to `Date.now()`.
 * @example
 * defaultVerdict({ type: "rejected", status: 429, headers: { "retry-after": "3" }, body: undefined }, 3_600_000);
 * // { type: "cooldown", reason: "rate_limit", delayMs: 3000 }
 */
export function defaultVerdict(facts: ResponseFacts, quotaCooldownMs: number, now?: number): Verdict {
  const { type, status, headers, body } = facts;
  // A value with no status is what the caller asked for; a thrown error with none, or with an XHR-style
  // status 0, is a network failure. A thrown 3xx (a client that throws on redirects) is passed through.
  if (!status) return { type: type == "resolved" ? "success" : "retry" };
  if (status < 400) return { type: type == "resolved" ? "success" : "pass" };
  // The server's own word on retrying, as the official SDKs obey it.
  // https://github.com/openai/openai-node (`shouldRetry`)
  const shouldRetry = headerReader(headers)("x-should-retry");
  if (shouldRetry == "false") return { type: "pass" };
  if (shouldRetry == "true") return { type: "retry" };
  const parts = bodyParts(body);
  const matches = ([ruleStatus, field, pattern]: BodyRule) =>
    (!ruleStatus || ruleStatus == status) &&
    parts.some((part) => {
      const value = property(part, field);
      return typeof value == "string" && pattern.test(value);
    });
  const [verdict, reason] = BODY_RULES.find(matches)?.[3] ?? STATUS_RULES[status] ?? ["pass"];
  if (verdict != "cooldown") return (reason ? { type: verdict, reason } : { type: verdict }) as Verdict;
  return {
    type: verdict,
    reason,
    delayMs: reason == "quota" ? (parseRetryDelay(body) ?? quotaCooldownMs) : waitHint(facts, now),
  };
}

/**
 * The wait a failed response asks for, in milliseconds: `retry-after-ms` / `x-ms-retry-after-ms`, then
 * `retry-after` (read as the official SDKs read it), then the body (`parseRetryDelay`), then the exhausted
 * rate-limit windows, each as the time one slot frees. Never throws.
 * @param facts - The response's headers and parsed body.
 * @param now - The current time in epoch milliseconds, for date headers; defaults to `Date.now()`.
 * @returns Milliseconds to wait (0 when the time has passed), or `undefined` when nothing says.
 * @example
 * waitHint({ headers: undefined, body: { error: { message: "Please try again in 1.2s." } } }); // 1200
 */
export function waitHint(facts: Pick<ResponseFacts, "headers" | "body">, now?: number): number | undefined {
  const [retryAfterMs, windowMs] = headerHints(facts.headers, now);
  return retryAfterMs ?? parseRetryDelay(facts.body) ?? windowMs;
}

/**
 * For a success: how long to cool the key pre-emptively, in milliseconds — the time until one slot frees
 * when a request or token budget is exhausted (`remaining` 0 with a reset), or what a `retry-after` on the
 * success asks for. Never throws.
 * @param headers - The success's headers.
 * @param now - The current time in epoch milliseconds, for date headers; defaults to `Date.now()`.
 * @returns A positive number of milliseconds, or `undefined` when the key may go on at once.
 * @example
 * preemptiveDelay({ "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m0s" });
 * // 1000
 */
export function preemptiveDelay(headers: HeadersLike | undefined, now?: number): number | undefined {
  return (headers && parseRetryAfter(headers, now)) || undefined;
}
