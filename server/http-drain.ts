import type { FastifyInstance } from 'fastify';
import type { Logger } from '../runtime/ground/logger.js';

/**
 * A graceful, bounded stop of HTTP. fastify's close() stops accepting and lets the requests in flight
 * finish, but Node closes only the keep-alive connections that are idle at that moment: one whose
 * request finishes later stays open until its keep-alive timeout (72 s in fastify) and holds close()
 * that long. So every response sent while closing says `Connection: close`, and whatever is still
 * open after `graceMs` is cut, so that a stuck request cannot stop the journals from being flushed.
 * Returns the closer that replaces `app.close()`; call before the app is ready (it adds hooks).
 */
export function drainOnClose(app: FastifyInstance, graceMs: number, logger: Logger): () => Promise<void> {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });
  return async () => {
    const cut = setTimeout(() => {
      logger.warn({ graceMs }, 'requests still in flight after the shutdown grace period: closing their connections');
      app.server.closeAllConnections();
    }, graceMs);
    try {
      await app.close();
    } finally {
      clearTimeout(cut);
    }
  };
}
