import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { LoadConfig, LoadResult } from './load-worker.js';

const root = fileURLToPath(new URL('..', import.meta.url));

export interface Helper<T> {
  readonly child: ChildProcess;
  /** The first JSON line the process printed on stdout. */
  readonly ready: Promise<T>;
  stop(): Promise<void>;
}

/** `node --import tsx bench/<script> '<json>'` as a process of its own; its first stdout line is JSON. */
export function spawnHelper<T>(script: string, config: unknown, env: Record<string, string> = {}): Helper<T> {
  const child = spawn(process.execPath, ['--import', 'tsx', `bench/${script}`, JSON.stringify(config)], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = new Promise<T>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    let resolved = false;
    lines.on('line', (line) => {
      if (resolved || !line.startsWith('{')) return;
      resolved = true;
      try {
        resolve(JSON.parse(line) as T);
      } catch (error) {
        reject(error as Error);
      }
    });
    child.once('exit', (code) => {
      if (!resolved) reject(new Error(`bench/${script} exited with ${code} before printing its result`));
    });
  });
  return {
    child,
    ready,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs one load (bench/load-worker.ts) in a process of its own and returns its figures. */
export async function runLoad(config: LoadConfig): Promise<LoadResult> {
  const worker = spawnHelper<LoadResult>('load-worker.ts', config);
  try {
    return await worker.ready;
  } finally {
    await worker.stop();
  }
}
