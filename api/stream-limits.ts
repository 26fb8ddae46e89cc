import type { FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { httpProblem, originOf, sendProblem } from './problems.js';

/**
 * Caps on open live streams (GET /events and /traces/:id/view/stream, docs/contract.md "Limits"). A
 * stream holds a socket and, for the viewer, a read of the trace every second, for as long as the
 * client likes: without a cap one token (or one shareable viewer link) opens hundreds. Counted per
 * token (a viewer link is a token) and per client address, in this process's memory: HTTP enters only
 * through the main thread.
 */
export interface StreamCaps {
  /** Open streams per token; 0: no cap. */
  readonly perToken: number;
  /** Open streams per client address; 0: no cap. */
  readonly perIp: number;
}

export type StreamAdmission =
  | { readonly ok: true; readonly release: () => void }
  | { readonly ok: false; readonly limit: number; readonly per: 'token' | 'address' };

export class StreamLimits {
  private readonly open = new Map<string, number>();

  constructor(private readonly caps: StreamCaps) {}

  /** Takes a place for a stream opened with `token` from `address`; `release` gives it back (once). */
  admit(token: string, address: string): StreamAdmission {
    // The token itself is not kept as a key: a digest is enough to count, and nothing to leak.
    const tokenKey = `t:${createHash('sha256').update(token).digest('base64url')}`;
    const addressKey = `a:${address}`;
    if (this.caps.perToken > 0 && (this.open.get(tokenKey) ?? 0) >= this.caps.perToken) return { ok: false, limit: this.caps.perToken, per: 'token' };
    if (this.caps.perIp > 0 && (this.open.get(addressKey) ?? 0) >= this.caps.perIp) return { ok: false, limit: this.caps.perIp, per: 'address' };
    this.add(tokenKey, 1);
    this.add(addressKey, 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.add(tokenKey, -1);
        this.add(addressKey, -1);
      },
    };
  }

  /** Streams open now (tests, metrics). */
  get size(): number {
    let total = 0;
    for (const [key, count] of this.open) if (key.startsWith('a:')) total += count;
    return total;
  }

  private add(key: string, delta: number): void {
    const next = (this.open.get(key) ?? 0) + delta;
    if (next <= 0) this.open.delete(key);
    else this.open.set(key, next);
  }
}

/** 429 too-many-streams (api/stream-limits.ts): the client closes one of its streams first. */
export function refuseStream(request: FastifyRequest, reply: FastifyReply, refused: { readonly limit: number; readonly per: 'token' | 'address' }): FastifyReply {
  request.log.info({ limit: refused.limit, per: refused.per }, 'stream refused: too many open');
  return sendProblem(
    reply,
    httpProblem('too-many-streams', `At most ${refused.limit} live streams may be open at once per ${refused.per}; close one first.`, originOf(request), { limit: refused.limit, per: refused.per }),
  );
}
