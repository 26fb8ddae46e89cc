import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Rejection } from '../actors/contract/rejections.js';
import { httpProblem, originOf, rejectionProblem, sendProblem, type HttpProblemKind, type Problem } from './problems.js';

/**
 * Turns every failure fastify or a handler raises into problem+json. Fastify's errors are recognised by
 * their stable `code` (FST_ERR_*), never by their message.
 */

/** Fastify error codes that are the client's fault, and the problem each becomes. */
const CLIENT_ERRORS: Readonly<Record<string, HttpProblemKind>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed-json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed-json',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported-media-type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'body-too-large',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad-request',
  FST_ERR_BAD_URL: 'bad-request',
  // Ours (api/json-body.ts): refused before the body is parsed.
  FLEET_ERR_BODY_TOO_DEEP: 'body-too-deep',
};

const DETAILS: Partial<Record<HttpProblemKind, string>> = {
  'unsupported-media-type': 'Send the body as application/json.',
};

export interface ValidationIssue {
  readonly path: string;
  readonly message: string;
}

export function installErrorHandling(app: FastifyInstance, bodyLimitBytes: number, isStorageFull: (error: unknown) => boolean): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.code === 'FST_ERR_VALIDATION' && error.validation) {
      const errors = validationIssues(error);
      request.log.info({ errors }, 'request rejected: invalid');
      return sendProblem(reply, httpProblem('validation', `The ${error.validationContext ?? 'request'} does not match the schema.`, originOf(request), { errors }));
    }
    const kind = CLIENT_ERRORS[error.code];
    if (kind) {
      request.log.info({ code: error.code }, 'request rejected');
      const detail = kind === 'body-too-large' ? `The body exceeds ${bodyLimitBytes} bytes.` : (DETAILS[kind] ?? error.message);
      return sendProblem(reply, httpProblem(kind, detail, originOf(request)));
    }
    // A port that cannot answer at all (a shard restarting) throws an error that carries its rejection.
    const rejection = (error as { rejection?: Rejection }).rejection;
    if (rejection && typeof rejection.type === 'string') {
      request.log.warn({ err: error }, 'request refused: a part of the system is unavailable');
      return sendProblem(reply, rejectionProblem(rejection, originOf(request)));
    }
    const status = typeof error.statusCode === 'number' ? error.statusCode : 500;
    if (status >= 400 && status < 500) {
      // A client error from a plugin we have no row for: still a problem, with the generic type.
      request.log.info({ code: error.code }, 'request rejected');
      return sendProblem(reply, genericProblem(status, error.message, request));
    }
    if (isStorageFull(error)) {
      // The registry's disk is full (an Idempotency-Key claim could not be written): the same clear 503
      // as a journal that cannot commit, not a 500.
      request.log.error({ err: error }, 'request refused: the disk is full');
      return sendProblem(reply, rejectionProblem({ type: 'StorageFull', actor: 'registry' }, originOf(request)));
    }
    // The stack and message stay in the log: they may name internals, the client gets the trace id.
    request.log.error({ err: error }, 'request failed');
    return sendProblem(reply, httpProblem('internal', 'The server failed to answer this request; the trace id identifies it in the logs.', originOf(request)));
  });

  const routes = new RouteTable();
  app.addHook('onRoute', (route) => routes.add(route.method, route.url));

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0]!;
    const allowed = routes.methodsFor(path);
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '));
      return sendProblem(reply, httpProblem('method-not-allowed', `${request.method} is not supported on ${path}; use ${allowed.join(', ')}.`, originOf(request)));
    }
    return sendProblem(reply, httpProblem('not-found', `No resource at ${request.method} ${path}.`, originOf(request)));
  });
}

/** Zod issues as `{path, message}`: `body.location.lat`; an unknown field gets one entry per field. */
export function validationIssues(error: FastifyError): ValidationIssue[] {
  const context = error.validationContext ?? 'request';
  const issues: ValidationIssue[] = [];
  for (const issue of error.validation ?? []) {
    const base = context + issue.instancePath.replaceAll('/', '.').replace(/\.$/, '');
    const unknownKeys = issue.keyword === 'unrecognized_keys' ? (issue.params as { keys?: unknown }).keys : undefined;
    if (Array.isArray(unknownKeys)) {
      for (const key of unknownKeys) issues.push({ path: `${base}.${String(key)}`, message: 'unknown field' });
    } else {
      issues.push({ path: base, message: issue.message ?? issue.keyword });
    }
  }
  return issues;
}

function genericProblem(status: number, detail: string, request: FastifyRequest): Problem {
  // RFC 9457 §4.2.1: about:blank when the status code says all there is to say.
  return { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail, ...originOf(request) };
}

/** Route templates per method, to tell 405 (path exists, method does not) from 404. */
class RouteTable {
  private readonly routes: { readonly pattern: RegExp; readonly methods: readonly string[] }[] = [];

  add(method: string | readonly string[], url: string): void {
    const pattern = new RegExp(
      `^${url
        .split('/')
        .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment === '*' ? '.*' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/')}/?$`,
    );
    this.routes.push({ pattern, methods: typeof method === 'string' ? [method] : method });
  }

  methodsFor(path: string): string[] {
    const methods = new Set<string>();
    for (const route of this.routes) if (route.pattern.test(path)) for (const method of route.methods) methods.add(method);
    return [...methods].sort();
  }
}
