import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A command as `npm run <name>` starts it (tsx for TypeScript, plain node for .mjs). */
function run(script: string, args: readonly string[]): Promise<Run> {
  const nodeArgs = script.endsWith('.mjs') ? [join(ROOT, script), ...args] : ['--import', 'tsx', join(ROOT, script), ...args];
  // Private homes: a command that wrongly went on would not touch a developer's brokers.
  const home = mkdtempSync(join(tmpdir(), 'cli-usage-'));
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', KAFKA_HOME: home, MOSQUITTO_HOME: home, CLUSTER_HOME: home, FLEET_DB: join(home, 'fleet.db') };
  return new Promise((resolve) => {
    execFile(process.execPath, nodeArgs, { cwd: ROOT, env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** name, script (as package.json runs it), a bad argument, and how the one line names it. */
const COMMANDS: ReadonlyArray<readonly [string, string, readonly string[], RegExp]> = [
  ['bench', 'bench/run.ts', ['--bogus'], /--bogus/],
  ['bench', 'bench/run.ts', ['--only', 'nope'], /"nope"/],
  ['chaos', 'test/chaos/harness/cli.ts', ['--bogus'], /--bogus/],
  ['chaos', 'test/chaos/harness/cli.ts', ['--shards', '7'], /--shards/],
  ['sim', 'scripts/sim.ts', ['--bogus'], /--bogus/],
  ['sim', 'scripts/sim.ts', ['--rate', 'fast'], /--rate .*"fast"/],
  ['trace', 'scripts/trace.ts', ['--bogus'], /--bogus/],
  ['trace', 'scripts/trace.ts', [], /id is missing/],
  ['replay', 'scripts/replay.ts', ['--bogus'], /--bogus/],
  ['replay', 'scripts/replay.ts', ['lorry', 'x'], /"lorry"/],
  ['token', 'scripts/token.ts', ['--bogus'], /--bogus/],
  ['token', 'scripts/token.ts', ['--sub', 'alice', '--role', 'admin'], /--role .*"admin"/],
  ['demo', 'scripts/demo.ts', ['--bogus'], /--bogus/],
  ['kafka', 'scripts/kafka.mjs', ['--bogus'], /"--bogus"/],
  ['kafka', 'scripts/kafka.mjs', ['start', '--bogus'], /"--bogus"/],
  ['cluster', 'scripts/cluster.ts', ['--bogus'], /--bogus/],
  ['cluster', 'scripts/cluster.ts', ['restart'], /"restart"/],
  ['mosquitto', 'scripts/mosquitto.mjs', ['restart'], /"restart"/],
  ['mosquitto', 'scripts/mosquitto.mjs', ['start', '--bogus'], /"--bogus"/],
];

describe('every command answers --help with its usage and a bad argument with one line naming it', () => {
  const scripts = [...new Map(COMMANDS.map(([name, script]) => [name, script])).entries()];

  it.each(scripts)('npm run %s -- --help: the usage on stdout, exit 0', async (name, script) => {
    const result = await run(script, ['--help']);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^usage:\\s+npm run (-s )?${name}\\b`));
  }, 60_000);

  it.each(COMMANDS)('npm run %s (%s) given %j: exit 2 and one line naming it, no stack', async (name, script, args, naming) => {
    const result = await run(script, args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^${name}: `));
    expect(lines[0]).toMatch(naming);
    expect(lines[0]).toContain(`npm run ${name} -- --help`);
  }, 60_000);
});

it('every npm script that is a command is covered here', async () => {
  const { readFileSync } = await import('node:fs');
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const commands = Object.keys(scripts).filter((name) => !['build', 'prestart', 'start', 'dev', 'lint', 'typecheck', 'test', 'test:unit', 'lint:imports'].includes(name));
  expect(commands.sort()).toEqual([...new Set(COMMANDS.map(([name]) => name))].sort());
});
