import { defineConfig, type Options } from "tsup";

const shared: Options = {
  format: ["esm", "cjs"],
  // The Redis entry's declarations need Node's types; the core is type-checked without them.
  dts: { compilerOptions: { types: ["node"] } },
  sourcemap: true,
  target: "es2022",
};

export default defineConfig([
  // The core: no Node-only API, for browsers and edge runtimes too.
  { ...shared, entry: { index: "src/index.ts" }, platform: "neutral", clean: true },
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
]);
