import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app.js';
import { loadConfig } from '../../server/config.js';
import { createLogger } from '../../runtime/ground/logger.js';
import { testDeps } from '../helpers/stub-fleet.js';
import { asOperator } from '../helpers/tokens.js';

describe('LOG_FORMAT', () => {
  it('is pretty with colours on a terminal and JSON lines otherwise', () => {
    expect(loadConfig({}, { stdoutIsTTY: true }).logFormat).toEqual({ pretty: true, colors: true });
    expect(loadConfig({}, { stdoutIsTTY: false }).logFormat).toEqual({ pretty: false, colors: false });
    expect(loadConfig({}).logFormat).toEqual({ pretty: false, colors: false });
  });

  it('can be forced either way; colours only ever on a terminal, and never with NO_COLOR', () => {
    expect(loadConfig({ LOG_FORMAT: 'json' }, { stdoutIsTTY: true }).logFormat).toEqual({ pretty: false, colors: false });
    expect(loadConfig({ LOG_FORMAT: 'pretty' }, { stdoutIsTTY: false }).logFormat).toEqual({ pretty: true, colors: false });
    expect(loadConfig({ NO_COLOR: '1' }, { stdoutIsTTY: true }).logFormat).toEqual({ pretty: true, colors: false });
    expect(() => loadConfig({ LOG_FORMAT: 'xml' })).toThrowError(/^Invalid configuration: LOG_FORMAT /);
  });

  it('pretty writes one readable line per entry to stdout (pino-pretty transport)', async () => {
    const script = [
      "import { createLogger } from './runtime/ground/logger.ts';",
      "const logger = createLogger('info', undefined, { pretty: true, colors: false });",
      "logger.child({ component: 'demo' }).info({ vehicleId: 'demo-0001', nested: { a: 1 } }, 'vehicle online');",
      "logger.warn('second');",
    ].join('\n');
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url).pathname });
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: vehicle online \{.*"component":"demo".*"vehicleId":"demo-0001".*\}$/);
    expect(lines[0]).not.toMatch(/"service"|"pid"|"hostname"/);
    expect(lines[1]).toMatch(/ WARN: second$/);
  });
});

describe('request logging', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  function appLoggingTo(lines: Array<Record<string, unknown>>, deps: Parameters<typeof testDeps>[0] = {}): FastifyInstance {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    return buildApp(testDeps({ ...deps, logger: createLogger('info', sink) }));
  }

  it('writes no line for /health and /metrics, which are polled', async () => {
    const lines: Array<Record<string, unknown>> = [];
    app = appLoggingTo(lines);
    expect((await app.inject({ url: '/health' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/metrics' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/health/' })).statusCode).toBe(200);
    expect(lines.filter((line) => line.req !== undefined || line.res !== undefined)).toEqual([]);
  });

  it('writes no line for the trace viewer page, whose URL carries a viewer link token', async () => {
    const lines: Array<Record<string, unknown>> = [];
    app = appLoggingTo(lines, { traces: { find: async () => undefined } });
    expect((await app.inject({ url: '/traces/bk_1/view?access=link-token-never-logged' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/traces/bk_1', headers: asOperator() })).statusCode).toBe(404);
    expect(lines.some((line) => line.route === '/traces/:id')).toBe(true);
    expect(JSON.stringify(lines)).not.toContain('link-token-never-logged');
  });

  it('logs every other request in one info line (method, route, status, duration to 0.1 ms), with its trace id', async () => {
    const lines: Array<Record<string, unknown>> = [];
    app = appLoggingTo(lines);
    expect((await app.inject({ url: '/vehicles/veh-1', headers: asOperator() })).statusCode).toBe(200);
    expect((await app.inject({ url: '/no-such-route' })).statusCode).toBe(404);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 30, method: 'GET', route: '/vehicles/:id', status: 200, traceId: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(lines[0]!.msg).toMatch(/^GET \/vehicles\/:id 200 \d+\.\d ms$/);
    expect(lines[1]).toMatchObject({ level: 30, method: 'GET', route: 'unmatched', status: 404 });
    for (const line of lines) expect(String(line.durationMs)).toMatch(/^\d+(\.\d)?$/);
    expect(lines.some((line) => line.responseTime !== undefined || line.msg === 'incoming request')).toBe(false);
  });

  it('keeps the incoming request at debug', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    app = buildApp(testDeps({ logger: createLogger('debug', sink) }));
    await app.inject({ url: '/vehicles/veh-1', headers: asOperator() });
    expect(lines.find((line) => line.msg === 'incoming request')).toMatchObject({ level: 20 });
  });
});
