/**
 * The trace steps' table as migration 1 created it. Since then it lives in a file of its own
 * (persistence/trace-file.ts), whose history starts from this same text; the journal's file keeps
 * the table, empty. Both are histories: a change to either is a new migration, never an edit here.
 */
export const TRACE_STEPS_TABLE = `
  CREATE TABLE trace_steps (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id       TEXT    NOT NULL,
    span_id        TEXT    NOT NULL,
    parent_span_id TEXT,
    from_actor     TEXT    NOT NULL,
    to_actor       TEXT    NOT NULL,
    message_type   TEXT    NOT NULL,
    payload        TEXT,
    state_before   TEXT,
    state_after    TEXT,
    outcome        TEXT,
    started_at     INTEGER NOT NULL,
    duration_us    INTEGER NOT NULL
  );
  CREATE INDEX trace_steps_trace ON trace_steps (trace_id, id);
  CREATE INDEX trace_steps_to_actor ON trace_steps (to_actor, id);
`;

/**
 * Schema migrations, applied in order and recorded in `PRAGMA user_version`.
 * Never edit a migration that has shipped: append a new one.
 */
export const migrations: readonly string[] = [
  /* 1: journal, snapshots, read models, idempotency, relay checkpoints, traces */
  `
  CREATE TABLE journal (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    persistence_key TEXT    NOT NULL,
    sequence_number INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    data            TEXT    NOT NULL,
    tags            TEXT    NOT NULL DEFAULT '',
    is_public       INTEGER NOT NULL DEFAULT 0,
    trace_id        TEXT,
    span_id         TEXT,
    created_at      INTEGER NOT NULL,
    is_deleted      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (persistence_key, sequence_number)
  );
  CREATE INDEX journal_public ON journal (position) WHERE is_public = 1;

  CREATE TABLE snapshots (
    persistence_key TEXT    PRIMARY KEY,
    sequence_number INTEGER NOT NULL,
    data            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
  );

  CREATE TABLE vehicles (
    id            TEXT PRIMARY KEY,
    type          TEXT NOT NULL,
    model         TEXT,
    status        TEXT NOT NULL,
    booking_id    TEXT,
    lat           REAL NOT NULL,
    lon           REAL NOT NULL,
    battery       REAL,
    speed_kmh     REAL,
    online        INTEGER,
    last_seen_at  INTEGER,
    registered_at INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
  );
  CREATE INDEX vehicles_status ON vehicles (status, type);

  CREATE TABLE bookings (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    vehicle_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    wake_at     INTEGER,
    updated_at  INTEGER NOT NULL
  );
  CREATE INDEX bookings_wake ON bookings (wake_at) WHERE wake_at IS NOT NULL;
  CREATE INDEX bookings_customer ON bookings (customer_id, created_at);

  CREATE TABLE idempotency_keys (
    customer_id  TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status_code  INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (customer_id, key)
  );
  CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

  CREATE TABLE checkpoints (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
  );

${TRACE_STEPS_TABLE}  `,
  /* 2: retention of traces deletes by time */
  `CREATE INDEX trace_steps_started ON trace_steps (started_at);`,
  /* 3: when a ride is due back (its unlock plus the booked minutes), to flag rides far past it */
  `
  ALTER TABLE bookings ADD COLUMN duration_minutes INTEGER;
  ALTER TABLE bookings ADD COLUMN due_back_at INTEGER;
  CREATE INDEX bookings_due_back ON bookings (due_back_at) WHERE due_back_at IS NOT NULL;
  `,
  /* 4: the vehicle's public GBFS id, rotated after every trip (docs/gbfs.md, "Id rotation") */
  `ALTER TABLE vehicles ADD COLUMN public_id TEXT;
   UPDATE vehicles SET public_id = lower(hex(randomblob(16)));
   CREATE INDEX vehicles_public_id ON vehicles (public_id);`,
  /* 5: what riders did against the operating area during their rides (persistence/area-violations.ts) */
  `
  CREATE TABLE area_violations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    vehicle_id    TEXT    NOT NULL,
    vehicle_type  TEXT    NOT NULL,
    booking_id    TEXT,
    kind          TEXT    NOT NULL,
    zone          TEXT    NOT NULL,
    limit_kph     REAL,
    lat           REAL    NOT NULL,
    lon           REAL    NOT NULL,
    max_speed_kmh REAL    NOT NULL,
    readings      INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    last_at       INTEGER NOT NULL,
    open          INTEGER NOT NULL
  );
  CREATE INDEX area_violations_open ON area_violations (vehicle_id) WHERE open = 1;
  CREATE INDEX area_violations_started ON area_violations (started_at);
  `,
];

/**
 * The main thread's registry (server/registry.ts): the fleet's shard count and the idempotency keys,
 * which belong to no shard. A key is claimed (status_code NULL) before its request runs.
 */
export const registryMigrations: readonly string[] = [
  `
  CREATE TABLE fleet_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );

  CREATE TABLE idempotency_keys (
    customer_id  TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status_code  INTEGER,
    body         TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (customer_id, key)
  );
  CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
  `,
];
