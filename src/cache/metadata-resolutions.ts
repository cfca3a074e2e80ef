// Two small lookups in the metadata database: image references resolved to digests per platform
// (so repeated builds need not ask the registry each time), and cache mounts (id → snapshot).
import type BetterSqlite3 from "better-sqlite3";
import type { CacheSharing } from "../llb/ops.js";
import type { Digest } from "../oci/digest.js";
import { formatPlatform, normalizePlatform, type Platform } from "../oci/platform.js";
import type { SnapshotId } from "../snapshot/types.js";

export interface ImageResolution {
  readonly ref: string;
  readonly platform: Platform;
  readonly digest: Digest;
  readonly resolvedAt: number;
}

export class ImageResolutionTable {
  private readonly getStmt;
  private readonly putStmt;
  private readonly deleteStmt;
  private readonly deleteOlderStmt;

  constructor(db: BetterSqlite3.Database) {
    this.getStmt = db.prepare<[string, string], { digest: string; resolved_at: number }>(
      "SELECT digest, resolved_at FROM image_resolutions WHERE ref = ? AND platform = ?",
    );
    this.putStmt = db.prepare(
      `INSERT INTO image_resolutions (ref, platform, digest, resolved_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (ref, platform) DO UPDATE SET digest = excluded.digest, resolved_at = excluded.resolved_at`,
    );
    this.deleteStmt = db.prepare("DELETE FROM image_resolutions WHERE ref = ?");
    this.deleteOlderStmt = db.prepare("DELETE FROM image_resolutions WHERE resolved_at < ?");
  }

  get(ref: string, platform: Platform): ImageResolution | undefined {
    const row = this.getStmt.get(ref, platformKey(platform));
    if (!row) return undefined;
    return {
      ref,
      platform: normalizePlatform(platform),
      digest: row.digest as Digest,
      resolvedAt: row.resolved_at,
    };
  }

  put(ref: string, platform: Platform, digest: Digest, now = Date.now()): void {
    this.putStmt.run(ref, platformKey(platform), digest, now);
  }

  /** Forgets every platform's resolution of `ref`. */
  delete(ref: string): void {
    this.deleteStmt.run(ref);
  }

  deleteResolvedBefore(time: number): number {
    return this.deleteOlderStmt.run(time).changes;
  }
}

function platformKey(p: Platform): string {
  return formatPlatform(normalizePlatform(p));
}

export interface CacheMountRecord {
  readonly id: string;
  readonly snapshotId: SnapshotId;
  readonly sharing: CacheSharing;
  readonly createdAt: number;
  readonly lastUsedAt: number;
}

interface CacheMountRow {
  id: string;
  snapshot_id: string;
  sharing: CacheSharing;
  created_at: number;
  last_used_at: number;
}

export class CacheMountTable {
  private readonly getStmt;
  private readonly listStmt;
  private readonly putStmt;
  private readonly touchStmt;
  private readonly deleteStmt;
  private readonly snapshotExistsStmt;

  constructor(private readonly db: BetterSqlite3.Database) {
    this.getStmt = db.prepare<[string], CacheMountRow>("SELECT * FROM cache_mounts WHERE id = ?");
    this.listStmt = db.prepare<[], CacheMountRow>("SELECT * FROM cache_mounts ORDER BY id");
    this.putStmt = db.prepare(
      `INSERT INTO cache_mounts (id, snapshot_id, sharing, created_at, last_used_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET snapshot_id = excluded.snapshot_id, sharing = excluded.sharing,
         last_used_at = excluded.last_used_at`,
    );
    this.touchStmt = db.prepare("UPDATE cache_mounts SET last_used_at = ? WHERE id = ?");
    this.deleteStmt = db.prepare("DELETE FROM cache_mounts WHERE id = ?");
    this.snapshotExistsStmt = db.prepare<[string], { one: number }>(
      "SELECT 1 AS one FROM snapshots WHERE id = ? AND removing = 0",
    );
  }

  get(id: string): CacheMountRecord | undefined {
    const row = this.getStmt.get(id);
    return row ? toCacheMount(row) : undefined;
  }

  list(): CacheMountRecord[] {
    return this.listStmt.all().map(toCacheMount);
  }

  /** Points cache mount `id` at a recorded snapshot (record it first, as `exec.cachemount`). */
  put(id: string, snapshotId: SnapshotId, sharing: CacheSharing, now = Date.now()): void {
    this.db.transaction(() => {
      if (!this.snapshotExistsStmt.get(snapshotId)) {
        throw new Error(`cache mount ${JSON.stringify(id)}: snapshot ${snapshotId} is not recorded`);
      }
      this.putStmt.run(id, snapshotId, sharing, now, now);
    })();
  }

  touch(id: string, now = Date.now()): void {
    this.touchStmt.run(now, id);
  }

  delete(id: string): boolean {
    return this.deleteStmt.run(id).changes > 0;
  }
}

function toCacheMount(row: CacheMountRow): CacheMountRecord {
  return {
    id: row.id,
    snapshotId: row.snapshot_id as SnapshotId,
    sharing: row.sharing,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}
