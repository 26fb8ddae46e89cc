import type { FastifyInstance } from 'fastify';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import type { EventCursor } from '../../api/event-cursor.js';
import type { EventPage, EventsPort, PublicEvent, TracesPort } from '../../api/ports.js';
import { testDeps } from '../helpers/stub-fleet.js';
import { asCustomer, asOperator } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';

/** An in-memory public event log: what the journal would commit, with commit notifications. */
class MemoryEvents implements EventsPort {
  readonly shards = 1;
  readonly events: PublicEvent[] = [];
  private readonly listeners = new Set<(events: readonly PublicEvent[]) => void>();

  commit(...types: string[]): PublicEvent[] {
    const batch = types.map((type, index) => {
      const position = this.events.length + index + 1;
      return { shard: 0, position, type, key: `bk_${position}`, data: { n: position }, time: new Date(1_700_000_000_000 + position).toISOString(), id: `evt-${position}` };
    });
    this.events.push(...batch);
    for (const listener of this.listeners) listener(batch);
    return batch;
  }

  async read(cursor: EventCursor, limit: number): Promise<EventPage> {
    const items = this.events.filter((event) => event.position > cursor[0]!).slice(0, limit);
    return { items, next: [items.at(-1)?.position ?? cursor[0]!] };
  }

  subscribe(listener: (events: readonly PublicEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }
}

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('GET /events (JSON)', () => {
  it('pages through public events after a position', async () => {
    const events = new MemoryEvents();
    events.commit('booking.created', 'vehicle.unlocked', 'booking.completed');
    app = buildApp(testDeps({ events }));
    const first = await app.inject({ url: '/events?limit=2', headers: asOperator() });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ items: events.events.slice(0, 2), next: '2' });
    const rest = await app.inject({ url: '/events?after=2', headers: asOperator() });
    expect(rest.json()).toEqual({ items: [events.events[2]], next: '3' });
    const none = await app.inject({ url: '/events?after=3', headers: asOperator() });
    expect(none.json()).toEqual({ items: [], next: '3' });
  });

  it('is for operators; a bad cursor is a 400', async () => {
    app = buildApp(testDeps({ events: new MemoryEvents() }));
    expect((await app.inject({ url: '/events', headers: asCustomer() })).statusCode).toBe(403);
    expect((await app.inject({ url: '/events?after=-1', headers: asOperator() })).statusCode).toBe(400);
  });

  it('is absent without an EventsPort', async () => {
    app = buildApp(testDeps());
    expect((await app.inject({ url: '/events', headers: asOperator() })).statusCode).toBe(404);
  });
});

/** Reads server-sent events from a real loopback connection. */
class SseClient {
  readonly received: { id: string; event: PublicEvent }[] = [];
  raw = '';
  response!: IncomingMessage;
  private readonly request;

  constructor(port: number, path: string, headers: Record<string, string>) {
    this.request = httpRequest({ host: '127.0.0.1', port, path, headers: { accept: 'text/event-stream', ...headers } }, (response) => {
      this.response = response;
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => this.take(chunk));
    });
    this.request.on('error', () => undefined);
    this.request.end();
  }

  private take(chunk: string): void {
    this.raw += chunk;
    const blocks = this.raw.split('\n\n');
    this.raw = blocks.pop()!;
    for (const block of blocks) {
      const id = /^id: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (id !== undefined && data !== undefined) this.received.push({ id, event: JSON.parse(data) });
    }
  }

  close(): void {
    this.request.destroy();
  }
}

describe('GET /events (text/event-stream)', () => {
  it('sends the backlog after ?after=, then live events, with id = position', async () => {
    const events = new MemoryEvents();
    events.commit('booking.created', 'vehicle.unlocked');
    app = buildApp(testDeps({ events }));
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const client = new SseClient(Number(new URL(address).port), '/events?after=1', asOperator());
    await waitFor(() => client.received.length === 1, { what: 'the backlog event' });
    expect(client.response.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(client.response.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-/);
    expect(client.received[0]).toEqual({ id: '2', event: events.events[1] });

    events.commit('booking.completed', 'vehicle.locked');
    await waitFor(() => client.received.length === 3, { what: 'two live events' });
    expect(client.received.map((message) => message.id)).toEqual(['2', '3', '4']);
    client.close();
    await waitFor(() => events.subscribers === 0, { what: 'the stream to unsubscribe when the client left' });
  });

  it('resumes from Last-Event-ID over ?after=', async () => {
    const events = new MemoryEvents();
    events.commit('a', 'b', 'c', 'd');
    app = buildApp(testDeps({ events }));
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const client = new SseClient(Number(new URL(address).port), '/events?after=0', { ...asOperator(), 'last-event-id': '3' });
    await waitFor(() => client.received.length === 1, { what: 'the event after 3' });
    expect(client.received[0]!.id).toBe('4');
    client.close();
  });

  it('delivers a backlog longer than one catch-up page in order, then live events, without gaps or repeats', async () => {
    const events = new MemoryEvents();
    events.commit(...Array.from({ length: 1234 }, (_, i) => `e${i}`));
    app = buildApp(testDeps({ events }));
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const client = new SseClient(Number(new URL(address).port), '/events', asOperator());
    await waitFor(() => client.received.length >= 1, { what: 'the first event' });
    events.commit('live-1');
    await waitFor(() => client.received.length === 1235, { what: 'backlog and live event', timeoutMs: 10_000 });
    expect(client.received.map((message) => Number(message.id))).toEqual(Array.from({ length: 1235 }, (_, i) => i + 1));
    client.close();
  });

  it('app.close() ends open streams instead of hanging', async () => {
    const events = new MemoryEvents();
    app = buildApp(testDeps({ events }));
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const client = new SseClient(Number(new URL(address).port), '/events', asOperator());
    // The server subscribes before the client has read the response head: wait for both.
    await waitFor(() => events.subscribers === 1 && client.response !== undefined, { what: 'the stream to subscribe and answer' });
    const ended = new Promise<void>((resolve) => client.response.on('end', resolve));
    await app.close();
    app = undefined;
    await ended;
    expect(events.subscribers).toBe(0);
  });
});

describe('GET /traces/:id', () => {
  const traces: TracesPort = {
    find: async (id) =>
      id === 'bk_1' || id === '0af7651916cd43dd8448eb211c80319c'
        ? { traceId: '0af7651916cd43dd8448eb211c80319c', steps: [{ from: 'http', to: 'booking/bk_1', type: 'CreateBooking' }] }
        : undefined,
  };

  it('answers the trace of a booking id or a trace id', async () => {
    app = buildApp(testDeps({ traces }));
    for (const id of ['bk_1', '0af7651916cd43dd8448eb211c80319c']) {
      const response = await app.inject({ url: `/traces/${id}`, headers: asOperator() });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ traceId: '0af7651916cd43dd8448eb211c80319c', steps: [{ from: 'http', to: 'booking/bk_1', type: 'CreateBooking' }] });
    }
  });

  it('404 problem for an unknown id; 403 for customers', async () => {
    app = buildApp(testDeps({ traces }));
    const missing = await app.inject({ url: '/traces/bk_unknown', headers: asOperator() });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().type).toBe('https://fleetactors.dev/problems/not-found');
    expect((await app.inject({ url: '/traces/bk_1', headers: asCustomer() })).statusCode).toBe(403);
  });
});
