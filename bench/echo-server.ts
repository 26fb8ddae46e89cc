/**
 * The reference: a bare fastify POST route that echoes its JSON body, in a process of its own.
 * `node --import tsx bench/echo-server.ts` prints `{"port": N}` on stdout once it listens.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.post('/echo', async (request) => request.body);
app.get('/health', async () => ({ status: 'ok' }));
const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
process.stdout.write(`${JSON.stringify({ port: Number(new URL(address).port) })}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
