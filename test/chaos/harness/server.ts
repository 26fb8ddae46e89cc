import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';

/**
 * The server under test as a child process that the harness kills with SIGKILL and starts again, on
 * the same HTTP port every time so that the customers keep one base URL. Its log goes to a file of
 * the run (LOG_LEVEL warn: errors and the chaos hook, not every request).
 */
export interface ServerProcessOptions {
  /** server/main.js from chaos/build.ts. */
  readonly entry: string;
  readonly port: number;
  readonly env: Readonly<Record<string, string>>;
  readonly logFile: string;
  /** How long a start (journal recovery included) may take. */
  readonly startTimeoutMs?: number;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

export class ServerProcess {
  private child: ChildProcess | null = null;
  private readonly log: WriteStream;
  starts = 0;

  constructor(private readonly options: ServerProcessOptions) {
    this.log = createWriteStream(options.logFile, { flags: 'a' });
    installExitHook();
  }

  get url(): string {
    return `http://127.0.0.1:${this.options.port}`;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get isRunning(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Spawns the server and resolves once it answers HTTP (any status: /health is 503 while a broker is away). */
  async start(): Promise<number> {
    if (this.isRunning) throw new Error('the server is already running');
    const started = Date.now();
    const child = spawn(process.execPath, [this.options.entry], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', HOST: '127.0.0.1', PORT: String(this.options.port), LOG_LEVEL: 'warn', ...this.options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.starts += 1;
    running.add(child);
    child.once('exit', () => running.delete(child));
    this.log.write(`\n---- start #${this.starts} pid ${child.pid} at ${new Date().toISOString()}\n`);
    child.stdout!.pipe(this.log, { end: false });
    child.stderr!.pipe(this.log, { end: false });
    const deadline = started + (this.options.startTimeoutMs ?? 120_000);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) before it answered; see ${this.options.logFile}`);
      try {
        await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) });
        return Date.now() - started;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`the server did not answer within ${this.options.startTimeoutMs ?? 120_000} ms; see ${this.options.logFile}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** kill -9: no shutdown code runs; only what was committed survives. */
  kill(): Promise<void> {
    return this.end('SIGKILL');
  }

  /** SIGTERM: the server closes HTTP, then every shard flushes its journal. */
  stop(): Promise<void> {
    return this.end('SIGTERM');
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.isRunning) throw new Error('the server is not running');
    this.child!.kill(signal);
  }

  async close(): Promise<void> {
    await this.end('SIGTERM');
    await new Promise<void>((resolve) => this.log.end(resolve));
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }
}

/** A harness that dies half-way must not leave a server behind (it would hold the data folder's mount). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}
