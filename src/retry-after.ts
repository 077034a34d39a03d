/**
 * Response headers: a WHATWG `Headers` or a plain record whose names may be in any case.
 *
 * At run time any object with a `get(name)` method (an SDK's headers object) is read like `Headers`.
 */
export type HeadersLike = Headers | Record<string, string | readonly string[] | null | undefined>;

// One amount and unit of a Go-style duration ("1h2m3.5s" has three). The regex is sticky, so each part
// must start where the last one ended: the text is a duration when nothing is left over.
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|[hms])/gy;
const UNIT_MS: Record<string, number> = { h: 36e5, m: 6e4, s: 1e3, ms: 1 };

// RFC 9110 section 5.6.7: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), then the obsolete RFC 850
// ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994") forms. Month names are
// case-sensitive and must be real; the weekday is not checked, as nothing depends on it.
const HTTP_DATE =
  /^[A-Z][a-z]{2}(?:, (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT|[a-z]{3,6}, (\d\d)-([A-Z][a-z]{2})-(\d\d) (\d\d):(\d\d):(\d\d) GMT| ([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4}))$/;
const MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec";
const RFC_3339 = /^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(?:[Zz]|([+-])(\d\d):(\d\d))$/;
// Retry-After seconds as the official SDKs read them (parseFloat of the value): a number, also with an
// exponent ("1e2") or the unit "s" ("3s"), the first of a comma-joined list ("2, 3": the header sent twice).
// Other units are refused rather than read as seconds as parseFloat would ("5m" is not 5 s), and so is a
// number that runs into anything else ("2024-01-01T00:00:30Z" is not 2024 s).
const SECONDS = /^(\d+(?:\.\d+)?(?:e[+-]?\d+)?)s?\s*(?:,|$)/i;

// "retry in 29.1s", "try again in 1m30s", "retry after 5 seconds", matched in lower case. The amount is a
// number or a Go duration; the groups after it spell the Go symbol of a unit word ("milliseconds" gives "m"
// and "s"). A unit is a whole word; a bare number is seconds, but not when another word follows it
// ("retry in 5 hello"), nor a unit this doesn't know, in any script ("retry in 120µs"). The last
// lookahead keeps a date, a clock time or a part of a number ("retry after 2024-01-01", "after 10:30",
// the 1 of "in 1.5 hello") from reading as seconds.
const RETRY_IN =
  /(?:retry|try again) (?:in|after) (\d(?:\.?[\dhms])*)(?: ?(?:(m)(?:illi(s)econds?|(s)|in(?:ute)?s?)?|(h)(?:ours?)?|(s)(?:ec(?:ond)?s?)?)|(?! ?\p{L}))(?![\w:-]|\.\d)/u;

const GOOGLE_RPC = "type.googleapis.com/google.rpc.";

// Rounded to the nanosecond, so that decimal fractions scale exactly ("34.07s" is 34070 ms, not
// 34070.000000000004); Infinity (and NaN) give undefined.
const delay = (ms: number): number | undefined => ((ms = +ms.toFixed(6)) < Infinity ? ms : undefined);

/**
 * Parses a Go-style duration (`"1h2m3.5s"`, `"6m0s"`, `"373ms"`, `"34.07s"`) into milliseconds.
 *
 * Units are `h`, `m`, `s` and `ms`; signs and bare numbers are not accepted.
 * @param value - The duration text; anything that is not such a string gives `undefined`.
 * @returns The duration in milliseconds (finite, >= 0), or `undefined`.
 * @example
 * parseDuration("1m30s"); // 90000
 * parseDuration("12ms"); // 12
 */
export function parseDuration(value: unknown): number | undefined {
  let totalMs = 0;
  const rest =
    typeof value == "string" &&
    value.replace(DURATION_PART, (_, amount: string, unit: string) => ((totalMs += +amount * UNIT_MS[unit]!), ""));
  return rest === "" && value ? delay(totalMs) : undefined;
}

/** A plain decimal number (no sign, exponent or unit of its own) read in the given unit. */
const decimal = (text: string, unit: string) => (/^[\d.]+$/.test(text) ? parseDuration(text + unit) : undefined);

/** Epoch milliseconds of a UTC date and time, or NaN when the date or the time is not a real one. */
function utc(year: number, month: number, day: number, hour: number, minute: number, second: number): number {
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not read years 0-99 as 1900-1999.
  date.setUTCFullYear(year, month, day);
  // A day or month that rolled over (Feb 30, month 13) was not a real date; second 60 is a leap second.
  return date.getUTCMonth() == month && hour < 24 && minute < 60 && second < 61
    ? date.setUTCHours(hour, minute, second)
    : NaN;
}

/** An HTTP-date in epoch milliseconds, or NaN. A two-digit year is placed using `referenceMs`. */
function parseHttpDate(text: string, referenceMs: number): number {
  const match = HTTP_DATE.exec(text) ?? [];
  // The fields of the form that matched: day, month, year, hour, minute, second; asctime has the month
  // first and the year last.
  const fields = match.filter((field) => field);
  let [, day, month, year, hour, minute, second] = fields;
  if (match[13]) [, month, day, hour, minute, second, year] = fields;
  let fullYear = +year!;
  if (match[9]) {
    // RFC 850's two-digit year: RFC 9110 puts one that would be more than 50 years ahead in the past century.
    const latestYear = new Date(referenceMs).getUTCFullYear() + 50;
    fullYear = latestYear - ((latestYear - fullYear) % 100);
  }
  return utc(fullYear, MONTHS.indexOf(month!) / 3, +day!, +hour!, +minute!, +second!);
}

/** An RFC 3339 timestamp in epoch milliseconds, or NaN. */
function parseRfc3339(text: string): number {
  const [, year, month, day, hour, minute, second, fraction = 0, sign = "+", offsetHour = 0, offsetMinute = 0] =
    RFC_3339.exec(text) ?? [];
  // The offset is read as a time of day on 1970-01-01, which checks its hours and minutes; `sign + 1` is
  // "+1" or "-1".
  return (
    utc(+year!, +month! - 1, +day!, +hour!, +minute!, +second!) +
    +fraction * 1e3 -
    +(sign + 1) * utc(1970, 0, 1, +offsetHour, +offsetMinute, 0)
  );
}

/**
 * `value[key]`, or undefined when reading it throws.
 * @internal
 */
export function property(value: unknown, key: PropertyKey): unknown {
  // Checked, not caught: a thrown and caught error costs more than a whole `execute` call, and
  // execute reads `response.status` of every value that has no response.
  if (value == null) return undefined;
  try {
    return (value as Record<PropertyKey, unknown>)[key];
  } catch {
    return undefined;
  }
}

/** The text of a header value (the first of several) or of a number or bigint; "" when it is none of them. */
function text(value: unknown): string {
  // The first of an array's values. (Array.isArray would throw on a revoked proxy.)
  if (typeof value == "object") value = property(value, 0);
  const type = typeof value;
  return type == "string" ? (value as string).trim() : type == "number" || type == "bigint" ? "" + value : "";
}

/**
 * A reader of response headers: the text of one header (the first of several values, trimmed), or ""
 * when there is no such header. Never throws.
 * @internal
 */
export function headerReader(headers: unknown): (name: string) => string {
  const get = property(headers, "get");
  return (name) => {
    try {
      return text(
        typeof get == "function"
          ? get.call(headers, name)
          : (headers as Record<string, unknown>)[
              Object.keys(headers as object).find((key) => key.toLowerCase() == name) ?? ""
            ],
      );
    } catch {
      // A throwing get or getter, or no object at all: no such header.
      return "";
    }
  };
}

/**
 * The two kinds of wait hint in response headers, in milliseconds: what `retry-after-ms`,
 * `x-ms-retry-after-ms` or `retry-after` asks for, and how long until one slot of the exhausted
 * rate-limit windows frees. `waitHint` puts the body's own hint between the two.
 * @internal
 */
export function headerHints(headers: unknown, now?: number): [retryAfterMs: number | undefined, windowMs: number | undefined] {
  const read = headerReader(headers);
  const clientNow = Number.isFinite(now) ? now! : Date.now();
  // The server's own clock, so that its absolute times mean the same to us whatever our clock says.
  const serverNow = parseHttpDate(read("date"), clientNow) || clientNow;
  const untilTime = (time: number) => delay(Math.max(0, time - serverNow));
  const retryAfter = read("retry-after");
  const seconds = SECONDS.exec(retryAfter);
  let windowMs: number | undefined;
  // A window counts when its remaining header (the reset header's name with "remaining") is 0. OpenAI's
  // resets are Go durations, Anthropic's RFC 3339 timestamps, the IETF draft's seconds. These providers
  // refill continuously, so with the window's limit known, one slot frees after reset / limit: the reset
  // itself is when the whole window is full again.
  for (const name of [
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
    "ratelimit-reset",
  ]) {
    if (decimal(read(name.replace("reset", "remaining")), "s") !== 0) continue;
    const reset = read(name);
    const resetMs = name[0] == "r" ? decimal(reset, "s") : name[0] == "x" ? parseDuration(reset) : untilTime(parseRfc3339(reset));
    // A plain number (read in "ms", that is as it is); a limit of 0 or none leaves the whole reset.
    const slotMs = resetMs! / (decimal(read(name.replace("reset", "limit")), "ms") || 1);
    if (slotMs >= (windowMs ?? 0)) windowMs = delay(slotMs);
  }
  return [
    decimal(read("retry-after-ms"), "ms") ??
      decimal(read("x-ms-retry-after-ms"), "ms") ??
      (seconds ? delay(+seconds[1]! * 1e3) : untilTime(parseHttpDate(retryAfter, serverNow))),
    windowMs,
  ];
}

/**
 * Reads how long to wait before retrying from response headers, in milliseconds.
 *
 * Looks at, in order: `retry-after-ms` / `x-ms-retry-after-ms`; `retry-after`, read as the official SDKs
 * read it — seconds (`"1.5"`, also `"3s"`, `"1e2"`, and the first of a list, `"2, 3"`) or an HTTP-date,
 * measured against the response's `date` header when valid, which cancels clock skew; then the exhausted
 * rate-limit windows (OpenAI `x-ratelimit-*`, Anthropic `anthropic-ratelimit-*`, IETF draft `ratelimit-*`),
 * each as the time until one slot frees (reset / limit when the window's limit header is there, else the
 * whole reset), the latest winning. A present but invalid header falls through to the next. Never throws.
 * @param headers - A `Headers`, an object with a `get(name)` method, or a record with names in any case.
 * @param now - The current time in epoch milliseconds; defaults to `Date.now()`.
 * @returns Milliseconds to wait (0 when the time has passed), or `undefined` when there is no usable hint.
 * @example
 * parseRetryAfter(new Headers({ "retry-after": "1.5" })); // 1500
 * parseRetryAfter({ "Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT" }, Date.UTC(1994, 10, 6, 8, 49, 7)); // 30000
 */
export function parseRetryAfter(headers: HeadersLike, now?: number): number | undefined {
  const [retryAfterMs, windowMs] = headerHints(headers, now);
  return retryAfterMs ?? windowMs;
}

/** The delay a message such as "Please retry in 29.1s" asks for. */
function messageDelay(message: unknown): number | undefined {
  // The amount followed by the symbol of its unit word, if any (groups that did not match join as "").
  const duration = typeof message == "string" && RETRY_IN.exec(message.toLowerCase())?.slice(1).join("");
  // A bare number is seconds.
  return parseDuration(duration) ?? parseDuration(duration + "s");
}

/**
 * The parts of an error body worth reading, in the order met: the body (parsed when it is JSON text), then
 * at any depth each part's `error`, `details` and `violations`, and an array's items. Reads only plain data
 * and never throws.
 * @internal
 */
export function bodyParts(body: unknown): unknown[] {
  // Each value is met once (a circular one too), and an array's first 64 items only: error bodies are
  // small, and this keeps a hostile one cheap.
  const parts = new Set<unknown>();
  const visit = (value: unknown): void => {
    // Array.isArray throws on a revoked proxy, and nesting deep enough overflows the stack.
    try {
      if (parts.has(value)) return;
      parts.add(value);
      // An array's items (Gemini sends an array of errors; `details` is an array), else the `error` (some
      // clients hand over the whole body, some its inner error object), the `details` and a Google
      // QuotaFailure's `violations`.
      const children = Array.isArray(value)
        ? value
        : [property(value, "error"), property(value, "details"), property(value, "violations")];
      const length = property(children, "length");
      for (let index = 0; typeof length == "number" && index < length && index < 64; index++) {
        visit(property(children, index));
      }
    } catch {
      // What was met so far counts.
    }
  };
  try {
    if (typeof body == "string") body = JSON.parse(body);
  } catch {
    // Not JSON: the text itself is the message.
  }
  visit(body);
  return [...parts];
}

/**
 * Reads how long to wait before retrying from an error response body, in milliseconds.
 *
 * Understands Google RPC `RetryInfo.retryDelay` and `ErrorInfo.metadata.quotaResetDelay` (also in
 * Gemini's array form), OpenAI Codex `error.resets_in_seconds`, and messages such as
 * `"Please retry in 29.1s"` or `"retry after 5 seconds"`, found in the body, its `error` and `details` (at any
 * depth) and array items; the longest hint wins. Reads only plain data and never throws.
 * @param body - The parsed body, or its text (JSON or not).
 * @returns Milliseconds to wait, or `undefined` when the body holds no usable hint.
 * @example
 * parseRetryDelay({
 *   error: { details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "38s" }] },
 * }); // 38000
 */
export function parseRetryDelay(body: unknown): number | undefined {
  let longest: number | undefined;
  // Nothing is compared with `==` or `<` unless it is known to be a primitive: that could call its methods.
  for (const part of bodyParts(body)) {
    const type = property(part, "@type");
    for (const ms of [
      messageDelay(part),
      messageDelay(property(part, "message")),
      decimal(text(property(part, "resets_in_seconds")), "s"),
      parseDuration(
        type === GOOGLE_RPC + "RetryInfo"
          ? property(part, "retryDelay")
          : type === GOOGLE_RPC + "ErrorInfo" && property(property(part, "metadata"), "quotaResetDelay"),
      ),
    ]) {
      if (ms! >= (longest ?? 0)) longest = ms;
    }
  }
  return longest;
}
