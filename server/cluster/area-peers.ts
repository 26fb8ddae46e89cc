import type { OperatingArea } from '../../actors/contract/operating-area.js';
import type { Logger } from '../../runtime/ground/logger.js';
import type { ClusterNode } from '../config.js';
import type { AreaPeers } from '../operating-area.js';
import { nodeAuthorization } from './node-credential.js';
import { OPERATING_AREA_PATH } from './wire.js';

/** A node gets this long to save the area and tell its shards (each shard gets 5 s: server/operating-area.ts). */
const PEER_DEADLINE_MS = 15_000;

/**
 * An operator's new operating area, from the node that took the PUT to every other node (docs/cluster.md):
 * each saves it to its own FLEET_OPERATING_AREA file, publishes it and tells the shards it runs, as if
 * the PUT had come to it (`OperatingAreaService.replaceHere`). All at once; a node that does not take it
 * (down, or without FLEET_OPERATING_AREA) is named in the answer. The other nodes are the shard group's
 * live members (server/cluster/node-directory.ts): a node out of the group (stopped, or dropped past its
 * session) is not asked, and keeps its own file's area when it comes back.
 */
export function clusterAreaPeers(peers: () => readonly ClusterNode[], token: string, logger: Logger): AreaPeers {
  return {
    tell: async (area: OperatingArea) => {
      const answers = await Promise.all(
        peers().map(async (peer) => {
          try {
            const response = await fetch(`${peer.url}${OPERATING_AREA_PATH}`, {
              method: 'PUT',
              headers: { 'content-type': 'application/json', authorization: nodeAuthorization(token) },
              body: JSON.stringify(area),
              signal: AbortSignal.timeout(PEER_DEADLINE_MS),
            });
            if (response.ok) return null;
            logger.warn({ node: peer.id, status: response.status, answer: await response.text().catch(() => '') }, 'node did not take the new operating area');
          } catch (error) {
            logger.warn({ node: peer.id, err: error }, 'node did not take the new operating area: not reachable');
          }
          return peer.id;
        }),
      );
      return answers.filter((id): id is string => id !== null);
    },
  };
}
