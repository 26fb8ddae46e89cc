import { defineConfig } from 'vitest/config';

// Two cores: two test files at a time. Integration tests start their own brokers on free ports,
// so files never share state.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // A skipped test is not a passing one: CI fails on .only and the summary counts skips apart.
    allowOnly: false,
  },
});
