import { afterEach, describe, expect, it, vi } from 'vitest';
import { claimIdFor, claimBehaviour, IDEMPOTENCY, type ClaimView } from '../../actors/idempotency/actor.js';
import type { Outcome } from '../../actors/contract/rejections.js';
import { SqliteJournalEngine } from '../../persistence/journal-engine.js';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import type { WalSync } from '../../persistence/wal-sync.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { rootContext } from '../../runtime/ground/trace-context.js';
import { startActorSystem, type ActorSystem } from '../../runtime/kernel/actor-system.js';
import { ActorDirectory } from '../../runtime/kernel/directory.js';
import { createsItsActor } from '../../server/shard-actors.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';

/**
 * A keyed booking's claim and its saga overlap (docs/architecture.md, "Idempotency-Key claims"): the
 * claim actor answers ClaimKey once the claim is queued, so the saga starts while the claim commits;
 * but the request's final answer is stored with StoreAnswer before the client hears it, and StoreAnswer
 * is answered only after the claim is durable. The journal's WAL sync is held by the test, so
 * "durable" is a step the test takes.
 */

describe('the claim of an Idempotency-Key', () => {
  let temp: TempDbFile;
  let db: Db;
  let system: ActorSystem;
  let journal: SqliteJournalEngine;
  let directory: ActorDirectory;
  const syncs: Array<(error: Error | null) => void> = [];
  /** After the test, every sync completes at once, so that the journal can drain and close. */
  let held = false;

  /** The shard's kernel over one file, with the shard's rule for which activations start fresh. */
  const start = () => {
    db = openDatabase(temp.file, { synchronous: 'NORMAL' });
    const walSync: WalSync = { sync: (done) => (held ? void syncs.push(done) : done(null)), close: () => undefined };
    journal = new SqliteJournalEngine(db, { walSync });
    const logger = createLogger('silent');
    system = startActorSystem(journal, logger);
    directory = new ActorDirectory({ system, logger, passivateAfterMs: 60_000, askTimeoutMs: 5_000, snapshotEvery: 100, startsFresh: createsItsActor });
    directory.register(IDEMPOTENCY, claimBehaviour({ now: () => Date.now() }));
  };
  const stop = async () => {
    held = false;
    for (const done of syncs.splice(0)) done(null);
    directory.stopAll();
    system.stop();
    await journal.close();
    db.close();
  };
  const claim = { kind: IDEMPOTENCY, id: claimIdFor('alice', 'key-1') };
  const LEASE = { holder: 'single/test', leaseMs: 30_000, othersMayRun: false };
  const ask = (message: Parameters<ActorDirectory['ask']>[1]) => directory.ask<Outcome<ClaimView | null>>(claim, message, 'http', rootContext());

  afterEach(async () => {
    await stop();
    temp.cleanup();
  });

  it('answers ClaimKey before the claim is durable, and StoreAnswer only after it is', async () => {
    temp = tempDbFile();
    held = true;
    start();

    const claimed = await ask({ type: 'ClaimKey', requestHash: 'h1', ...LEASE });
    // The saga may start now: the claim is committed but not durable yet.
    expect(claimed).toEqual({ ok: true, value: null });
    await vi.waitFor(() => expect(syncs).toHaveLength(1));
    expect(journal.readAfter(0, 10)).toEqual([]);

    let stored = false;
    const answer = ask({ type: 'StoreAnswer', requestHash: 'h1', statusCode: 201, body: { id: 'b-1' } }).then((outcome) => {
      stored = true;
      return outcome;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stored).toBe(false);

    syncs.shift()!(null);
    expect(await answer).toEqual({ ok: true, value: null });
    expect(journal.readAfter(0, 10).map((row) => row.eventType)).toEqual(['KeyClaimed']);
  });

  it('a key already used is never answered "free" by an activation that skipped its journal: the look-up finds it', async () => {
    temp = tempDbFile();
    held = false;
    start();
    expect(await ask({ type: 'ClaimKey', requestHash: 'h1', ...LEASE })).toEqual({ ok: true, value: null });
    expect(await ask({ type: 'StoreAnswer', requestHash: 'h1', statusCode: 201, body: { id: 'b-1' } })).toEqual({ ok: true, value: null });
    await stop();

    start();
    // A fresh activation for ClaimKey: the journal holds the key, so it reads it and answers what is stored.
    expect(await ask({ type: 'ClaimKey', requestHash: 'h2', ...LEASE })).toEqual({ ok: true, value: { requestHash: 'h1', statusCode: 201, body: { id: 'b-1' } } });
  });

  it('answers a second ClaimKey of the same body, while the first holds its lease, as running; ReadClaim (asked by older nodes) shows the claim without claiming', async () => {
    temp = tempDbFile();
    held = false;
    start();
    expect(await ask({ type: 'ClaimKey', requestHash: 'h1', ...LEASE })).toEqual({ ok: true, value: null });
    expect(await ask({ type: 'ClaimKey', requestHash: 'h1', ...LEASE })).toEqual({ ok: true, value: { requestHash: 'h1', statusCode: null, body: null, running: true } });
    expect(await ask({ type: 'ReadClaim' })).toEqual({ ok: true, value: { requestHash: 'h1', statusCode: null, body: null } });
    expect(await ask({ type: 'ReleaseClaim', requestHash: 'h1', holder: LEASE.holder })).toEqual({ ok: true, value: null });
    // Released: the same body runs again at once.
    expect(await ask({ type: 'ClaimKey', requestHash: 'h1', ...LEASE })).toEqual({ ok: true, value: null });
  });
});
