import { afterEach, describe, expect, it, vi } from "vitest";
import { type HeadersLike, parseDuration, parseRetryAfter, parseRetryDelay } from "../src/retry-after.js";

// 2024-01-01T00:00:00Z, a Monday.
const NOW = Date.UTC(2024, 0, 1, 0, 0, 0);
const IN_30_SECONDS_IMF = "Mon, 01 Jan 2024 00:00:30 GMT";

function expectNoHintOrDelay(value: number | undefined): void {
  if (value !== undefined) {
    expect(Number.isFinite(value)).toBe(true);
    expect(value).toBeGreaterThanOrEqual(0);
  }
}

function throwingGetter<T extends object>(target: T, key: string): T {
  return Object.defineProperty(target, key, {
    enumerable: true,
    get() {
      throw new Error("getter " + key);
    },
  });
}

const hostileProxy = new Proxy(
  {},
  {
    get() {
      throw new Error("get trap");
    },
    ownKeys() {
      throw new Error("ownKeys trap");
    },
    has() {
      throw new Error("has trap");
    },
    getPrototypeOf() {
      throw new Error("getPrototypeOf trap");
    },
  },
);

const revocable = Proxy.revocable([], {});
revocable.revoke();
const revokedProxy: object = revocable.proxy;

describe("parseRetryAfter: millisecond headers", () => {
  it("reads retry-after-ms as milliseconds", () => {
    expect(parseRetryAfter({ "retry-after-ms": "1500" }, NOW)).toBe(1500);
  });

  it("keeps fractional milliseconds", () => {
    expect(parseRetryAfter({ "retry-after-ms": "12.5" }, NOW)).toBe(12.5);
  });

  it("reads x-ms-retry-after-ms (Azure)", () => {
    expect(parseRetryAfter({ "x-ms-retry-after-ms": "250" }, NOW)).toBe(250);
  });

  it("prefers retry-after-ms over x-ms-retry-after-ms and retry-after", () => {
    const headers = { "retry-after-ms": "100", "x-ms-retry-after-ms": "200", "retry-after": "3" };
    expect(parseRetryAfter(headers, NOW)).toBe(100);
  });

  it("prefers x-ms-retry-after-ms over retry-after", () => {
    expect(parseRetryAfter({ "x-ms-retry-after-ms": "200", "retry-after": "3" }, NOW)).toBe(200);
  });

  it("falls through an invalid retry-after-ms to the next header", () => {
    expect(parseRetryAfter({ "retry-after-ms": "soon", "x-ms-retry-after-ms": "200" }, NOW)).toBe(200);
    expect(parseRetryAfter({ "retry-after-ms": "-5", "retry-after": "3" }, NOW)).toBe(3000);
  });

  it("reads zero as no wait", () => {
    expect(parseRetryAfter({ "retry-after-ms": "0" }, NOW)).toBe(0);
  });
});

describe("parseRetryAfter: retry-after delta-seconds", () => {
  it("reads whole seconds", () => {
    expect(parseRetryAfter({ "retry-after": "120" }, NOW)).toBe(120_000);
  });

  it("reads decimal seconds exactly", () => {
    expect(parseRetryAfter({ "retry-after": "1.5" }, NOW)).toBe(1500);
    expect(parseRetryAfter({ "retry-after": "1.005" }, NOW)).toBe(1005);
  });

  it("tolerates surrounding whitespace", () => {
    expect(parseRetryAfter({ "retry-after": "  7 " }, NOW)).toBe(7000);
  });

  it.each(["-5", "1e999", "NaN", "Infinity", "0x10", "+5", "1.", ".5", "", "5 5", ", 3", "1e", "3ss"])(
    "rejects %j",
    (value) => {
      expect(parseRetryAfter({ "retry-after": value }, NOW)).toBeUndefined();
    },
  );

  // The SDKs read the header with parseFloat, which also takes "5" of "5m" and "2024" of an ISO date;
  // a unit other than seconds is refused instead, so that the next hint (or the default) decides.
  it.each(["5m", "1h", "3ms", "5 minutes", "2024-01-01T00:00:30Z", "10:30"])("rejects %j, which has a unit or text of its own", (value) => {
    expect(parseRetryAfter({ "retry-after": value }, NOW)).toBeUndefined();
  });

  it("rejects a number too large to be finite", () => {
    expect(parseRetryAfter({ "retry-after": "9".repeat(400) }, NOW)).toBeUndefined();
  });

  it("falls through a number too large to be finite to the rate-limit windows", () => {
    const headers = { "retry-after": "1e999", "ratelimit-remaining": "0", "ratelimit-reset": "9" };
    expect(parseRetryAfter(headers, NOW)).toBe(9000);
  });

  it("falls through an invalid retry-after to the rate-limit windows", () => {
    const headers = { "retry-after": "-5", "ratelimit-remaining": "0", "ratelimit-reset": "9" };
    expect(parseRetryAfter(headers, NOW)).toBe(9000);
  });

  it("prefers retry-after over exhausted windows", () => {
    const headers = { "retry-after": "2", "ratelimit-remaining": "0", "ratelimit-reset": "9" };
    expect(parseRetryAfter(headers, NOW)).toBe(2000);
  });
});

describe("parseRetryAfter: retry-after read the way the official SDKs read it", () => {
  // openai-node and anthropic-sdk-typescript: parseFloat(retry-after) seconds, else Date.parse.
  it("reads seconds with the unit s", () => {
    expect(parseRetryAfter({ "retry-after": "3s" }, NOW)).toBe(3000);
    expect(parseRetryAfter({ "retry-after": "1.5S" }, NOW)).toBe(1500);
  });

  it("reads exponent notation", () => {
    expect(parseRetryAfter({ "retry-after": "1e2" }, NOW)).toBe(100_000);
    expect(parseRetryAfter({ "retry-after": "1E3" }, NOW)).toBe(1_000_000);
    expect(parseRetryAfter({ "retry-after": "25e-1" }, NOW)).toBe(2500);
  });

  it("reads the first of comma-joined values (a header sent twice)", () => {
    expect(parseRetryAfter({ "retry-after": "2, 3" }, NOW)).toBe(2000);
    expect(parseRetryAfter({ "retry-after": "1,5" }, NOW)).toBe(1000);
    expect(parseRetryAfter({ "retry-after": "4s, soon" }, NOW)).toBe(4000);
    const twice = new Headers();
    twice.append("retry-after", "2");
    twice.append("retry-after", "3");
    expect(parseRetryAfter(twice, NOW)).toBe(2000);
  });

  it("reads a numeric or bigint value in a record", () => {
    const record = (value: unknown) => ({ "retry-after": value }) as unknown as HeadersLike;
    expect(parseRetryAfter(record(7), NOW)).toBe(7000);
    expect(parseRetryAfter(record(5n), NOW)).toBe(5000);
    expect(parseRetryAfter(record(-5n), NOW)).toBeUndefined();
  });
});

describe("parseRetryAfter: retry-after HTTP-date", () => {
  it("reads an IMF-fixdate", () => {
    expect(parseRetryAfter({ "retry-after": IN_30_SECONDS_IMF }, NOW)).toBe(30_000);
  });

  it("reads an obsolete RFC 850 date", () => {
    expect(parseRetryAfter({ "retry-after": "Monday, 01-Jan-24 00:00:30 GMT" }, NOW)).toBe(30_000);
  });

  it("reads an ANSI C asctime date with a space-padded day", () => {
    const now = Date.UTC(1994, 10, 6, 8, 49, 7);
    expect(parseRetryAfter({ "retry-after": "Sun Nov  6 08:49:37 1994" }, now)).toBe(30_000);
  });

  it("reads an asctime date with a two-digit day", () => {
    const now = Date.UTC(1994, 10, 16, 8, 49, 7);
    expect(parseRetryAfter({ "retry-after": "Wed Nov 16 08:49:37 1994" }, now)).toBe(30_000);
  });

  it("reads the RFC 9110 example dates as the same instant", () => {
    const now = Date.UTC(1994, 10, 6, 8, 49, 0);
    const dates = ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"];
    for (const date of dates) {
      expect(parseRetryAfter({ "retry-after": date }, now)).toBe(37_000);
    }
  });

  it("puts an RFC 850 year more than 50 years ahead in the past century", () => {
    // From 2024, "75" would be 2075 (51 years ahead), so it is 1975: long past.
    expect(parseRetryAfter({ "retry-after": "Wednesday, 01-Jan-75 00:00:00 GMT" }, NOW)).toBe(0);
    // "94" is 1994, not 2094.
    expect(parseRetryAfter({ "retry-after": "Sunday, 06-Nov-94 08:49:37 GMT" }, NOW)).toBe(0);
  });

  it("keeps an RFC 850 year at most 50 years ahead in the future", () => {
    const expected = Date.UTC(2074, 0, 1) - NOW;
    expect(parseRetryAfter({ "retry-after": "Monday, 01-Jan-74 00:00:00 GMT" }, NOW)).toBe(expected);
  });

  it("reads a four-digit year below 100 as that year, not 19xx", () => {
    const now = Date.UTC(1994, 10, 6);
    expect(parseRetryAfter({ "retry-after": "Sun, 03 Oct 0099 04:42:39 GMT" }, now)).toBe(0);
    expect(parseRetryAfter({ "retry-after": "Sun Oct  3 04:42:39 0099" }, now)).toBe(0);
    // February 29 of year 0 (a leap year), not of 1900 (not one).
    expect(parseRetryAfter({ "retry-after": "Tue, 29 Feb 0000 00:00:00 GMT" }, now)).toBe(0);
  });

  it("accepts a leap second", () => {
    expect(parseRetryAfter({ "retry-after": "Mon, 01 Jan 2024 00:00:60 GMT" }, NOW)).toBe(60_000);
  });

  it("gives 0 for a date in the past", () => {
    expect(parseRetryAfter({ "retry-after": "Sun, 31 Dec 2023 23:59:00 GMT" }, NOW)).toBe(0);
  });

  it("measures against the server's date header, cancelling clock skew", () => {
    // The server's clock is one hour behind ours.
    const headers = {
      date: "Sun, 31 Dec 2023 23:00:00 GMT",
      "retry-after": "Sun, 31 Dec 2023 23:00:30 GMT",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(30_000);
  });

  it("accepts a date header in an obsolete form", () => {
    const headers = { date: "Sun Dec 31 23:00:00 2023", "retry-after": "Sun, 31 Dec 2023 23:00:30 GMT" };
    expect(parseRetryAfter(headers, NOW)).toBe(30_000);
  });

  it("measures against now when the date header is invalid", () => {
    const headers = { date: "yesterday", "retry-after": IN_30_SECONDS_IMF };
    expect(parseRetryAfter(headers, NOW)).toBe(30_000);
  });

  it("does not let the date header change delta-seconds", () => {
    const headers = { date: "Sun, 31 Dec 2023 23:00:00 GMT", "retry-after": "5" };
    expect(parseRetryAfter(headers, NOW)).toBe(5000);
  });

  it.each([
    ["an impossible day", "Fri, 30 Feb 2024 00:00:30 GMT"],
    ["day 32", "Wed, 32 Jan 2024 00:00:30 GMT"],
    ["an unknown month", "Mon, 01 Foo 2024 00:00:30 GMT"],
    ["a lower-case month", "Mon, 01 jan 2024 00:00:30 GMT"],
    ["hour 24", "Mon, 01 Jan 2024 24:00:30 GMT"],
    ["minute 60", "Mon, 01 Jan 2024 00:60:30 GMT"],
    ["second 61", "Mon, 01 Jan 2024 00:00:61 GMT"],
    ["a zone other than GMT", "Mon, 01 Jan 2024 00:00:30 UTC"],
    ["a numeric zone", "Mon, 01 Jan 2024 00:00:30 +0000"],
    ["mixed IMF and RFC 850 separators", "Mon, 01-Jan-2024 00:00:30 GMT"],
    ["a two-digit year in IMF form", "Mon, 01 Jan 24 00:00:30 GMT"],
    ["a four-digit year in RFC 850 form", "Monday, 01-Jan-2024 00:00:30 GMT"],
    ["a single-digit day in IMF form", "Mon, 1 Jan 2024 00:00:30 GMT"],
    ["an ISO date", "2024-01-01T00:00:30Z"],
    ["trailing text", "Mon, 01 Jan 2024 00:00:30 GMT; extra"],
    // V8's Date.parse, which the SDKs fall back to, takes these; other engines do not, and RFC 9110 does not.
    ["a trailing semicolon", "Mon, 01 Jan 2024 00:00:30 GMT;"],
    ["leading text", "xyz Mon, 01 Jan 2024 00:00:30 GMT"],
    ["two dates joined (a header sent twice)", "Mon, 01 Jan 2024 00:00:30 GMT, Mon, 01 Jan 2024 00:00:40 GMT"],
  ])("rejects %s", (_, value) => {
    expect(parseRetryAfter({ "retry-after": value }, NOW)).toBeUndefined();
  });

  it("falls through an invalid date to the rate-limit windows", () => {
    const headers = {
      "retry-after": "Fri, 30 Feb 2024 00:00:30 GMT",
      "ratelimit-remaining": "0",
      "ratelimit-reset": "4",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(4000);
  });
});

describe("parseRetryAfter: header names and containers", () => {
  it("reads a WHATWG Headers", () => {
    expect(parseRetryAfter(new Headers({ "Retry-After": "3" }), NOW)).toBe(3000);
    expect(parseRetryAfter(new Headers({ "RETRY-AFTER-MS": "40" }), NOW)).toBe(40);
  });

  it("reads a plain record whatever the case of its names", () => {
    expect(parseRetryAfter({ "Retry-After": "3" }, NOW)).toBe(3000);
    expect(parseRetryAfter({ "RETRY-AFTER-MS": "40" }, NOW)).toBe(40);
    const openAi = { "X-RateLimit-Remaining-Requests": "0", "X-RateLimit-Reset-Requests": "2s" };
    expect(parseRetryAfter(openAi, NOW)).toBe(2000);
  });

  it("takes the first element of an array value", () => {
    expect(parseRetryAfter({ "retry-after": ["5", "7"] }, NOW)).toBe(5000);
  });

  it("skips null, undefined and empty-array values", () => {
    expect(parseRetryAfter({ "retry-after-ms": null, "x-ms-retry-after-ms": undefined, "retry-after": "2" }, NOW)).toBe(
      2000,
    );
    expect(parseRetryAfter({ "retry-after": [] }, NOW)).toBeUndefined();
  });

  it("reads any object with a get method, such as an SDK's headers", () => {
    const values: Record<string, string> = { "retry-after": "8" };
    const sdkHeaders = { get: (name: string) => values[name] ?? null };
    expect(parseRetryAfter(sdkHeaders as unknown as HeadersLike, NOW)).toBe(8000);
  });

  it("returns undefined when no header gives a hint", () => {
    expect(parseRetryAfter({}, NOW)).toBeUndefined();
    expect(parseRetryAfter(new Headers({ "content-type": "application/json" }), NOW)).toBeUndefined();
  });
});

describe("parseRetryAfter: exhausted OpenAI windows", () => {
  it("reads the reset of an exhausted requests window as a Go duration", () => {
    const headers = { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1h2m3.5s" };
    expect(parseRetryAfter(headers, NOW)).toBe(3_723_500);
  });

  it("reads the reset of an exhausted tokens window", () => {
    const headers = { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s" };
    expect(parseRetryAfter(headers, NOW)).toBe(360_000);
  });

  it("reads millisecond resets", () => {
    const headers = { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "12ms" };
    expect(parseRetryAfter(headers, NOW)).toBe(12);
  });

  it("ignores a window that still has capacity", () => {
    const headers = { "x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "20s" };
    expect(parseRetryAfter(headers, NOW)).toBeUndefined();
  });

  it("ignores a reset whose remaining header is missing or not a number", () => {
    expect(parseRetryAfter({ "x-ratelimit-reset-requests": "20s" }, NOW)).toBeUndefined();
    const headers = { "x-ratelimit-remaining-requests": "none", "x-ratelimit-reset-requests": "20s" };
    expect(parseRetryAfter(headers, NOW)).toBeUndefined();
  });

  it("counts only the exhausted window when the other still has capacity", () => {
    const headers = {
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1s",
      "x-ratelimit-remaining-tokens": "5000",
      "x-ratelimit-reset-tokens": "6m0s",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(1000);
  });

  it("takes the latest reset when several windows are exhausted", () => {
    const headers = {
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1s",
      "x-ratelimit-remaining-tokens": "0",
      "x-ratelimit-reset-tokens": "1m",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(60_000);
  });

  it("ignores an exhausted window whose reset is not a duration", () => {
    const headers = { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "soon" };
    expect(parseRetryAfter(headers, NOW)).toBeUndefined();
  });
});

describe("parseRetryAfter: an exhausted window is read as the time one slot frees", () => {
  // These providers refill continuously: with the limit known, one slot frees after reset / limit.
  it("divides an OpenAI reset by the window's limit", () => {
    const headers = {
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1m0s",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(1000);
  });

  it("divides an Anthropic reset by the window's limit", () => {
    const headers = {
      "anthropic-ratelimit-requests-limit": "50",
      "anthropic-ratelimit-requests-remaining": "0",
      "anthropic-ratelimit-requests-reset": "2024-01-01T00:01:00Z",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(1200);
  });

  it("divides an IETF draft reset by its limit", () => {
    const headers = { "ratelimit-limit": "10", "ratelimit-remaining": "0", "ratelimit-reset": "30" };
    expect(parseRetryAfter(headers, NOW)).toBe(3000);
  });

  it("keeps the whole reset when the limit is missing, 0 or not a plain number", () => {
    const window = (limit: string | undefined) =>
      parseRetryAfter(
        { "x-ratelimit-limit-requests": limit, "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6s" },
        NOW,
      );
    expect(window(undefined)).toBe(6000);
    expect(window("0")).toBe(6000);
    expect(window("-3")).toBe(6000);
    expect(window("10, 10;w=1")).toBe(6000);
  });

  it("takes the latest slot among the exhausted windows", () => {
    const headers = {
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1m0s",
      "x-ratelimit-limit-tokens": "1000",
      "x-ratelimit-remaining-tokens": "0",
      "x-ratelimit-reset-tokens": "6m0s",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(1000);
  });

  it("uses a window's limit only for that window", () => {
    const headers = {
      "x-ratelimit-limit-tokens": "1000",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "2s",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(2000);
  });

  it("still prefers retry-after to any window", () => {
    const headers = {
      "retry-after": "7",
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1m0s",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(7000);
  });
});

describe("parseRetryAfter: exhausted Anthropic windows", () => {
  it("reads an RFC 3339 reset against now", () => {
    const headers = {
      "anthropic-ratelimit-requests-remaining": "0",
      "anthropic-ratelimit-requests-reset": "2024-01-01T00:00:30Z",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(30_000);
  });

  it("reads fractional seconds and positive or negative offsets", () => {
    const reset = (value: string) =>
      parseRetryAfter({ "anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-tokens-reset": value }, NOW);
    expect(reset("2024-01-01T01:00:30+01:00")).toBe(30_000);
    expect(reset("2023-12-31T22:30:30-01:30")).toBe(30_000);
    expect(reset("2024-01-01T00:00:30.250Z")).toBe(30_250);
    // Epoch milliseconds near 2024 resolve to about 0.0002 ms, hence "close to".
    expect(reset("2024-01-01T00:00:01.123456Z")).toBeCloseTo(1123.456, 3);
    expect(reset("2024-01-01t00:00:30z")).toBe(30_000);
  });

  it("reads the input-tokens and output-tokens windows", () => {
    const input = {
      "anthropic-ratelimit-input-tokens-remaining": "0",
      "anthropic-ratelimit-input-tokens-reset": "2024-01-01T00:00:05Z",
    };
    expect(parseRetryAfter(input, NOW)).toBe(5000);
    const output = {
      "anthropic-ratelimit-output-tokens-remaining": "0",
      "anthropic-ratelimit-output-tokens-reset": "2024-01-01T00:00:06Z",
    };
    expect(parseRetryAfter(output, NOW)).toBe(6000);
  });

  it("measures against the server's date header", () => {
    const headers = {
      date: "Sun, 31 Dec 2023 23:00:00 GMT",
      "anthropic-ratelimit-requests-remaining": "0",
      "anthropic-ratelimit-requests-reset": "2023-12-31T23:00:20Z",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(20_000);
  });

  it("gives 0 for a reset in the past", () => {
    const headers = {
      "anthropic-ratelimit-requests-remaining": "0",
      "anthropic-ratelimit-requests-reset": "2023-12-31T23:59:00Z",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(0);
  });

  it("ignores a window with requests remaining", () => {
    const headers = {
      "anthropic-ratelimit-requests-remaining": "49",
      "anthropic-ratelimit-requests-reset": "2024-01-01T00:00:30Z",
    };
    expect(parseRetryAfter(headers, NOW)).toBeUndefined();
  });

  it.each([
    "2024-02-30T00:00:30Z",
    "2024-13-01T00:00:30Z",
    "2024-01-01T00:00:30",
    "2024-01-01T00:00:30+24:00",
    "2024-01-01T00:00:30+01:60",
    "2024-01-01 00:00:30 GMT",
    "1704067230",
  ])("ignores the invalid reset %j", (value) => {
    const headers = { "anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-tokens-reset": value };
    expect(parseRetryAfter(headers, NOW)).toBeUndefined();
  });
});

describe("parseRetryAfter: IETF RateLimit draft", () => {
  it("reads ratelimit-reset seconds when ratelimit-remaining is 0", () => {
    expect(parseRetryAfter({ "ratelimit-remaining": "0", "ratelimit-reset": "30" }, NOW)).toBe(30_000);
  });

  it("ignores ratelimit-reset while requests remain", () => {
    expect(parseRetryAfter({ "ratelimit-remaining": "10", "ratelimit-reset": "30" }, NOW)).toBeUndefined();
  });

  it("takes the latest reset across all providers' exhausted windows", () => {
    const headers = {
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1s",
      "anthropic-ratelimit-tokens-remaining": "0",
      "anthropic-ratelimit-tokens-reset": "2024-01-01T00:00:30Z",
      "ratelimit-remaining": "0",
      "ratelimit-reset": "10",
    };
    expect(parseRetryAfter(headers, NOW)).toBe(30_000);
  });
});

describe("parseRetryAfter: the clock", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("defaults now to Date.now()", () => {
    vi.useFakeTimers();
    vi.setSystemTime(NOW);
    expect(parseRetryAfter({ "retry-after": IN_30_SECONDS_IMF })).toBe(30_000);
  });

  it("falls back to Date.now() when now is not a finite number", () => {
    vi.useFakeTimers();
    vi.setSystemTime(NOW);
    expect(parseRetryAfter({ "retry-after": IN_30_SECONDS_IMF }, Number.NaN)).toBe(30_000);
    expect(parseRetryAfter({ "retry-after": IN_30_SECONDS_IMF }, Number.POSITIVE_INFINITY)).toBe(30_000);
    expect(parseRetryAfter({ "retry-after": IN_30_SECONDS_IMF }, "soon" as unknown as number)).toBe(30_000);
  });
});

describe("parseRetryAfter: robustness", () => {
  it("returns undefined for inputs that are not headers, without throwing", () => {
    for (const input of [null, undefined, 0, 42, "retry-after: 5", "5", true, [], ["5"], () => 5, Symbol("headers")]) {
      expect(parseRetryAfter(input as unknown as HeadersLike, NOW)).toBeUndefined();
    }
  });

  it("survives a throwing getter and still reads the other headers", () => {
    const headers = throwingGetter({ "retry-after": "5" } as Record<string, string>, "retry-after-ms");
    expect(parseRetryAfter(headers, NOW)).toBe(5000);
  });

  it("survives a throwing get property and reads the record instead", () => {
    const headers = throwingGetter({ "retry-after": "5" } as Record<string, string>, "get");
    expect(parseRetryAfter(headers, NOW)).toBe(5000);
  });

  it("survives a headers object whose get throws", () => {
    const headers = {
      get() {
        throw new Error("boom");
      },
    };
    expect(parseRetryAfter(headers as unknown as HeadersLike, NOW)).toBeUndefined();
  });

  it("survives a get that returns odd values", () => {
    for (const value of [{}, 5n, Symbol("x"), Number.NaN, -5, ["-1"], [{}]]) {
      const headers = { get: () => value };
      expectNoHintOrDelay(parseRetryAfter(headers as unknown as HeadersLike, NOW));
    }
  });

  it("survives a proxy that throws from every trap", () => {
    expect(parseRetryAfter(hostileProxy as HeadersLike, NOW)).toBeUndefined();
  });

  it("survives revoked proxies as the headers or as a value", () => {
    expect(parseRetryAfter(revokedProxy as HeadersLike, NOW)).toBeUndefined();
    const headers = { "retry-after-ms": revokedProxy, "retry-after": "7" } as unknown as HeadersLike;
    expect(parseRetryAfter(headers, NOW)).toBe(7000);
  });

  it("survives an array value whose first element throws", () => {
    const value = throwingGetter(["5"], "0");
    expect(parseRetryAfter({ "retry-after-ms": value, "retry-after": "7" }, NOW)).toBe(7000);
    expect(parseRetryAfter({ "retry-after": value }, NOW)).toBeUndefined();
  });

  it("never returns NaN, Infinity or a negative number for garbage values", () => {
    const garbage = ["-5", "1e999", "NaN", "Infinity", "-Infinity", "-0", "0x1F", " ", "\u0000"];
    garbage.push("9".repeat(400), "1".repeat(10_000));
    const names = [
      "retry-after-ms",
      "x-ms-retry-after-ms",
      "retry-after",
      "x-ratelimit-reset-requests",
      "anthropic-ratelimit-tokens-reset",
      "ratelimit-reset",
    ];
    for (const value of garbage) {
      for (const name of names) {
        const headers = {
          [name]: value,
          "x-ratelimit-remaining-requests": "0",
          "anthropic-ratelimit-tokens-remaining": "0",
          "ratelimit-remaining": "0",
        };
        const result = parseRetryAfter(headers, NOW);
        expectNoHintOrDelay(result);
        expect(result).toBeUndefined();
      }
    }
  });

  it("rejects huge invalid values without throwing", () => {
    const huge = "1".repeat(2_000_000) + "x";
    const headers = {
      "retry-after-ms": huge,
      "retry-after": huge,
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": huge + "s",
    };
    expect(parseRetryAfter(headers, NOW)).toBeUndefined();
  });

  it("reads a valid value padded to a huge size", () => {
    const padding = " ".repeat(2_000_000);
    expect(parseRetryAfter({ "retry-after": padding + "5" + padding }, NOW)).toBe(5000);
    const reset = "0".repeat(2_000_000) + "1s";
    const headers = { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": reset };
    expect(parseRetryAfter(headers, NOW)).toBe(1000);
  });
});

describe("parseDuration", () => {
  it.each([
    ["1s", 1000],
    ["0.5s", 500],
    ["1m", 60_000],
    ["6m0s", 360_000],
    ["12ms", 12],
    ["20ms", 20],
    ["1h2m3.5s", 3_723_500],
    ["2m59.56s", 179_560],
    ["34.07s", 34_070],
    ["1.005s", 1005],
    ["29.149467385s", 29_149.467385],
    ["0s", 0],
  ])("reads %j as %d ms", (text, expected) => {
    expect(parseDuration(text)).toBe(expected);
  });

  it.each([
    ...["", "5", "-1s", "+1s", "1x", "s", "1.s", ".5s", "1.2.3s", "1e3s", "1h 2m", "1S", "1 s", "NaN s", "1s "],
    // Microseconds and nanoseconds are not among the units.
    ...["1500us", "3µs", "2000000ns", "1s500us"],
    ...[null, 5, {}],
  ])(
    "rejects %j",
    (value) => {
      expect(parseDuration(value)).toBeUndefined();
    },
  );

  it("rejects a duration too large to be finite", () => {
    expect(parseDuration("9".repeat(400) + "h")).toBeUndefined();
  });
});

const retryInfo = (retryDelay: unknown) => ({ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay });
const errorInfo = (quotaResetDelay: unknown) => ({
  "@type": "type.googleapis.com/google.rpc.ErrorInfo",
  reason: "RATE_LIMIT_EXCEEDED",
  metadata: { quotaResetDelay },
});
const googleError = (...details: unknown[]) => ({
  error: {
    code: 429,
    message: "Resource has been exhausted (e.g. check quota).",
    status: "RESOURCE_EXHAUSTED",
    details,
  },
});

describe("parseRetryDelay: Google RPC details", () => {
  it("reads RetryInfo.retryDelay", () => {
    expect(parseRetryDelay(googleError(retryInfo("38s")))).toBe(38_000);
    expect(parseRetryDelay(googleError(retryInfo("34.07s")))).toBe(34_070);
  });

  it("reads ErrorInfo.metadata.quotaResetDelay", () => {
    expect(parseRetryDelay(googleError(errorInfo("373ms")))).toBe(373);
    expect(parseRetryDelay(googleError(errorInfo("1.5s")))).toBe(1500);
  });

  it("takes the largest of several hints", () => {
    const help = { "@type": "type.googleapis.com/google.rpc.Help" };
    const body = googleError(help, errorInfo("1.5s"), retryInfo("38s"), errorInfo("373ms"));
    expect(parseRetryDelay(body)).toBe(38_000);
  });

  it("reads Gemini's array form", () => {
    expect(parseRetryDelay([googleError(retryInfo("29s"))])).toBe(29_000);
  });

  it("takes the largest across the array's errors", () => {
    expect(parseRetryDelay([googleError(retryInfo("2s")), googleError(errorInfo("5s"))])).toBe(5000);
  });

  it("reads a JSON string body", () => {
    expect(parseRetryDelay(JSON.stringify(googleError(retryInfo("38s"))))).toBe(38_000);
    expect(parseRetryDelay(JSON.stringify([googleError(errorInfo("373ms"))]))).toBe(373);
  });

  it("reads the inner error object without its envelope", () => {
    expect(parseRetryDelay(googleError(retryInfo("12s")).error)).toBe(12_000);
  });

  it("ignores entries of another type", () => {
    const body = googleError({ "@type": "type.googleapis.com/google.rpc.Help", retryDelay: "38s" });
    expect(parseRetryDelay(body)).toBeUndefined();
    const quotaFailure = {
      "@type": "type.googleapis.com/google.rpc.QuotaFailure",
      metadata: { quotaResetDelay: "5s" },
    };
    expect(parseRetryDelay(googleError(quotaFailure))).toBeUndefined();
  });

  it.each(["-5s", "1e999s", "NaN", "38", "", "soon"])("ignores the invalid delay %j", (delay) => {
    expect(parseRetryDelay(googleError(retryInfo(delay), errorInfo(delay)))).toBeUndefined();
  });

  it("ignores a delay that is not a string", () => {
    expect(parseRetryDelay(googleError(retryInfo(38), retryInfo({ seconds: 38 }), errorInfo(null)))).toBeUndefined();
  });

  it("reads a zero hint as 0, not as no hint", () => {
    expect(parseRetryDelay(googleError(retryInfo("0s")))).toBe(0);
    expect(parseRetryDelay(googleError(errorInfo("0ms")))).toBe(0);
    expect(parseRetryDelay({ error: { resets_in_seconds: 0 } })).toBe(0);
    expect(parseRetryDelay("Please try again in 0s.")).toBe(0);
  });

  it("returns undefined for a body with no hint", () => {
    expect(parseRetryDelay(googleError())).toBeUndefined();
    expect(parseRetryDelay({ error: { code: 429 } })).toBeUndefined();
  });
});

describe("parseRetryDelay: OpenAI Codex resets_in_seconds", () => {
  it("reads a number of seconds", () => {
    expect(parseRetryDelay({ error: { type: "usage_limit_reached", resets_in_seconds: 1234 } })).toBe(1_234_000);
  });

  it("reads a numeric string", () => {
    expect(parseRetryDelay({ error: { resets_in_seconds: "12.5" } })).toBe(12_500);
  });

  it("ignores negative, non-finite and non-numeric values", () => {
    for (const value of [-5, Number.NaN, Number.POSITIVE_INFINITY, "-5", "soon", "1e3", null, {}]) {
      expect(parseRetryDelay({ error: { resets_in_seconds: value } })).toBeUndefined();
    }
  });
});

describe("parseRetryDelay: messages", () => {
  it.each([
    ["Please retry in 29.1s.", 29_100],
    ["You exceeded your current quota. Please retry in 29.149467385s.", 29_149.467385],
    ["Rate limit reached. Please try again in 1m30s.", 90_000],
    ["Rate limit reached for requests. Please try again in 20ms.", 20],
    ["Please try again in 6.252s. Visit https://platform.openai.com", 6252],
    ["Requests have exceeded the limit. Please retry after 5 seconds.", 5000],
    ["Try again in 59 seconds.", 59_000],
    ["Please retry after 1 second", 1000],
    ["Please retry after 500 milliseconds", 500],
    ["Please try again in 2 minutes", 120_000],
    ["Try again in 1 hour", 3_600_000],
    ["Please retry after 7", 7000],
    ["Please retry after 7, thank you.", 7000],
    ["PLEASE RETRY IN 3S", 3000],
  ])("reads %j", (message, expected) => {
    expect(parseRetryDelay({ error: { message } })).toBe(expected);
  });

  it.each([
    ["500 ms", 500],
    ["500ms", 500],
    ["2 millisecond", 2],
    ["2 milliseconds", 2],
    ["4 s", 4000],
    ["4 sec", 4000],
    ["4 secs", 4000],
    ["4 second", 4000],
    ["1.5 m", 90_000],
    ["1.5 min", 90_000],
    ["1.5 mins", 90_000],
    ["1.5 minute", 90_000],
    ["2 h", 7_200_000],
    ["2 hour", 7_200_000],
    ["2 hours", 7_200_000],
    ["1h2m3.5s", 3_723_500],
  ])("reads the unit in \"retry in %s\"", (amount, expected) => {
    expect(parseRetryDelay({ message: `Please retry in ${amount} and thank you.` })).toBe(expected);
  });

  it("reads a top-level message", () => {
    expect(parseRetryDelay({ message: "Please retry in 4s" })).toBe(4000);
  });

  it("reads a non-JSON text body", () => {
    expect(parseRetryDelay("429 Too Many Requests: try again in 3s")).toBe(3000);
  });

  it("reads a JSON string literal body as a message", () => {
    expect(parseRetryDelay(JSON.stringify("retry in 3s"))).toBe(3000);
  });

  it.each([
    "Please retry later.",
    "Please try again in a few seconds.",
    "Retry after 2024-01-01T00:00:00Z",
    "Try again after 10:30",
    "Please retry in -5s",
    "We will retry 5s later",
    // A number followed by a word that is not a unit is not a delay.
    "retry in 5 hello",
    "retry in 5hello",
    "retry in 1.5 hello",
    "retry in 1.5x",
    "Please retry in 5 hrs",
    "Please retry in 5 mss",
    "Please retry in 5 hs",
    "Please retry in 5 secondly",
    "Please retry after 7 attempts",
    "Please retry in 1e3s",
    // Units it doesn't read, in any script, are not seconds either.
    "Please try again in 120µs.",
    "Please try again in 120μs.",
    "retry in 1.5 µs",
    "retry in 5 Sekunden",
    "retry in 5 秒",
  ])("ignores %j", (message) => {
    expect(parseRetryDelay({ error: { message } })).toBeUndefined();
  });

  it("takes the largest of a message and structured details", () => {
    const body = googleError(retryInfo("29s"));
    body.error.message = "Please retry in 29.5s.";
    expect(parseRetryDelay(body)).toBe(29_500);
  });
});

describe("parseRetryDelay: robustness", () => {
  it("returns undefined for bodies with nothing to read, without throwing", () => {
    const inputs = [null, undefined, 0, 42, 5n, true, "", "not json", "{", "[]", "null", "5", {}, [], [[]]];
    for (const input of [...inputs, Symbol("body"), () => 5]) {
      expect(parseRetryDelay(input)).toBeUndefined();
    }
  });

  it("survives throwing getters and reads what it can", () => {
    const body = throwingGetter({ message: "Please retry in 4s" }, "error");
    expect(parseRetryDelay(body)).toBe(4000);
    const details = [throwingGetter({}, "@type"), retryInfo("6s"), throwingGetter(retryInfo("1s"), "retryDelay")];
    expect(parseRetryDelay({ error: { details } })).toBe(6000);
    const lyingArray = new Proxy([retryInfo("1s")], {
      get(target, key) {
        if (key === "length") throw new Error("length");
        return Reflect.get(target, key);
      },
    });
    expect(parseRetryDelay({ error: { details: lyingArray } })).toBeUndefined();
  });

  it("survives revoked proxies and reads the rest", () => {
    expect(parseRetryDelay(revokedProxy)).toBeUndefined();
    expect(parseRetryDelay([revokedProxy, googleError(retryInfo("2s"))])).toBe(2000);
    expect(parseRetryDelay({ error: { resets_in_seconds: revokedProxy, message: "retry in 3s" } })).toBe(3000);
  });

  it("survives a proxy that throws from every trap", () => {
    expect(parseRetryDelay(hostileProxy)).toBeUndefined();
    expect(parseRetryDelay({ error: hostileProxy })).toBeUndefined();
    expect(parseRetryDelay([hostileProxy, googleError(retryInfo("2s"))])).toBe(2000);
  });

  it("survives circular objects", () => {
    const error: Record<string, unknown> = { message: "Please retry in 2s" };
    error.error = error;
    error.details = [error, { error }];
    expect(parseRetryDelay(error)).toBe(2000);
  });

  it("reads each object once, even a circular one", () => {
    let reads = 0;
    const error: Record<string, unknown> = {
      get message() {
        reads++;
        return "Please retry in 2s";
      },
    };
    error.error = error;
    error.details = [error, error, { error }];
    expect(parseRetryDelay([error, error])).toBe(2000);
    expect(reads).toBe(1);
  });

  it("calls no methods on the body", () => {
    const trap = vi.fn(() => {
      throw new Error("method called");
    });
    const sneaky = { toString: trap, valueOf: trap, toJSON: trap, [Symbol.toPrimitive]: trap };
    const details = Object.assign([retryInfo(sneaky)], { [Symbol.iterator]: trap });
    const body = { error: { message: sneaky, resets_in_seconds: sneaky, details } };
    expect(parseRetryDelay(body)).toBeUndefined();
    expect(parseRetryDelay(Object.assign([body], { [Symbol.iterator]: trap }))).toBeUndefined();
    // A type or an array length that is an object is not compared (which would convert it).
    expect(parseRetryDelay({ error: { details: [{ "@type": sneaky, retryDelay: "5s" }] } })).toBeUndefined();
    const sneakyLength = new Proxy([retryInfo("5s")], {
      get: (target, key) => (key === "length" ? sneaky : Reflect.get(target, key)),
    });
    expect(parseRetryDelay({ error: { details: sneakyLength } })).toBeUndefined();
    expect(trap).not.toHaveBeenCalled();
  });

  it("reads only the first 64 entries of an array", () => {
    const details = Array.from({ length: 100_000 }, (_, index) => (index === 64 ? retryInfo("9s") : {}));
    expect(parseRetryDelay({ error: { details } })).toBeUndefined();
    details[63] = retryInfo("8s");
    expect(parseRetryDelay({ error: { details } })).toBe(8000);
  });

  it("reads huge text bodies without throwing", () => {
    // The only amount is a million digits long: too large to be a finite number of seconds.
    expect(parseRetryDelay("retry in 1".repeat(200_000) + "1".repeat(1_000_000))).toBeUndefined();
    expect(parseRetryDelay("retry in 1".repeat(200_000) + " retry in 9s")).toBe(9000);
    expect(parseRetryDelay({ error: { message: "x".repeat(5_000_000) } })).toBeUndefined();
    expect(parseRetryDelay({ error: { message: "x".repeat(5_000_000) + " retry in 2m" } })).toBe(120_000);
  });
});

describe("parseRetryAfter: what is not quite a hint", () => {
  it("an Anthropic reset with anything before or after the timestamp is no time", () => {
    const reset = (value: string) =>
      parseRetryAfter({ "anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": value }, NOW);
    expect(reset("at 2024-01-01T00:00:30Z")).toBeUndefined();
    expect(reset("2024-01-01T00:00:30Z, soon")).toBeUndefined();
  });

  it("a remaining budget that starts with 0 but is not 0 is budget left", () => {
    for (const remaining of ["05", "0.5"]) {
      expect(parseRetryAfter({ "x-ratelimit-remaining-requests": remaining, "x-ratelimit-reset-requests": "1s" }, NOW)).toBeUndefined();
    }
  });

  it("reads a retry-after exponent of two digits", () => {
    expect(parseRetryAfter({ "retry-after": "5e01" }, NOW)).toBe(50_000);
  });
});

describe("parseRetryDelay: what is not quite a hint", () => {
  it("resets_in_seconds with a unit of its own is not plain seconds", () => {
    expect(parseRetryDelay({ error: { resets_in_seconds: "30m" } })).toBeUndefined();
  });
});
