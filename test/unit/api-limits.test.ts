import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import { MAX_URL_LENGTH } from '../../api/framework-errors.js';
import { testDeps } from '../helpers/stub-fleet.js';
import { asCustomer, asOperator } from '../helpers/tokens.js';

/** Rate limits (429 + Retry-After) and the framework's own answers as problem+json, also over a real socket. */

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

const PROBLEM = /^application\/problem\+json/;

function expectProblem(status: number, slug: string, response: { statusCode: number; headers: Record<string, unknown>; body: string }): Record<string, unknown> {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(PROBLEM);
  const problem = JSON.parse(response.body) as Record<string, unknown>;
  expect(problem).toMatchObject({ type: `https://fleetactors.dev/problems/${slug}`, status });
  return problem;
}

function start(env: Record<string, string>): FastifyInstance {
  app = buildApp(testDeps({}, env));
  return app;
}

/**
 * A burst much larger than the limit: the window is one second, so even on a machine slow enough to
 * spread the burst over several windows, some requests of it are refused.
 */
async function burst(count: number, send: () => Promise<LightMyRequestResponse>): Promise<LightMyRequestResponse[]> {
  return Promise.all(Array.from({ length: count }, send));
}

describe('rate limits', () => {
  it('per customer: past RATE_LIMIT_PER_CUSTOMER a customer gets 429 rate-limited with Retry-After; another customer does not', async () => {
    const app = start({ RATE_LIMIT_PER_CUSTOMER: '3', RATE_LIMIT_PER_IP: '0' });
    const answers = await burst(30, () => app.inject({ url: '/vehicles', headers: asCustomer('greedy') }));
    const refused = answers.filter((answer) => answer.statusCode === 429);
    expect(answers.filter((answer) => answer.statusCode === 200).length).toBeGreaterThanOrEqual(3);
    expect(refused.length).toBeGreaterThan(0);
    expect(answers.every((answer) => answer.statusCode === 200 || answer.statusCode === 429)).toBe(true);
    const problem = expectProblem(429, 'rate-limited', refused[0]!);
    expect(Number(refused[0]!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(problem).toMatchObject({ instance: '/vehicles', limit: 3 });
    expect((await app.inject({ url: '/vehicles', headers: asCustomer('patient') })).statusCode).toBe(200);
  });

  it('per customer applies to customers only: an operator is bounded by the per-address limit alone', async () => {
    const app = start({ RATE_LIMIT_PER_CUSTOMER: '2', RATE_LIMIT_PER_IP: '0' });
    const answers = await burst(20, () => app.inject({ url: '/vehicles', headers: asOperator() }));
    expect(answers.map((answer) => answer.statusCode)).toEqual(Array(20).fill(200));
  });

  it('per address: past RATE_LIMIT_PER_IP an address gets 429 before its token is even checked; another address does not', async () => {
    const app = start({ RATE_LIMIT_PER_CUSTOMER: '0', RATE_LIMIT_PER_IP: '3' });
    const answers = await burst(30, () => app.inject({ url: '/vehicles', remoteAddress: '203.0.113.7' }));
    expect(answers.filter((answer) => answer.statusCode === 401).length).toBeGreaterThanOrEqual(3);
    const refused = answers.filter((answer) => answer.statusCode === 429);
    expect(refused.length).toBeGreaterThan(0);
    expectProblem(429, 'rate-limited', refused[0]!);
    expect(refused[0]!.headers['retry-after']).toMatch(/^\d+$/);
    expect((await app.inject({ url: '/vehicles', remoteAddress: '198.51.100.1', headers: asCustomer() })).statusCode).toBe(200);
  });

  it('per address: an IPv6 client counts by its /64, so rotating addresses inside it does not escape the limit', async () => {
    const app = start({ RATE_LIMIT_PER_CUSTOMER: '0', RATE_LIMIT_PER_IP: '3' });
    let next = 0;
    const answers = await burst(30, () => app.inject({ url: '/vehicles', remoteAddress: `2001:db8:1:2:${(next += 1).toString(16)}::1` }));
    expect(answers.filter((answer) => answer.statusCode === 429).length).toBeGreaterThan(0);
    expect((await app.inject({ url: '/vehicles', remoteAddress: '2001:db8:1:3::1', headers: asCustomer() })).statusCode).toBe(200);
  });

  it('/health is never limited; /metrics is limited per address like any route, operator token or not', async () => {
    const app = start({ RATE_LIMIT_PER_CUSTOMER: '1', RATE_LIMIT_PER_IP: '1' });
    const health = await burst(15, () => app.inject({ url: '/health', remoteAddress: '203.0.113.9' }));
    expect(health.map((answer) => answer.statusCode)).toEqual(Array(15).fill(200));
    const metrics = await burst(15, () => app.inject({ url: '/metrics', remoteAddress: '203.0.113.10', headers: asOperator() }));
    expect(metrics.map((answer) => answer.statusCode)).toEqual([200, ...Array(14).fill(429)]);
  });

  it('0 turns both limits off', async () => {
    const app = start({ RATE_LIMIT_PER_CUSTOMER: '0', RATE_LIMIT_PER_IP: '0' });
    const answers = await burst(300, () => app.inject({ url: '/vehicles', headers: asCustomer('busy') }));
    expect(answers.every((answer) => answer.statusCode === 200)).toBe(true);
  });
});

interface RawAnswer {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Writes bytes on a fresh TCP connection and parses the one answer (the server closes after an error). */
function rawExchange(port: number, request: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...headerLines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of headerLines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ statusCode: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') });
    });
    socket.end(request);
  });
}

async function fetchAnswer(url: string, init: RequestInit = {}): Promise<RawAnswer> {
  const response = await fetch(url, init);
  return { statusCode: response.status, headers: Object.fromEntries(response.headers), body: await response.text() };
}

describe('framework answers are problem+json over a real socket', () => {
  async function listening(): Promise<{ base: string; port: number }> {
    const app = start({ BODY_LIMIT_BYTES: '1024' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
    return { base: `http://127.0.0.1:${address.port}`, port: address.port };
  }

  it('404, 405, 413, 415 and 400 for invalid JSON', async () => {
    const { base } = await listening();
    const json = { ...asCustomer(), 'content-type': 'application/json' };
    expectProblem(404, 'not-found', await fetchAnswer(`${base}/nowhere`));
    const notAllowed = await fetchAnswer(`${base}/bookings`, { method: 'PUT', headers: json, body: '{}' });
    expectProblem(405, 'method-not-allowed', notAllowed);
    expect(notAllowed.headers.allow).toContain('POST');
    expectProblem(413, 'body-too-large', await fetchAnswer(`${base}/bookings`, { method: 'POST', headers: json, body: JSON.stringify({ vehicleId: 'x'.repeat(2000) }) }));
    expectProblem(415, 'unsupported-media-type', await fetchAnswer(`${base}/bookings`, { method: 'POST', headers: { ...asCustomer(), 'content-type': 'text/plain' }, body: 'vehicleId=1' }));
    expectProblem(400, 'malformed-json', await fetchAnswer(`${base}/bookings`, { method: 'POST', headers: json, body: '{"vehicleId":' }));
  });

  it('414 for a URL longer than MAX_URL_LENGTH and for a path segment past the router\'s parameter length', async () => {
    const { base } = await listening();
    const longQuery = await fetchAnswer(`${base}/vehicles?near=${'1'.repeat(MAX_URL_LENGTH)}`, { headers: asCustomer() });
    const problem = expectProblem(414, 'uri-too-long', longQuery);
    expect(String(problem.instance).length).toBeLessThanOrEqual(256);
    expectProblem(414, 'uri-too-long', await fetchAnswer(`${base}/bookings/${'b'.repeat(101)}`, { headers: asCustomer() }));
    // Up to the parameter length it is an id the schema refuses: 400, not 414.
    expectProblem(400, 'validation', await fetchAnswer(`${base}/bookings/${'b'.repeat(100)}`, { headers: asCustomer() }));
  });

  it('431 for headers past Node\'s maxHeaderSize and 400 for bytes that are not HTTP, written by the server itself', async () => {
    const { port } = await listening();
    const huge = await rawExchange(port, `GET /vehicles HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(20_000)}\r\n\r\n`);
    expectProblem(431, 'headers-too-large', huge);
    expect(huge.headers['content-length']).toBe(String(Buffer.byteLength(huge.body)));
    const garbage = await rawExchange(port, 'HELLO THERE\r\n\r\n');
    expectProblem(400, 'bad-request', garbage);
  });

  it('a bad percent-encoding in the path is a 400 problem', async () => {
    const { port } = await listening();
    const answer = await rawExchange(port, 'GET /bookings/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(answer.statusCode).toBe(400);
    expect(answer.headers['content-type']).toMatch(PROBLEM);
  });
});
