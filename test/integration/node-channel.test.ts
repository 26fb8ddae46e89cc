import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, FrameReader, FrameTooLarge, MAX_FRAME_BODY_BYTES } from '../../server/cluster/channel-frames.js';
import { nodeAuthorization } from '../../server/cluster/node-credential.js';
import { acceptNodeChannels, type NodeChannelServer } from '../../server/cluster/node-channel-server.js';
import { closeNodeChannels, onPeerLost, watchNode } from '../../server/cluster/node-channel.js';
import { RemoteShardLink, StaleOwnerError } from '../../server/cluster/remote-shard-link.js';
import type { ShardCallHost } from '../../server/cluster/shard-call-answer.js';
import { NODE_CHANNEL_PATH, NODE_CHANNEL_PROTOCOL } from '../../server/cluster/wire.js';
import type { ShardSupervisor } from '../../server/shard-supervisor.js';
import { ShardCallError, ShardUnavailableError } from '../../runtime/kernel/shard-link.js';

const TOKEN = 'the-node-token';

interface SeenCall {
  readonly shard: number;
  readonly call: { op: string; query?: { wait?: number; never?: boolean; echo?: unknown }; read?: { read: string; waitMs?: number } };
  readonly deadlineMs: number;
}

/**
 * An owner node's HTTP server with only the channel on it, over a stand-in for its shards: shard 0
 * and 1 are "owned"; a call's `query.wait` delays its answer, `query.never` never answers.
 */
async function ownerNode(): Promise<{ server: Server; url: string; seen: SeenCall[]; upgrades: () => number; channels: NodeChannelServer; sockets: Set<Socket> }> {
  const seen: SeenCall[] = [];
  const local = {
    has: (shard: number) => shard === 0 || shard === 1,
    link: (shard: number) => ({
      call: async (call: SeenCall['call'], deadlineMs: number) => {
        seen.push({ shard, call, deadlineMs });
        // A long poll of events that nothing answers (no commit comes).
        if (call.query?.never === true || call.read?.waitMs !== undefined) return new Promise(() => {});
        if (call.query?.wait !== undefined) await new Promise((resolve) => setTimeout(resolve, call.query!.wait));
        if (shard === 1) throw new ShardUnavailableError(1, 'its worker is restarting');
        return { shard, echo: call.query?.echo ?? null };
      },
    }),
  } as unknown as ShardSupervisor;
  const host: ShardCallHost = { nodeId: 'owner', shardCount: 3, local };
  // Its HTTP routes, as a node answers a request without the node credential.
  const server = createServer((_request, response) => response.writeHead(401, { 'content-type': 'application/problem+json' }).end('{"type":"unauthorized","status":401}'));
  let upgrades = 0;
  const sockets = new Set<Socket>();
  server.on('upgrade', (_request, socket: Socket) => {
    upgrades += 1;
    sockets.add(socket);
  });
  const channels = acceptNodeChannels(server, TOKEN, host, 'owner/start-1');
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
  return { server, url: `http://127.0.0.1:${port}`, seen, upgrades: () => upgrades, channels, sockets };
}

const read = (echo: unknown, extra: Record<string, unknown> = {}) => ({ op: 'read', query: { echo, ...extra } }) as never;

const servers: Server[] = [];
afterEach(async () => {
  closeNodeChannels();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function started() {
  const owner = await ownerNode();
  servers.push(owner.server);
  const link = (shard: number, token = TOKEN) => new RemoteShardLink({ shard, owner: { id: 'owner', url: owner.url }, token, shardCount: 3 });
  return { ...owner, link };
}

describe('the channel between nodes (shard calls over one upgraded socket)', () => {
  it('carries many concurrent calls on one socket, each answer matched to its call whatever the order', async () => {
    const { link, seen, upgrades } = await started();
    // Later calls answer first: the ids, not the order, pair answers with calls.
    const answers = await Promise.all(Array.from({ length: 50 }, (_, index) => link(0).call(read(index, { wait: (50 - index) % 7 }), 5000)));
    expect(answers).toEqual(Array.from({ length: 50 }, (_, index) => ({ shard: 0, echo: index })));
    expect(upgrades()).toBe(1);
    expect(seen).toHaveLength(50);
    expect(seen[0]).toMatchObject({ shard: 0, deadlineMs: 5000 });
  });

  it('answers "not mine" for a shard the node does not run, which the caller may send elsewhere, and passes on a shard that is down', async () => {
    const { link } = await started();
    const notMine = await link(2).call(read('x'), 5000).catch((error: unknown) => error);
    expect(notMine).toBeInstanceOf(StaleOwnerError);
    expect((notMine as StaleOwnerError).reason).toMatch(/node owner does not own it/);
    const down = await link(1).call(read('x'), 5000).catch((error: unknown) => error);
    expect(down).toBeInstanceOf(ShardUnavailableError);
    expect(down).not.toBeInstanceOf(StaleOwnerError);
    expect((down as ShardUnavailableError).reason).toMatch(/its worker is restarting/);
  });

  it('refuses an upgrade without the node credential with 401 and runs none of its calls', async () => {
    const { url, seen, link } = await started();
    const status = await new Promise<number>((resolve, reject) => {
      const upgrade = httpRequest(`${url}${NODE_CHANNEL_PATH}`, { headers: { connection: 'Upgrade', upgrade: NODE_CHANNEL_PROTOCOL, authorization: nodeAuthorization('not-the-token') } });
      upgrade.on('upgrade', () => reject(new Error('upgraded without the credential')));
      upgrade.on('response', (response) => resolve(response.statusCode ?? 0));
      upgrade.on('error', reject);
      upgrade.end();
    });
    expect(status).toBe(401);
    // A caller with another token: the channel is refused, and so is the HTTP route it then tries.
    const failure = await link(0, 'not-the-token').call(read('x'), 5000).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ShardCallError);
    expect((failure as Error).message).toMatch(/refused the call \(401/);
    expect(seen).toHaveLength(0);
  });

  it('fails calls that were sent when the socket drops as may-have-run, and the next call opens a new channel', async () => {
    const { link, sockets, upgrades, seen } = await started();
    const inFlight = link(0).call(read('lost', { never: true }), 60_000).catch((error: unknown) => error);
    await expect.poll(() => seen.length).toBe(1);
    for (const socket of sockets) socket.destroy();
    const failure = await inFlight;
    expect(failure).toBeInstanceOf(ShardUnavailableError);
    expect(failure).not.toBeInstanceOf(StaleOwnerError);
    expect(await link(0).call(read('again'), 5000)).toEqual({ shard: 0, echo: 'again' });
    expect(upgrades()).toBe(2);
  });

  it('fails a call with no answer at its deadline plus the margin, as may-have-run, and keeps the channel while the peer answers other calls', async () => {
    const { link, upgrades } = await started();
    const startedAt = Date.now();
    const silent = link(0).call(read('silent', { never: true }), 100).catch((error: unknown) => error);
    // The peer is heard after the silent call left: a stuck call, not a dead peer.
    expect(await link(0).call(read('answered'), 5000)).toEqual({ shard: 0, echo: 'answered' });
    const failure = await silent;
    expect(failure).toBeInstanceOf(ShardUnavailableError);
    expect(failure).not.toBeInstanceOf(StaleOwnerError);
    expect((failure as ShardUnavailableError).reason).toMatch(/no answer from its owner owner within 100 ms/);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1000);
    expect(await link(0).call(read('next'), 5000)).toEqual({ shard: 0, echo: 'next' });
    expect(upgrades()).toBe(1);
  });

  it('answers a frame that is not a shard call envelope with 400, and keeps serving the socket', async () => {
    const { url } = await started();
    const answers = await rawChannel(url, [encodeFrame(7, 0, '{"call":{"op":"seed"},"deadlineMs":1000,"shards":3}'), encodeFrame(8, 0, 'not json'), encodeFrame(9, 0, '{"call":{"op":"stats"},"deadlineMs":1000,"shards":3}')], 3);
    expect(answers.map((frame) => [frame.id, frame.tag])).toEqual([
      [7, 400],
      [8, 400],
      [9, 200],
    ]);
    expect(JSON.parse(answers[0]!.body)).toMatchObject({ ok: false, failure: 'error', reason: 'Not a shard call envelope.' });
  });

  it('on its node\'s stop: answers the calls in flight, refuses new ones as unavailable, then ends the socket', async () => {
    const { link, channels, seen } = await started();
    const inFlight = link(0).call(read('finishing', { wait: 200 }), 5000);
    await expect.poll(() => seen.length).toBe(1);
    const closing = channels.close();
    const refused = await link(0).call(read('late'), 5000).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ShardUnavailableError);
    expect((refused as ShardUnavailableError).reason).toMatch(/the node is stopping/);
    expect(await inFlight).toEqual({ shard: 0, echo: 'finishing' });
    await closing;
  });
});

describe('upgrades that are not a channel, refusals, and peers that fall silent', () => {
  it('answers another upgrade (curl --http2 sends `Upgrade: h2c`) as the plain request it is, and closes a refused one', async () => {
    const { url } = await started();
    const plain = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const asked = httpRequest(`${url}/health`, { headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': '' } });
      asked.on('upgrade', () => reject(new Error('upgraded to h2c')));
      asked.on('response', (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      });
      asked.on('error', reject);
      asked.end();
    });
    // The server's own handler answered (here: the node routes' 401 without the node credential).
    expect(plain).toEqual({ status: 401, body: '{"type":"unauthorized","status":401}' });

    const closed = await new Promise<boolean>((resolve, reject) => {
      const upgrade = httpRequest(`${url}${NODE_CHANNEL_PATH}`, { headers: { connection: 'Upgrade', upgrade: NODE_CHANNEL_PROTOCOL } });
      upgrade.on('response', (response) => {
        response.resume();
        response.socket.once('close', () => resolve(true));
      });
      upgrade.on('error', reject);
      upgrade.end();
    });
    expect(closed).toBe(true);
  });

  it('sends the calls of a node that is stopping (503 to the upgrade) nowhere: they may go to the shard\'s next owner', async () => {
    const { link, channels } = await started();
    await channels.close();
    const failure = await link(0).call(read('x'), 5000).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(StaleOwnerError);
  });

  it('closes the channel to a peer that took the upgrade and then fell silent, once a call times out; the next call opens another', async () => {
    const silent = createServer();
    servers.push(silent);
    let upgrades = 0;
    silent.on('upgrade', (_request, socket: Socket) => {
      upgrades += 1;
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${NODE_CHANNEL_PROTOCOL}\r\n\r\n`);
      socket.on('data', () => undefined); // reads every frame, answers none
      socket.on('end', () => socket.end());
    });
    const port = await new Promise<number>((resolve) => silent.listen(0, '127.0.0.1', () => resolve((silent.address() as { port: number }).port)));
    const link = new RemoteShardLink({ shard: 0, owner: { id: 'mute', url: `http://127.0.0.1:${port}` }, token: TOKEN, shardCount: 3 });
    const first = await link.call(read('x'), 100).catch((error: unknown) => error);
    expect(first).toBeInstanceOf(ShardUnavailableError);
    expect((first as ShardUnavailableError).reason).toMatch(/no answer from its owner mute within 100 ms/);
    await link.call(read('y'), 100).catch(() => undefined);
    expect(upgrades).toBe(2);
  });
});

describe('a peer lost without its goodbye (what server/cluster/peer-watch.ts acts on)', () => {
  const losses: Array<{ url: string; start: string }> = [];
  const listening: Array<() => void> = [];
  afterEach(() => {
    for (const stop of listening.splice(0)) stop();
    losses.length = 0;
  });
  const listen = (): void => {
    listening.push(onPeerLost((url, start) => losses.push({ url, start })));
  };

  it('opens a channel with no call on it, learns the peer\'s process start, and tells whoever listens when its socket drops', async () => {
    const { url, sockets, upgrades } = await started();
    listen();
    expect(await watchNode(url, nodeAuthorization(TOKEN))).toEqual({ opened: true, start: 'owner/start-1' });
    // Watching again reuses the open channel.
    expect(await watchNode(url, nodeAuthorization(TOKEN))).toEqual({ opened: true, start: 'owner/start-1' });
    expect(upgrades()).toBe(1);
    for (const socket of sockets) socket.destroy();
    await expect.poll(() => losses).toEqual([{ url, start: 'owner/start-1' }]);
  });

  it('hears a goodbye from a node that stops, and reports no loss when its channel then ends', async () => {
    const { url, channels, server } = await started();
    listen();
    expect(await watchNode(url, nodeAuthorization(TOKEN))).toMatchObject({ opened: true });
    await channels.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    // Refused now: nothing listens there; still no loss, since the end came with its goodbye.
    expect(await watchNode(url, nodeAuthorization(TOKEN))).toEqual({ opened: false, refused: true });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(losses).toEqual([]);
  });

  it('reports no loss for channels this node closes itself, and a refused connection when nothing listens at the address', async () => {
    const { url } = await started();
    listen();
    expect(await watchNode(url, nodeAuthorization(TOKEN))).toMatchObject({ opened: true });
    closeNodeChannels();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(losses).toEqual([]);
    const free = await new Promise<number>((resolve) => {
      const probe = createServer();
      probe.listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    expect(await watchNode(`http://127.0.0.1:${free}`, nodeAuthorization(TOKEN))).toEqual({ opened: false, refused: true });
  });
});

describe('a node that stops while a peer never ends its half of the channel (a paused peer)', () => {
  it('destroys that socket soon after ending its own half, so the server closes and the node can stop', async () => {
    const { server, url, channels } = await started();
    const { port } = new URL(url);
    // A caller that takes the upgrade and then never answers anything, its end included.
    const socket = connect({ host: '127.0.0.1', port: Number(port), allowHalfOpen: true });
    const upgraded = new Promise<string>((resolve) => socket.once('data', (chunk) => resolve(chunk.toString('latin1'))));
    socket.write(`GET ${NODE_CHANNEL_PATH} HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: ${NODE_CHANNEL_PROTOCOL}\r\nauthorization: ${nodeAuthorization(TOKEN)}\r\n\r\n`);
    expect(await upgraded).toMatch(/^HTTP\/1\.1 101 /);
    const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
    await channels.close();
    // It waits for no socket once that one is destroyed; before, for ever (the test's timeout).
    await new Promise((resolve) => server.close(resolve));
    await ended;
    socket.destroy();
  });
});

describe('a node that stops with a long poll of events on its channel', () => {
  it('answers it unavailable at once (its caller asks again elsewhere) instead of waiting out its wait', async () => {
    const { link, channels, seen } = await started();
    const polling = link(0)
      .call({ op: 'read', read: { read: 'events', after: 0, limit: 10, waitMs: 60_000 } } as never, 70_000)
      .catch((error: unknown) => error);
    await expect.poll(() => seen.length).toBe(1);
    // Well before the poll's 60 s: the test's own timeout fails it otherwise.
    await channels.close();
    const failure = await polling;
    expect(failure).toBeInstanceOf(ShardUnavailableError);
    expect((failure as ShardUnavailableError).reason).toMatch(/the node is stopping/);
  });
});

describe('channel frames', () => {
  it('cuts a stream into frames whatever the chunks: byte by byte, or several frames in one chunk', () => {
    const stream = Buffer.concat([encodeFrame(1, 4, '{"a":"é"}'), encodeFrame(2, 200, ''), encodeFrame(0xffffffff, 0, 'x'.repeat(1000))]);
    const byteByByte = new FrameReader();
    const frames = [];
    for (let offset = 0; offset < stream.length; offset += 1) frames.push(...byteByByte.push(stream.subarray(offset, offset + 1)));
    const whole = new FrameReader().push(stream);
    expect(frames).toEqual(whole);
    expect(whole.map((frame) => [frame.id, frame.tag, frame.body.length])).toEqual([
      [1, 4, 9],
      [2, 200, 0],
      [0xffffffff, 0, 1000],
    ]);
    expect(whole[0]!.body).toBe('{"a":"é"}');
  });

  it('refuses a length past the limit (a stream that is not a channel\'s)', () => {
    const header = Buffer.alloc(12);
    header.writeUInt32BE(MAX_FRAME_BODY_BYTES + 1, 0);
    expect(() => new FrameReader().push(header)).toThrowError(FrameTooLarge);
  });
});

/** Opens a channel by hand, writes `frames`, and collects `count` answers. */
function rawChannel(url: string, frames: Buffer[], count: number): Promise<Array<{ id: number; tag: number; body: string }>> {
  return new Promise((resolve, reject) => {
    const upgrade = httpRequest(`${url}${NODE_CHANNEL_PATH}`, { headers: { connection: 'Upgrade', upgrade: NODE_CHANNEL_PROTOCOL, authorization: nodeAuthorization(TOKEN) } });
    upgrade.on('upgrade', (_response, socket: Socket) => {
      const reader = new FrameReader();
      const answers: Array<{ id: number; tag: number; body: string }> = [];
      socket.on('data', (chunk: Buffer) => {
        answers.push(...reader.push(chunk));
        if (answers.length >= count) {
          socket.destroy();
          resolve(answers);
        }
      });
      for (const frame of frames) socket.write(frame);
    });
    upgrade.on('response', (response) => reject(new Error(`no upgrade: ${response.statusCode}`)));
    upgrade.on('error', reject);
    upgrade.end();
  });
}
