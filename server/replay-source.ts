import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { readActorJournal } from '../persistence/actor-journal.js';
import { shardFileOf } from './registry.js';
import { persistenceKeyOf, replayActor, shardOfActor, type Replay, type ReplayKind } from '../traces/replay.js';

/**
 * Where `npm run replay` reads an actor's journal: the registry at FLEET_DB says how many shards the
 * data has, placement says which shard holds the actor, and that shard's file beside FLEET_DB holds
 * its events. Everything is opened read-only, so it is safe next to a running server.
 */
export interface ReplaySource {
  readonly file: string;
  readonly shard: number;
  readonly shardCount: number;
}

export class ReplaySourceError extends Error {
  override readonly name = 'ReplaySourceError';
}

export function locateActorJournal(fleetDb: string, kind: ReplayKind, id: string): ReplaySource {
  if (fleetDb === ':memory:') throw new ReplaySourceError('FLEET_DB is :memory:, whose journals live only inside the server process');
  if (!existsSync(fleetDb)) throw new ReplaySourceError(`no registry at FLEET_DB=${fleetDb}: set FLEET_DB to the server's database`);
  const registry = new Database(fleetDb, { readonly: true, fileMustExist: true });
  let shardCount: number;
  try {
    const tables = new Set(registry.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((row) => row.name));
    // A database of the single-file version: its one journal is FLEET_DB itself.
    if (tables.has('journal')) return { file: fleetDb, shard: 0, shardCount: 1 };
    const recorded = tables.has('fleet_meta') ? registry.prepare<[], { value: string }>("SELECT value FROM fleet_meta WHERE key = 'shard_count'").get() : undefined;
    if (!recorded) throw new ReplaySourceError(`${fleetDb} records no shard count: is it a fleetactors registry?`);
    shardCount = Number(recorded.value);
  } finally {
    registry.close();
  }
  const shard = shardOfActor(kind, id, shardCount);
  if (shard === null) throw new ReplaySourceError(`${kind} ${id} names no shard of this ${shardCount}-shard fleet`);
  const file = shardFileOf(fleetDb, shard);
  if (!existsSync(file)) throw new ReplaySourceError(`shard ${shard}'s journal ${file} does not exist`);
  return { file, shard, shardCount };
}

/** Reads the actor's events from its shard file and replays them (up to `untilSeq` when given). */
export function replayFromFleetDb(fleetDb: string, kind: ReplayKind, id: string, untilSeq?: number): { source: ReplaySource; replay: Replay } {
  const source = locateActorJournal(fleetDb, kind, id);
  const db = new Database(source.file, { readonly: true, fileMustExist: true });
  try {
    const entries = readActorJournal(db, persistenceKeyOf(kind, id), untilSeq === undefined ? {} : { untilSeq });
    return { source, replay: replayActor(kind, id, entries, untilSeq) };
  } finally {
    db.close();
  }
}
