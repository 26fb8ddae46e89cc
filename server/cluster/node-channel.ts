import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TurnBatch } from '../../runtime/kernel/turn-batch.js';
import { CHANNEL_KEEPALIVE_MS, encodeFrame, FrameReader, GOODBYE_ID, turnWriter, type Frame } from './channel-frames.js';
import { NodeCallFailed, postToNode, type NodeAnswer } from './node-client.js';
import { NODE_CHANNEL_PATH, NODE_CHANNEL_PROTOCOL, NODE_START_HEADER, shardCallPath } from './wire.js';

/** An upgrade not answered within this long is given up (its calls never left: they may go elsewhere). */
const HANDSHAKE_TIMEOUT_MS = 5000;
/** How often calls past their deadline are failed while any is pending. */
const SWEEP_MS = 100;
/** The largest id before it wraps (a frame carries it as an unsigned 32-bit number). */
const MAX_ID = 0xffff_ffff;

/** The peer answered the upgrade with something else (a node of an older version, or no channel there): its calls never left. */
export class ChannelNotOffered extends Error {
  constructor(readonly status: number) {
    super(`the node answered the channel's upgrade with ${status}`);
    this.name = 'ChannelNotOffered';
  }
}

interface PendingCall {
  readonly resolve: (answer: NodeAnswer) => void;
  readonly reject: (error: Error) => void;
  readonly deadline: number;
  /** Still in the queue of a channel that is not open: it never reached the peer. */
  sent: boolean;
  /** How many chunks the peer had sent when this call left: a call timed out with none since then means a silent peer. */
  heardBefore: number;
}

type ChannelState = 'connecting' | 'open' | 'closed';

/** How a channel's upgrade ended: open (with the peer's process start, if it sent one), or not. */
export type ChannelOpening =
  | { readonly opened: true; readonly start: string | null }
  /** `refused`: nothing listens at the peer's address (the connection was refused): no process of it runs there. */
  | { readonly opened: false; readonly refused: boolean };

/**
 * One long-lived socket from this node to another, carrying shard calls as frames. Forwarding each
 * call as an HTTP request (even over undici's keep-alive pool) cost both nodes a request's parsing,
 * headers and a write per call; here a call is 12 bytes of header and its JSON, the calls of one turn
 * leave in one write, and answers are matched by id in any order.
 *
 * Failures keep what `postToNode` promised: calls that never left (refused connection, failed
 * upgrade) fail with `refused` (the caller may send them to the shard's next owner); calls that left
 * and got no answer (the socket closed, or their deadline passed) fail as may-have-run. A closed
 * channel is not reused: the next call opens a new one.
 */
export class NodeChannel {
  private state: ChannelState = 'connecting';
  private socket: Socket | null = null;
  private readonly reader = new FrameReader();
  private readonly pending = new Map<number, PendingCall>();
  /** Frames of calls made before the channel opened, by call id, in order (a call that times out meanwhile leaves). */
  private readonly queued = new Map<number, Buffer>();
  /** Chunks the peer has sent. */
  private heard = 0;
  private nextId = 1;
  /** Set when the channel opens: the calls of one turn in one write. */
  private outgoing: TurnBatch<Buffer> | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  /** The peer's process start, from the upgrade's answer. */
  private peerStart: string | null = null;
  /** The peer said goodbye (GOODBYE_ID): the channel ends because its node stops. */
  private saidGoodbye = false;
  /** Closed by this node (it stops, or drops its channels). */
  private destroyedHere = false;
  /** The peer answered the upgrade with something else than the channel (an older node, another cluster's token). */
  private notOffered = false;
  private settleOpening: (opening: ChannelOpening) => void = () => {};
  /** Settles once the upgrade is answered or fails. */
  readonly opening: Promise<ChannelOpening> = new Promise((resolve) => {
    this.settleOpening = resolve;
  });

  constructor(
    url: string,
    authorization: string,
    private readonly onClosed: (channel: NodeChannel) => void,
  ) {
    const target = new URL(url);
    const upgrade = httpRequest({
      host: target.hostname,
      port: target.port,
      path: NODE_CHANNEL_PATH,
      agent: false,
      timeout: HANDSHAKE_TIMEOUT_MS,
      headers: { connection: 'Upgrade', upgrade: NODE_CHANNEL_PROTOCOL, authorization },
    });
    upgrade.on('upgrade', (response: IncomingMessage, socket: Socket, head: Buffer) => {
      if (response.headers.upgrade !== NODE_CHANNEL_PROTOCOL) {
        socket.destroy();
        this.close(new ChannelNotOffered(response.statusCode ?? 0));
        return;
      }
      const start = response.headers[NODE_START_HEADER];
      this.peerStart = typeof start === 'string' && start !== '' ? start : null;
      this.opened(socket, head);
    });
    upgrade.on('response', (response: IncomingMessage) => {
      response.resume();
      const status = response.statusCode ?? 0;
      // A node that is stopping (503) has the channel but takes no call: its calls never left, and may go to the shard's next owner.
      this.close(status === 503 ? new Error('the node is stopping') : new ChannelNotOffered(status));
    });
    upgrade.on('timeout', () => upgrade.destroy(new Error('the channel upgrade got no answer in time')));
    upgrade.on('error', (error: Error) => this.close(error));
    upgrade.end();
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /**
   * The process start of a peer this channel was open to and lost without its goodbye (the socket
   * closed or went silent), or null: never open, a goodbye, closed here, or a peer that sends no start.
   */
  get lostPeerStart(): string | null {
    return this.state === 'closed' && !this.saidGoodbye && !this.destroyedHere ? this.peerStart : null;
  }

  /** Closed because the peer does not offer the channel: it is called over HTTP for a while. */
  get wasNotOffered(): boolean {
    return this.notOffered;
  }

  /** Sends `body` (a ShardCallRequest as JSON) for `shard`; the answer's status and text, or NodeCallFailed within `timeoutMs`. */
  call(shard: number, body: string, timeoutMs: number): Promise<NodeAnswer> {
    if (this.state === 'closed') return Promise.reject(new NodeCallFailed(true, false, { cause: new Error('the channel is closed') }));
    return new Promise<NodeAnswer>((resolve, reject) => {
      const id = this.takeId();
      const frame = encodeFrame(id, shard, body);
      const call: PendingCall = { resolve, reject, deadline: Date.now() + timeoutMs, sent: this.state === 'open', heardBefore: this.heard };
      this.pending.set(id, call);
      this.sweepWhilePending();
      if (this.outgoing !== null) this.outgoing.add(frame);
      else this.queued.set(id, frame);
    });
  }

  /** Fails every call not yet answered and closes the socket. */
  destroy(): void {
    this.destroyedHere = true;
    this.close(new Error('the node closed its channels'));
  }

  private takeId(): number {
    let id = this.nextId;
    while (this.pending.has(id)) id = id >= MAX_ID ? 1 : id + 1;
    this.nextId = id >= MAX_ID ? 1 : id + 1;
    return id;
  }

  private opened(socket: Socket, head: Buffer): void {
    if (this.state !== 'connecting') {
      socket.destroy();
      return;
    }
    this.state = 'open';
    this.socket = socket;
    this.settleOpening({ opened: true, start: this.peerStart });
    const outgoing = turnWriter(socket);
    this.outgoing = outgoing;
    socket.setNoDelay(true);
    // A peer whose host vanished: the kernel's keep-alive probes end the socket in the end (see also the sweep).
    socket.setKeepAlive(true, CHANNEL_KEEPALIVE_MS);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error: Error) => this.close(error));
    socket.on('end', () => this.close(new Error('the node ended the channel')));
    socket.on('close', () => this.close(new Error('the channel closed')));
    for (const call of this.pending.values()) {
      call.sent = true;
      call.heardBefore = this.heard;
    }
    for (const frame of this.queued.values()) outgoing.add(frame);
    this.queued.clear();
    if (head.length > 0) this.receive(head);
  }

  private receive(chunk: Buffer): void {
    this.heard += 1;
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch (error) {
      this.close(error as Error);
      return;
    }
    for (const frame of frames) {
      if (frame.id === GOODBYE_ID) {
        this.saidGoodbye = true;
        continue;
      }
      const call = this.pending.get(frame.id);
      // An answer after its call's deadline: the call already failed, the answer is dropped.
      if (!call) continue;
      this.pending.delete(frame.id);
      call.resolve({ status: frame.tag, text: frame.body });
    }
  }

  private sweepWhilePending(): void {
    if (this.sweeper !== null) return;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      let silent = false;
      for (const [id, call] of this.pending) {
        if (call.deadline > now) continue;
        this.pending.delete(id);
        this.queued.delete(id);
        // Nothing at all heard from the peer since this call left: not a slow shard but a silent peer.
        if (call.sent && this.heard === call.heardBefore) silent = true;
        call.reject(new NodeCallFailed(false, true, { cause: new Error('no answer on the channel in time') }));
      }
      // Its other calls fail as may-have-run, and the next call opens a new channel.
      if (silent) this.close(new Error('the peer sent nothing since a call that timed out'));
      if (this.pending.size === 0) this.stopSweeping();
    }, SWEEP_MS);
    this.sweeper.unref();
  }

  private stopSweeping(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  private close(cause: Error): void {
    if (this.state === 'closed') return;
    this.settleOpening({ opened: false, refused: (cause as NodeJS.ErrnoException).code === 'ECONNREFUSED' });
    this.notOffered = cause instanceof ChannelNotOffered;
    this.state = 'closed';
    this.stopSweeping();
    this.socket?.destroy();
    this.outgoing?.drop();
    this.queued.clear();
    const failed = [...this.pending.values()];
    this.pending.clear();
    for (const call of failed) {
      // Never sent: a refused connection, a failed upgrade. Sent: the peer may have run it.
      call.reject(cause instanceof ChannelNotOffered && !call.sent ? cause : new NodeCallFailed(!call.sent, false, { cause }));
    }
    this.onClosed(this);
  }
}

/** A node that did not offer the channel is called over HTTP for this long before the channel is tried again. */
const HTTP_ONLY_MS = 60_000;

/** By the node's URL as it advertises it. */
const channels = new Map<string, NodeChannel>();
const httpOnlyUntil = new Map<string, number>();

/**
 * A shard call to the node at `url`: over its channel, opened on first use and again after it
 * closes; over `POST /internal/shards/:shard/call` to a node that does not offer the channel (a node
 * of an older version during a rolling upgrade). The answer's status and text, or NodeCallFailed.
 */
export async function callShardOnNode(url: string, shard: number, body: string, authorization: string, timeoutMs: number): Promise<NodeAnswer> {
  const viaHttp = (): Promise<NodeAnswer> => postToNode(url, shardCallPath(shard), body, authorization, timeoutMs);
  if ((httpOnlyUntil.get(url) ?? 0) > Date.now()) return viaHttp();
  const channel = channelTo(url, authorization);
  try {
    return await channel.call(shard, body, timeoutMs);
  } catch (error) {
    if (!(error instanceof ChannelNotOffered)) throw error;
    // The channel's close marked the node HTTP-only already (channelTo), before this call failed.
    return viaHttp();
  }
}

/** The open channel to `url`, or a new one. */
function channelTo(url: string, authorization: string): NodeChannel {
  const known = channels.get(url);
  if (known !== undefined && !known.closed) return known;
  const channel = new NodeChannel(url, authorization, (closed) => {
    if (channels.get(url) === closed) channels.delete(url);
    // The next calls go over HTTP for a while (callShardOnNode), and the watch does not upgrade again every second.
    if (closed.wasNotOffered) httpOnlyUntil.set(url, Date.now() + HTTP_ONLY_MS);
    const start = closed.lostPeerStart;
    if (start === null) return;
    for (const listener of peerLost) {
      try {
        listener(url, start);
      } catch {
        // A listener's failure is its own; the channel is closed either way.
      }
    }
  });
  channels.set(url, channel);
  return channel;
}

/** Told when a channel to a peer is lost without its goodbye: the peer's URL and the process start it was open to. */
export type PeerLostListener = (url: string, start: string) => void;
const peerLost = new Set<PeerLostListener>();

/** Listens for lost channels (server/cluster/peer-watch.ts); the returned function stops listening. */
export function onPeerLost(listener: PeerLostListener): () => void {
  peerLost.add(listener);
  return () => peerLost.delete(listener);
}

/**
 * Keeps a channel open to the node at `url` with no call on it, opening one if there is none: the
 * channel the node's calls use, so a lost peer is heard of whether or not calls go to it. How its
 * upgrade went (at once for a channel already open).
 */
export function watchNode(url: string, authorization: string): Promise<ChannelOpening> {
  if ((httpOnlyUntil.get(url) ?? 0) > Date.now()) return Promise.resolve({ opened: false, refused: false });
  return channelTo(url, authorization).opening;
}

/** Closes every channel (a node that stops): calls still waiting fail; later calls open new ones. */
export function closeNodeChannels(): void {
  const open = [...channels.values()];
  channels.clear();
  httpOnlyUntil.clear();
  for (const channel of open) channel.destroy();
}
