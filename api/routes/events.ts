import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import type { EventsPort, PublicEvent } from '../ports.js';
import { problemResponses } from '../schemas.js';

export interface EventRoutesOptions {
  readonly events: EventsPort;
  /** Comment line sent this often so proxies keep an idle stream open. */
  readonly heartbeatMs?: number;
}

const PublicEventSchema = z.object({
  position: z.number().int(),
  type: z.string(),
  key: z.string(),
  data: z.unknown(),
  time: z.string(),
  id: z.string(),
});

const EventsQuerySchema = z.strictObject({
  after: z.coerce.number().int().min(0).default(0).describe('journal position; events after it are returned'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const EVENT_STREAM = 'text/event-stream';
/** Journal rows read per page while a stream catches up, so a long backlog never sits in memory at once. */
const CATCH_UP_PAGE = 500;

/**
 * GET /events: the public events in journal order, the same ones Kafka receives (without Kafka, the
 * only way out). JSON pages by default; with `Accept: text/event-stream`, the backlog then live events
 * as server-sent events whose `id:` is the position, so a reconnecting client resumes with Last-Event-ID.
 */
export const eventRoutes: FastifyPluginAsyncZod<EventRoutesOptions> = async (app, { events, heartbeatMs = 15_000 }) => {
  const streams = new Set<EventStream>();
  // Before the server stops accepting: an open stream would otherwise hold close() forever.
  app.addHook('preClose', (done) => {
    for (const stream of streams) stream.end();
    done();
  });

  app.get(
    '',
    {
      config: { roles: ['operator'] },
      schema: {
        tags: ['events'],
        summary: 'Public events after a position (JSON), or live with Accept: text/event-stream (operators)',
        querystring: EventsQuerySchema,
        response: {
          200: z.object({ items: z.array(PublicEventSchema), next: z.number().int().describe('pass as ?after= for the next page') }),
          ...problemResponses({ 400: 'Invalid cursor', 401: 'Not signed in', 403: 'Not an operator' }),
        },
      },
    },
    async (request, reply) => {
      if (wantsEventStream(request)) {
        const stream = new EventStream(events, reply, resumePosition(request) ?? request.query.after, heartbeatMs, () => streams.delete(stream));
        streams.add(stream);
        stream.start();
        return reply;
      }
      const items = events.read(request.query.after, request.query.limit);
      return { items: [...items], next: items.at(-1)?.position ?? request.query.after };
    },
  );
};

function wantsEventStream(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').includes(EVENT_STREAM);
}

/** The SSE reconnect cursor wins over `?after=`: it is where this client actually stopped. */
function resumePosition(request: FastifyRequest): number | undefined {
  const header = request.headers['last-event-id'];
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/**
 * One subscriber. It reads the backlog from the journal page by page; once caught up it writes live
 * batches as they commit. A slow client that fills the socket buffer drops back to reading from the
 * journal when it drains, so memory stays bounded by the socket buffer, whatever the event rate.
 */
class EventStream {
  private readonly raw: ServerResponse;
  private catchingUp = true;
  private closed = false;
  private unsubscribe: () => void = () => undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly events: EventsPort,
    reply: FastifyReply,
    private cursor: number,
    private readonly heartbeatMs: number,
    private readonly onEnd: () => void,
  ) {
    reply.hijack();
    this.raw = reply.raw;
    this.raw.writeHead(200, {
      ...headersOf(reply),
      'content-type': `${EVENT_STREAM}; charset=utf-8`,
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // nginx buffers proxied responses unless told not to, which would hold events back.
      'x-accel-buffering': 'no',
    });
    this.raw.on('close', () => this.end());
  }

  start(): void {
    this.raw.write('retry: 2000\n\n');
    this.unsubscribe = this.events.subscribe((batch) => this.onCommitted(batch));
    this.heartbeat = setInterval(() => this.raw.write(': keep-alive\n\n'), this.heartbeatMs);
    void this.catchUp(false);
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearInterval(this.heartbeat);
    this.raw.end();
    this.onEnd();
  }

  private onCommitted(batch: readonly PublicEvent[]): void {
    // While catching up, the journal read loop will reach these events itself.
    if (this.closed || this.catchingUp) return;
    if (!this.write(batch)) void this.catchUp(true);
  }

  private async catchUp(afterDrain: boolean): Promise<void> {
    this.catchingUp = true;
    let drained = afterDrain ? await this.drained() : true;
    while (drained && !this.closed) {
      const page = this.events.read(this.cursor, CATCH_UP_PAGE);
      // Read and flag switch in one synchronous step: no commit can slip between them.
      if (page.length === 0) {
        this.catchingUp = false;
        return;
      }
      drained = this.write(page) || (await this.drained());
    }
  }

  /** False when the socket buffer is full: stop writing until it drains. */
  private write(batch: readonly PublicEvent[]): boolean {
    let chunk = '';
    for (const event of batch) {
      if (event.position <= this.cursor) continue;
      chunk += `id: ${event.position}\ndata: ${JSON.stringify(event)}\n\n`;
      this.cursor = event.position;
    }
    return chunk === '' || this.raw.write(chunk);
  }

  private drained(): Promise<boolean> {
    return new Promise((resolve) => {
      const settle = (): void => {
        this.raw.off('drain', settle);
        this.raw.off('close', settle);
        resolve(!this.closed);
      };
      this.raw.once('drain', settle);
      this.raw.once('close', settle);
    });
  }
}

/** Headers set before the hijack (traceparent, x-request-id) still belong on the response. */
function headersOf(reply: FastifyReply): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = String(value);
  return headers;
}

