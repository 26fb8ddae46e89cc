import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

/**
 * `npm ci` warns EBADENGINE for every locked package whose `engines.node` does not cover the running
 * Node. The project's own `engines` promises the versions that install cleanly, so every Node it allows
 * must be allowed by every package in the lock (semver's `subset`: each version of ours is one of theirs).
 */
const semver = createRequire(import.meta.url)('semver') as { subset(sub: string, dom: string): boolean; satisfies(version: string, range: string): boolean };

const root = new URL('../..', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(new URL('package-lock.json', root), 'utf8')) as {
  packages: Record<string, { version?: string; engines?: { node?: string } | string[]; optional?: boolean }>;
};

describe('the Node versions package.json promises install cleanly', () => {
  it('every locked package accepts every Node version the project declares (no EBADENGINE)', () => {
    const refusing = Object.entries(lock.packages)
      .filter(([path]) => path !== '')
      .flatMap(([path, entry]) => {
        const range = !Array.isArray(entry.engines) ? entry.engines?.node : undefined;
        return range !== undefined && !semver.subset(manifest.engines.node, range) ? [`${path.replace(/^.*node_modules\//, '')}@${entry.version} wants node ${range}`] : [];
      });
    expect(refusing).toEqual([]);
  });

  it('this machine, where CI runs, is on the oldest line the project supports (Node 20)', () => {
    expect(semver.satisfies(process.versions.node, manifest.engines.node)).toBe(true);
    expect(process.versions.node.split('.')[0]).toBe('20');
  });
});
