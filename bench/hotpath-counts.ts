/**
 * `npx tsx bench/hotpath-counts.ts [--bookings 200] [--keyed]`: the work one booking costs, counted, not timed.
 *
 * The whole fleet in this process (shards inline over a real MessageChannel, the same protocol and
 * code as the worker threads), vehicles registered and the fleet restarted first (so that, as in the
 * `book` scenario, every vehicle is passivated), then `--bookings` bookings of distinct vehicles by
 * distinct customers, one at a time. Counted per booking: SQLite statements run (reads and writes,
 * by statement), journal rows, trace steps, messages and bytes across the shard's port (v8
 * serialisation, which structured clone uses). Deterministic: the figures a change must move, before
 * and after, independent of the machine's load. Prints JSON.
 */
import Database from 'better-sqlite3';
import { parseArgs } from 'node:util';
import { serialize } from 'node:v8';
import { MessagePort } from 'node:worker_threads';
import { startTestFleet } from '../test/helpers/fleet.js';

const { values } = parseArgs({
  options: {
    bookings: { type: 'string', default: '200' },
    /** Every booking with its own Idempotency-Key (as clients send them). */
    keyed: { type: 'boolean', default: false },
  },
});
const bookings = Number(values.bookings);
const keyHeaders = (customer: string): Record<string, string> => (values.keyed ? { 'idempotency-key': `key-${customer}` } : {});

interface Counts {
  statements: Map<string, number>;
  portMessages: number;
  portBytes: number;
}
const counts: Counts = { statements: new Map(), portMessages: 0, portBytes: 0 };
let counting = false;

// Every prepared statement of every connection shares this prototype.
const probe = new Database(':memory:');
const statementProto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<'run' | 'get' | 'all' | 'iterate', (...args: unknown[]) => unknown> & { source?: string };
probe.close();
for (const method of ['run', 'get', 'all', 'iterate'] as const) {
  const original = statementProto[method];
  statementProto[method] = function (this: { source: string }, ...args: unknown[]) {
    if (counting) {
      const sql = this.source.replace(/\s+/g, ' ').trim().slice(0, 90);
      counts.statements.set(sql, (counts.statements.get(sql) ?? 0) + 1);
    }
    return original.apply(this, args);
  };
}
const postMessage = MessagePort.prototype.postMessage;
MessagePort.prototype.postMessage = function (this: MessagePort, message: unknown, transfer?: readonly never[]) {
  const kind = (message as { t?: string } | null)?.t;
  if (counting && kind !== 'stats') {
    counts.portMessages += 1;
    counts.portBytes += serialize(message).length;
  }
  return postMessage.call(this, message, transfer);
} as typeof MessagePort.prototype.postMessage;

const env = { TRACE_SAMPLE: '1', PAYMENT_LATENCY_MS: '0', LOG_LEVEL: 'silent' };
let fleet = await startTestFleet(env);
const vehicleIds = Array.from({ length: bookings + 5 }, (_, index) => `hc-${String(index).padStart(5, '0')}`);
for (const id of vehicleIds) {
  const registered = await fleet.registerVehicle(id);
  if (registered.statusCode !== 201) throw new Error(`register ${id}: ${registered.statusCode} ${registered.body}`);
}
fleet = await fleet.restart();
// Five bookings first, uncounted: prepared statements and first-use work are not per booking.
for (let index = 0; index < 5; index += 1) await fleet.book(`warm-${index}`, vehicleIds[bookings + index]!, {}, keyHeaders(`warm-${index}`));
await fleet.fleet.local.journal.flush();
await new Promise((resolve) => setTimeout(resolve, 300));
const before = fleet.fleet.local.journal.stats();
const traceRowsBefore = fleet.countTraceSteps('SELECT count(*) AS n FROM trace_steps');
counting = true;
for (let index = 0; index < bookings; index += 1) {
  const response = await fleet.book(`customer-${index}`, vehicleIds[index]!, {}, keyHeaders(`customer-${index}`));
  if (response.statusCode !== 201) throw new Error(`booking ${index}: ${response.statusCode} ${response.body}`);
}
await fleet.fleet.local.journal.flush();
counting = false;
// Trace steps are written every 100 ms: wait for the buffer.
await new Promise((resolve) => setTimeout(resolve, 300));
const after = fleet.fleet.local.journal.stats();
const traceRows = fleet.countTraceSteps('SELECT count(*) AS n FROM trace_steps') - traceRowsBefore;
await fleet.close();

const per = (n: number) => Number((n / bookings).toFixed(2));
const statements = [...counts.statements.entries()].sort((a, b) => b[1] - a[1]).map(([sql, n]) => ({ perBooking: per(n), sql }));
const isRead = (sql: string) => /^select/i.test(sql);
console.log(
  JSON.stringify(
    {
      bookings,
      keyed: values.keyed,
      perBooking: {
        journalRows: per(after.rows - before.rows),
        traceSteps: per(traceRows),
        sqlReads: per(statements.filter((s) => isRead(s.sql)).reduce((sum, s) => sum + s.perBooking * bookings, 0)),
        sqlWrites: per(statements.filter((s) => !isRead(s.sql)).reduce((sum, s) => sum + s.perBooking * bookings, 0)),
        portMessages: per(counts.portMessages),
        portBytes: per(counts.portBytes),
      },
      statements,
    },
    null,
    2,
  ),
);
process.exit(0);
