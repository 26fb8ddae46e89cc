import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { createLogger, type Logger } from '../runtime/logger.js';
import { ApiUnreachable, isRecord, type ApiClient, type ApiResult, type TokenSource } from './api-client.js';
import { seededRandom, type Random } from './random.js';
import { ErrorLog, LatencyRecorder, ReasonCounts, type CustomerReport } from './report.js';
import { pause } from './timing.js';

export interface CustomerSimOptions {
  readonly customers: number;
  readonly api: ApiClient;
  readonly tokens: TokenSource;
  /** The vehicles customers book from; each customer picks one no other simulated customer holds. */
  readonly vehicleIds: readonly string[];
  /** Customers start no new booking after this; rides in progress end early, so the run stops soon after. */
  readonly durationMs: number;
  /** Time between a successful unlock and the end of the ride. */
  readonly rideMs: number;
  /** Share of confirmed bookings cancelled instead of unlocked. */
  readonly cancelRatio: number;
  /** Pause between two bookings of one customer (default 0: a closed loop at full speed). */
  readonly thinkMs?: number;
  /** Default `tok_visa`. */
  readonly paymentMethod?: string;
  /** Customer ids are `${customerPrefix}001` …; default `sim-customer-`. */
  readonly customerPrefix?: string;
  readonly random?: Random;
  readonly logger?: Logger;
  /** Stops every customer early (they still end or cancel what they hold). */
  readonly signal?: AbortSignal;
}

export interface CustomerRun {
  /** Resolves when every customer has stopped and released what it held. */
  readonly done: Promise<CustomerReport>;
  /** The counts so far, for progress lines. */
  snapshot(): CustomerReport;
}

type Operation = 'book' | 'unlock' | 'end' | 'cancel';

/** Rejections the contract promises; anything else is a simulator or server fault, counted as an error. */
const EXPECTED_STATUS = new Set([402, 409, 503, 504]);
const FAILED_TRACES_KEPT = 10;

/**
 * `customers` virtual customers over HTTP, each looping book → unlock → ride → end (or cancel) until
 * `durationMs` passed. A customer never leaves a booking behind: a failed unlock is followed by a
 * cancel and a ride always ends, so after `done` no simulated booking holds a vehicle.
 */
export function startCustomers(options: CustomerSimOptions): CustomerRun {
  const log = (options.logger ?? createLogger('silent')).child({ component: 'sim-customers' });
  const random = options.random ?? seededRandom(Date.now());
  const prefix = options.customerPrefix ?? 'sim-customer-';
  const paymentMethod = options.paymentMethod ?? 'tok_visa';
  const latency: Record<Operation, LatencyRecorder> = { book: new LatencyRecorder(), unlock: new LatencyRecorder(), end: new LatencyRecorder(), cancel: new LatencyRecorder() };
  const attempts: Record<Operation, number> = { book: 0, unlock: 0, end: 0, cancel: 0 };
  const counts = { confirmed: 0, unlocked: 0, unlockTimedOut: 0, completed: 0, cancelled: 0, cancelledByChoice: 0 };
  const failures: Record<Operation, ReasonCounts> = { book: new ReasonCounts(), unlock: new ReasonCounts(), end: new ReasonCounts(), cancel: new ReasonCounts() };
  const errors = new ErrorLog();
  const failedTraceIds: string[] = [];
  const held = new Set<string>();

  const stopping = new AbortController();
  // Every customer waits on this signal while it rides or thinks: one listener each, by design.
  setMaxListeners(0, stopping.signal);
  const deadline = setTimeout(() => stopping.abort(), options.durationMs);
  const onExternalAbort = () => stopping.abort();
  options.signal?.addEventListener('abort', onExternalAbort, { once: true });
  if (options.signal?.aborted) stopping.abort();

  /** One call; null when it did not get an HTTP answer or got one the contract does not allow. */
  const call = async (operation: Operation, path: string, customer: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResult | null> => {
    attempts[operation] += 1;
    try {
      const result = await options.api.request('POST', path, options.tokens(customer, 'customer'), body, headers);
      if (result.status >= 200 && result.status < 300) {
        latency[operation].recordUs(result.latencyUs);
        return result;
      }
      if (result.traceId && failedTraceIds.length < FAILED_TRACES_KEPT) failedTraceIds.push(result.traceId);
      if (!EXPECTED_STATUS.has(result.status)) {
        errors.add(`POST ${path} → ${result.status} ${result.problem ?? ''}${detailOf(result.body)}`);
        return null;
      }
      failures[operation].add(result.problem ?? `http-${result.status}`);
      return result;
    } catch (error) {
      errors.add(error instanceof ApiUnreachable ? error.message : `POST ${path}: ${String(error)}`);
      log.debug({ err: error, path }, 'call failed');
      return null;
    }
  };

  const pickVehicle = (): string | null => {
    const ids = options.vehicleIds;
    if (ids.length === 0) return null;
    for (let attempt = 0; attempt < 8; attempt += 1) {
      const id = ids[Math.floor(random() * ids.length)]!;
      if (!held.has(id)) return id;
    }
    const start = Math.floor(random() * ids.length);
    for (let offset = 0; offset < ids.length; offset += 1) {
      const id = ids[(start + offset) % ids.length]!;
      if (!held.has(id)) return id;
    }
    return null;
  };

  const cancel = async (customer: string, bookingId: string, byChoice: boolean): Promise<void> => {
    const result = await call('cancel', `/bookings/${encodeURIComponent(bookingId)}/cancel`, customer);
    if (result && result.status === 200) {
      counts.cancelled += 1;
      if (byChoice) counts.cancelledByChoice += 1;
    }
  };

  const end = async (customer: string, bookingId: string): Promise<void> => {
    // One retry: a lock that timed out leaves the ride ACTIVE, and a customer tries again before leaving.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const result = await call('end', `/bookings/${encodeURIComponent(bookingId)}/end`, customer);
      if (result?.status === 200) {
        counts.completed += 1;
        return;
      }
      if (result?.status !== 504) return;
    }
  };

  const ride = async (customer: string, vehicleId: string): Promise<void> => {
    const booked = await call('book', '/bookings', customer, { vehicleId, paymentMethod }, { 'idempotency-key': randomUUID() });
    if (booked?.status !== 201) return;
    const bookingId = isRecord(booked.body) && typeof booked.body.id === 'string' ? booked.body.id : null;
    if (!bookingId) {
      errors.add(`POST /bookings → 201 without an id`);
      return;
    }
    counts.confirmed += 1;
    if (random() < options.cancelRatio) return cancel(customer, bookingId, true);
    const unlocked = await call('unlock', `/bookings/${encodeURIComponent(bookingId)}/unlock`, customer);
    if (unlocked?.status !== 200) {
      if (unlocked?.status === 504) counts.unlockTimedOut += 1;
      // Never leave a reservation behind; it would otherwise hold the vehicle until it expires.
      await cancel(customer, bookingId, false);
      // An UNLOCKED that came after the 504 made the ride ACTIVE (the car is open): end it instead.
      const booking = await options.api
        .request('GET', `/bookings/${encodeURIComponent(bookingId)}`, options.tokens(customer, 'customer'))
        .catch(() => null);
      if (isRecord(booking?.body) && booking.body.status === 'ACTIVE') await end(customer, bookingId);
      return;
    }
    counts.unlocked += 1;
    await pause(options.rideMs, stopping.signal);
    await end(customer, bookingId);
  };

  const customerLoop = async (customer: string): Promise<void> => {
    while (!stopping.signal.aborted) {
      const vehicleId = pickVehicle();
      if (vehicleId === null) {
        await pause(50, stopping.signal);
        continue;
      }
      held.add(vehicleId);
      const errorsBefore = errors.count;
      try {
        await ride(customer, vehicleId);
      } finally {
        held.delete(vehicleId);
      }
      // A server that is down must not be hammered in a tight loop by every customer.
      if (errors.count > errorsBefore) await pause(200, stopping.signal);
      if (options.thinkMs) await pause(options.thinkMs, stopping.signal);
    }
  };

  const snapshot = (): CustomerReport => ({
    customers: options.customers,
    bookings: { attempted: attempts.book, confirmed: counts.confirmed, rejected: failures.book.toJSON() },
    unlocks: { attempted: attempts.unlock, ok: counts.unlocked, timedOut: counts.unlockTimedOut, failed: failures.unlock.toJSON() },
    ends: { attempted: attempts.end, completed: counts.completed, failed: failures.end.toJSON() },
    cancels: { attempted: attempts.cancel, cancelled: counts.cancelled, byChoice: counts.cancelledByChoice, failed: failures.cancel.toJSON() },
    failedTraceIds: [...failedTraceIds],
    latency: { book: latency.book.summary(), unlock: latency.unlock.summary(), end: latency.end.summary(), cancel: latency.cancel.summary() },
    errors: errors.toJSON(),
  });

  const loops = Array.from({ length: options.customers }, (_, index) => customerLoop(`${prefix}${String(index + 1).padStart(3, '0')}`));
  const done = Promise.all(loops).then(() => {
    clearTimeout(deadline);
    options.signal?.removeEventListener('abort', onExternalAbort);
    return snapshot();
  });
  return { done, snapshot };
}


function detailOf(body: unknown): string {
  return isRecord(body) && typeof body.detail === 'string' ? `: ${body.detail}` : '';
}
