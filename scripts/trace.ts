import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { signToken } from '../api/auth.js';
import { serverEnvOrExit } from './server-env.js';
import { focusOnBooking, orderSteps, renderSequenceDiagram, renderStepDetail, type TraceStepView } from '../runtime/trace-diagram.js';

/**
 * `npm run trace -- <bookingIdOrTraceId> [--api URL] [--token T] [--step]`: a booking's (or one
 * request's) trace from a running server as a sequence diagram; `--step` walks it message by message.
 */
const USAGE = `usage: npm run trace -- <bookingIdOrTraceId> [--api URL] [--token T] [--step] [--all] [--json]

  --api URL     the running server (default http://$HOST:$PORT as npm start reads them: 127.0.0.1:3000)
  --token T     an operator bearer token (default: one signed with FLEET_JWT_SECRET or the dev secret)
  --step        one step at a time with payload and state before/after; Enter for the next, q to stop
                (without a terminal on stdin every step is printed)
  --all         for a booking id: also the steps of other bookings that share its traces (by default
                only the steps that concern this booking are shown)
  --json        print the raw trace as JSON instead (everything the server sent)`;

const stepSchema = z.looseObject({
  traceId: z.string(),
  spanId: z.string(),
  parentSpanId: z.string().nullable(),
  fromActor: z.string(),
  toActor: z.string(),
  messageType: z.string(),
  payload: z.unknown().optional(),
  stateBefore: z.unknown().optional(),
  stateAfter: z.unknown().optional(),
  outcome: z.unknown().optional(),
  startedAt: z.number(),
  durationUs: z.number(),
  id: z.number().optional(),
});
const traceSchema = z.object({ traceId: z.string(), steps: z.array(stepSchema) });

async function fetchTrace(api: string, id: string, token: string): Promise<{ traceId: string; steps: TraceStepView[] } | string> {
  const url = `${api.replace(/\/+$/, '')}/traces/${encodeURIComponent(id)}`;
  let response: Response;
  try {
    response = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
    return `cannot reach ${api}${cause}: is the server running (npm start)?`;
  }
  const text = await response.text();
  if (response.status === 404) return `no trace is known for ${id} at ${api}`;
  if (response.status === 401 || response.status === 403) {
    return `${api} refused the token (${response.status}): pass an operator token with --token, or set FLEET_JWT_SECRET to the server's secret`;
  }
  if (!response.ok) return `GET ${url} answered ${response.status}: ${text.slice(0, 300)}`;
  const parsed = traceSchema.safeParse(JSON.parse(text));
  if (!parsed.success) return `GET ${url} answered something that is not a trace: ${z.prettifyError(parsed.error)}`;
  return parsed.data;
}

async function stepThrough(steps: readonly TraceStepView[]): Promise<void> {
  const ordered = orderSteps(steps);
  const interactive = process.stdin.isTTY === true;
  const prompt = interactive ? createInterface({ input: process.stdin, output: process.stdout }) : null;
  try {
    for (const [index, step] of ordered.entries()) {
      console.log(`\n${renderStepDetail(step, index + 1, ordered.length)}`);
      if (prompt && index < ordered.length - 1) {
        const answer = await prompt.question('\n[Enter] next step, [q] quit: ');
        if (answer.trim().toLowerCase().startsWith('q')) return;
      }
    }
  } finally {
    prompt?.close();
  }
}

async function main(): Promise<number> {
  const server = serverEnvOrExit();
  let parsed;
  try {
    parsed = parseArgs({
      options: { api: { type: 'string', default: server.apiUrl }, token: { type: 'string' }, step: { type: 'boolean' }, all: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  const id = positionals[0]!;
  const token = values.token ?? signToken({ sub: 'trace-viewer', role: 'operator', ttlSeconds: 300 }, server.jwtSecret);
  const trace = await fetchTrace(values.api, id, token);
  if (typeof trace === 'string') {
    console.error(`trace: ${trace}`);
    return 1;
  }
  if (values.json) {
    console.log(JSON.stringify(trace, null, 2));
    return 0;
  }
  const isTraceId = /^[0-9a-f]{32}$/.test(id);
  const steps = isTraceId || values.all ? trace.steps : focusOnBooking(trace.steps, id);
  const traceIds = [...new Set(steps.map((step) => step.traceId))];
  const hidden = trace.steps.length - steps.length;
  console.log(`${id}: ${steps.length} messages in ${traceIds.length} trace${traceIds.length === 1 ? '' : 's'} (${traceIds.join(', ')})`);
  if (hidden > 0) console.log(`(${hidden} steps of other bookings or of the vehicle's set-up share these traces: --all shows them)`);
  console.log('');
  console.log(renderSequenceDiagram(steps));
  if (values.step) await stepThrough(steps);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
