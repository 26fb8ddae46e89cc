import { it } from 'vitest';
import { startTestFleet } from '../helpers/fleet.js';
it('probe', async () => {
  const t = await startTestFleet({ ASK_TIMEOUT_MS: '300', PAYMENT_TIMEOUT_MS: '1000' });
  try {
    await t.registerVehicle('x');
    const h = { 'idempotency-key': 'k1' };
    const a = await t.book('alice', 'x', { paymentMethod: 'tok_timeout' }, h);
    console.log('first', a.statusCode, a.json().type);
    await new Promise((r) => setTimeout(r, 1500));
    for (let i = 0; i < 3; i++) { const b = await t.book('alice', 'x', { paymentMethod: 'tok_timeout' }, h); console.log('retry', b.statusCode, b.json().type, b.headers['idempotent-replayed']); }
    console.log(t.fleet.db.prepare("SELECT status, wake_at FROM bookings").all(), (await t.request({method:'GET', url:'/vehicles/x'})).json().status);
  } finally { await t.close(); }
});
