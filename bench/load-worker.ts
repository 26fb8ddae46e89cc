/**
 * The load generator, in a process of its own: `node --import tsx bench/load-worker.ts '<json>'`.
 * It receives a LoadConfig as JSON (argv[2]), drives the target with autocannon (used programmatically),
 * and prints one JSON line, a LoadResult, on stdout. Progress and errors go to stderr.
 *
 * Every request is built by `setupRequest`, so each gets its own body and bearer token (distinct
 * vehicles and customers). Latency: autocannon's own percentiles (HDR histogram inside autocannon) for
 * all requests, and per step (e.g. only the unlock of a book → unlock → end loop) an HDR histogram of
 * ours (hdr-histogram-js), timed from the moment autocannon builds the request (right before it writes
 * it) to the moment its response is complete.
 */
import autocannon, { type Request as AutocannonRequest } from 'autocannon';
import * as hdr from 'hdr-histogram-js';
import { signToken } from '../actors/contract/tokens.js';
import { DEV_JWT_SECRET } from '../actors/contract/device-secrets.js';
import { seededRandom } from '../simulator/random.js';

export interface VehiclePick {
  readonly prefix: string;
  /** Zero-padded to this many digits: `demo-` + 4 gives demo-0001. */
  readonly pad: number;
  /** Ids prefix + first … prefix + (first + count - 1); first defaults to 1. */
  readonly count: number;
  readonly first?: number;
  /** sequential: each vehicle once (then it wraps); uniform: any; skewed: hotShare of the requests go to the first hotFraction of the vehicles. */
  readonly mode: 'sequential' | 'uniform' | 'skewed' | 'one';
  readonly hotShare?: number;
  readonly hotFraction?: number;
}

export type Workload =
  | { readonly kind: 'echo' }
  /** POST /vehicles for prefix+1 … prefix+count (set-up, not measured for a figure). */
  | { readonly kind: 'register'; readonly vehicles: VehiclePick }
  /** POST /bookings {vehicleId}; with `cancel`, each confirmed booking is cancelled right after (POST /bookings/:id/cancel). */
  | { readonly kind: 'book'; readonly vehicles: VehiclePick; readonly customers: number; readonly cancel?: boolean; readonly idempotencyKey?: boolean }
  /** book → unlock → end per loop; the unlock step is the one that counts. */
  | { readonly kind: 'ride'; readonly vehicles: VehiclePick; readonly customers: number }
  /**
   * The unlock alone: every vehicle booked (untimed), then only those bookings' unlocks (timed), then
   * their ends (untimed), `rounds` times; the first `warmupRounds` rounds' unlocks are the warm-up. The
   * phases of the config are ignored: the result has `warmup`, `measured` (the unlocks, each phase the
   * sum of its rounds, `intervals` the unlock stages) and `setup` (the bookings and ends).
   */
  | { readonly kind: 'unlock-rounds'; readonly vehicles: VehiclePick; readonly customers: number; readonly rounds: number; readonly warmupRounds: number };

export interface Phase {
  readonly name: string;
  /** Seconds of load; or `amount` requests in all. */
  readonly durationS?: number;
  readonly amount?: number;
}

export interface LoadConfig {
  /** One server, or several (a cluster's nodes): autocannon spreads the connections over them in turn. */
  readonly url: string | readonly string[];
  /** The secret the customers' and operators' tokens are signed with (default the development secret). */
  readonly jwtSecret?: string;
  readonly connections: number;
  readonly phases: readonly Phase[];
  readonly workload: Workload;
  /** Poll GET /health first and start the first phase the moment it answers 200. */
  readonly waitForHealth?: boolean;
  readonly timeoutS?: number;
  readonly seed?: number;
}

export interface StepFigures {
  readonly count: number;
  readonly statuses: Record<string, number>;
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number; readonly mean: number };
}

export interface PhaseResult {
  readonly name: string;
  readonly seconds: number;
  /** Epoch ms at the phase's start and end: the server's CPU is cut there (bench/proc-cpu.ts). */
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  /** When the phase is several stretches (unlock-rounds): each [start, end] in epoch ms; `seconds` is their sum. */
  readonly intervals?: ReadonlyArray<readonly [number, number]>;
  readonly requests: number;
  readonly requestsPerSecond: number;
  /** Autocannon's own figures (its HDR histogram), all requests of the phase. */
  readonly autocannon: {
    readonly latencyMs: Record<string, number>;
    readonly errors: number;
    readonly timeouts: number;
    readonly non2xx: number;
    readonly statusCodes: Record<string, number>;
  };
  /** Per step of the workload (book, cancel, unlock, end, echo, register): our HDR histogram. */
  readonly steps: Record<string, StepFigures>;
  /** Bookings answered 201 with status CONFIRMED. */
  readonly confirmed: number;
  readonly confirmedPerSecond: number;
  /** Confirmed bookings per 250 ms of the phase, from its start: where a slow window is slow. */
  readonly confirmedTimeline?: readonly number[];
}

export interface LoadResult {
  readonly phases: PhaseResult[];
  /** Epoch ms when GET /health first answered 200 (waitForHealth only). */
  readonly healthyAt: number | null;
}

interface StepState {
  histogram: hdr.Histogram;
  statuses: Record<string, number>;
}

interface Context {
  t0?: number;
  bookingId?: string;
  token?: string;
}

const mulberry32 = seededRandom;

const vehicleName = (pick: VehiclePick, n: number): string => `${pick.prefix}${String(n + (pick.first ?? 1) - 1).padStart(pick.pad, '0')}`;

function vehiclePicker(pick: VehiclePick, random: () => number): () => string {
  let next = 0;
  const hot = Math.max(1, Math.round(pick.count * (pick.hotFraction ?? 0.01)));
  return () => {
    switch (pick.mode) {
      case 'one':
        return vehicleName(pick, 1);
      case 'sequential':
        next = (next % pick.count) + 1;
        return vehicleName(pick, next);
      case 'uniform':
        return vehicleName(pick, 1 + Math.floor(random() * pick.count));
      case 'skewed':
        return random() < (pick.hotShare ?? 0.8) ? vehicleName(pick, 1 + Math.floor(random() * hot)) : vehicleName(pick, hot + 1 + Math.floor(random() * (pick.count - hot)));
    }
  };
}

function tokenPool(customers: number, role: 'customer' | 'operator', secret: string): () => string {
  const tokens = Array.from({ length: customers }, (_, index) => signToken({ sub: `bench-${role}-${index}`, role, ttlSeconds: 3600 }, secret));
  let next = 0;
  return () => {
    next = (next + 1) % tokens.length;
    return tokens[next]!;
  };
}

const now = (): number => performance.now();

const TIMELINE_BUCKET_MS = 250;

class Recorder {
  steps = new Map<string, StepState>();
  confirmed = 0;
  private readonly startedAt = now();
  readonly timeline: number[] = [];
  confirm(): void {
    this.confirmed += 1;
    const bucket = Math.floor((now() - this.startedAt) / TIMELINE_BUCKET_MS);
    while (this.timeline.length <= bucket) this.timeline.push(0);
    this.timeline[bucket]! += 1;
  }
  step(name: string): StepState {
    let state = this.steps.get(name);
    if (!state) {
      state = { histogram: hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 }), statuses: {} };
      this.steps.set(name, state);
    }
    return state;
  }
  record(name: string, context: Context, status: number): void {
    const state = this.step(name);
    if (context.t0 !== undefined) state.histogram.recordValue(Math.max(1, Math.round((now() - context.t0) * 1000)));
    state.statuses[status] = (state.statuses[status] ?? 0) + 1;
  }
  figures(): Record<string, StepFigures> {
    const out: Record<string, StepFigures> = {};
    for (const [name, { histogram, statuses }] of this.steps) {
      const ms = (us: number) => Math.round(us / 10) / 100;
      out[name] = {
        count: histogram.totalCount,
        statuses,
        latencyMs: {
          p50: ms(histogram.getValueAtPercentile(50)),
          p90: ms(histogram.getValueAtPercentile(90)),
          p99: ms(histogram.getValueAtPercentile(99)),
          max: ms(histogram.maxValue),
          mean: ms(histogram.mean),
        },
      };
    }
    return out;
  }
}

const json = { 'content-type': 'application/json' };

/** The autocannon request sequence of a workload; every step records into `recorder()` (swapped per phase). */
function requestsFor(workload: Workload, recorder: () => Recorder, random: () => number, secret: string): AutocannonRequest[] {
  const start = (context: Context) => {
    context.t0 = now();
  };
  const parse = (body: string): Record<string, unknown> => {
    try {
      return JSON.parse(body) as Record<string, unknown>;
    } catch {
      return {};
    }
  };
  switch (workload.kind) {
    case 'echo': {
      let n = 0;
      return [
        {
          method: 'POST',
          path: '/echo',
          setupRequest: (req, context: Context) => {
            start(context);
            n += 1;
            return { ...req, headers: json, body: JSON.stringify({ vehicleId: `v-${n}`, n }) };
          },
          onResponse: (status, _body, context: Context) => recorder().record('echo', context, status),
        },
      ];
    }
    case 'register': {
      const operator = tokenPool(1, 'operator', secret);
      let n = 0;
      return [
        {
          method: 'POST',
          path: '/vehicles',
          setupRequest: (req, context: Context) => {
            start(context);
            n += 1;
            const id = vehicleName(workload.vehicles, ((n - 1) % workload.vehicles.count) + 1);
            return { ...req, headers: { ...json, authorization: `Bearer ${operator()}` }, body: JSON.stringify({ id, type: 'scooter', location: { lat: 52.52 + (n % 100) / 10_000, lon: 13.405 } }) };
          },
          onResponse: (status, _body, context: Context) => recorder().record('register', context, status),
        },
      ];
    }
    case 'book':
    case 'ride': {
      const vehicle = vehiclePicker(workload.vehicles, random);
      const token = tokenPool(workload.customers, 'customer', secret);
      // A fresh Idempotency-Key per booking, as the README, the simulator and every careful client send.
      const keyed = workload.kind === 'book' && workload.idempotencyKey === true;
      const keyPrefix = `bench-${process.pid}-${Date.now()}-`;
      let keys = 0;
      const book: AutocannonRequest = {
        method: 'POST',
        path: '/bookings',
        setupRequest: (req, context: Context) => {
          start(context);
          context.token = token();
          delete context.bookingId;
          const headers: Record<string, string> = { ...json, authorization: `Bearer ${context.token}` };
          if (keyed) headers['idempotency-key'] = `${keyPrefix}${(keys += 1)}`;
          return { ...req, headers, body: JSON.stringify({ vehicleId: vehicle() }) };
        },
        onResponse: (status, body, context: Context) => {
          const rec = recorder();
          rec.record('book', context, status);
          if (status === 201) {
            const parsed = parse(body);
            if (parsed.status === 'CONFIRMED') {
              rec.confirm();
              context.bookingId = String(parsed.id);
            }
          }
        },
      };
      // A follow-up step runs only after a confirmed booking; otherwise autocannon starts the loop again.
      const followUp = (name: string, path: (id: string) => string, body: (id: string) => string | undefined): AutocannonRequest => ({
        method: 'POST',
        setupRequest: (req, context: Context) => {
          if (context.bookingId === undefined || context.token === undefined) return undefined as unknown as AutocannonRequest;
          start(context);
          const payload = body(context.bookingId);
          const headers: Record<string, string> = { authorization: `Bearer ${context.token}`, ...(payload === undefined ? {} : json) };
          return { ...req, path: path(context.bookingId), headers, ...(payload === undefined ? { body: undefined } : { body: payload }) };
        },
        onResponse: (status, _body, context: Context) => recorder().record(name, context, status),
      });
      if (workload.kind === 'book') {
        if (!workload.cancel) return [book];
        return [book, followUp('cancel', (id) => `/bookings/${encodeURIComponent(id)}/cancel`, () => undefined)];
      }
      return [
        book,
        followUp('unlock', () => '/unlock', (id) => JSON.stringify({ bookingId: id })),
        followUp('end', (id) => `/bookings/${encodeURIComponent(id)}/end`, () => undefined),
      ];
    }
    case 'unlock-rounds':
      throw new Error('unlock-rounds runs its own stages (unlockRounds)');
  }
}

/** A booking made in the book stage, waiting for its next stage. */
interface Held {
  readonly bookingId: string;
  readonly token: string;
}

/**
 * unlock-rounds: each stage is one autocannon run of exactly as many requests as there are bookings
 * waiting for it, each request taking the next one; a stage with nothing left sends GET /health,
 * which is not recorded.
 */
async function unlockRounds(config: LoadConfig, workload: Extract<Workload, { kind: 'unlock-rounds' }>): Promise<PhaseResult[]> {
  const vehicle = vehiclePicker(workload.vehicles, () => 0);
  const token = tokenPool(workload.customers, 'customer', config.jwtSecret ?? DEV_JWT_SECRET);
  interface StageContext extends Context {
    held?: Held;
  }
  const stage = async (name: 'book' | 'unlock' | 'end', amount: number, take: () => Held | undefined, recorder: Recorder, keep: Held[]) => {
    const startedAtMs = Date.now();
    const started = now();
    // The stage's time is its first request to its last response. autocannon itself ends an `amount`
    // run only at its next 1-second sampling tick, so its own duration is a whole number of seconds:
    // 1,000 unlocks that took 0.4 s counted as 1 s, and every stage read ≈ 1,000 requests/s.
    const span = { first: null as number | null, firstMs: startedAtMs, last: started, lastMs: startedAtMs };
    const request: AutocannonRequest = {
      method: 'POST',
      setupRequest: (req, context: StageContext) => {
        context.t0 = now();
        if (span.first === null) {
          span.first = context.t0;
          span.firstMs = Date.now();
        }
        if (name === 'book') {
          context.token = token();
          return { ...req, path: '/bookings', headers: { ...json, authorization: `Bearer ${context.token}` }, body: JSON.stringify({ vehicleId: vehicle() }) };
        }
        const held = take();
        context.held = held;
        if (!held) return { ...req, method: 'GET', path: '/health', headers: {}, body: undefined };
        const auth = { authorization: `Bearer ${held.token}` };
        return name === 'unlock'
          ? { ...req, path: '/unlock', headers: { ...json, ...auth }, body: JSON.stringify({ bookingId: held.bookingId }) }
          : { ...req, path: `/bookings/${encodeURIComponent(held.bookingId)}/end`, headers: auth, body: undefined };
      },
      onResponse: (status, body, context: StageContext) => {
        span.last = now();
        span.lastMs = Date.now();
        if (name === 'book') {
          recorder.record('book', context, status);
          const parsed = status === 201 ? (JSON.parse(body) as { id?: string; status?: string }) : {};
          if (parsed.status === 'CONFIRMED' && parsed.id && context.token) {
            recorder.confirm();
            keep.push({ bookingId: parsed.id, token: context.token });
          }
          return;
        }
        if (!context.held) return;
        recorder.record(name, context, status);
        if (status >= 200 && status < 300) keep.push(context.held);
      },
    };
    const result = await autocannon({ url: typeof config.url === 'string' ? config.url : config.url[0]!, connections: Math.min(config.connections, Math.max(1, amount)), pipelining: 1, timeout: config.timeoutS ?? 30, requests: [request], amount });
    if (span.first === null) return { startedAtMs, endedAtMs: Date.now(), seconds: (now() - started) / 1000, result };
    return { startedAtMs: span.firstMs, endedAtMs: span.lastMs, seconds: (span.last - span.first) / 1000, result };
  };
  const setup = new Recorder();
  const unlocks = { warmup: new Recorder(), measured: new Recorder() };
  const spans = { warmup: [] as Array<[number, number]>, measured: [] as Array<[number, number]>, setup: [] as Array<[number, number]> };
  const seconds = { warmup: 0, measured: 0, setup: 0 };
  const errors = { warmup: 0, measured: 0, setup: 0 };
  for (let round = 0; round < workload.warmupRounds + workload.rounds; round += 1) {
    const phase = round < workload.warmupRounds ? 'warmup' : 'measured';
    const booked: Held[] = [];
    const b = await stage('book', workload.vehicles.count, () => undefined, setup, booked);
    const bookings = booked.length;
    const unlocked: Held[] = [];
    const u = await stage('unlock', bookings, () => booked.shift(), unlocks[phase], unlocked);
    const opened = unlocked.length;
    const ended: Held[] = [];
    const e = await stage('end', opened, () => unlocked.shift(), setup, ended);
    spans[phase].push([u.startedAtMs, u.endedAtMs]);
    seconds[phase] += u.seconds;
    errors[phase] += u.result.errors;
    for (const s of [b, e]) {
      spans.setup.push([s.startedAtMs, s.endedAtMs]);
      seconds.setup += s.seconds;
      errors.setup += s.result.errors;
    }
    console.error(`load-worker: round ${round + 1}: ${bookings} booked, ${opened} unlocked in ${u.seconds.toFixed(2)} s, ${ended.length} ended`);
  }
  const phaseOf = (name: 'warmup' | 'measured' | 'setup', recorder: Recorder): PhaseResult => {
    const steps = recorder.figures();
    const requests = Object.values(steps).reduce((sum, step) => sum + step.count, 0);
    const intervals = spans[name];
    return {
      name,
      seconds: Math.round(seconds[name] * 1000) / 1000,
      startedAtMs: intervals[0]?.[0] ?? Date.now(),
      endedAtMs: intervals.at(-1)?.[1] ?? Date.now(),
      intervals,
      requests,
      requestsPerSecond: seconds[name] > 0 ? Math.round(requests / seconds[name]) : 0,
      autocannon: { latencyMs: {}, errors: errors[name], timeouts: 0, non2xx: 0, statusCodes: {} },
      steps,
      confirmed: recorder.confirmed,
      confirmedPerSecond: seconds[name] > 0 ? Math.round(recorder.confirmed / seconds[name]) : 0,
    };
  };
  return [phaseOf('warmup', unlocks.warmup), phaseOf('measured', unlocks.measured), phaseOf('setup', setup)];
}

async function waitForHealth(url: string): Promise<number> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/health`)).ok) return Date.now();
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('the server did not become healthy in 300 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as LoadConfig;
  const random = mulberry32(config.seed ?? 42);
  const urls = typeof config.url === 'string' ? [config.url] : [...config.url];
  const healthyAt = config.waitForHealth ? Math.max(...(await Promise.all(urls.map(waitForHealth)))) : null;
  if (config.workload.kind === 'unlock-rounds') {
    const out: LoadResult = { phases: await unlockRounds(config, config.workload), healthyAt };
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  let current = new Recorder();
  const requests = requestsFor(config.workload, () => current, random, config.jwtSecret ?? DEV_JWT_SECRET);
  const phases: PhaseResult[] = [];
  for (const phase of config.phases) {
    current = new Recorder();
    const started = now();
    const startedAtMs = Date.now();
    const result = await autocannon({
      // autocannon takes several URLs (lib/run.js), its types only one.
      url: (urls.length === 1 ? urls[0]! : urls) as string,
      connections: config.connections,
      pipelining: 1,
      timeout: config.timeoutS ?? 30,
      requests,
      ...(phase.amount !== undefined ? { amount: phase.amount } : { duration: phase.durationS ?? 10 }),
    });
    const seconds = (now() - started) / 1000;
    const steps = current.figures();
    const statusCodes: Record<string, number> = {};
    for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = (stats as { count?: number }).count ?? 0;
    const latency = result.latency as unknown as Record<string, number>;
    const latencyMs: Record<string, number> = {};
    for (const key of ['p50', 'p90', 'p97_5', 'p99', 'p99_9', 'max', 'average']) if (typeof latency[key] === 'number') latencyMs[key] = latency[key];
    phases.push({
      name: phase.name,
      seconds: Math.round(seconds * 1000) / 1000,
      startedAtMs,
      endedAtMs: Date.now(),
      requests: result.requests.total,
      requestsPerSecond: Math.round(result.requests.total / seconds),
      autocannon: { latencyMs, errors: result.errors, timeouts: result.timeouts, non2xx: result.non2xx, statusCodes },
      steps,
      confirmed: current.confirmed,
      confirmedPerSecond: Math.round(current.confirmed / seconds),
      // Quiet whole quarters at the end count too.
      confirmedTimeline: [...current.timeline, ...Array<number>(Math.max(0, Math.floor((seconds * 1000) / TIMELINE_BUCKET_MS) - current.timeline.length)).fill(0)],
    });
    console.error(`load-worker: ${phase.name}: ${result.requests.total} requests in ${seconds.toFixed(1)} s`);
  }
  const out: LoadResult = { phases, healthyAt };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
