import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createVerifier, TokenError } from 'fast-jwt';
import { ALGORITHM, type Role } from '../actors/contract/tokens.js';
import { z } from 'zod';
import type { Caller } from '../actors/contract/views.js';
import { httpProblem, originOf, sendProblem } from './problems.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling; set by the auth hook on every route of the authenticated scope (never read by public routes). */
    caller: Caller;
  }
  interface FastifyContextConfig {
    /** Roles allowed on the route; any authenticated caller when absent. */
    roles?: readonly Role[];
  }
}

const REALM = 'fleetactors';

const claimsSchema = z.object({
  // No control characters: ids derived from `sub + '\n' + key` (api/idempotency.ts) must not collide.
  sub: z.string().regex(/^[^\p{Cc}]{1,128}$/u),
  role: z.enum(['customer', 'operator']),
  exp: z.number(),
});

/** `expiresAtMs`: the token's `exp`, for what outlives one request (a live stream ends with its token). */
export type TokenCheck = { readonly ok: true; readonly caller: Caller; readonly expiresAtMs: number } | { readonly ok: false; readonly reason: string };

/** Verified tokens kept (the oldest goes first), as fast-jwt's own cache did. */
const VERIFIED_TOKENS = 1000;

/**
 * Verifies a bearer token: HS256 only (no `none`, no algorithm confusion), `sub`, `role` and `exp` required.
 * A token verified before is answered from a map keyed by the token itself until its `exp`: no HMAC,
 * no claims parsing, and no hash of the token either (fast-jwt's cache SHA-256-hashes every token to
 * look it up, 3 % of the main thread under the booking load, where tokens are mostly new).
 */
export function createTokenVerifier(secret: string): (token: string) => TokenCheck {
  const verify = createVerifier({ key: secret, algorithms: [ALGORITHM], requiredClaims: ['sub', 'role', 'exp'] });
  const verified = new Map<string, { readonly caller: Caller; readonly expiresAtMs: number }>();
  return (token) => {
    const known = verified.get(token);
    if (known !== undefined) {
      if (Date.now() < known.expiresAtMs) return { ok: true, caller: known.caller, expiresAtMs: known.expiresAtMs };
      verified.delete(token); // expired: verify below says so
    }
    let payload: unknown;
    try {
      payload = verify(token);
    } catch (error) {
      if (error instanceof TokenError) {
        return { ok: false, reason: reasonOf(error) };
      }
      throw error;
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) return { ok: false, reason: 'the token does not carry valid sub and role claims' };
    const caller: Caller = { id: claims.data.sub, role: claims.data.role };
    if (verified.size >= VERIFIED_TOKENS) verified.delete(verified.keys().next().value!);
    const expiresAtMs = claims.data.exp * 1000;
    verified.set(token, { caller, expiresAtMs });
    return { ok: true, caller, expiresAtMs };
  };
}

/** How to make a token that this server accepts: the one remedy a 401 should name. */
export const HOW_TO_GET_A_TOKEN = 'make one with `npm run -s token -- --sub <you> --role customer` (or --role operator), in a shell with the server\'s FLEET_JWT_SECRET';

/** What went wrong with a token, in words that point at the likely cause. */
function reasonOf(error: TokenError): string {
  switch (error.code) {
    case TokenError.codes.expired:
      return 'the token has expired; make a new one with `npm run -s token`';
    case TokenError.codes.invalidSignature:
      // The usual cause in practice: the token was made in a shell whose secret is not the server's.
      return "its signature does not match this server's secret: it was probably signed with another FLEET_JWT_SECRET (npm run token signs with the FLEET_JWT_SECRET of its shell, or the dev secret when unset)";
    default:
      return 'the token is not valid';
  }
}

const BEARER = /^Bearer[ ]+(\S+)[ ]*$/i;

/**
 * Authenticates every route of `scope` (a fastify encapsulation context: public routes live outside it)
 * and enforces the route's `config.roles`. Runs on `onRequest`, before the body is even read.
 */
export function installAuth(scope: FastifyInstance, secret: string): void {
  const verify = createTokenVerifier(secret);
  scope.decorateRequest('caller', null as unknown as Caller);
  scope.addHook('onRequest', async (request, reply) => {
    const header = request.headers.authorization;
    if (header === undefined) return unauthorized(request, reply, `Send an Authorization: Bearer <token> header; ${HOW_TO_GET_A_TOKEN}.`, null);
    const match = BEARER.exec(header);
    if (!match) return unauthorized(request, reply, 'The Authorization header must be "Bearer <token>".', 'invalid_request');
    const check = verify(match[1]!);
    if (!check.ok) return unauthorized(request, reply, `Bearer token rejected: ${check.reason}.`, 'invalid_token');
    request.caller = check.caller;
    const roles = request.routeOptions.config.roles;
    if (roles && !roles.includes(check.caller.role)) {
      return sendProblem(reply, httpProblem('forbidden', `This call is for the ${roles.join(' or ')} role; the token's role is ${check.caller.role}.`, originOf(request)));
    }
    return undefined;
  });
}

/** RFC 6750 §3: the challenge names the error only when a token was sent. */
function unauthorized(request: FastifyRequest, reply: FastifyReply, detail: string, error: 'invalid_request' | 'invalid_token' | null): FastifyReply {
  const challenge = error ? `Bearer realm="${REALM}", error="${error}"` : `Bearer realm="${REALM}"`;
  reply.header('www-authenticate', challenge);
  return sendProblem(reply, httpProblem('unauthorized', detail, originOf(request)));
}
