import { BOOKING, bookingBehaviour, type BookingMessage } from '../actors/booking/actor.js';
import { PAYMENT, paymentBehaviour } from '../actors/payment/actor.js';
import { SimulatedPaymentGateway } from '../actors/payment/gateway.js';
import { createSigner } from 'fast-jwt';
import { accept, type Outcome } from '../actors/shared/rejections.js';
import { VEHICLE, vehicleBehaviour, type VehicleMessage } from '../actors/vehicle/actor.js';
import { buildApp } from '../api/app.js';
import type { BookingView, DeviceAccess, FleetService } from '../api/fleet-service.js';
import type { IdempotencyPort, StoredResponse } from '../api/ports.js';
import { SqliteJournalEngine } from '../persistence/journal-engine.js';
import { createProjectors } from '../persistence/projections.js';
import { openDatabase } from '../persistence/sqlite.js';
import { TraceStore } from '../persistence/trace-store.js';
import type { FleetConfig } from './config.js';
import { startActorSystem } from './kernel/actor-system.js';
import { ActorDirectory, type Message } from './kernel/directory.js';
import { rootContext } from './kernel/envelope.js';
import { createLogger } from './logger.js';
import { createMetrics } from './metrics.js';

/**
 * The cold start: the `book` bench measured the first 3 s after /health turned 200 at 0.47–0.60 × the
 * steady rate. V8 compiles a function on its first call and optimises it after many; until then the
 * booking path runs in the interpreter, on the main thread and in every shard. So before a shard says
 * `ready`, and before the main thread listens, each runs the booking path on throw-away parts: the
 * same modules and classes (decider, actor shells, directory, journal engine, projectors, trace store,
 * better-sqlite3 statements; fastify, JWT, zod, serialisation), on an in-memory database and a stub
 * fleet. Nothing of it touches the fleet's data, its metrics or its logs.
 */

/** Bookings per batch: about the load's concurrency, so that group commits see batches as under load. */
const BATCH = 50;

/** A shard's kernel and actors on an in-memory journal: registrations and bookings until `budgetMs` is spent. */
export async function warmUpShard(config: FleetConfig, options: { readonly budgetMs?: number; readonly startsFresh: (kind: string, command: Message) => boolean; readonly tagsFor: (event: Message) => string[] }): Promise<{ bookings: number; confirmed: number }> {
  const budgetMs = options.budgetMs ?? 400;
  const logger = createLogger('silent');
  const db = openDatabase(':memory:', { synchronous: 'NORMAL' });
  const journal = new SqliteJournalEngine(db, { projectors: createProjectors(db), logger });
  const traces = new TraceStore(db, { logger });
  const system = startActorSystem(journal, logger);
  const directory = new ActorDirectory({
    system,
    logger,
    passivateAfterMs: config.timing.passivateAfterMs,
    askTimeoutMs: config.timing.askTimeoutMs,
    snapshotEvery: config.snapshotEvery,
    tagsFor: options.tagsFor,
    traces,
    traceSample: 1,
    startsFresh: options.startsFresh,
  });
  directory.register(
    VEHICLE,
    vehicleBehaviour({
      device: { send: () => Promise.resolve(), watch: () => () => undefined },
      conditionsOf: () => ({ online: true, battery: 90 }),
      notifyUnlocked: () => undefined,
      unlockTimeoutMs: config.timing.unlockTimeoutMs,
    }),
  );
  directory.register(
    BOOKING,
    bookingBehaviour({ reservationWindowMs: config.timing.reservationWindowMs, confirmWithinMs: 2 * config.timing.askTimeoutMs + config.timing.paymentTimeoutMs, unlockTimeoutMs: config.timing.unlockTimeoutMs }),
  );
  directory.register(PAYMENT, paymentBehaviour({ gateway: new SimulatedPaymentGateway({ latencyMs: 0 }), timeoutMs: config.timing.paymentTimeoutMs }));

  const started = performance.now();
  let bookings = 0;
  let confirmed = 0;
  try {
    while (performance.now() - started < budgetMs) {
      await Promise.all(
        Array.from({ length: BATCH }, async () => {
          const n = bookings++;
          const trace = rootContext();
          const register: VehicleMessage = { type: 'RegisterVehicle', vehicleType: 'scooter', model: null, location: { lat: 52.52, lon: 13.405 } };
          await directory.ask({ kind: VEHICLE, id: `warm-${n}` }, register, 'http', trace);
          const book: BookingMessage = { type: 'CreateBooking', customerId: `warm-${n}`, vehicleId: `warm-${n}`, paymentMethod: 'tok_visa', durationMinutes: 30 };
          const outcome = await directory.ask<Outcome<{ status: string }>>({ kind: BOOKING, id: `bk_warm_${n}` }, book, 'http', trace);
          if (outcome.ok && outcome.value.status === 'CONFIRMED') confirmed += 1;
        }),
      );
    }
  } finally {
    directory.stopAll();
    system.stop();
    await journal.close();
    traces.close();
    db.close();
  }
  return { bookings, confirmed };
}

/** The HTTP booking route on a throw-away app with a stub fleet: `requests` POST /bookings through fastify's inject; returns the 201s. */
export async function warmUpHttp(config: FleetConfig, requests = 300): Promise<number> {
  const at = new Date().toISOString();
  const booked = (input: Parameters<FleetService['createBooking']>[0]): BookingView => ({
    id: input.bookingId,
    status: 'CONFIRMED',
    vehicleId: input.vehicleId,
    customerId: input.customerId,
    durationMinutes: input.durationMinutes,
    authorization: { id: `auth_${input.bookingId}`, amount: 1270, currency: 'EUR' },
    charge: null,
    createdAt: at,
    expiresAt: at,
    unlockedAt: null,
    endedAt: null,
    rejectionReason: null,
  });
  const unused = () => Promise.reject(new Error('not part of the warm-up'));
  const fleet: FleetService = {
    createBooking: (input) => Promise.resolve(accept(booked(input))),
    registerVehicle: unused,
    getVehicle: unused,
    listVehicles: unused,
    getBooking: unused,
    unlock: unused,
    cancel: unused,
    end: unused,
  };
  const devices: DeviceAccess = { issueCredentials: unused, rotateCredentials: unused, clearPresence: unused };
  const stored = new Map<string, StoredResponse>();
  const idempotency: IdempotencyPort = {
    find: (customerId, key) => stored.get(`${customerId}\n${key}`),
    claim: (customerId, key, requestHash) => stored.set(`${customerId}\n${key}`, { requestHash, statusCode: null, body: null }),
    save: (customerId, key, requestHash, statusCode, body) => stored.set(`${customerId}\n${key}`, { requestHash, statusCode, body }),
  };
  const app = buildApp({ fleet, devices, config, logger: createLogger('silent'), idempotency, metrics: createMetrics({ defaultMetrics: false }), health: () => ({ checks: {} }) });
  // One signer for all (signToken makes one per call, which cost more than the requests).
  const sign = createSigner({ key: config.auth.jwtSecret, algorithm: 'HS256', expiresIn: 60_000 });
  let created = 0;
  try {
    await app.ready();
    for (let n = 0; n < requests; n += BATCH) {
      const responses = await Promise.all(
        Array.from({ length: Math.min(BATCH, requests - n) }, (_, i) => {
          const customer = `warm-${n + i}`;
          return app.inject({
            method: 'POST',
            url: '/bookings',
            headers: {
              authorization: `Bearer ${sign({ sub: customer, role: 'customer' })}`,
              'content-type': 'application/json',
              ...((n + i) % 2 === 0 && { 'idempotency-key': `warm-${n + i}` }),
            },
            payload: JSON.stringify({ vehicleId: `warm-${n + i}` }),
          });
        }),
      );
      created += responses.filter((response) => response.statusCode === 201).length;
    }
  } finally {
    await app.close();
  }
  return created;
}
