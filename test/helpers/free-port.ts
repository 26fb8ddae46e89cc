import { createServer } from 'node:net';

/**
 * A loopback port that was free a moment ago. The kernel picks it (port 0), so two tests running in
 * parallel never pick the same one; the small window between close and reuse is accepted in tests.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('freePort: the server has no TCP address'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
