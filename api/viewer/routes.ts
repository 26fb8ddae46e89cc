import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TraceStepView } from '../../traces/trace-diagram.js';
import { createTokenVerifier } from '../auth.js';
import type { TracesPort } from '../ports.js';
import { httpProblem, originOf, sendProblem } from '../problems.js';
import { IdSchema, problemResponses } from '../schemas.js';
import { createViewerLinkVerifier } from './access.js';
import { buildViewerModel, journalQueryFor, selectSteps, type ViewerModel } from './model.js';
import { viewerPage } from './page.js';

export interface ViewerRoutesOptions {
  readonly traces: TracesPort;
  /** The API's JWT secret: it checks operator tokens and viewer links alike. */
  readonly secret: string;
  /** KAFKA_BROKERS is set: the viewer draws a Kafka lane (otherwise public events stay in the journal). */
  readonly kafka?: boolean;
  /** How often a live view reads the trace again (default 1 s). */
  readonly pollMs?: number;
  readonly heartbeatMs?: number;
}

const Params = z.strictObject({ id: IdSchema.describe('booking id, or the trace id from a traceparent header') });
const BEARER = /^Bearer[ ]+(\S+)[ ]*$/i;
const REALM = 'fleetactors';

/**
 * GET /traces/:id/view (the page), /view/data (its model) and /view/stream (the model again whenever
 * the trace grew, as server-sent events). They sit outside the API's bearer scope because they
 * accept two tokens: an operator's, or a viewer link's that is scoped to this id (api/viewer/access.ts).
 * The page itself holds no data, so it is public.
 */
export const viewerRoutes: FastifyPluginAsyncZod<ViewerRoutesOptions> = async (app, { traces, secret, kafka = false, pollMs = 1000, heartbeatMs = 15_000 }) => {
  const operator = createTokenVerifier(secret);
  const link = createViewerLinkVerifier(secret);
  const streams = new Set<() => void>();
  app.addHook('preClose', (done) => {
    for (const end of streams) end();
    done();
  });

  /** Null when allowed (and the link's expiry, if a link), else the problem has been sent. */
  /** expiresAt: a link's (the page shows it); endsAt: when a live stream must end, link or operator token. */
  const authorize = (id: string, request: FastifyRequest, reply: FastifyReply): { expiresAt: number | null; endsAt: number } | null => {
    const match = BEARER.exec(request.headers.authorization ?? '');
    const deny = (detail: string, error: string | null): null => {
      reply.header('www-authenticate', error ? `Bearer realm="${REALM}", error="${error}"` : `Bearer realm="${REALM}"`);
      void sendProblem(reply, httpProblem('unauthorized', detail, originOf(request)));
      return null;
    };
    if (!match) return deny('Send Authorization: Bearer <operator token or viewer link token>.', request.headers.authorization ? 'invalid_request' : null);
    const linkCheck = link(match[1]!, id);
    if (linkCheck.ok) return { expiresAt: linkCheck.expiresAt, endsAt: linkCheck.expiresAt };
    const operatorCheck = operator(match[1]!);
    if (operatorCheck.ok) {
      // A live view ends when the token that opened it does, like a link's.
      if (operatorCheck.caller.role === 'operator') return { expiresAt: null, endsAt: operatorCheck.expiresAtMs };
      void sendProblem(reply, httpProblem('forbidden', `The trace viewer is for the operator role; the token's role is ${operatorCheck.caller.role}.`, originOf(request)));
      return null;
    }
    return deny(`Bearer token rejected: ${linkCheck.reason === 'the link is not valid' ? operatorCheck.reason : linkCheck.reason}.`, 'invalid_token');
  };

  const load = async (id: string): Promise<ViewerModel | undefined> => {
    const trace = await traces.find(id);
    if (!trace) return undefined;
    // The steps come from our own trace store in the shape traces/trace-diagram.ts reads.
    const selection = selectSteps(id, trace.steps as unknown as TraceStepView[]);
    const journal = traces.journal ? await traces.journal(journalQueryFor(selection.steps)) : undefined;
    return buildViewerModel(id, selection, journal, { kafka });
  };

  app.get(
    '/:id/view',
    { schema: { tags: ['traces'], summary: 'The trace viewer page (HTML; its data needs an operator token or a viewer link)', params: Params } },
    async (_request, reply) => {
      const nonce = randomBytes(16).toString('base64');
      return reply
        .type('text/html; charset=utf-8')
        .header('content-security-policy', `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`)
        .header('referrer-policy', 'no-referrer')
        .header('cache-control', 'no-store')
        .send(viewerPage(nonce));
    },
  );

  app.get(
    '/:id/view/data',
    {
      schema: {
        tags: ['traces'],
        summary: 'What the trace viewer draws: participants, arrows, steps with state changes and journal events (operator token or viewer link)',
        params: Params,
        response: { 200: z.record(z.string(), z.unknown()), ...problemResponses({ 400: 'Invalid id', 401: 'Not signed in', 403: 'Not an operator', 404: 'No such trace' }) },
      },
    },
    async (request, reply) => {
      if (!authorize(request.params.id, request, reply)) return reply;
      const model = await load(request.params.id);
      if (!model) return sendProblem(reply, httpProblem('not-found', `No trace is known for ${request.params.id}.`, originOf(request)));
      return reply.header('cache-control', 'no-store').send({ ...model });
    },
  );

  app.get(
    '/:id/view/stream',
    {
      schema: {
        tags: ['traces'],
        summary: 'The viewer model as server-sent events: `model` now and whenever the trace grew, `access` (link expiry), `expired` (operator token or viewer link)',
        params: Params,
        response: problemResponses({ 400: 'Invalid id', 401: 'Not signed in', 403: 'Not an operator', 404: 'No such trace' }),
      },
    },
    async (request, reply) => {
      const access = authorize(request.params.id, request, reply);
      if (!access) return reply;
      const first = await load(request.params.id);
      if (!first) return sendProblem(reply, httpProblem('not-found', `No trace is known for ${request.params.id}.`, originOf(request)));
      new TraceFollower(reply, request.params.id, load, access.expiresAt, access.endsAt, pollMs, heartbeatMs, streams).start(first);
      return reply;
    },
  );
};

/**
 * One live view. Trace steps are written in batches (persistence/trace-store.ts) and nothing pushes
 * them, so the follower reads the trace again every `pollMs` and sends the model when it changed: a
 * read per second per open viewer is nothing next to the traffic that makes the trace grow.
 */
class TraceFollower {
  private readonly raw: ServerResponse;
  private last = '';
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private reading = false;
  private closed = false;

  constructor(
    reply: FastifyReply,
    private readonly id: string,
    private readonly load: (id: string) => Promise<ViewerModel | undefined>,
    private readonly expiresAt: number | null,
    private readonly endsAt: number,
    private readonly pollMs: number,
    private readonly heartbeatMs: number,
    private readonly streams: Set<() => void>,
  ) {
    reply.hijack();
    this.raw = reply.raw;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = String(value);
    this.raw.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    this.raw.on('close', this.end);
    streams.add(this.end);
  }

  start(model: ViewerModel): void {
    this.raw.write('retry: 2000\n\n');
    if (this.expiresAt !== null) this.raw.write(`event: access\ndata: ${JSON.stringify({ expiresAt: this.expiresAt })}\n\n`);
    this.send(model);
    this.timer = setInterval(() => void this.poll(), this.pollMs);
    this.heartbeat = setInterval(() => this.raw.write(': keep-alive\n\n'), this.heartbeatMs);
  }

  private send(model: ViewerModel): void {
    const data = JSON.stringify(model);
    if (data === this.last) return;
    this.last = data;
    this.raw.write(`event: model\ndata: ${data}\n\n`);
  }

  private async poll(): Promise<void> {
    if (this.reading || this.closed) return;
    // A live view ends when the link or the operator token that opened it does, also for a page left open.
    if (Date.now() >= this.endsAt) {
      this.raw.write('event: expired\ndata: {}\n\n');
      this.end();
      return;
    }
    this.reading = true;
    try {
      const model = await this.load(this.id);
      if (model && !this.closed) this.send(model);
    } catch {
      // A shard restarting fails one read; the next poll tries again.
    } finally {
      this.reading = false;
    }
  }

  private readonly end = (): void => {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearInterval(this.heartbeat);
    this.streams.delete(this.end);
    this.raw.end();
  };
}
