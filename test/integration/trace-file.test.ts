import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openTraceFile, traceFileOf } from '../../persistence/trace-file.js';
import { openDatabase } from '../../persistence/sqlite.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';
import { waitFor } from '../helpers/wait.js';

/** Trace steps in a file of their own beside the shard's journal (persistence/trace-file.ts). */
describe('the shard\'s trace file', () => {
  const logger = createLogger('silent');
  let temp: TempDbFile | undefined;
  let fleet: TestFleet | undefined;
  afterEach(async () => {
    await fleet?.close();
    fleet = undefined;
    temp?.cleanup();
    temp = undefined;
  });

  const oldStep = (id: number, traceId: string) => ({
    id,
    trace_id: traceId,
    span_id: `span-${id}`,
    from_actor: 'http',
    to_actor: 'booking/b-1',
    message_type: 'CreateBooking',
    started_at: 1_000 + id,
    duration_us: 10,
  });

  it('moves the steps an earlier version kept in the journal\'s file, ids kept, once', () => {
    temp = tempDbFile();
    const shardFile = temp.file.replace(/\.db$/, '.shard-0.db');
    const shardDb = openDatabase(shardFile);
    const insert = shardDb.prepare(
      'INSERT INTO trace_steps (id, trace_id, span_id, from_actor, to_actor, message_type, started_at, duration_us) VALUES (@id, @trace_id, @span_id, @from_actor, @to_actor, @message_type, @started_at, @duration_us)',
    );
    for (const id of [3, 7, 8]) insert.run(oldStep(id, id === 3 ? 'trace-a' : 'trace-b'));

    const first = openTraceFile(shardDb, shardFile, logger);
    expect(first.file).toBe(traceFileOf(shardFile));
    expect(first.file.endsWith('.shard-0.traces.db')).toBe(true);
    expect(first.db.prepare('SELECT id, trace_id FROM trace_steps ORDER BY id').all()).toEqual([
      { id: 3, trace_id: 'trace-a' },
      { id: 7, trace_id: 'trace-b' },
      { id: 8, trace_id: 'trace-b' },
    ]);
    expect(shardDb.prepare('SELECT count(*) AS n FROM trace_steps').get()).toEqual({ n: 0 });
    // New steps follow the moved ones.
    first.db.prepare("INSERT INTO trace_steps (trace_id, span_id, from_actor, to_actor, message_type, started_at, duration_us) VALUES ('trace-c', 's', 'http', 'booking/b-2', 'CreateBooking', 2000, 1)").run();
    expect(first.db.prepare("SELECT id FROM trace_steps WHERE trace_id = 'trace-c'").get()).toEqual({ id: 9 });
    first.db.close();

    // Opened again: nothing left to move, nothing duplicated.
    const again = openTraceFile(shardDb, shardFile, logger);
    expect(again.db.prepare('SELECT count(*) AS n FROM trace_steps').get()).toEqual({ n: 4 });
    again.db.close();
    shardDb.close();
  });

  it('takes a running shard\'s steps, not the journal\'s file, and keeps them across a restart', async () => {
    fleet = await startTestFleet();
    expect((await fleet.registerVehicle('tf-1')).statusCode).toBe(201);
    const booked = await fleet.book('alice', 'tf-1');
    expect(booked.statusCode).toBe(201);
    const traceId = String(booked.headers['traceparent']).split('-')[1];
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    await waitFor(() => fleet!.countTraceSteps('SELECT count(*) AS n FROM trace_steps') > 0, { what: 'trace steps written' });
    expect(fleet.count('SELECT count(*) AS n FROM trace_steps')).toBe(0);

    const steps = fleet.countTraceSteps('SELECT count(*) AS n FROM trace_steps');
    fleet = await fleet.restart();
    expect(fleet.countTraceSteps('SELECT count(*) AS n FROM trace_steps')).toBeGreaterThanOrEqual(steps);
    for (const shardFile of fleet.fleet.shardFiles) {
      const traces = new Database(traceFileOf(shardFile), { readonly: true });
      try {
        expect(traces.pragma('journal_mode', { simple: true })).toBe('wal');
      } finally {
        traces.close();
      }
    }
    // The trace reads back through the API from the trace file, after the restart.
    const viewed = await fleet.request({ method: 'GET', url: `/traces/${traceId}`, as: 'ops', role: 'operator' });
    expect(viewed.statusCode).toBe(200);
    expect((viewed.json() as { steps: unknown[] }).steps.length).toBeGreaterThan(0);
  });
});
