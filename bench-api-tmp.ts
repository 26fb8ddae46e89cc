import { Agent, request } from 'node:http';
import { buildApp } from './api/app.js';
import { testDeps } from './test/helpers/stub-fleet.js';
import { asCustomer } from './test/helpers/tokens.js';

const app = buildApp(testDeps());
const address = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
const auth = asCustomer();
const agent = new Agent({ keepAlive: true, maxSockets: 16 });
function call(path: string, method: string, headers: Record<string, string>, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: address.port, path, method, headers, agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode!)); });
    req.on('error', reject);
    req.end(body);
  });
}
async function run(name: string, make: (i: number) => [string, string, Record<string, string>, string?]) {
  let done = 0; const lat: number[] = []; const end = Date.now() + 4000;
  const worker = async () => { while (Date.now() < end) { const [p, m, h, b] = make(done); const t = performance.now(); await call(p, m, h, b); lat.push(performance.now() - t); done++; } };
  await Promise.all(Array.from({ length: 16 }, worker));
  lat.sort((a, b) => a - b);
  console.log(name, Math.round(done / 4), 'req/s', 'p50', lat[Math.floor(lat.length * 0.5)]!.toFixed(2), 'ms p99', lat[Math.floor(lat.length * 0.99)]!.toFixed(2), 'ms');
}
const json = { ...auth, 'content-type': 'application/json' };
await run('GET /health', () => ['/health', 'GET', {}]);
await run('GET /vehicles/:id', () => ['/vehicles/veh-1', 'GET', auth]);
await run('POST /bookings (no key)', () => ['/bookings', 'POST', json, '{"vehicleId":"veh-1"}']);
await run('POST /bookings (fresh key)', (i) => ['/bookings', 'POST', { ...json, 'idempotency-key': `k-${i}-${Math.random()}` }, '{"vehicleId":"veh-1"}']);
agent.destroy();
await app.close();
