import { defineConfig, type Options } from "tsup";

const shared: Options = {
  format: ["esm", "cjs"],
  // The Redis entry's declarations need Node's types; the core is type-checked without them.
  dts: { compilerOptions: { types: ["node"] } },
  sourcemap: true,
  target: "es2022",
};

/** The core's internal property names that the bundle shortens (see the index entry below). */
const MANGLED = /^(levels|absent|top|argmin|argminExcept|setUntil|deadline|earliest|dropped|used|base|out|ready|picker|cursor|count|keyAt|first|runOf|membership|lowest|rotate|waitMs|success|fault|ref|pick|options|changes|scanned|soonest)$/;

export default defineConfig([
  // The core: no Node-only API, for browsers and edge runtimes too.
  {
    ...shared,
    entry: { index: "src/index.ts" },
    platform: "neutral",
    clean: true,
    // Properties of the core's internal objects (layers, min-trees, pickers, execute's host) get
    // short names in the bundle: no user ever sees these objects, and their names are most of what
    // the repeated property reads cost. Only names that nothing public or built-in uses are listed.
    esbuildOptions(options) {
      options.mangleProps = MANGLED;
    },
  },
  // The Redis adapter is Node-only: `platform: "node"` keeps its `node:` imports as written. It
  // uses the core only through types, so the core is never bundled twice.
  {
    ...shared,
    entry: { redis: "src/redis/index.ts" },
    platform: "node",
    target: "node18",
    removeNodeProtocol: false,
    external: ["ioredis", "credential-router"],
    dts: { compilerOptions: { types: ["node"], paths: { "credential-router": ["./src/index.ts"] } } },
  },
  // The OpenTelemetry entry runs everywhere the core does. It uses the core and
  // `@opentelemetry/api` through types only, so the built file imports nothing.
  {
    ...shared,
    entry: { otel: "src/otel/index.ts" },
    platform: "neutral",
    external: ["@opentelemetry/api", "credential-router"],
    dts: { compilerOptions: { types: [], paths: { "credential-router": ["./src/index.ts"] } } },
  },
]);
