import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';

describe('smoke', () => {
  let t: TestFleet;
  beforeAll(async () => {
    t = await startTestFleet();
  });
  afterAll(async () => t?.close());

  it('registers and books', async () => {
    const registered = await t.registerVehicle('v-1');
    expect(registered.statusCode, registered.body).toBe(201);
    const booked = await t.book('alice', 'v-1');
    expect(booked.statusCode, booked.body).toBe(201);
    expect(booked.json()).toMatchObject({ status: 'CONFIRMED', vehicleId: 'v-1', customerId: 'alice' });
  });
});
