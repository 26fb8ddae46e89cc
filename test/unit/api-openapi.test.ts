import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import type { EventsPort } from '../../api/ports.js';
import { testDeps } from '../helpers/stub-fleet.js';
import { asOperator } from '../helpers/tokens.js';

/** An empty event log: enough for GET /events to be served and documented. */
const noEvents: EventsPort = {
  shards: 1,
  read: async (cursor) => ({ items: [], next: cursor }),
  subscribe: () => () => undefined,
};

type Operation = { requestBody?: unknown; responses: Record<string, { content?: Record<string, { schema: Record<string, unknown> }> }> };

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function openApi(): Promise<{ paths: Record<string, Record<string, Operation>> }> {
  app = buildApp(testDeps({ events: noEvents }));
  const response = await app.inject({ url: '/openapi.json' });
  expect(response.statusCode).toBe(200);
  return response.json();
}

describe('/openapi.json', () => {
  it('lists 415 unsupported-media-type on every route that takes a body, and on no other', async () => {
    const doc = await openApi();
    const operations = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ name: `${method.toUpperCase()} ${path}`, operation })));
    const withBody = operations.filter(({ operation }) => operation.requestBody !== undefined).map(({ name }) => name);
    expect(withBody.sort()).toEqual(['POST /bookings', 'POST /unlock', 'POST /vehicles']);
    for (const { name, operation } of operations) {
      const unsupported = operation.responses['415'];
      if (!withBody.includes(name)) {
        expect(unsupported, name).toBeUndefined();
        continue;
      }
      expect(unsupported?.content?.['application/problem+json']?.schema, name).toEqual({ $ref: '#/components/schemas/Problem' });
    }
  });

  it('keeps the problems a route declares itself next to the 415', async () => {
    const responses = (await openApi()).paths['/bookings']!.post!.responses;
    expect(Object.keys(responses)).toEqual(expect.arrayContaining(['201', '400', '402', '404', '409', '415', '422', '503']));
  });

  it('documents GET /events as JSON pages and as text/event-stream', async () => {
    const ok = (await openApi()).paths['/events']!.get!.responses['200']!;
    expect(Object.keys(ok.content ?? {}).sort()).toEqual(['application/json', 'text/event-stream']);
    expect(ok.content!['application/json']!.schema).toMatchObject({ type: 'object', required: ['items', 'next'] });
    expect(ok.content!['text/event-stream']!.schema).toMatchObject({ type: 'string' });
  });

  it('still serializes the JSON page through its schema', async () => {
    await openApi();
    const page = await app!.inject({ url: '/events?after=0', headers: asOperator() });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^application\/json/);
    expect(page.json()).toEqual({ items: [], next: '0' });
  });
});

describe('Swagger UI starts from requests that work', () => {
  it('every request body has an example that its own schema accepts; the booking names a seeded vehicle and 30 minutes', async () => {
    const document = (await openApi()) as unknown as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { example?: unknown } }> } }>> };
    const { CreateBookingBodySchema, RegisterVehicleBodySchema, UnlockBodySchema } = await import('../../api/schemas.js');
    const example = (path: string) => document.paths[path]!.post!.requestBody!.content['application/json']!.schema.example;
    expect(example('/bookings')).toEqual({ vehicleId: 'demo-0001', paymentMethod: 'tok_visa', durationMinutes: 30 });
    expect(CreateBookingBodySchema.safeParse(example('/bookings')).success).toBe(true);
    expect(UnlockBodySchema.safeParse(example('/unlock')).success).toBe(true);
    expect(RegisterVehicleBodySchema.safeParse(example('/vehicles')).success).toBe(true);
    const { demoVehicleIds } = await import('../../server/seed.js');
    expect(demoVehicleIds(20)).toContain('demo-0001');
  });

  it('the Authorize dialog says where a token comes from', async () => {
    app = buildApp(testDeps({}));
    const document = (await app.inject({ url: '/openapi.json' })).json() as { components: { securitySchemes: { bearerAuth: { description?: string } } } };
    expect(document.components.securitySchemes.bearerAuth.description).toMatch(/npm run -s token -- --sub \S+ --role customer/);
    expect(document.components.securitySchemes.bearerAuth.description).toContain('FLEET_JWT_SECRET');
  });
});
