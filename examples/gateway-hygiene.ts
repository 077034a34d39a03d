/**
 * What crosses the gateway, and what doesn't: the client's request headers that go upstream (an
 * allow-list), the upstream's response headers that reach the client, and the key masked wherever an
 * upstream's error body echoes it.
 *
 * The client holds only the gateway's token; the keys, and the accounts they bill, are the
 * operator's. So a client must not be able to choose the account (`openai-organization`,
 * `openai-project`), slip in credentials of its own (`x-api-key`, `api-key`, `cookie`), or learn
 * the keys or the upstream's cookies.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";

/**
 * The request headers forwarded upstream; any other is dropped. What an OpenAI-style API needs to
 * read a request (`content-type`, `accept`), the API version and beta features a client opts into
 * (`openai-beta`, `anthropic-version`, `anthropic-beta`), a client's own retry and tracing ids
 * (`idempotency-key`, `x-client-request-id`, `traceparent`, `tracestate`), and who is calling
 * (`user-agent`). The official SDKs' `x-stainless-*` headers (language, version, retry count,
 * timeout) are forwarded too: they carry nothing that picks an account or a credential.
 *
 * Never forwarded, by not being here: `authorization` (replaced by the key), `cookie`, `x-api-key`,
 * `api-key`, `anthropic-api-key` and other credentials; `openai-organization` and `openai-project`,
 * which would let a client pick the organisation or project the gateway's key bills; `host`,
 * `content-length` and hop-by-hop headers (set anew for the upstream connection); `accept-encoding`
 * (the gateway asks for an unencoded body, so that it can read error bodies).
 */
export const FORWARDED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  "accept",
  "accept-language",
  "anthropic-beta",
  "anthropic-version",
  "content-type",
  "idempotency-key",
  "openai-beta",
  "traceparent",
  "tracestate",
  "user-agent",
  "x-client-request-id",
]);
const FORWARDED_PREFIX = "x-stainless-";

// Hop-by-hop headers (RFC 9110 section 7.6.1) are for one connection only.
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]);

/**
 * Response headers the client never gets: hop-by-hop ones, the upstream's cookies (`set-cookie`, a
 * session of the operator's account, must not become the client's), `alt-svc` (which would send the
 * client to the upstream's HTTP/3 endpoint as if it were the gateway's), and `openai-organization`
 * (the name of the organisation the key bills).
 */
const DROPPED_RESPONSE_HEADERS = new Set([...HOP_BY_HOP, "set-cookie", "set-cookie2", "alt-svc", "openai-organization"]);

/**
 * The client's request headers that go upstream (see {@link FORWARDED_REQUEST_HEADERS}), with an empty
 * `authorization` for the key.
 */
export function forwardedRequestHeaders(incoming: IncomingHttpHeaders): Record<string, string | string[]> {
  // `authorization` first, for the key: set before each attempt.
  const headers: Record<string, string | string[]> = { authorization: "" };
  for (const name in incoming) {
    const value = incoming[name];
    if (value !== undefined && (FORWARDED_REQUEST_HEADERS.has(name) || name.startsWith(FORWARDED_PREFIX))) headers[name] = value;
  }
  // Nothing a client asks for in Accept-Encoding: error bodies must be readable (to mask the key).
  headers["accept-encoding"] = "identity";
  return headers;
}

/**
 * The upstream's response headers that go to the client (see {@link DROPPED_RESPONSE_HEADERS}),
 * also without the headers the upstream's `Connection` names, and without `content-length` and
 * `content-encoding` when `rewrittenBody` (the gateway sends a body of its own making).
 */
export function clientResponseHeaders(upstream: IncomingHttpHeaders, rewrittenBody: boolean): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  const connection = upstream.connection;
  // Headers the upstream named in `Connection` are hop-by-hop too; "keep-alive" or "close" name none.
  const listed = connection === undefined || connection === "keep-alive" || connection === "close" ? undefined : new Set(connection.toLowerCase().split(",").map((name) => name.trim()));
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined || DROPPED_RESPONSE_HEADERS.has(name) || listed?.has(name)) continue;
    if (rewrittenBody && (name === "content-length" || name === "content-encoding")) continue;
    headers[name] = value;
  }
  return headers;
}

// A run of characters a key or a masked echo of one is made of: letters, digits, `-`, `_`, and the
// masks providers print in between (`*`, `...`, `…`). A key with other characters is still masked
// where it appears whole.
const WORD = /[\w\-*.…]+/g;
const MASKS = /\*+|\.{2,}|…+/;
/** Visible characters of a key an echo must show before it is masked: fewer say nothing of the key. */
const MIN_ECHO = 8;

/**
 * `text` with every echo of `key` replaced by `hint`: the key itself, and a partly masked echo of it,
 * as OpenAI's 401 has (`Incorrect API key provided: sk-abc1***…***wxyz.`), where every visible piece
 * (between `*`, `...` or `…`) is part of the key and they show at least 8 of its characters.
 * @example
 * ```ts
 * maskKeyEchoes("Incorrect API key provided: sk-abc1****wxyz.", "sk-abc1234567890wxyz", "sk-a…wxyz");
 * // "Incorrect API key provided: sk-a…wxyz."
 * ```
 */
export function maskKeyEchoes(text: string, key: string, hint: string): string {
  if (key === "") return text;
  return text.replaceAll(key, hint).replace(WORD, (word) => {
    // A full stop ends a sentence, not the echo.
    const trimmed = word.endsWith(".") && !word.endsWith("..") ? word.slice(0, -1) : word;
    let visible = 0;
    for (const piece of trimmed.split(MASKS)) {
      if (piece === "") continue;
      if (!key.includes(piece)) return word;
      visible += piece.length;
    }
    return visible >= MIN_ECHO || (visible > 0 && visible === key.length) ? hint + word.slice(trimmed.length) : word;
  });
}
