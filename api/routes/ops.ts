import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Metrics } from '../../runtime/ground/metrics.js';
import type { HealthReport } from '../ports.js';
import { httpProblem, originOf, sendProblem } from '../problems.js';

export interface OpsRoutesOptions {
  readonly health: () => HealthReport | Promise<HealthReport>;
  readonly metrics: Metrics;
  /**
   * Whether the caller may see the details (/health's checks, /metrics): api/auth.ts
   * `operationalAccess` on the API's port; always true on the separate metrics listener (METRICS_PORT),
   * which is bound where only Prometheus reaches.
   */
  readonly access: (request: FastifyRequest) => boolean;
  /** Served besides /health and /metrics (the API's port: yes; the metrics listener: no). */
  readonly openApi?: boolean;
}

const HealthSchema = z.object({
  status: z.enum(['ok', 'down']),
  checks: z.record(z.string(), z.object({ ok: z.boolean(), detail: z.string().optional() })).optional().describe('only for an operator token or METRICS_TOKEN'),
});

/** A scrape renders every shard's figures; one render a second serves any number of scrapes. */
const RENDER_REUSE_MS = 1000;

/**
 * Operational endpoints. /health answers everyone `{status}` (a load balancer needs no more) and adds
 * the checks (journal positions, broker URL, Kafka lag) only for an operator token or the metrics
 * token; /metrics needs one of those (docs/contract.md, "Operational endpoints").
 */
export const opsRoutes: FastifyPluginAsyncZod<OpsRoutesOptions> = async (app, { health, metrics, access, openApi = true }) => {
  let rendered: { readonly at: number; readonly text: Promise<string> } | null = null;
  const render = (): Promise<string> => {
    const now = Date.now();
    if (rendered === null || now - rendered.at >= RENDER_REUSE_MS) {
      const text = metrics.render();
      rendered = { at: now, text };
      // A failed render is not reused.
      text.catch(() => {
        rendered = null;
      });
    }
    return rendered.text;
  };

  app.get(
    '/health',
    {
      schema: {
        tags: ['ops'],
        summary: 'Ready to serve: 200 when every dependency works, else 503; the checks only for an operator token or METRICS_TOKEN',
        security: [],
        response: { 200: HealthSchema, 503: HealthSchema },
      },
    },
    async (request, reply) => {
      const report = await health();
      const down = Object.values(report.checks).some((check) => !check.ok);
      const status = down ? 'down' : 'ok';
      return reply.code(down ? 503 : 200).send(access(request) ? { status, checks: report.checks } : { status });
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['ops'],
        summary: 'Prometheus metrics (text exposition format); Authorization: Bearer <METRICS_TOKEN or an operator token>',
      },
    },
    async (request, reply) => {
      if (!access(request)) return refuse(request, reply);
      return reply.type(metrics.contentType).header('cache-control', 'no-store').send(await render());
    },
  );

  if (openApi) app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
};

function refuse(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  reply.header('www-authenticate', 'Bearer realm="fleetactors"');
  return sendProblem(reply, httpProblem('unauthorized', 'Send Authorization: Bearer <METRICS_TOKEN> (or an operator token).', originOf(request)));
}
