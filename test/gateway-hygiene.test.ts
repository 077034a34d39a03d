import { describe, expect, it } from "vitest";
import { clientResponseHeaders, FORWARDED_REQUEST_HEADERS, forwardedRequestHeaders, maskKeyEchoes } from "../examples/gateway-hygiene.js";

const KEY = "sk-proj-AbCdEf0123456789GhIjKlMnOpQrStUvWxYz";
const HINT = "sk-p…WxYz";

describe("gateway hygiene: request headers", () => {
  it("keeps only the allow-list and the SDKs' x-stainless-* headers, and asks for an unencoded body", () => {
    const forwarded = forwardedRequestHeaders({
      "content-type": "application/json",
      "x-stainless-os": "Linux",
      "x-stainless-helper-method": "stream",
      authorization: "Bearer client-token",
      cookie: "a=b",
      "x-api-key": "client-key",
      "openai-organization": "org-x",
      "openai-project": "proj-x",
      "anthropic-api-key": "client-key",
      "accept-encoding": "gzip, br",
      host: "gateway.example",
      "content-length": "2",
      connection: "keep-alive",
      "transfer-encoding": "chunked",
    });
    expect(forwarded).toEqual({
      // Empty, for the key.
      authorization: "",
      "content-type": "application/json",
      "x-stainless-os": "Linux",
      "x-stainless-helper-method": "stream",
      "accept-encoding": "identity",
    });
  });

  it("lets through none of the headers that carry a credential or pick an account", () => {
    for (const name of ["authorization", "cookie", "x-api-key", "api-key", "anthropic-api-key", "openai-organization", "openai-project", "x-goog-api-key", "proxy-authorization"]) {
      expect(FORWARDED_REQUEST_HEADERS.has(name)).toBe(false);
    }
  });
});

describe("gateway hygiene: response headers", () => {
  it("drops cookies, alt-svc, the organisation and hop-by-hop headers, and keeps the rest", () => {
    const headers = clientResponseHeaders(
      {
        "content-type": "application/json",
        "content-length": "42",
        "x-request-id": "req_1",
        "x-ratelimit-remaining-requests": "9",
        "set-cookie": ["a=b", "c=d"],
        "alt-svc": 'h3=":443"',
        "openai-organization": "operator-org",
        connection: "keep-alive, x-private",
        "keep-alive": "timeout=5",
        "x-private": "for this hop",
        "transfer-encoding": "chunked",
      },
      false,
    );
    expect(headers).toEqual({ "content-type": "application/json", "content-length": "42", "x-request-id": "req_1", "x-ratelimit-remaining-requests": "9" });
  });

  it("leaves out the length and encoding of a body the gateway rewrote", () => {
    expect(clientResponseHeaders({ "content-type": "application/json", "content-length": "42", "content-encoding": "gzip" }, true)).toEqual({ "content-type": "application/json" });
  });
});

describe("gateway hygiene: key echoes", () => {
  it.each([
    ["the whole key", `Incorrect API key provided: ${KEY}.`, `Incorrect API key provided: ${HINT}.`],
    ["OpenAI's masked echo", `Incorrect API key provided: ${KEY.slice(0, 7)}${"*".repeat(KEY.length - 11)}${KEY.slice(-4)}. You can find your API key at https://platform.openai.com/account/api-keys.`, `Incorrect API key provided: ${HINT}. You can find your API key at https://platform.openai.com/account/api-keys.`],
    ["an ellipsis echo", `key sk-proj-AbC...WxYz is invalid`, `key ${HINT} is invalid`],
    ["a Unicode ellipsis echo", `key "sk-proj-AbC…UvWxYz" is invalid`, `key "${HINT}" is invalid`],
    ["a prefix of the key", `{"key":"${KEY.slice(0, 20)}"}`, `{"key":"${HINT}"}`],
    ["the key twice in JSON", JSON.stringify({ error: { message: `bad key ${KEY}`, param: KEY } }), JSON.stringify({ error: { message: `bad key ${HINT}`, param: HINT } })],
  ])("masks %s", (_name, text, masked) => {
    expect(maskKeyEchoes(text, KEY, HINT)).toBe(masked);
  });

  it.each([
    ["text with no part of the key", "Rate limit reached for requests. Please try again in 1.2s."],
    ["a short piece that happens to be in the key", "Use sk-proj keys or 0123 as the org."],
    ["another key's masked echo", `Incorrect API key provided: sk-proj-ZZZ****************0000.`],
    ["a URL", "See https://platform.openai.com/account/api-keys."],
  ])("leaves alone %s", (_name, text) => {
    expect(maskKeyEchoes(text, KEY, HINT)).toBe(text);
  });

  it("masks a key made of characters outside the word set where it appears whole", () => {
    const key = "abc+def/ghi=jkl+mno/pqr=";
    expect(maskKeyEchoes(`bad key: ${key}!`, key, "abc+…qr=")).toBe("bad key: abc+…qr=!");
  });
});
