/**
 * How the gateway calls the upstream: one pool of kept-alive connections (undici's `Pool`), a time
 * limit on the response headers and on every pause in the body, and error bodies read (bounded) so
 * that `execute` can judge them and the key they may echo is masked before a client sees them.
 */
import type { EventEmitter } from "node:events";
import type { IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import { brotliDecompressSync, constants, gunzipSync, inflateSync } from "node:zlib";
import { Pool } from "undici";
import { maskKeyEchoes } from "./gateway-hygiene.js";

/** How much of an error body the gateway reads, parses and forwards; the rest is dropped. */
export const ERROR_BODY_LIMIT_BYTES = 64 * 1024;

/**
 * The upstream's response headers: undici's object of lower-case names (`all`), and the `get` of
 * fetch's `Headers`, by which `execute` reads them. Without a `get`, `execute` looks a header up in a
 * plain object by comparing every name in lower case, for each header it reads.
 */
export class ResponseHeaders {
  constructor(readonly all: IncomingHttpHeaders) {}

  /**
   * A header's value (several joined by `, `), or `undefined` where fetch's `Headers` says `null`:
   * the core's header reader takes a `null` for an object and pays a thrown and caught error for it,
   * for each header it looks for and does not find, on every response.
   */
  get(name: string): string | undefined {
    const value = this.all[name.toLowerCase()];
    return Array.isArray(value) ? value.join(", ") : value;
  }
}

/**
 * The upstream's answer to one attempt, as `fn` gives it to `execute` (which reads `status`,
 * `headers`, and the parsed `body` of an error).
 */
export type UpstreamAnswer =
  | {
      status: number;
      headers: ResponseHeaders;
      /** A success (status < 400): the body, untouched, to be streamed to the client. */
      body: Readable;
      bytes?: undefined;
    }
  | {
      status: number;
      headers: ResponseHeaders;
      /** An error (status >= 400): the body parsed as JSON, or its text when it is not JSON. */
      body: unknown;
      /** What the client gets: the error body, key echoes masked, at most ERROR_BODY_LIMIT_BYTES. */
      bytes: Uint8Array;
    };

/** One request to the upstream. */
export interface UpstreamRequest {
  method: string;
  /** Path and query, from `/`. */
  path: string;
  /** The request's headers, `authorization` included. */
  headers: Record<string, string | string[]>;
  body: Uint8Array | undefined;
  /** Aborts the call: an AbortSignal, or an EventEmitter that emits `abort` (cheaper to make). */
  signal: AbortSignal | EventEmitter;
  /** The key the request carries, and its hint: an error body's echo of the key becomes the hint. */
  key: string;
  hint: string;
}

/**
 * The answer took longer than the gateway's upstream timeout: a service fault, thrown with status 504
 * so that `execute` judges it as one (the key cools down and the next key is tried).
 */
export class UpstreamTimeoutError extends Error {
  override readonly name = "UpstreamTimeoutError";
  readonly status = 504;
  readonly code = "upstream_timeout";
  constructor(
    /** What the upstream did not send in time. */
    readonly waitingFor: "headers" | "body",
    timeoutMs: number,
  ) {
    super(`The upstream sent no ${waitingFor === "headers" ? "response" : "more of its body"} within ${timeoutMs} ms.`);
  }
}

/** Whether `error` is undici's: the body stalled for longer than the timeout. */
export function isBodyTimeout(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "UND_ERR_BODY_TIMEOUT";
}

/** The upstream at `origin`, through one connection pool. */
export interface Upstream {
  /**
   * Sends one request. Resolves with a success's stream or an error's read body; rejects with an
   * UpstreamTimeoutError (status 504) past the time limit, and with undici's error otherwise.
   */
  send(request: UpstreamRequest): Promise<UpstreamAnswer>;
  /** Ends every connection once the requests under way are done. */
  close(): Promise<void>;
}

/**
 * A pool of connections to `origin` (scheme, host, port).
 * @param timeoutMs How long to wait for the response headers, and for each piece of the body after
 * them; `0` waits for ever.
 */
export function openUpstream(origin: string, timeoutMs: number): Upstream {
  const pool = new Pool(origin);
  // undici's own limits, which its default of 300 s would otherwise apply; 0 turns them off.
  const timeouts = { headersTimeout: timeoutMs, bodyTimeout: timeoutMs };
  return {
    async send({ method, path, headers: requestHeaders, body, signal, key, hint }) {
      let answer;
      try {
        answer = await pool.request({ method: method as "GET", path, headers: requestHeaders, body: body ?? null, signal, ...timeouts });
        const { statusCode: status } = answer;
        const headers = new ResponseHeaders(answer.headers);
        if (status < 400) return { status, headers, body: answer.body };
        return { status, headers, ...(await readErrorBody(answer.body, answer.headers, key, hint)) };
      } catch (error) {
        const code = (error as { code?: unknown } | null)?.code;
        if (code === "UND_ERR_HEADERS_TIMEOUT") throw new UpstreamTimeoutError("headers", timeoutMs);
        if (code === "UND_ERR_BODY_TIMEOUT") throw new UpstreamTimeoutError("body", timeoutMs);
        throw error;
      }
    },
    close: () => pool.close(),
  };
}

// Each decodes a body cut off at the limit as far as it goes, and stops at the same limit.
const inflateOptions = { maxOutputLength: ERROR_BODY_LIMIT_BYTES, finishFlush: constants.Z_SYNC_FLUSH };
const DECODERS: Record<string, (bytes: Uint8Array) => Buffer> = {
  gzip: (bytes) => gunzipSync(bytes, inflateOptions),
  "x-gzip": (bytes) => gunzipSync(bytes, inflateOptions),
  deflate: (bytes) => inflateSync(bytes, inflateOptions),
  br: (bytes) => brotliDecompressSync(bytes, { maxOutputLength: ERROR_BODY_LIMIT_BYTES, finishFlush: constants.BROTLI_OPERATION_FLUSH }),
};

/**
 * An error body: at most ERROR_BODY_LIMIT_BYTES of it read (the rest dropped, which releases the
 * connection), decoded when the upstream encoded it although asked not to, the key's echoes masked,
 * and parsed.
 */
async function readErrorBody(stream: Readable, headers: IncomingHttpHeaders, key: string, hint: string): Promise<{ body: unknown; bytes: Uint8Array }> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    const bytes = chunk as Buffer;
    chunks.push(length + bytes.length > ERROR_BODY_LIMIT_BYTES ? bytes.subarray(0, ERROR_BODY_LIMIT_BYTES - length) : bytes);
    length += bytes.length;
    // Leaving the loop destroys the stream: the connection is closed rather than drained.
    if (length >= ERROR_BODY_LIMIT_BYTES) break;
  }
  let bytes: Uint8Array = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  const encoding = String(headers["content-encoding"] ?? "identity").trim().toLowerCase();
  if (encoding !== "identity" && bytes.length > 0) {
    const decode = DECODERS[encoding];
    try {
      if (decode === undefined) throw new Error(encoding);
      bytes = decode(bytes);
    } catch {
      const text = JSON.stringify({ error: { message: "The upstream's error body is in an encoding the gateway cannot read.", type: "gateway_error", code: "upstream_body_unreadable" } });
      return { body: JSON.parse(text), bytes: Buffer.from(text) };
    }
  }
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  const masked = maskKeyEchoes(text, key, hint);
  if (masked !== text) bytes = Buffer.from(masked);
  let body: unknown = masked;
  try {
    body = JSON.parse(masked);
  } catch {
    // Not JSON (an HTML error page, plain text, a body cut at the limit): its text.
  }
  return { body, bytes };
}
