import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { holderFileOf } from '../../persistence/data-folder-lock.js';
import { freePort } from '../helpers/free-port.js';
import { runServerToExit, startServer, type ServerProcess } from '../helpers/server-process.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';

// Issue 20: two servers on one FLEET_DB both took bookings for the same vehicle. Now the second is
// refused before it opens a data file, and a killed first one does not block the next start.

let servers: ServerProcess[] = [];
let temp: TempDbFile | undefined;
afterEach(async () => {
  await Promise.all(servers.map((server) => server.kill()));
  servers = [];
  temp?.cleanup();
  temp = undefined;
});

async function started(env: Record<string, string>): Promise<ServerProcess> {
  const server = await startServer(env);
  servers.push(server);
  return server;
}

const holderOf = (fleetDb: string) => JSON.parse(readFileSync(holderFileOf(fleetDb), 'utf8')) as { pid: number; url: string | null };

describe('one server per FLEET_DB', () => {
  it('a second server on the same FLEET_DB exits 2 with one line naming the first (pid, URL) and the way out; the first still serves', async () => {
    temp = tempDbFile();
    // `npm start` twice with the same environment: the same data and the same MQTT port. The data is
    // refused first, so the message is about it and not about the port.
    const env = { FLEET_DB: temp.file, MQTT_PORT: String(await freePort()) };
    const first = await started(env);
    const filesBefore = readdirSync(dirname(temp.file)).sort();

    const second = await runServerToExit(env);

    expect(second.code).toBe(2);
    expect(second.stderr).toBe(
      `FLEET_DB ${temp.file} is in use by another fleetactors server (pid ${first.child.pid}, ${first.url}): stop it, or give this server another FLEET_DB.\n`,
    );
    expect(second.stdout).not.toMatch(/^\s+at /m);
    // What the issue did next, following the MQTT port's message: MQTT_PORT=0. Refused the same way.
    const third = await runServerToExit({ ...env, MQTT_PORT: '0' });
    expect(third.code).toBe(2);
    expect(third.stderr).toBe(second.stderr);
    // The refused server created no file beside the data (no registry, no shard file, no -wal).
    expect(readdirSync(dirname(temp.file)).sort()).toEqual(filesBefore);
    const health = await fetch(`${first.url}/health`);
    expect(health.status).toBe(200);
    expect(holderOf(temp.file)).toMatchObject({ pid: first.child.pid, url: first.url });
  }, 90_000);

  it('after kill -9 of the first, a new server on the same FLEET_DB starts; a graceful stop removes the holder file', async () => {
    temp = tempDbFile();
    const env = { FLEET_DB: temp.file };
    const first = await started(env);
    await first.kill();
    // What the killed server wrote about itself is still there: it names a dead process and blocks nothing.
    expect(holderOf(temp.file)).toMatchObject({ pid: first.child.pid });

    const next = await started(env);
    expect((await fetch(`${next.url}/health`)).status).toBe(200);
    expect(holderOf(temp.file)).toMatchObject({ pid: next.child.pid, url: next.url });

    next.child.kill('SIGTERM');
    expect(await next.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(holderFileOf(temp.file))).toBe(false);
    // And the folder is free again for whoever comes next.
    const after = await started(env);
    expect((await fetch(`${after.url}/health`)).status).toBe(200);
  }, 120_000);
});
