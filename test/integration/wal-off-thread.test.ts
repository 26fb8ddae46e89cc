import Database from 'better-sqlite3';
import { copyFileSync, existsSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PersistedEvent } from 'nact';
import { SqliteJournalEngine } from '../../persistence/journal-engine.js';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import { startWalCheckpointer } from '../../persistence/wal-checkpointer.js';
import { openWalSync, type WalSync } from '../../persistence/wal-sync.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';

/**
 * The shard's disk work off its thread (persistence/wal-sync.ts, persistence/wal-checkpointer.ts):
 * commits are acknowledged only after the WAL sync that covers them, and checkpoints copy committed
 * pages into the database file from a thread of their own.
 */

const opened: { db: Db; temp: TempDbFile }[] = [];
function openFile(): { db: Db; temp: TempDbFile } {
  const temp = tempDbFile();
  const db = openDatabase(temp.file, { synchronous: 'NORMAL' });
  opened.push({ db, temp });
  return { db, temp };
}
afterEach(() => {
  for (const { db, temp } of opened.splice(0)) {
    if (db.open) db.close();
    temp.cleanup();
  }
});

const event = (key: string, sequenceNumber: number, tags: string[] = []): PersistedEvent => ({ key, sequenceNumber, data: { type: 'Added' }, tags, createdAt: 1_700_000_000_000, isDeleted: false });
const settledSoon = async (promise: Promise<unknown>): Promise<'pending' | 'settled'> =>
  Promise.race([promise.then(() => 'settled' as const, () => 'settled' as const), new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), 30))]);

/** A WAL sync whose calls wait until the test lets them finish, in order. */
function heldSync() {
  const calls: Array<{ done: (error: Error | null) => void }> = [];
  const sync: WalSync = { sync: (done) => void calls.push({ done }), close: () => undefined };
  return { sync, calls };
}

describe('commits synced off the thread (a sync the test controls)', () => {
  it('acknowledges, tells listeners and shows readers nothing before the sync that covers the commit; one sync at a time covers every batch committed before it began', async () => {
    const { db } = openFile();
    const { sync, calls } = heldSync();
    const engine = new SqliteJournalEngine(db, { walSync: sync });
    const heard: number[][] = [];
    engine.onCommit((rows) => heard.push(rows.map((row) => row.position)));

    const first = engine.persist(event('vehicle/a', 1, ['public']));
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    // Committed to the file, not yet durable: nobody may see it or act on it.
    expect((db.prepare('SELECT COUNT(*) AS n FROM journal').get() as { n: number }).n).toBe(1);
    expect(await settledSoon(first)).toBe('pending');
    expect(engine.readAfter(0, 10)).toEqual([]);
    expect(engine.lastPosition()).toBe(0);
    expect(engine.lastPosition('public')).toBe(0);
    expect(heard).toEqual([]);

    // Two batches commit while the first sync runs: they wait for the next one, together.
    const second = engine.persist(event('vehicle/b', 1));
    await new Promise((resolve) => setImmediate(resolve));
    const third = engine.persist(event('vehicle/a', 2));
    const recovery = engine.events('vehicle/a', 0);
    await vi.waitFor(() => expect((db.prepare('SELECT COUNT(*) AS n FROM journal').get() as { n: number }).n).toBe(3));
    expect(calls).toHaveLength(1);

    calls[0]!.done(null);
    await first;
    expect(engine.readAfter(0, 10).map((row) => row.position)).toEqual([1]);
    expect(await settledSoon(Promise.all([second, third]))).toBe('pending');
    expect(calls).toHaveLength(2);
    calls[1]!.done(null);
    await Promise.all([second, third]);
    expect((await recovery).map((each) => each.sequenceNumber)).toEqual([1, 2]);
    expect(heard).toEqual([[1], [2], [3]]);
    expect(engine.lastPosition()).toBe(3);
    const closed = engine.close();
    expect(await settledSoon(closed)).toBe('settled');
  });

  it('flush() and close() wait for the sync, not just the commit', async () => {
    const { db } = openFile();
    const { sync, calls } = heldSync();
    const engine = new SqliteJournalEngine(db, { walSync: sync });
    void engine.persist(event('vehicle/a', 1));
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    const closed = engine.close();
    expect(await settledSoon(closed)).toBe('pending');
    calls[0]!.done(null);
    await closed;
  });

  it('halts when a sync fails: the commits it covered and those waiting for the next are refused, and every later persist', async () => {
    const { db } = openFile();
    const { sync, calls } = heldSync();
    const engine = new SqliteJournalEngine(db, { walSync: sync });
    const halted = vi.fn();
    engine.onHalt(halted);
    const covered = engine.persist(event('vehicle/a', 1));
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    const waiting = engine.persist(event('vehicle/b', 1));
    await vi.waitFor(() => expect((db.prepare('SELECT COUNT(*) AS n FROM journal').get() as { n: number }).n).toBe(2));

    calls[0]!.done(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await expect(covered).rejects.toMatchObject({ code: 'write-failed' });
    await expect(waiting).rejects.toMatchObject({ code: 'write-failed' });
    await expect(engine.persist(event('vehicle/c', 1))).rejects.toMatchObject({ code: 'halted' });
    expect(halted).toHaveBeenCalledOnce();
    expect(engine.readAfter(0, 10)).toEqual([]);
    expect(calls).toHaveLength(1);
  });

  it('with the real fdatasync: persists resolve and their rows read back, and a file opened again has them', async () => {
    const { db, temp } = openFile();
    const walSync = openWalSync(temp.file);
    const engine = new SqliteJournalEngine(db, { walSync });
    await Promise.all(Array.from({ length: 50 }, (_, i) => engine.persist(event(`vehicle/v-${i}`, 1))));
    expect(engine.readAfter(0, 100)).toHaveLength(50);
    await engine.close();
    walSync.close();
    db.close();
    const again = openDatabase(temp.file, { synchronous: 'NORMAL' });
    opened.push({ db: again, temp });
    const reopened = new SqliteJournalEngine(again, { walSync: openWalSync(temp.file) });
    // Everything the file holds at open is durable (openWalSync synced it) and visible.
    expect(reopened.lastPosition()).toBe(50);
  });
});

describe('checkpoints off the thread', () => {
  it('copies committed pages into the database file while the writer never checkpoints, and the writer closes last', async () => {
    const { db, temp } = openFile();
    const checkpointer = startWalCheckpointer({ db, file: temp.file, logger: createLogger('silent'), everyMs: 10 });
    db.exec('CREATE TABLE t (n INTEGER)');
    const insert = db.prepare('INSERT INTO t (n) VALUES (?)');
    // Few pages: far below any automatic checkpoint of the writer's (its backstop is 10,000 pages).
    for (let n = 0; n < 100; n += 1) insert.run(n);

    // The database file alone (no WAL beside it) holds the rows once the checkpoint thread copied them.
    const copy = `${temp.file}.copy`;
    await vi.waitFor(
      () => {
        copyFileSync(temp.file, copy);
        const alone = new Database(copy, { readonly: true });
        try {
          const tables = alone.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 't'").get() as { n: number };
          expect(tables.n).toBe(1);
          expect((alone.prepare('SELECT COUNT(*) AS n FROM t').get() as { n: number }).n).toBe(100);
        } finally {
          alone.close();
        }
      },
      { timeout: 5000, interval: 50 },
    );
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(10_000);

    await checkpointer.stop();
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    db.close();
    // The writer's close was the last: it checkpointed and removed the WAL.
    expect(existsSync(`${temp.file}-wal`)).toBe(false);
  });
});
