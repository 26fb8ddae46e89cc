import type { Logger } from '../runtime/ground/logger.js';
import { TRACE_STEPS_TABLE } from './schema.js';
import { openDatabase, type Db } from './sqlite.js';

/**
 * Trace steps in a file of their own, beside the shard's journal (`fleet.shard-N.traces.db`).
 *
 * Traces are diagnostics. In the journal's file their pages went through the journal's WAL, so every
 * group commit's sync (FULL) carried them too, and the checkpoints copied them: under the booking load
 * they were most of the WAL's bytes (a booking's eight steps, with the states before and after each,
 * against its eight journal rows). Here they have their own WAL at synchronous NORMAL: a commit never
 * syncs (a process crash loses only what the store still buffered; a power cut may lose the last
 * steps, never the journal's acknowledged work), and the journal's sync no longer waits for them.
 *
 * The schema is this file's own history, not the journal's migrations; the journal file keeps its
 * (empty) `trace_steps` table from migrations 1–2, so its schema stays as `schema.ts` says.
 */
export const TRACE_FILE_MIGRATIONS: readonly string[] = [
  /* 1: the steps, as the journal's file held them until this file took them over */
  `${TRACE_STEPS_TABLE}
  CREATE INDEX trace_steps_started ON trace_steps (started_at);
  `,
];

/** `…/fleet.shard-0.db` → `…/fleet.shard-0.traces.db`; a shard in memory keeps its traces in memory. */
export const traceFileOf = (shardFile: string): string => (shardFile === ':memory:' ? ':memory:' : shardFile.replace(/(\.db)?$/, '.traces.db'));

/**
 * Opens the shard's trace file, and moves into it, once, the steps an earlier version kept in the
 * journal's file, in their order. Traces are diagnostics: a move that fails is logged, the old steps
 * stay where they were (unread), and the shard starts all the same.
 */
export function openTraceFile(shardDb: Db, shardFile: string, logger: Logger): { readonly db: Db; readonly file: string } {
  const file = traceFileOf(shardFile);
  const db = openDatabase(file, { synchronous: 'NORMAL', migrations: TRACE_FILE_MIGRATIONS });
  if (file !== ':memory:') {
    try {
      if (holdsSteps(shardDb)) moveOldSteps(db, shardDb, shardFile, logger);
    } catch (error) {
      logger.warn({ err: error, file }, 'trace steps of the journal\'s file not moved to the trace file; the shard starts without them');
    }
  }
  return { db, file };
}

const holdsSteps = (shardDb: Db): boolean => shardDb.prepare<[], { held: number }>('SELECT EXISTS (SELECT 1 FROM trace_steps) AS held').get()!.held === 1;

const STEP_COLUMNS = 'trace_id, span_id, parent_span_id, from_actor, to_actor, message_type, payload, state_before, state_after, outcome, started_at, duration_us';

/**
 * The copy commits at FULL (on disk before the journal's file lets go of the steps). A move cut short
 * between the two is done again at the next start: a step the trace file holds already is not copied
 * twice. New ids, in the old order: ids an older version reused after a rollback cannot collide.
 */
function moveOldSteps(db: Db, shardDb: Db, shardFile: string, logger: Logger): void {
  const started = Date.now();
  db.prepare('ATTACH DATABASE ? AS journal_file').run(shardFile);
  try {
    db.pragma('synchronous = FULL');
    const { changes } = db
      .prepare(
        `INSERT INTO main.trace_steps (${STEP_COLUMNS})
         SELECT ${STEP_COLUMNS} FROM journal_file.trace_steps AS old
         WHERE NOT EXISTS (SELECT 1 FROM main.trace_steps AS kept
                           WHERE kept.trace_id = old.trace_id AND kept.span_id = old.span_id AND kept.to_actor = old.to_actor
                             AND kept.message_type = old.message_type AND kept.started_at = old.started_at)
         ORDER BY old.id`,
      )
      .run();
    shardDb.exec('DELETE FROM trace_steps');
    logger.info({ moved: changes, ms: Date.now() - started, file: traceFileOf(shardFile) }, 'trace steps moved out of the journal\'s file into their own');
  } finally {
    db.exec('DETACH DATABASE journal_file');
    db.pragma('synchronous = NORMAL');
  }
}
