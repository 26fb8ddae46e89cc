import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../../server/config.js';
import { UnownedShardLink } from '../../server/cluster/cluster-links.js';
import { carriesNodeToken, nodeAuthorization, nodeToken } from '../../server/cluster/node-credential.js';
import { fixedOwnerMap } from '../../server/cluster/owner-map.js';
import { RemoteShardLink, StaleOwnerError } from '../../server/cluster/remote-shard-link.js';
import { NODE_CHANNEL_PATH, shardCallPath } from '../../server/cluster/wire.js';
import { RemoteEventFollower } from '../../server/cluster/remote-events.js';
import type { ShardCall, ShardEvent } from '../../server/shard-calls.js';
import { ShardUnavailableError } from '../../runtime/kernel/shard-link.js';

const SECRET = 'a-secret-of-the-cluster-at-least-16';
const clusterEnv = {
  FLEET_CLUSTER: 'kafka',
  KAFKA_BROKERS: '127.0.0.1:19092',
  MQTT_URL: 'mqtt://127.0.0.1:18830',
  FLEET_NODE_ID: 'n2',
  FLEET_ADVERTISED_URL: 'http://127.0.0.1:4001/',
  FLEET_SHARDS: '6',
  FLEET_JWT_SECRET: SECRET,
};
const without = (variable: keyof typeof clusterEnv) => Object.fromEntries(Object.entries(clusterEnv).filter(([name]) => name !== variable));

describe('cluster configuration (FLEET_CLUSTER=kafka)', () => {
  it('is off unless FLEET_CLUSTER is set: the single process as before', () => {
    expect(loadConfig({}).cluster).toBeNull();
    expect(loadConfig({ FLEET_NODE_ID: 'n1' }).cluster).toBeNull();
  });

  it('reads the node and the cluster name, and needs no list of the other nodes (the shard group lists them)', () => {
    const config = loadConfig({ ...clusterEnv, FLEET_CLUSTER_NAME: 'blue' });
    expect(config.cluster).toEqual({ name: 'blue', node: { id: 'n2', url: 'http://127.0.0.1:4001' }, sessionTimeoutMs: 6000, peerEviction: true });
    expect(loadConfig(clusterEnv).cluster?.name).toBe('fleet');
  });

  it('reads the shard group session timeout (default 6 s, the smallest a default broker allows), and refuses one under 1 s by name', () => {
    expect(loadConfig({ ...clusterEnv, FLEET_GROUP_SESSION_TIMEOUT_MS: '2000' }).cluster?.sessionTimeoutMs).toBe(2000);
    expect(() => loadConfig({ ...clusterEnv, FLEET_GROUP_SESSION_TIMEOUT_MS: '500' })).toThrowError(/^Invalid configuration: FLEET_GROUP_SESSION_TIMEOUT_MS /);
  });

  it('drops a dead peer\'s member at once unless FLEET_PEER_EVICTION=off, and refuses any other value by name', () => {
    expect(loadConfig({ ...clusterEnv, FLEET_PEER_EVICTION: 'off' }).cluster?.peerEviction).toBe(false);
    expect(() => loadConfig({ ...clusterEnv, FLEET_PEER_EVICTION: 'maybe' })).toThrowError(/^Invalid configuration: FLEET_PEER_EVICTION /);
  });

  it.each(['KAFKA_BROKERS', 'FLEET_NODE_ID', 'FLEET_ADVERTISED_URL', 'FLEET_SHARDS'] as const)('requires %s, by name', (variable) => {
    expect(() => loadConfig(without(variable))).toThrowError(new RegExp(`^Invalid configuration: ${variable} must be set with FLEET_CLUSTER=kafka`));
  });

  it('refuses FLEET_CLUSTER_NODES, which no longer does anything, by name', () => {
    expect(() => loadConfig({ ...clusterEnv, FLEET_CLUSTER_NODES: 'n1=http://127.0.0.1:4000,n2=http://127.0.0.1:4001' })).toThrowError(
      /^Invalid configuration: FLEET_CLUSTER_NODES is no longer used: the nodes learn each other .* from the cluster's Kafka consumer group/,
    );
    // Single-process mode reads no cluster variable at all.
    expect(loadConfig({ FLEET_CLUSTER_NODES: 'n1=http://127.0.0.1:4000' }).cluster).toBeNull();
  });

  it('refuses the embedded MQTT broker with one clear message', () => {
    expect(() => loadConfig(without('MQTT_URL'))).toThrowError(/^Invalid configuration: MQTT_URL must be set with FLEET_CLUSTER=kafka: the embedded MQTT broker lives inside one process/);
  });

  it.each([
    ['FLEET_CLUSTER', 'zookeeper'],
    ['FLEET_NODE_ID', 'a/b'],
    ['FLEET_NODE_ID', '-n1'],
    ['FLEET_ADVERTISED_URL', 'mqtt://127.0.0.1:1'],
    ['FLEET_CLUSTER_NAME', 'two words'],
  ])('names the bad variable %s=%s', (variable, value) => {
    expect(() => loadConfig({ ...clusterEnv, [variable]: value })).toThrowError(ConfigError);
    expect(() => loadConfig({ ...clusterEnv, [variable]: value })).toThrowError(new RegExp(`^Invalid configuration: ${variable} `));
  });
});

describe('the fixed owner map', () => {
  const nodes = [
    { id: 'a', url: 'http://a' },
    { id: 'b', url: 'http://b' },
    { id: 'c', url: 'http://c' },
  ];

  it('gives shard s to node s mod N, and every shard exactly one owner', () => {
    const owners = fixedOwnerMap(nodes, 7);
    expect(Array.from({ length: 7 }, (_, shard) => owners.ownerOf(shard)?.id)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
    expect([owners.shardsOf('a'), owners.shardsOf('b'), owners.shardsOf('c')]).toEqual([[0, 3, 6], [1, 4], [2, 5]]);
    expect(owners.ownerOf(7)).toBeNull();
    expect(owners.ownerOf(-1)).toBeNull();
  });

  it('leaves a node without shards when there are more nodes than shards', () => {
    expect(fixedOwnerMap(nodes, 2).shardsOf('c')).toEqual([]);
  });
});

describe('the node credential', () => {
  it('is the same on every node of a cluster and differs between clusters and secrets', () => {
    expect(nodeToken(SECRET, 'blue')).toBe(nodeToken(SECRET, 'blue'));
    expect(nodeToken(SECRET, 'blue')).not.toBe(nodeToken(SECRET, 'green'));
    expect(nodeToken(SECRET, 'blue')).not.toBe(nodeToken(`${SECRET}x`, 'blue'));
  });

  it('is accepted only as `Node <token>` with exactly the token', () => {
    const token = nodeToken(SECRET, 'blue');
    expect(carriesNodeToken(nodeAuthorization(token), token)).toBe(true);
    expect(carriesNodeToken(undefined, token)).toBe(false);
    expect(carriesNodeToken(`Bearer ${token}`, token)).toBe(false);
    expect(carriesNodeToken(`Node ${token.slice(0, -1)}`, token)).toBe(false);
    expect(carriesNodeToken(`Node ${nodeToken(SECRET, 'green')}`, token)).toBe(false);
  });
});

describe('links to shards this node does not run', () => {
  it('refuses a call for a shard with no owner at once', async () => {
    await expect(new UnownedShardLink(4).call({ op: 'stats' }, 60_000)).rejects.toThrowError(ShardUnavailableError);
  });

  it('fails a call with ShardUnavailable when the owner cannot be reached, not at the deadline', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const link = new RemoteShardLink({ shard: 1, owner: { id: 'b', url: `http://127.0.0.1:${closedPort}` }, token: 'x', shardCount: 3 });
    // A deadline far beyond the test's own timeout: only an immediate failure passes.
    const failure = await link.call({ op: 'stats' }, 600_000).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ShardUnavailableError);
    expect((failure as ShardUnavailableError).reason).toMatch(/its owner b .* cannot be reached/);
    // Refused: the call ran nowhere, so the router may send it to the shard's next owner.
    expect(failure).toBeInstanceOf(StaleOwnerError);
  });

  it('posts the envelope with the node credential to a node without the channel and returns the owner\'s answer; an owner that stays silent fails at the deadline plus the margin, as may-have-run', async () => {
    const seen: Array<{ url: string | undefined; authorization: string | undefined; body: string }> = [];
    const server = createHttpServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        seen.push({ url: request.url, authorization: request.headers.authorization, body });
        if (body.includes('"silent"')) return; // never answers
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, value: { answered: 'by the owner' } }));
      });
    });
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    try {
      const link = new RemoteShardLink({ shard: 2, owner: { id: 'c', url: `http://127.0.0.1:${port}` }, token: 'tok', shardCount: 3 });
      expect(await link.call({ op: 'stats' }, 5000)).toEqual({ answered: 'by the owner' });
      // The channel is asked for first; a node that does not offer it (here: a plain HTTP server) is called over HTTP.
      expect(seen[0]).toMatchObject({ url: NODE_CHANNEL_PATH, authorization: nodeAuthorization('tok') });
      expect(seen[1]).toMatchObject({ url: shardCallPath(2), authorization: nodeAuthorization('tok') });
      expect(JSON.parse(seen[1]!.body)).toEqual({ call: { op: 'stats' }, deadlineMs: 5000, shards: 3 });
      const started = Date.now();
      const failure = await link.call({ op: 'read', query: { type: 'silent' } } as never, 100).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(ShardUnavailableError);
      expect(failure).not.toBeInstanceOf(StaleOwnerError);
      expect((failure as ShardUnavailableError).reason).toMatch(/no answer from its owner c within 100 ms/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('live events of a remote shard (RemoteEventFollower)', () => {
  const event = (position: number) => ({ shard: 1, position, type: 'booking.created', key: `bk_s1_${position}`, time: position, data: {} }) as unknown as ShardEvent;

  /** An owner whose `events` read holds a long poll until something commits (server/shard-read-dispatch.ts), or answers at once (`immediate`: an older node). */
  class FakeOwner {
    readonly journal: ShardEvent[] = [event(3), event(5)];
    readonly calls: string[] = [];
    immediate = false;
    private held: Array<{ after: number; resolve: (page: unknown) => void; reject: (error: Error) => void }> = [];

    readonly call = async <T,>(shardCall: ShardCall): Promise<T> => {
      if (shardCall.op === 'stats') {
        this.calls.push('stats');
        return { journal: { position: this.journal.at(-1)!.position } } as T;
      }
      const read = shardCall.op === 'read' && shardCall.read.read === 'events' ? shardCall.read : null;
      if (read === null) throw new Error('not a call the follower makes');
      this.calls.push(`read after ${read.after}${read.waitMs !== undefined ? ' (waits)' : ''}`);
      const page = this.pageAfter(read.after);
      if (page.events.length > 0 || this.immediate) return page as T;
      return new Promise<T>((resolve, reject) => this.held.push({ after: read.after, resolve: resolve as (page: unknown) => void, reject }));
    };

    get waiting(): number {
      return this.held.length;
    }

    commit(position: number): void {
      this.journal.push(event(position));
      for (const ask of this.held.splice(0)) ask.resolve(this.pageAfter(ask.after));
    }

    failWaiting(): void {
      for (const ask of this.held.splice(0)) ask.reject(new ShardUnavailableError(1, 'owner down'));
    }

    private pageAfter(after: number) {
      const events = this.journal.filter((each) => each.position > after);
      return { events, scannedTo: events.at(-1)?.position ?? after };
    }
  }

  it('starts at the shard\'s position, asks the streams to re-read, then holds an ask at the owner and pushes each commit as it comes; after a failure it asks again from the same position', async () => {
    const owner = new FakeOwner();
    const pushed: number[] = [];
    let resyncs = 0;
    const follower = new RemoteEventFollower(owner.call, (events) => pushed.push(...events.map((each) => each.position)), () => (resyncs += 1), 10);

    follower.follow(true);
    await vi.waitFor(() => expect(owner.waiting).toBe(1));
    expect(resyncs).toBe(1);
    expect(pushed).toEqual([]);

    owner.commit(8);
    await vi.waitFor(() => expect(owner.waiting).toBe(1));
    expect(pushed).toEqual([8]);

    owner.failWaiting();
    await vi.waitFor(() => expect(owner.calls).toHaveLength(4));
    await vi.waitFor(() => expect(owner.waiting).toBe(1));
    owner.commit(9);
    await vi.waitFor(() => expect(pushed).toEqual([8, 9]));
    await vi.waitFor(() => expect(owner.calls).toHaveLength(5));
    expect(owner.calls).toEqual(['stats', 'read after 5 (waits)', 'read after 8 (waits)', 'read after 8 (waits)', 'read after 9 (waits)']);

    // No longer followed: what commits next is not pushed.
    await vi.waitFor(() => expect(owner.waiting).toBe(1));
    follower.follow(false);
    owner.commit(10);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(pushed).toEqual([8, 9]);
  });

  it('polls an owner that answers at once with nothing (a node without the long poll), not in a tight loop', async () => {
    const owner = new FakeOwner();
    owner.immediate = true;
    const follower = new RemoteEventFollower(owner.call, () => undefined, () => undefined, 50);
    follower.follow(true);
    await new Promise((resolve) => setTimeout(resolve, 260));
    follower.follow(false);
    // stats, then about one read per 50 ms (an ask at once after each empty answer would be thousands).
    expect(owner.calls.length).toBeGreaterThanOrEqual(2);
    expect(owner.calls.length).toBeLessThanOrEqual(8);
  });
});
