/**
 * The request and booking limits, off: the test fleets of the other suites reuse a few customer names
 * and one loopback address for hundreds of requests (1 000 racers, many bookings by "alice" on one
 * fleet), which is not what the limits guard against. The limits' own tests
 * (test/unit and test/integration, *limits*.test.ts) set them; any test may override these through its env.
 */
export const LIMITS_OFF: Readonly<Record<string, string>> = {
  RATE_LIMIT_PER_CUSTOMER: '0',
  RATE_LIMIT_PER_IP: '0',
  MAX_ACTIVE_BOOKINGS_PER_CUSTOMER: '0',
};
