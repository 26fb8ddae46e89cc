import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedPaymentGateway } from '../../actors/payment/gateway.js';
import { VirtualVehicle } from '../../simulator/virtual-vehicle.js';
import { testClock } from '../helpers/clock.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Issue 19, item 2: a ride is billed for the minutes ridden, not capped at the booking's authorization.
 * The attack: a bike booked for 1 minute (hold 65) ridden 3.09 minutes was charged 65 where the tariff
 * says 110. Real vehicle over MQTT (its clock set back to stand for the minutes ridden), real journal,
 * booking time on a test clock, the simulated gateway raising the hold as a card issuer would.
 */

const MINUTE = 60_000;
const running: Array<{ fleet: TestFleet; device: VirtualVehicle }> = [];
afterEach(async () => {
  for (const { fleet, device } of running.splice(0)) {
    await device.stop();
    await fleet.close();
  }
});

interface Booking {
  readonly id: string;
  readonly status: string;
  readonly charge: { readonly amount: number } | null;
  readonly authorization: { readonly id: string; readonly amount: number };
}

/** Books `vehicleId` for 1 minute with `paymentMethod`, unlocks it 3.09 minutes ago (device time) and ends the ride now. */
async function rideOutrunningItsBooking(vehicleId: string, paymentMethod: string) {
  const gateway = new SimulatedPaymentGateway({ latencyMs: 0 });
  const t = await startTestFleet({}, { clock: testClock(), gateway });
  expect((await t.registerVehicle(vehicleId, 'bike')).statusCode).toBe(201);
  let deviceBehindMs = 0;
  const device = await VirtualVehicle.start({ id: vehicleId, url: t.fleet.mqttUrl, protocolVersion: t.config.mqtt.protocolVersion, credentials: t.credentials(vehicleId), clock: () => Date.now() - deviceBehindMs });
  running.push({ fleet: t, device });
  await waitFor(async () => (await t.request({ method: 'GET', url: `/vehicles/${vehicleId}`, as: 'ops', role: 'operator' })).json<{ online: boolean | null }>().online === true, { what: `${vehicleId} online` });
  const booked = await t.book('alice', vehicleId, { durationMinutes: 1, paymentMethod });
  expect(booked.statusCode, booked.body).toBe(201);
  const booking = booked.json<Booking>();
  deviceBehindMs = 3.09 * MINUTE;
  expect((await t.request({ method: 'POST', url: `/bookings/${booking.id}/unlock` })).statusCode).toBe(200);
  deviceBehindMs = 0;
  const ended = await t.request({ method: 'POST', url: `/bookings/${booking.id}/end` });
  return { t, gateway, booking, ended };
}

describe('a ride that outruns its booking', { timeout: 30_000 }, () => {
  it('is charged every started minute: the issuer raises the hold and the whole trip is captured', async () => {
    const { gateway, booking, ended } = await rideOutrunningItsBooking('ot-bike-1', 'tok_visa');
    expect(booking.authorization.amount).toBe(65);
    expect(ended.statusCode, ended.body).toBe(200);
    expect(ended.json<Booking>()).toMatchObject({ status: 'COMPLETED', charge: { amount: 110, currency: 'EUR' } });
    expect(gateway.holdOf(booking.authorization.id)).toBe(110);
    expect(gateway.stateOf(booking.authorization.id)).toBe('captured');
  });

  it('when the issuer declines raising the hold, the hold is captured and what is still owed is on record', async () => {
    const { t, gateway, booking, ended } = await rideOutrunningItsBooking('ot-bike-2', 'tok_noIncrement');
    expect(ended.statusCode, ended.body).toBe(200);
    expect(ended.json<Booking>().charge).toEqual({ amount: 65, currency: 'EUR' });
    expect(gateway.stateOf(booking.authorization.id)).toBe('captured');
    const capturedEvent = t.rows<{ data: string }>("SELECT data FROM journal WHERE persistence_key = ? AND event_type = 'PaymentCaptured'", `payment/${booking.authorization.id}`);
    expect(JSON.parse(capturedEvent[0]!.data)).toMatchObject({ amount: 65, owed: 110 });
  });
});

describe('a ride far past its booked end', { timeout: 30_000 }, () => {
  it('is flagged to operators: fleet_rides_overdue counts it from OVERDUE_RIDE_AFTER_MS past its booked end until it ends', async () => {
    const clock = testClock();
    const t = await startTestFleet({ OVERDUE_RIDE_AFTER_MS: String(5 * MINUTE) }, { clock, gateway: new SimulatedPaymentGateway({ latencyMs: 0 }) });
    expect((await t.registerVehicle('ot-bike-3', 'bike')).statusCode).toBe(201);
    const device = await VirtualVehicle.start({ id: 'ot-bike-3', url: t.fleet.mqttUrl, protocolVersion: t.config.mqtt.protocolVersion, credentials: t.credentials('ot-bike-3') });
    running.push({ fleet: t, device });
    await waitFor(async () => (await t.request({ method: 'GET', url: '/vehicles/ot-bike-3', as: 'ops', role: 'operator' })).json<{ online: boolean | null }>().online === true, { what: 'ot-bike-3 online' });
    const booking = (await t.book('alice', 'ot-bike-3', { durationMinutes: 1 })).json<Booking>();
    expect((await t.request({ method: 'POST', url: `/bookings/${booking.id}/unlock` })).statusCode).toBe(200);
    const overdue = async () => (await t.fleet.shardStats())[0]!.overdueRides;
    // Booked 1 minute: 5 minutes past it is not yet "far past"; 7 minutes is.
    clock.advance(5 * MINUTE);
    expect(await overdue()).toBe(0);
    clock.advance(2 * MINUTE);
    expect(await overdue()).toBe(1);
    const scraped = await waitFor(async () => {
      const text = (await t.request({ method: 'GET', url: '/metrics', as: 'ops', role: 'operator' })).body;
      return text.includes('fleet_rides_overdue{shard="0"} 1') ? text : null;
    }, { what: 'the overdue ride in /metrics' });
    expect(scraped).toContain('fleet_rides_overdue');
    expect((await t.request({ method: 'POST', url: `/bookings/${booking.id}/end` })).statusCode).toBe(200);
    expect(await overdue()).toBe(0);
  });
});

