/** Simulated vehicle ids: `${prefix}0001` …, the same form as the server's FLEET_SEED ids (demo-0001 …). */
export const vehicleId = (prefix: string, index: number): string => `${prefix}${String(index + 1).padStart(4, '0')}`;
