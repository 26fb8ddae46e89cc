#!/usr/bin/env node
// `npm run kafka -- start|stop|status [--fresh]`: a local single-node Apache Kafka (KRaft, no
// ZooKeeper) on 127.0.0.1, in the background. Needs a JDK (17+) and Maven; the broker's jars come from
// Maven Central through kafka/pom.xml and are cached under KAFKA_HOME/lib.
//
// Env: KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (KAFKA_PORT + 1), KAFKA_HOME (<repo>/.kafka/dev),
// KAFKA_LIB (<KAFKA_HOME>/lib: lets several brokers share one download), KAFKA_START_TIMEOUT_MS (120000).
// `start` returns once a client can fetch cluster metadata; `--fresh` wipes the data first.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';

const root = fileURLToPath(new URL('..', import.meta.url));
const pom = join(root, 'kafka', 'pom.xml');

class UsageError extends Error {}

function settings(env) {
  const port = parsePort('KAFKA_PORT', env.KAFKA_PORT ?? '19092');
  const controllerPort = parsePort('KAFKA_CONTROLLER_PORT', env.KAFKA_CONTROLLER_PORT ?? String(port + 1));
  if (controllerPort === port) throw new UsageError('KAFKA_CONTROLLER_PORT must differ from KAFKA_PORT');
  const home = resolve(env.KAFKA_HOME ?? join(root, '.kafka', 'dev'));
  const startTimeoutMs = Number(env.KAFKA_START_TIMEOUT_MS ?? 120_000);
  return {
    port,
    controllerPort,
    home,
    lib: resolve(env.KAFKA_LIB ?? join(home, 'lib')),
    data: join(home, 'data'),
    config: join(home, 'server.properties'),
    pidFile: join(home, 'kafka.pid'),
    logFile: join(home, 'kafka.log'),
    startTimeoutMs,
  };
}

function parsePort(name, value) {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`${name} must be a port number (got ${JSON.stringify(value)})`);
  return port;
}

// ---------------------------------------------------------------- jars

/** The jars are fetched once per pom content: a version bump in kafka/pom.xml fetches again. */
function ensureJars(s) {
  const stamp = join(s.lib, '.pom-sha256');
  const wanted = createHash('sha256').update(readFileSync(pom)).digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === wanted) return;
  requireTool('mvn', ['-v'], 'Maven (mvn) is needed to fetch Kafka from Maven Central: apt-get install maven');
  console.log(`kafka: fetching the broker's jars from Maven Central into ${s.lib} (once; may take a few minutes)`);
  rmSync(s.lib, { recursive: true, force: true });
  mkdirSync(s.lib, { recursive: true });
  const result = spawnSync(
    'mvn',
    ['-q', '-B', '-Dstyle.color=never', '-f', pom, 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${s.lib}`],
    { stdio: 'inherit' },
  );
  if (result.status !== 0) throw new Error(`mvn dependency:copy-dependencies failed (exit ${result.status}); see its output above`);
  writeFileSync(stamp, `${wanted}\n`);
}

function requireTool(command, args, hint) {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  if (result.error || result.status !== 0) throw new Error(`${command} not found or not working. ${hint}`);
}

// ---------------------------------------------------------------- config and storage

function serverProperties(s) {
  // One node that is both controller and broker: every replication factor and min ISR is 1, and the
  // internal topics get one partition so that the first consumer group or transaction does not wait
  // for 50 partitions to be created.
  return `# Written by scripts/kafka.mjs on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${s.controllerPort}
listeners=PLAINTEXT://127.0.0.1:${s.port},CONTROLLER://127.0.0.1:${s.controllerPort}
advertised.listeners=PLAINTEXT://127.0.0.1:${s.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${s.data}
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
# Cluster mode's shard group may ask for a session shorter than the default minimum of 6 s (FLEET_GROUP_SESSION_TIMEOUT_MS).
group.min.session.timeout.ms=1000
log.retention.hours=168
`;
}

function formatStorageOnce(s) {
  if (existsSync(join(s.data, 'meta.properties'))) return;
  mkdirSync(s.data, { recursive: true });
  const clusterId = randomClusterId();
  runTool(s, ['kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', s.config]);
}

/**
 * What `kafka-storage.sh random-uuid` prints (Kafka's Uuid.randomUuid: 16 random bytes, base64url,
 * never starting with '-' so it cannot pass for a flag), without starting a JVM for it.
 */
function randomClusterId() {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function runTool(s, args) {
  const result = spawnSync('java', ['-Xmx256m', '-XX:TieredStopAtLevel=1', '-cp', `${s.lib}/*`, ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`java ${args.join(' ')} failed (exit ${result.status}):\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

// ---------------------------------------------------------------- process

function readPid(s) {
  if (!existsSync(s.pidFile)) return null;
  const pid = Number(readFileSync(s.pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** Our broker only: a pid file can outlive its process, and the pid can be reused by another program. */
function isOurBroker(s, pid) {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('kafka.Kafka') && cmdline.includes(s.config);
  } catch {
    try {
      process.kill(pid, 0);
      return true; // no /proc (macOS): trust the pid file
    } catch {
      return false;
    }
  }
}

function runningPid(s) {
  const pid = readPid(s);
  return pid !== null && isOurBroker(s, pid) ? pid : null;
}

function portOpen(port) {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

/** Ready = a client gets cluster metadata with our broker in it, not merely a TCP accept. */
async function acceptsClients(s) {
  const kafka = new kafkajs.Kafka({
    clientId: 'fleetactors-kafka-script',
    brokers: [`127.0.0.1:${s.port}`],
    logLevel: kafkajs.logLevel.NOTHING,
    connectionTimeout: 1000,
    requestTimeout: 2000,
    retry: { retries: 0 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0 && cluster.controller !== null;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

function logTail(s, lines = 40) {
  if (!existsSync(s.logFile)) return '(no log file)';
  return readFileSync(s.logFile, 'utf8').split('\n').slice(-lines).join('\n');
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- commands

async function start(s, { fresh }) {
  const existing = runningPid(s);
  if (existing !== null && fresh) await stop(s);
  else if (existing !== null) {
    await waitUntilReady(s, existing);
    console.log(`kafka: already running on 127.0.0.1:${s.port} (pid ${existing})`);
    return;
  }
  for (const port of [s.port, s.controllerPort]) {
    if (await portOpen(port)) throw new Error(`port ${port} is already in use by another program; set KAFKA_PORT / KAFKA_CONTROLLER_PORT`);
  }
  requireTool('java', ['-version'], 'A Java runtime (17+) is needed to run Kafka: apt-get install openjdk-17-jre-headless');
  mkdirSync(s.home, { recursive: true });
  ensureJars(s);
  if (fresh) rmSync(s.data, { recursive: true, force: true });
  writeFileSync(s.config, serverProperties(s));
  formatStorageOnce(s);

  const log = openSync(s.logFile, 'w');
  const child = spawn(
    'java',
    [
      // Small and quick to start: a dev/test broker, not a production one.
      '-Xmx512m',
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1',
      '-Djava.awt.headless=true',
      `-Dkafka.logs.dir=${s.home}`,
      '-Dorg.slf4j.simpleLogger.showDateTime=true',
      "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ",
      '-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients=warn',
      '-cp',
      `${s.lib}/*`,
      'kafka.Kafka',
      s.config,
    ],
    { detached: true, stdio: ['ignore', log, log], cwd: s.home },
  );
  closeSync(log);
  writeFileSync(s.pidFile, `${child.pid}\n`);
  child.unref();
  const started = Date.now();
  await waitUntilReady(s, child.pid);
  console.log(`kafka: running on 127.0.0.1:${s.port} (pid ${child.pid}, ready in ${((Date.now() - started) / 1000).toFixed(1)} s, home ${s.home})`);
}

async function waitUntilReady(s, pid) {
  const deadline = Date.now() + s.startTimeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) throw new Error(`the Kafka broker exited during start-up. Last lines of ${s.logFile}:\n${logTail(s)}`);
    if ((await portOpen(s.port)) && (await acceptsClients(s))) return;
    await sleep(250);
  }
  throw new Error(`the Kafka broker did not accept clients within ${s.startTimeoutMs} ms (pid ${pid} left running; \`stop\` ends it). Last lines of ${s.logFile}:\n${logTail(s)}`);
}

async function stop(s) {
  const pid = runningPid(s);
  if (pid === null) {
    rmSync(s.pidFile, { force: true });
    console.log('kafka: not running');
    return;
  }
  // SIGTERM = Kafka's clean shutdown (flushes logs, writes the clean-shutdown marker); a single node
  // has no one to hand leadership to, so it is quick. SIGKILL only if it hangs.
  process.kill(pid, 'SIGTERM');
  if (!(await waitFor(() => !isAlive(pid), 30_000))) {
    console.error(`kafka: pid ${pid} did not stop within 30 s; killing it`);
    process.kill(pid, 'SIGKILL');
    await waitFor(() => !isAlive(pid), 10_000);
  }
  if (!(await waitFor(async () => !(await portOpen(s.port)), 10_000))) throw new Error(`port ${s.port} is still open after the broker stopped`);
  rmSync(s.pidFile, { force: true });
  console.log(`kafka: stopped (pid ${pid})`);
}

async function waitFor(condition, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(100);
  }
  return condition();
}

async function status(s) {
  const pid = runningPid(s);
  if (pid === null) {
    console.log(`kafka: stopped (port ${s.port}, home ${s.home})`);
    return 3; // LSB "program is not running"
  }
  const ready = await acceptsClients(s);
  console.log(`kafka: running on 127.0.0.1:${s.port} (pid ${pid}${ready ? '' : ', not accepting clients yet'}, home ${s.home}, data ${dataSize(s.data)})`);
  return 0;
}

function dataSize(dir) {
  let bytes = 0;
  const walk = (path) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) walk(full);
      // Blocks, not size: Kafka preallocates 10 MB sparse index files per partition.
      else bytes += statSync(full).blocks * 512;
    }
  };
  if (existsSync(dir)) walk(dir);
  return bytes < 1024 * 1024 ? `${Math.ceil(bytes / 1024)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

const USAGE = `usage: npm run kafka -- start|stop|status [--fresh]

  start     a single-node Apache Kafka (KRaft) in the background on 127.0.0.1:$KAFKA_PORT (default 19092);
            the first start fetches its jars with Maven (Java 17+)
  stop      stops it
  status    whether it runs, and its data size
  --fresh   (with start) wipes its data first`;

async function main(argv) {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  const [command, ...flags] = argv;
  if (command === undefined) throw new UsageError('start, stop or status is missing');
  if (!['start', 'stop', 'status'].includes(command)) throw new UsageError(`unknown command ${JSON.stringify(command)} (start, stop or status)`);
  const unknown = flags.find((flag) => flag !== '--fresh' || command !== 'start');
  if (unknown !== undefined) throw new UsageError(`unknown argument ${JSON.stringify(unknown)}`);
  const s = settings(process.env);
  if (command === 'start') await start(s, { fresh: flags.includes('--fresh') });
  else if (command === 'stop') await stop(s);
  else return status(s);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    const message = error instanceof Error ? error.message : String(error);
    console.error(error instanceof UsageError ? `kafka: ${message}; npm run kafka -- --help shows the usage` : `kafka: ${message}`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
