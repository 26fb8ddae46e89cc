import type { FastifyInstance } from 'fastify';
import { connect, type Socket } from 'node:net';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import type { EventCursor } from '../../api/event-cursor.js';
import type { EventPage, EventsPort, TracesPort } from '../../api/ports.js';
import { signViewerLink } from '../../api/viewer/access.js';
import { normalizeDeviceReason } from '../../actors/contract/device-protocol.js';
import { rejectionProblem } from '../../api/problems.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { testDeps } from '../helpers/stub-fleet.js';
import { asCustomer, asOperator, TEST_JWT_SECRET, tokenFor } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The HTTP edge's limits against an outside attacker (issue 19), over real loopback sockets where a
 * socket is the point: live streams capped per token and per address and ended with their token,
 * slow requests cut, links built from configuration, no token in a log line, reserved ids refused,
 * device reasons shown as bounded data.
 */

class QuietEvents implements EventsPort {
  readonly shards = 1;
  subscribers = 0;
  async read(cursor: EventCursor): Promise<EventPage> {
    return { items: [], next: cursor };
  }
  subscribe(): () => void {
    this.subscribers += 1;
    return () => {
      this.subscribers -= 1;
    };
  }
}

const STEP = {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  parentSpanId: null,
  fromActor: 'http',
  toActor: 'booking/bk_1',
  messageType: 'GetBooking',
  payload: {},
  stateBefore: { status: 'CONFIRMED' },
  stateAfter: { status: 'CONFIRMED' },
  outcome: { ok: true },
  startedAt: 1_700_000_000_000,
  durationUs: 120,
};

function countingTraces(): TracesPort & { reads: number } {
  const port = {
    reads: 0,
    find: async (id: string) => {
      port.reads += 1;
      return id === 'bk_1' ? { traceId: STEP.traceId, steps: [STEP] } : undefined;
    },
  };
  return port;
}

/** An SSE request on its own connection: the status, the text so far, and whether the server ended it. */
class Stream {
  status: number | undefined;
  text = '';
  ended = false;
  private readonly request;
  constructor(port: number, path: string, token: string) {
    this.request = httpRequest({ host: '127.0.0.1', port, path, agent: false, headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` } }, (response: IncomingMessage) => {
      this.status = response.statusCode;
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (this.text += chunk));
      response.on('end', () => (this.ended = true));
    });
    this.request.on('error', () => undefined);
    this.request.end();
  }
  close(): void {
    this.request.destroy();
  }
}

let app: FastifyInstance | undefined;
const open: Stream[] = [];
afterEach(async () => {
  for (const stream of open.splice(0)) stream.close();
  await app?.close();
  app = undefined;
});

async function listening(instance: FastifyInstance): Promise<number> {
  app = instance;
  return Number(new URL(await instance.listen({ host: '127.0.0.1', port: 0 })).port);
}

function stream(port: number, path: string, token: string): Stream {
  const opened = new Stream(port, path, token);
  open.push(opened);
  return opened;
}

const answered = (s: Stream) => waitFor(() => s.status !== undefined, { what: 'the stream to answer' });

describe('live streams are capped per token and per address', () => {
  it('GET /events: a third stream of one token is 429 too-many-streams; a closed one frees its place', async () => {
    const events = new QuietEvents();
    const port = await listening(buildApp(testDeps({ events }, { STREAMS_PER_TOKEN: '2', STREAMS_PER_IP: '10' })));
    const token = tokenFor('ops-1', 'operator');
    const [a, b] = [stream(port, '/events', token), stream(port, '/events', token)];
    await Promise.all([answered(a), answered(b)]);
    const c = stream(port, '/events', token);
    await answered(c);
    expect([a.status, b.status, c.status]).toEqual([200, 200, 429]);
    expect(JSON.parse(c.text)).toMatchObject({ type: 'https://fleetactors.dev/problems/too-many-streams', limit: 2, per: 'token' });
    // Another operator's token is its own count.
    const other = stream(port, '/events', tokenFor('ops-2', 'operator'));
    await answered(other);
    expect(other.status).toBe(200);
    a.close();
    await waitFor(() => events.subscribers === 2, { what: 'the closed stream to let go' });
    const d = stream(port, '/events', token);
    await answered(d);
    expect(d.status).toBe(200);
  });

  it('one viewer link opens only so many /view/stream connections, and an address only so many streams of any token', async () => {
    const traces = countingTraces();
    const port = await listening(buildApp(testDeps({ traces }, { STREAMS_PER_TOKEN: '2', STREAMS_PER_IP: '3' })));
    const link = signViewerLink(TEST_JWT_SECRET, 'bk_1', 'ops-1').token;
    const viewers = Array.from({ length: 5 }, () => stream(port, '/traces/bk_1/view/stream', link));
    await Promise.all(viewers.map(answered));
    expect(viewers.map((viewer) => viewer.status).sort()).toEqual([200, 200, 429, 429, 429]);
    // A refused stream read nothing: only the two admitted ones loaded the trace.
    expect(traces.reads).toBe(2);
    const second = stream(port, '/traces/bk_1/view/stream', signViewerLink(TEST_JWT_SECRET, 'bk_1', 'ops-2').token);
    const third = stream(port, '/traces/bk_1/view/stream', signViewerLink(TEST_JWT_SECRET, 'bk_1', 'ops-3').token);
    await Promise.all([answered(second), answered(third)]);
    expect([second.status, third.status]).toEqual([200, 429]);
    expect(JSON.parse(third.text)).toMatchObject({ per: 'address', limit: 3 });
  });
});

describe('GET /events as a stream', () => {
  it('ends with `event: expired` when the token that opened it expires', async () => {
    const port = await listening(buildApp(testDeps({ events: new QuietEvents() })));
    // Two seconds: a JWT's exp is in whole seconds, so a one-second token signed late in a second may be expired on arrival.
    const shortLived = tokenFor('ops-1', 'operator', { ttlSeconds: 2 });
    const live = stream(port, '/events', shortLived);
    await answered(live);
    expect(live.status).toBe(200);
    await waitFor(() => live.ended, { what: 'the stream to end with its token', timeoutMs: 8000 });
    expect(live.text).toContain('event: expired');
  });
});

describe('socket deadlines', () => {
  it('a body trickling in is cut at HTTP_REQUEST_TIMEOUT_MS with 408, and the socket closed', async () => {
    const port = await listening(buildApp(testDeps({}, { HTTP_REQUEST_TIMEOUT_MS: '400' })));
    const socket: Socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.write(`POST /bookings HTTP/1.1\r\nHost: x\r\nAuthorization: ${asCustomer().authorization}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`);
    const trickle = setInterval(() => socket.writable && socket.write(' '), 100);
    try {
      await closed;
    } finally {
      clearInterval(trickle);
    }
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('an idle connection is closed after HTTP_IDLE_TIMEOUT_MS', async () => {
    const port = await listening(buildApp(testDeps({}, { HTTP_IDLE_TIMEOUT_MS: '300', HTTP_REQUEST_TIMEOUT_MS: '60000' })));
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
    expect(socket.destroyed).toBe(true);
  });
});

describe('links and logs', () => {
  it('a viewer link is built from PUBLIC_BASE_URL, never from the Host header', async () => {
    app = buildApp(testDeps({ traces: countingTraces() }, { PUBLIC_BASE_URL: 'https://fleet.example.com/' }));
    const response = await app.inject({ method: 'POST', url: '/traces/bk_1/view-link', headers: { ...asOperator(), host: 'evil.example', 'x-forwarded-host': 'evil.example' } });
    expect(response.statusCode).toBe(200);
    expect(response.json().url).toMatch(/^https:\/\/fleet\.example\.com\/traces\/bk_1\/view\?access=/);
    expect(response.body).not.toContain('evil');
  });

  it('without PUBLIC_BASE_URL the link names the address the API listens on', async () => {
    const port = await listening(buildApp(testDeps({ traces: countingTraces() })));
    const response = await fetch(`http://127.0.0.1:${port}/traces/bk_1/view-link`, { method: 'POST', headers: { ...asOperator(), host: 'evil.example' } });
    expect(((await response.json()) as { url: string }).url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${port}/traces/bk_1/view\\?access=`));
  });

  it('a mistyped viewer URL (no route) does not put the link token in the log (the URL is logged, redacted, at debug only)', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    app = buildApp(testDeps({ traces: countingTraces(), logger: createLogger('debug', sink) }));
    const token = signViewerLink(TEST_JWT_SECRET, 'bk_1', 'ops-1').token;
    for (const url of [`/traces/bk_1/veiw?access=${token}`, `/traces/bk_1/view/data?access=${token}`, `/nowhere?x=1&token=${token}`]) await app.inject({ url });
    const log = lines.join('');
    expect(log).toContain('/traces/bk_1/veiw?access=[redacted]');
    expect(log).not.toContain(token);
  });
});

describe('vehicle ids and device reasons', () => {
  it('refuses to register a vehicle under the reserved fleetactors- prefix', async () => {
    app = buildApp(testDeps());
    for (const id of ['fleetactors-server', 'FleetActors-abc-s0']) {
      const response = await app.inject({ method: 'POST', url: '/vehicles', headers: asOperator(), payload: { id, type: 'car', location: { lat: 1, lon: 2 } } });
      expect(response.statusCode).toBe(400);
      expect(response.json().errors[0].message).toMatch(/reserved/);
    }
  });

  it("a device's REJECTED reason is data: never in `detail`, control characters flattened, at most 120 characters", () => {
    const raw = `<img src=x onerror=alert(1)>\u0000\n${'x'.repeat(5000)}`;
    const problem = rejectionProblem({ type: 'VehicleRejectedCommand', vehicleId: 'v-1', command: 'UNLOCK', reason: raw }, { instance: '/unlock' });
    expect(problem.detail).not.toContain('<img');
    expect(problem.reason).toBe(normalizeDeviceReason(raw));
    expect([...(problem.reason as string)]).toHaveLength(120);
    expect(problem.reason).not.toContain('\u0000');
    expect(problem.reason).not.toContain('\n');
  });
});
