import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { installAuth } from '../../api/auth.js';
import { httpProblem, originOf, sendProblem } from '../../api/problems.js';
import type { ShardSupervisor } from '../shard-supervisor.js';
import { clusterView, localShardReports, type ClusterViewSource } from './cluster-view.js';
import { carriesNodeToken } from './node-credential.js';
import type { AreaReplacement } from '../../api/ports.js';
import { LOCAL_SHARDS_PATH, OPERATING_AREA_PATH, SHARD_CALL_PATH, type LocalShardsAnswer } from './wire.js';
import { acceptNodeChannels } from './node-channel-server.js';
import { answerShardCall, NOT_AN_ENVELOPE, type ShardCallHost } from './shard-call-answer.js';

const shardParam = z.object({ shard: z.coerce.number().int().min(0) });

export interface NodeRoutesOptions {
  /** The node credential every internal request must carry (server/cluster/node-credential.ts). */
  readonly token: string;
  readonly nodeId: string;
  /** This process start's id, sent with each channel it accepts (wire.ts, NODE_START_HEADER). */
  readonly start: string;
  readonly shardCount: number;
  /** This node's shards (in cluster mode only those it owns). */
  readonly local: ShardSupervisor;
  /** This node's operating area: another node passes on an operator's replacement (server/cluster/area-peers.ts). */
  readonly operatingArea: { replaceHere(document: unknown): Promise<AreaReplacement> };
}

/**
 * The routes nodes call on each other: a shard call for a shard this node owns, answered as its
 * worker answered it (over HTTP, or a channel upgraded from it), and this node's shard report for GET /cluster. Hidden from the OpenAPI document;
 * a request without the node credential is refused with 401 before its body is read.
 */
export async function nodeRoutes(app: FastifyInstance, options: NodeRoutesOptions): Promise<void> {
  const { token, nodeId, local, operatingArea } = options;
  const host: ShardCallHost = options;
  app.addHook('onRequest', async (request, reply) => {
    if (carriesNodeToken(request.headers.authorization, token)) return undefined;
    reply.header('www-authenticate', 'Node realm="fleetactors-cluster"');
    return sendProblem(reply, httpProblem('unauthorized', 'This route is for the nodes of the cluster: send their node credential.', originOf(request)));
  });

  // The same calls over one socket per calling node (what the nodes use; the route below stays for a node of an older version).
  const channels = acceptNodeChannels(app.server, token, host, options.start);
  app.addHook('preClose', async () => {
    await channels.close();
  });

  app.post(SHARD_CALL_PATH, { schema: { hide: true } }, async (request: FastifyRequest, reply: FastifyReply) => {
    const params = shardParam.safeParse(request.params);
    const answer = params.success ? await answerShardCall(host, params.data.shard, request.body) : null;
    if (answer === null) return sendProblem(reply, httpProblem('validation', NOT_AN_ENVELOPE, originOf(request)));
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
