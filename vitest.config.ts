import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The JSON report is what .ci/run counts from.
    reporters: ["default", ["json", { outputFile: ".vitest-report.json" }]],
  },
});
