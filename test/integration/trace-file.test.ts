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

  it('moves the steps an earlier version kept in the journal\'s file, in their order, and a move cut short is done again without doubles', () => {
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
    expect(first.db.prepare('SELECT span_id, trace_id FROM trace_steps ORDER BY id').all()).toEqual([
      { span_id: 'span-3', trace_id: 'trace-a' },
      { span_id: 'span-7', trace_id: 'trace-b' },
      { span_id: 'span-8', trace_id: 'trace-b' },
    ]);
    expect(shardDb.prepare('SELECT count(*) AS n FROM trace_steps').get()).toEqual({ n: 0 });
    // New steps follow the moved ones.
    first.db.prepare("INSERT INTO trace_steps (trace_id, span_id, from_actor, to_actor, message_type, started_at, duration_us) VALUES ('trace-c', 's', 'http', 'booking/b-2', 'CreateBooking', 2000, 1)").run();
    const ids = first.db.prepare<[], { id: number }>('SELECT id FROM trace_steps ORDER BY id').all().map((row) => row.id);
    expect(ids).toHaveLength(4);
    expect(first.db.prepare("SELECT id FROM trace_steps WHERE trace_id = 'trace-c'").get()).toEqual({ id: ids[3] });
    first.db.close();

    // As if the last start had copied the steps and stopped before the journal's file let go of them:
    // one moved step is back there, beside one the trace file never had.
    insert.run(oldStep(7, 'trace-b'));
    insert.run(oldStep(9, 'trace-d'));
    const again = openTraceFile(shardDb, shardFile, logger);
    expect(again.db.prepare('SELECT trace_id, count(*) AS n FROM trace_steps GROUP BY trace_id ORDER BY trace_id').all()).toEqual([
      { trace_id: 'trace-a', n: 1 },
      { trace_id: 'trace-b', n: 2 },
      { trace_id: 'trace-c', n: 1 },
      { trace_id: 'trace-d', n: 1 },
    ]);
    expect(shardDb.prepare('SELECT count(*) AS n FROM trace_steps').get()).toEqual({ n: 0 });
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

    // Booked right before a graceful restart: its steps are still buffered, and the stop writes them.
    expect((await fleet.registerVehicle('tf-2')).statusCode).toBe(201);
    const last = await fleet.book('bob', 'tf-2');
    expect(last.statusCode).toBe(201);
    const lastTraceId = String(last.headers['traceparent']).split('-')[1]!;
    fleet = await fleet.restart();
    expect(fleet.countTraceSteps('SELECT count(*) AS n FROM trace_steps WHERE trace_id = ?', lastTraceId)).toBeGreaterThan(0);
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
