import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DataFolderInUseError, holderFileOf, lockDataFolder, lockFileOf, readHolder, type DataFolderLock } from '../../persistence/data-folder-lock.js';
import { tempDbFile, type TempDbFile } from '../helpers/temp-db.js';

const MODULE = join(dirname(fileURLToPath(import.meta.url)), '../../persistence/data-folder-lock.ts');

let temp: TempDbFile;
const locks: DataFolderLock[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const lock of locks.splice(0)) lock.release();
  temp?.cleanup();
});

/** Takes the lock and keeps it for the test's cleanup. */
function take(fleetDb: string): DataFolderLock {
  const lock = lockDataFolder(fleetDb);
  if (!lock) throw new Error('no lock for ' + fleetDb);
  locks.push(lock);
  return lock;
}

function refusal(fleetDb: string): DataFolderInUseError {
  try {
    lockDataFolder(fleetDb)?.release();
  } catch (error) {
    if (error instanceof DataFolderInUseError) return error;
    throw error;
  }
  throw new Error('the lock was taken');
}

/** Another process holding the lock of `fleetDb` (announcing `url`), once it says so. */
async function holderProcess(fleetDb: string, url: string): Promise<ChildProcess> {
  const code = `const { lockDataFolder } = await import(${JSON.stringify(MODULE)}); lockDataFolder(${JSON.stringify(fleetDb)}).announce(${JSON.stringify(url)}); console.log('held'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (exitCode) => reject(new Error(`the holder exited with ${exitCode}: ${stderr}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => line === 'held' && resolve());
  });
  return child;
}

const killed = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });

describe('the data folder lock', () => {
  it('takes the lock of a new FLEET_DB: creates its folder, the lock file and the holder file, and no data file', () => {
    temp = tempDbFile();
    const fleetDb = join(dirname(temp.file), 'nested', 'fleet.db');
    const lock = take(fleetDb);
    expect(lock.lockFile).toBe(`${fleetDb}.lock`);
    expect(readdirSync(dirname(fleetDb)).sort()).toEqual(['fleet.db.lock', 'fleet.db.lock.json']);
    expect(readHolder(fleetDb)).toMatchObject({ pid: process.pid, url: null });
    lock.announce('http://127.0.0.1:3000');
    expect(readHolder(fleetDb)).toMatchObject({ pid: process.pid, url: 'http://127.0.0.1:3000' });
  });

  it('refuses a second lock on the same FLEET_DB, in this process too, naming the holder and the way out', () => {
    temp = tempDbFile();
    take(temp.file).announce('http://127.0.0.1:3000');
    const error = refusal(temp.file);
    expect(error.message).toBe(`FLEET_DB ${temp.file} is in use by another fleetactors server (pid ${process.pid}, http://127.0.0.1:3000): stop it, or give this server another FLEET_DB.`);
    expect(error.holder).toMatchObject({ pid: process.pid });
    // Still held by the first.
    expect(() => lockDataFolder(temp.file)).toThrow(DataFolderInUseError);
  });

  it('refuses while another live process holds it, naming that pid; takes it once that process is killed with SIGKILL', async () => {
    temp = tempDbFile();
    const holder = await holderProcess(temp.file, 'http://127.0.0.1:4000');
    expect(refusal(temp.file).message).toContain(`(pid ${holder.pid}, http://127.0.0.1:4000)`);

    await killed(holder);
    // The killed holder's file is still there (nobody removed it); the lock is not.
    expect(readHolder(temp.file)).toMatchObject({ pid: holder.pid });
    take(temp.file);
    expect(readHolder(temp.file)).toMatchObject({ pid: process.pid, url: null });
  }, 30_000);

  it('a holder file left behind, naming a pid that is no process anymore, blocks nothing', () => {
    temp = tempDbFile();
    writeFileSync(holderFileOf(temp.file), JSON.stringify({ pid: 2 ** 22 + 1, url: 'http://127.0.0.1:3000', host: 'elsewhere', startedAt: '2020-01-01T00:00:00.000Z' }));
    take(temp.file);
    expect(readHolder(temp.file)).toMatchObject({ pid: process.pid, url: null });
  });

  it('release removes the holder file and frees the lock; releasing twice is harmless; the lock file stays', () => {
    temp = tempDbFile();
    const lock = lockDataFolder(temp.file)!;
    lock.release();
    lock.release();
    lock.announce('http://127.0.0.1:3000');
    expect(existsSync(holderFileOf(temp.file))).toBe(false);
    expect(existsSync(lockFileOf(temp.file))).toBe(true);
    take(temp.file);
    expect(readHolder(temp.file)).toMatchObject({ pid: process.pid });
  });

  it('says so when the holder has not written who it is (yet)', () => {
    temp = tempDbFile();
    const lock = take(temp.file);
    // As between taking the lock and writing the holder file.
    writeFileSync(lock.holderFile, 'not json');
    expect(refusal(temp.file).message).toBe(`FLEET_DB ${temp.file} is in use by another fleetactors server (pid unknown): stop it, or give this server another FLEET_DB.`);
  });

  it('another FLEET_DB in the same folder is another lock; :memory: has none', () => {
    temp = tempDbFile();
    take(temp.file);
    take(join(dirname(temp.file), 'other.db'));
    expect(lockDataFolder(':memory:')).toBeNull();
    expect(JSON.parse(readFileSync(holderFileOf(temp.file), 'utf8'))).toMatchObject({ pid: process.pid });
  });
});
