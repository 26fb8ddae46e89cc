import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { createServer, type Socket } from 'node:net';
import type { Logger } from '../../runtime/ground/logger.js';
import { mayPublish, maySubscribe, type DeviceIdentity } from './device-auth.js';

/**
 * Who may connect and what they may do. `authenticate` is synchronous on purpose: a login is a local
 * lookup (persistence/credential-store.ts), never a message to an actor.
 */
export interface BrokerSecurity {
  /** The identity behind a CONNECT, or null to refuse it (CONNACK 5, not authorized). */
  authenticate(clientId: string, username: string | undefined, password: Buffer | undefined): DeviceIdentity | null;
  /** Larger packets close the connection as soon as their fixed header is read, before buffering them. */
  readonly maxPacketBytes: number;
}

export interface EmbeddedBrokerOptions {
  readonly host?: string;
  /** 0 = any free port; the one actually bound is reported back. */
  readonly port: number;
  readonly logger?: Logger;
  /**
   * `open`: anyone may connect and do anything, like a Mosquitto with `allow_anonymous true` and no
   * ACL. Only tests of the MQTT plumbing itself use it; the server always passes its BrokerSecurity.
   */
  readonly security: BrokerSecurity | 'open';
}

export interface EmbeddedBroker {
  readonly url: string;
  readonly port: number;
  /** Closes the open sessions of a vehicle (after a credential rotation); returns how many. */
  disconnectVehicle(vehicleId: string): number;
  close(): Promise<void>;
}

/** MQTT 3.1.1 CONNACK return code 5. */
const NOT_AUTHORIZED = 5;

/**
 * An in-process MQTT 3.1.1 broker (aedes, in-memory), so that `npm start` works without installing
 * anything. It keeps retained messages, sessions of `clean: false` clients and last wills, but only
 * for the life of the process. aedes refuses MQTT 5 clients: connect with protocolVersion 4.
 *
 * With a BrokerSecurity every client logs in and is held to adapters/mqtt/device-auth.ts: a refused
 * publish closes the offending connection (aedes has no silent drop), a refused subscription gets
 * SUBACK 0x80, and a vehicle is only ever forwarded its own commands.
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const host = options.host ?? '127.0.0.1';
  const log = options.logger?.child({ component: 'embedded-broker' });
  const security = options.security === 'open' ? null : options.security;
  const identities = new WeakMap<Client, DeviceIdentity>();
  /** The CONNECT's last will topic, seen in preConnect, checked with the login. */
  const willTopics = new WeakMap<Client, string>();
  const broker = await Aedes.createBroker(
    security
      ? {
          preConnect: (client, packet, callback) => {
            if (packet.will) willTopics.set(client, packet.will.topic);
            callback(null, true);
          },
          authenticate: (client, username, password, callback) => {
            const identity = security.authenticate(client.id, username, password);
            const will = willTopics.get(client);
            willTopics.delete(client);
            if (identity && (will === undefined || mayPublish(identity, will))) {
              identities.set(client, identity);
              callback(null, true);
              return;
            }
            log?.info({ clientId: client.id, username, will, reason: identity ? 'last will on a foreign topic' : 'bad login' }, 'mqtt connect refused');
            const error = new Error('not authorized') as AuthenticateError;
            error.returnCode = NOT_AUTHORIZED;
            callback(error, false);
          },
          authorizePublish: (client, packet, callback) => {
            const identity = client ? identities.get(client) : undefined;
            if (identity && mayPublish(identity, packet.topic)) return callback(null);
            log?.info({ clientId: client?.id, topic: packet.topic }, 'mqtt publish refused');
            callback(new Error(`not authorized to publish on ${packet.topic}`));
          },
          authorizeSubscribe: (client, subscription, callback) => {
            const identity = identities.get(client);
            if (identity && maySubscribe(identity, subscription.topic)) return callback(null, subscription);
            log?.info({ clientId: client.id, filter: subscription.topic }, 'mqtt subscription refused');
            callback(null, null);
          },
          authorizeForward: (client, packet) => {
            const identity = identities.get(client);
            if (identity?.kind === 'server') return packet;
            return identity && maySubscribe(identity, packet.topic) ? packet : null;
          },
        }
      : {},
  );
  if (log) broker.on('clientError', (client, error) => log.debug({ clientId: client.id, err: error }, 'mqtt client error'));
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    // Small messages that wait for answers: no Nagle delay (runtime/ground/mqtt-no-delay.ts).
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const client = broker.handle(socket);
    if (security) limitPacketSize(client, security.maxPacketBytes);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => {
      // The broker's timers would keep a process alive that is about to report this and exit.
      broker.close(() => reject(error));
    });
    server.listen(options.port, host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('embedded broker: no TCP address');
  const port = address.port;
  log?.info({ host, port, secured: security !== null }, 'embedded mqtt broker listening');

  let closed: Promise<void> | undefined;
  return {
    url: `mqtt://${host}:${port}`,
    port,
    disconnectVehicle: (vehicleId) => {
      // A vehicle's client id is its username (device-auth.ts), so its session is found by id.
      const client = (broker as unknown as { clients: Record<string, Client | undefined> }).clients[vehicleId];
      if (!client || identities.get(client)?.kind !== 'vehicle') return 0;
      client.close();
      return 1;
    },
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

interface PacketParser {
  packet: { length: number };
  _parseLength(): boolean;
  _emitError(error: Error): void;
}

/**
 * Neither aedes 1.2 nor mqtt-packet 9 has a maximum packet size: the parser buffers a PUBLISH of any
 * announced length (up to 256 MB) before it looks at it. This wraps the parser of one connection so
 * that a packet announcing more than `maxBytes` fails right after its fixed header, which closes the
 * connection. It reaches into aedes' client (`_parser`): checked here so an aedes upgrade that moves it
 * fails at the first connection, and test/integration/mqtt-security.test.ts sends a 1 MB publish.
 */
function limitPacketSize(client: Client, maxBytes: number): void {
  const parser = (client as unknown as { _parser?: PacketParser })._parser;
  if (!parser || typeof parser._parseLength !== 'function' || typeof parser._emitError !== 'function') {
    throw new Error('embedded broker: aedes client has no mqtt-packet parser to bound; check the aedes version');
  }
  const parseLength = parser._parseLength;
  parser._parseLength = function boundedParseLength(this: PacketParser): boolean {
    const done = parseLength.call(this);
    if (done && this.packet.length > maxBytes) {
      this._emitError(new Error(`packet of ${this.packet.length} bytes exceeds the ${maxBytes}-byte limit`));
      return false;
    }
    return done;
  };
}
