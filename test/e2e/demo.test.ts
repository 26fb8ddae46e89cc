import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

it('npm run demo runs end to end, and the commands it suggests reach its own server, not port 3000', async () => {
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/demo.ts'), '--no-wait'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }, timeout: 90_000 }, (error, out) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: out });
    });
  });
  expect(code).toBe(0);
  const api = /HTTP (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
  expect(api).toBeDefined();
  expect(api).not.toBe('http://127.0.0.1:3000');
  const suggested = [...stdout.matchAll(/the same as: (npm run trace -- bk_\S+[^)\n]*)/g)].map((match) => match[1]!);
  expect(suggested).toHaveLength(2);
  for (const command of suggested) expect(command).toContain(`--api ${api}`);
  expect(suggested[1]).toMatch(/--open$/);
}, 120_000);
