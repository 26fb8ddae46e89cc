import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import { createMetrics, HTTP_REQUESTS_TOTAL } from '../../runtime/ground/metrics.js';
import { testDeps } from '../helpers/stub-fleet.js';
import { asCustomer } from '../helpers/tokens.js';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.x document with every path, bearer security and the problem schema', async () => {
    app = buildApp(testDeps());
    const response = await app.inject({ url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const doc = JSON.parse(response.body);
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/bookings',
      '/bookings/{id}',
      '/bookings/{id}/cancel',
      '/bookings/{id}/end',
      '/bookings/{id}/unlock',
      '/health',
      '/metrics',
      '/unlock',
      '/vehicles',
      '/vehicles/{id}',
      '/vehicles/{id}/credentials',
      '/vehicles/{id}/presence',
    ]);
    expect(doc.paths['/vehicles'].post).toBeDefined();
    expect(doc.paths['/vehicles/{id}/credentials'].post).toBeDefined();
    expect(doc.paths['/vehicles/{id}/presence'].delete.responses['202']).toBeDefined();
    expect(doc.components.schemas.DeviceCredentials.required).toEqual(['username', 'password', 'commandKey']);
    expect(doc.paths['/vehicles'].get).toBeDefined();
    expect(doc.components.securitySchemes.bearerAuth).toEqual({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: expect.stringContaining('npm run -s token') });
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths['/health'].get.security).toEqual([]);
    expect(doc.components.schemas.Problem.properties).toHaveProperty('type');
  });

  it('documents bodies, headers and problems from the zod schemas', async () => {
    app = buildApp(testDeps());
    const doc = (await app.inject({ url: '/openapi.json' })).json();
    const createBooking = doc.paths['/bookings'].post;
    const body = createBooking.requestBody.content['application/json'].schema;
    expect(body.required).toEqual(['vehicleId']);
    expect(body.additionalProperties).toBe(false);
    expect(body.properties.durationMinutes).toMatchObject({ minimum: 1, maximum: 1440, default: 30 });
    expect(createBooking.parameters).toContainEqual(expect.objectContaining({ in: 'header', name: 'idempotency-key', required: false }));
    expect(createBooking.responses['201'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Booking' });
    expect(createBooking.responses['422'].content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' });
    const location = doc.paths['/vehicles'].post.requestBody.content['application/json'].schema.properties.location;
    const locationSchema = location.$ref ? doc.components.schemas[location.$ref.split('/').at(-1)] : location;
    expect(locationSchema.properties.lat).toMatchObject({ minimum: -90, maximum: 90 });
  });

  it('lists /events and /traces/{id} when those ports are given', async () => {
    app = buildApp(testDeps({ events: { shards: 1, read: async () => ({ items: [], next: [0] }), subscribe: () => () => undefined }, traces: { find: async () => undefined } }));
    const doc = (await app.inject({ url: '/openapi.json' })).json();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/events', '/traces/{id}']));
  });

  it('/docs serves the Swagger UI page', async () => {
    app = buildApp(testDeps());
    const response = await app.inject({ url: '/docs' });
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('swagger-ui');
  });
});

describe('GET /health', () => {
  it('200 ok when every check passes', async () => {
    app = buildApp(testDeps());
    const response = await app.inject({ url: '/health' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok', checks: { journal: { ok: true }, mqtt: { ok: true, detail: 'embedded broker' } } });
  });

  it('503 naming the dependency that is down', async () => {
    app = buildApp(testDeps({ health: async () => ({ checks: { journal: { ok: true }, mqtt: { ok: false, detail: 'broker unreachable' } } }) }));
    const response = await app.inject({ url: '/health' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({ status: 'down', checks: { mqtt: { ok: false, detail: 'broker unreachable' } } });
  });
});

describe('GET /metrics', () => {
  it('counts requests by route template, method and status, in Prometheus text', async () => {
    app = buildApp(testDeps());
    await app.inject({ url: '/vehicles/veh-1', headers: asCustomer() });
    await app.inject({ url: '/vehicles/veh-404', headers: asCustomer() });
    await app.inject({ url: '/nowhere' });
    const response = await app.inject({ url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(response.body).toContain(`${HTTP_REQUESTS_TOTAL}{route="/vehicles/:id",method="GET",status="200"} 1`);
    expect(response.body).toContain(`${HTTP_REQUESTS_TOTAL}{route="/vehicles/:id",method="GET",status="404"} 1`);
    expect(response.body).toContain(`${HTTP_REQUESTS_TOTAL}{route="unmatched",method="GET",status="404"} 1`);
    expect(response.body).toMatch(/fleet_http_request_duration_seconds_bucket\{le="0\.001",route="\/vehicles\/:id",method="GET",status="200"\}/);
  });
});

describe('createMetrics', () => {
  it('keeps the Node process metrics by default', async () => {
    expect(await createMetrics().render()).toContain('process_cpu_user_seconds_total');
    expect(await createMetrics({ defaultMetrics: false }).render()).not.toContain('process_cpu_user_seconds_total');
  });

  it('gauges read their value at scrape time, with or without labels, and forget vanished label sets', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let connected = 1;
    let depths = [{ labels: { kind: 'vehicle' }, value: 3 }, { labels: { kind: 'booking' }, value: 1 }];
    metrics.gauge({ name: 'fleet_mqtt_connected', help: 'MQTT connected', collect: () => connected });
    metrics.gauge<'kind'>({ name: 'fleet_mailbox_depth', help: 'Mailbox depth', labelNames: ['kind'], collect: () => depths });
    let text = await metrics.render();
    expect(text).toContain('fleet_mqtt_connected 1');
    expect(text).toContain('fleet_mailbox_depth{kind="vehicle"} 3');
    connected = 0;
    depths = [{ labels: { kind: 'vehicle' }, value: 5 }];
    text = await metrics.render();
    expect(text).toContain('fleet_mqtt_connected 0');
    expect(text).toContain('fleet_mailbox_depth{kind="vehicle"} 5');
    expect(text).not.toContain('kind="booking"');
  });

  it('observed counters expose a total kept elsewhere; plain counters and histograms work as prom-client ones', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let commits = 10;
    metrics.observedCounter({ name: 'fleet_journal_commits_total', help: 'Commits', read: () => commits });
    const telemetry = metrics.counter<'outcome'>({ name: 'fleet_telemetry_messages_total', help: 'Telemetry', labelNames: ['outcome'] });
    const lag = metrics.histogram({ name: 'fleet_relay_lag_seconds', help: 'Lag', buckets: [0.1, 1] });
    telemetry.inc({ outcome: 'accepted' }, 2);
    lag.observe(0.5);
    expect(await metrics.render()).toContain('fleet_journal_commits_total 10');
    commits = 25;
    const text = await metrics.render();
    expect(text).toContain('fleet_journal_commits_total 25');
    expect(text).toContain('fleet_telemetry_messages_total{outcome="accepted"} 2');
    expect(text).toContain('fleet_relay_lag_seconds_bucket{le="1"} 1');
    expect(text).toContain('fleet_relay_lag_seconds_bucket{le="0.1"} 0');
  });
});
