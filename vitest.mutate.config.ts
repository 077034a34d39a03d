import { configDefaults, defineConfig } from "vitest/config";

/**
 * The test run `npm run mutate` (Stryker) repeats for every mutant of the core (`src/` outside
 * `src/redis/` and `src/otel/`): only the node tests that exercise the core, without the type-check,
 * the browser project, the Redis adapter's and OpenTelemetry's tests, the gateway example or the
 * built `dist`, so that each run is as short as it can be.
 */
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: [
      ...configDefaults.exclude,
      "test/browser/**",
      // Redis: the adapter is not mutated, and most files start a server.
      "test/redis*.test.ts",
      // OpenTelemetry: instrument() is not mutated either.
      "test/otel.test.ts",
      // The example gateway and its mock upstream (examples/), some over real sockets.
      "test/gateway*.test.ts",
      "test/mock-upstream.test.ts",
      // These load the built dist/, which Stryker does not mutate.
      "test/dist-*.test.ts",
      "test/edge.test.ts",
      // Type-checks the README's snippets: slow, and no mutant changes a type.
      "test/readme.test.ts",
    ],
    typecheck: { enabled: false },
    // Instrumented code runs several times slower; Stryker has its own timeout for mutants that loop.
    testTimeout: 30_000,
  },
});
