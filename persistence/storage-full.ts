/**
 * SQLITE_FULL anywhere in an error's cause chain (PersistenceFailure → JournalError → SqliteError):
 * the disk under a journal or the registry is full. Callers answer 503 `storage-full` for it instead
 * of a generic failure, because the fix (free space) is the operator's, and a retry works afterwards.
 */
export function isStorageFull(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth += 1) {
    if ((current as { code?: unknown }).code === 'SQLITE_FULL') return true;
  }
  return false;
}
