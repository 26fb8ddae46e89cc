#!/usr/bin/env node
// `npm run mosquitto -- start|stop|status`: a local Mosquitto 2.0 on 127.0.0.1 with the
// dynamic-security plugin, in the background, for MQTT_PROVISIONING=dynsec (docs/mqtt-security.md).
//
// Env: MOSQUITTO_PORT (18830: never 1883, the system broker's), MOSQUITTO_HOME (<repo>/.mosquitto).
// On the first start it generates the plugin's admin login and the server's login (`fleet-server`:
// the plugin's admin role plus publishing on fleet/#) into MOSQUITTO_HOME/credentials.json (mode 600),
// and prints the MQTT_URL / MQTT_USERNAME / MQTT_PASSWORD / MQTT_PROVISIONING to start the server with.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { userInfo } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const MOSQUITTO = '/usr/sbin/mosquitto';
const CTRL = '/usr/bin/mosquitto_ctrl';
const PLUGIN_CANDIDATES = ['/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so', '/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so', '/usr/lib/mosquitto_dynamic_security.so'];

class UsageError extends Error {}

function settings(env) {
  const port = Number(env.MOSQUITTO_PORT ?? '18830');
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`MOSQUITTO_PORT must be a port number (got ${JSON.stringify(env.MOSQUITTO_PORT)})`);
  if (port === 1883) throw new UsageError('MOSQUITTO_PORT 1883 belongs to the system broker: choose another');
  const home = resolve(env.MOSQUITTO_HOME ?? join(root, '.mosquitto'));
  return { port, home, config: join(home, 'mosquitto.conf'), dynsec: join(home, 'dynamic-security.json'), credentials: join(home, 'credentials.json'), pidFile: join(home, 'mosquitto.pid'), logFile: join(home, 'mosquitto.log') };
}

const accepts = (port) =>
  new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });

function runningPid(s) {
  if (!existsSync(s.pidFile)) return null;
  const pid = Number(readFileSync(s.pidFile, 'utf8').trim());
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

function ctrl(s, login, args) {
  const result = spawnSync(CTRL, ['-h', '127.0.0.1', '-p', String(s.port), '-u', login.username, '-P', login.password, 'dynsec', ...args], { encoding: 'utf8' });
  if (result.status !== 0 && !/already exists/i.test(result.stdout + result.stderr)) throw new Error(`mosquitto_ctrl dynsec ${args[0]} failed: ${result.stdout}${result.stderr}`);
}

async function start(s) {
  if (runningPid(s)) return printEnv(s, 'already running');
  const plugin = PLUGIN_CANDIDATES.find((candidate) => existsSync(candidate));
  if (!existsSync(MOSQUITTO) || !plugin) throw new Error('mosquitto 2.0 with its dynamic-security plugin is needed: apt-get install mosquitto mosquitto-clients');
  mkdirSync(s.home, { recursive: true, mode: 0o700 });
  const firstRun = !existsSync(s.credentials);
  if (firstRun) {
    const secrets = {
      admin: { username: 'admin', password: randomBytes(18).toString('base64url') },
      server: { username: 'fleet-server', password: randomBytes(18).toString('base64url') },
    };
    rmSync(s.dynsec, { force: true });
    const init = spawnSync(CTRL, ['dynsec', 'init', s.dynsec, secrets.admin.username, secrets.admin.password], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`mosquitto_ctrl dynsec init failed: ${init.stderr}`);
    writeFileSync(s.credentials, JSON.stringify({ ...secrets, serverProvisioned: false }, null, 2), { mode: 0o600 });
  }
  writeFileSync(
    s.config,
    [
      `listener ${s.port} 127.0.0.1`,
      'allow_anonymous false',
      `plugin ${plugin}`,
      `plugin_opt_config_file ${s.dynsec}`,
      // docs/contract.md: no legitimate packet comes near 64 KB.
      'max_packet_size 65536',
      // Commands and replies are small and wait for each other: Nagle's algorithm held each for the
      // peer's delayed ACK, up to 40 ms per hop (bench/RESULTS.md, issue 18, "Unlock").
      'set_tcp_nodelay true',
      `user ${userInfo().username}`,
      'persistence true',
      `persistence_location ${s.home}/`,
      `log_dest file ${s.logFile}`,
      '',
    ].join('\n'),
  );
  const log = openSync(s.logFile, 'a');
  const child = spawn(MOSQUITTO, ['-c', s.config], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  writeFileSync(s.pidFile, String(child.pid));
  child.unref();
  const deadline = Date.now() + 10_000;
  while (!(await accepts(s.port))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`mosquitto did not start on 127.0.0.1:${s.port}; see ${s.logFile}`);
    await sleep(50);
  }
  const secrets = JSON.parse(readFileSync(s.credentials, 'utf8'));
  if (!secrets.serverProvisioned) {
    // The server's login: the plugin's admin role (dynsec commands, read everything) plus sending on fleet/#.
    ctrl(s, secrets.admin, ['createRole', 'fleet-server']);
    ctrl(s, secrets.admin, ['addRoleACL', 'fleet-server', 'publishClientSend', 'fleet/#', 'allow']);
    ctrl(s, secrets.admin, ['createClient', secrets.server.username, '-p', secrets.server.password]);
    ctrl(s, secrets.admin, ['addClientRole', secrets.server.username, 'admin']);
    ctrl(s, secrets.admin, ['addClientRole', secrets.server.username, 'fleet-server']);
    writeFileSync(s.credentials, JSON.stringify({ ...secrets, serverProvisioned: true }, null, 2), { mode: 0o600 });
  }
  printEnv(s, 'started');
}

function printEnv(s, state) {
  const { server } = JSON.parse(readFileSync(s.credentials, 'utf8'));
  console.log(`mosquitto ${state} on 127.0.0.1:${s.port} (data in ${s.home}). Start the server with:`);
  console.log(`  MQTT_URL=mqtt://127.0.0.1:${s.port} MQTT_USERNAME=${server.username} MQTT_PASSWORD=${server.password} MQTT_PROVISIONING=dynsec`);
}

async function stop(s) {
  const pid = runningPid(s);
  if (!pid) return console.log('mosquitto is not running');
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (runningPid(s) && Date.now() < deadline) await sleep(50);
  rmSync(s.pidFile, { force: true });
  console.log('mosquitto stopped');
}

const USAGE = `usage: npm run mosquitto -- start|stop|status

  start     a Mosquitto for development in the background (needs the mosquitto binary)
  stop      stops it
  status    whether it runs, and the variables that point the server at it`;

async function main() {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) return console.log(USAGE);
  const command = args[0];
  if (command === undefined) throw new UsageError('start, stop or status is missing');
  if (!['start', 'stop', 'status'].includes(command)) throw new UsageError(`unknown command ${JSON.stringify(command)} (start, stop or status)`);
  if (args.length > 1) throw new UsageError(`unknown argument ${JSON.stringify(args[1])}`);
  const s = settings(process.env);
  if (command === 'start') return start(s);
  if (command === 'stop') return stop(s);
  if (command === 'status') {
    const pid = runningPid(s);
    if (pid) printEnv(s, `running (pid ${pid})`);
    else console.log('mosquitto is not running');
    return;
  }
}

main().catch((error) => {
  console.error(error instanceof UsageError ? `mosquitto: ${error.message}; npm run mosquitto -- --help shows the usage` : `mosquitto: ${error.message}`);
  process.exit(error instanceof UsageError ? 2 : 1);
});
