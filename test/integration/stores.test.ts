import { afterEach, describe, expect, it, vi } from 'vitest';
import { SqliteCheckpointStore } from '../../persistence/checkpoints.js';
import { IDEMPOTENCY_TTL_MS, IdempotencyStore } from '../../persistence/idempotency-store.js';
import { openDatabase, type Db } from '../../persistence/sqlite.js';
import type { TraceSink } from '../../runtime/kernel/directory.js';
import { type TraceStep } from '../../runtime/kernel/trace-step.js';
import { TraceStore } from '../../persistence/trace-store.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';

const cleanups: (() => void)[] = [];

function freshDb(temp: TempDbFile = tempDbFile()): { db: Db; temp: TempDbFile } {
  const db = openDatabase(temp.file);
  cleanups.push(() => {
    if (db.open) db.close();
    temp.cleanup();
  });
  return { db, temp };
}

afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

const countRows = (db: Db, table: string): number => (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;

/** Waits for a condition that a timer makes true, without a fixed sleep. */
async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('SqliteCheckpointStore', () => {
  it('starts at 0, keeps the last position per name, and survives reopening the file', () => {
    const temp = tempDbFile();
    const db = openDatabase(temp.file);
    const store = new SqliteCheckpointStore(db);
    expect(store.get('event-relay')).toBe(0);
    store.set('event-relay', 41);
    store.set('event-relay', 42);
    store.set('sse', 7);
    db.close();

    const { db: reopened } = freshDb(temp);
    const again = new SqliteCheckpointStore(reopened);
    expect(again.get('event-relay')).toBe(42);
    expect(again.get('sse')).toBe(7);
    expect(countRows(reopened, 'checkpoints')).toBe(2);
  });
});

describe('IdempotencyStore', () => {
  function storeAt(startMs: number) {
    const { db } = freshDb();
    const clock = { now: startMs };
    return { db, clock, store: new IdempotencyStore(db, { now: () => clock.now }) };
  }

  it('finds a saved response with its parsed body, scoped per customer', () => {
    const { store } = storeAt(1_000_000);
    store.save('c-1', 'key-1', 'hash-a', 201, { id: 'b-1', status: 'CONFIRMED' });
    store.save('c-1', 'key-2', 'hash-b', 402, { type: 'https://fleet.example/problems/payment-declined' });
    expect(store.find('c-1', 'key-1')).toEqual({ requestHash: 'hash-a', statusCode: 201, body: { id: 'b-1', status: 'CONFIRMED' }, createdAt: 1_000_000 });
    expect(store.find('c-1', 'key-2')?.statusCode).toBe(402);
    expect(store.find('c-2', 'key-1')).toBeUndefined();
    expect(store.find('c-1', 'key-3')).toBeUndefined();
  });

  it('stores a body-less response as null', () => {
    const { store } = storeAt(1_000_000);
    store.save('c-1', 'k', 'h', 204, undefined);
    expect(store.find('c-1', 'k')?.body).toBeNull();
  });

  it('ignores a response older than 24 h, and a new save replaces it', () => {
    const { store, clock } = storeAt(1_000_000);
    store.save('c-1', 'key-1', 'hash-a', 201, { id: 'b-1' });
    clock.now += IDEMPOTENCY_TTL_MS - 1;
    expect(store.find('c-1', 'key-1')?.requestHash).toBe('hash-a');
    clock.now += 1;
    expect(store.find('c-1', 'key-1')).toBeUndefined();

    store.save('c-1', 'key-1', 'hash-b', 201, { id: 'b-2' });
    expect(store.find('c-1', 'key-1')).toMatchObject({ requestHash: 'hash-b', body: { id: 'b-2' }, createdAt: clock.now });
  });

  it('purges rows created before a time and says how many', () => {
    const { store, clock, db } = storeAt(1_000);
    store.save('c-1', 'old-1', 'h', 201, {});
    store.save('c-2', 'old-2', 'h', 201, {});
    clock.now = 5_000;
    store.save('c-1', 'new', 'h', 201, {});
    expect(store.purgeOlderThan(5_000)).toBe(2);
    expect(countRows(db, 'idempotency_keys')).toBe(1);
    expect(store.find('c-1', 'new')).toBeDefined();
    expect(store.purgeOlderThan(5_000)).toBe(0);
  });
});

describe('TraceStore', () => {
  let span = 0;
  function step(traceId: string, toActor: string, overrides: Partial<TraceStep> = {}): TraceStep {
    span += 1;
    return {
      traceId,
      spanId: span.toString(16).padStart(16, '0'),
      parentSpanId: null,
      fromActor: 'http',
      toActor,
      messageType: 'RequestBooking',
      payload: { vehicleId: 'v-1' },
      stateBefore: { status: 'NEW' },
      stateAfter: { status: 'REQUESTED' },
      outcome: { ok: true, value: 'b-1' },
      startedAt: 1_700_000_000_000 + span,
      durationUs: 120,
      ...overrides,
    };
  }

  it('buffers records and writes them in one transaction on the timer, not on the caller turn', async () => {
    const { db } = freshDb();
    const store = new TraceStore(db, { flushIntervalMs: 20 });
    db.pragma('wal_checkpoint(TRUNCATE)');
    for (let i = 0; i < 50; i += 1) store.record(step('t-1', `booking/b-${i}`));
    expect(countRows(db, 'trace_steps')).toBe(0);
    await until(() => countRows(db, 'trace_steps') > 0);
    expect(countRows(db, 'trace_steps')).toBe(50);
    // One commit of 50 small rows writes a handful of WAL frames; 50 commits would write 150 or more.
    const [{ log }] = db.pragma('wal_checkpoint(PASSIVE)') as [{ log: number }];
    expect(log).toBeLessThan(30);
    store.close();
  });

  it('writes its steps without an fsync of their own and leaves the journal connection on FULL', () => {
    const { db } = freshDb();
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    const store = new TraceStore(db);
    const pragmas = vi.spyOn(db, 'pragma');
    store.record(step('t-sync', 'booking/b-1'));
    store.flush();
    expect(countRows(db, 'trace_steps')).toBe(1);
    // NORMAL around the steps' transaction only; FULL again for the journal's commits.
    expect(pragmas.mock.calls.map(([source]) => source)).toEqual(['synchronous = NORMAL', 'synchronous = 2']);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    store.close();
  });

  it('writes at the end of the turn once maxBuffered steps wait', async () => {
    const { db } = freshDb();
    const store = new TraceStore(db, { flushIntervalMs: 60_000, maxBuffered: 10 });
    for (let i = 0; i < 10; i += 1) store.record(step('t-1', 'vehicle/v-1'));
    expect(countRows(db, 'trace_steps')).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(countRows(db, 'trace_steps')).toBe(10);
    store.close();
  });

  it('returns a trace in recording order with payloads and states, including steps not yet written', () => {
    const { db } = freshDb();
    const store = new TraceStore(db, { flushIntervalMs: 60_000 });
    // The store is the runtime directory's trace sink as is.
    const sink: TraceSink = store;
    sink.record(step('t-1', 'booking/b-1', { messageType: 'RequestBooking' }));
    store.record(step('t-2', 'vehicle/v-9'));
    store.record(step('t-1', 'vehicle/v-1', { fromActor: 'booking/b-1', messageType: 'ReserveVehicle', stateAfter: undefined, outcome: undefined }));

    const steps = store.byTraceId('t-1');
    expect(steps.map((s) => [s.fromActor, s.toActor, s.messageType])).toEqual([
      ['http', 'booking/b-1', 'RequestBooking'],
      ['booking/b-1', 'vehicle/v-1', 'ReserveVehicle'],
    ]);
    expect(steps[0]).toMatchObject({ payload: { vehicleId: 'v-1' }, stateBefore: { status: 'NEW' }, stateAfter: { status: 'REQUESTED' }, outcome: { ok: true, value: 'b-1' }, durationUs: 120 });
    expect(steps[1]!.stateAfter).toBeUndefined();
    expect(steps[1]!.outcome).toBeUndefined();
    expect(steps[0]!.id).toBeLessThan(steps[1]!.id);
    expect(store.byTraceId('t-unknown')).toEqual([]);
    store.close();
  });

  it('lists the distinct traces that reached an actor in the order they began: every one that changed its state, then the most recent others up to the limit', () => {
    const { db } = freshDb();
    const store = new TraceStore(db);
    const unchanged = { stateBefore: { status: 'CONFIRMED' }, stateAfter: { status: 'CONFIRMED' } };
    store.record(step('t-a', 'booking/b-1'));
    store.record(step('t-b', 'booking/b-2'));
    store.record(step('t-c', 'booking/b-1', unchanged));
    store.record(step('t-a', 'booking/b-1', { messageType: 'VehicleReserved' }));
    store.record(step('t-d', 'vehicle/v-1', { fromActor: 'booking/b-1' }));
    store.record(step('t-e', 'booking/b-1', unchanged));
    store.record(step('t-f', 'booking/b-1', unchanged));

    expect(store.traceIdsForActor('booking/b-1', 10)).toEqual(['t-a', 't-c', 't-e', 't-f']);
    // t-a changed the booking: always kept; of the others, the most recent.
    expect(store.traceIdsForActor('booking/b-1', 2)).toEqual(['t-a', 't-f']);
    expect(store.traceIdsForActor('booking/b-1', 1)).toEqual(['t-a']);
    expect(store.traceIdsForActor('booking/b-404', 10)).toEqual([]);
    store.close();
  });

  it('records at most maxStepsPerTrace steps of one trace id, also across flushes; other traces are unaffected', () => {
    const { db } = freshDb();
    const store = new TraceStore(db, { maxStepsPerTrace: 3 });
    for (let i = 0; i < 5; i += 1) store.record(step('t-reused', 'booking/b-1'));
    store.flush();
    for (let i = 0; i < 5; i += 1) store.record(step('t-reused', 'booking/b-1'));
    store.record(step('t-other', 'booking/b-1'));
    expect(store.byTraceId('t-reused')).toHaveLength(3);
    expect(store.byTraceId('t-other')).toHaveLength(1);
    expect(store.dropped).toBe(7);
    store.close();
  });

  it('deletes the steps recorded before a time, buffered ones included, and says how many', () => {
    const { db } = freshDb();
    const store = new TraceStore(db);
    store.record(step('t-old', 'booking/b-1', { startedAt: 1_000 }));
    store.record(step('t-old', 'vehicle/v-1', { startedAt: 2_000 }));
    store.record(step('t-new', 'booking/b-1', { startedAt: 5_000 }));

    expect(store.purgeOlderThan(5_000, 1)).toBe(1); // in chunks, so that a large purge can yield
    expect(store.purgeOlderThan(5_000)).toBe(1);
    expect(store.byTraceId('t-old')).toEqual([]);
    expect(store.byTraceId('t-new')).toHaveLength(1);
    store.close();
  });

  it('keeps a step whose payload cannot be serialised, marked as such', () => {
    const { db } = freshDb();
    const store = new TraceStore(db);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    store.record(step('t-1', 'booking/b-1', { payload: cyclic }));
    expect(store.byTraceId('t-1')[0]!.payload).toMatchObject({ unserialisable: expect.stringContaining('circular') });
    store.close();
  });

  it('close() writes what is buffered and later records are ignored', () => {
    const temp = tempDbFile();
    const db = openDatabase(temp.file);
    const store = new TraceStore(db, { flushIntervalMs: 60_000 });
    store.record(step('t-1', 'booking/b-1'));
    store.close();
    store.record(step('t-1', 'booking/b-1'));
    db.close();

    const { db: reopened } = freshDb(temp);
    expect(countRows(reopened, 'trace_steps')).toBe(1);
  });
});
