import type { FastifyInstance } from 'fastify';
import type { ClusterConfig, ClusterNode, FleetConfig } from '../config.js';
import type { ShardLinks } from '../fleet-service.js';
import type { ShardSupervisor } from '../shard-supervisor.js';
import { ClusterShardLinks } from './cluster-links.js';
import type { ClusterViewSource } from './cluster-view.js';
import { nodeToken } from './node-credential.js';
import { clusterRoute, nodeRoutes } from './node-routes.js';
import { fixedOwnerMap, type OwnerMap } from './owner-map.js';
import { agreeOnShardCount } from './shard-count.js';
import { clusterAreaPeers } from './area-peers.js';
import type { AreaPeers, OperatingAreaService } from '../operating-area.js';
import type { Logger } from '../../runtime/ground/logger.js';

/**
 * What fleet-app needs to know about the cluster, in one place: which shards this process runs, how
 * the router reaches the others, its names on Kafka and MQTT, and its routes. In single-process mode
 * (`config.cluster` null) it runs every shard and GET /cluster describes a one-node cluster.
 */
export interface FleetNode {
  readonly clustered: boolean;
  readonly self: ClusterNode;
  readonly owners: OwnerMap;
  /** Whether this process runs the shard's worker. */
  owns(shard: number): boolean;
  /** The router's view of every shard: the supervisor itself, or own shards plus links to their owners. */
  links(local: ShardSupervisor): ShardLinks;
  /** Kafka topic prefix: a cluster's topics carry its name. */
  readonly kafkaTopicPrefix: string | null;
  /** MQTT: shard sessions named after the cluster (the same on whichever node owns the shard); null: as before. */
  readonly mqttClientIdPrefix: string | null;
  /** The main thread's own MQTT session (one per node). */
  controlClientId(prefix: string): string;
  /** GET /cluster, and in cluster mode the internal routes between nodes. */
  installRoutes(app: FastifyInstance, local: ShardSupervisor, url: () => string | null, area: Pick<OperatingAreaService, 'replaceHere'>): void;
  /** The other nodes, told of an operator's new operating area; null in single-process mode. */
  areaPeers(logger: Logger): AreaPeers | null;
  /** /health: the shards this node serves. */
  describe(): string;
  /** Before any shard starts: a cluster node checks FLEET_SHARDS against the cluster's (throws ConfigError). */
  prepare(logger: Logger): Promise<void>;
}

/** In single-process mode, the one node's id in GET /cluster. */
export const SINGLE_NODE_ID = 'single';

export function fleetNode(config: FleetConfig, shardCount: number): FleetNode {
  return config.cluster ? clusteredNode(config, config.cluster, shardCount) : singleNode(config, shardCount);
}

function clusteredNode(config: FleetConfig, cluster: ClusterConfig, shardCount: number): FleetNode {
  const owners = fixedOwnerMap(cluster.nodes, shardCount);
  const own = new Set(owners.shardsOf(cluster.node.id));
  const token = nodeToken(config.auth.jwtSecret, cluster.name);
  return {
    clustered: true,
    self: cluster.node,
    owners,
    owns: (shard) => own.has(shard),
    links: (local) => new ClusterShardLinks(local, owners, token),
    kafkaTopicPrefix: `${cluster.name}.`,
    mqttClientIdPrefix: `fleetactors-${cluster.name}`,
    controlClientId: (prefix) => `${prefix}-${cluster.node.id}-main`,
    areaPeers: (logger) => clusterAreaPeers(cluster.nodes.filter((peer) => peer.id !== cluster.node.id), token, logger),
    installRoutes: (app, local, _url, area) => {
      const view = (): ClusterViewSource => ({ self: cluster.node, owners, localLinks: () => local.links, token });
      app.register(nodeRoutes, { token, nodeId: cluster.node.id, shardCount, local, operatingArea: area });
      app.register(clusterRoute, { jwtSecret: config.auth.jwtSecret, view });
    },
    prepare: async (logger) => {
      if (config.kafka.mode !== 'kafka') throw new Error('cluster mode without KAFKA_BROKERS: server/config.ts refuses it');
      const { brokers, clientId, replicationFactor, minInsyncReplicas } = config.kafka;
      await agreeOnShardCount({ cluster, brokers, clientId, replicationFactor, minInsyncReplicas, shardCount, logger });
    },
    describe: () => `node ${cluster.node.id} of cluster ${cluster.name} serves shards ${[...own].join(', ') || 'none'} of ${shardCount}`,
  };
}

function singleNode(config: FleetConfig, shardCount: number): FleetNode {
  let self: ClusterNode = { id: SINGLE_NODE_ID, url: '' };
  let owners = fixedOwnerMap([self], shardCount);
  return {
    clustered: false,
    get self() {
      return self;
    },
    get owners() {
      return owners;
    },
    owns: () => true,
    links: (local) => local,
    kafkaTopicPrefix: null,
    mqttClientIdPrefix: null,
    controlClientId: (prefix) => `${prefix}-main`,
    areaPeers: () => null,
    installRoutes: (app, local, url) => {
      const view = (): ClusterViewSource => {
        // The URL is known once listening; a one-node cluster that owns every shard.
        if (self.url !== (url() ?? '')) {
          self = { id: SINGLE_NODE_ID, url: url() ?? '' };
          owners = fixedOwnerMap([self], shardCount);
        }
        return { self, owners, localLinks: () => local.links, token: null };
      };
      app.register(clusterRoute, { jwtSecret: config.auth.jwtSecret, view });
    },
    describe: () => `single process: serves all ${shardCount} shards`,
    prepare: async () => {},
  };
}
