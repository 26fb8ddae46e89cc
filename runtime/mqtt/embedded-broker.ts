import { Aedes } from 'aedes';
import { createServer, type Socket } from 'node:net';
import type { Logger } from '../logger.js';

export interface EmbeddedBrokerOptions {
  readonly host?: string;
  /** 0 = any free port; the one actually bound is reported back. */
  readonly port: number;
  readonly logger?: Logger;
}

export interface EmbeddedBroker {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * An in-process MQTT 3.1.1 broker (aedes, in-memory), so that `npm start` works without installing
 * anything. It keeps retained messages, sessions of `clean: false` clients and last wills, but only
 * for the life of the process. aedes refuses MQTT 5 clients: connect with protocolVersion 4.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const host = options.host ?? '127.0.0.1';
  const log = options.logger?.child({ component: 'embedded-broker' });
  const broker = await Aedes.createBroker();
  if (log) broker.on('clientError', (client, error) => log.debug({ clientId: client.id, err: error }, 'mqtt client error'));
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('embedded broker: no TCP address');
  const port = address.port;
  log?.info({ host, port }, 'embedded mqtt broker listening');

  let closed: Promise<void> | undefined;
  return {
    url: `mqtt://${host}:${port}`,
    port,
    close: () =>
      (closed ??= (async () => {
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await new Promise<void>((resolve) => broker.close(() => resolve()));
        // Connections aedes did not get to (still in the CONNECT handshake) would keep the server open.
        for (const socket of sockets) socket.destroy();
        await serverClosed;
      })()),
  };
}
