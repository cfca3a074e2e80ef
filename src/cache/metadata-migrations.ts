// The metadata database's schema history. Each entry moves the schema from version i to i+1;
// entries are append-only so that any older database can be brought forward in order.
import type BetterSqlite3 from "better-sqlite3";

export const SCHEMA_MIGRATIONS: readonly ((db: BetterSqlite3.Database) => void)[] = [
  // 0 → 1: the first schema.
  (db) => {
    db.exec(`
      CREATE TABLE snapshots (
        id           TEXT PRIMARY KEY,
        parent       TEXT,
        kind         TEXT NOT NULL CHECK (kind IN ('active', 'committed')),
        size         INTEGER NOT NULL DEFAULT 0,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER,
        usage_count  INTEGER NOT NULL DEFAULT 0,
        description  TEXT NOT NULL DEFAULT '',
        record_type  TEXT NOT NULL DEFAULT 'regular',
        -- set in the same transaction that drops the snapshot's cache records, before the files go:
        -- a crash in between leaves a row that the next garbage collection finishes removing
        removing     INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX snapshots_parent ON snapshots (parent);

      -- layer blobs made from (or unpacked into) a snapshot
      CREATE TABLE snapshot_blobs (
        snapshot_id TEXT NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
        digest      TEXT NOT NULL,
        size        INTEGER NOT NULL,
        PRIMARY KEY (snapshot_id, digest)
      );
      CREATE INDEX snapshot_blobs_digest ON snapshot_blobs (digest);

      CREATE TABLE cache_records (
        key          TEXT PRIMARY KEY,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL,
        usage_count  INTEGER NOT NULL DEFAULT 0,
        size         INTEGER NOT NULL DEFAULT 0,
        description  TEXT NOT NULL DEFAULT ''
      );
      CREATE TABLE cache_outputs (
        key          TEXT NOT NULL REFERENCES cache_records (key) ON DELETE CASCADE,
        output_index INTEGER NOT NULL,
        snapshot_id  TEXT NOT NULL,
        PRIMARY KEY (key, output_index)
      );
      CREATE INDEX cache_outputs_snapshot ON cache_outputs (snapshot_id);
      CREATE TABLE cache_output_layers (
        key          TEXT NOT NULL,
        output_index INTEGER NOT NULL,
        layer_index  INTEGER NOT NULL,
        digest       TEXT NOT NULL,
        diff_id      TEXT,
        size         INTEGER NOT NULL,
        media_type   TEXT,
        PRIMARY KEY (key, output_index, layer_index),
        FOREIGN KEY (key, output_index) REFERENCES cache_outputs (key, output_index) ON DELETE CASCADE
      );
      CREATE INDEX cache_output_layers_digest ON cache_output_layers (digest);

      CREATE TABLE leases (
        id         TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      );
      CREATE TABLE lease_resources (
        lease_id TEXT NOT NULL REFERENCES leases (id) ON DELETE CASCADE,
        kind     TEXT NOT NULL CHECK (kind IN ('blob', 'snapshot')),
        ref      TEXT NOT NULL,
        PRIMARY KEY (lease_id, kind, ref)
      );
      CREATE INDEX lease_resources_ref ON lease_resources (kind, ref);

      CREATE TABLE image_resolutions (
        ref         TEXT NOT NULL,
        platform    TEXT NOT NULL,
        digest      TEXT NOT NULL,
        resolved_at INTEGER NOT NULL,
        PRIMARY KEY (ref, platform)
      );

      CREATE TABLE cache_mounts (
        id           TEXT PRIMARY KEY,
        snapshot_id  TEXT NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
        sharing      TEXT NOT NULL CHECK (sharing IN ('shared', 'private', 'locked')),
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL
      );
      CREATE INDEX cache_mounts_snapshot ON cache_mounts (snapshot_id);
    `);
  },
  // 1 → 2: what exports and image unpacking remember about snapshots.
  (db) => {
    db.exec(`
      -- the layer a snapshot's diff became (or was unpacked from), so it is compressed only once
      CREATE TABLE snapshot_layers (
        snapshot_id TEXT PRIMARY KEY REFERENCES snapshots (id) ON DELETE CASCADE,
        diff_id     TEXT NOT NULL,
        digest      TEXT NOT NULL,
        size        INTEGER NOT NULL,
        media_type  TEXT NOT NULL,
        empty       INTEGER NOT NULL DEFAULT 0
      );
      -- image layer chains (OCI ChainID) already unpacked, shared by every build
      CREATE TABLE chain_snapshots (
        chain_id    TEXT PRIMARY KEY,
        snapshot_id TEXT NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE
      );
      CREATE INDEX chain_snapshots_snapshot ON chain_snapshots (snapshot_id);
    `);
  },
];

export const SCHEMA_VERSION = SCHEMA_MIGRATIONS.length;
