#!/usr/bin/env bash
# The README walkthrough ("A first booking, by hand", the third terminal), copied line by line: CI runs
# it against a real server with FLEET_SEED=20 and a virtual demo-0001 (test/e2e/readme-walkthrough.test.ts,
# which also checks that it is still the README's block, byte for byte, below the marker).
set -euo pipefail
cd "$(dirname "$0")/.."
# --- README walkthrough ---
API=http://localhost:${PORT:-3000}
TOKEN=$(npm run -s token -- --sub alice --role customer)

BOOKING=$(curl -s -X POST "$API/bookings" -H "authorization: Bearer $TOKEN" \
     -H 'content-type: application/json' -H 'idempotency-key: first-ride' \
     -d '{"vehicleId":"demo-0001"}' | node -p 'JSON.parse(fs.readFileSync(0, "utf8")).id')
echo "booked $BOOKING"

curl -s "$API/bookings/$BOOKING" -H "authorization: Bearer $TOKEN"; echo
# → {"id":"bk_s1_…","status":"CONFIRMED","authorization":{"id":"auth_bk_s1_…","amount":1270,"currency":"EUR"},…}

curl -s -X POST "$API/unlock" -H "authorization: Bearer $TOKEN" \
     -H 'content-type: application/json' -d "{\"bookingId\":\"$BOOKING\"}"; echo
# → {"bookingId":"bk_s1_…","vehicleId":"demo-0001","status":"SUCCESS","unlockedAt":"…"}

curl -s -X POST "$API/bookings/$BOOKING/end" -H "authorization: Bearer $TOKEN"; echo
# → {"id":"bk_s1_…","status":"COMPLETED","charge":{"amount":139,"currency":"EUR"},…}

curl -s "$API/bookings" -H "authorization: Bearer $TOKEN"; echo
# → {"items":[{"id":"bk_s1_…","vehicleId":"demo-0001","status":"COMPLETED",…}],"next":null}: your bookings, newest first

npm run trace -- "$BOOKING"                   # the booking's trace as a sequence diagram (--step to walk it)
npm run replay -- booking "$BOOKING" --until 3   # time travel: its state after its 3rd event, from the journal
npm run trace -- "$BOOKING" --open            # a link (15 min, this booking only) to step through it in the browser
OPS=$(npm run -s token -- --sub ops --role operator)
curl -s "$API/events?after=0" -H "authorization: Bearer $OPS"; echo   # booking.created, vehicle.unlocked, …
