import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ClusterConfig, ClusterNode, FleetConfig } from '../config.js';
import type { ShardLinks } from '../fleet-service.js';
import type { ShardSupervisor } from '../shard-supervisor.js';
import { ClusterShardLinks } from './cluster-links.js';
import type { ClusterViewSource } from './cluster-view.js';
import { nodeToken } from './node-credential.js';
import { clusterRoute, nodeRoutes } from './node-routes.js';
import { fixedOwnerMap, type OwnerMap } from './owner-map.js';
import { RoutingTable } from './routing-table.js';
import { createKafkaClient } from '../../adapters/kafka/client.js';
import { followOwnerRecords } from '../../adapters/kafka/shard-owners.js';
import { placeShardsByGroup } from './shard-placement.js';
import type { ShardInit } from '../shard.js';
import { agreeOnShardCount } from './shard-count.js';
import { NodeDirectory } from './node-directory.js';
import { clusterAreaPeers } from './area-peers.js';
import { closeNodeClients } from './node-client.js';
import { closeNodeChannels } from './node-channel.js';
import { processStart, watchPeers } from './peer-watch.js';
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
  /** The shards this process starts with: every shard in single-process mode, none in a cluster (the group places them). */
  startsWith(shard: number): boolean;
  /** The router's view of every shard: the supervisor itself, or own shards plus links to their owners. */
  links(local: ShardSupervisor): ShardLinks;
  /**
   * Cluster mode: joins the shard group and runs the shards it assigns (server/cluster/shard-placement.ts);
   * resolves once the first assignment is applied, with what leaves the group. Single process: nothing to do.
   */
  place(local: ShardSupervisor, inits: readonly ShardInit[], logger: Logger): Promise<() => Promise<void>>;
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

/** How long a node waits for its first assignment before it serves anyway (its shards then come when the group settles). */
const FIRST_ASSIGNMENT_TIMEOUT_MS = 60_000;

function clusteredNode(config: FleetConfig, cluster: ClusterConfig, shardCount: number): FleetNode {
  const token = nodeToken(config.auth.jwtSecret, cluster.name);
  // This process start: in its group claim and in each channel it accepts, so peers can tell it from a later start of this node.
  const start = processStart(cluster.node.id, randomUUID());
  let supervisor: ShardSupervisor | null = null;
  const localLinks = () => supervisor?.links ?? [];
  // Which node runs each shard: the owner records in Kafka (server/cluster/routing-table.ts).
  const owners = new RoutingTable(shardCount);
  // Which nodes there are: the shard group's live members (server/cluster/node-directory.ts).
  const directory = new NodeDirectory(cluster.node);
  const kafka = (): { brokers: readonly string[]; clientId: string } => {
    if (config.kafka.mode !== 'kafka') throw new Error('cluster mode without KAFKA_BROKERS: server/config.ts refuses it');
    return config.kafka;
  };
  return {
    clustered: true,
    self: cluster.node,
    owners,
    startsWith: () => false,
    links: (local) => {
      supervisor = local;
      const links = new ClusterShardLinks(local, { self: cluster.node, owners, token, refresh: (maxAgeMs) => owners.refresh(maxAgeMs) });
      owners.onChange(() => links.rebind());
      return links;
    },
    place: async (local, inits, logger) => {
      supervisor = local;
      const { brokers, clientId } = kafka();
      const records = await followOwnerRecords({
        kafka: createKafkaClient({ brokers, clientId: `${clientId}-${cluster.node.id}-owners`, logger }),
        clusterName: cluster.name,
        node: cluster.node.id,
        onRecord: (record) => owners.apply(record),
        logger,
      });
      const placement = await placeShardsByGroup({ cluster, brokers, clientId, supervisor: local, inits, start, onMembers: (nodes) => directory.update(nodes), known: () => directory.known(), logger });
      const peers = cluster.peerEviction ? watchPeers({ token, peers: () => directory.peers(), evict: (dead) => placement.evictStart(dead), logger }) : null;
      const waited = await Promise.race([placement.ready.then(() => true), delay(FIRST_ASSIGNMENT_TIMEOUT_MS).then(() => false)]);
      if (!waited) logger.warn({ timeoutMs: FIRST_ASSIGNMENT_TIMEOUT_MS }, 'no shard assignment yet; serving, the shards come when the group settles');
      return async () => {
        peers?.close();
        await placement.leave();
        await records.close();
        closeNodeChannels();
        await closeNodeClients();
      };
    },
    kafkaTopicPrefix: `${cluster.name}.`,
    mqttClientIdPrefix: `fleetactors-${cluster.name}`,
    controlClientId: (prefix) => `${prefix}-${cluster.node.id}-main`,
    areaPeers: (logger) => clusterAreaPeers(() => directory.peers(), token, logger),
    installRoutes: (app, local, _url, area) => {
      const view = (): ClusterViewSource => ({ self: cluster.node, nodes: directory.nodes(), shardCount, localLinks: () => local.links, token, records: (shard) => owners.record(shard) });
      app.register(nodeRoutes, { token, nodeId: cluster.node.id, start, shardCount, local, operatingArea: area });
      app.register(clusterRoute, { jwtSecret: config.auth.jwtSecret, view });
    },
    prepare: async (logger) => {
      if (config.kafka.mode !== 'kafka') throw new Error('cluster mode without KAFKA_BROKERS: server/config.ts refuses it');
      const { brokers, clientId, replicationFactor, minInsyncReplicas, partitions } = config.kafka;
      await agreeOnShardCount({ cluster, brokers, clientId, replicationFactor, minInsyncReplicas, eventPartitions: partitions, shardCount, logger });
    },
    describe: () => `node ${cluster.node.id} of cluster ${cluster.name} serves shards ${localLinks().map((link) => link.shard).join(', ') || 'none'} of ${shardCount}`,
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
    startsWith: () => true,
    links: (local) => local,
    place: async () => async () => {},
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
        return { self, nodes: [self], shardCount, localLinks: () => local.links, token: null };
      };
      app.register(clusterRoute, { jwtSecret: config.auth.jwtSecret, view });
    },
    describe: () => `single process: serves all ${shardCount} shards`,
    prepare: async () => {},
  };
}

const delay = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });
