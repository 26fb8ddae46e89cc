import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];

/** `[text](target)` links that are not URLs or in-page anchors, without their `#fragment`. */
function localLinks(markdown: string): string[] {
  return [...markdown.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((match) => match[1]!)
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith('#'))
    .map((target) => target.split('#', 1)[0]!);
}

describe('README.md and docs/', () => {
  it.each(DOCS)('%s links only to files that exist in the repository', (file) => {
    const broken: string[] = [];
    for (const target of localLinks(readFileSync(join(ROOT, file), 'utf8'))) {
      const path = resolve(ROOT, dirname(file), target);
      if (relative(ROOT, path).startsWith('..') || !existsSync(path)) broken.push(target);
    }
    expect(broken).toEqual([]);
  });

  it('the README points to the OpenAPI and AsyncAPI documents a server serves', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('`/openapi.json`');
    expect(readme).toContain('`/asyncapi.json`');
  });
});
