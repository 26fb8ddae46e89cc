/**
 * The lock baseline: the same booking written the conventional way, on the local PostgreSQL.
 * `node --import tsx bench/lock-server.ts '<json>'` with {vehicles, prefix, pad, gatewayMs, pool}
 * creates the database `fleet_bench` if missing, (re)seeds the vehicles, and prints `{"port": N}`.
 *
 * POST /bookings {vehicleId}: BEGIN; SELECT … FOR UPDATE on the vehicle row; refuse (409) unless it is
 * available; the simulated gateway call (gatewayMs) while the row lock is held; INSERT the booking;
 * UPDATE the vehicle; COMMIT (synchronous_commit on: durable like the journal at FULL). POST
 * /bookings/:id/cancel releases it. The bearer token is verified like the real API does (same secret).
 * Connection: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres), PGPASSWORD; pool of `pool` (50).
 */
import Fastify from 'fastify';
import pg from 'pg';
import { createTokenVerifier } from '../api/auth.js';
import { DEV_JWT_SECRET } from '../actors/contract/device-secrets.js';

interface LockConfig {
  readonly vehicles: number;
  readonly prefix: string;
  readonly pad: number;
  readonly gatewayMs: number;
  readonly pool: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as LockConfig;
const connection = { host: process.env.PGHOST ?? '127.0.0.1', port: Number(process.env.PGPORT ?? 5432), user: process.env.PGUSER ?? 'postgres', password: process.env.PGPASSWORD };
const DATABASE = 'fleet_bench';

async function prepare(): Promise<void> {
  const admin = new pg.Client({ ...connection, database: 'postgres' });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await admin.end();
  }
  const db = new pg.Client({ ...connection, database: DATABASE });
  await db.connect();
  try {
    await db.query('DROP TABLE IF EXISTS bookings; DROP TABLE IF EXISTS vehicles');
    await db.query(`CREATE TABLE vehicles (id text PRIMARY KEY, status text NOT NULL, booking_id text)`);
    await db.query(`CREATE TABLE bookings (id text PRIMARY KEY, vehicle_id text NOT NULL REFERENCES vehicles(id), customer_id text NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
    await db.query(`INSERT INTO vehicles (id, status) SELECT $1 || lpad(n::text, $2, '0'), 'available' FROM generate_series(1, $3) AS n`, [config.prefix, config.pad, config.vehicles]);
  } finally {
    await db.end();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let nextBooking = 0;

async function main(): Promise<void> {
  await prepare();
  const pool = new pg.Pool({ ...connection, database: DATABASE, max: config.pool });
  const verify = createTokenVerifier(DEV_JWT_SECRET);
  const app = Fastify({ logger: false });
  app.addHook('onRequest', async (request, reply) => {
    if (request.url === '/health') return;
    const token = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1];
    const check = token ? verify(token) : { ok: false as const };
    if (!check.ok) return reply.code(401).send({ title: 'Not signed in' });
    (request as unknown as { customerId: string }).customerId = check.caller.id;
  });
  app.get('/health', async () => ({ status: 'ok' }));
  app.post<{ Body: { vehicleId: string } }>('/bookings', async (request, reply) => {
    const customerId = (request as unknown as { customerId: string }).customerId;
    const { vehicleId } = request.body;
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const row = await client.query<{ status: string }>('SELECT status FROM vehicles WHERE id = $1 FOR UPDATE', [vehicleId]);
      if (row.rowCount === 0) {
        await client.query('ROLLBACK');
        return reply.code(404).send({ title: 'No such vehicle' });
      }
      if (row.rows[0]!.status !== 'available') {
        await client.query('ROLLBACK');
        return reply.code(409).send({ title: 'Vehicle unavailable' });
      }
      await sleep(config.gatewayMs); // the payment authorization, with the row lock held
      nextBooking += 1;
      const id = `bk-${process.pid}-${nextBooking}`;
      await client.query(`INSERT INTO bookings (id, vehicle_id, customer_id, status) VALUES ($1, $2, $3, 'CONFIRMED')`, [id, vehicleId, customerId]);
      await client.query(`UPDATE vehicles SET status = 'booked', booking_id = $2 WHERE id = $1`, [vehicleId, id]);
      await client.query('COMMIT');
      return reply.code(201).send({ id, vehicleId, customerId, status: 'CONFIRMED' });
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  });
  app.post<{ Params: { id: string } }>('/bookings/:id/cancel', async (request, reply) => {
    const customerId = (request as unknown as { customerId: string }).customerId;
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const row = await client.query<{ vehicle_id: string }>(`SELECT vehicle_id FROM bookings WHERE id = $1 AND customer_id = $2 AND status = 'CONFIRMED' FOR UPDATE`, [request.params.id, customerId]);
      if (row.rowCount === 0) {
        await client.query('ROLLBACK');
        return reply.code(409).send({ title: 'The booking can no longer be cancelled' });
      }
      await client.query(`UPDATE bookings SET status = 'CANCELLED' WHERE id = $1`, [request.params.id]);
      await client.query(`UPDATE vehicles SET status = 'available', booking_id = NULL WHERE id = $1`, [row.rows[0]!.vehicle_id]);
      await client.query('COMMIT');
      return reply.code(200).send({ id: request.params.id, status: 'CANCELLED' });
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(`${JSON.stringify({ port: Number(new URL(address).port) })}\n`);
  process.on('SIGTERM', () => void app.close().then(() => pool.end()).then(() => process.exit(0)));
}

main().catch((error: unknown) => {
  console.error('lock-server failed:', error instanceof Error ? error.message : error);
  process.exit(1);
});
