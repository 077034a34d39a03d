import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ERROR_BODY_LIMIT_BYTES, openUpstream, UpstreamTimeoutError, type Upstream, type UpstreamAnswer } from "../examples/gateway-upstream.js";
import { listen } from "../examples/program.js";

// Waits for an event are bounded by the test timeout, which a loaded machine never comes near.
vi.setConfig({ testTimeout: 30_000 });

const KEY = "sk-test-AAAA1111bbbb2222cccc";
const HINT = "sk-t…cccc";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

/** A server answering with `handle`, and an upstream client of it with `timeoutMs`. */
async function start(handle: (request: IncomingMessage, response: ServerResponse) => void, timeoutMs = 60_000): Promise<Upstream> {
  const server = createServer((request, response) => {
    request.resume();
    handle(request, response);
  });
  const address = await listen(server, 0, "127.0.0.1");
  const upstream = openUpstream(`http://127.0.0.1:${address.port}`, timeoutMs);
  cleanups.push(async () => {
    server.closeAllConnections();
    await Promise.all([upstream.close(), new Promise<void>((resolve) => server.close(() => resolve()))]);
  });
  return upstream;
}

function send(upstream: Upstream, signal = new AbortController().signal): Promise<UpstreamAnswer> {
  return upstream.send({ method: "POST", path: "/v1/chat/completions", headers: { authorization: `Bearer ${KEY}` }, body: new TextEncoder().encode("{}"), signal, key: KEY, hint: HINT });
}

const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);

describe("gateway upstream: answers", () => {
  it("gives a success's body as the untouched stream, headers as sent", async () => {
    const compressed = gzipSync("{\"ok\":true}");
    const upstream = await start((_request, response) => {
      response.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip", "content-length": compressed.length });
      response.end(compressed);
    });
    const answer = await send(upstream);
    expect(answer.status).toBe(200);
    expect(answer.bytes).toBeUndefined();
    expect(answer.headers.all).toMatchObject({ "content-encoding": "gzip", "content-length": String(compressed.length) });
    const chunks: Buffer[] = [];
    for await (const chunk of answer.body as AsyncIterable<Buffer>) chunks.push(chunk);
    expect(Buffer.concat(chunks)).toEqual(compressed);
  });

  it("reads an error body: parsed JSON for execute, the same bytes for the client", async () => {
    const body = JSON.stringify({ error: { message: "Rate limit reached.", code: "rate_limit_exceeded" } });
    const upstream = await start((_request, response) => {
      response.writeHead(429, { "content-type": "application/json", "retry-after": "2", "x-several": ["a", "b"] });
      response.end(body);
    });
    const answer = await send(upstream);
    expect(answer.status).toBe(429);
    // What execute reads a wait hint by, as from fetch's Headers.
    expect(answer.headers.get("Retry-After")).toBe("2");
    expect(answer.headers.get("x-missing")).toBeUndefined();
    expect(answer.headers.get("x-several")).toBe("a, b");
    expect(answer.body).toEqual(JSON.parse(body));
    expect(text(answer.bytes)).toBe(body);
  });

  it("gives the text of an error body that is not JSON", async () => {
    const upstream = await start((_request, response) => {
      response.writeHead(502, { "content-type": "text/html" });
      response.end("<html>Bad gateway</html>");
    });
    const answer = await send(upstream);
    expect(answer.body).toBe("<html>Bad gateway</html>");
  });

  it("masks the key in an error body, for execute and for the client", async () => {
    const upstream = await start((_request, response) => {
      response.writeHead(401, { "content-type": "application/json" });
      response.end(JSON.stringify({ error: { message: `Incorrect API key provided: ${KEY}.` } }));
    });
    const answer = await send(upstream);
    expect(answer.body).toEqual({ error: { message: `Incorrect API key provided: ${HINT}.` } });
    expect(text(answer.bytes)).toBe(JSON.stringify(answer.body));
  });

  it("reads at most 64 KiB of an error body, masked, and lets the rest go", async () => {
    let upstreamResponse: ServerResponse | undefined;
    const upstream = await start((_request, response) => {
      upstreamResponse = response;
      response.writeHead(500, { "content-type": "text/plain" });
      // The key first, then far more than the limit, in pieces, never finished.
      response.write(`${KEY} `);
      const piece = "x".repeat(16 * 1024);
      for (let index = 0; index < 16; index++) response.write(piece);
    });
    const answer = await send(upstream);
    expect(answer.bytes!.length).toBeLessThanOrEqual(ERROR_BODY_LIMIT_BYTES);
    expect(answer.bytes!.length).toBeGreaterThan(ERROR_BODY_LIMIT_BYTES - KEY.length);
    expect(text(answer.bytes).startsWith(`${HINT} xxx`)).toBe(true);
    expect(text(answer.bytes)).not.toContain(KEY);
    // The connection is closed, not left waiting for the rest: the upstream sees its client go.
    await new Promise<void>((resolve) => (upstreamResponse!.destroyed ? resolve() : upstreamResponse!.once("close", resolve)));
  });

  it.each([
    ["gzip", gzipSync],
    ["br", brotliCompressSync],
  ] as const)("decodes an error body the upstream sent %s-encoded although asked not to, and masks it", async (encoding, encode) => {
    const upstream = await start((request, response) => {
      expect(request.headers["accept-encoding"]).toBeUndefined();
      response.writeHead(401, { "content-type": "application/json", "content-encoding": encoding });
      response.end(encode(JSON.stringify({ error: { message: `bad key ${KEY}` } })));
    });
    const answer = await send(upstream);
    expect(answer.body).toEqual({ error: { message: `bad key ${HINT}` } });
    expect(text(answer.bytes)).toBe(JSON.stringify(answer.body));
  });

  it("answers with a body of its own for an error body in an encoding it cannot read", async () => {
    const upstream = await start((_request, response) => {
      response.writeHead(401, { "content-type": "application/json", "content-encoding": "zstd" });
      response.end(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]));
    });
    const answer = await send(upstream);
    expect(answer.body).toMatchObject({ error: { code: "upstream_body_unreadable" } });
    expect(JSON.parse(text(answer.bytes))).toEqual(answer.body);
  });
});

describe("gateway upstream: time limits", () => {
  it("throws a 504 UpstreamTimeoutError when no headers come within the limit", async () => {
    const upstream = await start(() => {}, 50);
    const error = await send(upstream).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UpstreamTimeoutError);
    expect(error).toMatchObject({ status: 504, code: "upstream_timeout", waitingFor: "headers", message: "The upstream sent no response within 50 ms." });
  });

  it("throws a 504 UpstreamTimeoutError when an error body stalls for longer than the limit", async () => {
    const upstream = await start((_request, response) => {
      response.writeHead(500, { "content-type": "application/json" });
      response.write('{"error":');
    }, 50);
    // A loaded machine might time out the headers first; either way the answer is a 504.
    const error = await send(upstream).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UpstreamTimeoutError);
    expect(error).toMatchObject({ status: 504 });
  });

  it("stops at once when the signal aborts, with undici's abort error (no status)", async () => {
    const upstream = await start(() => {});
    const controller = new AbortController();
    const pending = send(upstream, controller.signal).catch((caught: unknown) => caught);
    controller.abort(new Error("client gone"));
    const error = await pending;
    expect(error).not.toBeInstanceOf(UpstreamTimeoutError);
    expect((error as { status?: unknown }).status).toBeUndefined();
  });
});
