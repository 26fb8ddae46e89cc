import { ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TurnBatch } from '../../runtime/kernel/turn-batch.js';
import { CHANNEL_KEEPALIVE_MS, encodeFrame, FrameReader, goodbyeFrame, turnWriter, type Frame } from './channel-frames.js';
import { carriesNodeToken } from './node-credential.js';
import { answerShardCall, NOT_AN_ENVELOPE, type ShardCallHost } from './shard-call-answer.js';
import { NODE_CHANNEL_PATH, NODE_CHANNEL_PROTOCOL, NODE_START_HEADER, type ShardCallAnswer } from './wire.js';
import { waitsForCommits, type ShardRead } from '../shard-calls.js';

/** A channel still answering calls when its node stops is cut after this long (the calls' own deadlines are shorter). */
const CLOSE_GRACE_MS = 10_000;
/** After this node ended a channel, how long the caller has to end its half before the socket is destroyed. */
const HALF_OPEN_LINGER_MS = 1000;

export interface NodeChannelServer {
  /** No new calls (each is answered `unavailable`); each channel ends once its calls are answered. */
  close(): Promise<void>;
}

/**
 * The owner's side of the channels other nodes open to it (server/cluster/node-channel.ts): an HTTP
 * upgrade on this node's own port, so no second port or address is configured. The upgrade request
 * must carry the node credential (as every internal route), or it is refused with 401 and the socket
 * closed; any other upgrade request is answered as a plain request. Each call frame is answered exactly as
 * `POST /internal/shards/:shard/call` answers it.
 */
export function acceptNodeChannels(server: Server, token: string, host: ShardCallHost, start: string): NodeChannelServer {
  const open = new Set<ServedChannel>();
  let closing = false;
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node took the socket's own listeners off before this event: without one, a reset while this
    // answers would be an uncaught error.
    socket.on('error', () => socket.destroy());
    if (!asksForTheChannel(request)) {
      // Once an 'upgrade' listener exists, Node hands it every upgrade (`Upgrade: h2c` from curl --http2):
      // any other than the channel's is answered as the request it would have been without one.
      answerAsUsual(server, request, socket, head);
      return;
    }
    const refusal = carriesNodeToken(request.headers.authorization, token) ? null : UNAUTHORIZED;
    if (refusal !== null || closing) {
      // Then closed: the server's sockets allow half-open, and nothing reads this one any more.
      socket.end(refusal ?? STOPPING_RESPONSE, () => socket.destroy());
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${NODE_CHANNEL_PROTOCOL}\r\n${NODE_START_HEADER}: ${start}\r\n\r\n`);
    (socket as Socket).setKeepAlive(true, CHANNEL_KEEPALIVE_MS);
    const channel = new ServedChannel(socket, host, () => closing);
    open.add(channel);
    socket.on('close', () => open.delete(channel));
    if (head.length > 0) channel.receive(head);
  });
  return {
    close: async () => {
      closing = true;
      await Promise.all([...open].map((channel) => channel.end(CLOSE_GRACE_MS)));
    },
  };
}

const asksForTheChannel = (request: IncomingMessage): boolean => (request.url ?? '').split('?')[0] === NODE_CHANNEL_PATH && request.headers.upgrade === NODE_CHANNEL_PROTOCOL;

/** The longest an upgrade request that is not the channel's may take to be answered as a plain request. */
const PLAIN_REQUEST_TIMEOUT_MS = 30_000;

const UNAUTHORIZED = 'HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Node realm="fleetactors-cluster"\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
const STOPPING_RESPONSE = 'HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

/**
 * Hands an upgrade request that is not the channel's to the server's own handler (the routes, with
 * their authentication), answering on its socket without keep-alive. Its body is what came with the
 * head; a body still on its way is not read (the HTTP parser let go of the socket with the upgrade).
 */
function answerAsUsual(server: Server, request: IncomingMessage, socket: Duplex, head: Buffer): void {
  // Node's own request timeouts watch only sockets its parser holds: without one, a client that never
  // sends the rest of a body would hold this socket for ever.
  (socket as Socket).setTimeout(PLAIN_REQUEST_TIMEOUT_MS, () => socket.destroy());
  const response = new ServerResponse(request);
  response.shouldKeepAlive = false;
  response.assignSocket(socket as Socket);
  response.once('finish', () => {
    response.detachSocket(socket as Socket);
    socket.end(() => socket.destroy());
  });
  if (head.length > 0) request.unshift(head);
  server.emit('request', request, response);
}

const STOPPING: ShardCallAnswer = { ok: false, failure: 'unavailable', reason: 'the node is stopping' };

/** One caller's socket: its calls run concurrently, and their answers go back as they come. */
class ServedChannel {
  private readonly reader = new FrameReader();
  private inFlight = 0;
  /** The answers of one turn of the event loop in one write: those that came from the worker in that turn. */
  private readonly outgoing: TurnBatch<Buffer>;
  private drained: (() => void) | null = null;
  /** Calls that wait for something to happen (a long poll of events): answered `unavailable` at once when the node stops, not waited for. */
  private readonly waiting = new Set<number>();

  constructor(
    private readonly socket: Duplex,
    private readonly host: ShardCallHost,
    private readonly stopping: () => boolean,
  ) {
    this.outgoing = turnWriter(socket);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    // The HTTP server's sockets allow half-open: a caller that ends its side would otherwise leave this one open.
    socket.on('end', () => socket.end());
    // A reset by the caller: its calls still run (as an HTTP request whose client went away), their answers are dropped.
    socket.on('error', () => socket.destroy());
  }

  receive(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch {
      this.socket.destroy();
      return;
    }
    for (const frame of frames) void this.answer(frame);
  }

  /** Resolves when every call in flight is answered (or after `graceMs`, cutting the rest). */
  end(graceMs: number): Promise<void> {
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(cut);
        // The answers of this turn, the last ones, before the end.
        this.outgoing.flush();
        this.socket.end();
        // The caller ends its half when it reads ours; one that cannot (a paused or cut-off peer, whose
        // idle watch channel every node keeps: peer-watch.ts) would hold the server's close, and with it
        // the node's stop, for ever. Its socket is destroyed once the last answers had time to leave.
        const linger = setTimeout(() => this.socket.destroy(), HALF_OPEN_LINGER_MS);
        linger.unref();
        this.socket.once('close', () => clearTimeout(linger));
        resolve();
      };
      const cut = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, graceMs);
      cut.unref();
      // First the goodbye: the caller then knows this end is a stop, not a lost process (peer-watch.ts).
      this.outgoing.add(goodbyeFrame());
      // A long poll could hold the stop for its whole wait: its caller asks again elsewhere.
      for (const id of this.waiting) this.settle(id, 200, STOPPING);
      if (this.inFlight === 0) finish();
      else this.drained = finish;
    });
  }

  private async answer(frame: Frame): Promise<void> {
    this.inFlight += 1;
    const body = parseOrNull(frame.body);
    const waits = isLongPoll(body);
    if (waits) this.waiting.add(frame.id);
    let status = 200;
    let answer: ShardCallAnswer | null;
    try {
      answer = this.stopping() ? STOPPING : await answerShardCall(this.host, frame.tag, body);
    } catch (error) {
      answer = { ok: false, failure: 'error', reason: error instanceof Error ? error.message : String(error) };
    }
    if (answer === null) {
      status = 400;
      answer = { ok: false, failure: 'error', reason: NOT_AN_ENVELOPE };
    }
    // Answered already, when the stop began.
    if (waits && !this.waiting.has(frame.id)) return;
    this.settle(frame.id, status, answer);
  }

  private settle(id: number, status: number, answer: ShardCallAnswer): void {
    this.waiting.delete(id);
    this.outgoing.add(encodeFrame(id, status, JSON.stringify(answer)));
    this.inFlight -= 1;
    if (this.inFlight === 0 && this.drained) this.drained();
  }

}

/** A call envelope (not checked yet) whose call is a long poll of events. */
function isLongPoll(body: unknown): boolean {
  const call = (body as { call?: { op?: unknown; read?: ShardRead } } | null)?.call;
  return call?.op === 'read' && waitsForCommits(call.read);
}

function parseOrNull(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return null;
  }
}
