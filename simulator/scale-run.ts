/**
 * `npx tsx simulator/scale-run.ts [--vehicles 15000] [--duration-s 60] [--rate 20] [--storm-after-s S] [-- more sim options]`:
 * the scale run of issue 11 on one box, each part in its own process, as in production:
 * a private Mosquitto with its own config (never the one on 1883), the server (`FLEET_SEED` vehicles
 * demo-0001 …, MQTT 5 to that Mosquitto) and `npm run sim` with light devices logging in with the
 * demo credentials. Prints the sim's table (or its JSON with `--json`) and every process's RSS.
 *
 * Open files: every device is a socket in the simulator AND in Mosquitto, and each process may have
 * at most `ulimit -n` (20,000 here, not raisable). The run refuses a fleet that would not fit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
/** Sockets and files a process needs besides the devices' connections (logs, SQLite, HTTP, threads). */
const FILES_BESIDES_DEVICES = 300;

const { values, positionals } = parseArgs({
  options: {
    vehicles: { type: 'string', default: '15000' },
    'duration-s': { type: 'string', default: '60' },
    rate: { type: 'string', default: '20' },
    'mosquitto-port': { type: 'string', default: '18840' },
    'api-port': { type: 'string', default: '3390' },
    shards: { type: 'string', default: '2' },
    /** A reconnect storm: Mosquitto restarts this long after the simulator started, and every device comes back at --connect-rate. */
    'storm-after-s': { type: 'string' },
  },
  allowPositionals: true,
});
const vehicles = Number(values.vehicles);
const limit = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim());
if (Number.isFinite(limit) && vehicles + FILES_BESIDES_DEVICES > limit) {
  console.error(
    `scale-run: ${vehicles} devices need ${vehicles + FILES_BESIDES_DEVICES} open files in the simulator and in Mosquitto, and \`ulimit -n\` is ${limit}. ` +
      'One Mosquitto cannot hold more; beyond it, run several brokers (the server speaks to one) or raise the limit.',
  );
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'fleet-scale-'));
const children: ChildProcess[] = [];
const cleanUp = () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanUp);
process.on('SIGINT', () => process.exit(130));

const mosquittoPort = Number(values['mosquitto-port']);
const apiPort = Number(values['api-port']);
writeFileSync(
  join(dir, 'mosquitto.conf'),
  [
    `listener ${mosquittoPort} 127.0.0.1`,
    // The devices send their demo credentials; this broker does not check them (see docs/mqtt-security.md
    // for the checked set-ups). The scale run measures connections, not the password hash.
    'allow_anonymous true',
    `user ${userInfo().username}`,
    'persistence false',
    'max_connections -1',
    'max_queued_messages 1000',
    'set_tcp_nodelay true',
    `log_dest file ${join(dir, 'mosquitto.log')}`,
    'log_type error',
    'log_type warning',
    '',
  ].join('\n'),
);

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
const rssMb = (pid: number | undefined): number | null => {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Math.round(Number(match[1]) / 1024) : null;
  } catch {
    return null;
  }
};

const startMosquitto = async (): Promise<ChildProcess> => {
  const started = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  children.push(started);
  for (let tries = 0; !(await accepts(mosquittoPort)); tries += 1) {
    if (tries > 200 || started.exitCode !== null) throw new Error(`mosquitto did not start on ${mosquittoPort}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return started;
};
let mosquitto = await startMosquitto();

const server = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
  cwd: root,
  env: {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    PORT: String(apiPort),
    FLEET_DB: join(dir, 'fleet.db'),
    FLEET_SHARDS: values.shards,
    FLEET_SEED: String(vehicles),
    MQTT_URL: `mqtt://127.0.0.1:${mosquittoPort}`,
    MQTT_PROTOCOL_VERSION: '5',
    LOG_LEVEL: 'warn',
    // Every simulated customer comes from 127.0.0.1: one address's limit would throttle them all.
    RATE_LIMIT_PER_IP: '0',
  },
  stdio: ['ignore', 'ignore', 'inherit'],
});
children.push(server);
const serverStarted = Date.now();
for (;;) {
  const healthy = await fetch(`http://127.0.0.1:${apiPort}/health`).then((response) => response.ok, () => false);
  if (healthy) break;
  if (server.exitCode !== null || Date.now() - serverStarted > 180_000) throw new Error('the server did not become healthy');
  await new Promise((resolve) => setTimeout(resolve, 250));
}
console.error(`scale-run: mosquitto on ${mosquittoPort}, server on ${apiPort} with ${vehicles} seeded vehicles (${((Date.now() - serverStarted) / 1000).toFixed(1)} s to healthy)`);

const sim = spawn(
  process.execPath,
  [
    // As `npm run sim` does: a 4 MB young generation keeps the main thread's garbage from inflating its RSS.
    '--max-semi-space-size=4',
    '--import',
    'tsx',
    'scripts/sim.ts',
    '--api',
    `http://127.0.0.1:${apiPort}`,
    '--mqtt-url',
    `mqtt://127.0.0.1:${mosquittoPort}`,
    '--protocol',
    '5',
    '--no-register',
    '--id-prefix',
    'demo-',
    '--vehicles',
    String(vehicles),
    '--duration-s',
    values['duration-s'],
    '--rate',
    values.rate,
    ...positionals,
  ],
  { cwd: root, stdio: 'inherit', env: process.env },
);
children.push(sim);
let peak = { mosquitto: 0, server: 0, sim: 0 };
const sampler = setInterval(() => {
  peak = {
    mosquitto: Math.max(peak.mosquitto, rssMb(mosquitto.pid) ?? 0),
    server: Math.max(peak.server, rssMb(server.pid) ?? 0),
    sim: Math.max(peak.sim, rssMb(sim.pid) ?? 0),
  };
}, 1000);
if (values['storm-after-s']) {
  setTimeout(() => {
    void (async () => {
      const old = mosquitto;
      const exited = new Promise((resolve) => old.once('exit', resolve));
      old.kill('SIGTERM');
      await exited;
      console.error(`scale-run: mosquitto restarted (reconnect storm) at ${values['storm-after-s']} s`);
      mosquitto = await startMosquitto();
    })();
  }, Number(values['storm-after-s']) * 1000).unref();
}
const code = await new Promise<number>((resolve) => sim.once('exit', (exitCode) => resolve(exitCode ?? 1)));
clearInterval(sampler);
console.error(`scale-run: peak RSS mosquitto ${peak.mosquitto} MB, server ${peak.server} MB, simulator ${peak.sim} MB; sim exit code ${code}`);
server.kill('SIGTERM');
await new Promise((resolve) => server.once('exit', resolve));
process.exit(code);
