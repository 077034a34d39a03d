/**
 * Every ```ts snippet in the README is type-checked against the sources, as a module of its own, so
 * the README cannot drift from the API.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const readme = readFileSync(join(root, "README.md"), "utf8");
const snippets = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match, index) => ({
  name: join(root, `readme-snippet-${index + 1}.ts`),
  line: readme.slice(0, match.index).split("\n").length + 1,
  code: match[1]!,
}));

const options: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
  types: ["node"],
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  baseUrl: root,
  paths: { "credential-router": ["src/index.ts"], "credential-router/redis": ["src/redis/index.ts"], "credential-router/otel": ["src/otel/index.ts"] },
};

function diagnosticsOf(snippet: (typeof snippets)[number]): string[] {
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.readFile = (file) => (file === snippet.name ? snippet.code : readFile(file));
  host.fileExists = (file) => file === snippet.name || fileExists(file);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (file, language) =>
    file === snippet.name ? ts.createSourceFile(file, snippet.code, language, true) : getSourceFile(file, language);
  const program = ts.createProgram([snippet.name], options, host);
  return ts
    .getPreEmitDiagnostics(program, program.getSourceFile(snippet.name))
    .map((diagnostic) => {
      const where = diagnostic.file && diagnostic.start !== undefined ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start) : undefined;
      return `README line ${snippet.line + (where?.line ?? 0)}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")}`;
    });
}

describe("README", () => {
  it("has TypeScript snippets to check", () => {
    expect(snippets.length).toBeGreaterThanOrEqual(8);
  });

  it.each(snippets.map((snippet) => [snippet.line, snippet] as const))("the snippet at line %i type-checks", (_, snippet) => {
    expect(diagnosticsOf(snippet)).toEqual([]);
  }, 30_000);
});
