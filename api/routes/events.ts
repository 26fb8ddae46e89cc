import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { advance, formatCursor, parseCursor, type EventCursor } from '../event-cursor.js';
import type { EventsPort, PublicEvent } from '../ports.js';
import { httpProblem, originOf, sendProblem } from '../problems.js';
import { problemResponses } from '../schemas.js';
import { bearerTokenOf } from '../auth.js';
import { refuseStream, type StreamLimits } from '../stream-limits.js';

export interface EventRoutesOptions {
  readonly events: EventsPort;
  /** Caps open streams per token and per address (shared with the trace viewer's streams). */
  readonly streamLimits?: StreamLimits;
  /** Comment line sent this often so proxies keep an idle stream open. */
  readonly heartbeatMs?: number;
}

const PublicEventSchema = z.object({
  shard: z.number().int().describe('the shard whose journal holds the event'),
  position: z.number().int().describe("position in that shard's journal"),
  type: z.string(),
  key: z.string(),
  data: z.unknown(),
  time: z.string(),
  id: z.string(),
});

const EventsQuerySchema = z.strictObject({
  after: z
    .string()
    .regex(/^\d{1,15}(\.\d{1,15}){0,63}$/, 'expected a cursor: the `next` of a previous page, or 0')
    .default('0')
    .describe('cursor (the `next` of the previous page, or 0 for the beginning); events after it are returned'),
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
export const eventRoutes: FastifyPluginAsyncZod<EventRoutesOptions> = async (app, { events, streamLimits, heartbeatMs = 15_000 }) => {
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
          200: {
            description: 'A page of events; with `Accept: text/event-stream`, the backlog then live events as server-sent events',
            content: {
              'application/json': { schema: z.object({ items: z.array(PublicEventSchema), next: z.string().describe('opaque cursor: pass as ?after= for the next page') }) },
              [EVENT_STREAM]: {
                schema: z
                  .string()
                  .describe('`retry: 2000`, then per event `id: <cursor>` and `data: <event as in items>`, and a `: keep-alive` comment every 15 s; `event: expired` and the end when the token expires. Reconnect with `Last-Event-ID: <id>` (and a fresh token)'),
              },
            },
          },
          ...problemResponses({ 400: 'Invalid cursor', 401: 'Not signed in', 403: 'Not an operator', 429: 'Too many streams open for this token or address' }),
        },
      },
    },
    async (request, reply) => {
      const cursor = parseCursor(resumeCursor(request) ?? request.query.after, events.shards);
      if (!cursor) {
        return sendProblem(reply, httpProblem('bad-request', `The cursor is not one of this fleet's (${events.shards} shards): pass back a \`next\` or an event id of this server, or 0.`, originOf(request)));
      }
      if (wantsEventStream(request)) {
        const admission = streamLimits?.admit(bearerTokenOf(request) ?? '', request.ip) ?? { ok: true, release: () => undefined };
        if (!admission.ok) return refuseStream(request, reply, admission);
        const stream = new EventStream(events, reply, cursor, heartbeatMs, request.tokenExpiresAtMs, () => {
          streams.delete(stream);
          admission.release();
        });
        streams.add(stream);
        stream.start();
        return reply;
      }
      const page = await events.read(cursor, request.query.limit);
      return { items: [...page.items], next: formatCursor(page.next) };
    },
  );
};

function wantsEventStream(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').includes(EVENT_STREAM);
}

/** The SSE reconnect cursor wins over `?after=`: it is where this client actually stopped. */
function resumeCursor(request: FastifyRequest): string | undefined {
  const header = request.headers['last-event-id'];
  return Array.isArray(header) ? header[0] : header;
}

/** Live events that arrive while the backlog is still being read wait here; past this many, the reads catch them up instead. */
const MAX_HELD_LIVE_EVENTS = 10_000;

/**
 * One subscriber. It reads the backlog from the journals page by page; once caught up it writes live
 * batches as they commit. A slow client that fills the socket buffer drops back to reading from the
 * journals when it drains, so memory stays bounded by the socket buffer, whatever the event rate.
 * Reads cross to the shards and come back later, so live events that arrive meanwhile are held, not
 * dropped, and written once the reads have caught up (those the reads already wrote are skipped).
 */
class EventStream {
  private readonly raw: ServerResponse;
  private catchingUp = true;
  private held: PublicEvent[] = [];
  private heldOverflow = false;
  private closed = false;
  private unsubscribe: () => void = () => undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;

  constructor(
    private readonly events: EventsPort,
    reply: FastifyReply,
    private cursor: EventCursor,
    private readonly heartbeatMs: number,
    /** The token's expiry (epoch ms): the stream ends then, as the viewer's does. */
    private readonly endsAtMs: number,
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
    // A shard that restarted may have committed while nobody followed it: read from the cursor again.
    this.unsubscribe = this.events.subscribe(
      (batch) => this.onCommitted(batch),
      () => {
        if (!this.catchingUp && !this.closed) void this.catchUp(false);
      },
    );
    this.heartbeat = setInterval(() => this.raw.write(': keep-alive\n\n'), this.heartbeatMs);
    this.armExpiry();
    void this.catchUp(false);
  }

  /** A token is good until its `exp`, not for as long as a connection it opened stays up. */
  private armExpiry(): void {
    const left = this.endsAtMs - Date.now();
    if (left <= 0) {
      this.raw.write('event: expired\ndata: {}\n\n');
      this.end();
      return;
    }
    // setTimeout holds at most 2^31-1 ms (~24 days); a longer token is checked again then.
    this.expiry = setTimeout(() => this.armExpiry(), Math.min(left, 2 ** 31 - 1));
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearInterval(this.heartbeat);
    clearTimeout(this.expiry);
    this.raw.end();
    this.onEnd();
  }

  private onCommitted(batch: readonly PublicEvent[]): void {
    if (this.closed) return;
    if (this.catchingUp) {
      if (this.held.length + batch.length > MAX_HELD_LIVE_EVENTS) this.heldOverflow = true;
      else this.held.push(...batch);
      return;
    }
    if (!this.write(batch)) void this.catchUp(true);
  }

  /** A backlog read that fails (a shard restarting, a deadline) ends the stream: the client resumes with Last-Event-ID. */
  private catchUp(afterDrain: boolean): Promise<void> {
    return this.readBacklog(afterDrain).catch(() => this.end());
  }

  private async readBacklog(afterDrain: boolean): Promise<void> {
    this.catchingUp = true;
    let drained = afterDrain ? await this.drained() : true;
    while (drained && !this.closed) {
      const page = await this.events.read(this.cursor, CATCH_UP_PAGE);
      if (this.closed) return;
      if (page.items.length === 0) {
        if (this.heldOverflow) {
          // Too many arrived meanwhile: read them instead (they are all in the journals by now).
          this.held = [];
          this.heldOverflow = false;
          continue;
        }
        // Nothing in between: this callback runs to its end before any other message is handled.
        const held = this.held;
        this.held = [];
        this.catchingUp = false;
        if (held.length > 0 && !this.write(held)) void this.catchUp(true);
        return;
      }
      drained = this.write(page.items) || (await this.drained());
    }
  }

  /** False when the socket buffer is full: stop writing until it drains. */
  private write(batch: readonly PublicEvent[]): boolean {
    let chunk = '';
    for (const event of batch) {
      if (event.position <= (this.cursor[event.shard] ?? 0)) continue;
      this.cursor = advance(this.cursor, event.shard, event.position);
      chunk += `id: ${formatCursor(this.cursor)}\ndata: ${JSON.stringify(event)}\n\n`;
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

