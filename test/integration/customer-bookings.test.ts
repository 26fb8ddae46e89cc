import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardOfVehicle } from '../../runtime/kernel/placement.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';

/**
 * GET /bookings on three shards: a customer who lost a booking id finds it again. Their bookings live
 * with their vehicles, on every shard; the list is merged newest first and paged without gaps.
 */
const SHARDS = 3;

interface Summary {
  id: string;
  vehicleId: string;
  status: string;
  createdAt: string;
}
interface Page {
  items: Summary[];
  next: string | null;
}

let t: TestFleet;
/** carol's bookings, oldest first. */
const booked: string[] = [];

beforeAll(async () => {
  t = await startTestFleet({ FLEET_SHARDS: String(SHARDS), MAX_ACTIVE_BOOKINGS_PER_CUSTOMER: '0' });
  const vehicles = Array.from({ length: 7 }, (_, index) => `list-v${index}`);
  expect(new Set(vehicles.map((id) => shardOfVehicle(id, SHARDS))).size).toBe(SHARDS);
  for (const id of vehicles) expect((await t.registerVehicle(id)).statusCode).toBe(201);
  for (const vehicleId of vehicles.slice(0, 6)) {
    const response = await t.book('carol', vehicleId);
    expect(response.statusCode, response.body).toBe(201);
    booked.push(response.json<{ id: string }>().id);
    // Distinct creation times: the order asserted below is the order of booking.
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
  for (const id of booked.slice(0, 2)) expect((await t.request({ method: 'POST', url: `/bookings/${id}/cancel`, as: 'carol' })).statusCode).toBe(200);
  expect((await t.book('dan', 'list-v6')).statusCode).toBe(201);
}, 60_000);
afterAll(async () => t?.close());

const list = async (query = '', as = 'carol') => {
  const response = await t.request({ method: 'GET', url: `/bookings${query}`, as });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<Page>();
};

describe('GET /bookings', () => {
  it("lists the caller's own bookings from every shard, newest first, and no one else's", async () => {
    const page = await list();
    expect(page.items.map((item) => item.id)).toEqual([...booked].reverse());
    expect(page.next).toBeNull();
    expect(page.items[0]).toEqual({ id: booked[5], vehicleId: 'list-v5', status: 'CONFIRMED', createdAt: expect.any(String), expiresAt: expect.any(String), updatedAt: expect.any(String) });
    expect((await list('', 'dan')).items.map((item) => item.vehicleId)).toEqual(['list-v6']);
  });

  it('pages with a cursor: every booking once, in order', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Page = await list(`?limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(page.items.length).toBeLessThanOrEqual(4);
      seen.push(...page.items.map((item) => item.id));
      cursor = page.next;
      pages += 1;
    } while (cursor !== null);
    expect(pages).toBe(2);
    expect(seen).toEqual([...booked].reverse());
  });

  it('filters by status', async () => {
    expect((await list('?status=CANCELLED')).items.map((item) => item.id)).toEqual([booked[1], booked[0]]);
    expect((await list('?status=CONFIRMED&limit=1')).items.map((item) => item.id)).toEqual([booked[5]]);
    expect((await list('?status=COMPLETED')).items).toEqual([]);
  });

  it('refuses a made-up cursor and an unknown status (400), and operators (403: it lists the caller\'s own)', async () => {
    expect((await t.request({ method: 'GET', url: '/bookings?cursor=bm9wZQ', as: 'carol' })).json()).toMatchObject({ status: 400, type: 'https://fleetactors.dev/problems/validation' });
    expect((await t.request({ method: 'GET', url: '/bookings?status=PARKED', as: 'carol' })).statusCode).toBe(400);
    expect((await t.request({ method: 'GET', url: '/bookings', as: 'ops', role: 'operator' })).statusCode).toBe(403);
  });
});

it('is in the OpenAPI document, with its query and page', async () => {
  const document = (await t.request({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, { parameters?: Array<{ name: string }>; responses: Record<string, unknown> }>> }>();
  const operation = document.paths['/bookings']!.get!;
  expect(operation.parameters!.map((parameter) => parameter.name).sort()).toEqual(['cursor', 'limit', 'status']);
  expect(JSON.stringify(operation.responses['200'])).toContain('BookingSummary');
});
