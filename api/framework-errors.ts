import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { HTTP_PROBLEMS, httpProblem, originOf, problemTypeUri, PROBLEM_CONTENT_TYPE, sendProblem, type HttpProblemKind } from './problems.js';

/**
 * problem+json for the answers fastify and Node's HTTP parser give before any route or error handler
 * runs: a path parameter past fastify's `maxParamLength` (414), a URL that cannot be decoded (400), a
 * URL longer than MAX_URL_LENGTH (414), and what the parser itself refuses on the socket — headers
 * past Node's `maxHeaderSize` (431), a request that is not HTTP (400), a request timeout (408).
 */

/**
 * Longer URLs are refused with 414 before routing. Well under Node's 16 KiB `maxHeaderSize` (which
 * counts the request line too), so a long URL with ordinary headers gets 414, not the parser's 431;
 * 8 KiB is what common proxies (nginx, HAProxy) pass by default.
 */
export const MAX_URL_LENGTH = 8 * 1024;

/** The fastify constructor options that route its own early answers here. */
export const frameworkErrorOptions = {
  frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    const kind: HttpProblemKind = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'uri-too-long' : 'bad-request';
    request.log.info({ code: error.code }, 'request rejected before routing');
    const detail = kind === 'uri-too-long' ? 'A path segment is longer than any id this API accepts.' : 'The URL cannot be decoded.';
    void sendProblem(reply, httpProblem(kind, detail, { ...originOf(request), instance: request.url.slice(0, 256) }));
  },
  clientErrorHandler: (error: NodeJS.ErrnoException, socket: Socket): void => answerOnSocket(error, socket),
} satisfies Pick<FastifyServerOptions, 'frameworkErrors' | 'clientErrorHandler'>;

/** The URL length check, first of the onRequest hooks that may refuse a request. */
export function installFrameworkErrors(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    if (request.url.length <= MAX_URL_LENGTH) return undefined;
    request.log.info({ length: request.url.length }, 'request rejected: URL too long');
    // The instance would repeat the URL that was too long: its path is enough.
    const origin = { ...originOf(request), instance: request.url.slice(0, 256) };
    return sendProblem(reply, httpProblem('uri-too-long', `The URL is longer than ${MAX_URL_LENGTH} characters.`, origin));
  });
}

/** What the HTTP parser refused, by Node's error code. */
const PARSER_ERRORS: Readonly<Record<string, { readonly kind: HttpProblemKind | null; readonly status: number; readonly detail: string }>> = {
  HPE_HEADER_OVERFLOW: { kind: 'headers-too-large', status: 431, detail: 'The request line and headers are larger than the server accepts (16 KiB).' },
  ERR_HTTP_REQUEST_TIMEOUT: { kind: null, status: 408, detail: 'The request was not received in time.' },
};

/**
 * Node hands a parser failure to `clientError` with the raw socket: no request, no reply, no hooks. The
 * answer is written by hand, once, and the connection closed (its framing can no longer be trusted).
 */
function answerOnSocket(error: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has no one to answer (https://nodejs.org/api/http.html#event-clienterror).
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const known = PARSER_ERRORS[error.code ?? ''];
  const status = known?.status ?? 400;
  const kind = known?.kind === undefined ? 'bad-request' : known.kind;
  const problem = {
    type: kind ? problemTypeUri(HTTP_PROBLEMS[kind].slug) : 'about:blank',
    title: kind ? HTTP_PROBLEMS[kind].title : (STATUS_CODES[status] ?? 'Error'),
    status,
    detail: known?.detail ?? 'The request is not valid HTTP.',
  };
  const body = JSON.stringify(problem);
  // A response already under way on this connection (keep-alive, pipelining, an SSE stream) would get
  // these bytes in its body: then the connection is only closed, as Node's own handler does.
  const inProgress = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (socket.writable && !inProgress?.headersSent) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
