import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const SOURCE_FOLDERS = ['actors', 'adapters', 'api', 'persistence', 'runtime', 'server', 'traces'];
/** Data files the sources import (`with { type: 'json' }`): esbuild, not bundling, leaves them where they are. */
const DATA_FILES = ['docs/asyncapi.json'];

/**
 * The server as plain JavaScript, for the many restarts of a chaos run: under tsx every restart (and
 * every shard worker) compiles TypeScript again, which costs seconds a kill on a loaded 2-core box;
 * `tsc` (npm run build) costs 30 s once. esbuild only strips the types, file by file, in about a
 * second; type checking stays the job of `npm run typecheck`. The output lives inside the repository
 * so that its imports find node_modules. Returns the path of the entry point (server/main.js).
 */
export async function buildServer(outDir = join(REPO_ROOT, '.chaos', 'dist')): Promise<string> {
  const entryPoints = SOURCE_FOLDERS.flatMap((folder) =>
    (readdirSync(join(REPO_ROOT, folder), { recursive: true }) as string[])
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
      .map((file) => join(REPO_ROOT, folder, file)),
  );
  await build({ entryPoints, outdir: outDir, outbase: REPO_ROOT, format: 'esm', platform: 'node', target: 'node20.19', bundle: false, logLevel: 'error' });
  for (const file of DATA_FILES) cpSync(join(REPO_ROOT, file), join(outDir, file));
  return join(outDir, 'server', 'main.js');
}
