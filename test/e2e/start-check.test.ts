import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BUILD_STAMP, buildFreshness } from '../../scripts/build-freshness.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

describe('npm start checks the configuration before it builds', () => {
  it.each([
    ['FLEET_SHARDS', 'abc'],
    ['PORT', '99999'],
  ])('%s=%s is refused at once (exit 2, the variable named), before any compiling', async (variable, value) => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/start-check.ts')], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', [variable]: value } }, (error, out, err) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: out, stderr: err });
      });
    });
    expect(code).toBe(2);
    expect(stderr.trim()).toMatch(new RegExp(`^Invalid configuration: ${variable} .*"${value}"`));
    expect(stderr).not.toContain('building');
    expect(stdout).toBe('');
  }, 30_000);

  it('package.json runs that check before the server, and the README names npm run dev', async () => {
    const { readFileSync } = await import('node:fs');
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.start).toBe('tsx scripts/start-check.ts && node dist/server/main.js');
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain('npm run dev');
  });
});

describe('npm start builds only when the sources changed', () => {
  const at = (seconds: number) => new Date(1_700_000_000_000 + seconds * 1000);
  function project(): string {
    const root = mkdtempSync(join(tmpdir(), 'build-freshness-'));
    mkdirSync(join(root, 'api', 'routes'), { recursive: true });
    mkdirSync(join(root, 'dist'));
    writeFileSync(join(root, 'tsconfig.json'), '{}');
    writeFileSync(join(root, 'api', 'app.ts'), '');
    writeFileSync(join(root, 'api', 'routes', 'bookings.ts'), '');
    for (const path of ['tsconfig.json', 'api/app.ts', 'api/routes/bookings.ts', 'api/routes', 'api']) utimesSync(join(root, path), at(0), at(0));
    return root;
  }
  const inputs = { folders: ['api'], files: ['tsconfig.json'] };

  it('builds the first time, not again while nothing changed, and again after an edit, an added or a deleted file', () => {
    const root = project();
    try {
      expect(buildFreshness(root, inputs)).toEqual({ fresh: false, reason: 'no build yet' });
      writeFileSync(join(root, BUILD_STAMP), '');
      utimesSync(join(root, BUILD_STAMP), at(10), at(10));
      expect(buildFreshness(root, inputs)).toEqual({ fresh: true });

      utimesSync(join(root, 'api', 'routes', 'bookings.ts'), at(20), at(20));
      expect(buildFreshness(root, inputs)).toEqual({ fresh: false, reason: `${join('api', 'routes', 'bookings.ts')} changed` });

      utimesSync(join(root, BUILD_STAMP), at(30), at(30));
      rmSync(join(root, 'api', 'app.ts'));
      utimesSync(join(root, 'api', 'routes'), at(0), at(0));
      expect(buildFreshness(root, inputs)).toEqual({ fresh: false, reason: 'api changed' });

      utimesSync(join(root, BUILD_STAMP), at(50), at(50));
      utimesSync(join(root, 'api'), at(0), at(0));
      utimesSync(join(root, 'tsconfig.json'), at(60), at(60));
      expect(buildFreshness(root, inputs)).toEqual({ fresh: false, reason: 'tsconfig.json changed' });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
