import { signToken } from '../../../actors/contract/tokens.js';
import { PROBLEM_CONTENT_TYPE } from '../../../api/problems.js';
import { seededRandom, type Random } from '../../../simulator/random.js';

/**
 * The customers of a chaos run: a small driver of the harness's own (the simulator is being reworked
 * elsewhere) that books, unlocks, ends, cancels or lets a booking expire, and writes down every answer
 * it was given. Those records are the clients' side of the checks: what was acknowledged must exist.
 */
export interface AckedBooking {
  readonly id: string;
  readonly vehicleId: string;
  readonly customerId: string;
  /** Epoch ms when the 201 arrived. */
  readonly ackedAt: number;
}

export interface ClientRecords {
  /** Every booking answered 201, by id. */
  readonly bookings: Map<string, AckedBooking>;
  /** Booking id → epoch ms of its 200 SUCCESS unlock. */
  readonly unlocks: Map<string, number>;
  /** Bookings whose end was answered 200 (COMPLETED). */
  readonly ends: Set<string>;
  /** Bookings whose cancel was answered 200 (CANCELLED). */
  readonly cancels: Set<string>;
  /** `201`, `409 vehicle-unavailable`, `503 shard-unavailable`, `unreachable`, … → count. */
  readonly answers: Map<string, number>;
  /** Error answers (4xx/5xx) that were not application/problem+json with a `type`. */
  readonly notProblems: string[];
  /** `customer key` → the booking ids its 201s named (a retried key must always name the same one). */
  readonly keyed: Map<string, Set<string>>;
}

export const emptyRecords = (): ClientRecords => ({ bookings: new Map(), unlocks: new Map(), ends: new Set(), cancels: new Set(), answers: new Map(), notProblems: [], keyed: new Map() });

export interface Answer {
  /** 0 when no HTTP answer came (connection refused or reset: the server was being killed). */
  readonly status: number;
  readonly body: Record<string, unknown> | null;
  /** Last segment of the problem `type`, e.g. `storage-full`. */
  readonly problem: string | null;
}

/** One HTTP client for the run; counts requests in flight (a kill with some in flight is a kill mid-commit). */
export class Api {
  inFlight = 0;
  constructor(
    readonly baseUrl: string,
    private readonly secret: string,
    readonly records: ClientRecords,
  ) {}

  token(sub: string, role: 'customer' | 'operator'): string {
    return signToken({ sub, role, ttlSeconds: 24 * 3600 }, this.secret);
  }

  async call(method: 'GET' | 'POST', path: string, token: string | null, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    this.inFlight += 1;
    try {
      const response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: { ...(token && { authorization: `Bearer ${token}` }), ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
        ...(body !== undefined && { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await response.text();
      let parsed: Record<string, unknown> | null = null;
      try {
        parsed = text ? (JSON.parse(text) as Record<string, unknown>) : null;
      } catch {
        parsed = null;
      }
      const isProblem = (response.headers.get('content-type') ?? '').startsWith(PROBLEM_CONTENT_TYPE) && typeof parsed?.type === 'string';
      if (response.status >= 400 && !isProblem && path !== '/health') this.records.notProblems.push(`${method} ${path} → ${response.status} ${text.slice(0, 120)}`);
      const problem = isProblem ? String(parsed!.type).split('/').pop()! : null;
      this.count(problem ? `${response.status} ${problem}` : String(response.status));
      return { status: response.status, body: parsed, problem };
    } catch {
      this.count('unreachable');
      return { status: 0, body: null, problem: null };
    } finally {
      this.inFlight -= 1;
    }
  }

  private count(key: string): void {
    this.records.answers.set(key, (this.records.answers.get(key) ?? 0) + 1);
  }

  /** POST /bookings, with an Idempotency-Key when given; a 201 is recorded as acknowledged. */
  async book(customerId: string, vehicleId: string, idempotencyKey?: string): Promise<Answer> {
    const answer = await this.call('POST', '/bookings', this.token(customerId, 'customer'), { vehicleId }, idempotencyKey ? { 'idempotency-key': idempotencyKey } : {});
    if (answer.status === 201 && typeof answer.body?.id === 'string') {
      this.records.bookings.set(answer.body.id, { id: answer.body.id, vehicleId, customerId, ackedAt: Date.now() });
      if (idempotencyKey) {
        const slot = `${customerId} ${idempotencyKey}`;
        this.records.keyed.set(slot, (this.records.keyed.get(slot) ?? new Set()).add(answer.body.id));
      }
    }
    return answer;
  }

  async unlock(customerId: string, bookingId: string): Promise<Answer> {
    const answer = await this.call('POST', `/bookings/${bookingId}/unlock`, this.token(customerId, 'customer'));
    if (answer.status === 200 && answer.body?.status === 'SUCCESS') this.records.unlocks.set(bookingId, Date.now());
    return answer;
  }

  async end(customerId: string, bookingId: string): Promise<Answer> {
    const answer = await this.call('POST', `/bookings/${bookingId}/end`, this.token(customerId, 'customer'));
    if (answer.status === 200 && answer.body?.status === 'COMPLETED') this.records.ends.add(bookingId);
    return answer;
  }

  async cancel(customerId: string, bookingId: string): Promise<Answer> {
    const answer = await this.call('POST', `/bookings/${bookingId}/cancel`, this.token(customerId, 'customer'));
    if (answer.status === 200 && answer.body?.status === 'CANCELLED') this.records.cancels.add(bookingId);
    return answer;
  }
}

export interface CustomerLoad {
  stop(): Promise<void>;
}

/**
 * `customers` loops, each: book a random vehicle, then unlock it (45 %; then end the ride in 60 % of
 * those), cancel it (20 %) or leave it to expire (35 %). A short pause between bookings keeps the CPU
 * for the server on a shared 2-core box; the run is about faults, not throughput.
 */
export function startCustomers(api: Api, vehicleIds: readonly string[], options: { customers: number; seed: number; pauseMs: number }): CustomerLoad {
  let stopped = false;
  const loops = Array.from({ length: options.customers }, (_, index) => customerLoop(api, vehicleIds, `chaos-customer-${index}`, seededRandom(options.seed + index), options.pauseMs, () => stopped));
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** No answer, or one that says "not now" rather than "no": the booking may or may not exist yet. */
const outcomeUnknown = (answer: Answer): boolean =>
  answer.status === 0 || answer.problem === 'actor-unavailable' || answer.problem === 'shard-unavailable' || answer.problem === 'storage-full' || answer.problem === 'idempotency-key-in-use';

/**
 * A device that did not answer in time, or was said to be offline, leaves the booking as it was: a
 * customer standing next to the vehicle tries unlock and end again.
 */
const rideStepUnknown = (answer: Answer): boolean =>
  outcomeUnknown(answer) || answer.problem === 'unlock-timed-out' || answer.problem === 'lock-timed-out' || answer.problem === 'vehicle-offline';

/**
 * Calls `step` again while its outcome is unknown, for up to a minute, even after the load was told to
 * stop: a careful client finishes what it started. Unlock, end and cancel are safe to repeat (the
 * contract answers a repeat from state), and a crash between the vehicle's part of an end and the
 * booking's (docs/chaos.md, "What the harness found") is only repaired by such a repeat.
 */
async function untilKnown(step: () => Promise<Answer>, unknown: (answer: Answer) => boolean, pauseMs: number): Promise<Answer> {
  const deadline = Date.now() + 60_000;
  let answer = await step();
  while (unknown(answer) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
    answer = await step();
  }
  return answer;
}

async function customerLoop(api: Api, vehicleIds: readonly string[], loopId: string, random: Random, pauseMs: number, stopped: () => boolean): Promise<void> {
  for (let attempt = 1; !stopped(); attempt += 1) {
    // A loop is a stream of riders, one journey each: a rider whose ride stays open (never ended, or
    // left to expire) would otherwise hold MAX_ACTIVE_BOOKINGS_PER_CUSTOMER and be refused from then on.
    const customerId = `${loopId}-r${attempt}`;
    const vehicleId = vehicleIds[Math.floor(random() * vehicleIds.length)]!;
    // Half the bookings carry an Idempotency-Key and are retried with it while their outcome is
    // unknown (a kill cut the answer off): the retry must reach the same booking. The other half are
    // not retried: a booking whose answer was lost simply stays unacknowledged.
    const key = random() < 0.5 ? `chaos-${attempt}` : undefined;
    const booked = key === undefined ? await api.book(customerId, vehicleId) : await untilKnown(() => api.book(customerId, vehicleId, key), outcomeUnknown, pauseMs * 10);
    if (booked.status === 201) {
      const bookingId = String(booked.body!.id);
      const choice = random();
      if (choice < 0.45) {
        const unlocked = await untilKnown(() => api.unlock(customerId, bookingId), rideStepUnknown, pauseMs * 10);
        if (unlocked.status === 200 && random() < 0.6) await untilKnown(() => api.end(customerId, bookingId), rideStepUnknown, pauseMs * 10);
      } else if (choice < 0.65) {
        await untilKnown(() => api.cancel(customerId, bookingId), outcomeUnknown, pauseMs * 10);
      }
    }
    // An unreachable server is restarting, and a taken vehicle stays taken for a while: waiting longer
    // then leaves the CPU to the server instead of thousands of refusals.
    await new Promise((resolve) => setTimeout(resolve, booked.status === 0 ? pauseMs * 10 : booked.status === 409 ? pauseMs * 3 : pauseMs));
  }
}
