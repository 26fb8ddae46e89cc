import { spawn } from 'node:child_process';
import { exitBadArgument, parseCommandLine } from '../runtime/ground/command-line.js';
import { z } from 'zod';
import { signToken } from '../actors/contract/tokens.js';
import { serverEnvOrExit } from './server-env.js';
import { focusOnBooking, orderSteps, renderSequenceDiagram, renderStepDetail, type TraceStepView } from '../traces/trace-diagram.js';
import { actionOfKey, DEFAULT_SCREEN, initialStepperState, keysOf, prepareStepper, renderStepScreen, stepperReduce } from '../traces/trace-stepper.js';

/**
 * `npm run trace -- <bookingIdOrTraceId> [--api URL] [--token T] [--step]`: a booking's (or one
 * request's) trace from a running server as a sequence diagram; `--step` walks it message by message.
 */
const USAGE = `usage: npm run trace -- <bookingIdOrTraceId> [--api URL] [--token T] [--step] [--all] [--json] [--open]

  --api URL     the running server (default http://$HOST:$PORT as npm start reads them: 127.0.0.1:3000)
  --token T     an operator bearer token (default: one signed with FLEET_JWT_SECRET or the dev secret)
  --step        one step at a time: the diagram scrolled to it and the fields it changed; single keys:
                n/→ next, b/← back, f full state, q quit (without a terminal every step is printed)
  --all         for a booking id: also the steps of other bookings that share its traces (by default
                only the steps that concern this booking are shown)
  --json        print the raw trace as JSON instead (everything the server sent)
  --open        print a link to the trace viewer page in the browser (valid 15 minutes, for this id
                only), and open it when a desktop browser is at hand`;

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
  const { stdin, stdout } = process;
  if (stdin.isTTY !== true || stdout.isTTY !== true) {
    const ordered = orderSteps(steps);
    for (const [index, step] of ordered.entries()) console.log(`\n${renderStepDetail(step, index + 1, ordered.length)}`);
    return;
  }
  // Keys and screens are traces/trace-stepper.ts's business; this only owns the terminal.
  const stepper = prepareStepper(steps);
  let state = initialStepperState;
  const draw = () => stdout.write(`\x1b[H\x1b[2J${renderStepScreen(stepper, state, { rows: stdout.rows || DEFAULT_SCREEN.rows, columns: stdout.columns || DEFAULT_SCREEN.columns })}`);
  await new Promise<void>((resolve) => {
    const onKeys = (chunk: Buffer) => {
      for (const key of keysOf(chunk.toString('utf8'))) {
        const action = actionOfKey(key);
        if (action) state = stepperReduce(state, action, stepper.steps.length);
        if (state.quit) {
          stdin.off('data', onKeys);
          stdout.off('resize', draw);
          stdin.setRawMode(false);
          stdin.pause();
          stdout.write('\x1b[?1049l'); // back to the screen the diagram was printed on
          resolve();
          return;
        }
      }
      draw();
    };
    // The alternate screen: stepping leaves the terminal's scrollback as it was.
    stdout.write('\x1b[?1049h');
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onKeys);
    stdout.on('resize', draw);
    draw();
  });
}

/**
 * `--open`: the server signs a link scoped to this id (POST /traces/:id/view-link), so the operator
 * token never goes into a URL and the secret is not needed here.
 */
async function openViewer(api: string, id: string, token: string): Promise<number> {
  const url = `${api.replace(/\/+$/, '')}/traces/${encodeURIComponent(id)}/view-link`;
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  } catch {
    console.error(`trace: cannot reach ${api}: is the server running (npm start)?`);
    return 1;
  }
  const body = (await response.json().catch(() => ({}))) as { path?: string; expiresAt?: string; detail?: string };
  // The link is built here from the server's path and the --api origin, never taken whole from the
  // answer: what goes to the desktop's opener is an http(s) URL of the server asked, nothing else.
  const link = body.path?.startsWith('/traces/') ? new URL(body.path, api) : null;
  if (!response.ok || !link || !/^https?:$/.test(link.protocol)) {
    console.error(`trace: ${response.status === 404 ? `no trace is known for ${id} at ${api}` : `POST ${url} answered ${response.status}: ${body.detail ?? ''}`}`);
    return 1;
  }
  console.log(`Open this link to step through ${id} (works until ${body.expiresAt}, for this id only):\n\n  ${link.href}\n`);
  const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? null : 'xdg-open';
  if (opener && process.stdout.isTTY && (process.platform === 'darwin' || process.env.DISPLAY || process.env.WAYLAND_DISPLAY)) {
    // Best effort: without a desktop browser the printed link is the way in.
    spawn(opener, [link.href], { stdio: 'ignore', detached: true })
      .on('error', () => undefined)
      .unref();
  }
  return 0;
}

async function main(): Promise<number> {
  const server = serverEnvOrExit();
  const { values, positionals } = parseCommandLine('trace', USAGE, {
    options: { api: { type: 'string', default: server.apiUrl }, token: { type: 'string' }, step: { type: 'boolean' }, all: { type: 'boolean' }, json: { type: 'boolean' }, open: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length === 0) exitBadArgument('trace', 'the booking id (bk_…) or trace id is missing');
  if (positionals.length > 1) exitBadArgument('trace', `one id at a time: unexpected argument ${JSON.stringify(positionals[1])}`);
  const id = positionals[0]!;
  const token = values.token ?? signToken({ sub: 'trace-viewer', role: 'operator', ttlSeconds: 300 }, server.jwtSecret);
  if (values.open) return openViewer(values.api, id, token);
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
