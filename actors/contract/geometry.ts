/**
 * Plane geometry on [lon, lat] positions (GeoJSON order), pure. An operating area spans a city, where
 * treating degrees as a plane is what every geofencing implementation does; no library needed.
 */

export type Position = readonly number[];

/** A position's coordinates; a position with fewer than two (the schema refuses those) reads as NaN, which matches nothing. */
const x = (position: Position | undefined): number => position?.[0] ?? Number.NaN;
const y = (position: Position | undefined): number => position?.[1] ?? Number.NaN;
export type Ring = readonly Position[];
/** GeoJSON Polygon coordinates: the outer ring first, then holes. */
export type PolygonRings = readonly Ring[];

/** Even-odd ray casting. A point exactly on an edge counts as inside (a vehicle on the boundary line is in). */
export function pointInRing(lon: number, lat: number, ring: Ring): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
    const xi = x(ring[i]);
    const yi = y(ring[i]);
    const xj = x(ring[j]);
    const yj = y(ring[j]);
    if (onSegment(lon, lat, xi, yi, xj, yj)) return true;
    if (yi > lat !== yj > lat && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Inside the outer ring and in none of the holes. */
export function pointInPolygon(lon: number, lat: number, polygon: PolygonRings): boolean {
  const [outer, ...holes] = polygon;
  if (!outer || !pointInRing(lon, lat, outer)) return false;
  return !holes.some((hole) => pointInRing(lon, lat, hole) && !onRingEdge(lon, lat, hole));
}

export function pointInMultiPolygon(lon: number, lat: number, polygons: readonly PolygonRings[]): boolean {
  return polygons.some((polygon) => pointInPolygon(lon, lat, polygon));
}

/** What is wrong with a linear ring (RFC 7946 §3.1.6), or null: at least 4 positions, closed, not crossing itself. */
export function ringProblem(ring: Ring): string | null {
  if (ring.length < 4) return `has ${ring.length} positions; a ring needs at least 4`;
  const first = ring[0] ?? [];
  const last = ring[ring.length - 1] ?? [];
  if (x(first) !== x(last) || y(first) !== y(last)) return `is open: its last position [${last.join(', ')}] is not its first [${first.join(', ')}]`;
  const crossing = selfIntersection(ring);
  if (crossing) return `intersects itself: edge ${crossing[0]} crosses edge ${crossing[1]}`;
  return null;
}

/**
 * The first two non-adjacent edges of a closed ring that touch, as edge indexes, or null. O(n²): zone
 * rings have hundreds of points, and this runs once per zone file, never per request.
 */
export function selfIntersection(ring: Ring): [number, number] | null {
  const edges = ring.length - 1;
  for (let a = 0; a < edges; a += 1) {
    for (let b = a + 1; b < edges; b += 1) {
      // Neighbours share an endpoint by construction (the first and last edge too).
      if (b === a + 1 || (a === 0 && b === edges - 1)) continue;
      if (segmentsTouch(ring[a] ?? [], ring[a + 1] ?? [], ring[b] ?? [], ring[b + 1] ?? [])) return [a, b];
    }
  }
  return null;
}

function segmentsTouch(p1: Position, p2: Position, q1: Position, q2: Position): boolean {
  const d1 = orientation(q1, q2, p1);
  const d2 = orientation(q1, q2, p2);
  const d3 = orientation(p1, p2, q1);
  const d4 = orientation(p1, p2, q2);
  if (((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0))) return true;
  return (
    (d1 === 0 && within(q1, q2, p1)) || (d2 === 0 && within(q1, q2, p2)) || (d3 === 0 && within(p1, p2, q1)) || (d4 === 0 && within(p1, p2, q2))
  );
}

const orientation = (a: Position, b: Position, c: Position): number => (x(b) - x(a)) * (y(c) - y(a)) - (y(b) - y(a)) * (x(c) - x(a));

const within = (a: Position, b: Position, p: Position): boolean =>
  Math.min(x(a), x(b)) <= x(p) && x(p) <= Math.max(x(a), x(b)) && Math.min(y(a), y(b)) <= y(p) && y(p) <= Math.max(y(a), y(b));

function onSegment(x: number, y: number, x1: number, y1: number, x2: number, y2: number): boolean {
  return (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) === 0 && within([x1, y1], [x2, y2], [x, y]);
}

function onRingEdge(lon: number, lat: number, ring: Ring): boolean {
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
    if (onSegment(lon, lat, x(ring[i]), y(ring[i]), x(ring[j]), y(ring[j]))) return true;
  }
  return false;
}
