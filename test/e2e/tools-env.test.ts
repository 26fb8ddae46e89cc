import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../../api/auth.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A tool as `npm run <tool>` starts it (tsx), with only the given environment. */
function runTool(script: string, args: readonly string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, script), ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the tools read PORT, HOST and MQTT_PORT as npm start does', () => {
  it('npm run sim defaults to the API and embedded broker those variables place', async () => {
    const run = await runTool('scripts/sim.ts', ['--help'], { PORT: '4100', HOST: 'localhost', MQTT_PORT: '1999' });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('--api URL                 HTTP API (default http://localhost:4100)');
    expect(run.stdout).toContain('--mqtt-url URL            MQTT broker (default mqtt://127.0.0.1:1999)');
  }, 30_000);

  it('npm run token signs with FLEET_JWT_SECRET, and refuses a bad PORT as the server does (exit 2, the variable named)', async () => {
    const secret = 'a-production-secret-of-some-length';
    const signed = await runTool('scripts/token.ts', ['--sub', 'alice', '--role', 'customer'], { FLEET_JWT_SECRET: secret });
    expect(signed.code).toBe(0);
    expect(createTokenVerifier(secret)(signed.stdout.trim())).toEqual({ ok: true, caller: { id: 'alice', role: 'customer' }, expiresAtMs: expect.any(Number) });
    const refused = await runTool('scripts/token.ts', ['--sub', 'alice', '--role', 'customer'], { PORT: 'three-thousand' });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^Invalid configuration: PORT .*"three-thousand"/);
    expect(refused.stdout).toBe('');
  }, 30_000);
});
