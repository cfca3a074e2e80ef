// The engine's metadata database (`<stateDir>/metadata.db`, SQLite in WAL mode): opening,
// durability settings, schema migrations and transactions. All SQL lives in `metadata-*.ts`;
// the rest of the engine sees typed tables only.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { CacheRecordTable } from "./metadata-cache-records.js";
import { ChainSnapshotTable, SnapshotLayerTable } from "./metadata-layers.js";
import { LeaseTable } from "./metadata-leases.js";
import { SCHEMA_MIGRATIONS, SCHEMA_VERSION } from "./metadata-migrations.js";
import { CacheMountTable, ImageResolutionTable } from "./metadata-resolutions.js";
import { SnapshotTable } from "./metadata-snapshots.js";

export interface MetadataDbOptions {
  /** How long to wait for another connection's write lock before failing (default 10 s). */
  readonly busyTimeoutMs?: number;
  /** The clock used to drop expired leases at open. */
  readonly now?: () => number;
}

export class MetadataDb {
  readonly path: string;
  readonly snapshots: SnapshotTable;
  readonly cacheRecords: CacheRecordTable;
  readonly leases: LeaseTable;
  readonly imageResolutions: ImageResolutionTable;
  readonly cacheMounts: CacheMountTable;
  readonly snapshotLayers: SnapshotLayerTable;
  readonly chainSnapshots: ChainSnapshotTable;
  /** How many expired leases were dropped when the database was opened. */
  readonly expiredLeasesDropped: number;
  private readonly db: Database.Database;

  private constructor(path: string, db: Database.Database, now: number) {
    this.path = path;
    this.db = db;
    this.snapshots = new SnapshotTable(db);
    this.cacheRecords = new CacheRecordTable(db);
    this.leases = new LeaseTable(db);
    this.imageResolutions = new ImageResolutionTable(db);
    this.cacheMounts = new CacheMountTable(db);
    this.snapshotLayers = new SnapshotLayerTable(db);
    this.chainSnapshots = new ChainSnapshotTable(db);
    this.expiredLeasesDropped = this.leases.deleteExpired(now);
  }

  /** Opens (creating if needed) `<stateDir>/metadata.db` and brings its schema up to date. */
  static open(stateDir: string, opts: MetadataDbOptions = {}): MetadataDb {
    mkdirSync(stateDir, { recursive: true });
    const path = join(stateDir, "metadata.db");
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: opts.busyTimeoutMs ?? 10_000 });
      // WAL lets readers run beside the one writer; FULL syncs each commit, so a recorded cache
      // result survives power loss as surely as the fsynced blobs it points at.
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      db.pragma("foreign_keys = ON");
      migrate(db, path);
    } catch (err) {
      throw explainOpenError(err, path);
    }
    return new MetadataDb(path, db, (opts.now ?? Date.now)());
  }

  schemaVersion(): number {
    return this.db.pragma("user_version", { simple: true }) as number;
  }

  /**
   * Runs `fn` as one transaction that takes the write lock up front (so two connections never
   * deadlock upgrading read locks). Nested calls become savepoints. `fn` must be synchronous.
   */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  /** SQLite's own consistency check; empty when the file is sound. */
  checkIntegrity(): string[] {
    const rows = this.db.pragma("integrity_check") as { integrity_check: string }[];
    const problems = rows.map((r) => r.integrity_check).filter((m) => m !== "ok");
    const fk = this.db.pragma("foreign_key_check") as { table: string; rowid: number; parent: string }[];
    for (const v of fk) problems.push(`row ${v.rowid} of ${v.table} points at a missing ${v.parent} row`);
    return problems;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function migrate(db: Database.Database, path: string): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(
      `${path} has schema version ${current}, newer than this Kiln understands (${SCHEMA_VERSION}); ` +
        "upgrade Kiln, or remove the builder's state to start afresh",
    );
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      SCHEMA_MIGRATIONS[v]!(db);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

function explainOpenError(err: unknown, path: string): unknown {
  const code = (err as { code?: string }).code;
  if (code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT") {
    return new Error(
      `the metadata database ${path} is damaged (${(err as Error).message}); ` +
        "remove it (the build cache it indexes will be rebuilt) and start again",
      { cause: err },
    );
  }
  return err;
}
