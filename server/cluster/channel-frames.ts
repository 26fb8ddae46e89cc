import type { Duplex } from 'node:stream';
import { TurnBatch } from '../../runtime/kernel/turn-batch.js';

/**
 * The frames of a channel between two nodes (server/cluster/node-channel.ts): a 12-byte header (the
 * body's length, the call's id, and a tag: the shard for a call, the HTTP-like status for its answer,
 * all unsigned 32-bit big-endian) and the body, JSON as UTF-8. The ids match answers to calls, so
 * many calls share one socket and answers may come back in any order.
 */
export interface Frame {
  readonly id: number;
  readonly tag: number;
  readonly body: string;
}

const HEADER_BYTES = 12;

/** Idle time before the kernel's keep-alive probes start on a channel's socket (both ends): a peer whose host vanished is found in the end. */
export const CHANNEL_KEEPALIVE_MS = 10_000;
/**
 * Call ids start at 1: a frame with id 0 is the owner's goodbye, sent just before it ends the channel
 * because its node stops. A channel that ends without one lost its peer's process or the way to it
 * (server/cluster/peer-watch.ts). Older callers drop it, as any answer to no call.
 */
export const GOODBYE_ID = 0;
export const goodbyeFrame = (): Buffer => encodeFrame(GOODBYE_ID, 0, '');

/** Far above any shard call or answer (a page of vehicles is well under a megabyte): a larger length means a broken stream. */
export const MAX_FRAME_BODY_BYTES = 64 * 1024 * 1024;

export function encodeFrame(id: number, tag: number, body: string): Buffer {
  const length = Buffer.byteLength(body);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame.writeUInt32BE(length, 0);
  frame.writeUInt32BE(id, 4);
  frame.writeUInt32BE(tag, 8);
  frame.write(body, HEADER_BYTES, 'utf8');
  return frame;
}

/** A body past MAX_FRAME_BODY_BYTES: the stream is not a channel's (or is corrupt), and is dropped. */
export class FrameTooLarge extends Error {
  constructor(readonly length: number) {
    super(`a channel frame of ${length} bytes is past the limit of ${MAX_FRAME_BODY_BYTES}`);
    this.name = 'FrameTooLarge';
  }
}

/**
 * The frames of one turn of the event loop go to `socket` in one write, after the turn's I/O callbacks
 * (runtime/kernel/turn-batch.ts, as the shard boundary batches its messages): under load many calls,
 * or many answers from the worker, come in one turn. setImmediate rather than nextTick measured 483 →
 * 519 confirmed/s through 3 nodes.
 */
export function turnWriter(socket: Duplex): TurnBatch<Buffer> {
  return new TurnBatch<Buffer>((frames) => {
    if (socket.destroyed) return;
    socket.cork();
    for (const frame of frames) socket.write(frame);
    socket.uncork();
  });
}

/** Cuts a byte stream into frames, whatever the chunks' boundaries. */
export class FrameReader {
  private buffered: Buffer = Buffer.alloc(0);

  /** The frames `chunk` completes, in order; throws FrameTooLarge on a length past the limit. */
  push(chunk: Buffer): Frame[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const frames: Frame[] = [];
    let offset = 0;
    while (this.buffered.length - offset >= HEADER_BYTES) {
      const length = this.buffered.readUInt32BE(offset);
      if (length > MAX_FRAME_BODY_BYTES) throw new FrameTooLarge(length);
      const end = offset + HEADER_BYTES + length;
      if (this.buffered.length < end) break;
      frames.push({
        id: this.buffered.readUInt32BE(offset + 4),
        tag: this.buffered.readUInt32BE(offset + 8),
        body: this.buffered.toString('utf8', offset + HEADER_BYTES, end),
      });
      offset = end;
    }
    this.buffered = offset === this.buffered.length ? Buffer.alloc(0) : this.buffered.subarray(offset);
    return frames;
  }
}
