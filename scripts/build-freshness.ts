import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Whether `dist/` still matches the sources, so that `npm start` compiles only after a change (a full
 * `tsc` is most of a start's time). Compares modification times: the newest source file or folder (a
 * folder's time moves when a file in it is added, renamed or deleted) against the stamp the last
 * successful build left. Cheap and conservative: a touched file rebuilds although nothing changed.
 */

/** The folders tsconfig.build.json compiles, and the files that change what it emits. */
export const BUILD_INPUTS = {
  folders: ['actors', 'runtime', 'adapters', 'api', 'persistence', 'traces', 'server', 'simulator', 'scripts'],
  files: ['tsconfig.json', 'tsconfig.build.json'],
} as const;

export const BUILD_STAMP = join('dist', '.build-stamp');

export type Freshness = { readonly fresh: true } | { readonly fresh: false; readonly reason: string };

export function buildFreshness(root: string, inputs: { readonly folders: readonly string[]; readonly files: readonly string[] } = BUILD_INPUTS): Freshness {
  const stamp = join(root, BUILD_STAMP);
  if (!existsSync(stamp)) return { fresh: false, reason: 'no build yet' };
  const builtAt = statSync(stamp).mtimeMs;
  for (const file of inputs.files) {
    const path = join(root, file);
    if (existsSync(path) && statSync(path).mtimeMs > builtAt) return { fresh: false, reason: `${file} changed` };
  }
  for (const folder of inputs.folders) {
    const changed = newerThan(join(root, folder), builtAt);
    if (changed !== null) return { fresh: false, reason: `${changed.slice(root.length + 1)} changed` };
  }
  return { fresh: true };
}

/** The first source path (a .ts file or a folder) modified after `time`, or null. */
function newerThan(folder: string, time: number): string | null {
  if (!existsSync(folder)) return null;
  if (statSync(folder).mtimeMs > time) return folder;
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) {
      const changed = newerThan(path, time);
      if (changed !== null) return changed;
    } else if (entry.name.endsWith('.ts') && statSync(path).mtimeMs > time) {
      return path;
    }
  }
  return null;
}
