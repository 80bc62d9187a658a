#!/usr/bin/env node
// Runs the ARP benchmark: compiles bench/arp/bench.ts and the namespace driver with the
// project's TypeScript into a temporary directory (a node_modules link there resolves the
// project's packages), then runs it as root. Its last stdout line is `BENCH arp ...`.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'vipd-arp-bench-'));
const cleanup = () => rmSync(out, { recursive: true, force: true });
try {
  symlinkSync(join(repo, 'node_modules'), join(out, 'node_modules'));
  const tsc = join(repo, 'node_modules/typescript/bin/tsc');
  const flags = ['--outDir', out, '--rootDir', repo, '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--skipLibCheck', '--strict'];
  execFileSync(process.execPath, [tsc, ...flags, join(repo, 'bench/arp/bench.ts'), join(repo, 'test/integration/arp/driver.ts')], { stdio: 'inherit', timeout: 120_000 });
} catch (e) {
  cleanup();
  throw e;
}
const child = spawn(process.execPath, [join(out, 'bench/arp/bench.js')], {
  stdio: 'inherit',
  env: { ...process.env, VIPD_ARP_DRIVER: join(out, 'test/integration/arp/driver.js') },
});
// The whole benchmark is bounded: a hung run is killed and fails.
const limit = setTimeout(() => child.kill('SIGTERM'), 240_000);
child.on('exit', (code, signal) => {
  clearTimeout(limit);
  cleanup();
  process.exit(code ?? (signal ? 1 : 0));
});
