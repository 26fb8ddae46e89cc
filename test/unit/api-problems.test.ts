import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { Rejection, RejectionType } from '../../actors/contract/rejections.js';
import { buildApp } from '../../api/app.js';
import { HTTP_PROBLEMS, REJECTION_PROBLEMS, rejectionProblem } from '../../api/problems.js';
import { stubFleet, testDeps } from '../helpers/stub-fleet.js';
import { asCustomer } from '../helpers/tokens.js';

/** Every rejection a FleetService can answer, one example each; the Record type breaks when one is added. */
const EXAMPLES: { readonly [K in RejectionType]: Extract<Rejection, { type: K }> } = {
  VehicleNotFound: { type: 'VehicleNotFound', vehicleId: 'veh-1' },
  VehicleAlreadyRegistered: { type: 'VehicleAlreadyRegistered', vehicleId: 'veh-1' },
  VehicleUnavailable: { type: 'VehicleUnavailable', vehicleId: 'veh-1', status: 'IN_USE' },
  VehicleLowBattery: { type: 'VehicleLowBattery', vehicleId: 'veh-1', battery: 4 },
  VehicleOffline: { type: 'VehicleOffline', vehicleId: 'veh-1', presence: 'never-seen' },
  RideStartNotAllowed: { type: 'RideStartNotAllowed', vehicleId: 'veh-1', lat: 52.6, lon: 13.1 },
  RideEndNotAllowed: { type: 'RideEndNotAllowed', vehicleId: 'veh-1', lat: 52.6, lon: 13.1 },
  VehiclePositionUnknown: { type: 'VehiclePositionUnknown', vehicleId: 'veh-1', lastFixAt: null, maxAgeMs: 120000 },
  VehicleNotReservedForBooking: { type: 'VehicleNotReservedForBooking', vehicleId: 'veh-1', bookingId: 'bk_1' },
  VehicleRejectedCommand: { type: 'VehicleRejectedCommand', vehicleId: 'veh-1', command: 'UNLOCK', reason: 'kickstand down' },
  UnlockTimedOut: { type: 'UnlockTimedOut', vehicleId: 'veh-1', commandId: 'cmd-1', timeoutMs: 5000 },
  UnlockOutcomeUnknown: { type: 'UnlockOutcomeUnknown', bookingId: 'bk_1', vehicleId: 'veh-1' },
  LockTimedOut: { type: 'LockTimedOut', vehicleId: 'veh-1', commandId: 'cmd-2', timeoutMs: 5000 },
  PaymentDeclined: { type: 'PaymentDeclined', authorizationId: 'auth_1', reason: 'card_declined' },
  BookingNotFound: { type: 'BookingNotFound', bookingId: 'bk_1' },
  BookingForbidden: { type: 'BookingForbidden', bookingId: 'bk_1' },
  BookingAlreadyExists: { type: 'BookingAlreadyExists', bookingId: 'bk_1' },
  ActiveBookingLimitReached: { type: 'ActiveBookingLimitReached', customerId: 'alice', limit: 1, liveBookingIds: ['bk_s0_live'] },
  InvalidBookingState: { type: 'InvalidBookingState', bookingId: 'bk_1', status: 'COMPLETED', expected: ['CONFIRMED'] },
  ActorUnavailable: { type: 'ActorUnavailable', actor: 'booking/bk_1', timeoutMs: 15000 },
  BookingAborted: { type: 'BookingAborted', bookingId: 'bk_1', step: 'authorize', actor: 'payment/auth_bk_1' },
  ShardUnavailable: { type: 'ShardUnavailable', shard: 2, reason: 'worker exited with code 1' },
  StorageFull: { type: 'StorageFull', actor: 'booking/bk_1' },
};

/** The contract, written out independently of api/problems.ts. */
const EXPECTED: readonly [RejectionType, number, string][] = [
  ['VehicleNotFound', 404, 'vehicle-not-found'],
  ['VehicleAlreadyRegistered', 409, 'vehicle-already-registered'],
  ['VehicleUnavailable', 409, 'vehicle-unavailable'],
  ['VehicleLowBattery', 409, 'vehicle-low-battery'],
  ['VehicleOffline', 503, 'vehicle-offline'],
  ['RideStartNotAllowed', 409, 'ride-start-not-allowed'],
  ['RideEndNotAllowed', 409, 'ride-end-not-allowed'],
  ['VehiclePositionUnknown', 409, 'vehicle-position-unknown'],
  ['VehicleNotReservedForBooking', 409, 'vehicle-not-reserved-for-booking'],
  ['VehicleRejectedCommand', 409, 'vehicle-rejected-command'],
  ['UnlockTimedOut', 504, 'unlock-timed-out'],
  ['UnlockOutcomeUnknown', 409, 'unlock-outcome-unknown'],
  ['LockTimedOut', 504, 'lock-timed-out'],
  ['PaymentDeclined', 402, 'payment-declined'],
  ['BookingNotFound', 404, 'booking-not-found'],
  ['BookingForbidden', 403, 'booking-forbidden'],
  ['BookingAlreadyExists', 409, 'booking-already-exists'],
  ['ActiveBookingLimitReached', 409, 'active-booking-limit'],
  ['InvalidBookingState', 409, 'invalid-booking-state'],
  ['ActorUnavailable', 503, 'actor-unavailable'],
  ['BookingAborted', 503, 'booking-aborted'],
  ['ShardUnavailable', 503, 'shard-unavailable'],
  ['StorageFull', 503, 'storage-full'],
];

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('every Rejection → problem+json with its status and stable type', () => {
  it('the expectations cover every rejection type', () => {
    expect(EXPECTED.map(([type]) => type).sort()).toEqual(Object.keys(REJECTION_PROBLEMS).sort());
  });

  it.each(EXPECTED)('%s → %i %s', async (type, status, slug) => {
    const rejection = EXAMPLES[type];
    app = buildApp(testDeps({ fleet: stubFleet({ unlock: async () => ({ ok: false, rejection }) }).fleet }));
    const response = await app.inject({ method: 'POST', url: '/bookings/bk_1/unlock', headers: asCustomer() });
    expect(response.statusCode).toBe(status);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    const problem = response.json();
    expect(problem).toMatchObject({ type: `https://fleetactors.dev/problems/${slug}`, status, instance: '/bookings/bk_1/unlock' });
    expect(problem.title).toEqual(expect.any(String));
    expect(problem.detail).toEqual(expect.any(String));
    expect(problem.traceId).toBe(String(response.headers.traceparent).split('-')[1]);
  });

  it('carries the rejection fields as extensions', () => {
    expect(rejectionProblem(EXAMPLES.UnlockTimedOut, { instance: '/unlock' })).toMatchObject({ vehicleId: 'veh-1', commandId: 'cmd-1', timeoutMs: 5000 });
    expect(rejectionProblem(EXAMPLES.PaymentDeclined, { instance: '/bookings' })).toMatchObject({ authorizationId: 'auth_1', reason: 'card_declined' });
  });

  it('a rejection field named like a problem member never overwrites it', () => {
    const unavailable = rejectionProblem(EXAMPLES.VehicleUnavailable, { instance: '/bookings' });
    expect(unavailable).toMatchObject({ status: 409, vehicleStatus: 'IN_USE', type: 'https://fleetactors.dev/problems/vehicle-unavailable' });
    const state = rejectionProblem(EXAMPLES.InvalidBookingState, { instance: '/x' });
    expect(state).toMatchObject({ status: 409, bookingStatus: 'COMPLETED', expected: ['CONFIRMED'] });
  });

  it('type URIs are unique across both tables, kebab-case, under one base', () => {
    const slugs = [...Object.values(REJECTION_PROBLEMS), ...Object.values(HTTP_PROBLEMS)].map((problem) => problem.slug);
    expect(new Set(slugs).size).toBe(slugs.length);
    for (const slug of slugs) expect(slug).toMatch(/^[a-z]+(-[a-z]+)*$/);
  });

  it('reserves the rate-limit type', () => {
    expect(HTTP_PROBLEMS['rate-limited']).toMatchObject({ status: 429, slug: 'rate-limited' });
  });
});
