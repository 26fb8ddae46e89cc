import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signToken } from '../actors/contract/tokens.js';
import { DEV_JWT_SECRET } from '../actors/contract/device-secrets.js';
import { freePort } from '../test/helpers/free-port.js';

/**
 * The server under test runs in its own process, as `npm start` runs it, so that the load generator
 * (bench/load-worker.ts, another process) does not share its event loop.
 */
export interface BenchServer {
  readonly url: string;
  readonly mqttUrl: string;
  readonly pid: number;
  /** Resolves with the milliseconds from spawn to the first 200 of GET /health. */
  readonly healthy: Promise<number>;
  token(sub: string, role: 'customer' | 'operator'): string;
  stop(): Promise<void>;
}

/**
 * The load comes from one address and a few tokens at thousands of requests per second: rate limits
 * would measure themselves. And the load worker's customers are reused from one phase to the next
 * (hot-vehicle's 1 000 racers held bookings since its warm-up), so the live-booking limit would turn
 * the measured bookings into 409s; its own cost is a read per shard before each booking.
 */
export const LIMITS_OFF = { RATE_LIMIT_PER_CUSTOMER: '0', RATE_LIMIT_PER_IP: '0', MAX_ACTIVE_BOOKINGS_PER_CUSTOMER: '0' };

/** Spawns the server and returns at once (its URL is known before it listens); `healthy` tells when it is ready. */
/** `root`: the checkout whose built server runs (default this one; bench/hotpath-cpu.ts compares two). */
export async function spawnBenchServer(env: Record<string, string>, root?: string): Promise<BenchServer> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-'));
  const port = await freePort();
  const mqttPort = env.MQTT_URL ? 0 : await freePort();
  // BENCH_NODE_ARGS: e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile the server under load.
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const spawnedAt = performance.now();
  // The built server, as `npm start` runs it (bench/run.ts builds it first): no TypeScript compiled
  // on the fly in the measured window, in the main thread or in the shard workers.
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, 'dist/server/main.js'], {
    cwd: root ?? fileURLToPath(new URL('..', import.meta.url)),
    // Only what the bench sets: a FLEET_JWT_SECRET, KAFKA_BROKERS or MQTT_URL in the shell must not change the run.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', FLEET_DB: join(dir, 'fleet.db'), PORT: String(port), MQTT_PORT: String(mqttPort), LOG_LEVEL: 'error', ...LIMITS_OFF, ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const healthy = (async () => {
    const deadline = Date.now() + 300_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`bench server exited with ${child.exitCode}`);
      try {
        if ((await fetch(`${url}/health`)).ok) return Math.round(performance.now() - spawnedAt);
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error('bench server did not become healthy in 300 s');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  healthy.catch(() => undefined);
  const tokens = new Map<string, string>();
  return {
    url,
    mqttUrl: env.MQTT_URL ?? `mqtt://127.0.0.1:${mqttPort}`,
    pid: child.pid ?? -1,
    healthy,
    token: (sub, role) => {
      const key = `${role}:${sub}`;
      if (!tokens.has(key)) tokens.set(key, signToken({ sub, role, ttlSeconds: 3600 }, DEV_JWT_SECRET));
      return tokens.get(key)!;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startBenchServer(env: Record<string, string>): Promise<BenchServer> {
  const server = await spawnBenchServer(env);
  try {
    await server.healthy;
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}
