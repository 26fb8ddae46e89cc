import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDbFile {
  /** Path of a database file that does not exist yet, in a folder of its own. */
  readonly file: string;
  /** Removes the folder with the file and its -wal/-shm companions. Close the database first. */
  cleanup(): void;
}

/** A fresh folder under the OS temp dir, so that tests running in parallel never share a file. */
export function tempDbFile(): TempDbFile {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-db-'));
  return {
    file: join(dir, 'fleet.db'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
