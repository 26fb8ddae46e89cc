import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../server/config.js';
import { BUILD_STAMP, buildFreshness } from './build-freshness.js';

/**
 * What `npm start` runs before the server: first the configuration, parsed by the server's own
 * server/config.ts, so that `FLEET_SHARDS=abc` or `PORT=99999` is refused in a second, before any
 * compiling; then `tsc` only when the sources changed since the last build (scripts/build-freshness.ts).
 * `npm run dev` skips the build altogether (tsx).
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function main(): number {
  try {
    loadConfig(process.env, { stdoutIsTTY: process.stdout.isTTY === true });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    return 2;
  }
  const freshness = buildFreshness(root);
  if (freshness.fresh) return 0;
  console.error(`npm start: building (${freshness.reason}); npm run dev starts from the sources without building`);
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const build = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) return 1;
  mkdirSync(join(root, 'dist'), { recursive: true });
  writeFileSync(join(root, BUILD_STAMP), `${new Date().toISOString()}\n`);
  return 0;
}

process.exitCode = main();
