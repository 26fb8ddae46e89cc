import { writeFileSync } from 'node:fs';
import { exitBadArgument, parseCommandLine } from '../../../runtime/ground/command-line.js';
import { renderReport } from './report.js';
import { DEFAULT_OPTIONS, runChaos } from './run.js';

/** `npm run chaos -- [--kills N] [--seconds S] [--report FILE] [--shards 2|3] [--seed N]` (docs/chaos.md). */
const USAGE = 'usage: npm run chaos -- [--kills N] [--seconds S] [--report FILE] [--shards 2|3] [--seed N]';

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) {
    exitBadArgument('chaos', `--${name} must be a positive whole number (got ${JSON.stringify(value)})`);
  }
  return number;
}

const { values } = parseCommandLine('chaos', USAGE, {
  options: {
    kills: { type: 'string' },
    seconds: { type: 'string' },
    report: { type: 'string' },
    shards: { type: 'string' },
    seed: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
const shards = positive('shards', values.shards, DEFAULT_OPTIONS.shards);
if (shards < 2 || shards > 3) {
  exitBadArgument('chaos', `--shards must be 2 or 3 (got ${shards})`);
}

const report = await runChaos({
  ...DEFAULT_OPTIONS,
  kills: positive('kills', values.kills, DEFAULT_OPTIONS.kills),
  seconds: positive('seconds', values.seconds, DEFAULT_OPTIONS.seconds),
  shards,
  seed: positive('seed', values.seed, DEFAULT_OPTIONS.seed),
  log: (line) => console.log(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`),
});
console.log(renderReport(report));
const json = JSON.stringify(report, null, 2);
if (values.report) {
  writeFileSync(values.report, `${json}\n`);
  console.log(`report: ${values.report}`);
} else {
  console.log(json);
}
process.exit(report.ok ? 0 : 1);
