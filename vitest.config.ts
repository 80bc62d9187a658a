import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The appliance boot tests (6+ minutes under TCG) run with `make test-image`, not `make test`.
    exclude: process.env.VIPD_TEST_IMAGE ? [] : ['test/integration/image/**'],
    // Integration tests share one machine's namespaces and qemu; run files one at a time.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
