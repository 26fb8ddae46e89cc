import { accept, type Outcome } from '../../actors/contract/rejections.js';
import type { AppDeps } from '../../api/app.js';
import { isStorageFull } from '../../persistence/storage-full.js';
import type { BookingView, Caller, CreateBookingInput, DeviceAccess, DeviceCredentials, FleetService, RegisterVehicleInput, UnlockView, VehicleFilter, VehicleView } from '../../actors/contract/views.js';
import type { IdempotencyPort, StoredResponse } from '../../api/ports.js';
import { loadConfig } from '../../server/config.js';
import type { TraceContext } from '../../runtime/ground/trace-context.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { createMetrics } from '../../runtime/ground/metrics.js';
import { TEST_JWT_SECRET } from './tokens.js';
import { LIMITS_OFF } from './limits-off.js';

/**
 * A FleetService that answers canned outcomes and records every call, so API tests check the HTTP
 * layer alone (the real system is tested end-to-end). Override any method per test.
 */

export const NOW = '2025-01-01T10:00:00.000Z';

export function sampleVehicle(overrides: Partial<VehicleView> = {}): VehicleView {
  return {
    id: 'veh-1',
    type: 'scooter',
    model: 'Ninebot G30',
    status: 'AVAILABLE',
    location: { lat: 52.52, lon: 13.405 },
    battery: 87,
    online: true,
    lastSeenAt: NOW,
    updatedAt: NOW,
    ...overrides,
  };
}

export function sampleBooking(overrides: Partial<BookingView> = {}): BookingView {
  return {
    id: 'bk_1',
    status: 'CONFIRMED',
    vehicleId: 'veh-1',
    customerId: 'alice',
    durationMinutes: 30,
    authorization: { id: 'auth_1', amount: 1500, currency: 'EUR' },
    charge: null,
    createdAt: NOW,
    expiresAt: '2025-01-01T10:15:00.000Z',
    unlockedAt: null,
    endedAt: null,
    rejectionReason: null,
    ...overrides,
  };
}

export interface StubCall {
  readonly method: keyof FleetService;
  readonly args: readonly unknown[];
}

export interface StubFleet {
  readonly fleet: FleetService;
  readonly calls: StubCall[];
  /** Calls of one method, newest last. */
  callsTo(method: keyof FleetService): readonly (readonly unknown[])[];
}

export function stubFleet(overrides: Partial<FleetService> = {}): StubFleet {
  const calls: StubCall[] = [];
  const canned: FleetService = {
    registerVehicle: async (input: RegisterVehicleInput, _trace: TraceContext): Promise<Outcome<VehicleView>> =>
      accept(sampleVehicle({ id: input.id, type: input.type, model: input.model, location: input.location, battery: null, online: null, lastSeenAt: null })),
    getVehicle: async (id: string) => (id === 'veh-1' ? sampleVehicle() : undefined),
    listVehicles: async (_filter: VehicleFilter) => [sampleVehicle(), sampleVehicle({ id: 'veh-2', type: 'bike', status: 'IN_USE' })],
    createBooking: async (input: CreateBookingInput): Promise<Outcome<BookingView>> =>
      accept(sampleBooking({ id: input.bookingId, vehicleId: input.vehicleId, customerId: input.customerId, durationMinutes: input.durationMinutes })),
    getBooking: async (bookingId: string, caller: Caller) => accept(sampleBooking({ id: bookingId, customerId: caller.id })),
    unlock: async (bookingId: string): Promise<Outcome<UnlockView>> => accept({ bookingId, vehicleId: 'veh-1', status: 'SUCCESS', unlockedAt: NOW }),
    cancel: async (bookingId: string, caller: Caller) => accept(sampleBooking({ id: bookingId, customerId: caller.id, status: 'CANCELLED' })),
    end: async (bookingId: string, caller: Caller) =>
      accept(sampleBooking({ id: bookingId, customerId: caller.id, status: 'COMPLETED', charge: { amount: 450, currency: 'EUR' }, endedAt: NOW })),
  };
  const implementation = { ...canned, ...overrides };
  const record =
    <K extends keyof FleetService>(method: K) =>
    (...args: Parameters<FleetService[K]>): ReturnType<FleetService[K]> => {
      calls.push({ method, args });
      // Each method is called with its own parameters; TS cannot see that through the generic key.
      return (implementation[method] as (...a: Parameters<FleetService[K]>) => ReturnType<FleetService[K]>)(...args);
    };
  const fleet: FleetService = {
    registerVehicle: record('registerVehicle'),
    getVehicle: record('getVehicle'),
    listVehicles: record('listVehicles'),
    createBooking: record('createBooking'),
    getBooking: record('getBooking'),
    unlock: record('unlock'),
    cancel: record('cancel'),
    end: record('end'),
  };
  return { fleet, calls, callsTo: (method) => calls.filter((call) => call.method === method).map((call) => call.args) };
}

/**
 * The in-memory IdempotencyPort, as one process sees the claim actors (which add the lease's expiry and
 * 24 h): a claim without an answer is running until it is released. `find` reads it synchronously (tests).
 */
export class MemoryIdempotencyStore implements IdempotencyPort {
  readonly entries = new Map<string, StoredResponse>();
  /** Claimed, not answered, and released (or left by a crash): the next request with its body runs. */
  readonly released = new Set<string>();

  find(customerId: string, key: string): StoredResponse | undefined {
    return this.entries.get(`${customerId}\n${key}`);
  }

  async claim(customerId: string, key: string, requestHash: string): Promise<StoredResponse | undefined> {
    const slot = `${customerId}\n${key}`;
    const stored = this.entries.get(slot);
    if (stored && stored.statusCode !== null) return stored;
    if (stored && stored.requestHash !== requestHash) return stored;
    if (stored && !this.released.has(slot)) return { ...stored, running: true };
    this.released.delete(slot);
    this.entries.set(slot, { requestHash, statusCode: null, body: null });
    return undefined;
  }

  async release(customerId: string, key: string, requestHash: string): Promise<void> {
    const slot = `${customerId}\n${key}`;
    if (this.entries.get(slot)?.requestHash === requestHash) this.released.add(slot);
  }

  /** Stored before it returns (the body of an async function runs up to its first await), so a test can seed with it. */
  async save(customerId: string, key: string, requestHash: string, statusCode: number, body: unknown): Promise<void> {
    this.entries.set(`${customerId}\n${key}`, { requestHash, statusCode, body });
  }
}

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

/** A promise a test settles when it chooses: a stub "still running" until released. */
export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}

/** Device access that issues predictable credentials and records presence clearings. */
export function stubDevices(): DeviceAccess & { readonly cleared: string[] } {
  let issued = 0;
  const credentials = (vehicleId: string): DeviceCredentials => ({ username: vehicleId, password: `password-${(issued += 1)}`, commandKey: `key-${vehicleId}` });
  const cleared: string[] = [];
  return {
    cleared,
    issueCredentials: async (vehicleId) => credentials(vehicleId),
    rotateCredentials: async (vehicleId) => credentials(vehicleId),
    clearPresence: async (vehicleId) => void cleared.push(vehicleId),
  };
}

/** Dependencies for `buildApp` in unit tests: stub fleet, memory idempotency, silent logger, own registry. */
export function testDeps(overrides: Partial<AppDeps> = {}, env: Record<string, string> = {}): AppDeps {
  return {
    fleet: stubFleet().fleet,
    devices: stubDevices(),
    config: loadConfig({ FLEET_JWT_SECRET: TEST_JWT_SECRET, ...LIMITS_OFF, ...env }),
    logger: createLogger('silent'),
    idempotency: new MemoryIdempotencyStore(),
    metrics: createMetrics({ defaultMetrics: false }),
    health: () => ({ checks: { journal: { ok: true }, mqtt: { ok: true, detail: 'embedded broker' } } }),
    // As the server wires it: the storage adapter says which errors mean a full disk.
    isStorageFull,
    ...overrides,
  };
}
