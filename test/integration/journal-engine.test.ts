import Database from 'better-sqlite3';
import { configurePersistence, dispatch, query, spawnPersistent, start, stop, type PersistedEvent, type Ref } from 'nact';
import { asNactEngine } from '../../runtime/kernel/actor-system.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JournalError, SqliteJournalEngine, type JournalEngineOptions } from '../../persistence/journal-engine.js';
import type { JournalRow } from '../../runtime/kernel/journal.js';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';
import type { BatchReplicator, ReplicatedBatch } from '../../persistence/journal-replication.js';

const opened: { db: Db; temp: TempDbFile }[] = [];

function openJournal(options: JournalEngineOptions = {}, temp: TempDbFile = tempDbFile()) {
  const db = openDatabase(temp.file);
  opened.push({ db, temp });
  return { db, temp, engine: new SqliteJournalEngine(db, options) };
}

afterEach(() => {
  for (const { db, temp } of opened.splice(0)) {
    if (db.open) db.close();
    temp.cleanup();
  }
});

function event(key: string, sequenceNumber: number, data: unknown = { type: 'Added', amount: 1 }, tags: string[] = []): PersistedEvent {
  return { key, sequenceNumber, data, tags, createdAt: 1_700_000_000_000 + sequenceNumber, isDeleted: false };
}

const journalCount = (db: Db): number => (db.prepare('SELECT COUNT(*) AS n FROM journal').get() as { n: number }).n;

describe('group commit', () => {
  it('writes 1000 persists issued in one turn in a few transactions, gap-free and in order', async () => {
    const { engine } = openJournal();
    const persists: Promise<void>[] = [];
    for (let i = 0; i < 1000; i += 1) persists.push(engine.persist(event(`vehicle/v-${i}`, 1)));
    await Promise.all(persists);

    expect(engine.stats().rows).toBe(1000);
    expect(engine.stats().commits).toBeLessThanOrEqual(2);
    expect(engine.stats().lastBatchSize).toBe(1000);
    const rows = engine.readAfter(0, 2000);
    expect(rows.map((row) => row.position)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(rows.map((row) => row.persistenceKey)).toEqual(Array.from({ length: 1000 }, (_, i) => `vehicle/v-${i}`));
    expect(engine.lastPosition()).toBe(1000);
  });

  it('batches persists from handlers that run in separate setImmediate callbacks, as nact runs them', async () => {
    const { engine } = openJournal();
    const persists = await new Promise<Promise<void>[]>((resolve) => {
      const issued: Promise<void>[] = [];
      for (let i = 0; i < 200; i += 1) {
        setImmediate(() => {
          issued.push(engine.persist(event(`booking/b-${i}`, 1)));
          if (issued.length === 200) resolve(issued);
        });
      }
    });
    await Promise.all(persists);
    expect(engine.stats()).toEqual({ commits: 1, rows: 200, lastBatchSize: 200 });
  });

  it('resolves a persist only once its row is visible to another connection', async () => {
    const { engine, temp } = openJournal();
    await engine.persist(event('booking/b-1', 1, { type: 'BookingRequested' }));
    const reader = new Database(temp.file, { readonly: true });
    try {
      const row = reader.prepare('SELECT event_type, sequence_number FROM journal WHERE persistence_key = ?').get('booking/b-1');
      expect(row).toEqual({ event_type: 'BookingRequested', sequence_number: 1 });
    } finally {
      reader.close();
    }
  });

  it('rejects only the duplicate (key, sequence number); the rest of its batch commits', async () => {
    const { engine, db } = openJournal();
    await engine.persist(event('vehicle/v-1', 1));
    const results = await Promise.allSettled([
      engine.persist(event('vehicle/v-2', 1)),
      engine.persist(event('vehicle/v-1', 1, { type: 'Again' })),
      engine.persist(event('vehicle/v-1', 2)),
    ]);
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const failure = (results[1] as PromiseRejectedResult).reason as unknown;
    expect(failure).toBeInstanceOf(JournalError);
    expect((failure as JournalError).code).toBe('duplicate-sequence-number');
    expect(journalCount(db)).toBe(3);
    // The failed insert consumed no position: positions stay gap-free.
    expect(engine.readAfter(0, 10).map((row) => [row.position, row.persistenceKey, row.sequenceNumber])).toEqual([
      [1, 'vehicle/v-1', 1],
      [2, 'vehicle/v-2', 1],
      [3, 'vehicle/v-1', 2],
    ]);
    expect(engine.stats().commits).toBe(2);
  });

  it('rejects an event without a JSON form and a tag with a comma, alone', async () => {
    const { engine } = openJournal();
    const results = await Promise.allSettled([
      engine.persist({ ...event('k/1', 1), data: undefined }),
      engine.persist(event('k/4', 1, { type: 'Big', amount: 1n })),
      engine.persist(event('k/2', 1, { type: 'Fine' }, ['a,b'])),
      engine.persist(event('k/3', 1)),
    ]);
    expect(results.map((result) => (result.status === 'rejected' ? (result.reason as JournalError).code : 'ok'))).toEqual([
      'unserialisable-event',
      'unserialisable-event',
      'invalid-tag',
      'ok',
    ]);
  });

  it('stores event type, sorted tags, public flag, trace ids and createdAt', async () => {
    const { engine, db } = openJournal();
    await Promise.all([
      engine.persist(event('booking/b-1', 1, { type: 'BookingConfirmed' }, ['public', 'booking']), {
        traceId: 'a'.repeat(32),
        spanId: 'b'.repeat(16),
      }),
      engine.persist(event('booking/b-2', 1, 'just a string')),
    ]);
    const records = db
      .prepare('SELECT event_type, tags, is_public, trace_id, span_id, created_at FROM journal ORDER BY position')
      .all();
    expect(records).toEqual([
      { event_type: 'BookingConfirmed', tags: 'booking,public', is_public: 1, trace_id: 'a'.repeat(32), span_id: 'b'.repeat(16), created_at: 1_700_000_000_001 },
      { event_type: 'unknown', tags: '', is_public: 0, trace_id: null, span_id: null, created_at: 1_700_000_000_001 },
    ]);
  });

  it('flush() waits for the queued persists; close() drains and then refuses new ones', async () => {
    const { engine, db } = openJournal();
    const settled: string[] = [];
    void engine.persist(event('k/1', 1)).then(() => settled.push('persist'));
    await engine.flush();
    expect(settled).toEqual(['persist']);
    expect(journalCount(db)).toBe(1);

    const queued = engine.persist(event('k/1', 2));
    await engine.close();
    await expect(queued).resolves.toBeUndefined();
    await expect(engine.persist(event('k/1', 3))).rejects.toMatchObject({ code: 'engine-closed' });
    expect(journalCount(db)).toBe(2);
  });
});

describe('projectors', () => {
  function withCounterTable(db: Db) {
    db.exec('CREATE TABLE added (persistence_key TEXT PRIMARY KEY, total INTEGER NOT NULL)');
    const add = db.prepare(
      'INSERT INTO added (persistence_key, total) VALUES (?, ?) ON CONFLICT (persistence_key) DO UPDATE SET total = total + excluded.total',
    );
    return (row: JournalRow) => {
      const data = row.data as { amount: number };
      add.run(row.persistenceKey, data.amount);
      // Fails after its own write: the savepoint must take that write back too.
      if (data.amount < 0) throw new Error('negative amounts are not allowed');
    };
  }

  it('run in the commit transaction; a throwing projector rejects its persist and leaves no trace of it', async () => {
    const temp = tempDbFile();
    const db = openDatabase(temp.file);
    const projector = withCounterTable(db);
    const engine = new SqliteJournalEngine(db, { projectors: [projector] });
    opened.push({ db, temp });

    const results = await Promise.allSettled([
      engine.persist(event('counter/a', 1, { type: 'Added', amount: 5 })),
      engine.persist(event('counter/b', 1, { type: 'Added', amount: -1 })),
      engine.persist(event('counter/a', 2, { type: 'Added', amount: 7 })),
    ]);
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(((results[1] as PromiseRejectedResult).reason as JournalError).code).toBe('projector-failed');
    expect(db.prepare('SELECT persistence_key, total FROM added ORDER BY persistence_key').all()).toEqual([{ persistence_key: 'counter/a', total: 12 }]);
    expect(engine.readAfter(0, 10).map((row) => row.persistenceKey)).toEqual(['counter/a', 'counter/a']);
    expect(engine.readAfter(0, 10).map((row) => row.position)).toEqual([1, 2]);
  });

  it('a failure that ends the whole transaction rejects every persist of the batch, and none is in the journal', async () => {
    const temp = tempDbFile();
    const db = openDatabase(temp.file);
    opened.push({ db, temp });
    // Stands in for SQLITE_FULL / SQLITE_IOERR, after which SQLite has already rolled the transaction back.
    const engine = new SqliteJournalEngine(db, {
      projectors: [(row) => {
        if (row.persistenceKey === 'k/boom') db.exec('ROLLBACK');
      }],
    });
    const results = await Promise.allSettled([
      engine.persist(event('k/1', 1)),
      engine.persist(event('k/boom', 1)),
      engine.persist(event('k/2', 1)),
    ]);
    expect(results.map((result) => (result.status === 'rejected' ? (result.reason as JournalError).code : 'ok'))).toEqual([
      'write-failed',
      'write-failed',
      'write-failed',
    ]);
    expect(journalCount(db)).toBe(0);
    expect(engine.stats()).toMatchObject({ commits: 0, rows: 0 });
    // The engine keeps working afterwards.
    await engine.persist(event('k/1', 1));
    expect(engine.readAfter(0, 10).map((row) => row.persistenceKey)).toEqual(['k/1']);
  });

  it('with key prefixes, see only the rows of those keys; a failure of theirs still takes back only its own row', async () => {
    const temp = tempDbFile();
    const db = openDatabase(temp.file);
    const counting = withCounterTable(db);
    const seen: string[] = [];
    const projector = Object.assign((row: JournalRow) => {
      seen.push(row.persistenceKey);
      counting(row);
    }, { keyPrefixes: ['counter/'] });
    const engine = new SqliteJournalEngine(db, { projectors: [projector] });
    opened.push({ db, temp });

    const results = await Promise.allSettled([
      engine.persist(event('counter/a', 1, { type: 'Added', amount: 5 })),
      engine.persist(event('other/x', 1, { type: 'Added', amount: -1 })),
      engine.persist(event('counter/b', 1, { type: 'Added', amount: -1 })),
      engine.persist(event('counter/a', 2, { type: 'Added', amount: 7 })),
    ]);
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(seen).toEqual(['counter/a', 'counter/b', 'counter/a']);
    expect(engine.readAfter(0, 10).map((row) => row.persistenceKey)).toEqual(['counter/a', 'other/x', 'counter/a']);
    expect(db.prepare('SELECT persistence_key, total FROM added ORDER BY persistence_key').all()).toEqual([{ persistence_key: 'counter/a', total: 12 }]);
  });

  it('see each row with its committed position', async () => {
    const seen: number[] = [];
    const { engine } = openJournal({ projectors: [(row) => seen.push(row.position)] });
    await Promise.all([engine.persist(event('k/1', 1)), engine.persist(event('k/2', 1))]);
    expect(seen).toEqual([1, 2]);
  });
});

describe('commit listeners', () => {
  it('get exactly the committed rows of each commit, before the persists resolve', async () => {
    const { engine } = openJournal();
    const commits: JournalRow[][] = [];
    const unsubscribe = engine.onCommit((rows) => commits.push([...rows]));
    await engine.persist(event('k/1', 1));
    let listenedBeforeResolve = false;
    const second = engine.persist(event('k/1', 1)).catch(() => undefined);
    const third = engine.persist(event('k/2', 1, { type: 'Other', amount: 2 }, ['public'])).then(() => {
      listenedBeforeResolve = commits.length === 2;
    });
    await Promise.all([second, third]);

    expect(listenedBeforeResolve).toBe(true);
    expect(commits.map((rows) => rows.map((row) => `${row.position}:${row.persistenceKey}#${row.sequenceNumber}`))).toEqual([
      ['1:k/1#1'],
      ['2:k/2#1'],
    ]);
    expect(commits[1]![0]).toMatchObject({ eventType: 'Other', data: { type: 'Other', amount: 2 }, tags: ['public'] });

    unsubscribe();
    await engine.persist(event('k/3', 1));
    expect(commits).toHaveLength(2);
  });

  it('a throwing listener does not fail the persists or the other listeners', async () => {
    const { engine } = openJournal();
    const seen: number[] = [];
    engine.onCommit(() => {
      throw new Error('listener bug');
    });
    engine.onCommit((rows) => seen.push(rows.length));
    await expect(engine.persist(event('k/1', 1))).resolves.toBeUndefined();
    expect(seen).toEqual([1]);
  });
});

describe('reads', () => {
  it('events() returns events after the offset, ascending, as an awaitable and via reduce', async () => {
    const { engine } = openJournal();
    // Issued out of order across two turns: reads must still come back ascending.
    await Promise.all([engine.persist(event('k/1', 3, { type: 'C' }, ['x'])), engine.persist(event('k/2', 1))]);
    await Promise.all([engine.persist(event('k/1', 1, { type: 'A' }, ['x', 'y'])), engine.persist(event('k/1', 2, { type: 'B' }))]);

    const all = await engine.events('k/1', 0);
    expect(all.map((e) => e.sequenceNumber)).toEqual([1, 2, 3]);
    expect(all[0]).toEqual({ data: { type: 'A' }, sequenceNumber: 1, key: 'k/1', createdAt: 1_700_000_000_001, isDeleted: false, tags: ['x', 'y'] });
    expect((await engine.events('k/1', 1)).map((e) => e.sequenceNumber)).toEqual([2, 3]);
    expect((await engine.events('k/1', 0, 2)).map((e) => e.sequenceNumber)).toEqual([1, 2]);
    expect((await engine.events('k/1', 0, undefined, ['x'])).map((e) => e.sequenceNumber)).toEqual([1, 3]);
    expect((await engine.events('k/1', 0, 1, ['x'])).map((e) => e.sequenceNumber)).toEqual([1]);
    const types = await engine.events('k/1', 0).reduce((acc: string, e) => acc + (e.data as { type: string }).type, '');
    expect(types).toBe('ABC');
  });

  it('events() read after persists still queued in the same turn', async () => {
    const { engine } = openJournal();
    void engine.persist(event('k/1', 1));
    const events = await engine.events('k/1', 0);
    expect(events.map((e) => e.sequenceNumber)).toEqual([1]);
  });

  it('readAfter and lastPosition filter by tag; public uses the partial index', async () => {
    const { engine, db } = openJournal();
    await Promise.all([
      engine.persist(event('k/1', 1, { type: 'A' }, ['public'])),
      engine.persist(event('k/1', 2, { type: 'B' }, ['internal'])),
      engine.persist(event('k/1', 3, { type: 'C' }, ['public', 'internal'])),
      engine.persist(event('k/1', 4, { type: 'D' }, ['publicity'])),
    ]);
    expect(engine.readAfter(0, 10, 'public').map((row) => row.eventType)).toEqual(['A', 'C']);
    expect(engine.readAfter(1, 10, 'public').map((row) => row.eventType)).toEqual(['C']);
    expect(engine.readAfter(0, 1, 'public').map((row) => row.eventType)).toEqual(['A']);
    expect(engine.readAfter(0, 10, 'internal').map((row) => row.eventType)).toEqual(['B', 'C']);
    expect(engine.readAfter(0, 10, 'publicity').map((row) => row.eventType)).toEqual(['D']);
    expect(engine.readAfter(2, 10).map((row) => row.eventType)).toEqual(['C', 'D']);
    expect(engine.lastPosition()).toBe(4);
    expect(engine.lastPosition('public')).toBe(3);
    expect(engine.lastPosition('internal')).toBe(3);
    expect(engine.lastPosition('nothing')).toBe(0);

    const plan = db
      .prepare('EXPLAIN QUERY PLAN SELECT position FROM journal WHERE is_public = 1 AND position > ? ORDER BY position LIMIT ?')
      .all(0, 10) as { detail: string }[];
    expect(plan.map((step) => step.detail).join(' ')).toContain('journal_public');
  });

  it('an empty journal has position 0 and no events', async () => {
    const { engine } = openJournal();
    expect(engine.lastPosition()).toBe(0);
    expect(engine.lastPosition('public')).toBe(0);
    expect(engine.readAfter(0, 10)).toEqual([]);
    expect(await engine.events('k/1', 0)).toEqual([]);
    expect(await engine.latestSnapshot('k/1')).toBeUndefined();
  });
});

describe('snapshots', () => {
  it('round-trip; the latest wins and a late older one does not replace it', async () => {
    const { engine, db } = openJournal();
    await engine.takeSnapshot({ key: 'k/1', sequenceNumber: 5, data: { total: 5 }, createdAt: 1 });
    expect(await engine.latestSnapshot('k/1')).toEqual({ key: 'k/1', sequenceNumber: 5, data: { total: 5 }, createdAt: 1 });

    await engine.takeSnapshot({ key: 'k/1', sequenceNumber: 10, data: { total: 10 }, createdAt: 2 });
    await engine.takeSnapshot({ key: 'k/1', sequenceNumber: 7, data: { total: 7 }, createdAt: 3 });
    expect(await engine.latestSnapshot('k/1')).toEqual({ key: 'k/1', sequenceNumber: 10, data: { total: 10 }, createdAt: 2 });
    expect(await engine.latestSnapshot('k/2')).toBeUndefined();
    expect((db.prepare('SELECT COUNT(*) AS n FROM snapshots').get() as { n: number }).n).toBe(1);
  });

  it('share the commit of the events queued in the same turn', async () => {
    const { engine } = openJournal();
    await Promise.all([
      engine.persist(event('k/1', 1)),
      engine.takeSnapshot({ key: 'k/1', sequenceNumber: 1, data: 1, createdAt: 1 }),
    ]);
    expect(engine.stats().commits).toBe(1);
  });
});

describe('real nact recovery', () => {
  type CounterMsg = { type: 'add'; amount: number } | { type: 'get'; replyTo: Ref<number> };
  type RecoveringContext = { persist: (msg: CounterMsg) => Promise<void>; recovering?: boolean };

  /** A persistent nact actor that persists every `add` and sums the amounts. */
  function startCounter(engine: SqliteJournalEngine, snapshotEvery?: number) {
    const system = start(configurePersistence(asNactEngine(engine)));
    const counter = spawnPersistent(
      system,
      async (state: number, msg: CounterMsg, ctx) => {
        const context = ctx as unknown as RecoveringContext;
        if (msg.type === 'get') {
          dispatch(msg.replyTo, state);
          return state;
        }
        if (!context.recovering) await context.persist(msg);
        return state + msg.amount;
      },
      'counter/c-1',
      'c-1',
      { initialState: 0, ...(snapshotEvery ? { snapshotEvery } : {}) },
    );
    const total = () => query(counter, (replyTo: Ref<number>) => ({ type: 'get' as const, replyTo }), 5_000) as Promise<number>;
    return { system, counter, total };
  }

  async function runAndRestart(snapshotEvery?: number) {
    const temp = tempDbFile();
    const amounts = [1, 2, 3, 4, 5, 6, 7];

    const db1 = openDatabase(temp.file);
    const engine1 = new SqliteJournalEngine(db1);
    const first = startCounter(engine1, snapshotEvery);
    for (const amount of amounts) dispatch(first.counter, { type: 'add', amount });
    expect(await first.total()).toBe(28);
    stop(first.system);
    await engine1.close();
    const snapshotBefore = engine1.readSnapshot('counter/c-1');
    db1.close();

    const db2 = openDatabase(temp.file);
    opened.push({ db: db2, temp });
    const engine2 = new SqliteJournalEngine(db2);
    const eventsRead = vi.spyOn(engine2, 'events');
    const second = startCounter(engine2, snapshotEvery);
    expect(await second.total()).toBe(28);
    // Still writable with the right next sequence number after recovery.
    dispatch(second.counter, { type: 'add', amount: 100 });
    expect(await second.total()).toBe(128);
    stop(second.system);
    await engine2.close();
    return { db: db2, eventsRead, snapshotBefore };
  }

  it('recovers the state of a persistent actor from the journal after a restart', async () => {
    const { db, eventsRead } = await runAndRestart();
    expect(eventsRead).toHaveBeenCalledWith('counter/c-1', 0);
    expect(db.prepare('SELECT MAX(sequence_number) AS last FROM journal WHERE persistence_key = ?').get('counter/c-1')).toEqual({ last: 8 });
  });

  it('recovers from the latest snapshot plus the events after it', async () => {
    const { db, eventsRead, snapshotBefore } = await runAndRestart(3);
    // With snapshotEvery 3 and 7 events, nact snapshots part-way: the snapshot holds the sum so far.
    const at = snapshotBefore!.sequenceNumber;
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThan(7);
    expect(snapshotBefore!.data).toBe((at * (at + 1)) / 2);
    // Recovery asked only for the events after the snapshot and got exactly those.
    expect(eventsRead).toHaveBeenCalledWith('counter/c-1', at);
    const replayed = (await eventsRead.mock.results[0]!.value) as PersistedEvent[];
    expect(replayed.map((e) => e.sequenceNumber)).toEqual(Array.from({ length: 7 - at }, (_, i) => at + 1 + i));
    expect(db.prepare('SELECT COUNT(*) AS n FROM snapshots').get()).toEqual({ n: 1 });
  });
});

describe('with a journal of record (cluster mode; a replicator the test controls)', () => {
  /** A replicator whose batches wait until the test settles them, in order. */
  function heldReplicator() {
    const batches: Array<{ batch: ReplicatedBatch; commit: () => void; fail: (error: unknown) => void }> = [];
    let offset = 100;
    const replicator: BatchReplicator = {
      replicate: (batch) =>
        new Promise<number>((resolve, reject) => {
          batches.push({ batch, commit: () => resolve((offset += 2)), fail: reject });
        }),
    };
    return { replicator, batches };
  }
  const settledSoon = async <T>(promise: Promise<T>): Promise<'pending' | 'settled'> => Promise.race([promise.then(() => 'settled' as const, () => 'settled' as const), new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), 30))]);

  it('acknowledges nothing before the batch is committed there, then writes it with its offset; one batch in flight, the rest queues as the next', async () => {
    const { db, engine } = openJournal();
    const { replicator, batches } = heldReplicator();
    engine.replicateTo(replicator);
    const committed: number[][] = [];
    engine.onCommit((rows) => committed.push(rows.map((row) => row.sequenceNumber)));

    const first = [engine.persist(event('vehicle/a', 1)), engine.persist(event('vehicle/b', 1))];
    await vi.waitFor(() => expect(batches).toHaveLength(1));
    expect(batches[0]!.batch.rows.map((row) => `${row.key}#${row.seq}`)).toEqual(['vehicle/a#1', 'vehicle/b#1']);
    // While the first batch is out: later persists wait, and a recovery of its key reads after it.
    const second = [engine.persist(event('vehicle/a', 2)), engine.persist(event('vehicle/c', 1))];
    const recovery = engine.events('vehicle/a', 0);
    expect(await settledSoon(Promise.all(first))).toBe('pending');
    expect(journalCount(db)).toBe(0);
    expect(batches).toHaveLength(1);

    batches[0]!.commit();
    await Promise.all(first);
    expect(engine.replicatedOffset()).toBe(102);
    await vi.waitFor(() => expect(batches).toHaveLength(2));
    expect(batches[1]!.batch.rows.map((row) => `${row.key}#${row.seq}`)).toEqual(['vehicle/a#2', 'vehicle/c#1']);
    batches[1]!.commit();
    await Promise.all(second);
    expect((await recovery).map((each) => each.sequenceNumber)).toEqual([1, 2]);
    expect(committed).toEqual([[1, 1], [2, 1]]);
    expect(engine.replicatedOffset()).toBe(104);
    await engine.close();
  });

  it('halts when a batch is not committed there: its listeners hear it before the batch is refused, and every later persist is refused', async () => {
    const { db, engine } = openJournal();
    const { replicator, batches } = heldReplicator();
    engine.replicateTo(replicator);
    const order: string[] = [];
    engine.onHalt(() => order.push('halt'));

    const failed = engine.persist(event('vehicle/a', 1)).catch((error: unknown) => {
      order.push('refused');
      throw error;
    });
    await vi.waitFor(() => expect(batches).toHaveLength(1));
    const queued = engine.persist(event('vehicle/b', 1));
    batches[0]!.fail(new Error('fenced'));
    await expect(failed).rejects.toMatchObject({ code: 'not-replicated' });
    await expect(queued).rejects.toMatchObject({ code: 'halted' });
    await expect(engine.persist(event('vehicle/c', 1))).rejects.toMatchObject({ code: 'halted' });
    expect(order).toEqual(['halt', 'refused']);
    expect(journalCount(db)).toBe(0);
    expect(batches).toHaveLength(1); // the queued persist never went out
    // A listener added after the halt hears of it at once.
    const late = vi.fn();
    engine.onHalt(late);
    expect(late).toHaveBeenCalledOnce();
    await engine.close();
  });

  it("pauses before the next batch as long as the replicator asks for the batch just committed, and what is persisted meanwhile joins that next batch", async () => {
    const { engine } = openJournal();
    const { replicator, batches } = heldReplicator();
    const asked: number[] = [];
    engine.replicateTo({ ...replicator, pauseAfterCommitMs: (rows) => (asked.push(rows), rows >= 2 ? 80 : 0) });

    const first = [engine.persist(event('vehicle/a', 1)), engine.persist(event('vehicle/b', 1))];
    await vi.waitFor(() => expect(batches).toHaveLength(1));
    batches[0]!.commit();
    await Promise.all(first);
    const committedAt = performance.now();
    const later = [engine.persist(event('vehicle/c', 1))];
    await new Promise((resolve) => setTimeout(resolve, 20));
    later.push(engine.persist(event('vehicle/d', 1)));
    await vi.waitFor(() => expect(batches).toHaveLength(2));
    expect(performance.now() - committedAt).toBeGreaterThanOrEqual(75);
    expect(batches[1]!.batch.rows.map((row) => row.key)).toEqual(['vehicle/c', 'vehicle/d']);
    expect(asked).toEqual([2]);
    batches[1]!.commit();
    await Promise.all(later);
    // After the pause it asked for that batch (80 ms), a one-row batch, which asks for none.
    const lone = engine.persist(event('vehicle/e', 1));
    await vi.waitFor(() => expect(batches).toHaveLength(3));
    batches[2]!.commit();
    await lone;
    await vi.waitFor(() => expect(asked).toEqual([2, 2, 1]));
    const startedAt = performance.now();
    const next = engine.persist(event('vehicle/f', 1));
    await vi.waitFor(() => expect(batches).toHaveLength(4));
    expect(performance.now() - startedAt).toBeLessThan(60);
    batches[3]!.commit();
    await next;
    await engine.close();
  });

  it('holds() knows a key while it is queued, out to the journal of record, and once written; never one it has nothing of', async () => {
    const { engine } = openJournal();
    const { replicator, batches } = heldReplicator();
    engine.replicateTo(replicator);
    expect(engine.holds('idempotency/k1')).toBe(false);
    const persisted = engine.persist(event('idempotency/k1', 1));
    expect(engine.holds('idempotency/k1')).toBe(true); // queued
    await vi.waitFor(() => expect(batches).toHaveLength(1));
    expect(engine.holds('idempotency/k1')).toBe(true); // in the batch out to Kafka, not in the file yet
    batches[0]!.commit();
    await persisted;
    expect(engine.holds('idempotency/k1')).toBe(true);
    expect(engine.holds('idempotency/k2')).toBe(false);
    await engine.close();
  });

  it('leaves the single-process path alone: without a replicator, nothing is recorded as an offset', async () => {
    const { engine } = openJournal();
    await engine.persist(event('vehicle/a', 1));
    expect(engine.replicatedOffset()).toBeNull();
  });
});
