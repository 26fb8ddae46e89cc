import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { installAuth } from '../../api/auth.js';
import { httpProblem, originOf, sendProblem } from '../../api/problems.js';
import { ShardUnavailableError } from '../../runtime/kernel/shard-link.js';
import type { ShardCall } from '../shard-calls.js';
import type { ShardSupervisor } from '../shard-supervisor.js';
import { clusterView, localShardReports, type ClusterViewSource } from './cluster-view.js';
import { carriesNodeToken } from './node-credential.js';
import type { AreaReplacement } from '../../api/ports.js';
import { LOCAL_SHARDS_PATH, OPERATING_AREA_PATH, SHARD_CALL_PATH, type LocalShardsAnswer, type ShardCallAnswer } from './wire.js';

/** The longest a forwarded call may ask its owner to wait (the router's longest deadline is well under it). */
const MAX_FORWARDED_DEADLINE_MS = 10 * 60_000;

/**
 * Only what a client's request can become: commands to actors and reads. `seed` and `stop` are the
 * owning node's own business and are never accepted from another node.
 */
const forwardedCall = z.object({
  call: z.object({ op: z.enum(['ask', 'read', 'stats']) }).passthrough(),
  deadlineMs: z.number().int().positive().max(MAX_FORWARDED_DEADLINE_MS),
  shards: z.number().int().positive(),
});

const shardParam = z.object({ shard: z.coerce.number().int().min(0) });

export interface NodeRoutesOptions {
  /** The node credential every internal request must carry (server/cluster/node-credential.ts). */
  readonly token: string;
  readonly nodeId: string;
  readonly shardCount: number;
  /** This node's shards (in cluster mode only those it owns). */
  readonly local: ShardSupervisor;
  /** This node's operating area: another node passes on an operator's replacement (server/cluster/area-peers.ts). */
  readonly operatingArea: { replaceHere(document: unknown): Promise<AreaReplacement> };
}

/**
 * The routes nodes call on each other: a shard call for a shard this node owns, answered as its
 * worker answered it, and this node's shard report for GET /cluster. Hidden from the OpenAPI document;
 * a request without the node credential is refused with 401 before its body is read.
 */
export async function nodeRoutes(app: FastifyInstance, options: NodeRoutesOptions): Promise<void> {
  const { token, nodeId, shardCount, local, operatingArea } = options;
  app.addHook('onRequest', async (request, reply) => {
    if (carriesNodeToken(request.headers.authorization, token)) return undefined;
    reply.header('www-authenticate', 'Node realm="fleetactors-cluster"');
    return sendProblem(reply, httpProblem('unauthorized', 'This route is for the nodes of the cluster: send their node credential.', originOf(request)));
  });

  app.post(SHARD_CALL_PATH, { schema: { hide: true } }, async (request: FastifyRequest, reply: FastifyReply) => {
    const params = shardParam.safeParse(request.params);
    const body = forwardedCall.safeParse(request.body);
    if (!params.success || !body.success) {
      return sendProblem(reply, httpProblem('validation', 'Not a shard call envelope.', originOf(request)));
    }
    const { shard } = params.data;
    const { call, deadlineMs, shards } = body.data;
    let answer: ShardCallAnswer;
    if (shards !== shardCount) {
      // FLEET_SHARDS is fixed with the cluster: a node with another count places entities elsewhere.
      answer = { ok: false, failure: 'error', reason: `FLEET_SHARDS differs between nodes: the caller has ${shards}, node ${nodeId} has ${shardCount}` };
    } else if (!local.has(shard)) {
      // A stale owner map on the caller (or a shard that moved): it refreshes and retries, the client gets 503 now.
      answer = { ok: false, failure: 'not-owner', reason: `node ${nodeId} does not own it` };
    } else {
      try {
        answer = { ok: true, value: await local.link(shard).call(call as unknown as ShardCall, deadlineMs) };
      } catch (error) {
        answer = error instanceof ShardUnavailableError ? { ok: false, failure: 'unavailable', reason: error.reason } : { ok: false, failure: 'error', reason: error instanceof Error ? error.message : String(error) };
      }
    }
    return reply.code(200).type('application/json').send(JSON.stringify(answer));
  });

  // Already checked by the node that took the PUT; checked again here, as any document is before it is saved.
  app.put(OPERATING_AREA_PATH, { schema: { hide: true } }, async (request: FastifyRequest, reply: FastifyReply) => {
    const replaced = await operatingArea.replaceHere(request.body);
    if (replaced.ok) return reply.code(200).send({ zones: replaced.zones });
    const detail = replaced.reason === 'not-configured' ? `node ${nodeId} has no FLEET_OPERATING_AREA` : replaced.errors.join('; ');
    return sendProblem(reply, httpProblem(replaced.reason === 'not-configured' ? 'operating-area-not-configured' : 'invalid-operating-area', detail, originOf(request)));
  });

  app.get(LOCAL_SHARDS_PATH, { schema: { hide: true } }, async () => {
    const answer: LocalShardsAnswer = { node: nodeId, shards: localShardReports(local.links) };
    return answer;
  });
}

const ClusterDocumentSchema = z.object({
  node: z.object({ id: z.string(), url: z.string() }),
  nodes: z.array(z.object({ id: z.string(), url: z.string() })),
  shards: z.array(
    z.object({
      shard: z.number().int(),
      owner: z.string().nullable(),
      epoch: z.number().int(),
      state: z.enum(['restoring', 'serving', 'fenced', 'unowned']),
      offset: z.number().nullable(),
    }),
  ),
});

/** GET /cluster (operator): the node, every node, every shard's owner and state (docs/cluster.md). */
export async function clusterRoute(app: FastifyInstance, options: { readonly jwtSecret: string; readonly view: () => ClusterViewSource }): Promise<void> {
  installAuth(app, options.jwtSecret);
  app.withTypeProvider<ZodTypeProvider>().get(
    '/cluster',
    {
      config: { roles: ['operator'] },
      schema: {
        tags: ['ops'],
        summary: 'The cluster as this node sees it: its nodes, and each shard\'s owner, epoch, state and journal offset',
        response: { 200: ClusterDocumentSchema },
      },
    },
    async () => {
      const view = await clusterView(options.view());
      return { ...view, nodes: [...view.nodes], shards: [...view.shards] };
    },
  );
}
