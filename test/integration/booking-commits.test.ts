import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedPaymentGateway, type AuthorizationRequest, type GatewayDecision, type PaymentGateway } from '../../actors/payment/gateway.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';
import { markJournal } from '../helpers/journal-mark.js';

/**
 * How many sequential durable steps (journal commits) one booking waits for, counted from the
 * journal engine's commits and read back from the journal's rows (issue 18: "fewer sequential durable
 * steps"). One unkeyed booking on an otherwise idle shard: every commit in between is one of its
 * steps, since each step waits for the one before (docs/architecture.md, "Crash points of a booking").
 * Before: 6 (BookingRequested; VehicleReserved; BookingVehicleReserved; AuthorizationRequested;
 * PaymentAuthorized; BookingConfirmed). Then 4: the payment journals its request with the gateway's
 * decision, and BookingVehicleReserved shares BookingConfirmed's commit. Now 3: the payment answers
 * the booking once its decision is queued, and the booking's confirmation joins that commit.
 */

let t: TestFleet;

beforeAll(async () => {
  t = await startTestFleet();
});
afterAll(async () => t?.close());

describe('the commits of one booking', () => {
  it('a confirmed booking is 3 sequential commits: the request, the reservation, then the payment\'s decision with the confirmation', async () => {
    expect((await t.registerVehicle('commits-v1', 'car')).statusCode).toBe(201);
    const since = await markJournal(t);

    const booked = await t.book('alice', 'commits-v1');
    expect(booked.statusCode, booked.body).toBe(201);
    const bookingId = (JSON.parse(booked.body) as { id: string }).id;
    const { commits, rows } = await since();

    expect(rows.map((row) => `${row.persistence_key.split('/')[0]}: ${row.event_type}`)).toEqual([
      'booking: BookingRequested',
      'vehicle: VehicleReserved',
      'payment: AuthorizationRequested',
      'payment: PaymentAuthorized',
      'booking: BookingVehicleReserved',
      'booking: BookingConfirmed',
    ]);
    // The payment's decision, the reservation and the confirmation are one commit: adjacent rows,
    // nothing between (the count below fails if they ever land in separate commits).
    const booking = rows.filter((row) => row.persistence_key === `booking/${bookingId}`);
    expect(booking.map((row) => row.event_type)).toEqual(['BookingRequested', 'BookingVehicleReserved', 'BookingConfirmed']);
    expect((booking[2]?.position ?? 0) - (rows[2]?.position ?? 0)).toBe(3);
    expect(commits).toBe(3);
  });
});

/**
 * The payment's crash point that the merged commit opens: the gateway holds the money, and the commit
 * of AuthorizationRequested with PaymentAuthorized never happens. Here the payment actor dies right
 * after the gateway's answer (a throw stands for the crash), so its journal stays empty: the booking's
 * compensation must still void the hold, found by the authorization id alone.
 */
class DiesAfterAuthorizing implements PaymentGateway {
  readonly inner = new SimulatedPaymentGateway({ latencyMs: 1 });
  dieOnce = true;
  async authorize(request: AuthorizationRequest): Promise<GatewayDecision> {
    const decision = await this.inner.authorize(request);
    if (this.dieOnce) {
      this.dieOnce = false;
      throw new Error('the payment actor dies after the gateway holds the money, before its commit');
    }
    return decision;
  }
  incrementAuthorization = (authorizationId: string, amount: number) => this.inner.incrementAuthorization(authorizationId, amount);
  capture = (authorizationId: string, amount: number) => this.inner.capture(authorizationId, amount);
  void = (authorizationId: string) => this.inner.void(authorizationId);
}

describe('a hold the payment never journalled', () => {
  let fleet: TestFleet;
  const gateway = new DiesAfterAuthorizing();
  beforeAll(async () => {
    fleet = await startTestFleet({}, { gateway });
  });
  afterAll(async () => fleet?.close());

  it('is voided by the booking it belonged to, and the vehicle is released', async () => {
    expect((await fleet.registerVehicle('commits-v2', 'car')).statusCode).toBe(201);
    const booked = await fleet.book('alice', 'commits-v2');
    expect(booked.statusCode, booked.body).not.toBe(201);
    const [requested] = fleet.rows<{ persistence_key: string }>("SELECT persistence_key FROM journal WHERE event_type = 'BookingRequested'");
    const bookingId = requested?.persistence_key.replace('booking/', '') ?? '';
    const authorizationId = `auth_${bookingId}`;
    // The payment's journal is empty, the gateway had held the money: the compensation voided it there.
    expect(fleet.count('SELECT count(*) AS n FROM journal WHERE persistence_key = ?', `payment/${authorizationId}`)).toBe(0);
    expect(gateway.inner.stateOf(authorizationId)).toBe('voided');
    const booking = fleet.rows<{ event_type: string }>('SELECT event_type FROM journal WHERE persistence_key = ? ORDER BY sequence_number', `booking/${bookingId}`);
    expect(booking.map((row) => row.event_type)).toEqual(['BookingRequested', 'BookingVehicleReserved', 'BookingRejected', 'BookingCompensated']);
    expect(fleet.count("SELECT count(*) AS n FROM vehicles WHERE id = 'commits-v2' AND booking_id IS NULL")).toBe(1);
  });
});
