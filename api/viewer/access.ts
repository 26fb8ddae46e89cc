import { createSigner, createVerifier, TokenError } from 'fast-jwt';
import { z } from 'zod';

/**
 * Viewer links: `/traces/<id>/view?access=<token>`. A browser cannot send an Authorization header
 * when a person opens a link, and the operator's bearer token must never sit in a URL (history, logs,
 * Referer). So an operator asks for a link (POST /traces/:id/view-link) and gets a token that
 *  - is scoped to one booking or trace id and only reads it (the page's data and its live stream),
 *  - lives minutes (default 15), so a link pasted into a chat is soon worthless,
 *  - carries `role: trace-link`, which the API's bearer check (api/auth.ts) refuses: it never works as
 *    an operator token anywhere else.
 * It is an HS256 JWT under the API's secret, so any instance with the same secret accepts it and
 * nothing is stored.
 */

const ALGORITHM = 'HS256';
const AUDIENCE = 'fleetactors/trace-view';
export const LINK_ROLE = 'trace-link';
export const DEFAULT_LINK_TTL_MINUTES = 15;
export const MAX_LINK_TTL_MINUTES = 60;

const claimsSchema = z.object({ role: z.literal(LINK_ROLE), trace: z.string().min(1), sub: z.string(), exp: z.number() });

export interface ViewerLink {
  readonly token: string;
  /** Epoch ms. */
  readonly expiresAt: number;
}

/** A link token for `id`, issued on behalf of operator `issuer` (kept as `sub` for the logs). */
export function signViewerLink(secret: string, id: string, issuer: string, ttlMinutes = DEFAULT_LINK_TTL_MINUTES, nowMs = Date.now()): ViewerLink {
  const ttlMs = ttlMinutes * 60_000;
  const sign = createSigner({ key: secret, algorithm: ALGORITHM, expiresIn: ttlMs, aud: AUDIENCE, clockTimestamp: nowMs });
  return { token: sign({ sub: issuer, role: LINK_ROLE, trace: id }), expiresAt: nowMs + ttlMs };
}

export type LinkCheck = { readonly ok: true; readonly issuer: string; readonly expiresAt: number } | { readonly ok: false; readonly reason: string };

export function createViewerLinkVerifier(secret: string): (token: string, id: string) => LinkCheck {
  const verify = createVerifier({ key: secret, algorithms: [ALGORITHM], allowedAud: AUDIENCE, requiredClaims: ['aud', 'exp', 'role', 'trace'] });
  return (token, id) => {
    let payload: unknown;
    try {
      payload = verify(token);
    } catch (error) {
      if (error instanceof TokenError) return { ok: false, reason: error.code === TokenError.codes.expired ? 'the link has expired' : 'the link is not valid' };
      throw error;
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) return { ok: false, reason: 'the link is not valid' };
    if (claims.data.trace !== id) return { ok: false, reason: `the link is for ${claims.data.trace}, not ${id}` };
    return { ok: true, issuer: claims.data.sub, expiresAt: claims.data.exp * 1000 };
  };
}
