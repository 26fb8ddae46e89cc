import fastifyRateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { createRequire } from 'node:module';
import { httpProblem, originOf, sendProblem } from './problems.js';

/**
 * Request rate limits (docs/contract.md, "Limits"): one per client address, checked before anything
 * else, and one per signed-in customer, checked right after the token. A refused request is a 429
 * `rate-limited` problem with `Retry-After` (seconds until the window ends). Counting is
 * @fastify/rate-limit's (a fixed one-second window per key, in this process's memory: HTTP enters
 * only through the main thread, so one counter per key is the whole truth).
 *
 * Defaults (server/config.ts): 20 requests/s per customer, a few times what the app needs for a
 * booking, an unlock and a poll of the booking each second, so only a runaway client meets it;
 * 200/s per address, ten customers at that pace behind one carrier-grade NAT or office gateway, and
 * still a small share of what one address could otherwise take (bench: ~8 000 req/s on 2 cores).
 * Behind a reverse proxy every request comes from the proxy's address: set RATE_LIMIT_PER_IP=0 and
 * limit there.
 */

export interface RateLimits {
  /** Requests per second per customer (JWT `sub`); 0: no limit. */
  readonly perCustomer: number;
  /** Requests per second per client address; 0: no limit. */
  readonly perIp: number;
}

/** Served to load balancers and Prometheus: never limited. */
const UNLIMITED_PATHS = new Set(['/health', '/metrics']);
/**
 * Cluster nodes forwarding to each other (server/cluster/node-routes.ts): the request was counted where
 * it entered the cluster, and a node's address carries every client's forwarded calls. Those routes
 * refuse anything without the node credential themselves.
 */
const isNodeToNode = (path: string): boolean => path.startsWith('/internal/');
const WINDOW_MS = 1000;
/** Keys remembered per limiter (LRU): an evicted key starts a fresh window, so this only needs to exceed the active clients. */
const KEYS_KEPT = 100_000;

type Counted = { current: number; ttl: number };
interface LocalStoreInstance {
  incr(key: string, callback: (error: Error | null, result?: Counted) => void, timeWindow: number, max: number): void;
}
// The plugin's own in-memory store (not in its typed exports).
const LocalStore = createRequire(import.meta.url)('@fastify/rate-limit/store/LocalStore') as new (continueExceeding: boolean, exponentialBackoff: boolean, cache: number) => LocalStoreInstance;

/**
 * The plugin's LocalStore answers with its live counter object, which the next request of the same key
 * increments before the first one's `await` resumes: in a burst that arrives in one turn of the event
 * loop every request then reads the burst's final count and all of them are refused, the first ones
 * too (measured: 6 concurrent requests at max 3 → six 429s). A copy taken at count time keeps each
 * request's own position in the window.
 */
class SnapshotStore implements FastifyRateLimitStore {
  private readonly counters = new LocalStore(false, false, KEYS_KEPT);

  incr(key: string, callback: (error: Error | null, result?: Counted) => void, timeWindow: number, max: number): void {
    this.counters.incr(key, (error, result) => callback(error, result && { current: result.current, ttl: result.ttl }), timeWindow, max);
  }

  child(): FastifyRateLimitStore {
    return new SnapshotStore();
  }
}

type LimitHook = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;

declare module 'fastify' {
  interface FastifyInstance {
    /** The per-customer limit as an onRequest hook; the authenticated scope adds it after its auth hook. */
    limitPerCustomer: LimitHook;
  }
}

type Checker = ReturnType<FastifyInstance['createRateLimit']>;

function limitHook(check: Checker | null, who: string): LimitHook {
  return async (request, reply) => {
    if (!check) return undefined;
    const result = await check(request);
    if (result.isAllowed || !result.isExceeded) return undefined;
    const retryAfter = Math.max(1, result.ttlInSeconds);
    request.log.info({ limit: who, max: result.max }, 'request refused: rate limit');
    reply.header('retry-after', String(retryAfter));
    return sendProblem(
      reply,
      httpProblem('rate-limited', `More than ${result.max} requests per second ${who}; retry after ${retryAfter} s.`, originOf(request), { limit: result.max, retryAfter }),
    );
  };
}

/**
 * Registers the counters, the per-address hook on every route but /health and /metrics, and decorates
 * `limitPerCustomer` for the authenticated scope. fastify-plugin: the hook and the decoration belong to
 * the app itself, not to an encapsulated child.
 */
export const rateLimits = fp<{ limits: RateLimits }>(
  async (app, { limits }) => {
    await app.register(fastifyRateLimit, { global: false, timeWindow: WINDOW_MS, store: SnapshotStore });
    // Each limiter gets its own store (`child`). The address is the plugin's default key: an IPv6 client
    // counts by its /64, which is what one subscriber is given, not by each of its addresses.
    const perIp = limits.perIp > 0 ? app.createRateLimit({ max: limits.perIp, timeWindow: WINDOW_MS }) : null;
    const perCustomer = limits.perCustomer > 0 ? app.createRateLimit({ max: limits.perCustomer, timeWindow: WINDOW_MS, keyGenerator: (request) => request.caller.id }) : null;
    const ipHook = limitHook(perIp, 'from this address');
    app.addHook('onRequest', async (request, reply) => {
      const path = request.url.split('?', 1)[0]!;
      return UNLIMITED_PATHS.has(path) || isNodeToNode(path) ? undefined : ipHook(request, reply);
    });
    const customerHook = limitHook(perCustomer, 'for this customer');
    // Operators are staff tools (bulk registrations): the per-address limit still bounds them.
    app.decorate('limitPerCustomer', async (request: FastifyRequest, reply: FastifyReply) => (request.caller.role === 'customer' ? customerHook(request, reply) : undefined));
  },
  { name: 'fleet-rate-limits', fastify: '5.x' },
);
