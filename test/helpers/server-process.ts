import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LIMITS_OFF } from './limits-off.js';

const START_DEADLINE_MS = 60_000;

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '../../server/main.ts');

/** The real server (`server/main.ts`) in a child process, on free ports, for tests that kill it. */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** SIGKILL: no graceful shutdown, nothing flushed that was not already durable. */
  kill(): Promise<void>;
  /** Resolves when the process has ended, with its exit code (null when a signal ended it) and that signal. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>;
  /** Every pino record the process wrote to stdout so far. */
  readonly logs: ReadonlyArray<{ readonly level: number; readonly msg?: string; readonly [field: string]: unknown }>;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
}

/** Only what the server needs (no inherited test-runner variables), on free ports, then `env`. */
const serverEnv = (env: Record<string, string>): Record<string, string> => ({
  PATH: process.env.PATH ?? '',
  HOME: process.env.HOME ?? '',
  PORT: '0',
  HOST: '127.0.0.1',
  MQTT_PORT: '0',
  LOG_LEVEL: 'info',
  FLEET_SHARDS: '1',
  ...LIMITS_OFF,
  ...env,
});

export async function startServer(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], { env: serverEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const logs: Array<{ level: number; msg?: string }> = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    // A deadline, not a speed check: a start takes ~2 s on a quiet box, 10–20 s while other suites load it.
    const timer = setTimeout(() => reject(new Error(`server did not start within ${START_DEADLINE_MS / 1000} s; stderr: ${stderr}`)), START_DEADLINE_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it was ready; stderr: ${stderr}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const record = JSON.parse(line) as { level: number; msg?: string; url?: string };
        logs.push(record);
        if (record.msg === 'fleetactors ready' && record.url) {
          clearTimeout(timer);
          resolve(record.url);
        }
      } catch {
        // not a log record
      }
    });
  });
  return {
    child,
    url,
    exited,
    logs,
    stderr: () => stderr,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * A server run to its end, for a start-up that is refused: its exit code and everything it wrote. One
 * that is still running after `timeoutMs` was not refused: it is killed (code null).
 */
export function runServerToExit(env: Record<string, string>, timeoutMs = 30_000): Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], { env: serverEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}
