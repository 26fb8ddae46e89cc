import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '../../server/main.ts');

interface Exit {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `npm start`'s process on the given environment, run to its end. */
function runServer(env: Record<string, string>): Promise<Exit> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', HOST: '127.0.0.1', FLEET_DB: ':memory:', FLEET_SHARDS: '1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** Something else listening on a loopback port, as a second server or another program would. */
function occupy(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

let occupied: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (occupied ? occupied.close(() => resolve()) : resolve()));
  occupied = undefined;
});

const STACK_FRAME = /^\s+at /m;

describe('a port in use at start-up', () => {
  it('PORT: one line naming the variable and the port, exit code 2, no stack trace', async () => {
    const port = await freePort();
    occupied = await occupy(port);
    const exit = await runServer({ PORT: String(port), MQTT_PORT: '0' });
    expect(exit.code).toBe(2);
    expect(exit.stderr).toContain(`PORT=${port} is in use: another process listens on 127.0.0.1:${port}.`);
    expect(exit.stderr).not.toMatch(STACK_FRAME);
    expect(exit.stdout).not.toMatch(STACK_FRAME);
  }, 60_000);

  it('MQTT_PORT of the embedded broker: the same, naming MQTT_PORT', async () => {
    const port = await freePort();
    occupied = await occupy(port);
    const exit = await runServer({ PORT: '0', MQTT_PORT: String(port) });
    expect(exit.code).toBe(2);
    expect(exit.stderr).toContain(`MQTT_PORT=${port} is in use: another process listens on 127.0.0.1:${port}.`);
    expect(exit.stderr).not.toMatch(STACK_FRAME);
    expect(exit.stdout).not.toMatch(STACK_FRAME);
  }, 60_000);
});
