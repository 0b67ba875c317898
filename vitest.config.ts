import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/globalSetup.ts"],
    testTimeout: 120_000,
    // A deployed consumer runs with a heap cap; so do the tests, which makes
    // the memory test measure the consumer's working set rather than how long
    // V8 lets garbage accumulate on a machine with plenty of memory.
    execArgv: ["--max-old-space-size=192"],
    hookTimeout: 300_000
  }
})
