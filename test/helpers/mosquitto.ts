import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../runtime/ground/logger.js';
import { MqttConnection } from '../../adapters/mqtt/connection.js';
import { DynsecClient } from '../../adapters/mqtt/dynsec-provisioner.js';
import { startEmbeddedBroker } from '../../adapters/mqtt/embedded-broker.js';
import { freePort } from './free-port.js';

const MOSQUITTO_BIN = '/usr/sbin/mosquitto';
const MOSQUITTO_CTRL_BIN = '/usr/bin/mosquitto_ctrl';
/** Debian's path for mosquitto 2.0's plugin (package mosquitto). */
export const DYNSEC_PLUGIN = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';

export interface MqttLogin {
  readonly username: string;
  readonly password: string;
}

export interface MosquittoOptions {
  /** Default: a free loopback port. Never 1883: the system broker lives there. */
  readonly port?: number;
  /** Keep sessions, subscriptions and retained messages across `restart()` (saved on a clean stop). */
  readonly persistence?: boolean;
  /** More `mosquitto.conf` lines, e.g. `max_queued_messages 5000`. */
  readonly extraConfig?: readonly string[];
  readonly startTimeoutMs?: number;
  /**
   * The dynamic-security plugin, anonymous clients refused, 64 KB packets: the production set-up.
   * `dynsec.server` is a login with the plugin's admin role plus publishing on `fleet/#` (what the
   * server needs for MQTT_PROVISIONING=dynsec). Without it, anonymous clients are allowed.
   */
  readonly dynsec?: boolean;
}

export interface MosquittoBroker {
  readonly url: string;
  readonly port: number;
  /** The broker's process id while it runs (the bench reads its CPU from /proc). */
  readonly pid: number | undefined;
  /** Clean stop (SIGTERM): clients see their socket close; with persistence the state is saved. */
  stop(): Promise<void>;
  /** `stop()` then start again on the same port, with the same config and persistence folder. */
  restart(): Promise<void>;
  /** SIGKILL: nothing saved since the last autosave survives. Start again with `restart()`. */
  kill(): Promise<void>;
  /** Stops the broker and removes its temp folder. Safe to call twice. */
  dispose(): Promise<void>;
  /** With `dynsec: true`: the plugin's admin, and the server's login (admin role + `fleet/#`). */
  readonly dynsec: { readonly admin: MqttLogin; readonly server: MqttLogin } | null;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** A private Mosquitto for one test file, on its own port and temp folder; waits until it accepts clients. */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoBroker> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'fleet-mosquitto-'));
  const configFile = join(dir, 'mosquitto.conf');
  const logFile = join(dir, 'mosquitto.log');
  writeFileSync(
    configFile,
    [
      `listener ${port} 127.0.0.1`,
      ...(options.dynsec
        ? ['allow_anonymous false', `plugin ${DYNSEC_PLUGIN}`, `plugin_opt_config_file ${join(dir, 'dynamic-security.json')}`, 'max_packet_size 65536']
        : ['allow_anonymous true']),
      // Run as whoever runs the tests: as root, mosquitto would otherwise switch to the `mosquitto`
      // user, which cannot write the temp folder.
      `user ${userInfo().username}`,
      `persistence ${options.persistence ? 'true' : 'false'}`,
      `persistence_location ${dir}/`,
      `log_dest file ${logFile}`,
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      ...(options.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  const admin: MqttLogin = { username: 'admin', password: randomBytes(12).toString('base64url') };
  if (options.dynsec) {
    const init = spawnSync(MOSQUITTO_CTRL_BIN, ['dynsec', 'init', join(dir, 'dynamic-security.json'), admin.username, admin.password], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`mosquitto_ctrl dynsec init failed: ${init.stderr}`);
  }
  installExitHook();

  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const started = spawn(MOSQUITTO_BIN, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    started.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    running.add(started);
    started.once('exit', () => running.delete(started));
    child = started;
    const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
    while (!(await accepts(port))) {
      if (started.exitCode !== null || Date.now() > deadline) {
        started.kill('SIGKILL');
        throw new Error(`mosquitto did not start on port ${port}: ${stderr.trim()} ${readLog(logFile)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const current = child;
    child = undefined;
    if (!current || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
    current.kill(signal);
    await exited;
  };

  await start();
  const url = `mqtt://127.0.0.1:${port}`;
  const server: MqttLogin = { username: 'fleet-server', password: randomBytes(12).toString('base64url') };
  if (options.dynsec) await createServerLogin(url, admin, server);
  let disposed = false;
  return {
    url,
    port,
    get pid() {
      return child?.pid;
    },
    dynsec: options.dynsec ? { admin, server } : null,
    stop: () => halt('SIGTERM'),
    kill: () => halt('SIGKILL'),
    restart: async () => {
      await halt('SIGTERM');
      await start();
    },
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      await halt('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The same set-up as scripts/mosquitto.mjs: a role that may publish on `fleet/#`, plus the plugin's admin role. */
async function createServerLogin(url: string, admin: MqttLogin, server: MqttLogin): Promise<void> {
  const connection = await MqttConnection.connect({ url, protocolVersion: 5, clientId: `setup-${randomBytes(4).toString('hex')}`, ...admin, logger: createLogger('silent') });
  try {
    await new DynsecClient(connection).run([
      { command: 'createRole', rolename: 'fleet-server', acls: [{ acltype: 'publishClientSend', topic: 'fleet/#', allow: true }] },
      {
        command: 'createClient',
        username: server.username,
        password: server.password,
        roles: [
          { rolename: 'admin', priority: 0 },
          { rolename: 'fleet-server', priority: 0 },
        ],
      },
    ]);
  } finally {
    await connection.close();
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-10).join('\n');
  } catch {
    return '';
  }
}

/** A test that dies half-way must not leave brokers behind. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export interface TestBroker {
  readonly url: string;
  close(): Promise<void>;
}

export interface TestBrokerKind {
  readonly name: string;
  /** aedes speaks MQTT 3.1.1 only; Mosquitto is tested with MQTT 5, what production uses against it. */
  readonly protocolVersion: 4 | 5;
  start(): Promise<TestBroker>;
}

/** The two brokers every MQTT test runs against (`describe.each(testBrokers)`). */
export const testBrokers: readonly TestBrokerKind[] = [
  {
    name: 'embedded aedes (MQTT 3.1.1)',
    protocolVersion: 4,
    start: async () => {
      const broker = await startEmbeddedBroker({ port: 0, security: 'open' });
      return { url: broker.url, close: () => broker.close() };
    },
  },
  {
    name: 'mosquitto (MQTT 5)',
    protocolVersion: 5,
    start: async () => {
      // Mosquitto's default queue per client (1000 messages) drops a burst's tail when the receiving
      // client falls behind on a loaded machine; tests that count every message need the room.
      const broker = await startMosquitto({ extraConfig: ['max_queued_messages 100000'] });
      return { url: broker.url, close: () => broker.dispose() };
    },
  },
];
