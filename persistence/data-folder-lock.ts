import Database from 'better-sqlite3';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';

/**
 * One process per FLEET_DB (docs/contract.md, "Configuration"). Two servers on one registry and its
 * shard files each believe they own every actor: both book the same vehicle, and the journals diverge.
 *
 * The lock is an OS lock held on `<FLEET_DB>.lock`, taken before the registry or any shard file is
 * opened or created, and held for the process's life. Node has no flock, so the lock is SQLite's own:
 * a connection in `locking_mode=EXCLUSIVE` that has written once keeps its EXCLUSIVE lock (fcntl on
 * POSIX, LockFileEx on Windows) until it closes. Why this and not a pid file (`open 'wx'` + `kill(pid, 0)`):
 * - the kernel drops the lock when the process dies, however it dies (`kill -9`, OOM, power cut on the
 *   next boot): a stale lock cannot exist, so there is no liveness guess to get wrong;
 * - no pid reuse trap: in a container the server is often pid 1 on every start, and a pid file written by
 *   the killed pid 1 would name a live process (the new server itself, or whatever got that pid);
 * - no takeover race: two servers that both find a dead pid's file could both "take it over"; a lock
 *   call is atomic;
 * - the lock also holds between servers in two containers on one host that share the folder (their pid
 *   namespaces differ, so a pid check would call each other dead).
 * Another connection in this same process is refused too (SQLite tracks its locks per file, per process).
 *
 * What a refused server prints (pid, URL) cannot live in the locked file (it cannot be read while
 * locked), so the holder writes it to `<FLEET_DB>.lock.json`: first `{pid, url: null, …}` right after
 * taking the lock, then again with the URL once HTTP listens (a temp file renamed over it, so a reader
 * never sees half a file). It is only information: a file left by a killed process is overwritten by
 * the next holder and never blocks anything.
 *
 * The lock file itself is never deleted, not even on release: a process that has opened it, while the
 * holder deletes it, would lock the deleted file while a third one creates and locks a new one. It is a
 * 4 KB file beside the data; deleting it by hand while a server runs defeats the lock.
 */
export interface DataFolderLock {
  /** `<FLEET_DB>.lock`. */
  readonly lockFile: string;
  /** `<FLEET_DB>.lock.json`, what a refused server reads about this one. */
  readonly holderFile: string;
  /** Records the HTTP address this process serves on, for the message a refused server prints. */
  announce(url: string): void;
  /** Removes the holder file and lets the lock go (idempotent). The process may go on; others may start. */
  release(): void;
}

/** Who holds the lock, as its holder wrote it. */
export interface LockHolder {
  readonly pid: number;
  /** `http://host:port` once it listens; null while it starts (or when it does not listen on HTTP). */
  readonly url: string | null;
  readonly host: string;
  /** ISO time the lock was taken. */
  readonly startedAt: string;
}

/**
 * Another process (or another fleet in this one) holds the data folder. main.ts prints the message as
 * one line and exits 2, as for any configuration the machine refutes.
 */
export class DataFolderInUseError extends Error {
  override readonly name = 'DataFolderInUseError';
  constructor(
    readonly fleetDb: string,
    readonly holder: LockHolder | null,
  ) {
    super(`FLEET_DB ${fleetDb} is in use by another fleetactors server (${describeHolder(holder)}): stop it, or give this server another FLEET_DB.`);
  }
}

export const lockFileOf = (fleetDb: string): string => `${fleetDb}.lock`;
export const holderFileOf = (fleetDb: string): string => `${fleetDb}.lock.json`;

/** Locks held by this process: the connections must stay referenced (a collected one would unlock). */
const held = new Set<Database.Database>();

/**
 * Takes the lock of FLEET_DB, or throws DataFolderInUseError naming the holder. Creates the folder and
 * the lock file if needed, nothing else. `:memory:` data belongs to this process alone: no lock (null).
 */
export function lockDataFolder(fleetDb: string, now: () => Date = () => new Date()): DataFolderLock | null {
  if (fleetDb === ':memory:') return null;
  const lockFile = lockFileOf(fleetDb);
  const holderFile = holderFileOf(fleetDb);
  mkdirSync(dirname(fleetDb), { recursive: true });
  // timeout 0: refuse at once instead of waiting (better-sqlite3 waits 5 s by default).
  const db = new Database(lockFile, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    // No -journal file beside it. The write takes the EXCLUSIVE lock, which this locking mode keeps
    // after the commit, until the connection closes.
    db.pragma('journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
    db.pragma('user_version = 1');
    db.exec('COMMIT');
  } catch (error) {
    db.close();
    if (isBusy(error)) throw new DataFolderInUseError(fleetDb, readHolder(fleetDb));
    throw error;
  }
  held.add(db);
  const base = { pid: process.pid, host: hostname(), startedAt: now().toISOString() };
  writeHolder(holderFile, { ...base, url: null });
  let released = false;
  return {
    lockFile,
    holderFile,
    announce: (url) => {
      if (!released) writeHolder(holderFile, { ...base, url });
    },
    release: () => {
      if (released) return;
      released = true;
      // The holder file first: once the lock is gone, the next holder writes its own, which must stay.
      rmSync(holderFile, { force: true });
      held.delete(db);
      db.close();
    },
  };
}

/** What the holder wrote about itself; null when there is no such file or it cannot be read. */
export function readHolder(fleetDb: string): LockHolder | null {
  try {
    const parsed = JSON.parse(readFileSync(holderFileOf(fleetDb), 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number') return null;
    return {
      pid: parsed.pid,
      url: typeof parsed.url === 'string' ? parsed.url : null,
      host: typeof parsed.host === 'string' ? parsed.host : '',
      startedAt: typeof parsed.startedAt === 'string' ? parsed.startedAt : '',
    };
  } catch {
    // The holder is between taking the lock and writing the file, or someone removed it.
    return null;
  }
}

function writeHolder(holderFile: string, holder: LockHolder): void {
  const temp = `${holderFile}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(holder)}\n`);
  renameSync(temp, holderFile);
}

function describeHolder(holder: LockHolder | null): string {
  if (!holder) return 'pid unknown';
  const where = holder.host && holder.host !== hostname() ? ` on host ${holder.host}` : '';
  return `pid ${holder.pid}${where}, ${holder.url ?? 'not listening on HTTP yet'}`;
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}
