import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';

/**
 * The fsync of a shard's commits, off the shard's thread.
 *
 * With `synchronous=FULL` SQLite syncs the WAL inside every COMMIT, and the shard's event loop waits
 * for the disk: under the `book` load 40 % of the shard thread's wall time was that wait, in which it
 * could not decide the next batch (bench/RESULTS.md, "The fsync off the shard's thread"). In WAL mode
 * FULL differs from NORMAL in exactly that sync. So the shard's connection commits at NORMAL (the
 * frames reach the file, not yet the disk) and this syncs the WAL file with `fdatasync` on libuv's
 * thread pool; the journal engine settles a batch (acknowledges its persists, tells its listeners,
 * lets readers see its rows) only after a sync that began after its commit returned. That is FULL's
 * guarantee, reached later on the same thread only for the batch that waits for it; the next batches
 * are decided and committed meanwhile, and one sync covers every batch committed before it began.
 *
 * Why a second descriptor is safe: `fdatasync` flushes the file (the inode), whichever descriptor asks;
 * SQLite takes no lock on the WAL file itself (its locks are on the database and `-shm` files), so
 * closing this descriptor releases none of them; and the WAL file keeps its inode while any
 * connection has the database open (SQLite deletes it only when the last connection closes, after
 * this is closed: the shard's closers).
 */
export interface WalSync {
  /** Makes every write to the WAL file made before this call durable; `done` gets the error, if any. */
  sync(done: (error: Error | null) => void): void;
  close(): void;
}

/**
 * Opens the WAL of `dbFile`, which the caller's connection has already opened in WAL mode and written
 * (the schema's migration), and syncs it once: what an earlier process committed is durable before
 * anything is read from it.
 */
export function openWalSync(dbFile: string): WalSync {
  const fd = openSync(`${dbFile}-wal`, 'r+');
  fdatasyncSync(fd);
  let closed = false;
  return {
    sync(done) {
      fdatasync(fd, (error) => done(error));
    },
    close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}
