import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { signToken } from '../actors/contract/tokens.js';

/**
 * `npm run cluster` as a library (scripts/cluster.ts is its command line; test/e2e/cluster.test.ts
 * uses it directly): Kafka (scripts/kafka.mjs), Mosquitto with dynamic security
 * (scripts/mosquitto.mjs) and N nodes of one cluster (FLEET_CLUSTER=kafka), all under one folder,
 * CLUSTER_HOME. The folder names the cluster (its Kafka topics and MQTT sessions carry the name), so
 * two clusters on one machine never meet.
 */

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const KAFKA_SCRIPT = join(repoRoot, 'scripts', 'kafka.mjs');
const MOSQUITTO_SCRIPT = join(repoRoot, 'scripts', 'mosquitto.mjs');
const SERVER_MAIN = join(repoRoot, 'server', 'main.ts');
const run = promisify(execFile);

export const DEFAULTS = { nodes: 3, shards: 6, port: 4000 } as const;
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 45_000;

export class ClusterUsageError extends Error {
  override readonly name = 'ClusterUsageError';
}

export interface StartOptions {
  readonly home: string;
  readonly nodes?: number;
  readonly shards?: number;
  /** The first node's HTTP port; the others follow on consecutive ports. */
  readonly port?: number;
  /** More environment for every node (e.g. FLEET_SEED, the rate limits). */
  readonly env?: Readonly<Record<string, string>>;
  /** Where Kafka's jars are (shared so that a cluster does not fetch them again): default <repo>/.kafka/dev/lib. */
  readonly kafkaLib?: string;
  /** Progress lines (the command line prints them; --json and tests keep quiet). */
  readonly log?: (line: string) => void;
  /**
   * The server the nodes run: default server/main.ts through tsx; the bench gives the built
   * dist/server/main.js, as its single-process server runs, so that both compare like for like.
   */
  readonly serverMain?: string;
}

export interface ClusterNodeState {
  readonly id: string;
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly log: string;
}

/** CLUSTER_HOME/cluster.json: what `status` and `stop` find the cluster by. */
export interface ClusterState {
  readonly name: string;
  readonly home: string;
  readonly shards: number;
  readonly nodes: readonly ClusterNodeState[];
  /** host:port of the cluster's own broker. */
  readonly kafka: string;
  readonly kafkaPorts: { readonly port: number; readonly controllerPort: number; readonly lib: string };
  readonly mqtt: string;
  readonly mqttPort: number;
  /** FLEET_JWT_SECRET of every node (the file is mode 600): `status` mints an operator token with it. */
  readonly jwtSecret: string;
  /** The server entry the nodes run, when not server/main.ts (StartOptions.serverMain); a restarted node runs the same. */
  readonly serverMain?: string;
}

/** What `--json` prints (docs/contract.md, "Names fixed by the next issues"). */
export const summaryOf = (state: ClusterState) => ({
  nodes: state.nodes.map(({ id, url, pid }) => ({ id, url, pid })),
  kafka: state.kafka,
  mqtt: state.mqtt,
  home: state.home,
});

/** A Kafka- and MQTT-legal name, stable for one folder: `<folder>-<hash of its path>`. */
export function clusterName(home: string): string {
  const path = resolve(home);
  const label = basename(path).replace(/[^A-Za-z0-9-]/g, '-').replace(/^-+/, '').slice(0, 24) || 'cluster';
  return `${label}-${createHash('sha256').update(path).digest('hex').slice(0, 8)}`;
}

const stateFile = (home: string): string => join(resolve(home), 'cluster.json');

export function readState(home: string): ClusterState | null {
  const file = stateFile(home);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as ClusterState) : null;
}

export function isAlive(pid: number): boolean {
  // Never 0 or negative: kill() would then address a whole process group, or every process.
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.unref();
    server.once('error', () => done(false));
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
  });
}

/** A port the kernel just gave out (free a moment ago). */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.unref();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (address && typeof address === 'object' ? done(address.port) : fail(new Error('no TCP address'))));
    });
  });
}

/** `count` consecutive free ports from `first`: the nodes' HTTP ports. */
export async function checkConsecutivePorts(first: number, count: number): Promise<void> {
  for (let port = first; port < first + count; port += 1) {
    if (port > 65535 || !(await portIsFree(port))) throw new ClusterUsageError(`--port ${first}: 127.0.0.1:${port} is not free (the ${count} nodes take ${first}-${first + count - 1})`);
  }
}

/**
 * `count` consecutive free ports for the nodes' HTTP, from below Linux's ephemeral range
 * (32768-60999): a port free there a moment ago can be handed to an outgoing connection (Kafka's,
 * MQTT's, a load's) before its node listens (seen: "PORT=44684 is in use").
 */
export async function consecutiveFreePorts(count: number): Promise<number> {
  for (let attempt = 0; ; attempt += 1) {
    const first = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      await checkConsecutivePorts(first, count);
      return first;
    } catch (error) {
      if (attempt > 20) throw error;
    }
  }
}

/** Kafka's client and controller ports: two free ports, the controller's right after the client's when possible. */
async function kafkaPorts(): Promise<{ port: number; controllerPort: number }> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const port = await freePort();
    if (port < 65535 && (await portIsFree(port + 1))) return { port, controllerPort: port + 1 };
  }
  return { port: await freePort(), controllerPort: await freePort() };
}

/** Runs one of the project's broker scripts. `shown`: its stdout goes to ours (Kafka's first start fetches jars for minutes). */
async function script(file: string, args: readonly string[], env: Record<string, string>, shown = false): Promise<string> {
  if (shown) {
    const child = spawn(process.execPath, [file, ...args], { env: { ...process.env, ...env }, cwd: repoRoot, stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((done) => child.once('close', done));
    if (code !== 0) throw new Error(`${basename(file)} ${args.join(' ')} failed: ${stderr.trim() || `exit ${code}`}`);
    return '';
  }
  try {
    const { stdout } = await run(process.execPath, [file, ...args], { env: { ...process.env, ...env }, cwd: repoRoot });
    return stdout;
  } catch (error) {
    const { stderr, stdout } = error as { stderr?: string; stdout?: string };
    throw new Error(`${basename(file)} ${args.join(' ')} failed: ${(stderr || stdout || String(error)).trim()}`, { cause: error });
  }
}

const kafkaEnv = (home: string, ports: ClusterState['kafkaPorts']): Record<string, string> => ({
  KAFKA_PORT: String(ports.port),
  KAFKA_CONTROLLER_PORT: String(ports.controllerPort),
  KAFKA_HOME: join(home, 'kafka'),
  KAFKA_LIB: ports.lib,
});
const mosquittoEnv = (home: string, port: number): Record<string, string> => ({ MOSQUITTO_PORT: String(port), MOSQUITTO_HOME: join(home, 'mosquitto') });

function validate(options: StartOptions): { nodes: number; shards: number; port: number } {
  const nodes = options.nodes ?? DEFAULTS.nodes;
  const shards = options.shards ?? DEFAULTS.shards;
  const port = options.port ?? DEFAULTS.port;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16) throw new ClusterUsageError(`--nodes must be a whole number from 1 to 16 (got ${nodes})`);
  if (!Number.isInteger(shards) || shards < 1 || shards > 64) throw new ClusterUsageError(`--shards must be a whole number from 1 to 64 (got ${shards})`);
  if (!Number.isInteger(port) || port < 1024 || port > 65535) throw new ClusterUsageError(`--port must be a port number from 1024 to 65535 (got ${port})`);
  return { nodes, shards, port };
}

/**
 * Starts Kafka, Mosquitto and the nodes, and resolves once every shard is serving (GET /cluster on
 * each node). A cluster already running in `home` is refused; a failed start stops what it started.
 */
export async function startCluster(options: StartOptions): Promise<ClusterState> {
  const { nodes: nodeCount, shards, port } = validate(options);
  const home = resolve(options.home);
  const log = options.log ?? (() => {});
  const previous = readState(home);
  if (previous && previous.nodes.some((node) => isAlive(node.pid))) throw new ClusterUsageError(`a cluster is already running in ${home}: npm run cluster -- stop (with the same CLUSTER_HOME) first`);
  if (previous && previous.shards !== shards) throw new ClusterUsageError(`--shards ${shards}: the cluster in ${home} was created with ${previous.shards} shards (its count is fixed; remove the folder for a new cluster)`);
  await checkConsecutivePorts(port, nodeCount);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const name = clusterName(home);
  const jwtSecret = previous?.jwtSecret ?? randomBytes(32).toString('base64url');
  const kafka = { ...(await kafkaPorts()), lib: resolve(options.kafkaLib ?? join(repoRoot, '.kafka', 'dev', 'lib')) };
  const mqttPort = await freePort();
  const nodes = Array.from({ length: nodeCount }, (_, index) => ({ id: `n${index + 1}`, port: port + index, url: `http://127.0.0.1:${port + index}` }));
  const state: { -readonly [K in keyof ClusterState]: ClusterState[K] } = {
    name,
    home,
    shards,
    nodes: [],
    kafka: `127.0.0.1:${kafka.port}`,
    kafkaPorts: kafka,
    mqtt: `mqtt://127.0.0.1:${mqttPort}`,
    mqttPort,
    jwtSecret,
    ...(options.serverMain !== undefined && { serverMain: resolve(options.serverMain) }),
  };
  const save = (): void => writeFileSync(stateFile(home), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  save();
  try {
    log(`kafka: starting on ${state.kafka}`);
    await script(KAFKA_SCRIPT, ['start'], kafkaEnv(home, kafka), options.log !== undefined);
    log(`mosquitto: starting on ${state.mqtt} (dynamic security)`);
    await script(MOSQUITTO_SCRIPT, ['start'], mosquittoEnv(home, mqttPort));
    mkdirSync(join(home, 'logs'), { recursive: true });
    for (const node of nodes) {
      const pid = spawnNode(state, node, options.env);
      state.nodes = [...state.nodes, { ...node, pid, log: nodeLog(home, node.id) }];
      save();
      log(`node ${node.id}: ${node.url} (pid ${pid}, log ${nodeLog(home, node.id)})`);
    }
    await waitUntilServing(state, READY_TIMEOUT_MS);
    return state;
  } catch (error) {
    await stopCluster(home).catch(() => {});
    throw error;
  }
}

const nodeLog = (home: string, id: string): string => join(home, 'logs', `${id}.log`);

/** Starts one node process, detached, with the cluster's environment; its pid. */
function spawnNode(state: ClusterState, node: { readonly id: string; readonly port: number; readonly url: string }, env: Readonly<Record<string, string>> | undefined): number {
  const { home } = state;
  const credentials = JSON.parse(readFileSync(join(home, 'mosquitto', 'credentials.json'), 'utf8')) as { server: { username: string; password: string } };
  mkdirSync(join(home, node.id), { recursive: true });
  const out = openSync(nodeLog(home, node.id), 'a');
  const main = state.serverMain ?? SERVER_MAIN;
  const child = spawn(process.execPath, [...benchNodeArgs(), ...(main.endsWith('.ts') ? ['--import', 'tsx', main] : [main])], {
    cwd: repoRoot,
    detached: true,
    stdio: ['ignore', out, out],
    env: {
      ...process.env,
      LOG_FORMAT: 'json',
      ...env,
      HOST: '127.0.0.1',
      PORT: String(node.port),
      FLEET_DB: join(home, node.id, 'fleet.db'),
      FLEET_SHARDS: String(state.shards),
      FLEET_CLUSTER: 'kafka',
      FLEET_CLUSTER_NAME: state.name,
      FLEET_NODE_ID: node.id,
      FLEET_ADVERTISED_URL: node.url,
      FLEET_JWT_SECRET: state.jwtSecret,
      KAFKA_BROKERS: state.kafka,
      MQTT_URL: state.mqtt,
      MQTT_USERNAME: credentials.server.username,
      MQTT_PASSWORD: credentials.server.password,
      MQTT_PROVISIONING: 'dynsec',
    },
  });
  closeSync(out);
  child.unref();
  if (child.pid === undefined) throw new Error(`node ${node.id} could not be started`);
  return child.pid;
}

/** Stops one node of a running cluster (SIGTERM: it drains and flushes; SIGKILL after the grace). */
export async function stopNode(home: string, id: string): Promise<void> {
  const node = readState(home)?.nodes.find((each) => each.id === id);
  if (!node) throw new ClusterUsageError(`no node ${id} in ${home}`);
  if (!isAlive(node.pid)) return;
  process.kill(node.pid, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (isAlive(node.pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(node.pid)) process.kill(node.pid, 'SIGKILL');
}

/**
 * Starts one stopped node of a running cluster again (tests: a node back from a crash, or on an empty
 * data folder), with `env` as at start; resolves once every node shows every shard serving.
 */
export async function startNode(home: string, id: string, env?: Readonly<Record<string, string>>): Promise<ClusterState> {
  const state = readState(home);
  const node = state?.nodes.find((each) => each.id === id);
  if (!state || !node) throw new ClusterUsageError(`no node ${id} in ${home}`);
  if (isAlive(node.pid)) throw new ClusterUsageError(`node ${id} is running (pid ${node.pid})`);
  const pid = spawnNode(state, node, env);
  const next: ClusterState = { ...state, nodes: state.nodes.map((each) => (each.id === id ? { ...each, pid } : each)) };
  writeFileSync(stateFile(home), `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
  await waitUntilServing(next, READY_TIMEOUT_MS);
  return next;
}

/** An operator token for the cluster's own GET /cluster. */
export const operatorToken = (state: ClusterState): string => signToken({ sub: 'cluster-script', role: 'operator', ttlSeconds: 600 }, state.jwtSecret);

export interface ClusterShard {
  readonly shard: number;
  readonly owner: string | null;
  readonly epoch: number;
  readonly state: 'restoring' | 'serving' | 'fenced' | 'unowned';
  readonly offset: number | null;
}

/** GET /cluster of one node, or null when it does not answer. */
export async function clusterOf(state: ClusterState, url: string): Promise<{ shards: readonly ClusterShard[] } | null> {
  try {
    const response = await fetch(`${url}/cluster`, { headers: { authorization: `Bearer ${operatorToken(state)}` }, signal: AbortSignal.timeout(5000) });
    return response.ok ? ((await response.json()) as { shards: ClusterShard[] }) : null;
  } catch {
    return null;
  }
}

async function waitUntilServing(state: ClusterState, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = state.nodes.find((node) => !isAlive(node.pid));
    if (dead) throw new Error(`node ${dead.id} exited during start-up; last lines of ${dead.log}:\n${tail(dead.log)}`);
    const views = await Promise.all(state.nodes.map((node) => clusterOf(state, node.url)));
    if (views.every((view) => view !== null && view.shards.every((shard) => shard.state === 'serving')) && settled(state, views as ReadonlyArray<{ shards: readonly ClusterShard[] }>)) return;
    if (Date.now() > deadline) throw new Error(`not every shard was serving within ${timeoutMs} ms; see the logs in ${join(state.home, 'logs')}`);
    await sleep(250);
  }
}

/**
 * The group has placed the shards: every node sees the same owners, and (with at least as many shards
 * as nodes) every node runs one. Before that a node that just joined has not got its shards yet, and
 * the nodes that hold them are about to hand them over.
 */
function settled(state: ClusterState, views: ReadonlyArray<{ shards: readonly ClusterShard[] }>): boolean {
  const owners = views.map((view) => view.shards.map((shard) => shard.owner).join(','));
  if (owners.some((each) => each !== owners[0])) return false;
  if (state.shards < state.nodes.length) return true;
  const first = views[0]?.shards ?? [];
  return state.nodes.every((node) => first.some((shard) => shard.owner === node.id));
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Stops the nodes (SIGTERM: each drains and flushes), then Mosquitto and Kafka. Safe when nothing runs. */
export async function stopCluster(home: string, log: (line: string) => void = () => {}): Promise<boolean> {
  const state = readState(home);
  if (!state) return false;
  await Promise.all(
    state.nodes.map(async (node) => {
      if (!isAlive(node.pid)) return;
      process.kill(node.pid, 'SIGTERM');
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while (isAlive(node.pid) && Date.now() < deadline) await sleep(100);
      if (isAlive(node.pid)) process.kill(node.pid, 'SIGKILL');
      log(`node ${node.id}: stopped`);
    }),
  );
  await script(MOSQUITTO_SCRIPT, ['stop'], mosquittoEnv(state.home, state.mqttPort)).catch((error: unknown) => log(String(error)));
  log('mosquitto: stopped');
  await script(KAFKA_SCRIPT, ['stop'], kafkaEnv(state.home, state.kafkaPorts)).catch((error: unknown) => log(String(error)));
  log('kafka: stopped');
  // Keep the secret and the shard count for the next start in this folder: the data stays.
  writeFileSync(stateFile(home), `${JSON.stringify({ ...state, nodes: state.nodes.map((node) => ({ ...node, pid: -1 })) }, null, 2)}\n`, { mode: 0o600 });
  return true;
}

export interface NodeStatus {
  readonly id: string;
  readonly url: string;
  readonly pid: number;
  readonly running: boolean;
  /** Shards GET /cluster on this node shows serving, owned by this node. */
  readonly serving: readonly number[];
}

export async function clusterStatus(home: string): Promise<{ state: ClusterState; nodes: NodeStatus[] } | null> {
  const state = readState(home);
  if (!state) return null;
  const nodes = await Promise.all(
    state.nodes.map(async (node): Promise<NodeStatus> => {
      const running = node.pid > 0 && isAlive(node.pid);
      const view = running ? await clusterOf(state, node.url) : null;
      const serving = view?.shards.filter((shard) => shard.owner === node.id && shard.state === 'serving').map((shard) => shard.shard) ?? [];
      return { id: node.id, url: node.url, pid: node.pid, running, serving };
    }),
  );
  return { state, nodes };
}

/** Removes a stopped cluster's folder (tests). */
export function removeClusterHome(home: string): void {
  rmSync(resolve(home), { recursive: true, force: true });
}

/** BENCH_NODE_ARGS (as bench/server.ts reads it): e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile every node under the bench's load. */
function benchNodeArgs(): string[] {
  return (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
}
