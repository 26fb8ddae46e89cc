import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../runtime/ground/logger.js';
import type { Db } from './sqlite.js';

/**
 * WAL checkpoints off the shard's thread.
 *
 * SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1,000 pages, on the
 * committing thread: it copies every page written since the last one into the database file and
 * syncs both files. Under the `book` load that was several times a second per shard, 20–30 ms each
 * (the shards' event-loop delay p99 was 20–35 ms, every second), and every booking whose commit
 * waited behind one paid for it: raising the interval to 100,000 pages lifted throughput 15–19 % and
 * p50/p90 by a quarter, until the one big checkpoint stalled the shard for 300 ms
 * (bench/RESULTS.md, "Checkpoints off the shard's thread").
 *
 * So a thread of its own, with a connection of its own to the same file, runs a PASSIVE checkpoint
 * every `everyMs`: it copies what the shard committed without ever blocking the shard (PASSIVE takes
 * no lock a writer or reader waits for, and its connection has no busy timeout), and it syncs the
 * files on its own thread. The shard's connection keeps an automatic checkpoint only as a backstop
 * (`BACKSTOP_PAGES`), which finds almost every frame already copied: the WAL restarts from its first
 * frame only when a writer finds everything copied, so under a steady load it is the backstop's small
 * catch-up that lets it restart.
 *
 * Durability is untouched: a commit is durable when its own WAL frames are synced (FULL), as before;
 * checkpoints only move committed pages into the database file.
 *
 * The thread runs no TypeScript and loads nothing of the project: better-sqlite3 only, resolved here.
 */

/** The shard's own automatic checkpoint, a backstop once the WAL holds this many pages (~40 MB). */
export const BACKSTOP_PAGES = 10_000;
/** How often the checkpoint thread copies what was committed since its last run. */
export const CHECKPOINT_EVERY_MS = 100;

export interface WalCheckpointerOptions {
  /** The shard's open connection: its automatic checkpoint becomes the backstop. */
  readonly db: Db;
  readonly file: string;
  readonly logger: Logger;
  readonly everyMs?: number;
}

export interface WalCheckpointer {
  /** Stops the thread and closes its connection; the shard's connection, closed after it, checkpoints last. */
  stop(): Promise<void>;
}

const driver = createRequire(import.meta.url).resolve('better-sqlite3');

/** CommonJS, run with `eval`: the thread's whole program. */
const PROGRAM = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
// Never wait for a lock: a checkpoint that cannot run now runs at the next tick.
db.pragma('busy_timeout = 0');
db.pragma('synchronous = ' + workerData.synchronous);
let timer = null;
let stopped = false;
let failures = 0;
const tick = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    failures = 0;
  } catch (error) {
    // SQLITE_BUSY is the expected one (another checkpoint runs); anything else is told once in a row.
    if (error.code !== 'SQLITE_BUSY' && failures++ === 0) parentPort.postMessage({ t: 'error', message: String(error.message), code: error.code ?? null });
  }
  if (!stopped) timer = setTimeout(tick, workerData.everyMs);
};
timer = setTimeout(tick, workerData.everyMs);
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  stopped = true;
  clearTimeout(timer);
  db.close();
  parentPort.close();
});
`;

export function startWalCheckpointer({ db, file, logger, everyMs = CHECKPOINT_EVERY_MS }: WalCheckpointerOptions): WalCheckpointer {
  const log = logger.child({ component: 'wal-checkpointer' });
  db.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
  const synchronous = db.pragma('synchronous', { simple: true }) as number;
  const worker = new Worker(PROGRAM, { eval: true, workerData: { driver, file, everyMs, synchronous }, name: 'wal-checkpointer' });
  // Nothing waits for it: the process may exit with it running (its connection only copies pages).
  worker.unref();
  worker.on('message', (message: { t: string; message: string; code: string | null }) => log.warn({ code: message.code }, `WAL checkpoint failed: ${message.message}`));
  worker.on('error', (error) => log.error({ err: error }, 'WAL checkpoint thread failed; the shard checkpoints by itself'));
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    async stop() {
      worker.postMessage('stop');
      await exited;
      // Back to SQLite's default for whatever runs on this connection until it closes (if it is open:
      // a crash-like stop may have closed it underneath).
      if (db.open) db.pragma('wal_autocheckpoint = 1000');
    },
  };
}
