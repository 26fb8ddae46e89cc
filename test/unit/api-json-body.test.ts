import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import { whereJsonBreaks } from '../../api/json-body.js';
import { stubFleet, testDeps } from '../helpers/stub-fleet.js';
import { asCustomer } from '../helpers/tokens.js';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function post(payload: string): Promise<{ status: number; problem: Record<string, unknown>; calls: number }> {
  const stub = stubFleet();
  app = buildApp(testDeps({ fleet: stub.fleet }));
  const response = await app.inject({ method: 'POST', url: '/bookings', headers: { ...asCustomer(), 'content-type': 'application/json' }, payload });
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  return { status: response.statusCode, problem: response.json(), calls: stub.calls.length };
}

describe('a body that is not JSON', () => {
  it('is 400 malformed-json saying where it broke: line, column and position', async () => {
    const { status, problem, calls } = await post('{\n  "vehicleId": "veh-1"\n  "durationMinutes": 30\n}');
    expect(status).toBe(400);
    expect(problem.type).toBe('https://fleetactors.dev/problems/malformed-json');
    expect(problem.detail).toBe('The body is not valid JSON: comma expected near "\\"durationMinutes\\"" at line 3, column 3 (position 27).');
    expect(calls).toBe(0);
  });

  it.each([
    ['{"vehicleId": ', 'value expected at line 1, column 15 (position 14)'],
    ['{"vehicleId": "veh-1",}', 'property name expected near "}" at line 1, column 23 (position 22)'],
    ["{'vehicleId': 'veh-1'}", 'unexpected "\'vehicleId\'" at line 1, column 2 (position 1)'],
    ['{"vehicleId": tru}', 'unexpected "tru" at line 1, column 15 (position 14)'],
    ['{"vehicleId": "veh-1"} x', 'unexpected "x" at line 1, column 24 (position 23)'],
  ])('%s: %s', async (payload, where) => {
    const { status, problem } = await post(payload);
    expect(status).toBe(400);
    expect(problem.detail).toBe(`The body is not valid JSON: ${where}.`);
  });

  it('that parses but carries a prototype-poisoning key says so, and is still refused', async () => {
    const { status, problem, calls } = await post('{"vehicleId":"veh-1","__proto__":{"admin":true}}');
    expect(status).toBe(400);
    expect(problem.detail).toMatch(/__proto__/);
    expect(calls).toBe(0);
  });

  it('valid JSON is not reported', () => {
    expect(whereJsonBreaks('{"a": [1, 2, {"b": null}]}')).toBeNull();
  });
});
