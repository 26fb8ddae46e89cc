import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../actors/contract/tokens.js';
import { DEV_JWT_SECRET } from '../../actors/contract/device-secrets.js';
import { freePort } from '../helpers/free-port.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The README's walkthrough ("A first booking, by hand") runs as written: its third-terminal block is
 * scripts/readme-walkthrough.sh line by line, and that script runs here against what the first two
 * terminals start (the server with FLEET_SEED=20, `npm run sim -- vehicle demo-0001`).
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const MARKER = '<!-- walkthrough: scripts/readme-walkthrough.sh -->';
const SCRIPT_MARKER = '# --- README walkthrough ---\n';

function readmeBlock(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const after = readme.slice(readme.indexOf(MARKER) + MARKER.length);
  const match = /^\s*```sh\n([\s\S]*?)```\n/.exec(after);
  if (readme.indexOf(MARKER) < 0 || !match) throw new Error('README.md has no walkthrough block after its marker');
  return match[1]!;
}

describe('the README walkthrough', () => {
  it('is scripts/readme-walkthrough.sh, line for line', () => {
    const script = readFileSync(join(ROOT, 'scripts/readme-walkthrough.sh'), 'utf8');
    expect(script.indexOf(SCRIPT_MARKER)).toBeGreaterThan(0);
    expect(script.slice(script.indexOf(SCRIPT_MARKER) + SCRIPT_MARKER.length)).toBe(readmeBlock());
  });

  describe('run against a server and a virtual vehicle, as the first two terminals start them', () => {
    let server: ServerProcess;
    let vehicle: ChildProcess;
    let folder: string;
    let env: Record<string, string>;

    beforeAll(async () => {
      folder = mkdtempSync(join(tmpdir(), 'readme-walkthrough-'));
      const [port, mqttPort] = [await freePort(), await freePort()];
      env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: String(port), MQTT_PORT: String(mqttPort), FLEET_DB: join(folder, 'fleet.db') };
      // Terminal 1: FLEET_SEED=20 npm start (here from the sources, as npm run dev).
      server = await startServer({ ...env, FLEET_SEED: '20', FLEET_SHARDS: '2' });
      // Terminal 2: npm run sim -- vehicle demo-0001
      vehicle = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/sim.ts'), 'vehicle', 'demo-0001'], { cwd: ROOT, env, stdio: 'ignore' });
      const token = signToken({ sub: 'walkthrough-check', role: 'operator', ttlSeconds: 600 }, DEV_JWT_SECRET);
      await waitFor(
        async () => {
          const response = await fetch(`${server.url}/vehicles/demo-0001`, { headers: { authorization: `Bearer ${token}` } });
          return response.ok && ((await response.json()) as { online: boolean | null }).online === true;
        },
        { what: 'demo-0001 online', timeoutMs: 30_000 },
      );
    }, 90_000);

    afterAll(async () => {
      // Ctrl-C, as in terminal 2; a device that is still there 5 s later is killed, never left behind.
      if (vehicle && vehicle.exitCode === null && vehicle.signalCode === null) {
        const running = vehicle;
        const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
        running.kill('SIGINT');
        await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, 5_000))]);
        if (running.exitCode === null && running.signalCode === null) running.kill('SIGKILL');
      }
      await server?.kill();
      if (folder) rmSync(folder, { recursive: true, force: true });
    });

    it('books, unlocks, ends, lists, traces, replays and reads the events, with the amounts it shows', async () => {
      const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile('bash', [join(ROOT, 'scripts/readme-walkthrough.sh')], { cwd: ROOT, env, timeout: 120_000, maxBuffer: 10 * 1024 * 1024 }, (error, out, err) => {
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: out, stderr: err });
        });
      });
      expect(code, stderr).toBe(0);
      const booking = /^booked (bk_s\d+_\S+)$/m.exec(stdout)?.[1];
      expect(booking, stdout).toBeDefined();
      expect(stdout).toContain(`"id":"${booking}","status":"CONFIRMED"`);
      expect(stdout).toContain('"authorization":{"id":"auth_' + booking + '","amount":1270,"currency":"EUR"}');
      expect(stdout).toContain(`{"bookingId":"${booking}","vehicleId":"demo-0001","status":"SUCCESS"`);
      expect(stdout).toMatch(/"status":"COMPLETED".*"charge":\{"amount":139,"currency":"EUR"\}/);
      expect(stdout).toMatch(new RegExp(`\\{"items":\\[\\{"id":"${booking}","vehicleId":"demo-0001","status":"COMPLETED"`));
      expect(stdout).toContain('MQTT UNLOCKED'); // npm run trace
      expect(stdout).toContain(`booking/${booking}: 3 events`); // npm run replay --until 3
      expect(stdout).toContain(`/traces/${booking}/view?access=`); // npm run trace --open
      expect(stdout).toContain('"type":"vehicle.unlocked"'); // GET /events
    }, 150_000);
  });
});
