import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The port to a card processor. Calls are idempotent per authorization id, as real gateways make
 * them with an idempotency key: a retry after a crash never authorizes twice.
 */
export interface PaymentGateway {
  authorize(request: AuthorizationRequest): Promise<GatewayDecision>;
  /**
   * Raises an open authorization's hold to `amount` (an incremental authorization, as card networks
   * allow for rentals): a ride that outran its booking is captured in full. Throws GatewayError when
   * the issuer declines; a no-op when the hold already covers `amount`.
   */
  incrementAuthorization(authorizationId: string, amount: number): Promise<void>;
  /** Captures at most the (possibly incremented) hold: a processor refuses more. */
  capture(authorizationId: string, amount: number): Promise<void>;
  /**
   * Cancels the hold. Also called for an id this side never journalled (a crash cut short the commit
   * of its authorization): a no-op for an id the gateway never authorized.
   */
  void(authorizationId: string): Promise<void>;
}

export interface AuthorizationRequest {
  readonly authorizationId: string;
  readonly amount: number;
  readonly currency: string;
  readonly paymentMethod: string;
}

export type GatewayDecision =
  | { readonly outcome: 'authorized'; readonly reference: string }
  | { readonly outcome: 'declined'; readonly reason: 'card_declined' | 'invalid_payment_method' };

/** Test card tokens (docs/contract.md): what the simulated gateway does with each. */
export const TEST_TOKENS = {
  authorizes: 'tok_visa',
  declines: 'tok_chargeDeclined',
  neverAnswers: 'tok_timeout',
  /** Authorizes, but declines every increment of the hold (a card at its limit). */
  noIncrement: 'tok_noIncrement',
} as const;

export class GatewayError extends Error {
  override readonly name = 'GatewayError';
}

export interface SimulatedGatewayOptions {
  /** Mean latency of every call; each call varies by ±50 % so that concurrent calls interleave. */
  readonly latencyMs: number;
  readonly random?: () => number;
  /** How a latency is waited out (default a timer); tests record it instead of waiting. */
  readonly delay?: (ms: number) => Promise<unknown>;
  /**
   * Where it remembers its authorizations. A real processor outlives our process; in memory (the
   * default, for tests) a restart would forget every hold and no ride begun before it could be
   * captured again (found by the chaos harness, docs/chaos.md). The shard gives it a file of its own.
   */
  readonly store?: SimulatedAuthorizationStore;
}

export interface SimulatedAuthorization {
  readonly decision: GatewayDecision;
  readonly amount: number;
  readonly state: 'authorized' | 'declined' | 'captured' | 'voided';
  /** The card token (absent in records written before increments existed). */
  readonly paymentMethod?: string;
}

/** The simulated processor's own memory (persistence/simulated-gateway-store.ts keeps it in SQLite). */
export interface SimulatedAuthorizationStore {
  get(authorizationId: string): SimulatedAuthorization | undefined;
  set(authorizationId: string, authorization: SimulatedAuthorization): void;
}

const memoryStore = (): SimulatedAuthorizationStore => {
  const authorizations = new Map<string, SimulatedAuthorization>();
  return { get: (id) => authorizations.get(id), set: (id, authorization) => void authorizations.set(id, authorization) };
};

/**
 * A stand-in for a card processor that behaves like one: it takes time, declines, never answers for
 * `tok_timeout`, raises a hold on request (but not for `tok_noIncrement`), refuses to capture more than
 * the hold, and remembers every authorization.
 */
export class SimulatedPaymentGateway implements PaymentGateway {
  private readonly authorizations: SimulatedAuthorizationStore;
  private readonly random: () => number;
  private readonly delay: (ms: number) => Promise<unknown>;
  private capturesToFail = 0;

  constructor(private readonly options: SimulatedGatewayOptions) {
    this.random = options.random ?? Math.random;
    this.delay = options.delay ?? sleep;
    this.authorizations = options.store ?? memoryStore();
  }

  async authorize(request: AuthorizationRequest): Promise<GatewayDecision> {
    if (request.paymentMethod === TEST_TOKENS.neverAnswers) return new Promise<never>(() => {});
    await this.latency();
    const known = this.authorizations.get(request.authorizationId);
    if (known) return known.decision;
    const decision: GatewayDecision =
      request.paymentMethod === TEST_TOKENS.authorizes || request.paymentMethod === TEST_TOKENS.noIncrement
        ? { outcome: 'authorized', reference: `sim_${request.authorizationId}` }
        : { outcome: 'declined', reason: request.paymentMethod === TEST_TOKENS.declines ? 'card_declined' : 'invalid_payment_method' };
    this.authorizations.set(request.authorizationId, {
      decision,
      amount: request.amount,
      state: decision.outcome === 'authorized' ? 'authorized' : 'declined',
      paymentMethod: request.paymentMethod,
    });
    return decision;
  }

  async incrementAuthorization(authorizationId: string, amount: number): Promise<void> {
    await this.latency();
    const known = this.authorizations.get(authorizationId);
    if (!known || known.state !== 'authorized') {
      if (known?.state === 'captured' && amount <= known.amount) return;
      throw new GatewayError(`no open authorization ${authorizationId} to increment`);
    }
    if (amount <= known.amount) return;
    if (known.paymentMethod === TEST_TOKENS.noIncrement) throw new GatewayError(`increment of ${authorizationId} to ${amount} declined by the issuer`);
    this.authorizations.set(authorizationId, { ...known, amount });
  }

  /** The hold an authorization has now (tests). */
  holdOf(authorizationId: string): number | undefined {
    return this.authorizations.get(authorizationId)?.amount;
  }

  async capture(authorizationId: string, amount: number): Promise<void> {
    await this.latency();
    if (this.capturesToFail > 0) {
      this.capturesToFail -= 1;
      throw new GatewayError(`capture of ${authorizationId} failed (simulated processor fault)`);
    }
    const known = this.authorizations.get(authorizationId);
    if (!known || known.state === 'declined' || known.state === 'voided') throw new GatewayError(`no open authorization ${authorizationId}`);
    if (known.state === 'captured') return;
    if (amount > known.amount) throw new GatewayError(`capture of ${amount} exceeds authorized ${known.amount}`);
    this.authorizations.set(authorizationId, { ...known, state: 'captured' });
  }

  async void(authorizationId: string): Promise<void> {
    await this.latency();
    const known = this.authorizations.get(authorizationId);
    if (known?.state === 'captured') throw new GatewayError(`authorization ${authorizationId} already captured`);
    if (known) this.authorizations.set(authorizationId, { ...known, state: 'voided' });
  }

  /**
   * The next `count` captures fail with a GatewayError and change nothing, as a processor outage
   * would (tests of the capture retry; no test token can, since the card was already authorized).
   */
  failNextCaptures(count: number): void {
    this.capturesToFail = count;
  }

  /** How many of the captures set to fail have not been tried yet. */
  get capturesStillToFail(): number {
    return this.capturesToFail;
  }

  /** For tests and the simulator report. */
  stateOf(authorizationId: string): 'authorized' | 'declined' | 'captured' | 'voided' | undefined {
    return this.authorizations.get(authorizationId)?.state;
  }

  private async latency(): Promise<void> {
    const ms = this.options.latencyMs * (0.5 + this.random());
    if (ms >= 1) await this.delay(ms);
  }
}
