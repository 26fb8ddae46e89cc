import type { Logger } from '../../runtime/ground/logger.js';
import type { ClusterNode } from '../config.js';
import { onPeerLost, watchNode, type ChannelOpening } from './node-channel.js';
import { nodeAuthorization } from './node-credential.js';

/**
 * A dead node's member, dropped at once (docs/cluster.md, "Failover"). Without this a `kill -9`'d
 * node's shards wait out the group's session (6 s by default) before anyone takes them. But a process
 * that dies on a live host closes its sockets at once: every peer holding a channel to it hears the
 * end, without the goodbye a stopping node sends. The peer then opens a new channel to the same
 * address; if nothing listens there any more (connection refused), or another start of the same
 * node answers, the process it lost is dead, and it asks the group coordinator to drop that start's member
 * (ShardGroup.evictStart). The group rebalances as after a clean leave.
 *
 * What this never does: evict on a timeout or silence (a paused or slow node, a cut network, a dead
 * host: the session decides those, as before), evict a member without the process start it was open
 * to (an older node), or evict this node. Membership is not the fence, so even a wrong eviction costs
 * a rebalance and a restart of that node's shards, never a double owner.
 *
 * Every live peer (the node directory) is kept watched by an idle channel, the one the node's shard
 * calls use, so a loss is heard whether or not calls go there.
 */

/**
 * The rule: the process start known dead, given the start a lost channel was open to and how a new
 * channel to the same address went. Null: it may be alive (a blip, a slow peer), or nothing is known.
 */
export function deadStart(lost: string, probe: ChannelOpening): string | null {
  if (!probe.opened) return probe.refused ? lost : null;
  // Only another start of the same node proves this one gone: an address that reached some other
  // node (a proxy, a misconfigured URL) says nothing about it.
  return probe.start !== null && probe.start !== lost && nodeOfStart(probe.start) === nodeOfStart(lost) ? lost : null;
}

/** A process start names its node: `<FLEET_NODE_ID>/<random id>` (node ids have no '/'). */
export const processStart = (nodeId: string, random: string): string => `${nodeId}/${random}`;
const nodeOfStart = (start: string): string => start.slice(0, start.lastIndexOf('/'));

export interface PeerWatchOptions {
  readonly token: string;
  /** The other live nodes now. */
  readonly peers: () => readonly ClusterNode[];
  /** Asks the group to drop that start's members; how many it dropped. */
  readonly evict: (start: string) => Promise<number>;
  readonly logger: Logger;
}

/** A probe that failed quickly without a refusal is tried again every 100 ms for up to 1 s. */
const PROBE_RETRY_MS = 100;
const PROBE_RETRY_WINDOW_MS = 1000;
/** How often a peer without an open channel is tried again (one that is starting, or gone until the group says so). */
const REWATCH_MS = 1000;

export interface PeerWatch {
  close(): void;
}

export function watchPeers(options: PeerWatchOptions): PeerWatch {
  const log = options.logger.child({ component: 'peer-watch' });
  const authorization = nodeAuthorization(options.token);
  let closed = false;
  const watchAll = (): void => {
    for (const peer of options.peers()) {
      try {
        void watchNode(peer.url, authorization);
      } catch (error) {
        // A URL another member advertised that cannot even be requested: its calls fail the same way.
        log.debug({ err: error, url: peer.url }, 'cannot watch a peer');
      }
    }
  };
  /**
   * A new channel to the peer's address. A process being torn down can still take a connection into
   * its listen queue and then reset it: a quick failure that is not a refusal is tried again a few
   * times before it counts as "nothing known".
   */
  const probeAgain = async (url: string): Promise<ChannelOpening> => {
    const until = Date.now() + PROBE_RETRY_WINDOW_MS;
    for (;;) {
      const probe = await watchNode(url, authorization);
      if (probe.opened || probe.refused || Date.now() >= until || closed) return probe;
      await new Promise((resolve) => setTimeout(resolve, PROBE_RETRY_MS).unref());
    }
  };
  const stopListening = onPeerLost((url, lost) => {
    if (closed) return;
    void (async () => {
      const probe = await probeAgain(url);
      const dead = deadStart(lost, probe);
      if (dead === null || closed) {
        log.info({ url, start: lost, probe }, 'lost the channel to a peer; it may be alive, so its session decides');
        return;
      }
      const started = Date.now();
      const evicted = await options.evict(dead);
      // evicted 0: another peer was first, or the group let the member go already.
      log.warn({ url, start: dead, probe, evicted, ms: Date.now() - started }, 'a peer\'s process is gone: asked the group to drop its member now, not after its session');
    })().catch((error: unknown) => log.warn({ err: error, url, start: lost }, 'could not ask the group to drop a dead peer\'s member; its session will'));
  });
  const timer = setInterval(watchAll, REWATCH_MS);
  timer.unref();
  watchAll();
  return {
    close: () => {
      closed = true;
      clearInterval(timer);
      stopListening();
    },
  };
}
