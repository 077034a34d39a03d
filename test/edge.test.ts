/**
 * The built ESM bundle inside an edge runtime: `@edge-runtime/vm` gives a V8 context with the
 * web-standard globals of Vercel Edge (and roughly Cloudflare Workers) and none of Node's: no
 * `process`, no `require`, no `Buffer`, and no `eval` or `new Function`.
 *
 * The VM evaluates scripts, not modules (Node's `vm.SourceTextModule` needs a flag), so the bundle's
 * one closing `export { … }` statement is rewritten into an assignment to a global. That is the only
 * change: the test checks that the bundle has no other `export` and no `import`, so everything else
 * runs exactly as published. The shared round is TypeScript; it is transpiled (types stripped, no
 * imports left) with the TypeScript compiler and evaluated in the VM the same way.
 */
import { readFileSync } from "node:fs";
import { EdgeVM } from "@edge-runtime/vm";
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";
import { EXPECTED_OTEL_ROUND } from "./helpers/otel-round.js";
import { EXPECTED_ROUND, type RoundTranscript } from "./helpers/round.js";

const packageJson = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  exports: Record<"." | "./otel", { import: { default: string } }>;
};
/** What an edge bundler picks for `import "credential-router"`: the `import` condition of the exports map. */
const bundleUrl = new URL(`../${packageJson.exports["."].import.default}`, import.meta.url);
/** The same for `import "credential-router/otel"`. */
const otelBundleUrl = new URL(`../${packageJson.exports["./otel"].import.default}`, import.meta.url);

/** The bundle as a script: its closing `export { a, b as c };` becomes `globalThis.<name> = { a, c: b };`. */
function bundleAsScript(code: string, globalName: string): string {
  const exportStatement = /^export\s*\{([^}]*)\};?[ \t]*$/m;
  const match = exportStatement.exec(code);
  if (match === null) throw new Error("dist/index.js has no closing export statement");
  const rest = code.slice(0, match.index) + code.slice(match.index + match[0].length);
  if (/^\s*(?:export|import)\b/m.test(rest)) throw new Error("dist/index.js has another export or import statement");
  const members = match[1]!
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "")
    .map((name) => {
      const [local, exported = local] = name.split(/\s+as\s+/);
      return `${JSON.stringify(exported)}: ${local}`;
    });
  return `${code.slice(0, match.index)}globalThis.${globalName} = { ${members.join(", ")} };${code.slice(match.index + match[0].length)}`;
}

/** A shared round (`./helpers/<file>`) as a script that leaves its exports on a global. */
function roundAsScript(globalName: string, file = "round.ts"): string {
  const source = readFileSync(new URL(`./helpers/${file}`, import.meta.url), "utf8");
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
  });
  if (/\brequire\(/.test(outputText)) throw new Error(`test/helpers/${file} must not import anything at run time`);
  return `(function (exports) {\n${outputText}\n})(globalThis.${globalName} = {});`;
}

describe("edge runtime (the ESM build in @edge-runtime/vm)", () => {
  let vm: EdgeVM;
  beforeAll(() => {
    vm = new EdgeVM();
    vm.evaluate(bundleAsScript(readFileSync(bundleUrl, "utf8"), "credentialRouter"));
    vm.evaluate(roundAsScript("round"));
  });

  it("loads the file the exports map names for import", () => {
    expect(bundleUrl.pathname).toMatch(/\/dist\/index\.js$/);
  });

  it("runs where Node's globals do not exist", () => {
    expect(vm.evaluate("typeof process")).toBe("undefined");
    expect(vm.evaluate("typeof require")).toBe("undefined");
    expect(vm.evaluate("typeof module")).toBe("undefined");
    expect(vm.evaluate("typeof Buffer")).toBe("undefined");
    expect(vm.evaluate("typeof EdgeRuntime")).toBe("string");
    // Code generation is off in the VM: the bundle does not need eval or new Function.
    expect(() => vm.evaluate("new Function('return 1')")).toThrow();
  });

  it("exports the public API", () => {
    expect(vm.evaluate("Object.keys(globalThis.credentialRouter).sort()")).toEqual(
      expect.arrayContaining(["CredentialRouter", "NoKeyAvailableError", "isNoKeyAvailableError", "parseRetryAfter", "fingerprint"]),
    );
  });

  it("uses the runtime's own clock when none is given", () => {
    const state = vm.evaluate<string>(`(() => {
      const router = new credentialRouter.CredentialRouter(["sk-edge-one-000000001"], { cooldownMs: 60000 });
      router.markError("sk-edge-one-000000001");
      return JSON.stringify(router.stateOf("sk-edge-one-000000001"));
    })()`);
    const { status, remainingMs } = JSON.parse(state) as { status: string; remainingMs: number };
    expect(status).toBe("cooldown");
    expect(remainingMs).toBeGreaterThan(59_000);
    expect(remainingMs).toBeLessThanOrEqual(60_000);
  });

  describe("the shared round", () => {
    let transcript: RoundTranscript;
    beforeAll(async () => {
      // JSON carries the transcript out of the VM's realm as plain data.
      const json = await vm.evaluate<Promise<string>>("round.runRound(credentialRouter).then(JSON.stringify)");
      transcript = JSON.parse(json) as RoundTranscript;
    });
    it.each(Object.keys(EXPECTED_ROUND) as (keyof RoundTranscript)[])("%s", (section) => {
      expect(transcript[section]).toEqual(EXPECTED_ROUND[section]);
    });
  });
});

describe("edge runtime: the OpenTelemetry entry (its ESM build in @edge-runtime/vm)", () => {
  let vm: EdgeVM;
  beforeAll(() => {
    vm = new EdgeVM();
    vm.evaluate(bundleAsScript(readFileSync(bundleUrl, "utf8"), "credentialRouter"));
    vm.evaluate(bundleAsScript(readFileSync(otelBundleUrl, "utf8"), "credentialRouterOtel"));
    vm.evaluate(roundAsScript("otelRound", "otel-round.ts"));
  });

  it("loads the file the exports map names for import", () => {
    expect(otelBundleUrl.pathname).toMatch(/\/dist\/otel\.js$/);
    expect(vm.evaluate("Object.keys(globalThis.credentialRouterOtel)")).toEqual(["instrument"]);
  });

  it("runs the shared round where Node's globals do not exist", () => {
    expect(vm.evaluate("typeof process")).toBe("undefined");
    const json = vm.evaluate<string>("JSON.stringify(otelRound.runOtelRound(credentialRouter, credentialRouterOtel))");
    expect(JSON.parse(json)).toEqual(EXPECTED_OTEL_ROUND);
  });
});

