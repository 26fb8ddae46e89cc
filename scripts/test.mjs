#!/usr/bin/env node
// `npm test`: lint, typecheck, then every vitest test (unit, integration, end-to-end) with the
// brokers they need started here. Ends with one plain line `N passed, N failed` for CI's counter.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => join(root, 'node_modules', '.bin', name);
const run = (cmd, args, env = {}) =>
  spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } }).status ?? 1;

let passed = 0;
let failed = 0;
const check = (name, ok) => {
  if (ok) passed += 1;
  else {
    failed += 1;
    console.error(`✗ ${name} failed`);
  }
};

check('lint', run(bin('eslint'), ['.', '--max-warnings=0']) === 0);
// The house rule (.dependency-cruiser.cjs): no import climbs a floor, no cycle, nact only in the kernel.
check('import rule', run('npm', ['run', '--silent', 'lint:imports']) === 0);
check('typecheck', run(bin('tsc'), ['-p', 'tsconfig.json', '--noEmit']) === 0);

// A real Apache Kafka for the Kafka tests, on its own port and data folder so that a developer's
// `npm run kafka -- start` is never disturbed. Not starting it fails those tests loudly, never skips them.
const kafkaEnv = {};
const kafkaScript = join(root, 'scripts', 'kafka.mjs');
let kafkaStarted = false;
if (existsSync(kafkaScript) && process.env.FLEET_TEST_KAFKA !== 'off') {
  const kafkaPort = process.env.KAFKA_TEST_PORT ?? '19192';
  const kafkaHome = process.env.KAFKA_TEST_HOME ?? join(root, '.kafka', 'test');
  const env = { KAFKA_PORT: kafkaPort, KAFKA_HOME: kafkaHome };
  kafkaStarted = run('node', [kafkaScript, 'start', '--fresh'], env) === 0;
  if (kafkaStarted) kafkaEnv.KAFKA_TEST_BROKERS = `127.0.0.1:${kafkaPort}`;
  else console.error('✗ could not start the test Kafka broker: Kafka tests will fail');
  const stopKafka = () => {
    if (kafkaStarted) spawnSync('node', [kafkaScript, 'stop'], { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
    kafkaStarted = false;
  };
  process.on('exit', stopKafka);
  // Ctrl-C or a CI cancel: the broker is a detached JVM and would outlive us.
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      stopKafka();
      process.exit(130);
    });
  }
}

const report = join(mkdtempSync(join(tmpdir(), 'fleet-vitest-')), 'report.json');
const vitestStatus = run(bin('vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)], kafkaEnv);
let skipped = 0;
if (existsSync(report)) {
  const result = JSON.parse(readFileSync(report, 'utf8'));
  passed += result.numPassedTests;
  failed += result.numFailedTests;
  skipped += result.numPendingTests + result.numTodoTests;
  // Files that failed to load count once each: their tests never ran.
  failed += result.testResults.filter((file) => file.status === 'failed' && file.assertionResults.length === 0).length;
} else {
  check('vitest report', false);
}
if (vitestStatus !== 0 && failed === 0) check('vitest exit status', false);

console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 ? 0 : 1);
