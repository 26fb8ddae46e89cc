import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { GbfsFeed, GbfsPort } from '../ports.js';
import { httpProblem, originOf, sendProblem } from '../problems.js';

export interface GbfsRoutesOptions {
  readonly gbfs: GbfsPort;
}

const FeedParamsSchema = z.object({ feed: z.string().regex(/^[a-z_]{1,40}\.json$/, 'expected a feed file name such as vehicle_status.json') });

/**
 * GBFS 3.0 (docs/gbfs.md): public, no token, as journey planners expect. Every answer carries
 * `Cache-Control: max-age=<ttl>`, an `ETag` and `Last-Modified`; a conditional request for an unchanged
 * feed is answered 304 with no body, before anything is serialized.
 */
export const gbfsRoutes: FastifyPluginAsyncZod<GbfsRoutesOptions> = async (app, { gbfs }) => {
  app.get(
    '/:feed',
    {
      schema: {
        tags: ['gbfs'],
        summary: 'A GBFS 3.0 feed: gbfs.json (auto-discovery), system_information, vehicle_types, vehicle_status, system_pricing_plans, geofencing_zones',
        description:
          'Public. `vehicle_status.json` lists every vehicle not on a trip, with a `vehicle_id` that is random and changes after every trip. Conditional requests (`If-None-Match`, `If-Modified-Since`) on an unchanged feed answer 304. See docs/gbfs.md.',
        security: [],
        params: FeedParamsSchema,
      },
    },
    async (request, reply) => {
      const name = request.params.feed.slice(0, -'.json'.length);
      const feed = await gbfs.feed(name);
      if (!feed) return sendProblem(reply, httpProblem('not-found', `No GBFS feed named ${request.params.feed}; /gbfs/gbfs.json lists them.`, originOf(request)));
      reply
        .header('etag', feed.etag)
        .header('last-modified', new Date(feed.lastModified).toUTCString())
        .header('cache-control', `public, max-age=${feed.ttlSeconds}`)
        .header('vary', 'Accept-Encoding')
        .header('access-control-allow-origin', '*');
      if (notModified(request.headers['if-none-match'], request.headers['if-modified-since'], feed)) return reply.code(304).send();
      reply.type('application/json; charset=utf-8');
      if (feed.gzipped && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) return reply.header('content-encoding', 'gzip').send(feed.gzipped);
      return reply.send(feed.body);
    },
  );
};

/** RFC 9110 §13.2.2: If-None-Match wins when present; If-Modified-Since is compared in whole seconds. */
export function notModified(ifNoneMatch: string | undefined, ifModifiedSince: string | undefined, feed: GbfsFeed): boolean {
  if (ifNoneMatch !== undefined) {
    return ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === feed.etag);
  }
  if (ifModifiedSince === undefined) return false;
  const since = Date.parse(ifModifiedSince);
  return Number.isFinite(since) && Math.floor(feed.lastModified / 1000) <= Math.floor(since / 1000);
}
